"""All cores: an ordered, bounded process-pool map.

Records and packed batches are independent, so each stage maps one function over batches.
Workers are forked *after* the expensive state (window tables, keys, weights) is built, so
they inherit it instead of rebuilding or unpickling it; at most ``window`` batches are in
flight, so memory stays flat however long the input is. Results come back in input order.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from typing import Callable, Iterable, Iterator

_STATE = None  # the state of the current map, inherited by forked workers


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


def ordered_map(fn: Callable, items: Iterable, state, workers: int = 1, window: int | None = None) -> Iterator:
    """``fn(state, item)`` for every item, in order, on ``workers`` processes.

    ``fn`` must be a module-level function; ``items`` are pickled to the workers, ``state``
    is not (with fork) — it is inherited.
    """
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
