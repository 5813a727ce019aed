"""The scoring processes: a persistent pool the service sends ``(state, batch)`` to.

Scoring is CPU work in gmpy2, so it runs in separate processes, started once when the service
starts and kept for its lifetime. They come from a *forkserver*: a clean process started by
exec before the server's threads matter, so no worker is ever forked from a threaded process,
and none inherits the server's signal handlers. The workers ignore SIGINT and SIGTERM: the
server owns their lifetime and stops them after its in-flight requests are answered.

Each job carries its own small state (the public key of its document, the codec and the
integer weights; see :func:`ppml.server.scoring_state`), so one pool serves every customer.

With a Dask scheduler address the batches run on that cluster instead, as with
``ServerModelRun.py --scheduler``.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing as mp
import signal
from typing import Any

from concurrent.futures.process import BrokenProcessPool

from ..documents import Batch
from ..errors import PpmlError, WorkerError
from ..paillier.scheme import server_noise
from ..server import score_batch


class PoolRestarted(WorkerError):
    """The request lost its scoring process; the pool has been replaced (the service answers
    503 with Retry-After, so the client's retry is scored)."""


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _ready() -> bool:
    return True


class ScoringPool:
    """``await pool.score(state, batch)`` on local processes or a Dask cluster.

    Args:
        workers: number of scoring processes (ignored with ``scheduler``).
        scheduler: a Dask scheduler address, or None for local processes.
    """

    def __init__(self, workers: int = 1, scheduler: str | None = None):
        self.workers = max(1, workers)
        self.scheduler = scheduler
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._dask: Any = None  # a dask.distributed Client, with a scheduler

    async def start(self) -> None:
        if self.scheduler is not None:
            try:
                from distributed import Client
            except ImportError:
                raise PpmlError("--scheduler needs Dask: pip install 'ppml[dask]'") from None
            try:
                self._dask = await Client(self.scheduler, asynchronous=True, timeout="20s")
            except (OSError, TimeoutError) as e:
                raise PpmlError(f"cannot reach the Dask scheduler {self.scheduler}: {e}") from None
            self.workers = max(1, sum((await self._dask.nthreads()).values()))
            return
        self._executor = self._new_executor()
        # Start every worker now, so /healthz means ready and the first request pays nothing.
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._executor, _ready) for _ in range(self.workers)))

    def _new_executor(self) -> concurrent.futures.ProcessPoolExecutor:
        methods = mp.get_all_start_methods()
        context = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            context.set_forkserver_preload(["ppml.server"])
        return concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context, initializer=_worker_init)

    async def score(self, state: tuple, batch: Batch, noises: list | None = None) -> Batch:
        return await self._run(score_batch, state, batch, noises)

    async def noise(self, public) -> int:
        """One server re-randomizer for ``public``, computed on a worker (see :class:`NoiseReserve`)."""
        return await self._run(server_noise, public)

    async def _run(self, fn, *args):
        if self._dask is not None:
            return await self._dask.submit(fn, *args, pure=False)
        executor = self._executor
        if executor is None:
            raise RuntimeError("the scoring pool is not started")
        try:
            return await asyncio.wrap_future(executor.submit(fn, *args))
        except BrokenProcessPool:
            # A scoring process died (the out-of-memory killer, a signal): the executor is broken
            # for good, so the first request to notice replaces it and later ones score again.
            if self._executor is executor:
                self._executor = self._new_executor()
                asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
            raise PoolRestarted("a scoring process died (killed by a signal, or out of memory); the scoring "
                                "pool was restarted: retry the request") from None

    async def close(self) -> None:
        if self._dask is not None:
            await self._dask.close()
            self._dask = None
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)


class NoiseReserve:
    """Server re-randomizers (``r^n mod n²``) computed ahead, while the service is idle, for the
    keys that sent the last requests: a repeat customer's next answer then skips the one full
    exponentiation it costs. Each value is used for one answer ciphertext only and only under
    its own key; at most ``per_key`` values for the ``keys`` most recent keys are kept."""

    def __init__(self, per_key: int = 16, keys: int = 8):
        from collections import OrderedDict

        self.per_key, self.keys = per_key, keys
        self._reserve: OrderedDict = OrderedDict()  # fingerprint → (public key, [values])

    def note(self, public) -> None:
        """``public`` was just used: keep (and refill) a reserve for it."""
        entry = self._reserve.pop(public.fingerprint, (public, []))
        self._reserve[public.fingerprint] = entry
        while len(self._reserve) > self.keys:
            self._reserve.popitem(last=False)

    def take(self, public, count: int) -> list | None:
        """``count`` values for ``public``, each removed from the reserve, or None if it holds fewer."""
        values = self._reserve.get(public.fingerprint, (None, []))[1]
        if len(values) < count:
            return None
        taken, values[:] = values[:count], values[count:]
        return taken

    def wanted(self):
        """The most recently used key whose reserve is not full, or None."""
        for public, values in reversed(self._reserve.values()):
            if len(values) < self.per_key:
                return public
        return None

    def put(self, public, value) -> None:
        entry = self._reserve.get(public.fingerprint)
        if entry is not None and len(entry[1]) < self.per_key:
            entry[1].append(value)

    def __len__(self) -> int:
        return sum(len(values) for _, values in self._reserve.values())
