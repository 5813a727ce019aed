"""What every command shares: one-line errors with documented exit codes, shared options."""
from __future__ import annotations

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


