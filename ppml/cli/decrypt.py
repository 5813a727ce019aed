"""``CustomerDecrypts.py``: ``Encrypted_Predicted_value/answer.json`` → predictions."""
from __future__ import annotations

import click

from .common import keys_option, quiet_option, reports_errors, say, weak_key_option, with_source, workers_option

DEFAULT_INPUT = "Encrypted_Predicted_value/answer.json"


@click.command(name="decrypt", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("answer", required=False, default=DEFAULT_INPUT, metavar="[ANSWER]")
@click.option("-o", "--output", default=None,
              help="Write CSV (columns id, prediction) to this file, or - for CSV on stdout. "
                   "Without it, one readable line per record is printed.")
@keys_option
@workers_option
@weak_key_option
@quiet_option
@reports_errors
def decrypt_command(answer, output, keys_dir, workers, allow_weak_key, quiet):
    """Decrypt the company's encrypted predictions with the customer's private key.

    ANSWER is an encrypted-predictions document (default
    Encrypted_Predicted_value/answer.json), or - for stdin. Predictions are in the target's
    own units (for the laptop model: the price, exp of the model's log price).
    """
    import sys

    from .. import customer, files
    from ..documents import EncryptedPredictions, check_count
    from ..errors import PpmlError
    from ..keystore import KeyStore
    from ..streams import DocumentReader

    private = KeyStore(keys_dir).load_private(allow_weak=allow_weak_key)
    source = files.display_name(answer)
    reader = DocumentReader(answer)
    try:
        doc = EncryptedPredictions.parse_header(reader.header, private.public)
    except PpmlError as e:
        raise e.with_source(source)
    parsed = with_source((doc.parse_batch(b, i, private.public) for i, b in enumerate(reader.batches())), source)
    batches = records = 0

    def rows():
        nonlocal batches, records
        for pairs in customer.decrypt_stream(doc, parsed, private, workers):
            batches += 1
            records += len(pairs)
            yield pairs
        try:
            check_count(reader.declared_records, batches, records)
        except PpmlError as e:
            raise e.with_source(source)

    if output is None:
        for pairs in rows():
            click.echo("".join(f"{rid}: {doc.target} = {value:,.2f}\n" for rid, value in pairs), nl=False)
        return
    sink = None if output == "-" else files.AtomicFile(output)
    emit = sys.stdout.buffer.write if sink is None else sink.write
    with files.output_lock(output):
        try:
            emit(b"id,prediction\n")
            for pairs in rows():
                emit("".join(f"{_csv_field(rid)},{value!r}\n" for rid, value in pairs).encode())
        except BaseException:
            if sink is not None:
                sink.abort()
            raise
        if sink is None:
            sys.stdout.buffer.flush()
        else:
            sink.commit()
    if output != "-":
        say(quiet, f"Wrote {records} prediction(s) to {output}")


def _csv_field(value) -> str:
    text = str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
