"""Reading and writing the toolkit's files safely.

Every write is atomic: a temporary file in the destination folder, fsync, ``os.replace``, so a
killed run leaves the old file or the new one, never half of one; new files get the mode the
user's umask allows. ``-`` means stdin/stdout, where a write error (a full disk) is a failure
like any other, not a crash.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from .errors import DocumentError, OutputError

STDIO = "-"


def display_name(path) -> str:
    return "<stdin>" if str(path) == STDIO else str(path)


def ensure_folder(path, mode: int = 0o777) -> None:
    """Create the folder of output ``path`` if needed, with an error that says which part of
    the path is in the way."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=mode)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise OutputError(f"cannot write here: {blocker} is a file, not a folder", str(path)) from None
    except OSError as e:
        raise OutputError(f"cannot create folder: {e.strerror}", str(folder)) from None


class Output:
    """An output as a context manager: :meth:`commit` when the block succeeds, :meth:`abort`
    when it raises."""

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


class AtomicFile(Output):
    """A file that appears at ``path`` complete or not at all: bytes go to a temporary file in
    the same folder (created with ``mode`` before any byte lands, so a private key is never
    readable by others, not even briefly); ``commit`` fsyncs it and renames it into place,
    ``abort`` (or an exception inside ``with``) removes it and leaves ``path`` untouched."""

    def __init__(self, path, mode: int = 0o644, overwrite: bool = True):
        self.path = Path(path)
        self.overwrite = overwrite
        folder = self.path.parent
        ensure_folder(self.path)
        if self.path.is_dir():
            raise OutputError("is a folder; give a file name for the output", str(self.path))
        if not overwrite and self.path.exists():
            raise OutputError("already exists; refusing to overwrite it (use --force)", str(self.path))
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)
        except OSError as e:
            raise OutputError(f"cannot write here: {e.strerror}", str(folder)) from None
        os.fchmod(fd, mode & ~current_umask())
        self.file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as e:  # e.g. the disk is full: drop the partial file, keep the old one
            self.abort()
            raise OutputError(f"cannot write: {e.strerror}", str(self.path)) from None

    def flush(self) -> None:
        """Nothing to do: the file appears whole at :meth:`commit`."""

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
        except IsADirectoryError:  # a folder appeared at the path while we wrote
            self.abort()
            raise OutputError("is a folder; give a file name for the output", str(self.path)) from None
        except OSError as e:  # full disk at flush/fsync, a vanished folder …: the old file stays
            self.abort()
            raise OutputError(f"cannot write: {e.strerror}", str(self.path)) from None
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


