"""All cores, or a cluster: an ordered, bounded map over independent batches.

Records and packed batches are independent, so each stage maps one function over batches:
``fn(state, item)``. The *state* (window tables, keys, weights) is expensive, so it is made
once per process from a small picklable recipe, ``factory(*args)``:

* locally, the parent builds it before forking the pool, and the workers inherit it;
* on a Dask cluster (``dask.distributed``), the recipe travels to each worker, which builds
  the state once and keeps it (keyed by ``key``, the few most recent only) for every batch
  it is given.

The local pool is a :class:`concurrent.futures.ProcessPoolExecutor`, which notices a worker
that dies (``kill -9``, the OOM killer) and says so: the stage fails at once with one line
instead of waiting forever. Workers ignore SIGINT, so Ctrl-C reaches the parent alone, which
stops them; nobody prints a traceback.

At most ``window`` batches are in flight, so memory stays flat however long the input is, and
results come back in input order. Only what the recipe and the items hold travels: the
callers pass the public key, weights and ciphertexts — never the private key.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections import OrderedDict, deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable, Iterator

#: Work estimate (batches) used to size precomputed tables when an input is longer than the part
#: read ahead: large enough that tables are sized for throughput.
LARGE_INPUT_BATCHES = 10_000

_STATE = None  # the state of the current local map, inherited by forked workers
#: Per Dask worker process: key → built state, most recently used last. Bounded: a worker that
#: serves many keys or workloads keeps only the newest few tables (each up to 32 MiB).
_CLUSTER_STATES: OrderedDict = OrderedDict()
CLUSTER_STATES_KEPT = 2


@dataclass(frozen=True)
class Recipe:
    """How to build a map's state: ``factory(*args)``; ``key`` names it in worker caches."""

    factory: Callable
    args: tuple = ()
    key: str = field(default="")

    def build(self):
        return self.factory(*self.args)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _init_worker(state) -> None:
    """In each pool worker: ignore Ctrl-C (the parent handles it and stops the pool) and, where
    workers are spawned rather than forked, take the state that travelled with them."""
    global _STATE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if state is not None:
        _STATE = state


def _call(fn, item):
    return fn(_STATE, item)


def _call_on_cluster(fn, recipe: Recipe, item):
    state = _CLUSTER_STATES.get(recipe.key)
    if state is None:
        state = _CLUSTER_STATES[recipe.key] = recipe.build()
        while len(_CLUSTER_STATES) > CLUSTER_STATES_KEPT:
            _CLUSTER_STATES.popitem(last=False)
    _CLUSTER_STATES.move_to_end(recipe.key)
    return fn(state, item)


def ordered_map(fn: Callable, items: Iterable, recipe: Recipe, workers: int = 1,
                scheduler: str | None = None, window: int | None = None) -> Iterator:
    """``fn(state, item)`` for every item, in order; ``fn`` must be a module-level function.

    Args:
        workers: local processes (1 runs in this process).
        scheduler: a Dask scheduler address (``tcp://host:8786``) or a ``distributed.Client``;
            then the batches run on that cluster and ``workers`` is ignored.

    Raises:
        WorkerError: a worker process died (killed by a signal, or out of memory).
    """
    if scheduler is not None:
        yield from _cluster_map(fn, items, recipe, scheduler, window)
        return
    state = recipe.build()
    if workers <= 1:
        for item in items:
            yield fn(state, item)
        return
    window = window or 4 * workers
    global _STATE
    previous, _STATE = _STATE, state
    fork = "fork" in mp.get_all_start_methods()
    context = mp.get_context("fork" if fork else "spawn")  # elsewhere the state travels once per worker
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(None if fork else state,))
    try:
        pending: deque = deque()
        for item in items:
            try:
                pending.append(pool.submit(_call, fn, item))
            except BrokenProcessPool:  # a worker died since the last result was taken
                raise _worker_died() from None
            if len(pending) >= window:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    finally:
        _stop(pool)
        _STATE = previous


def _result(future):
    try:
        return future.result()
    except BrokenProcessPool:
        raise _worker_died() from None


def _worker_died():
    from .errors import WorkerError

    return WorkerError("a worker process died (killed by a signal, or out of memory); nothing was written")


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now, whatever they are doing (they ignore SIGINT, and results no longer
    wanted must not keep the stage alive)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
    for process in processes:
        process.join()


def _cluster_map(fn, items, recipe: Recipe, scheduler, window) -> Iterator:
    from .errors import PpmlError

    try:
        from distributed import Client
    except ImportError:
        raise PpmlError("--scheduler needs Dask: pip install 'ppml[dask]'") from None
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, timeout="20s") if own else scheduler
    except (OSError, TimeoutError) as e:
        raise PpmlError(f"cannot reach the Dask scheduler {scheduler}: {e}") from None
    try:
        window = window or 4 * max(1, sum(client.nthreads().values()))
        remote_recipe = client.scatter(recipe, broadcast=True)
        pending: deque = deque()
        for item in items:
            pending.append(client.submit(_call_on_cluster, fn, remote_recipe, item, pure=False))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        if own:
            client.close()
