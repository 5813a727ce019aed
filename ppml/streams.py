"""Stage documents as streams: written batch by batch, read batch by batch, in bounded memory.

Two layouts of the same document:

* **JSON** — one object, ``{…header…, "batches": [...], "records": N}``; written
  incrementally. Read incrementally too (an event parser, ijson): the header fields must come
  before ``"batches"``, as every writer here puts them.
* **JSON Lines** — line 1 is the header with ``"layout": "jsonl"``, then one batch object per
  line, then ``{"end": true, "records": N, "batches": B}``. A stream without its end line is
  truncated and is refused. Used for stdout and for files named ``*.jsonl``.

Readers detect the layout themselves, so either can be fed to any stage. Whatever the input,
a reader holds at most one header (``Limits.header_bytes``) or one batch
(:attr:`DocumentReader.batch_limit`, sized by the stage from the key and model) in memory:
``/dev/zero``, a 200 MB line or a document of any length fails fast or streams, never grows.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Generator, Iterator

from . import files
from .errors import DocumentError

JSONL = "jsonl"
MIB = 2 ** 20
#: How deep any JSON value may nest (ours nest three levels).
MAX_DEPTH = 64


@dataclass(frozen=True)
class Limits:
    """What one document may make a reader hold at once.

    ``header_bytes`` bounds the header (the first line, or the fields before ``"batches"``);
    ``batch_bytes``, when given, bounds each batch and replaces the size a stage derives from
    the key and model (see :func:`batch_bytes_for`)."""

    header_bytes: int = 16 * MIB
    batch_bytes: int | None = None


def batch_bytes_for(key_bits: int, ciphertexts: int, slots: int) -> int:
    """A generous bound on one batch of a document: ``ciphertexts`` hexadecimal ciphertexts
    below ``n²`` and ``slots`` ids of up to 1 KiB each, four times over."""
    return 4 * (ciphertexts * ((2 * key_bits + 3) // 4 + 4) + slots * 1024 + 4096)


def wants_jsonl(path) -> bool:
    return str(path) == files.STDIO or str(path).endswith(".jsonl")


def jsonl_header(first: bytes, name: str, lineno: int | None = None) -> dict | None:
    """The header, if ``first`` (a document's first non-blank line, newline included) is a JSON
    Lines header; None for the JSON layout. A JSON Lines header is one short line that says so;
    anything else is the JSON layout, whose first line may be the whole document (so it is not
    parsed here, only streamed)."""
    if first.endswith(b"\n") and b'"layout"' in first and b'"batches"' not in first:
        head = files.parse_json(first, name, lineno)
        if isinstance(head, dict) and head.get("layout") == JSONL:
            return head
    return None


def header_text(header: dict, jsonl: bool) -> bytes:
    """The start of a document in a layout: the JSON Lines header line, or the JSON object up
    to its ``"batches":[`` (a declared ``records`` goes to the end instead)."""
    head = {k: v for k, v in header.items() if k != "records"}
    if jsonl:
        return files.dump_json({**head, "layout": JSONL}).encode()
    text = json.dumps(head, separators=(",", ":"), allow_nan=False)
    return (text[:-1] + (',"batches":[' if head else '"batches":[')).encode()


def batch_text(batch: dict, index: int, jsonl: bool) -> bytes:
    """Batch number ``index`` (from 0) of a document in a layout."""
    text = json.dumps(batch, separators=(",", ":"), allow_nan=False)
    if jsonl:
        return (text + "\n").encode()
    return (("," if index else "") + text).encode()


def end_text(records: int, batches: int, jsonl: bool) -> bytes:
    """The end of a document: the JSON Lines end line, or the JSON object's closing part."""
    if jsonl:
        return files.dump_json({"end": True, "records": records, "batches": batches}).encode()
    return f'],"records":{records}}}\n'.encode()


class DocumentWriter(files.Output):
    """Write ``header`` then batches, and the end on :meth:`commit`; a file appears atomically
    then, stdout is flushed batch by batch. Use as a context manager: an exception discards the
    partial file and leaves any existing output untouched. The service streams the same bytes
    with :func:`header_text`, :func:`batch_text` and :func:`end_text`."""

    def __init__(self, path, header: dict, jsonl: bool | None = None):
        self.path = path
        self.jsonl = wants_jsonl(path) if jsonl is None else jsonl
        self.records = self.batches = 0
        self._out = files.StdoutSink() if str(path) == files.STDIO else files.AtomicFile(path)
        self._out.write(header_text(header, self.jsonl))

    def write(self, batch: dict, records: int) -> None:
        self._out.write(batch_text(batch, self.batches, self.jsonl))
        self.batches += 1
        self.records += records
        if self.jsonl:
            self._out.flush()

    def commit(self) -> None:
        self._out.write(end_text(self.records, self.batches, self.jsonl))
        self._out.commit()

    def abort(self) -> None:
        self._out.abort()


class DocumentReader:
    """The header at once, then the raw batch objects one at a time.

    Set :attr:`batch_limit` (bytes) once the header tells how large a batch can be. After
    :meth:`batches` is exhausted, :attr:`declared_records` holds the record count the document
    declares (the caller compares it with what it parsed).
    """

    def __init__(self, path, limits: Limits = Limits(), name: str | None = None):
        self.path = path  # a path, ``-``, or a binary stream the caller owns (read, not closed)
        self.name = name or files.display_name(path)
        self.limits = limits
        self.batch_limit = limits.batch_bytes or limits.header_bytes
        self.declared_records = None
        self._stream = self._open()
        try:
            self._start()
        except BaseException:
            self._close()
            raise

    def _start(self) -> None:
        self._lineno = 1
        first = self._stream.readline(self.limits.header_bytes + 1)
        while first and not first.strip() and len(first) <= self.limits.header_bytes:  # blank lines
            self._lineno += 1
            first = self._stream.readline(self.limits.header_bytes + 1)
        if not first.strip():
            raise DocumentError("is empty, expected a JSON document", self.name)
        head = jsonl_header(first, self.name, self._lineno if self._lineno > 1 else None)
        if head is not None:
            self.jsonl, self.header = True, head
            return
        self.jsonl = False
        self._budget = _Budget(self._stream, first, self.limits.header_bytes, self.name)
        self._events = _events(self._budget, self.name)
        self.header = self._json_header()

    def _open(self):
        if hasattr(self.path, "read"):
            return self.path
        if str(self.path) == files.STDIO:
            return sys.stdin.buffer
        try:
            return open(Path(self.path), "rb")
        except FileNotFoundError:
            raise DocumentError("file not found", self.name) from None
        except IsADirectoryError:
            raise DocumentError("is a folder, expected a file", self.name) from None
        except OSError as e:
            raise DocumentError(f"cannot read: {e.strerror}", self.name) from None

    def close(self) -> None:
        """Stop reading before the end (a refused header, a mismatch): the file is closed."""
        self._close()

    def _close(self) -> None:
        if self._stream is not sys.stdin.buffer and self._stream is not self.path:
            self._stream.close()

    # -- JSON layout ----------------------------------------------------------------------
    def _json_header(self):
        """Top-level fields up to ``"batches"`` (or the whole value, if it is not an object)."""
        _, event, value = next(self._events)
        if event != "start_map":
            return _build(self._events, event, value, self.name)
        header: dict = {}
        for _, event, key in self._events:
            if event == "end_map":
                self._after_batches = True  # no batches at all
                return header
            if key == "batches":
                self._after_batches = False
                return header
            header[key] = self._next_value()
        raise AssertionError("unreachable: the parser ends every object")

    def _next_value(self):
        """The next whole value of the document (a field's, after its key)."""
        _, event, value = next(self._events)
        return _build(self._events, event, value, self.name)

    def _json_batches(self) -> Iterator:
        if self._after_batches:
            raise DocumentError("field 'batches' must be a list of batches", self.name)
        _, event, value = next(self._events)
        if event != "start_array":
            raise DocumentError("field 'batches' must be a list of batches", self.name)
        self._budget.reset(self.batch_limit, "a batch")
        for _, event, value in self._events:
            if event == "end_array":
                break
            yield _build(self._events, event, value, self.name)
            self._budget.reset(self.batch_limit, "a batch")
        self._budget.reset(self.limits.header_bytes, "the fields after the batches")
        for _, event, value in self._events:  # fields after the batches: only "records" is read
            if event == "end_map":
                break
            field = self._next_value()
            if value == "records":
                self.declared_records = field
        for _ in self._events:  # the parser refuses anything but white space after the value
            raise DocumentError("data after the end of the document", self.name)

    # -- JSON Lines -----------------------------------------------------------------------
    def _jsonl_batches(self) -> Iterator:
        lineno = self._lineno
        while True:
            line = self._stream.readline(self.batch_limit + 1)
            if not line:
                break
            lineno += 1
            if len(line) > self.batch_limit and not line.endswith(b"\n"):
                raise DocumentError(f"line {lineno} is longer than the {self.batch_limit:,} bytes a batch of this "
                                    "key and model can need (raise --max-batch-mb if it is genuine)", self.name)
            if not line.strip():
                continue
            item = files.parse_json(line, self.name, lineno)
            if isinstance(item, dict) and item.get("end") is True:
                self.declared_records = item.get("records")
                while chunk := self._stream.read(1 << 16):
                    if chunk.strip():
                        raise DocumentError(f"data after the end line (line {lineno})", self.name)
                return
            yield item
        raise DocumentError("the stream ended before its end line (truncated document)", self.name)

    def batches(self) -> Generator:
        try:
            yield from (self._jsonl_batches() if self.jsonl else self._json_batches())
        finally:
            self._close()


class _Budget:
    """A byte stream for the event parser that refuses to deliver more than ``limit`` bytes
    between two :meth:`reset` calls (so one header or one batch is all a reader ever holds)."""

    def __init__(self, stream, prefix: bytes, limit: int, name: str):
        self.stream, self.prefix, self.name = stream, prefix, name
        self.limit, self.used, self.what = limit, 0, "the header"

    def reset(self, limit: int, what: str) -> None:
        self.limit, self.used, self.what = limit, 0, what

    def read(self, size: int = -1) -> bytes:
        size = 1 << 16 if size is None or size < 0 else size
        if self.prefix:
            data, self.prefix = self.prefix[:size], self.prefix[size:]
        else:
            data = self.stream.read(size)
        self.used += len(data)
        if self.used > self.limit + (1 << 16):  # one read of slack: the parser reads ahead
            raise DocumentError(f"{self.what} is longer than the {self.limit:,} bytes it can need "
                                "(raise --max-batch-mb if it is genuine)", self.name)
        return data


def _events(stream: _Budget, name: str):
    """ijson's parse events, with its errors as one-line DocumentErrors."""
    import ijson

    try:
        yield from ijson.parse(stream, use_float=True)
    except DocumentError:
        raise
    except ijson.JSONError as e:
        message = (str(e).strip().splitlines() or ["malformed"])[0].strip("b'\"")
        if "utf8" in message.lower():
            raise DocumentError("is not UTF-8 text", name) from None
        if "integer overflow" in message:
            raise DocumentError("invalid JSON: an integer does not fit in 64 bits", name) from None
        raise DocumentError(f"invalid JSON: {message}", name) from None
    except UnicodeDecodeError:  # invalid UTF-8, or an escaped lone surrogate ("\udcff")
        raise DocumentError("is not UTF-8 text", name) from None


def _build(events, event: str, value, name: str):
    """The Python value whose first parse event is ``(event, value)``, built from ``events``."""
    if event not in ("start_map", "start_array"):
        return value
    root: dict | list = {} if event == "start_map" else []
    stack: list = [root]
    key = None
    for _, event, value in events:
        top = stack[-1]
        if event == "map_key":
            key = value
            continue
        if event in ("end_map", "end_array"):
            stack.pop()
            if not stack:
                return root
            continue
        if event in ("start_map", "start_array"):
            if len(stack) >= MAX_DEPTH:
                raise DocumentError("JSON nested too deeply", name)
            value = {} if event == "start_map" else []
        if isinstance(top, dict):
            top[key] = value
        else:
            top.append(value)
        if event in ("start_map", "start_array"):
            stack.append(value)
    raise DocumentError("invalid JSON: premature end of the document", name)
