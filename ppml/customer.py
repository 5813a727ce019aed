"""The customer's side: prepared records → encrypted features, and encrypted predictions →
values. Reading the records (CSV, the sample laptop) is :mod:`ppml.records`.

Only this side ever holds the private key. Everything streams: records are read in chunks,
encrypted batch by batch on a process pool, and written as they are done, so memory does not
grow with the input. pandas and scikit-learn are imported only where records are prepared,
so decryption starts fast.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from . import files
from .documents import (Batch, EncryptedFeatures, EncryptedPredictions, ModelSpec, batch_ids, check_count,
                        features_limits, predictions_limits)
from .errors import AnswerMismatchError, EncodingRangeError, KeyMismatchError, PpmlError
from .validation import shown
from .paillier import Encryptor, PrivateKey, PublicKey, decrypt_packed, encrypt_packed
from .parallel import LARGE_INPUT_BATCHES, Recipe, ordered_map
from .streams import DocumentReader, Limits, batch_bytes_for


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


def expected_batches(records, m: int) -> int:
    """How many batches of ``m`` records a CSV file holds, from its line count (one quick read;
    quoted line breaks only overestimate), to size the encryption table for the workload; for
    stdin, or a file that cannot be read, a long input is assumed."""
    if records is None or str(records) == files.STDIO:
        return LARGE_INPUT_BATCHES
    lines = 0
    try:
        with open(records, "rb") as f:
            while block := f.read(1 << 20):
                lines += block.count(b"\n")
    except OSError:
        return LARGE_INPUT_BATCHES
    return max(1, -(-lines // m))


def _encrypt_job(state, job) -> Batch:
    encryptor, codec = state
    ids, rows, masks = job
    return Batch(list(ids), encrypt_packed(encryptor, codec, rows, masks))


def _encrypt_state(public, private, expected, workers, codec):
    return Encryptor(public, private, expected=expected, workers=workers, comb=True), codec


def encrypt_stream(prepared: Iterable, spec: ModelSpec, public: PublicKey, private: PrivateKey | None = None,
                   workers: int = 1, expected_batches: int = LARGE_INPUT_BATCHES,
                   scheduler=None, pool=None) -> Iterator[Batch]:
    """Encrypted batches of ``m`` records (one ciphertext per feature per batch), in order.

    ``expected_batches`` sizes the window table (a single record must not pay for a large one).
    With the private key, encryption runs modulo p² and q² (CRT) — locally only: on a Dask
    ``scheduler`` the workers get the public key alone and encrypt modulo n². ``pool``: a
    :class:`ppml.pools.RandomnessPool` of encryptions of zero; each chunk's values are taken
    out of it (durably) before its batches are encrypted, and the table is sized for only
    the encryptions the pool will not cover.
    """
    codec = spec.codec
    m = codec.slots_for(public.bits)
    workers = min(workers, max(1, expected_batches))
    if scheduler is not None:
        private = None  # the private key never leaves this machine
    features = len(spec.features)
    expected = max(1, expected_batches) * features
    if pool is not None:
        expected = max(0, expected - pool.count())
    recipe = Recipe(_encrypt_state, (public, private, expected, workers, codec),
                    key=f"encrypt:{public.fingerprint}:{expected}:{codec.slot_bits}")

    def jobs():
        for ids, rows in prepared:
            starts = range(0, len(rows), m)
            masks = pool.take(len(starts) * features) if pool is not None else []
            for b, i in enumerate(starts):
                yield ids[i:i + m], rows[i:i + m], masks[b * features:(b + 1) * features]

    return ordered_map(_encrypt_job, jobs(), recipe, workers, scheduler)


def features_header(spec: ModelSpec, public: PublicKey) -> EncryptedFeatures:
    return EncryptedFeatures(public, spec.fingerprint, spec.codec, spec.codec.slots_for(public.bits),
                             list(spec.features), [])


def check_answer(header: EncryptedPredictions, spec: ModelSpec, private: PrivateKey,
                 request: SentRequest | None = None) -> None:
    """The customer trusts its own files only: an answer must be for its key and for the model
    it holds (``Model.json``), with that model's codec, slot count and outputs, and, given the
    ``request`` it answers, for that request's key, model and slot count; how the answer is
    decoded (codec, outputs, link) then comes from ``spec``, never from the answer."""
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
    if request is not None:
        request.check_header(header)


class SentRequest:
    """The features document an answer must answer, read alongside the answer batch by batch
    (ids only, its ciphertexts dropped as they are read), so memory stays bounded whatever
    the size of either: answer batch ``i`` must hold exactly the ids of request batch ``i``,
    in order, and the answer exactly the request's batches and record count.

    ``source`` is a path or a binary stream (then ``name`` says what it is)."""

    def __init__(self, source, limits: Limits | None = None, name: str | None = None):
        self.name = name or files.display_name(source)
        limits = limits or features_limits(None)
        self._reader = DocumentReader(source, limits, self.name)
        try:
            self.doc = EncryptedFeatures.parse_header(self._reader.header, allow_weak=True)
        except PpmlError as e:
            self._reader.close()
            raise e.with_source(self.name)
        self._reader.batch_limit = limits.batch_bytes or batch_bytes_for(self.doc.public_key.bits,
                                                                          len(self.doc.features), self.doc.slots)
        self._batches = self._reader.batches()
        self.batches = self.records = 0

    def check_header(self, answer: EncryptedPredictions) -> None:
        """The answer is for the request's key and model, packed as the request was."""
        sent = self.doc
        for what, got, want in (("key", answer.key_fingerprint, sent.public_key.fingerprint),
                                ("model", answer.model_fingerprint, sent.model_fingerprint)):
            if got != want:
                raise AnswerMismatchError(f"the answer is for {what} {got[:19]}…, the request {self.name} was "
                                          f"sent for {what} {want[:19]}…")
        if answer.slots != sent.slots:
            raise AnswerMismatchError(f"the answer packs {answer.slots} records per batch, the request "
                                      f"{self.name} packed {sent.slots}")

    def matched(self, answers: Iterable[Batch]) -> Iterator[Batch]:
        """The answer's batches, each passed on only once its ids are the request's batch's
        (the request's file is closed at the end, or at the first difference)."""
        try:
            for i, batch in enumerate(answers):
                self._match(i, batch.ids)
                yield batch
            if self._next_sent() is not None:
                raise AnswerMismatchError(f"holds {_plural(self.batches, 'batch', 'batches')} where the request "
                                          f"{self.name} has more (batch {self.batches} has no answer)")
        finally:
            self.close()

    def _match(self, i: int, ids: list) -> None:
        raw = self._next_sent()
        if raw is None:
            raise AnswerMismatchError(f"batch {i} was never sent (the request {self.name} has "
                                      f"{_plural(i, 'batch', 'batches')})")
        try:
            sent = batch_ids(raw, i, self.doc.slots)
        except PpmlError as e:
            raise e.with_source(self.name)
        if len(ids) != len(sent):
            raise AnswerMismatchError(f"batch {i} holds {_plural(len(ids), 'record')} where the request sent "
                                      f"{len(sent)}")
        for j, (got, want) in enumerate(zip(ids, sent)):
            if got != want:
                raise AnswerMismatchError(f"batch {i}, record {j}: id {shown(got)} where the request sent "
                                          f"{shown(want)}")
        self.batches += 1
        self.records += len(sent)

    def check_records(self, declared) -> None:
        """The record count the answer declares is the request's (after :meth:`matched`)."""
        if isinstance(declared, int) and not isinstance(declared, bool) and declared != self.records:
            raise AnswerMismatchError(f"declares {_plural(declared, 'record')} where the request sent "
                                      f"{self.records}")

    def _next_sent(self):
        """The request's next raw batch, or None at its end."""
        try:
            return next(self._batches, None)
        except PpmlError as e:
            raise e.with_source(self.name)

    def close(self) -> None:
        self._batches.close()
        self._reader.close()


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def check_answer_document(request: SentRequest, answer, name: str, limits: Limits | None = None) -> int:
    """Read a whole predictions document (a path or a binary stream, called ``name`` in errors)
    and refuse it unless it answers ``request``: its key, model and packing, and, batch by
    batch, exactly the ids sent (every ciphertext validated too). Nothing is decrypted: this is
    the check of a customer without its private key at hand (``python -m ppml request``).
    Returns the record count."""
    reader = None
    limits = limits or predictions_limits(None)
    try:
        reader = DocumentReader(answer, limits, name)
        key = request.doc.public_key
        doc = EncryptedPredictions.parse_header(reader.header, key)
        request.check_header(doc)
        reader.batch_limit = limits.batch_bytes or batch_bytes_for(key.bits, len(doc.outputs), doc.slots)
        parsed = (doc.parse_batch(b, i, key) for i, b in enumerate(reader.batches()))
        for _ in request.matched(parsed):
            pass
        request.check_records(reader.declared_records)
        check_count(reader.declared_records, request.batches, request.records)
    except PpmlError as e:
        raise e.with_source(name)
    finally:  # also when the answer's header was refused, before any batch
        request.close()
        if reader is not None:
            reader.close()
    return request.records