class StdoutSink(Output):
    """stdout as a stage's output, with :class:`AtomicFile`'s interface. A write error (``-o -``
    into a full disk) is an :class:`OutputError`, and stdout is then pointed at ``/dev/null`` so
    the interpreter's last flush cannot fail again; a reader that went away (``| head``) is a
    ``BrokenPipeError``, which the commands turn into a quiet stop."""

    def write(self, data: bytes) -> None:
        self._guard(sys.stdout.buffer.write, data)

    def flush(self) -> None:
        self._guard(sys.stdout.buffer.flush)

    commit = flush

    def abort(self) -> None:
        """Nothing to take back: what was written has gone downstream (a JSON Lines reader
        refuses a stream without its end line)."""

    @staticmethod
    def _guard(operation, *args) -> None:
        try:
            operation(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            silence_stdout()
            raise OutputError(f"cannot write: {e.strerror}", "<stdout>") from None


class HeldStdout(StdoutSink):
    """stdout that receives nothing until :meth:`commit`: the bytes wait in a temporary file
    (memory up to 8 MiB, then disk), so an output found wrong part-way (an answer that does not
    match its request) prints nothing at all."""

    def __init__(self):
        self._held = tempfile.SpooledTemporaryFile(max_size=8 << 20)

    def write(self, data: bytes) -> None:
        self._held.write(data)

    def flush(self) -> None:
        """Nothing yet: everything goes out at :meth:`commit`."""

    def commit(self) -> None:
        self._held.seek(0)
        while chunk := self._held.read(1 << 20):
            super().write(chunk)
        super().flush()
        self._held.close()

    def abort(self) -> None:
        self._held.close()


def silence_stdout() -> None:
    """Point file descriptor 1 at ``/dev/null`` (after a failed or unwanted write to it)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes, mode: int = 0o644, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode``."""
    with AtomicFile(path, mode, overwrite) as f:
        f.write(data)


def dump_json(obj) -> str:
    """The one place documents become JSON text (compact, one object, trailing newline)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n"


#: Largest file read whole: a key, a model file, training data (a model with a million
#: features fits in a few MiB).
MAX_FILE_BYTES = 256 * 2 ** 20


def read_bytes(path, limit: int = MAX_FILE_BYTES) -> bytes:
    """Bytes of ``path`` (or stdin for ``-``), at most ``limit`` of them, with a one-line error
    when it cannot be read or is longer (``/dev/zero`` must not exhaust memory)."""
    try:
        if str(path) == STDIO:
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        if len(data) > limit:
            raise DocumentError(f"is longer than the {limit:,} bytes such a file can be", display_name(path))
        return data
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
    return parse_json(data, display_name(path))


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str):
    raise _NotJson(f"{name} is not a JSON number")


def parse_json(data: bytes, name: str, lineno: int | None = None):
    """Strict JSON (no ``NaN``/``Infinity``, which our writers never produce) with one-line
    errors naming ``name`` and, for a JSON Lines stream, the line."""
    where = f"line {lineno}: " if lineno else ""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise DocumentError(f"{where}not UTF-8 text" if lineno else "is not UTF-8 text", name) from None
    except json.JSONDecodeError as e:
        at = f"line {lineno} column {e.colno}" if lineno else f"line {e.lineno} column {e.colno}"
        raise DocumentError(f"invalid JSON at {at}: {e.msg}", name) from None
    except _NotJson as e:
        raise DocumentError(f"{where}invalid JSON: {e}", name) from None
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        raise DocumentError(f"{where}invalid JSON: a number has too many digits", name) from None
    except RecursionError:
        raise DocumentError(f"{where}JSON nested too deeply", name) from None


#: Folders this process holds locked ((st_dev, st_ino) → depth): locking one again, e.g. a key
#: folder that is also the output folder, must not wait for ourselves.
_HELD: dict = {}


@contextlib.contextmanager
def output_lock(path, timeout: float | None = None, folder_mode: int = 0o777):
    """Hold an exclusive ``fcntl`` lock on the folder of ``path`` while a stage writes into it,
    so two cron runs never write the same outputs at once; the second waits, up to ``timeout``
    seconds (None: for ever, 0: not at all), then fails with a clear error. Locking the folder
    leaves no lock files behind. Nothing is locked for stdout. Under the lock, temporary files
    a killed run left for ``path`` are removed (every writer of ``path`` holds this lock, so
    they cannot be in use)."""
    if str(path) == STDIO:
        yield
        return
    folder = Path(path).parent
    held = _folder_key(folder)
    if held in _HELD:
        _HELD[held] += 1
        try:
            remove_stale_temps(path)
            yield
        finally:
            _HELD[held] -= 1
        return
    while True:
        created = [f for f in (folder, *folder.parents) if not f.exists()]
        ensure_folder(path, folder_mode)
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:  # removed by a run that just failed: create it again
            continue
        except OSError as e:
            raise OutputError(f"cannot open output folder: {e.strerror}", str(folder)) from None
        _lock(fd, folder, timeout)
        # While we waited, the run before may have removed the folder (see below): lock the one
        # that is at the path now, or two runs could write into it at once.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(folder)):
                break
        except OSError:
            pass
        os.close(fd)
    held = _folder_key(folder)
    _HELD[held] = 1
    try:
        remove_stale_temps(path)
        yield
    finally:
        del _HELD[held]
        # A failed run leaves nothing behind, not even the folders it created for its output
        # (rmdir only removes them while they are empty).
        for f in created:
            try:
                os.rmdir(f)
            except OSError:
                break
        os.close(fd)


def _lock(fd: int, folder: Path, timeout: float | None) -> None:
    """``flock`` the folder, waiting at most ``timeout`` seconds."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                waited = f"for {timeout:g} s" if timeout else "(not waiting)"
                raise OutputError(f"another run is writing into this folder and held its lock {waited}; try "
                                  "again later, or wait longer with --wait SECONDS", str(folder)) from None
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)


def _folder_key(folder: Path):
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _temp_pattern(name: str = ".+") -> re.Pattern:
    """The names of the temporary files :class:`AtomicFile` makes: ``.NAME.XXXXXXXX.tmp``."""
    return re.compile(rf"\.{name}\.[a-z0-9_]{{8}}\.tmp")


def remove_stale_temps(path) -> None:
    """Remove the temporary files :class:`AtomicFile` makes for ``path``; call only while no
    other writer of ``path`` can be running."""
    _remove_matching(Path(path).parent, _temp_pattern(re.escape(Path(path).name)))


def remove_stale_temps_in(folder) -> None:
    """Remove every temporary file :class:`AtomicFile` left in ``folder`` (a killed run's); call
    only while holding the folder's lock."""
    _remove_matching(Path(folder), _temp_pattern())


def _remove_matching(folder: Path, pattern: re.Pattern) -> None:
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if pattern.fullmatch(name):
            with contextlib.suppress(OSError):
                os.unlink(folder / name)
