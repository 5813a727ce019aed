"""The customer's side: raw records → encrypted features, and encrypted predictions → values.

Only this side ever holds the private key. pandas and scikit-learn are imported where records
are prepared, so decryption starts fast.
"""
from __future__ import annotations

import io
from typing import Sequence

from .documents import Batch, EncryptedFeatures, EncryptedPredictions, ModelSpec
from .errors import EncodingRangeError, InputError, KeyMismatchError
from .model_transforms import apply_transform
from .paillier import Encryptor, PrivateKey, PublicKey, decrypt_packed, encrypt_packed

#: The original project's example: the laptop a new user gets a price for without any input.
SAMPLE_LAPTOP = {
    "Company": "Dell", "TypeName": "Notebook", "Inches": "15.6",
    "ScreenResolution": "Full HD 1920x1080", "Cpu": "Intel Core i7 2.8GHz", "Ram": "8GB",
    "Memory": "256GB SSD", "Gpu": "Nvidia GeForce GTX 1050", "OpSys": "Windows 10", "Weight": "2.0kg",
}


def read_records(data: bytes, source: str):
    """CSV bytes → (DataFrame of strings, record ids). Ids come from an ``id`` column if there
    is one, else they are 0-based row numbers."""
    import pandas as pd

    if not data.strip():
        raise InputError("is empty, expected a CSV with a header row", source)
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("is not UTF-8 text", source) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise InputError(f"is not a readable CSV: {str(e).strip().splitlines()[0]}", source) from None
    if frame.empty:
        raise InputError("has a header but no records", source)
    if "id" in frame.columns:
        ids = [_id_value(v) for v in frame["id"]]
        if len(set(ids)) != len(ids):
            raise InputError("column 'id' has duplicate values", source)
    else:
        ids = list(range(len(frame)))
    frame.index = range(len(frame))
    return frame, ids


def sample_records():
    import pandas as pd

    return pd.DataFrame([SAMPLE_LAPTOP]), [0]


def _id_value(v: str):
    return int(v) if v.isdigit() and (v == "0" or not v.startswith("0")) else v


def prepare_features(col_tnf, spec: ModelSpec, raw, ids: Sequence):
    """Raw records → the model's float feature matrix, refusing anything outside the spec's
    declared input bounds (those would overflow a packed slot)."""
    import numpy as np

    steps = dict(col_tnf.named_steps)
    engineered = steps["features"].transform(raw) if "features" in steps else raw
    for column, (lo, hi) in spec.inputs.items():
        if column not in engineered.columns:
            continue
        values = engineered[column].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values < lo) | (values > hi)
        if bad.any():
            r = int(np.argmax(bad))
            raise EncodingRangeError(f"record {ids[r]}: {column} = {float(values[r]):g} is outside the range "
                                     f"the model accepts [{lo:g}, {hi:g}]")
    columns = steps["columns"]
    names = list(columns.get_feature_names_out())
    if names != spec.features:
        raise KeyMismatchError("the column transformer does not match the model description "
                               "(col_tnf.pkl and Encrypted_ModelParameters/Model.json are from different trainings)")
    return np.asarray(columns.transform(engineered), dtype=np.float64)


def encrypt_features(x, ids: Sequence, spec: ModelSpec, public: PublicKey,
                     private: PrivateKey | None = None) -> EncryptedFeatures:
    """Pack ``m`` records per ciphertext (one ciphertext per feature per batch) and encrypt."""
    codec = spec.codec
    ints = codec.encode_features(x, spec.lower, spec.upper, spec.features, ids)
    m = codec.slots_for(public.bits)
    chunks = [(list(ids[i:i + m]), ints[i:i + m]) for i in range(0, len(ints), m)]
    encryptor = Encryptor(public, private, expected=len(chunks) * len(spec.features))
    batches = [Batch(chunk_ids, encrypt_packed(encryptor, codec, rows)) for chunk_ids, rows in chunks]
    return EncryptedFeatures(public, spec.fingerprint, codec, m, list(spec.features), batches)


def decrypt_predictions(doc: EncryptedPredictions, private: PrivateKey) -> list[tuple]:
    """``(id, prediction)`` pairs in input order, in the target's own units."""
    if doc.key_fingerprint != private.fingerprint:
        raise KeyMismatchError("the predictions were encrypted for another key")
    out = []
    for batch in doc.batches:
        sums = decrypt_packed(private, doc.codec, batch.ciphertexts[0], len(batch.ids))
        values = apply_transform([doc.codec.decode(s) for s in sums], doc.transform)
        out.extend(zip(batch.ids, values))
    return out
