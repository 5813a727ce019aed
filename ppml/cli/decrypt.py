"""``CustomerDecrypts.py``: ``Encrypted_Predicted_value/answer.json`` → predictions."""
from __future__ import annotations

import csv
import io

import click

from .common import keys_option, quiet_option, reports_errors, say, weak_key_option

DEFAULT_INPUT = "Encrypted_Predicted_value/answer.json"


@click.command(name="decrypt", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("answer", required=False, default=DEFAULT_INPUT, metavar="[ANSWER]")
@click.option("-o", "--output", default=None,
              help="Write CSV (columns id, prediction) to this file, or - for CSV on stdout. "
                   "Without it, one readable line per record is printed.")
@keys_option
@weak_key_option
@quiet_option
@reports_errors
def decrypt_command(answer, output, keys_dir, allow_weak_key, quiet):
    """Decrypt the company's encrypted predictions with the customer's private key.

    ANSWER is an encrypted-predictions document (default
    Encrypted_Predicted_value/answer.json), or - for stdin. Predictions are in the target's
    own units (for the laptop model: the price, exp of the model's log price).
    """
    from .. import customer, files
    from ..documents import EncryptedPredictions
    from ..errors import PpmlError
    from ..keystore import KeyStore

    private = KeyStore(keys_dir).load_private(allow_weak=allow_weak_key)
    try:
        doc = EncryptedPredictions.from_dict(files.read_json(answer), private.public)
        rows = customer.decrypt_predictions(doc, private)
    except PpmlError as e:
        raise e.with_source(files.display_name(answer))
    if output is None:
        for rid, value in rows:
            click.echo(f"{rid}: {doc.target} = {value:,.2f}")
        return
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "prediction"])
    writer.writerows((rid, repr(value)) for rid, value in rows)
    with files.output_lock(output):
        files.write_text(output, buf.getvalue())
    if output != "-":
        say(quiet, f"Wrote {len(rows)} prediction(s) to {output}")
