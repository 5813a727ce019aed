"""``ServerModelRun.py``: ``Encrypted_Data/data.json`` → ``Encrypted_Predicted_value/answer.json``
(or a folder of documents → a folder of answers).

Runs with the public key carried in each document only; imports neither pandas nor sklearn.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import click

from .common import (Progress, StageTimer, quiet_option, refuse_overwriting, reports_errors,
                     run_stage, say, scheduler_option, verbose_option, weak_key_option, with_source,
                     workers_option)

DEFAULT_INPUT = "Encrypted_Data/data.json"
DEFAULT_OUTPUT = "Encrypted_Predicted_value/answer.json"
DEFAULT_PARAMS = "Encrypted_ModelParameters"
#: Batches read ahead to size the re-randomization table (fewer means the whole input).
PEEK_BATCHES = 64


@click.command(name="score", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("encrypted", required=False, default=DEFAULT_INPUT, metavar="[ENCRYPTED]")
@click.option("-o", "--output", default=None,
              help=f"Encrypted-predictions document to write (default {DEFAULT_OUTPUT}); - for "
                   "stdout (JSON Lines). A name ending in .jsonl is written as JSON Lines. With a "
                   "folder as ENCRYPTED: the output folder (default Encrypted_Predicted_value/).")
@click.option("--params", "params_dir", default=None, type=click.Path(file_okay=False),
              help=f"Folder with Model.json, Coefficients.json and Intercept.json (default {DEFAULT_PARAMS}/).")
@click.option("--model", "model_dir", default=None, type=click.Path(file_okay=False),
              help="A trained model folder (`python -m ppml train --out-dir`): uses its "
                   "Encrypted_ModelParameters/. Not together with --params.")
@workers_option
@scheduler_option
@weak_key_option
@verbose_option
@quiet_option
@reports_errors
def score_command(encrypted, output, params_dir, model_dir, workers, scheduler, allow_weak_key, verbose, quiet):
    """Score encrypted features with the company's model, never seeing them.

    ENCRYPTED is an encrypted-features document (default Encrypted_Data/data.json), - for
    stdin, or a folder: then every *.json / *.jsonl in it without an up-to-date answer is
    scored into the output folder (cron mode). Every result is re-randomized before it leaves.
    """
    from .. import artifacts

    if params_dir is not None and model_dir is not None:
        raise click.UsageError("give --params or --model, not both")
    if model_dir is not None:
        params_dir = str(Path(model_dir) / artifacts.PARAMS_DIR)
    timer = StageTimer(verbose)
    with timer.stage("load model"):
        params = artifacts.load_parameters(params_dir or DEFAULT_PARAMS)
    job = dict(params=params, workers=workers, scheduler=scheduler, allow_weak=allow_weak_key, timer=timer,
               quiet=quiet)
    run_stage(encrypted, output, lambda src, dst: _score_file(src, dst, **job), default_file=DEFAULT_OUTPUT,
              default_folder=str(Path(DEFAULT_OUTPUT).parent), suffixes=(".json", ".jsonl"),
              out_name=lambda p: p.name, quiet=quiet, what="score")
    timer.report()


def _score_file(encrypted, output, params, workers, scheduler, allow_weak, timer, quiet):
    from .. import files, server
    from ..documents import EncryptedFeatures, check_count
    from ..errors import PpmlError
    from ..parallel import LARGE_INPUT_BATCHES
    from ..streams import DocumentReader, DocumentWriter

    source = files.display_name(encrypted)
    with timer.stage("read"):
        reader = DocumentReader(encrypted)
        try:
            doc = EncryptedFeatures.parse_header(reader.header, allow_weak=allow_weak)
            server.check_compatible(doc, params)
        except PpmlError as e:
            raise e.with_source(source)
        refuse_overwriting(output, [encrypted])
        raw = with_source(reader.batches(), source)
        peek = list(itertools.islice(raw, PEEK_BATCHES))
    expected = len(peek) if len(peek) < PEEK_BATCHES else LARGE_INPUT_BATCHES
    parsed = with_source((doc.parse_batch(b, i) for i, b in enumerate(itertools.chain(peek, raw))), source)
    answer = server.predictions_header(doc, params)
    progress = Progress("Scoring", quiet)
    with timer.stage("score"), DocumentWriter(output, answer.header()) as writer:
        for batch in server.score_stream(doc, parsed, params, workers, expected, scheduler):
            writer.write(answer.batch_dict(batch), len(batch.ids))
            progress.update(len(batch.ids))
        try:
            check_count(reader.declared_records, writer.batches, writer.records)
        except PpmlError as e:
            raise e.with_source(source)
    progress.close()
    say(quiet, f"Scored {writer.records} record(s) in {writer.batches} batch(es) → "
               f"{files.display_name(output) if output != '-' else '<stdout>'}")
