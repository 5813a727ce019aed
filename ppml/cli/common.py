"""What every command shares: one-line errors with documented exit codes, shared options."""
from __future__ import annotations

import contextlib
import functools
import sys

import click

from ..errors import PpmlError

#: Exit statuses (documented in README): 1 failure, 2 usage, 3 invalid input, 4 key/model mismatch.
EXIT_INTERNAL = 70


class ToolError(click.ClickException):
    """A library error shown as ``Error: <file>: <what>`` with the library's exit status."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def reports_errors(f):
    """Turn library errors into one line and a status; no traceback unless ``--debug``."""

    @functools.wraps(f)
    def wrapper(*args, debug: bool = False, **kwargs):
        try:
            return f(*args, **kwargs)
        except PpmlError as e:
            if debug:
                raise
            raise ToolError(str(e), e.exit_code) from None
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly, like any Unix filter.
            _silence_stdout()
            sys.exit(1)
        except KeyboardInterrupt:
            raise click.Abort() from None
        except (click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as e:  # a bug: still one line for cron, the traceback on request
            if debug:
                raise
            raise ToolError(f"internal error: {type(e).__name__}: {e} (run again with --debug for details)",
                            EXIT_INTERNAL) from None

    return click.option("--debug", is_flag=True, help="Show a traceback on errors.")(wrapper)


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def weak_key_option(f):
    return click.option("--allow-weak-key", is_flag=True,
                        help="Accept keys under 2048 bits. For tests only: such keys are not secure.")(f)


def model_option(f):
    return click.option("--model", "model_dir", default=".", show_default=True,
                        type=click.Path(file_okay=False),
                        help="Folder holding col_tnf.pkl and Encrypted_ModelParameters/.")(f)


def keys_option(f):
    return click.option("--keys", "keys_dir", default="PaillierKeys", show_default=True,
                        type=click.Path(file_okay=False), help="Folder of the customer's key pair.")(f)


def workers_option(f):
    from ..parallel import default_workers

    return click.option("-j", "--workers", type=click.IntRange(1, 512), default=default_workers(),
                        show_default="all cores",
                        help="Worker processes; results are identical for any number.")(f)


def with_source(items, source: str):
    """Re-raise library errors from a lazy stream with the file they came from."""
    try:
        yield from items
    except PpmlError as e:
        raise e.with_source(source)


def quiet_option(f):
    return click.option("-q", "--quiet", is_flag=True, help="Print nothing on stderr but errors.")(f)


def say(quiet: bool, message: str) -> None:
    if not quiet:
        click.echo(message, err=True)




def verbose_option(f):
    return click.option("-v", "--verbose", is_flag=True, help="Report the time each stage took.")(f)


def scheduler_option(f):
    return click.option("--scheduler", metavar="ADDRESS", default=None,
                        help="Run the batches on a Dask cluster (tcp://host:8786) instead of local "
                             "processes. Needs the 'dask' extra.")(f)


class Progress:
    """``Encrypting: 3,069 records (1,520/s)`` redrawn on stderr while work goes on — only
    when stderr is a terminal and not ``--quiet``, so cron mail and pipes stay clean."""

    def __init__(self, label: str, quiet: bool = False):
        import time

        self.label, self.count, self._clock = label, 0, time.perf_counter
        self.start = self._clock()
        self.enabled = not quiet and sys.stderr.isatty()

    def update(self, records: int) -> None:
        self.count += records
        if self.enabled:
            rate = self.count / max(self._clock() - self.start, 1e-9)
            sys.stderr.write(f"\r{self.label}: {self.count:,} records ({rate:,.0f}/s)")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.count:
            sys.stderr.write("\n")
            sys.stderr.flush()


class StageTimer:
    """Wall time per stage, printed on stderr with ``-v``."""

    def __init__(self, enabled: bool):
        import time

        self.enabled, self._clock, self.stages = enabled, time.perf_counter, []
        self._t0 = self._clock()

    @contextlib.contextmanager
    def stage(self, name: str):
        start = self._clock()
        try:
            yield
        finally:
            self.stages.append((name, self._clock() - start))

    def report(self) -> None:
        if self.enabled:
            parts = " · ".join(f"{name} {seconds:.2f} s" for name, seconds in self.stages)
            click.echo(f"timing: {parts} · total {self._clock() - self._t0:.2f} s", err=True)


def refuse_overwriting(output, inputs=(), keys=None) -> None:
    """An output must never replace an input of the same run, nor a key file: inputs are never
    modified, and a key pair is only ever replaced by ``keygen --force``."""
    import os

    from ..errors import OutputError

    if output is None or str(output) == "-" or not os.path.exists(output):
        return
    protected = [(p, "is also the input; choose another output") for p in inputs if p and str(p) != "-"]
    if keys is not None:
        protected += [(keys.private_path, "is the private key; refusing to overwrite it (choose another output)"),
                      (keys.public_path, "is the public key; refusing to overwrite it (choose another output)")]
    for path, message in protected:
        try:
            same = os.path.samefile(output, path)
        except OSError:
            continue
        if same:
            raise OutputError(message, str(output))


def is_folder(path) -> bool:
    import os

    return path is not None and str(path) != "-" and os.path.isdir(path)


def run_folder(inputs, out_dir, out_name, process, quiet: bool, what: str) -> None:
    """Cron mode: ``process(input, output)`` for every input whose output is missing or older
    than it; one failure does not stop the others. Prints ``Error:`` lines for failures and a
    one-line summary; exits 1 if anything failed. Holds the output folder's lock throughout,
    so a second run waits and then finds the work done."""
    import os
    from pathlib import Path

    from ..files import output_lock

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ToolError(f"{out_dir}: is not a folder (folder mode writes one output per input)")
    processed = skipped = failed = 0
    with output_lock(out_dir / ".lock-anchor"):
        for source in sorted(inputs):
            target = out_dir / out_name(source)
            try:
                refuse_overwriting(target, [source])  # before the up-to-date test it would pass
                if target.exists() and os.stat(target).st_mtime >= os.stat(source).st_mtime:
                    skipped += 1
                    continue
                process(source, target)
                processed += 1
            except PpmlError as e:
                failed += 1
                click.echo(f"Error: {e.with_source(str(source))}", err=True)
    summary = f"{what}: processed {processed}, skipped {skipped}, failed {failed}"
    if not quiet or failed:
        click.echo(summary, err=True)
    if failed:
        sys.exit(1)


def run_stage(source, output, process, *, default_file, default_folder, suffixes, out_name, quiet, what) -> None:
    """One input → one output under the output folder's lock, or (cron) a folder of inputs →
    a folder of outputs (:func:`run_folder`). ``process(source, output)`` does the work;
    ``default_file`` None means no output file (decryption printing its lines)."""
    if is_folder(source):
        run_folder(folder_inputs(source, suffixes), output or default_folder, out_name,
                   lambda src, dst: process(str(src), str(dst)), quiet, f"{what} {source}")
        return
    from ..files import output_lock

    output = output or default_file
    with output_lock(output) if output is not None else contextlib.nullcontext():
        process(source, output)


def folder_inputs(folder, suffixes: tuple) -> list:
    from pathlib import Path

    return [p for p in Path(folder).iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name.endswith(suffixes)]
