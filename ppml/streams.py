"""Stage documents as streams: written batch by batch, read batch by batch, in bounded memory.

Two layouts of the same document:

* **JSON** — one object, ``{…header…, "batches": [...], "records": N}``; written
  incrementally. Read incrementally too (an event parser, ijson): the header fields must come
  before ``"batches"``, as every writer here puts them.
* **JSON Lines** — line 1 is the header with ``"layout": "jsonl"``, then one batch object per
  line, then ``{"end": true, "records": N, "batches": B}``. A stream without its end line is
  truncated and is refused. Used for stdout and for files named ``*.jsonl``.

One reader (:class:`DocumentReader`) reads both layouts, for every path: the score and
decrypt stages, the portal and the service (which feeds it its request body). Its rules are
the protocol's: no duplicate keys; in the JSON layout only ``records`` may follow
``batches``; the JSON Lines end line is exactly ``{"end": true, "records": N, "batches": B}``
with ``B`` the batches the stream held. Whatever the input, a reader holds at most one header
field or one batch in memory, each under a byte and nesting cap (``Limits``, and
:attr:`DocumentReader.batch_limit`, sized by the stage from the key and model): ``/dev/zero``,
a 200 MB line, nested empty arrays or a document of any length fail fast or stream, never grow.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Generator, Iterator, Mapping
from typing import Any

from . import files
from .errors import DocumentError
from .validation import shown

JSONL = "jsonl"
MIB = 2 ** 20


@dataclass(frozen=True)
class Field:
    """What one header field may hold: at most ``bytes`` bytes of JSON text, containers nested
    at most ``depth`` deep (0: a number, string, true, false or null only)."""

    bytes: int
    depth: int


@dataclass(frozen=True)
class Limits:
    """What one document may make a reader hold at once.

    ``fields``, when given, lists the header fields the document may have, each with its own
    cap (any other field is refused); without it any field is read, the header as a whole
    within ``header_bytes``. ``batch_bytes``, when given, bounds each batch and replaces the
    size a stage derives from the key and model (see :func:`batch_bytes_for`)."""

    header_bytes: int = 16 * MIB
    batch_bytes: int | None = None
    fields: Mapping[str, Field] | None = None
    #: The document's format, checked as soon as its ``format`` field is read (with ``fields``).
    format: str | None = None


#: How deep a batch nests: an object of lists of numbers and strings.
BATCH_DEPTH = 2
#: How deep a header field of a document read without ``Limits.fields`` may nest.
ANY_FIELD_DEPTH = 3
#: The one field that may follow ``"batches"`` in the JSON layout (our writers put it there).
RECORDS_FIELD = Field(64, 0)
#: The JSON Lines end line: exactly these keys.
END_KEYS = frozenset({"end", "records", "batches"})


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
    """The header at once, then the raw batch objects one at a time, from a path, ``-`` or a
    binary file object (the service passes its request body as one).

    One parser reads both layouts: the JSON object, or the JSON Lines header, batches and end
    line as consecutive JSON values; the first value is the header in either. Every header
    field, every batch and the fields after the batches are read under a byte budget and a
    nesting cap (:class:`Limits`, :attr:`batch_limit`), so what the reader builds in memory is
    bounded by what it is allowed to parse; anything past a cap is refused as soon as it is met.

    Set :attr:`batch_limit` (bytes) once the header tells how large a batch can be. After
    :meth:`batches` is exhausted, :attr:`declared_records` holds the record count the document
    declares (the caller compares it with what it parsed).
    """

    def __init__(self, path, limits: Limits = Limits(), name: str | None = None):
        self.path = path  # a path, ``-``, or a binary stream the caller owns (read, not closed)
        self.name = name or (files.display_name(path) if isinstance(path, (str, Path)) else "<stream>")
        self.limits = limits
        self.batch_limit = limits.batch_bytes or limits.header_bytes
        self.declared_records = None
        self.jsonl = False
        self._stream = self._open()
        try:
            self._budget = _Budget(self._stream, limits.header_bytes, self.name)
            self._events = _events(self._budget, self.name)
            self.header = self._read_header()
        except BaseException:
            self._close()
            raise

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

    def _next(self, what: str) -> tuple[str, Any]:
        """The next parse event ``(event, value)``; at the end of the input, a truncation error."""
        for _, event, value in self._events:
            return event, value
        raise DocumentError(f"the document ends before {what} (truncated)", self.name)

    def _read_header(self) -> dict:
        """The first value's fields up to ``"batches"`` (JSON) or all of them (JSON Lines)."""
        first = next(self._events, None)
        if first is None:
            raise DocumentError("is empty, expected a JSON document", self.name)
        if first[1] != "start_map":  # not a document: the caller's check says what was expected
            return [] if first[1] == "start_array" else first[2]
        fields = self.limits.fields
        header: dict = {}
        while True:
            event, key = self._next("the end of its header")
            if event == "end_map":
                break
            if key == "batches":
                if "layout" in header:
                    raise DocumentError("field 'layout' belongs to the JSON Lines header only", self.name)
                return header
            if key in header:
                raise DocumentError(f"field {key!r} appears twice", self.name)
            if fields is not None:
                if key not in fields:
                    if "format" not in header:
                        raise DocumentError(f"the first field must be 'format', not {shown(key)}", self.name)
                    raise DocumentError(f"unknown field {shown(key)} (the fields are {', '.join(sorted(fields))})",
                                        self.name)
                self._budget.reset(fields[key].bytes, f"field {key!r}")
            depth = fields[key].depth if fields is not None else ANY_FIELD_DEPTH
            header[key] = self._value(depth, f"field {key!r}")
            if key == "format" and fields is not None and header[key] != self.limits.format:
                raise DocumentError(f"format is {shown(header[key])}, expected {self.limits.format!r}", self.name)
        if header.get("layout") != JSONL:
            raise DocumentError("field 'batches' is missing", self.name)
        self.jsonl = True
        return header

    def _value(self, depth: int, what: str):
        return _build(self._events, *self._next(what), self.name, depth, what)

    # -- JSON layout ----------------------------------------------------------------------
    def _json_batches(self) -> Iterator:
        event, _ = self._next("its batches")
        if event != "start_array":
            raise DocumentError("field 'batches' must be a list of batches", self.name)
        while True:
            self._budget.reset(self.batch_limit, "a batch")
            event, value = self._next("the end of its batches")
            if event == "end_array":
                break
            yield _build(self._events, event, value, self.name, BATCH_DEPTH, "a batch")
        while True:  # after the batches: only "records", once
            self._budget.reset(RECORDS_FIELD.bytes, "the fields after the batches")
            event, key = self._next("its end")
            if event == "end_map":
                break
            if key == "records" and (self.declared_records is not None or "records" in self.header):
                raise DocumentError("field 'records' appears twice", self.name)
            if key != "records":
                raise DocumentError(f"field {shown(key)} after 'batches' (only 'records' may follow the batches)",
                                    self.name)
            self.declared_records = self._value(RECORDS_FIELD.depth, "field 'records'")
        if "records" in self.header:  # before the batches, as a whole document may put it
            self.declared_records = self.header["records"]
        for _ in self._events:
            raise DocumentError("data after the end of the document", self.name)

    # -- JSON Lines -----------------------------------------------------------------------
    def _jsonl_batches(self) -> Iterator:
        if "records" in self.header:
            raise DocumentError("field 'records' belongs to the end line of a JSON Lines document", self.name)
        count = 0
        while True:
            self._budget.reset(self.batch_limit, "a batch line")
            first = next(self._events, None)
            if first is None:
                raise DocumentError("the stream ended before its end line (truncated document)", self.name)
            item = _build(self._events, first[1], first[2], self.name, BATCH_DEPTH, f"line {count + 2}")
            if isinstance(item, dict) and "end" in item:
                break
            count += 1
            yield item
        if set(item) != END_KEYS or item["end"] is not True:
            raise DocumentError('the end line must be {"end": true, "records": N, "batches": B} and nothing else',
                                self.name)
        if item["batches"] != count or isinstance(item["batches"], bool):
            raise DocumentError(f"the end line says {shown(item['batches'])} batches but the stream holds {count}",
                                self.name)
        self.declared_records = item["records"]
        for _ in self._events:
            raise DocumentError("data after the end line", self.name)

    def batches(self) -> Generator:
        try:
            yield from (self._jsonl_batches() if self.jsonl else self._json_batches())
        finally:
            self._close()


