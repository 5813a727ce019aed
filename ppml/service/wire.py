"""Documents on the wire: a request body read incrementally (the answer is written with
:func:`ppml.streams.header_text`, :func:`~ppml.streams.batch_text` and
:func:`~ppml.streams.end_text`, the bytes a file would hold).

A features document may arrive in either layout of :mod:`ppml.streams` (JSON, or JSON Lines
with a header line, one batch per line and an end line). The reader does not trust the
sender: it holds at most one JSON value (a header field or one batch) at a time, refuses a
value over :data:`MAX_VALUE_BYTES`, nesting deeper than :data:`MAX_DEPTH` and a body over the
server's limit, and waits a bounded time for each chunk. So a huge, slow, deeply nested or
abandoned body costs bounded memory and time.

In the JSON layout the fields other than ``batches`` must come before it (``records`` may
follow it), as every writer of this toolkit emits them: the header is needed before the first
batch can be checked.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from .. import files
from ..errors import DocumentError
from ..streams import JSONL

#: Largest single JSON value (a header field, one batch, one JSON Lines line).
MAX_VALUE_BYTES = 16 << 20
#: Deepest nesting of arrays and objects accepted (the documents need 3).
MAX_DEPTH = 32

_WS = b" \t\r\n"
_STRUCT = re.compile(rb'[{}\[\]"]')
_STRING_END = re.compile(rb'["\\]')
_SCALAR_END = re.compile(rb"[,}\]\s]")


class BodyTooLarge(DocumentError):
    """The body passed the server's size limit (HTTP 413)."""


class BodyTimeout(DocumentError):
    """The client sent nothing for too long, or took too long overall (HTTP 408)."""


