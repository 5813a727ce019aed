"""A request body as the binary file :class:`ppml.streams.DocumentReader` reads.

The service reads every document with the same reader as the score stage. That reader is
synchronous, so it runs in a thread of the service's own pool; each time it needs bytes, it
asks the event loop for the next chunk of the ASGI body and waits for it. So the body is
read only as fast as it is parsed (one chunk held at a time), and every wait is bounded: no
chunk for ``idle_timeout`` seconds, or an upload longer than its deadline, ends the request
(408); a body past ``max_bytes`` ends it too (413).
"""
from __future__ import annotations

import asyncio
import concurrent.futures

from ..errors import DocumentError


class BodyTooLarge(DocumentError):
    """The body passed the server's size limit (HTTP 413)."""


class BodyTimeout(DocumentError):
    """The client sent nothing for too long, or took too long overall (HTTP 408)."""


class ClientGone(Exception):
    """The client closed the connection."""


class RequestBody:
    """``read(size)`` for a reader thread, fed chunk by chunk from ``receive`` on ``loop``."""

    name = "request body"

    def __init__(self, receive, loop: asyncio.AbstractEventLoop, max_bytes: int, idle_timeout: float,
                 deadline: float):
        self.receive, self.loop = receive, loop
        self.max_bytes, self.idle_timeout, self.deadline = max_bytes, idle_timeout, deadline
        self.bytes_in = 0
        self.complete = False  # the client sent its last chunk
        self.closed = False  # the request is over: no more reads
        self._buf = b""
        self._pos = 0

    async def _chunk(self) -> bytes:
        timeout = min(self.idle_timeout, self.deadline - self.loop.time())
        if timeout <= 0:
            raise BodyTimeout("the upload took too long", self.name)
        try:
            message = await asyncio.wait_for(self.receive(), timeout)
        except asyncio.TimeoutError:
            raise BodyTimeout(f"no data for {timeout:.0f} s; upload abandoned", self.name) from None
        if message["type"] == "http.disconnect":
            raise ClientGone()
        body = message.get("body", b"")
        self.bytes_in += len(body)
        if self.bytes_in > self.max_bytes:
            raise BodyTooLarge(f"is larger than the server's limit of {self.max_bytes:,} bytes", self.name)
        if not message.get("more_body", False):
            self.complete = True
        return body

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (fewer only at the end); called from a reader thread only."""
        while self._pos >= len(self._buf):
            if self.complete or self.closed:
                return b""
            future = asyncio.run_coroutine_threadsafe(self._chunk(), self.loop)
            try:
                self._buf, self._pos = future.result(self.idle_timeout + 5), 0
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise BodyTimeout("no data; upload abandoned", self.name) from None
        size = len(self._buf) - self._pos if size is None or size < 0 else size
        data = self._buf[self._pos:self._pos + size]
        self._pos += len(data)
        return data