class _Budget:
    """A byte stream for the event parser that refuses to deliver more than ``limit`` bytes
    between two :meth:`reset` calls (so one header field or one batch is all a reader ever
    holds). The parser reads ahead by at most :data:`READ_SIZE` bytes, hence that slack."""

    def __init__(self, stream, limit: int, name: str):
        self.stream, self.name = stream, name
        self.limit, self.used, self.what = limit, 0, "the header"
        self.blank = True  # nothing but white space so far

    def reset(self, limit: int, what: str) -> None:
        self.limit, self.used, self.what = limit, 0, what

    def read(self, size: int = -1) -> bytes:
        size = READ_SIZE if size is None or size < 0 else min(size, READ_SIZE)
        data = self.stream.read(size)
        self.used += len(data)
        self.blank = self.blank and not data.strip()
        if self.used > self.limit + READ_SIZE:
            hint = " (raise --max-batch-mb if it is genuine)" if "batch" in self.what else ""
            raise DocumentError(f"{self.what} is longer than the {self.limit:,} bytes it can need{hint}", self.name)
        return data


#: Bytes the parser reads at a time.
READ_SIZE = 1 << 16


def _events(stream: _Budget, name: str):
    """ijson's parse events of consecutive JSON values, with its errors as one-line DocumentErrors."""
    import ijson

    try:
        # basic_parse, not parse: parse builds a dotted path per event, which for 64 KiB of
        # "[[],[[]," is 16,000 levels deep and costs hundreds of MB before any check can run.
        for event, value in ijson.basic_parse(stream, use_float=True, multiple_values=True, buf_size=READ_SIZE):
            yield None, event, value
    except DocumentError:
        raise
    except ijson.JSONError as e:
        message = (str(e).strip().splitlines() or ["malformed"])[0].strip("b'\"")
        if stream.blank:
            raise DocumentError("is empty, expected a JSON document", name) from None
        if "utf8" in message.lower():
            raise DocumentError("is not UTF-8 text", name) from None
        if "integer overflow" in message:
            raise DocumentError("invalid JSON: an integer does not fit in 64 bits", name) from None
        raise DocumentError(f"invalid JSON: {message}", name) from None
    except UnicodeDecodeError:  # invalid UTF-8, or an escaped lone surrogate ("\udcff")
        raise DocumentError("is not UTF-8 text", name) from None


def _build(events, event: str, value, name: str, depth: int, what: str):
    """The Python value whose first parse event is ``(event, value)``, built from ``events``,
    refused as soon as its containers nest deeper than ``depth``."""
    if event not in ("start_map", "start_array"):
        return value
    if depth < 1:
        raise DocumentError(f"JSON nested too deeply ({what} must be a number or a string)", name)
    root: dict | list = {} if event == "start_map" else []
    stack: list = [root]
    key = None
    for _, event, value in events:
        top = stack[-1]
        if event == "map_key":
            if isinstance(top, dict) and value in top:
                raise DocumentError(f"{what}: key {shown(value)} appears twice", name)
            key = value
            continue
        if event in ("end_map", "end_array"):
            stack.pop()
            if not stack:
                return root
            continue
        if event in ("start_map", "start_array"):
            if len(stack) >= depth:
                levels = f"{depth} level{'s' * (depth > 1)}"
                raise DocumentError(f"JSON nested too deeply ({what} nests at most {levels})", name)
            value = {} if event == "start_map" else []
        if isinstance(top, dict):
            top[key] = value
        else:
            top.append(value)
        if event in ("start_map", "start_array"):
            stack.append(value)
    raise DocumentError("the document ends in the middle of a value (truncated)", name)
