"""The customer's side: raw records → encrypted features, and encrypted predictions → values.

Only this side ever holds the private key. Everything streams: records are read in chunks,
encrypted batch by batch on a process pool, and written as they are done, so memory does not
grow with the input. pandas and scikit-learn are imported only where records are prepared,
so decryption starts fast.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence

from . import files
from .documents import Batch, EncryptedFeatures, EncryptedPredictions, ModelSpec
from .errors import EncodingRangeError, InputError, KeyMismatchError
from .validation import shown
from .paillier import Encryptor, PrivateKey, PublicKey, decrypt_packed, encrypt_packed
from .parallel import LARGE_INPUT_BATCHES, Recipe, ordered_map

#: The original project's example: the laptop a new user gets a price for without any input.
SAMPLE_LAPTOP = {
    "Company": "Dell", "TypeName": "Notebook", "Inches": "15.6",
    "ScreenResolution": "Full HD 1920x1080", "Cpu": "Intel Core i7 2.8GHz", "Ram": "8GB",
    "Memory": "256GB SSD", "Gpu": "Nvidia GeForce GTX 1050", "OpSys": "Windows 10", "Weight": "2.0kg",
}
#: Batches per chunk of CSV records: large enough for fast pandas, small enough for flat memory.
CHUNK_BATCHES = 64


def is_laptop_transform(col_tnf) -> bool:
    """Whether the sample laptop fits this model (its features step is the laptop parser)."""
    from .features import engineer_features

    return col_tnf.features is engineer_features


def sample_records():
    import pandas as pd

    yield pd.DataFrame([SAMPLE_LAPTOP]), [0]


def read_records(data: bytes, source: str):
    """All records of CSV bytes at once (training): (DataFrame of strings, ids)."""
    import io

    chunks = list(iter_record_chunks(io.BytesIO(data), source, chunk_records=None))
    if len(chunks) != 1:
        raise AssertionError("one chunk expected")  # programming error
    return chunks[0]


def iter_record_chunks(path_or_buffer, source: str, chunk_records: int | None) -> Iterator:
    """CSV → (DataFrame of strings, record ids) chunks of ``chunk_records`` rows (all rows if
    None). Ids come from an ``id`` column if there is one, else they are 0-based row numbers."""
    import pandas as pd

    stream = path_or_buffer
    if isinstance(stream, str):
        if stream == files.STDIO:
            stream = sys.stdin.buffer
        else:
            try:
                stream = open(stream, "rb")
            except FileNotFoundError:
                raise InputError("file not found", source) from None
            except IsADirectoryError:
                raise InputError("is a folder, expected a CSV file", source) from None
            except OSError as e:
                raise InputError(f"cannot read: {e.strerror}", source) from None
    try:
        # pandas raises at open when reading whole, at each chunk otherwise.
        with CsvErrors(source):
            reader = pd.read_csv(stream, dtype=str, keep_default_na=False, encoding="utf-8",
                                 chunksize=chunk_records)
        frames = reader if chunk_records else iter([reader])
        seen_ids: set = set()
        offset = 0
        while True:
            with CsvErrors(source):
                frame = next(frames, None)
            if frame is None or frame.empty:
                break
            if "id" in frame.columns:
                ids = [_id_value(v) for v in frame["id"]]
                before = len(seen_ids)
                seen_ids.update(ids)  # linear: each id is hashed once, whatever the chunking
                if len(seen_ids) != before + len(ids):
                    raise InputError("column 'id' has duplicate values", source)
            else:
                ids = list(range(offset, offset + len(frame)))
            frame.index = range(offset, offset + len(frame))
            offset += len(frame)
            yield frame, ids
        if offset == 0:
            raise InputError("has a header but no records", source)
    finally:
        if stream is not path_or_buffer:
            stream.close()


class CsvErrors:
    """pandas' reading errors → one-line InputErrors naming the file."""

    def __init__(self, source: str):
        self.source = source

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        import pandas as pd

        if exc_type is None:
            return False
        if issubclass(exc_type, pd.errors.EmptyDataError):
            raise InputError("is empty, expected a CSV with a header row", self.source) from None
        if issubclass(exc_type, UnicodeDecodeError):
            raise InputError("is not UTF-8 text", self.source) from None
        if issubclass(exc_type, (pd.errors.ParserError, ValueError)):
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(f"is not a readable CSV: {detail}", self.source) from None
        return False


def _id_value(v: str):
    """``"17"`` → 17 (so CSV ids round-trip as numbers); anything else — leading zeros,
    non-ASCII digits, more digits than an int64 — stays text."""
    if v.isascii() and v.isdigit() and len(v) <= 18 and (v == "0" or not v.startswith("0")):
        return int(v)
    return v


def check_transform(col_tnf, spec: ModelSpec) -> None:
    """The customer's transformer and the model description come from the same training."""
    if col_tnf.feature_names != spec.features:
        raise KeyMismatchError("the column transformer does not match the model description "
                               "(col_tnf.pkl and Encrypted_ModelParameters/Model.json are from different trainings)")


