"""The three stages — encrypt, score, decrypt — as functions from an input to an output.
Folder (cron) mode over any of them is :mod:`ppml.folders`; how predictions are shown,
:mod:`ppml.display`.

This is the one place a stage is put together: the click commands, ``python -m ppml.bench``
and the tests all call these functions, so what the tests exercise is what production runs.
Each stage reads and writes in bounded memory (documents stream batch by batch), refuses an
output that would replace an input, a key file or a model file, and leaves either a complete
output or none.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterable, Sequence

from . import customer, files, pools, server
from .documents import (EncryptedPredictions, ModelParameters, ModelSpec, check_count, features_limits,
                        predictions_limits)
from .display import csv_field, prediction_text
from .errors import OutputError, PpmlError
from .records import CHUNK_BATCHES, iter_record_chunks, sample_records
from .streams import DocumentReader, DocumentWriter, Limits, batch_bytes_for

@dataclass
class Outcome:
    """What a stage did: records and batches written, to ``output``."""

    records: int
    batches: int
    output: str | None


class Watch:
    """What a stage reports while it runs: wall time per step and records done. This one
    reports nothing; the commands pass one that times steps and draws a progress line."""

    def step(self, name: str):
        return contextlib.nullcontext()

    def advance(self, records: int) -> None:
        pass


class TimedWatch(Watch):
    """A watch that keeps the wall time of each step as ``(prefix + name, seconds)`` in
    ``steps`` (a list it may share with other watches, e.g. one per stage of a round trip)."""

    def __init__(self, steps: list | None = None, prefix: str = ""):
        self.steps = [] if steps is None else steps
        self.prefix = prefix

    @contextlib.contextmanager
    def step(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.steps.append((self.prefix + name, time.perf_counter() - start))


def with_source(items: Iterable, source: str):
    """Re-raise library errors from a lazy stream with the file they came from."""
    try:
        yield from items
    except PpmlError as e:
        raise e.with_source(source)


# ---------------------------------------------------------------------------------------------
# The customer's keys, and the files no output may replace
# ---------------------------------------------------------------------------------------------
class CustomerKeys:
    """The customer's key pair, loaded (or, for encryption, created with ``bits`` bits) only
    when first needed: after the first records have been checked (a bad input creates no keys),
    and after the first line of an answer has arrived (in a shell pipeline the encrypting stage
    may still be creating the pair)."""

    def __init__(self, store, bits: int | None = None, allow_weak: bool = False,
                 on_create: Callable | None = None):
        self.store, self.allow_weak, self.on_create = store, allow_weak, on_create
        self._bits = bits
        self._pair: tuple | None = None

    @property
    def bits(self) -> int:
        from .paillier.keys import DEFAULT_KEY_BITS

        if self._bits is None:
            self._bits = self.store.load_public(self.allow_weak).bits if self.store.exists() else DEFAULT_KEY_BITS
        return self._bits

    def pair(self):
        """``(public, private)``, created in the store if it holds none."""
        if self._pair is None:
            public, private, created = self.store.load_or_create(self.bits, allow_weak=self.allow_weak)
            if created and self.on_create:
                self.on_create(public, self.store)
            self._pair = public, private
        return self._pair

    def private(self):
        """The private key (never created here)."""
        if self._pair is None:
            private = self.store.load_private(allow_weak=self.allow_weak)
            self._pair = private.public, private
        return self._pair[1]


def model_files(model_dir) -> list[tuple[Path, str]]:
    """A model folder's artifacts and training data, each with why it must not be overwritten."""
    from . import artifacts

    folder = Path(model_dir)
    named = [folder / artifacts.COL_TNF, folder / artifacts.PIPELINE,
             *(folder / artifacts.PARAMS_DIR / name for name in
               (artifacts.MODEL_JSON, artifacts.COEFFICIENTS_JSON, artifacts.INTERCEPT_JSON))]
    data = folder / "Data"
    named += sorted(data.glob("*.csv")) if data.is_dir() else []
    return [(path, f"is a model file ({path}); refusing to overwrite it (choose another output)") for path in named]


def key_files(store) -> list[tuple[Path, str]]:
    return [(store.private_path, "is the private key; refusing to overwrite it (choose another output)"),
            (store.public_path, "is the public key; refusing to overwrite it (choose another output)"),
            (store.folder / pools.CUSTOMER_POOL_NAME,
             "is the randomness pool; refusing to overwrite it (choose another output)")]


