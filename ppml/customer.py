"""The customer's side: prepared records → encrypted features, and encrypted predictions →
values. Reading the records (CSV, the sample laptop) is :mod:`ppml.records`.

Only this side ever holds the private key. Everything streams: records are read in chunks,
encrypted batch by batch on a process pool, and written as they are done, so memory does not
grow with the input. pandas and scikit-learn are imported only where records are prepared,
so decryption starts fast.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from .documents import Batch, EncryptedFeatures, EncryptedPredictions, ModelSpec
from .errors import EncodingRangeError, KeyMismatchError
from .validation import shown
from .paillier import Encryptor, PrivateKey, PublicKey, decrypt_packed, encrypt_packed
from .parallel import LARGE_INPUT_BATCHES, Recipe, ordered_map


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
