"""Pools of one-time randomness computed ahead of time (offline), so that the online stages do
almost no big-integer work.

* **The customer's pool** (``djn_pool.bin`` in the key folder, beside the private key): values
  ``h_s^α mod n²``, each a fresh encryption of zero. With one, encrypting a packed plaintext is
  one multiplication: ``(1 + P·n) · h_s^α mod n²``.
* **The company's pools** (``NoisePools/<key fingerprint>.pool``, one per customer key): values
  ``r^n mod n²`` (:func:`ppml.paillier.scheme.server_noise`), each re-randomizing one answer
  ciphertext. With one, scoring is the weights' addition chain alone.

Each value is secret and must be used once. The file is mode 0600 (refused when group or others
can read it) and names its key: a pool for another key is refused, never used. A value leaves
the pool *before* it is used: :meth:`RandomnessPool.take` reads the last values, truncates the
file to drop them, and fsyncs the truncation, all under the folder's lock (the lock the key
folder's writers hold); only then are the values returned. A run killed at any point therefore
loses at most the values it took, and no later run can take them again. Filling
(:meth:`RandomnessPool.add`) rewrites the file atomically under the same lock, so a killed fill
leaves the old pool.

File layout: one JSON header line (``format``, ``version``, ``kind``, ``fingerprint``,
``value_bytes``), then the values, each big-endian in ``value_bytes`` bytes.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gmpy2

from . import files
from .errors import DocumentError, KeyFileError, KeyMismatchError
from .paillier.keys import PublicKey

POOL_FORMAT = "ppml.randomness-pool"
POOL_VERSION = 1
#: ``h_s^α mod n²`` (the customer's encryptions of zero).
CUSTOMER_KIND = "djn-zero"
#: ``r^n mod n²`` (the company's re-randomizers).
SERVER_KIND = "server-noise"
CUSTOMER_POOL_NAME = "djn_pool.bin"
DEFAULT_SERVER_POOLS = "NoisePools"
#: Seconds a pool operation waits for the folder's lock (held only briefly by other runs).
LOCK_WAIT = 300.0
MAX_HEADER_BYTES = 4096


class RandomnessPool:
    """The pool file at ``path`` of ``kind`` values for ``public`` (it need not exist yet)."""

    def __init__(self, path, public: PublicKey, kind: str):
        self.path, self.public, self.kind = Path(path), public, kind
        self.value_bytes = (public.n_sq.bit_length() + 7) // 8
        self._header = (files.dump_json({"format": POOL_FORMAT, "version": POOL_VERSION, "kind": kind,
                                         "fingerprint": public.fingerprint,
                                         "value_bytes": self.value_bytes})).encode()

    def exists(self) -> bool:
        return self.path.exists()

    def count(self) -> int:
        """Values in the pool now (0 if there is no pool file); refuses a pool for another key."""
        if not self.exists():
            return 0
        with open(self.path, "rb") as f:
            return self._check(f)

    def take(self, count: int) -> list[gmpy2.mpz]:
        """Up to ``count`` values, removed from the pool durably before they are returned
        (fewer if the pool holds fewer; none if there is no pool)."""
        if count <= 0 or not self.exists():
            return []
        with self._lock():
            try:
                fd = os.open(self.path, os.O_RDWR)
            except FileNotFoundError:
                return []
            with os.fdopen(fd, "r+b") as f:
                have = self._check(f)
                k = min(count, have)
                if not k:
                    return []
                keep = len(self._header) + (have - k) * self.value_bytes
                f.seek(keep)
                data = f.read(k * self.value_bytes)
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())
        size, n_sq = self.value_bytes, self.public.n_sq
        values = [gmpy2.mpz(int.from_bytes(data[i:i + size], "big")) for i in range(0, len(data), size)]
        if not all(0 < v < n_sq for v in values):  # e.g. a block of zeros from a damaged disk
            raise DocumentError("holds a value out of range for its key; delete it", str(self.path))
        return values

    def add(self, values: Sequence) -> int:
        """Append ``values`` (atomically: a killed run leaves the pool as it was); returns the
        pool's new size."""
        with self._lock():
            old = b""
            if self.exists():
                with open(self.path, "rb") as f:
                    self._check(f)
                    old = f.read()
            new = b"".join(int(v).to_bytes(self.value_bytes, "big") for v in values)
            files.atomic_write_bytes(self.path, self._header + old + new, mode=0o600)
        return (len(old) + len(new)) // self.value_bytes

    def _lock(self):
        return files.output_lock(self.path, timeout=LOCK_WAIT, folder_mode=0o700)

    def _check(self, f) -> int:
        """Validate the open pool file (mode, header, key, length); returns its value count."""
        where = str(self.path)
        files.refuse_open_permissions(self.path, os.fstat(f.fileno()).st_mode, "a randomness pool", KeyFileError)
        line = f.readline(MAX_HEADER_BYTES)
        try:
            header = json.loads(line)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != POOL_FORMAT:
            raise DocumentError(f"is not a randomness pool (expected format {POOL_FORMAT!r})", where)
        if header.get("version") != POOL_VERSION or header.get("kind") != self.kind:
            raise DocumentError(f"holds {header.get('kind')!r} values of version {header.get('version')!r}, "
                                f"expected {self.kind!r} version {POOL_VERSION}", where)
        if header.get("fingerprint") != self.public.fingerprint:
            raise KeyMismatchError(f"holds randomness for key {str(header.get('fingerprint'))[:23]}…, not for "
                                   f"{self.public.fingerprint[:23]}…; delete it (and precompute again for "
                                   "this key)", where)
        if line != self._header:
            raise DocumentError("has a damaged header", where)
        body = os.fstat(f.fileno()).st_size - len(line)
        if body % self.value_bytes:
            raise DocumentError("is damaged (its length is not a whole number of values); delete it", where)
        return body // self.value_bytes


