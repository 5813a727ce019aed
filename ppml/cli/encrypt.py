"""``CustomerEncrypts.py``: raw laptop records → ``Encrypted_Data/data.json``."""
from __future__ import annotations

import itertools
from pathlib import Path

import click

from .common import (keys_option, model_option, quiet_option, reports_errors, say, weak_key_option,
                     with_source, workers_option)

DEFAULT_OUTPUT = "Encrypted_Data/data.json"


@click.command(name="encrypt", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("records", required=False, metavar="[RECORDS]")
@click.option("-o", "--output", default=DEFAULT_OUTPUT, show_default=True,
              help="Encrypted-features document to write; - for stdout (JSON Lines). "
                   "A name ending in .jsonl is written as JSON Lines.")
@keys_option
@click.option("--key-size", type=int, default=None,
              help="Modulus size in bits for a new key pair (default 3072). Keys are created "
                   "only if the key folder holds none.")
@model_option
@workers_option
@weak_key_option
@quiet_option
@reports_errors
def encrypt_command(records, output, keys_dir, key_size, model_dir, workers, allow_weak_key, quiet):
    """Encrypt laptop records for the company's price model.

    RECORDS is a CSV of raw laptop records (columns Company, TypeName, Inches,
    ScreenResolution, Cpu, Ram, Memory, Gpu, OpSys, Weight; a Price column is ignored; an id
    column names the records), or - for stdin. Without it, the bundled sample laptop is
    encrypted. A key pair is created in the key folder if there is none.
    """
    from .. import artifacts, customer, files
    from ..errors import KeyFileError
    from ..keystore import KeyStore
    from ..paillier.keys import DEFAULT_KEY_BITS
    from ..streams import DocumentWriter

    spec = artifacts.load_spec(model_dir)
    col_tnf = artifacts.load_pickle(Path(model_dir) / artifacts.COL_TNF)
    store = KeyStore(keys_dir)
    existing = store.load_public(allow_weak_key) if store.exists() else None
    if existing is not None and key_size is not None and key_size != existing.bits:
        raise KeyFileError(f"holds a {existing.bits}-bit key pair, not {key_size} bits; "
                           f"replace it with `python -m ppml keygen --key-size {key_size} --force`",
                           str(keys_dir))
    m = spec.codec.slots_for(existing.bits if existing else key_size or DEFAULT_KEY_BITS)
    chunk = m * customer.CHUNK_BATCHES
    if records is None:
        source, chunks = "the sample laptop", customer.sample_records()
    else:
        source = files.display_name(records)
        chunks = customer.iter_record_chunks(records, source, chunk)
    prepared = with_source(customer.prepare_chunks(chunks, col_tnf, spec), source)
    first = next(prepared)  # the first chunk is read and checked before any key is created
    expected = -(-len(first[1]) // m) if len(first[1]) < chunk else customer.LARGE_INPUT_BATCHES

    public, private, created = store.load_or_create(key_size or DEFAULT_KEY_BITS, allow_weak=allow_weak_key)
    if created:
        say(quiet, f"Created a {public.bits}-bit key pair in {keys_dir}/ (private key mode 0600).")
    header = customer.features_header(spec, public)
    with files.output_lock(output), DocumentWriter(output, header.header()) as writer:
        for batch in customer.encrypt_stream(itertools.chain([first], prepared), spec, public, private,
                                             workers, expected):
            writer.write(header.batch_dict(batch), len(batch.ids))
    say(quiet, f"Encrypted {writer.records} record(s) from {source} into {writer.batches} batch(es) "
               f"of up to {m} → {files.display_name(output) if output != '-' else '<stdout>'}")
