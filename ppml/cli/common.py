"""What every command shares: one-line errors with documented exit codes, shared options."""
from __future__ import annotations

import functools
import os
import sys
import time

import click

from ..errors import PpmlError
from ..stages import TimedWatch

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
            from ..files import silence_stdout

            silence_stdout()
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


def max_key_bits_option(f):
    """The largest customer key the company scores (``serve`` and ``ServerModelRun.py``)."""
    from ..server import DEFAULT_MAX_KEY_BITS

    return click.option("--max-key-bits", default=DEFAULT_MAX_KEY_BITS, show_default=True,
                        type=click.IntRange(2048, 16384),
                        help="Largest customer key scored, in bits (refused beyond, before any arithmetic): the "
                             "work per answer grows with the cube of the key size.")(f)


def weak_key_option(f):
    return click.option("--allow-weak-key", is_flag=True,
                        help="Accept keys under 2048 bits. For tests only: such keys are not secure.")(f)


def model_option(f):
    from ..bundled import default_model_dir

    return click.option("--model", "model_dir", default=None, type=click.Path(file_okay=False),
                        callback=lambda ctx, param, value: default_model_dir() if value is None else value,
                        help="Folder holding col_tnf.pkl and Encrypted_ModelParameters/ (default: the current "
                             "folder if it holds either, else the laptop model installed with ppml).")(f)


def keys_option(f):
    return click.option("--keys", "keys_dir", default="PaillierKeys", show_default=True,
                        type=click.Path(file_okay=False), help="Folder of the customer's key pair.")(f)


def workers_option(f):
    from ..parallel import default_workers

    return click.option("-j", "--workers", type=click.IntRange(1, 512), default=default_workers(),
                        show_default="all cores",
                        help="Worker processes; results are identical for any number.")(f)


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


def wait_option(f):
    from ..folders import DEFAULT_WAIT

    return click.option("--wait", type=click.FloatRange(0), default=DEFAULT_WAIT, show_default=True,
                        metavar="SECONDS",
                        help="How long to wait for another run that holds the output folder's lock.")(f)


def limits_option(f):
    return click.option("--max-batch-mb", type=click.FloatRange(0, min_open=True), default=None, metavar="MB",
                        help="Largest batch (JSON Lines line, or batch object) to read; by default sized "
                             "from the document's key and model, generously.")(f)


def limits(max_batch_mb):
    from ..streams import Limits

    return Limits(batch_bytes=None if max_batch_mb is None else int(max_batch_mb * 2 ** 20))


class CommandWatch(TimedWatch):
    """The commands' :class:`ppml.stages.Watch`: times each step (reported with ``-v``) and
    draws a progress line on a terminal."""

    def __init__(self, label: str, verbose: bool, quiet: bool):
        super().__init__()
        self.label, self.verbose, self.quiet = label, verbose, quiet
        self.progress, self._t0 = None, time.perf_counter()

    def advance(self, records: int) -> None:
        if self.progress is None:
            self.progress = Progress(self.label, self.quiet)
        self.progress.update(records)

    def end(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None

    def report(self) -> None:
        if self.verbose:
            parts = " · ".join(f"{name} {seconds:.2f} s" for name, seconds in self.steps)
            click.echo(f"timing: {parts} · total {time.perf_counter() - self._t0:.2f} s", err=True)


def run_stage(source, output, process, *, default_file, default_folder, suffixes, out_name, quiet, what,
              wait) -> None:
    """One input → one output under the output folder's lock, or (cron) a folder of inputs →
    a folder of outputs, with an ``Error:`` line per failed input and a one-line summary (exit
    status 1 if anything failed). ``process(source, output)`` does the work; ``default_file``
    None means no output file (decryption printing its lines)."""
    from .. import folders

    if source is not None and str(source) != "-" and os.path.isdir(source):
        report = folders.run_folder(folders.folder_inputs(source, suffixes), output or default_folder, out_name,
                                   lambda src, dst: process(str(src), str(dst)), wait)
        for failed, message in report.errors:
            click.echo(f"Error: {failed}: {message}", err=True)
        if not quiet or report.failed:
            click.echo(f"{what} {source}: processed {report.processed}, skipped {report.skipped}, "
                       f"failed {report.failed}", err=True)
        if report.failed:
            sys.exit(1)
        return
    folders.run_one(process, source, output or default_file, wait)
