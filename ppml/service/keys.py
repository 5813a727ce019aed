"""The customers' keys: their expensive checks, off the event loop, once per key, on a budget.

Checking a key a customer sends (that ``n`` is a proper RSA modulus: the primality test, the
modulus proof) costs up to a fraction of a second of one core, and a prime ``n`` costs a full
primality test. So the check runs in a process of its own (gmpy2 holds the interpreter lock
while it computes, so a thread would stall the event loop just the same); a key that passed
is remembered by its fingerprint and never checked again while the service runs; and every
check that is not answered from that memory is paid for from the client's *key-check
budget*: ``burst`` checks at once, refilled at one per ``refill_seconds``. A client whose
budget is spent gets 429 without any computation, so refused keys cost it, not the server.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import multiprocessing as mp
import time
from collections import OrderedDict

from ..errors import DocumentError
from ..paillier.keys import fingerprint_of
from ..server import verify_key
from ..validation import HEX


class KeyBudgetSpent(DocumentError):
    """A client checked too many new keys lately (HTTP 429)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class KeyChecks:
    """``await checks.check(client_id, key_dict)``: None once the key is known good."""

    def __init__(self, allow_weak: bool, burst: int = 8, refill_seconds: float = 60.0, remember: int = 4096):
        self.allow_weak, self.burst, self.refill_seconds, self.remember = allow_weak, burst, refill_seconds, remember
        self.good: OrderedDict = OrderedDict()  # fingerprint → None, most recent last
        self._budgets: dict = {}  # client id → (tokens, time of last refill)
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self.checked = 0  # checks computed (for tests and metrics)

    async def start(self) -> None:
        methods = mp.get_all_start_methods()
        context = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        self._executor = concurrent.futures.ProcessPoolExecutor(1, mp_context=context)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, _ready)

    async def close(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            shutdown = functools.partial(executor.shutdown, cancel_futures=True)
            await asyncio.get_running_loop().run_in_executor(None, shutdown)

    def _spend(self, client_id) -> None:
        now = time.monotonic()
        tokens, then = self._budgets.get(client_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) / self.refill_seconds)
        if tokens < 1:
            wait = max(1, int((1 - tokens) * self.refill_seconds + 0.999))
            self._budgets[client_id] = (tokens, now)
            raise KeyBudgetSpent(f"too many new keys checked for this client lately (at most {self.burst}, then "
                                 f"one per {self.refill_seconds:g} s); retry in {wait} s or use a key that was "
                                 "accepted before", wait)
        self._budgets[client_id] = (tokens - 1, now)

    async def check(self, client_id, key) -> None:
        fingerprint = _fingerprint(key)
        if fingerprint is not None and fingerprint in self.good:
            self.good.move_to_end(fingerprint)
            return
        self._spend(client_id)
        if self._executor is None:
            raise RuntimeError("the key checks are not started")
        self.checked += 1
        verified = await asyncio.wrap_future(self._executor.submit(verify_key, key, self.allow_weak))
        self.good[verified] = None
        while len(self.good) > self.remember:
            self.good.popitem(last=False)


def _fingerprint(key) -> str | None:
    """The fingerprint of a key as the document holds it, if it is well-formed enough to have one."""
    n = key.get("n") if isinstance(key, dict) else None
    h_s = key.get("h_s") if isinstance(key, dict) else None
    if not (isinstance(n, str) and isinstance(h_s, str) and HEX.fullmatch(n) and HEX.fullmatch(h_s)):
        return None
    return fingerprint_of(int(n, 16), int(h_s, 16))


def _ready() -> bool:
    return True
