"""``CustomerDecrypts.py``: ``Encrypted_Predicted_value/answer.json`` → predictions (or a
folder of answers → a folder of CSVs)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import (Progress, StageTimer, keys_option, model_option, quiet_option, refuse_overwriting,
                     reports_errors, run_stage, say, verbose_option, weak_key_option, with_source,
                     workers_option)

DEFAULT_INPUT = "Encrypted_Predicted_value/answer.json"
DEFAULT_FOLDER_OUTPUT = "Predictions"


@click.command(name="decrypt", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("answer", required=False, default=DEFAULT_INPUT, metavar="[ANSWER]")
@click.option("-o", "--output", default=None,
              help="Write CSV (columns id, prediction) to this file, or - for CSV on stdout. "
                   "Without it, one readable line per record is printed. With a folder as ANSWER: "
                   f"the output folder of CSVs (default {DEFAULT_FOLDER_OUTPUT}/).")
@keys_option
@model_option
@workers_option
@weak_key_option
@verbose_option
@quiet_option
@reports_errors
def decrypt_command(answer, output, keys_dir, model_dir, workers, allow_weak_key, verbose, quiet):
    """Decrypt the company's encrypted predictions with the customer's private key.

    ANSWER is an encrypted-predictions document (default
    Encrypted_Predicted_value/answer.json), - for stdin, or a folder: then every *.json /
    *.jsonl in it without an up-to-date CSV is decrypted into the output folder (cron mode).
    Predictions are in the target's own units (for the laptop model: the price, exp of the
    model's log price). How to decode them (codec, target, transform) comes from the model
    folder's Model.json (--model), never from the answer: an answer from another model or
    with another codec is refused.
    """
    from .. import artifacts
    from ..keystore import KeyStore

    timer = StageTimer(verbose)
    spec = artifacts.load_spec(model_dir)
    store = KeyStore(keys_dir)
    keys = _LazyKey(store, allow_weak_key)
    job = dict(keys=keys, spec=spec, workers=workers, timer=timer, quiet=quiet)
    run_stage(answer, output, lambda src, dst: _decrypt_file(src, dst, **job), default_file=None,
              default_folder=DEFAULT_FOLDER_OUTPUT, suffixes=(".json", ".jsonl"),
              out_name=lambda p: Path(p).stem + ".csv", quiet=quiet, what="decrypt")
    timer.report()


def _decrypt_file(answer, output, keys, spec, workers, timer, quiet):
    from .. import customer, files
    from ..documents import EncryptedPredictions, check_count
    from ..errors import PpmlError
    from ..streams import DocumentReader

    source = files.display_name(answer)
    with timer.stage("read"):
        reader = DocumentReader(answer)  # waits for the first line of a pipe
    with timer.stage("keys"):
        private = keys.get()
    try:
        doc = EncryptedPredictions.parse_header(reader.header, private.public)
        customer.check_answer(doc, spec, private)
    except PpmlError as e:
        raise e.with_source(source)
    refuse_overwriting(output, [answer], keys.store)
    parsed = with_source((doc.parse_batch(b, i, private.public) for i, b in enumerate(reader.batches())), source)
    batches = records = 0
    progress = Progress("Decrypting", quiet)

    def rows():
        nonlocal batches, records
        for pairs in with_source(customer.decrypt_stream(doc, parsed, private, spec, workers), source):
            batches += 1
            records += len(pairs)
            progress.update(len(pairs))
            yield pairs
        try:
            check_count(reader.declared_records, batches, records)
        except PpmlError as e:
            raise e.with_source(source)

    with timer.stage("decrypt"):
        if output is None:
            # Printed only once the whole answer has been checked (a person reads this; CSV
            # output streams instead).
            lines = [f"{rid}: {spec.target} = {_readable(value)}\n" for pairs in rows() for rid, value in pairs]
            click.echo("".join(lines), nl=False)
        elif output == "-":
            sys.stdout.buffer.write(b"id,prediction\n")
            for pairs in rows():
                sys.stdout.buffer.write(_csv_rows(pairs))
            sys.stdout.buffer.flush()
        else:
            with files.AtomicFile(output) as sink:
                sink.write(b"id,prediction\n")
                for pairs in rows():
                    sink.write(_csv_rows(pairs))
    progress.close()
    if output not in (None, "-"):
        say(quiet, f"Wrote {records} prediction(s) to {output}")


class _LazyKey:
    """The private key, loaded after the first input has been opened: in a shell pipeline the
    encrypting stage may still be creating the key pair when this stage starts."""

    def __init__(self, store, allow_weak: bool):
        self.store, self.allow_weak, self._private = store, allow_weak, None

    def get(self):
        if self._private is None:
            self._private = self.store.load_private(allow_weak=self.allow_weak)
        return self._private


def _readable(value: float) -> str:
    """Prices and salaries as 62,996.92; small values with six significant digits, not 0.00."""
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.6g}"


def _csv_rows(pairs) -> bytes:
    return "".join(f"{_csv_field(rid)},{value!r}\n" for rid, value in pairs).encode()


def _csv_field(value) -> str:
    text = str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