def prepare_features(col_tnf, spec: ModelSpec, raw, ids: Sequence):
    """Raw records → the model's float feature matrix, refusing anything outside the spec's
    declared input bounds (those would overflow a packed slot)."""
    import numpy as np

    engineered = col_tnf.engineer(raw)
    for column, (lo, hi) in spec.inputs.items():
        if column not in engineered.columns:
            continue
        values = engineered[column].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values < lo) | (values > hi)
        if bad.any():
            r = int(np.argmax(bad))
            raise EncodingRangeError(f"record {ids[r]}: {column} = {float(values[r]):g} is outside the range "
                                     f"the model accepts [{lo:g}, {hi:g}]")
    check_transform(col_tnf, spec)
    return col_tnf.columns.transform(engineered)


def prepare_chunks(chunks: Iterable, col_tnf, spec: ModelSpec) -> Iterator:
    """(ids, fixed-point feature rows) per chunk, every value checked against the bounds."""
    for frame, ids in chunks:
        x = prepare_features(col_tnf, spec, frame, ids)
        yield ids, spec.codec.encode_features(x, spec.lower, spec.upper, spec.features, ids)


def _encrypt_job(state, job) -> Batch:
    encryptor, codec = state
    ids, rows = job
    return Batch(list(ids), encrypt_packed(encryptor, codec, rows))


def _encrypt_state(public, private, expected, workers, codec):
    return Encryptor(public, private, expected=expected, workers=workers, comb=True), codec


def encrypt_stream(prepared: Iterable, spec: ModelSpec, public: PublicKey, private: PrivateKey | None = None,
                   workers: int = 1, expected_batches: int = LARGE_INPUT_BATCHES,
                   scheduler=None) -> Iterator[Batch]:
    """Encrypted batches of ``m`` records (one ciphertext per feature per batch), in order.

    ``expected_batches`` sizes the window table (a single record must not pay for a large one).
    With the private key, encryption runs modulo p² and q² (CRT) — locally only: on a Dask
    ``scheduler`` the workers get the public key alone and encrypt modulo n².
    """
    codec = spec.codec
    m = codec.slots_for(public.bits)
    workers = min(workers, max(1, expected_batches))
    if scheduler is not None:
        private = None  # the private key never leaves this machine
    expected = max(1, expected_batches) * len(spec.features)
    recipe = Recipe(_encrypt_state, (public, private, expected, workers, codec),
                    key=f"encrypt:{public.fingerprint}:{expected}:{codec.slot_bits}")

    def jobs():
        for ids, rows in prepared:
            for i in range(0, len(rows), m):
                yield ids[i:i + m], rows[i:i + m]

    return ordered_map(_encrypt_job, jobs(), recipe, workers, scheduler)


def features_header(spec: ModelSpec, public: PublicKey) -> EncryptedFeatures:
    return EncryptedFeatures(public, spec.fingerprint, spec.codec, spec.codec.slots_for(public.bits),
                             list(spec.features), [])


def check_answer(header: EncryptedPredictions, spec: ModelSpec, private: PrivateKey) -> None:
    """The customer trusts its own files only: an answer must be for its key and for the model
    it holds (``Model.json``), with that model's codec, slot count and outputs; how the answer
    is decoded (codec, outputs, link) then comes from ``spec``, never from the answer."""
    if header.key_fingerprint != private.fingerprint:
        raise KeyMismatchError("the predictions were encrypted for another key")
    if header.model_fingerprint != spec.fingerprint:
        raise KeyMismatchError(f"answers from model {header.model_fingerprint[:19]}…, not from the customer's "
                               f"model ({spec.fingerprint[:19]}…, Model.json of --model)")
    if header.codec != spec.codec:
        raise KeyMismatchError(f"the answer's codec {header.codec.to_dict()} is not the model's "
                               f"{spec.codec.to_dict()}")
    if header.outputs != spec.outputs:
        raise KeyMismatchError(f"the answer's outputs {shown(header.outputs)} are not the model's "
                               f"{shown(spec.outputs)}")
    if header.slots != spec.codec.slots_for(private.public.bits):
        raise KeyMismatchError(f"the answer packs {header.slots} records per ciphertext; the model and key "
                               f"give {spec.codec.slots_for(private.public.bits)}")


def _decrypt_job(state, batch: Batch) -> list[tuple]:
    private, spec = state
    m, codec = len(batch.ids), spec.codec
    outputs = [[codec.decode(s) for s in decrypt_packed(private, codec, c, m)] for c in batch.ciphertexts]
    return [(rid, spec.prediction([values[j] for values in outputs])) for j, rid in enumerate(batch.ids)]


def decrypt_stream(header: EncryptedPredictions, batches: Iterable[Batch], private: PrivateKey,
                   spec: ModelSpec, workers: int = 1) -> Iterator[list[tuple]]:
    """``(id, prediction)`` pairs per batch, in input order, decoded with the customer's own model
    description ``spec`` (see :func:`check_answer`): each prediction is the tuple of
    ``spec.columns`` values (the value in the target's own units, or the class label and its
    probabilities)."""
    check_answer(header, spec, private)
    return ordered_map(_decrypt_job, batches, Recipe(_as_tuple, (private, spec)), workers)


def _as_tuple(*args):
    return args
