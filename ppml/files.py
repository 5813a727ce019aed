"""Reading and writing the toolkit's files safely (DESIGN §7).

Every write is atomic: a temporary file in the destination folder, fsync, ``os.replace``, so a
killed run leaves the old file or the new one, never half of one. ``-`` means stdin/stdout.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import tempfile
from pathlib import Path

from .errors import DocumentError, OutputError

STDIO = "-"


def display_name(path) -> str:
    return "<stdin>" if str(path) == STDIO else str(path)


class AtomicFile:
    """A file that appears at ``path`` complete or not at all: bytes go to a temporary file in
    the same folder (created with ``mode`` before any byte lands, so a private key is never
    readable by others, not even briefly); ``commit`` fsyncs it and renames it into place,
    ``abort`` (or an exception inside ``with``) removes it and leaves ``path`` untouched."""

    def __init__(self, path, mode: int = 0o644, overwrite: bool = True):
        self.path = Path(path)
        self.overwrite = overwrite
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create folder: {e.strerror}", str(folder)) from None
        if not overwrite and self.path.exists():
            raise OutputError("already exists; refusing to overwrite it (use --force)", str(self.path))
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)
        except OSError as e:
            raise OutputError(f"cannot write here: {e.strerror}", str(folder)) from None
        os.fchmod(fd, mode)
        self.file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            if self.overwrite:
                os.replace(self.tmp, self.path)
            else:  # link fails, instead of replacing, if someone created the file meanwhile
                os.link(self.tmp, self.path)
                os.unlink(self.tmp)
        except FileExistsError:
            self.abort()
            raise OutputError("already exists; refusing to overwrite it (use --force)", str(self.path)) from None
        except BaseException:
            self.abort()
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


def atomic_write_bytes(path, data: bytes, mode: int = 0o644, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode``."""
    with AtomicFile(path, mode, overwrite) as f:
        f.write(data)


def write_text(path, text: str, mode: int = 0o644) -> None:
    """Write text to ``path`` atomically, or to stdout for ``-``."""
    if str(path) == STDIO:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write_bytes(path, text.encode("utf-8"), mode)


def dump_json(obj) -> str:
    """The one place documents become JSON text (compact, one object, trailing newline)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n"


def write_json(path, obj, mode: int = 0o644) -> None:
    write_text(path, dump_json(obj), mode)


def read_bytes(path) -> bytes:
    """Bytes of ``path`` (or stdin for ``-``) with a one-line error when it cannot be read."""
    if str(path) == STDIO:
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DocumentError("file not found", str(path)) from None
    except IsADirectoryError:
        raise DocumentError("is a folder, expected a file", str(path)) from None
    except OSError as e:
        raise DocumentError(f"cannot read: {e.strerror}", str(path)) from None


def read_json(path):
    """Parse one JSON document, naming the file and position of a syntax error."""
    data = read_bytes(path)
    if not data.strip():
        raise DocumentError("is empty, expected a JSON document", display_name(path))
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise DocumentError("is not UTF-8 text", display_name(path)) from None
    except json.JSONDecodeError as e:
        raise DocumentError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}",
                            display_name(path)) from None
    except RecursionError:
        raise DocumentError("JSON nested too deeply", display_name(path)) from None


@contextlib.contextmanager
def output_lock(path, wait: bool = True):
    """Hold an exclusive ``fcntl`` lock on the folder of ``path`` while a stage writes into it,
    so two cron runs never write the same outputs at once; the second waits (or, with
    ``wait=False``, fails clearly). Locking the folder leaves no lock files behind. Nothing is
    locked for stdout."""
    if str(path) == STDIO:
        yield
        return
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
    except OSError as e:
        raise OutputError(f"cannot open output folder: {e.strerror}", str(folder)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise OutputError("another run is writing into this folder (lock held)", str(folder)) from None
        yield
    finally:
        os.close(fd)
