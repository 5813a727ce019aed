"""What the service shows of itself: Prometheus metrics and the JSON Lines audit log.

Neither ever holds a ciphertext, a key, a feature or a token: the metrics are counts and
durations, and an audit line names the client, the sizes, the status and the outcome.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Hexadecimal runs this long or longer are cut out of anything logged (an error message may
#: quote a value from the request).
_LONG_HEX = re.compile(r"[0-9a-fA-F]{16,}")


class Metrics:
    """The service's metrics, in a registry of their own (one per app, so tests can make many)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.records = Counter("ppml_records_scored", "Records whose encrypted predictions were sent.",
                               registry=self.registry)
        self.batches = Counter("ppml_batches_scored", "Batches (answer ciphertexts) sent.", registry=self.registry)
        self.requests = Counter("ppml_requests", "HTTP requests answered, by path and status.",
                                ["path", "status"], registry=self.registry)
        self.duration = Histogram("ppml_request_duration_seconds", "Time from request to the last byte of the answer.",
                                  ["path"], registry=self.registry,
                                  buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self.in_flight = Gauge("ppml_requests_in_flight", "Scoring requests being read, scored or answered.",
                               registry=self.registry)
        self.bytes_in = Counter("ppml_request_bytes", "Bytes of features documents received.", registry=self.registry)
        self.bytes_out = Counter("ppml_response_bytes", "Bytes of predictions documents sent.",
                                 registry=self.registry)


def scrub(text: str | None) -> str | None:
    """A message fit for the log: no long hexadecimal, bounded length."""
    if text is None:
        return None
    return _LONG_HEX.sub("…", str(text))[:300]


class AuditLog:
    """One JSON object per line per request, appended (O_APPEND, so several server processes
    may share the file); a new file is created readable by its owner only (0600: it names
    clients and peers). ``path`` None keeps no log."""

    def __init__(self, path=None):
        self.path = path
        self._fd = None
        self._lock = threading.Lock()
        if path is not None:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, *, client: str | None, method: str, path: str, status: int, records: int = 0,
              batches: int = 0, bytes_in: int = 0, bytes_out: int = 0, duration: float = 0.0,
              error: str | None = None, peer: str | None = None) -> None:
        if self._fd is None:
            return
        entry = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
                 "client": client, "method": method, "path": path[:200], "status": status,
                 "records": records, "batches": batches, "bytes_in": bytes_in, "bytes_out": bytes_out,
                 "duration": round(duration, 4)}
        if peer:
            entry["peer"] = peer
        if error:
            entry["error"] = scrub(error)
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
