"""All cores, or a cluster: an ordered, bounded map over independent batches.

Records and packed batches are independent, so each stage maps one function over batches:
``fn(state, item)``. The *state* (window tables, keys, weights) is expensive, so it is made
once per process from a small picklable recipe, ``factory(*args)``:

* locally, the parent builds it before forking the pool, and the workers inherit it;
* on a Dask cluster (``dask.distributed``), the recipe travels to each worker, which builds
  the state once and keeps it (keyed by ``key``) for every batch it is given.

At most ``window`` batches are in flight, so memory stays flat however long the input is, and
results come back in input order. Only what the recipe and the items hold travels: the
callers pass the public key, weights and ciphertexts — never the private key.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

#: Work estimate (batches) used to size precomputed tables when an input is longer than the part
#: read ahead: large enough that tables are sized for throughput.
LARGE_INPUT_BATCHES = 10_000

_STATE = None  # the state of the current local map, inherited by forked workers
_CLUSTER_STATES: dict = {}  # per Dask worker process: key → built state


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


def _init(state) -> None:
    global _STATE
    _STATE = state


def _call(fn, item):
    return fn(_STATE, item)


def _call_on_cluster(fn, recipe: Recipe, item):
    state = _CLUSTER_STATES.get(recipe.key)
    if state is None:
        state = _CLUSTER_STATES[recipe.key] = recipe.build()
    return fn(state, item)


def ordered_map(fn: Callable, items: Iterable, recipe: Recipe, workers: int = 1,
                scheduler: str | None = None, window: int | None = None) -> Iterator:
    """``fn(state, item)`` for every item, in order; ``fn`` must be a module-level function.

    Args:
        workers: local processes (1 runs in this process).
        scheduler: a Dask scheduler address (``tcp://host:8786``) or a ``distributed.Client``;
            then the batches run on that cluster and ``workers`` is ignored.
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
    if "fork" in mp.get_all_start_methods():
        pool = mp.get_context("fork").Pool(workers)
    else:  # pragma: no cover - macOS/Windows: state travels once per worker
        pool = mp.get_context("spawn").Pool(workers, initializer=_init, initargs=(state,))
    try:
        pending: deque = deque()
        for item in items:
            pending.append(pool.apply_async(_call, (fn, item)))
            if len(pending) >= window:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
    finally:
        pool.terminate()
        pool.join()
        _STATE = previous


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
