"""The service's HTTP connections under clients that hold them open (uvicorn's h11 protocol,
guarded).

* **A deadline for the request head**: from a connection's first moment, or from the first
  byte of each later request on a kept-alive connection, the client has ``head_timeout``
  seconds to send the whole request line and headers; then it gets 408 and the connection is
  closed. (uvicorn alone waits for a head forever: an idle connection or a half-sent request
  line held a file descriptor indefinitely.)
* **Idle keep-alive**: a connection with no request in progress is closed after
  ``keep_alive`` seconds (uvicorn's own timer).
* **A cap on open connections**: past ``max_connections``, a new connection is answered at
  once with 503 and ``Retry-After`` and closed, so the server's file descriptors never run out
  (the cap is kept below the process's descriptor limit; see :func:`connection_cap`).

The app itself caps the requests being scored, queued and open per client (503 past those).
"""
from __future__ import annotations

import asyncio
import json
import resource

from uvicorn.protocols.http.h11_impl import H11Protocol

#: Descriptors kept free for everything but client connections (files, the database, the
#: scoring processes' pipes, the listening socket).
RESERVED_FDS = 64


def connection_cap(wanted: int | None = None) -> int:
    """The cap on open connections: ``wanted`` (default 1,000), lowered to fit the descriptor
    limit, which is first raised as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    room = max(1, soft - RESERVED_FDS) if soft != resource.RLIM_INFINITY else 1 << 20
    return min(wanted or 1000, room)


def _raw_answer(status: int, reason: str, message: str, headers: dict | None = None) -> bytes:
    body = json.dumps({"error": message}).encode()
    lines = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}",
             "connection: close", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


BUSY = _raw_answer(503, "Service Unavailable", "too many open connections; retry later", {"retry-after": "1"})
HEAD_TIMEOUT = _raw_answer(408, "Request Timeout", "the request head did not arrive in time")


def guarded_protocol(max_connections: int, head_timeout: float):
    """uvicorn's h11 protocol class with the head deadline and the connection cap."""

    class GuardedH11Protocol(H11Protocol):
        cap = max_connections
        deadline = head_timeout

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._head_timer: asyncio.TimerHandle | None = None
            if len(self.connections) > self.cap:
                transport.write(BUSY)
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.deadline, self._head_expired)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_expired(self) -> None:
            self._head_timer = None
            if self._waiting_for_head() and not self.transport.is_closing():
                self.transport.write(HEAD_TIMEOUT)
                self.transport.close()

        def _waiting_for_head(self) -> bool:
            import h11

            return self.conn.their_state is h11.IDLE

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing():
                return
            if self._waiting_for_head():
                self._arm()  # a (partial) head: it must be complete within the deadline
            else:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()  # idle between requests: the keep-alive timer governs

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol
