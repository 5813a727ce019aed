"""The company's side: encrypted features → encrypted predictions, with the public key only.

This is the scoring step (``ServerModelRun.py``, ``python -m ppml score``), not the prediction
service: that is :mod:`ppml.service`, which calls this module for each batch.

Imports neither pandas nor scikit-learn: the parameters are JSON, the maths is gmpy2. Of the
customer's key only ``n`` is used: every answer is masked above its declared slots and
re-randomized with the server's own ``r^n`` (see :func:`ppml.paillier.scheme.score_packed`).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from .documents import Batch, EncryptedFeatures, EncryptedPredictions, ModelParameters
from .errors import DocumentError, KeyMismatchError
from .paillier import score_packed
from .parallel import Recipe, ordered_map


def check_compatible(doc: EncryptedFeatures, params: ModelParameters) -> None:
    """Refuse a document made for another model (its features would be scored by wrong weights)."""
    spec = params.spec
    if doc.model_fingerprint != spec.fingerprint:
        raise KeyMismatchError(f"encrypted for model {doc.model_fingerprint[:19]}…, but this server runs "
                               f"model {spec.fingerprint[:19]}…")
    if doc.codec != spec.codec:
        raise DocumentError(f"codec {doc.codec.to_dict()} differs from the model's {spec.codec.to_dict()}")
    if doc.features != spec.features:
        raise DocumentError("feature names differ from the model's")


def predictions_header(doc: EncryptedFeatures, params: ModelParameters) -> EncryptedPredictions:
    spec = params.spec
    return EncryptedPredictions(doc.public_key.fingerprint, spec.fingerprint, doc.codec, doc.slots,
                                list(spec.outputs), [])


def scoring_state(doc: EncryptedFeatures, params: ModelParameters) -> tuple:
    """What scoring one batch needs: small and picklable (public key, codec, integer weights and
    intercept of every output)."""
    return doc.public_key, doc.codec, params.integer_weights()


def score_batch(state: tuple, batch: Batch, noises: list | None = None) -> Batch:
    """One batch's answer: per output, one masked, server-re-randomized ciphertext for its records
    (each through :func:`~ppml.paillier.scheme.score_packed`, so each has its own mask and
    ``r^n``). ``noises``: one precomputed ``server_noise`` per output, each used once, or None."""
    public, codec, weights = state
    m = len(batch.ids)
    noises = noises or [None] * len(weights)
    return Batch(list(batch.ids), [score_packed(public, codec, W, B, batch.ciphertexts, m, noise)
                                   for (W, B), noise in zip(weights, noises, strict=True)])



def _state(*args):
    return args


def score_stream(doc: EncryptedFeatures, batches: Iterable[Batch], params: ModelParameters,
                 workers: int = 1, scheduler=None) -> Iterator[Batch]:
    """``Enc(W·x + b)`` for every record, one freshly re-randomized ciphertext per output per batch.

    Nothing is precomputed per document (the server's randomness is a fresh ``r^n`` per answer
    ciphertext), so the work needs no estimate. On a Dask ``scheduler``, what travels is the
    public key, the integer weights and the ciphertexts."""
    check_compatible(doc, params)
    state = scoring_state(doc, params)
    recipe = Recipe(_state, state, key=f"score:{doc.public_key.fingerprint}:{params.spec.fingerprint}")
    return ordered_map(score_batch, batches, recipe, workers, scheduler)
