"""``ServerModelRun.py``: ``Encrypted_Data/data.json`` → ``Encrypted_Predicted_value/answer.json``
(or a folder of documents → a folder of answers).

Runs with the public key carried in each document only; imports neither pandas nor sklearn.
"""
from __future__ import annotations

from pathlib import Path

import click

from .common import (CommandWatch, limits, limits_option, max_key_bits_option, quiet_option, reports_errors,
                     run_stage, say, scheduler_option, verbose_option, wait_option, weak_key_option,
                     workers_option)

DEFAULT_INPUT = "Encrypted_Data/data.json"
DEFAULT_OUTPUT = "Encrypted_Predicted_value/answer.json"
DEFAULT_PARAMS = "Encrypted_ModelParameters"


@click.command(name="score", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("encrypted", required=False, default=DEFAULT_INPUT, metavar="[ENCRYPTED]")
@click.option("-o", "--output", default=None,
              help=f"Encrypted-predictions document to write (default {DEFAULT_OUTPUT}); - for "
                   "stdout (JSON Lines). A name ending in .jsonl is written as JSON Lines. With a "
                   "folder as ENCRYPTED: the output folder (default Encrypted_Predicted_value/).")
@click.option("--params", "params_dir", default=None, type=click.Path(file_okay=False),
              help=f"Folder with Model.json, Coefficients.json and Intercept.json, the plaintext weights "
                   f"despite the folder's name (default {DEFAULT_PARAMS}/ "
                   "if the current folder has one, else the laptop model's installed with ppml).")
@click.option("--model", "model_dir", default=None, type=click.Path(file_okay=False),
              help="A trained model folder (`python -m ppml train --out-dir`): uses its "
                   "Encrypted_ModelParameters/. Not together with --params.")
@click.option("--pools", "pools_dir", default="NoisePools", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False),
              help="Folder of precomputed r^n pools (`python -m ppml precompute --server`): the pool for the "
                   "document's key, if there is one, supplies the answers' re-randomizers.")
@workers_option
@scheduler_option
@wait_option
@limits_option
@max_key_bits_option
@weak_key_option
@verbose_option
@quiet_option
@reports_errors
def score_command(encrypted, output, params_dir, model_dir, pools_dir, workers, scheduler, wait, max_batch_mb,
                  max_key_bits, allow_weak_key, verbose, quiet):
    """Score encrypted features with the company's model, never seeing them.

    ENCRYPTED is an encrypted-features document (default Encrypted_Data/data.json), - for
    stdin, or a folder: then every *.json / *.jsonl in it whose answer is missing or was made
    from other bytes is scored into the output folder (cron mode). Every answer is masked above
    its declared records and re-randomized with the server's own randomness before it leaves.
    """
    from .. import artifacts, files, stages
    from ..bundled import default_params_dir

    if params_dir is not None and model_dir is not None:
        raise click.UsageError("give --params or --model, not both")
    if model_dir is not None:
        params_dir = str(Path(model_dir) / artifacts.PARAMS_DIR)
    params_dir = params_dir or default_params_dir()
    watch = CommandWatch("Scoring", verbose, quiet)
    with watch.step("load model"):
        params = artifacts.load_parameters(params_dir)
    protected = stages.model_files(Path(params_dir).parent) + stages.model_files(".")

    def process(source, output):
        done = stages.score(source, output, params=params, workers=workers, scheduler=scheduler,
                            allow_weak=allow_weak_key, max_key_bits=max_key_bits, limits=limits(max_batch_mb),
                            protected=protected, watch=watch, pools_dir=pools_dir)
        watch.end()
        say(quiet, f"Scored {done.records} record(s) in {done.batches} batch(es) → "
                   f"{files.display_name(output) if output != '-' else '<stdout>'}")

    run_stage(encrypted, output, process, default_file=DEFAULT_OUTPUT,
              default_folder=str(Path(DEFAULT_OUTPUT).parent), suffixes=(".json", ".jsonl"),
              out_name=lambda p: p.name, quiet=quiet, what="score", wait=wait)
    watch.report()
