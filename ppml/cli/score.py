"""``ServerModelRun.py``: ``Encrypted_Data/data.json`` → ``Encrypted_Predicted_value/answer.json``.

Runs with the public key carried in the document only; imports neither pandas nor sklearn.
"""
from __future__ import annotations

import itertools

import click

from .common import quiet_option, reports_errors, say, weak_key_option, with_source, workers_option

DEFAULT_INPUT = "Encrypted_Data/data.json"
DEFAULT_OUTPUT = "Encrypted_Predicted_value/answer.json"
#: Batches read ahead to size the re-randomization table (fewer means the whole input).
PEEK_BATCHES = 64


@click.command(name="score", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("encrypted", required=False, default=DEFAULT_INPUT, metavar="[ENCRYPTED]")
@click.option("-o", "--output", default=DEFAULT_OUTPUT, show_default=True,
              help="Encrypted-predictions document to write; - for stdout (JSON Lines). "
                   "A name ending in .jsonl is written as JSON Lines.")
@click.option("--params", "params_dir", default="Encrypted_ModelParameters", show_default=True,
              type=click.Path(file_okay=False),
              help="Folder with the model's Model.json, Coefficients.json and Intercept.json.")
@workers_option
@weak_key_option
@quiet_option
@reports_errors
def score_command(encrypted, output, params_dir, workers, allow_weak_key, quiet):
    """Score encrypted features with the company's model, never seeing them.

    ENCRYPTED is an encrypted-features document (default Encrypted_Data/data.json), or - for
    stdin. Every result is re-randomized before it leaves.
    """
    from .. import artifacts, files, server
    from ..documents import EncryptedFeatures, check_count
    from ..errors import PpmlError
    from ..streams import DocumentReader, DocumentWriter

    params = artifacts.load_parameters(params_dir)
    source = files.display_name(encrypted)
    reader = DocumentReader(encrypted)
    try:
        doc = EncryptedFeatures.parse_header(reader.header, allow_weak=allow_weak_key)
        server.check_compatible(doc, params)
    except PpmlError as e:
        raise e.with_source(source)
    raw = with_source(reader.batches(), source)
    peek = list(itertools.islice(raw, PEEK_BATCHES))
    expected = len(peek) if len(peek) < PEEK_BATCHES else 10_000
    parsed = with_source((doc.parse_batch(b, i) for i, b in enumerate(itertools.chain(peek, raw))), source)
    answer = server.predictions_header(doc, params)
    with files.output_lock(output), DocumentWriter(output, answer.header()) as writer:
        for batch in server.score_stream(doc, parsed, params, workers, expected):
            writer.write(answer.batch_dict(batch), len(batch.ids))
        try:
            check_count(reader.declared_records, writer.batches, writer.records)
        except PpmlError as e:
            raise e.with_source(source)
    say(quiet, f"Scored {writer.records} record(s) in {writer.batches} batch(es) → "
               f"{files.display_name(output) if output != '-' else '<stdout>'}")