def customer_pool(keys_dir, public: PublicKey) -> RandomnessPool:
    """The customer's pool of encryptions of zero, beside the private key in ``keys_dir``."""
    return RandomnessPool(Path(keys_dir) / CUSTOMER_POOL_NAME, public, CUSTOMER_KIND)


def server_pool(pools_dir, public: PublicKey) -> RandomnessPool:
    """The company's pool of ``r^n`` for one customer key, in ``pools_dir``."""
    name = public.fingerprint.split(":", 1)[-1] + ".pool"
    return RandomnessPool(Path(pools_dir) / name, public, SERVER_KIND)


def _customer_chunk(state, count: int) -> list:
    return state.random_masks(count)


def _server_chunk(public, count: int) -> list:
    from .paillier.scheme import server_noise

    return [server_noise(public) for _ in range(count)]


#: Values computed per job and written per pool rewrite.
FILL_CHUNK = 1024


def fill(pool: RandomnessPool, wanted: int, private=None, workers: int = 1, progress=None) -> int:
    """Top ``pool`` up to ``wanted`` values with ``workers`` processes, writing as chunks finish
    (a killed fill keeps what it wrote). The customer's values need its ``private`` key (CRT
    and a comb table); the company's need only the public key. Returns how many were added."""
    from .paillier.scheme import Encryptor
    from .parallel import Recipe, ordered_map

    missing = max(0, wanted - pool.count())
    if not missing:
        return 0
    chunks = [min(FILL_CHUNK, missing - i) for i in range(0, missing, FILL_CHUNK)]
    if pool.kind == CUSTOMER_KIND:
        if private is None:
            raise KeyFileError("filling the customer's pool needs the private key")
        recipe = Recipe(Encryptor, (pool.public, private, missing, workers, True),
                        key=f"pool:{pool.public.fingerprint}:{missing}")
        job: Callable[[Any, int], list] = _customer_chunk
    else:
        recipe, job = Recipe(_identity, (pool.public,)), _server_chunk
    added = 0
    for values in ordered_map(job, chunks, recipe, min(workers, len(chunks))):
        pool.add(values)
        added += len(values)
        if progress:
            progress(len(values))
    return added


def _identity(value):
    return value
