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

from . import documents
from .documents import Batch, EncryptedFeatures, EncryptedPredictions, ModelParameters, check_count
from .errors import DocumentError, KeyMismatchError, PpmlError
from .paillier import score_packed
from .paillier.keys import PublicKey
from .parallel import Recipe, ordered_map
from .streams import DocumentReader, Limits, batch_bytes_for

#: Largest customer key scored by default (``--max-key-bits``): one ``r^n`` grows with the cube
#: of the key size, so a 16,384-bit key costs 70 times a 3,072-bit one per answer ciphertext.
DEFAULT_MAX_KEY_BITS = 4096


class Incompatible(DocumentError):
    """A well-formed document made for another codec or other features than the model's (the
    service answers 409, like a document for another model)."""


def check_compatible(doc: EncryptedFeatures, params: ModelParameters) -> None:
    """Refuse a document made for another model (its features would be scored by wrong weights)."""
    spec = params.spec
    if doc.model_fingerprint != spec.fingerprint:
        raise KeyMismatchError(f"encrypted for model {doc.model_fingerprint[:19]}…, but this server runs "
                               f"model {spec.fingerprint[:19]}…")
    if doc.codec != spec.codec:
        raise Incompatible(f"codec {doc.codec.to_dict()} differs from the model's {spec.codec.to_dict()}")
    if doc.features != spec.features:
        raise Incompatible("feature names differ from the model's")


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


def features_limits(params: ModelParameters, max_key_bits: int = DEFAULT_MAX_KEY_BITS,
                    batch_bytes: int | None = None) -> Limits:
    """What a features document for this model may make the server's reader hold
    (:func:`ppml.documents.features_limits` for the model's feature names and the largest key
    this server accepts)."""
    return documents.features_limits(params.spec.features, max_key_bits, batch_bytes)


def check_key_bits(header: dict, max_key_bits: int) -> None:
    """Refuse a key over ``max_key_bits`` from its text alone, before any arithmetic on it."""
    key = header.get("public_key") if isinstance(header, dict) else None
    n = key.get("n") if isinstance(key, dict) else None
    if isinstance(n, str):
        bits = 4 * len(n.lstrip("0"))
        if bits - 3 > max_key_bits:
            raise DocumentError(f"public_key: a key of about {bits:,} bits is larger than this server's limit "
                                f"of {max_key_bits:,} bits")


def check_key(public: PublicKey) -> None:
    """The expensive check of a customer's key, the one place it is made before scoring: the
    key's modulus proof must verify (:func:`ppml.paillier.proof.require_proven`; about 0.1 s at
    3072 bits, then remembered for the process). ``h_s`` is not checked: the server never uses
    it (its own ``r^n`` re-randomizes every answer), and the customer checks its own."""
    from .paillier.proof import require_proven

    require_proven(public)


def verify_key(d, allow_weak: bool) -> str:
    """The key as the document holds it, parsed and through :func:`check_key`; its fingerprint
    if it passes (the service runs this in a process of its own and remembers the answer)."""
    try:
        public = PublicKey.from_dict(d, allow_weak)
    except PpmlError as e:
        raise DocumentError(f"public_key: {e.message}") from None
    check_key(public)
    return public.fingerprint


class ScoreSession:
    """One features document being scored, for the score stage and the service alike: the
    header read and checked against the model, then its batches parsed and checked one by one
    (record ids unique within the document), and the record count checked at the end.

    The caller checks the key (:func:`check_key`) between opening the session and scoring."""

    def __init__(self, reader: DocumentReader, params: ModelParameters, *, allow_weak: bool = False,
                 max_key_bits: int = DEFAULT_MAX_KEY_BITS):
        self.reader = reader
        check_key_bits(reader.header, max_key_bits)
        self.doc = EncryptedFeatures.parse_header(reader.header, allow_weak=allow_weak)
        check_compatible(self.doc, params)
        reader.batch_limit = reader.limits.batch_bytes or batch_bytes_for(
            self.doc.public_key.bits, len(self.doc.features), self.doc.slots)
        self.answer = predictions_header(self.doc, params)
        self.state = scoring_state(self.doc, params)
        self.batches = self.records = 0
        self._seen: set = set()

    def parsed(self) -> Iterator[Batch]:
        """The document's batches, each checked; the count is checked after the last one."""
        for raw in self.reader.batches():
            batch = self.doc.parse_batch(raw, self.batches)
            self._check_ids(batch.ids)
            self.batches += 1
            self.records += len(batch.ids)
            yield batch
        check_count(self.reader.declared_records, self.batches, self.records)

    def _check_ids(self, ids: list) -> None:
        for i in ids:
            problem = documents.id_problem(i)
            if problem:
                raise DocumentError(f"batch {self.batches}: {problem}")
            tag = hash((isinstance(i, str), i))  # a hash, not the id: bounded memory per record
            if tag in self._seen:
                raise DocumentError(f"batch {self.batches}: record id {i!r:.40} appears twice in the document")
            self._seen.add(tag)
