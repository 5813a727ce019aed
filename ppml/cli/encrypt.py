"""``CustomerEncrypts.py``: raw laptop records → ``Encrypted_Data/data.json``."""
from __future__ import annotations

from pathlib import Path

import click

from .common import keys_option, model_option, quiet_option, reports_errors, say, weak_key_option

DEFAULT_OUTPUT = "Encrypted_Data/data.json"


@click.command(name="encrypt", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("records", required=False, metavar="[RECORDS]")
@click.option("-o", "--output", default=DEFAULT_OUTPUT, show_default=True,
              help="Encrypted-features document to write; - for stdout.")
@keys_option
@click.option("--key-size", type=int, default=None,
              help="Modulus size in bits for a new key pair (default 3072). Keys are created "
                   "only if the key folder holds none.")
@model_option
@weak_key_option
@quiet_option
@reports_errors
def encrypt_command(records, output, keys_dir, key_size, model_dir, allow_weak_key, quiet):
    """Encrypt laptop records for the company's price model.

    RECORDS is a CSV of raw laptop records (columns Company, TypeName, Inches,
    ScreenResolution, Cpu, Ram, Memory, Gpu, OpSys, Weight; a Price column is ignored; an id
    column names the records), or - for stdin. Without it, the bundled sample laptop is
    encrypted. A key pair is created in the key folder if there is none.
    """
    from .. import artifacts, customer, files
    from ..errors import KeyFileError, PpmlError
    from ..keystore import KeyStore
    from ..paillier.keys import DEFAULT_KEY_BITS

    spec = artifacts.load_spec(model_dir)
    col_tnf = artifacts.load_pickle(Path(model_dir) / artifacts.COL_TNF)
    if records is None:
        raw, ids = customer.sample_records()
        source = "the sample laptop"
    else:
        source = files.display_name(records)
        raw, ids = customer.read_records(files.read_bytes(records), source)
    try:
        x = customer.prepare_features(col_tnf, spec, raw, ids)
    except PpmlError as e:
        raise e.with_source(source)

    store = KeyStore(keys_dir)
    public, private, created = store.load_or_create(key_size or DEFAULT_KEY_BITS, allow_weak=allow_weak_key)
    if not created and key_size is not None and key_size != public.bits:
        raise KeyFileError(f"holds a {public.bits}-bit key pair, not {key_size} bits; "
                           f"replace it with `python -m ppml keygen --key-size {key_size} --force`",
                           str(keys_dir))
    if created:
        say(quiet, f"Created a {public.bits}-bit key pair in {keys_dir}/ (private key mode 0600).")
    doc = customer.encrypt_features(x, ids, spec, public, private)
    with files.output_lock(output):
        files.write_json(output, doc.to_dict())
    say(quiet, f"Encrypted {doc.records} record(s) from {source} into {len(doc.batches)} batch(es) "
               f"of up to {doc.slots} → {files.display_name(output) if output != '-' else '<stdout>'}")
