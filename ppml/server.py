"""The company's side: encrypted features → encrypted predictions, with the public key only.

This is the scoring step (``ServerModelRun.py``, ``python -m ppml score``), not the prediction
service: that is :mod:`ppml.service`, which calls this module for each batch.

Imports neither pandas nor scikit-learn: the parameters are JSON, the maths is gmpy2. Of the
customer's key only ``n`` is used: every answer is masked above its declared slots and
re-randomized with the server's own ``r^n`` (see :func:`ppml.paillier.scheme.score_packed`).
"""
from __future__ import annotations

import itertools
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


def _score_pooled(state: tuple, item: tuple) -> Batch:
    return score_batch(state, *item)


#: Batches read ahead per draw from a noise pool (each draw is one locked, fsynced truncation).
POOL_DRAW_BATCHES = 64


def _with_noises(batches: Iterable[Batch], pool, outputs: int) -> Iterator[tuple]:
    """``(batch, noises)`` pairs: the noises for up to :data:`POOL_DRAW_BATCHES` batches at a
    time are taken out of ``pool`` before any of them is scored; batches the pool no longer
    covers get None (fresh ``r^n``)."""
    batches = iter(batches)
    while chunk := list(itertools.islice(batches, POOL_DRAW_BATCHES)):
        noises = pool.take(len(chunk) * outputs)
        noises += [None] * (len(chunk) * outputs - len(noises))
        for i, batch in enumerate(chunk):
            yield batch, noises[i * outputs:(i + 1) * outputs]


def score_stream(doc: EncryptedFeatures, batches: Iterable[Batch], params: ModelParameters,
                 workers: int = 1, scheduler=None, pool=None) -> Iterator[Batch]:
    """``Enc(W·x + b)`` for every record, one freshly re-randomized ciphertext per output per batch.

    Nothing is precomputed per document (the server's randomness is a fresh ``r^n`` per answer
    ciphertext, or one taken from ``pool``, a :class:`ppml.pools.RandomnessPool` of ``r^n`` for
    this document's key, made ahead of time), so the work needs no estimate. On a Dask
    ``scheduler``, what travels is the public key, the integer weights and the ciphertexts."""
    check_compatible(doc, params)
    state = scoring_state(doc, params)
    recipe = Recipe(_state, state, key=f"score:{doc.public_key.fingerprint}:{params.spec.fingerprint}")
    if pool is None:
        return ordered_map(score_batch, batches, recipe, workers, scheduler)
    return ordered_map(_score_pooled, _with_noises(batches, pool, len(state[2])), recipe, workers, scheduler)
