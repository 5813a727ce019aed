"""``CustomerDecrypts.py``: ``Encrypted_Predicted_value/answer.json`` → predictions (or a
folder of answers → a folder of CSVs)."""
from __future__ import annotations

from pathlib import Path

import click

from .common import (CommandWatch, keys_option, limits, limits_option, model_option, quiet_option,
                     reports_errors, run_stage, say, verbose_option, wait_option, weak_key_option, workers_option)

DEFAULT_INPUT = "Encrypted_Predicted_value/answer.json"
DEFAULT_FOLDER_OUTPUT = "Predictions"


@click.command(name="decrypt", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("answer", required=False, default=DEFAULT_INPUT, metavar="[ANSWER]")
@click.option("-o", "--output", default=None,
              help="Write CSV (columns id, prediction, and proba_<class> per class of a probabilistic "
                   "classifier, or prediction_<output> per output of a multi-output regression) to this "
                   "file, or - for CSV on stdout. "
                   "Without it, one readable line per record is printed. With a folder as ANSWER: "
                   f"the output folder of CSVs (default {DEFAULT_FOLDER_OUTPUT}/).")
@keys_option
@model_option
@workers_option
@wait_option
@limits_option
@weak_key_option
@verbose_option
@quiet_option
@reports_errors
def decrypt_command(answer, output, keys_dir, model_dir, workers, wait, max_batch_mb, allow_weak_key, verbose,
                    quiet):
    """Decrypt the company's encrypted predictions with the customer's private key.

    ANSWER is an encrypted-predictions document (default
    Encrypted_Predicted_value/answer.json), - for stdin, or a folder: then every *.json /
    *.jsonl in it whose CSV is missing or was made from other bytes is decrypted into the
    output folder (cron mode). Predictions are in the target's own units (for the laptop model:
    the price, exp of the model's log price), or a classifier's class label and probabilities.
    How to decode them (codec, outputs, link) comes from the model folder's Model.json
    (--model), never from the answer: an answer from another model or with another codec is
    refused.
    """
    from .. import artifacts, stages
    from ..keystore import KeyStore

    spec = artifacts.load_spec(model_dir)
    keys = stages.CustomerKeys(KeyStore(keys_dir), allow_weak=allow_weak_key)
    watch = CommandWatch("Decrypting", verbose, quiet)
    protected = stages.model_files(model_dir) + stages.model_files(".")

    def process(source, output):
        done = stages.decrypt(source, output, spec=spec, keys=keys, workers=workers, limits=limits(max_batch_mb),
                              protected=protected, watch=watch)
        watch.end()
        if output not in (None, "-"):
            say(quiet, f"Wrote {done.records} prediction(s) to {output}")

    run_stage(answer, output, process, default_file=None, default_folder=DEFAULT_FOLDER_OUTPUT,
              suffixes=(".json", ".jsonl"), out_name=lambda p: Path(p).stem + ".csv", quiet=quiet, what="decrypt",
              wait=wait)
    watch.report()