def guard_output(output, inputs: Sequence = (), protected: Sequence[tuple] = ()) -> None:
    """Refuse an output that is, or links to, one of the run's inputs or a protected file (key
    files, model artifacts, training data): inputs are never modified, a key pair is only ever
    replaced by ``keygen --force``, a model only by ``train``."""
    if output is None or str(output) == files.STDIO or not os.path.exists(output):
        return
    checks = [(p, "is also the input; choose another output") for p in inputs if p and str(p) != files.STDIO]
    for path, message in [*checks, *protected]:
        try:
            same = os.path.samefile(output, path)
        except OSError:
            continue
        if same:
            raise OutputError(message, str(output))


# ---------------------------------------------------------------------------------------------
# The stages
# ---------------------------------------------------------------------------------------------
def customer_model(model_dir) -> tuple[ModelSpec, object]:
    """The model's public files as the customer uses them: ``Model.json`` and ``col_tnf.pkl``,
    refused unless they come from the same training."""
    from . import artifacts

    spec = artifacts.load_spec(model_dir)
    col_tnf_path = Path(model_dir) / artifacts.COL_TNF
    col_tnf = artifacts.load_customer_transform(col_tnf_path)
    try:
        customer.check_transform(col_tnf, spec)
    except PpmlError as e:
        raise e.with_source(str(col_tnf_path))
    return spec, col_tnf


def _records(records, chunk: int):
    """(source name, chunks of (raw frame, ids)) of a CSV path or ``-``, or the sample laptop."""
    if records is None:
        return "the sample laptop", sample_records()
    source = files.display_name(records)
    return source, iter_record_chunks(records, source, chunk)


def features(records, output, *, spec: ModelSpec, col_tnf, protected: Sequence[tuple] = (),
             watch: Watch = Watch()) -> Outcome:
    """Raw records → their feature vectors as CSV (``id``, then one column per model feature, the
    shortest decimal of each float64): exactly what :func:`encrypt` encodes, bounds checked as
    it checks them, for a client that implements the rest of the protocol itself."""
    source, chunks = _records(records, 32 * CHUNK_BATCHES)  # any chunk size gives the same output
    guard_output(output, [records], protected)
    batches = count = 0
    with watch.step("features"), (files.StdoutSink() if output == files.STDIO else files.AtomicFile(output)) as sink:
        for frame, ids in with_source(chunks, source):
            try:
                x = customer.prepare_features(col_tnf, spec, frame, ids)
                spec.codec.encode_features(x, spec.lower, spec.upper, spec.features, ids)  # the bounds check
            except PpmlError as e:
                raise e.with_source(source)
            rows: list[list] = [["id", *spec.features]] if not count else []
            rows += ([i, *map(float, row)] for i, row in zip(ids, x))
            sink.write("".join(",".join(map(csv_field, row)) + "\n" for row in rows).encode())
            sink.flush()
            batches, count = batches + 1, count + len(ids)
            watch.advance(len(ids))
    return Outcome(count, batches, output)