def _decrypt_job(state, batch: Batch) -> list[tuple]:
    private, spec = state
    m, codec = len(batch.ids), spec.codec
    outputs = []
    for name, c in zip(spec.outputs, batch.ciphertexts):
        try:
            outputs.append([codec.decode(s) for s in decrypt_packed(private, codec, c, m)])
        except AnswerMismatchError as e:
            rid = shown(batch.ids[e.slot]) if e.slot is not None else "?"
            raise AnswerMismatchError(f"record {rid}, output {name!r}: {e.message}") from None
    return [(rid, spec.prediction([values[j] for values in outputs])) for j, rid in enumerate(batch.ids)]


def decrypt_stream(header: EncryptedPredictions, batches: Iterable[Batch], private: PrivateKey,
                   spec: ModelSpec, workers: int = 1, request: SentRequest | None = None) -> Iterator[list[tuple]]:
    """``(id, prediction)`` pairs per batch, in input order, decoded with the customer's own model
    description ``spec`` (see :func:`check_answer`): each prediction is the tuple of
    ``spec.columns`` values (the value in the target's own units, or the class label and its
    probabilities). Given the ``request`` the answer answers, every batch's ids are checked
    against it before the batch is decrypted; the caller then checks the record count
    (:meth:`SentRequest.check_records`)."""
    check_answer(header, spec, private, request)
    if request is not None:
        batches = request.matched(batches)
    return ordered_map(_decrypt_job, batches, Recipe(_as_tuple, (private, spec)), workers)


def _as_tuple(*args):
    return args
