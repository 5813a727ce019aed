"""The service's clients: names, bearer tokens (only their hashes are kept) and daily quotas.

One SQLite database in WAL mode, created on first use. Every write is one short ``BEGIN
IMMEDIATE`` transaction, so several server processes and the ``clients`` command can share the
file; a reader never blocks a writer.

Quotas are records per client per UTC day. A request *reserves* records before it scores them
(atomically checked against the quota, so concurrent requests cannot overshoot it together)
and gives back what it did not deliver: a refused or failed request costs nothing, and only
records whose answers left the server are charged.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..errors import PpmlError

#: Where ``serve`` and ``clients`` keep the database unless ``--db`` says otherwise.
DEFAULT_DB = "ppml-service.db"
#: Prefix of every token, so a leaked one is recognisable (e.g. by secret scanners).
TOKEN_PREFIX = "ppml_"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL UNIQUE,
    quota INTEGER,                      -- records per UTC day; NULL: unlimited
    created TEXT NOT NULL,
    revoked TEXT                        -- time of revocation; NULL while active
);
CREATE TABLE IF NOT EXISTS usage (
    client_id INTEGER NOT NULL REFERENCES clients(id),
    day TEXT NOT NULL,                  -- UTC date, YYYY-MM-DD
    records INTEGER NOT NULL DEFAULT 0, -- charged (delivered) plus currently reserved
    requests INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, day)
);
"""


class ClientError(PpmlError):
    """A client name that is taken, unknown or malformed; a database that cannot be used."""


@dataclass(frozen=True)
class Client:
    id: int
    name: str
    quota: int | None


@dataclass(frozen=True)
class Usage:
    name: str
    quota: int | None
    revoked: bool
    today: int
    total: int
    requests: int


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so one SHA-256 is enough to make the stored hash useless."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def seconds_until_tomorrow() -> int:
    """What ``Retry-After`` says to a client over its quota: the next UTC midnight."""
    now = dt.datetime.now(dt.timezone.utc)
    tomorrow = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


class ClientDB:
    """The clients database at ``path`` (created with its folder on first use, readable by its
    owner only: it holds the token hashes and every client's usage)."""

    def __init__(self, path=DEFAULT_DB):
        self.path = Path(path)
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextlib.contextmanager
    def _connect(self, write: bool = False):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # new: owner only (SQLite's -wal and -shm files follow)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise ClientError(f"cannot open the clients database: {e}", str(self.path)) from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            if write:
                db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            if db.in_transaction:
                db.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            raise ClientError(f"clients database error: {e}", str(self.path)) from None
        finally:
            db.close()

    # -- administration (the ``clients`` command) ---------------------------------------------
    def add(self, name: str, quota: int | None = None) -> str:
        """Register ``name`` and return its new bearer token (shown once, never stored)."""
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ClientError(f"client name {name!r} must be 1-64 letters, digits or ._@- "
                              "(starting with a letter or digit)")
        if quota is not None and quota < 0:
            raise ClientError("a quota must be a number of records, at least 0")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with self._connect(write=True) as db:
            if db.execute("SELECT 1 FROM clients WHERE name = ?", (name,)).fetchone():
                raise ClientError(f"client {name!r} exists already (revoke it, or choose another name)")
            db.execute("INSERT INTO clients (name, token_sha256, quota, created) VALUES (?, ?, ?, ?)",
                       (name, hash_token(token), quota, now))
        return token

    def revoke(self, name: str) -> None:
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with self._connect(write=True) as db:
            row = db.execute("SELECT revoked FROM clients WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise ClientError(f"no client named {name!r}")
            if row[0] is None:
                db.execute("UPDATE clients SET revoked = ? WHERE name = ?", (now, name))

    def usage(self, day: str | None = None) -> list[Usage]:
        """Every client with its records scored today and in all, in name order."""
        day = day or today()
        with self._connect() as db:
            rows = db.execute(
                "SELECT c.name, c.quota, c.revoked IS NOT NULL,"
                " COALESCE(SUM(CASE WHEN u.day = ? THEN u.records END), 0),"
                " COALESCE(SUM(u.records), 0), COALESCE(SUM(u.requests), 0)"
                " FROM clients c LEFT JOIN usage u ON u.client_id = c.id GROUP BY c.id ORDER BY c.name",
                (day,)).fetchall()
        return [Usage(name, quota, bool(revoked), today_, total, requests)
                for name, quota, revoked, today_, total, requests in rows]

    # -- the service ---------------------------------------------------------------------------
    def authenticate(self, token: str | None) -> Client | None:
        """The active client holding ``token``, or None (unknown, revoked or missing: the caller
        gives all three the same answer)."""
        if not token or len(token) > 512:
            return None
        digest = hash_token(token)
        with self._connect() as db:
            row = db.execute("SELECT id, name, quota, token_sha256 FROM clients "
                             "WHERE token_sha256 = ? AND revoked IS NULL", (digest,)).fetchone()
        if row is None or not hmac.compare_digest(row[3], digest):
            return None
        return Client(row[0], row[1], row[2])

    def reserve(self, client: Client, records: int, day: str) -> bool:
        """Add ``records`` to the client's count for ``day`` if that stays within its quota."""
        with self._connect(write=True) as db:
            quota = db.execute("SELECT quota FROM clients WHERE id = ?", (client.id,)).fetchone()
            quota = quota[0] if quota else 0
            used = db.execute("SELECT records FROM usage WHERE client_id = ? AND day = ?",
                              (client.id, day)).fetchone()
            used = used[0] if used else 0
            if quota is not None and used + records > quota:
                return False
            db.execute("INSERT INTO usage (client_id, day, records) VALUES (?, ?, ?) "
                       "ON CONFLICT (client_id, day) DO UPDATE SET records = records + excluded.records",
                       (client.id, day, records))
        return True

    def left(self, client: Client, day: str) -> int | None:
        """Records the client may still have scored on ``day`` (None: unlimited)."""
        with self._connect() as db:
            quota = db.execute("SELECT quota FROM clients WHERE id = ?", (client.id,)).fetchone()
            used = db.execute("SELECT records FROM usage WHERE client_id = ? AND day = ?", (client.id, day)).fetchone()
        if not quota or quota[0] is None:
            return None if quota else 0
        return max(0, quota[0] - (used[0] if used else 0))

    def settle(self, client: Client, day: str, reserved: int, delivered: int) -> None:
        """End of a request: give back what was reserved but not delivered, count the request
        if it delivered anything."""
        with self._connect(write=True) as db:
            db.execute("INSERT INTO usage (client_id, day, records, requests) VALUES (?, ?, 0, 0) "
                       "ON CONFLICT (client_id, day) DO NOTHING", (client.id, day))
            db.execute("UPDATE usage SET records = MAX(0, records - ?), requests = requests + ? "
                       "WHERE client_id = ? AND day = ?",
                       (max(0, reserved - delivered), 1 if delivered else 0, client.id, day))


def default_db_path() -> str:
    """``$PPML_DB`` if set, else :data:`DEFAULT_DB` in the current folder."""
    return os.environ.get("PPML_DB") or DEFAULT_DB