class BodyReader:
    """Header first, then raw batch objects one at a time, from an async stream of chunks.

    After :meth:`batches` is exhausted, :attr:`declared_records` holds the document's
    ``records`` field; :attr:`jsonl` tells the layout once :meth:`header` has returned.
    """

    def __init__(self, chunks: AsyncIterator[bytes], max_bytes: int, idle_timeout: float = 30.0,
                 deadline: float | None = None, name: str = "request body"):
        self._chunks = chunks.__aiter__()
        self.max_bytes, self.idle_timeout, self.deadline, self.name = max_bytes, idle_timeout, deadline, name
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self.bytes_in = 0
        self.jsonl: bool | None = None
        self.declared_records = None
        self._header: dict = {}

    # -- low level ------------------------------------------------------------------------------
    async def _more(self) -> bool:
        """Read one more chunk; False at the end of the body."""
        if self._eof:
            return False
        loop = asyncio.get_running_loop()
        timeout = self.idle_timeout
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - loop.time())
            if timeout <= 0:
                raise BodyTimeout("the upload took too long", self.name)
        try:
            chunk = await asyncio.wait_for(self._chunks.__anext__(), timeout)
        except StopAsyncIteration:
            self._eof = True
            return False
        except asyncio.TimeoutError:
            raise BodyTimeout(f"no data for {timeout:.0f} s; upload abandoned", self.name) from None
        self.bytes_in += len(chunk)
        if self.bytes_in > self.max_bytes:
            raise BodyTooLarge(f"is larger than the server's limit of {self.max_bytes:,} bytes", self.name)
        self._buf += chunk
        return True

    def _consume(self, end: int) -> None:
        """Move past a value; drop what has been consumed once it is large (only here, between
        values, so that the indices of a value being scanned stay valid)."""
        self._pos = end
        if end > 1 << 20:
            del self._buf[:end]
            self._pos = 0

    async def _skip_ws(self) -> int | None:
        """The next non-whitespace byte (not consumed), or None at the end of the body."""
        while True:
            buf = self._buf
            while self._pos < len(buf) and buf[self._pos] in _WS:
                self._pos += 1
            if self._pos < len(buf):
                return buf[self._pos]
            if not await self._more():
                return None

    async def _expect(self, chars: bytes, what: str) -> int:
        c = await self._skip_ws()
        if c is None:
            raise DocumentError("the body ended in the middle of the document (truncated)", self.name)
        if c not in chars:
            raise DocumentError(f"invalid JSON: expected {what} at byte {self.bytes_in - len(self._buf) + self._pos}",
                                self.name)
        self._pos += 1
        return c

    async def _value(self):
        """The next JSON value, parsed; the reader never holds more than one of them."""
        start = self._pos
        i = start
        depth = 0
        first = self._buf[start]
        if first not in b'{["':
            while True:
                m = _SCALAR_END.search(self._buf, i)
                if m:
                    end = m.start()
                    break
                i = len(self._buf)
                self._check_size(start, i)
                if not await self._more():
                    end = len(self._buf)
                    break
            return self._parse(start, end)
        while True:
            m = _STRUCT.search(self._buf, i)
            if m is None:
                i = len(self._buf)
                self._check_size(start, i)
                if not await self._more():
                    raise DocumentError("the body ended in the middle of the document (truncated)", self.name)
                continue
            c = m.group()
            i = m.end()
            if c == b'"':
                i = await self._string_end(start, i)
                if depth == 0:
                    return self._parse(start, i)
            elif c in b"{[":
                depth += 1
                if depth > MAX_DEPTH:
                    raise DocumentError(f"JSON nested too deeply (more than {MAX_DEPTH} levels)", self.name)
            else:
                depth -= 1
                if depth == 0:
                    return self._parse(start, i)

    async def _string_end(self, start: int, i: int) -> int:
        """Index just after the closing quote of a string whose body starts at ``i``."""
        while True:
            m = _STRING_END.search(self._buf, i)
            if m is None or m.end() >= len(self._buf) and m.group() == b"\\":
                i = len(self._buf) if m is None else m.start()
                self._check_size(start, i)
                if not await self._more():
                    raise DocumentError("the body ended in the middle of the document (truncated)", self.name)
                continue
            if m.group() == b"\\":
                i = m.end() + 1
                continue
            return m.end()

    def _check_size(self, start: int, i: int) -> None:
        if i - start > MAX_VALUE_BYTES:
            raise BodyTooLarge(f"a single JSON value is larger than {MAX_VALUE_BYTES:,} bytes", self.name)

    def _parse(self, start: int, end: int):
        value = files.parse_json(bytes(self._buf[start:end]), self.name)
        self._consume(end)
        return value

    # -- documents ------------------------------------------------------------------------------
    async def header(self) -> dict:
        """The document's fields before its batches (the JSON Lines header line)."""
        c = await self._skip_ws()
        if c is None:
            raise DocumentError("is empty, expected a JSON document", self.name)
        await self._expect(b"{", "a JSON object")
        if await self._skip_ws() == ord("}"):
            self._pos += 1
        else:
            while True:
                key = await self._key()
                if key == "batches":
                    self.jsonl = False
                    return self._header
                if key in self._header:
                    raise DocumentError(f"field {key!r} appears twice", self.name)
                self._header[key] = await self._value()
                if await self._expect(b",}", "',' or '}'") == ord("}"):
                    break
        if self._header.get("layout") != JSONL:
            raise DocumentError("field 'batches' is missing", self.name)
        self.jsonl = True
        return self._header

    async def _key(self) -> str:
        """A field name and its colon; the value's first byte is then available."""
        c = await self._skip_ws()
        if c != ord('"'):
            await self._expect(b'"', "a field name")
        key = await self._value()
        await self._expect(b":", "':'")
        if await self._skip_ws() is None:
            raise DocumentError("the body ended in the middle of the document (truncated)", self.name)
        return key

    async def batches(self) -> AsyncIterator:
        if self.jsonl:
            async for item in self._lines():
                yield item
            return
        await self._expect(b"[", "'[' (field 'batches' must be a list of batches)")
        if await self._skip_ws() == ord("]"):
            self._pos += 1
        else:
            while True:
                if await self._skip_ws() is None:
                    raise DocumentError("the body ended in the middle of the document (truncated)", self.name)
                yield await self._value()
                if await self._expect(b",]", "',' or ']' between batches") == ord("]"):
                    break
        # Fields after the batches ("records" in our writers' order).
        while True:
            if await self._expect(b",}", "',' or '}'") == ord("}"):
                break
            key = await self._key()
            value = await self._value()
            if key in self._header or key == "batches":
                raise DocumentError(f"field {key!r} appears twice", self.name)
            if key != "records":
                raise DocumentError(f"field {key!r} comes after 'batches'; in the JSON layout only "
                                    "'records' may follow the batches", self.name)
            self._header[key] = value
        self.declared_records = self._header.get("records")
        if await self._skip_ws() is not None:
            raise DocumentError("data after the end of the document", self.name)

    async def _lines(self) -> AsyncIterator:
        lineno = 1
        while True:
            start = self._pos
            while True:
                nl = self._buf.find(b"\n", start)
                if nl >= 0:
                    break
                start = len(self._buf)
                self._check_size(self._pos, start)
                if not await self._more():
                    nl = len(self._buf)
                    break
            line = bytes(self._buf[self._pos:nl])
            at_end = nl >= len(self._buf)
            self._consume(nl + 1)
            lineno += 1
            if not line.strip():
                if at_end:
                    raise DocumentError("the stream ended before its end line (truncated document)", self.name)
                continue
            if len(line) > MAX_VALUE_BYTES:
                raise BodyTooLarge(f"line {lineno} is longer than {MAX_VALUE_BYTES:,} bytes", self.name)
            item = files.parse_json(line, self.name, lineno)
            if isinstance(item, dict) and item.get("end") is True:
                self.declared_records = item.get("records")
                if await self._skip_ws() is not None:
                    raise DocumentError(f"data after the end line (line {lineno})", self.name)
                return
            yield item
