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
    import csv
    import io
    import sys
    from pathlib import Path

    from .. import artifacts, customer, files
    from ..errors import PpmlError

    spec = artifacts.load_spec(model_dir)
    col_tnf_path = Path(model_dir) / artifacts.COL_TNF
    col_tnf = artifacts.load_pickle(col_tnf_path)
    try:
        customer.check_transform(col_tnf, spec)
    except PpmlError as e:
        raise e.with_source(str(col_tnf_path))
    if records is None and not customer.is_laptop_transform(col_tnf):
        raise click.UsageError("RECORDS is required for this model (the sample laptop only fits the laptop model)")
    source = files.display_name(records) if records is not None else "sample laptop"
    chunks = (customer.iter_record_chunks(records, source, 64 * 32) if records is not None
              else customer.sample_records())
    out = files.AtomicFile(output) if output != files.STDIO else None
    count = 0
    try:
        for frame, ids in chunks:
            try:
                x = customer.prepare_features(col_tnf, spec, frame, ids)
                spec.codec.encode_features(x, spec.lower, spec.upper, spec.features, ids)  # the bounds check
            except PpmlError as e:
                raise e.with_source(source)
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            if count == 0:
                writer.writerow(["id", *spec.features])
            writer.writerows([i, *map(repr, map(float, row))] for i, row in zip(ids, x))
            count += len(ids)
            data = text.getvalue().encode()
            if out is None:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            else:
                out.write(data)
    except BaseException:
        if out is not None:
            out.abort()
        raise
    if out is not None:
        out.commit()
    say(quiet, f"Wrote the feature vectors of {count} record(s) to {output if output != '-' else '<stdout>'}")