def encrypt(records, output, *, spec: ModelSpec, col_tnf, keys: CustomerKeys, workers: int = 1,
            scheduler=None, protected: Sequence[tuple] = (), watch: Watch = Watch()) -> Outcome:
    """Raw records (a CSV path, ``-``, or None for the sample laptop) → an encrypted-features
    document at ``output`` (a path or ``-``)."""
    m = spec.codec.slots_for(keys.bits)
    chunk = m * CHUNK_BATCHES
    source, chunks = _records(records, chunk)
    with watch.step("read"):
        prepared = with_source(customer.prepare_chunks(chunks, col_tnf, spec), source)
        first = next(prepared)  # the first chunk is read and checked before any key is created
    guard_output(output, [records], [*key_files(keys.store), *protected])
    expected = -(-len(first[1]) // m) if len(first[1]) < chunk else customer.expected_batches(records, m)
    with watch.step("keys"):
        public, private = keys.pair()
        pool = pools.customer_pool(keys.store.folder, public)  # precomputed randomness, if any
    header = customer.features_header(spec, public)
    with watch.step("encrypt"), DocumentWriter(output, header.header()) as writer:
        for batch in customer.encrypt_stream(itertools.chain([first], prepared), spec, public, private,
                                             workers, expected, scheduler, pool if pool.exists() else None):
            writer.write(header.batch_dict(batch), len(batch.ids))
            watch.advance(len(batch.ids))
    return Outcome(writer.records, writer.batches, output)


def score(encrypted, output, *, params: ModelParameters, workers: int = 1, scheduler=None,
          allow_weak: bool = False, max_key_bits: int = server.DEFAULT_MAX_KEY_BITS, limits: Limits = Limits(),
          protected: Sequence[tuple] = (), watch: Watch = Watch(), pools_dir=None) -> Outcome:
    """An encrypted-features document → the encrypted-predictions document, with the public
    key the document carries and the company's weights (and the ``r^n`` pool for that key in
    ``pools_dir``, if there is one), through the session the service uses too."""
    source = files.display_name(encrypted)
    with watch.step("read"):
        try:
            reader = DocumentReader(encrypted, server.features_limits(params, max_key_bits, limits.batch_bytes))
            session = server.ScoreSession(reader, params, allow_weak=allow_weak, max_key_bits=max_key_bits)
            server.check_key(session.doc.public_key)  # nothing is computed with an unproven modulus
        except PpmlError as e:
            raise e.with_source(source)
        guard_output(output, [encrypted], protected)
        parsed = with_source(session.parsed(), source)
        peek = list(itertools.islice(parsed, workers))  # fewer batches than workers: fewer processes
    with watch.step("score"), DocumentWriter(output, session.answer.header()) as writer:
        pool = pools.server_pool(pools_dir, session.doc.public_key) if pools_dir is not None else None
        for batch in server.score_stream(session.doc, itertools.chain(peek, parsed), params, max(1, len(peek)),
                                         scheduler, pool if pool is not None and pool.exists() else None):
            writer.write(session.answer.batch_dict(batch), len(batch.ids))
            watch.advance(len(batch.ids))
    return Outcome(writer.records, writer.batches, output)


def decrypt(answer, output, *, spec: ModelSpec, keys: CustomerKeys, request=None, workers: int = 1,
            limits: Limits = Limits(), protected: Sequence[tuple] = (), watch: Watch = Watch()) -> Outcome:
    """An encrypted-predictions document → predictions, decoded with the customer's own model
    description ``spec``: a CSV (``id`` and ``spec.columns``) at ``output`` (a path or ``-``), or,
    with ``output`` None, one line per record on stdout (``0: Price = 62,996.92``, see
    :func:`prediction_text`). Given the features document it answers (``request``, a path), the
    answer must hold exactly its ids, batch by batch, and its record count
    (:class:`ppml.customer.SentRequest`). Nothing is printed or written until the whole answer
    has been checked."""
    source = files.display_name(answer)
    sent = (customer.SentRequest(request, features_limits(spec.features, batch_bytes=limits.batch_bytes))
            if request is not None else None)
    with watch.step("read"):
        # Waits for the first line of a pipe. The company writes the answer: every header field
        # has its cap, as the company's own reader gives the customer's documents.
        reader = DocumentReader(answer, predictions_limits(spec.outputs, limits.batch_bytes))
    with watch.step("keys"):
        private = keys.private()
    try:
        doc = EncryptedPredictions.parse_header(reader.header, private.public)
        customer.check_answer(doc, spec, private, sent)
    except PpmlError as e:
        for opened in (reader, sent):
            if opened is not None:
                opened.close()
        raise e.with_source(source)
    guard_output(output, [answer, request], [*key_files(keys.store), *protected])
    reader.batch_limit = limits.batch_bytes or batch_bytes_for(private.public.bits, len(doc.outputs), doc.slots)
    parsed = with_source((doc.parse_batch(b, i, private.public) for i, b in enumerate(reader.batches())), source)
    counts = [0, 0]

    def pairs():
        for batch in with_source(customer.decrypt_stream(doc, parsed, private, spec, workers, sent), source):
            counts[0] += 1
            counts[1] += len(batch)
            watch.advance(len(batch))
            yield from batch
        try:
            if sent is not None:
                sent.check_records(reader.declared_records)
            check_count(reader.declared_records, *counts)
        except PpmlError as e:
            raise e.with_source(source)

    with watch.step("decrypt"):
        if output is None:
            lines = "".join(f"{rid}: {prediction_text(spec, prediction)}\n" for rid, prediction in pairs())
            sink = files.StdoutSink()
            sink.write(lines.encode("utf-8"))
            sink.flush()
        else:
            with (files.HeldStdout() if output == files.STDIO else files.AtomicFile(output)) as sink:
                sink.write((",".join(map(csv_field, ["id", *spec.columns])) + "\n").encode())
                for rid, prediction in pairs():
                    sink.write((",".join([csv_field(rid), *map(csv_field, prediction)]) + "\n").encode())
    return Outcome(counts[1], counts[0], output)
