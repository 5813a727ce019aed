"""``ServerModelRun.py``: ``Encrypted_Data/data.json`` → ``Encrypted_Predicted_value/answer.json``.

Runs with the public key carried in the document only; imports neither pandas nor sklearn.
"""
from __future__ import annotations

import click

from .common import quiet_option, reports_errors, say, weak_key_option

DEFAULT_INPUT = "Encrypted_Data/data.json"
DEFAULT_OUTPUT = "Encrypted_Predicted_value/answer.json"


@click.command(name="score", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("encrypted", required=False, default=DEFAULT_INPUT, metavar="[ENCRYPTED]")
@click.option("-o", "--output", default=DEFAULT_OUTPUT, show_default=True,
              help="Encrypted-predictions document to write; - for stdout.")
@click.option("--params", "params_dir", default="Encrypted_ModelParameters", show_default=True,
              type=click.Path(file_okay=False),
              help="Folder with the model's Model.json, Coefficients.json and Intercept.json.")
@weak_key_option
@quiet_option
@reports_errors
def score_command(encrypted, output, params_dir, allow_weak_key, quiet):
    """Score encrypted features with the company's model, never seeing them.

    ENCRYPTED is an encrypted-features document (default Encrypted_Data/data.json), or - for
    stdin. Every result is re-randomized before it leaves.
    """
    from .. import artifacts, files, server
    from ..documents import EncryptedFeatures
    from ..errors import PpmlError

    params = artifacts.load_parameters(params_dir)
    try:
        doc = EncryptedFeatures.from_dict(files.read_json(encrypted), allow_weak=allow_weak_key)
        answer = server.score_encrypted(doc, params)
    except PpmlError as e:
        raise e.with_source(files.display_name(encrypted))
    with files.output_lock(output):
        files.write_json(output, answer.to_dict())
    say(quiet, f"Scored {answer.records} record(s) in {len(answer.batches)} batch(es) → "
               f"{files.display_name(output) if output != '-' else '<stdout>'}")
