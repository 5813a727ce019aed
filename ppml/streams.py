"""Stage documents as streams: written batch by batch, read batch by batch.

Two layouts of the same document (DESIGN §6):

* **JSON** — one object, ``{…header…, "batches": [...], "records": N}``; written
  incrementally, read whole. The default for files.
* **JSON Lines** — line 1 is the header with ``"layout": "jsonl"``, then one batch object per
  line, then ``{"end": true, "records": N, "batches": B}``. Read incrementally, so memory does
  not grow with the number of records; a stream without its end line is truncated and is
  refused. Used for stdout and for files named ``*.jsonl``.

Readers detect the layout themselves, so either can be fed to any stage.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator

from . import files
from .errors import DocumentError

JSONL = "jsonl"


def wants_jsonl(path) -> bool:
    return str(path) == files.STDIO or str(path).endswith(".jsonl")


class DocumentWriter:
    """Write ``header`` then batches; the output appears atomically on :meth:`close` (files) or
    is flushed batch by batch (stdout). Use as a context manager: an exception discards the
    partial file and leaves any existing output untouched."""

    def __init__(self, path, header: dict, jsonl: bool | None = None):
        self.path = path
        self.jsonl = wants_jsonl(path) if jsonl is None else jsonl
        self.records = self.batches = 0
        self._out = None if str(path) == files.STDIO else files.AtomicFile(path)
        head = {k: v for k, v in header.items() if k != "records"}
        if self.jsonl:
            self._emit(files.dump_json({**head, "layout": JSONL}))
        else:
            text = json.dumps(head, separators=(",", ":"), allow_nan=False)
            self._emit(text[:-1] + (',"batches":[' if head else '"batches":['))

    def _emit(self, text: str) -> None:
        data = text.encode("utf-8")
        if self._out is None:
            sys.stdout.buffer.write(data)
        else:
            self._out.write(data)

    def write(self, batch: dict, records: int) -> None:
        text = json.dumps(batch, separators=(",", ":"), allow_nan=False)
        if self.jsonl:
            self._emit(text + "\n")
        else:
            self._emit(("," if self.batches else "") + text)
        self.batches += 1
        self.records += records
        if self._out is None and self.jsonl:
            sys.stdout.buffer.flush()

    def close(self) -> None:
        if self.jsonl:
            self._emit(files.dump_json({"end": True, "records": self.records, "batches": self.batches}))
        else:
            self._emit(f'],"records":{self.records}}}\n')
        if self._out is None:
            sys.stdout.buffer.flush()
        else:
            self._out.commit()

    def abort(self) -> None:
        if self._out is not None:
            self._out.abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


class DocumentReader:
    """The header at once, then the raw batch objects one at a time.

    After :meth:`batches` is exhausted, :attr:`declared_records` holds the record count the
    document declares (the caller compares it with what it parsed).
    """

    def __init__(self, path):
        self.path = path
        self.name = files.display_name(path)
        self.declared_records = None
        self._stream = self._open()
        skipped, self._lineno = b"", 1
        first = self._stream.readline()
        while first and not first.strip():  # blank lines before the document
            skipped += first
            self._lineno += 1
            first = self._stream.readline()
        if not first.strip():
            self._close()
            raise DocumentError("is empty, expected a JSON document", self.name)
        head = _try_json(first)
        if isinstance(head, dict) and head.get("layout") == JSONL and "batches" not in head:
            self.jsonl = True
            self.header = head
            self._whole = None
        else:
            self.jsonl = False
            try:
                rest = skipped + first + self._stream.read()
            finally:
                self._close()
            self._whole = _parse(rest, self.name)
            if not isinstance(self._whole, dict):
                self.header = self._whole
            else:
                self.header = {k: v for k, v in self._whole.items() if k != "batches"}

    def _open(self):
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

    def _close(self) -> None:
        if self._stream is not sys.stdin.buffer:
            self._stream.close()

    def batches(self) -> Iterator:
        if not self.jsonl:
            raw = self._whole.get("batches") if isinstance(self._whole, dict) else None
            if not isinstance(raw, list):
                raise DocumentError("field 'batches' must be a list of batches", self.name)
            self.declared_records = self._whole.get("records")
            yield from raw
            return
        lineno = self._lineno
        try:
            for line in self._stream:
                lineno += 1
                if not line.strip():
                    continue
                item = _parse(line, self.name, lineno)
                if isinstance(item, dict) and item.get("end") is True:
                    self.declared_records = item.get("records")
                    while chunk := self._stream.read(1 << 16):
                        if chunk.strip():
                            raise DocumentError(f"data after the end line (line {lineno})", self.name)
                    return
                yield item
        finally:
            self._close()
        raise DocumentError("the stream ended before its end line (truncated document)", self.name)


def _try_json(line: bytes):
    try:
        return files.parse_json(line, "")
    except DocumentError:
        return None


def _parse(data: bytes, name: str, lineno: int | None = None):
    return files.parse_json(data, name, lineno)
