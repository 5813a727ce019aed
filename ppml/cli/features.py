"""``python -m ppml features``: raw records → the model's feature vectors, as CSV.

For customers who implement the protocol in another language: this is the one step that needs
ppml (the column transformer), and its output is exactly what ``CustomerEncrypts.py`` encodes.
"""
from __future__ import annotations

import click

from .common import model_option, quiet_option, reports_errors, say


@click.command("features", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("records", required=False, metavar="[RECORDS]")
@click.option("-o", "--output", default="-", show_default=True,
              help="CSV to write: an id column, then one column per model feature; - for stdout.")
@model_option
@quiet_option
@reports_errors
def features_command(records, output, model_dir, quiet):
    """Print the model's feature vector x of every record.

    RECORDS is a CSV of raw records as for CustomerEncrypts.py (- for stdin; without it, the
    bundled sample laptop). Each row of the output holds a record's id and its features in the
    model's order, as the shortest decimal that reads back as the exact float64. Records
    outside the model's declared bounds are refused as CustomerEncrypts.py refuses them.
    """
    from .. import folders, stages
    from ..records import is_laptop_transform

    spec, col_tnf = stages.customer_model(model_dir)
    if records is None and not is_laptop_transform(col_tnf):
        raise click.UsageError("RECORDS is required for this model (the sample laptop only fits the laptop model)")
    done = folders.run_one(lambda source, output: stages.features(
        source, output, spec=spec, col_tnf=col_tnf, protected=stages.model_files(model_dir)), records, output)
    say(quiet, f"Wrote the feature vectors of {done.records} record(s) to {output if output != '-' else '<stdout>'}")
