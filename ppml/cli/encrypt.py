"""``CustomerEncrypts.py``: raw records → ``Encrypted_Data/data.json`` (or a folder of CSVs → a
folder of documents)."""
from __future__ import annotations

from pathlib import Path

import click

from .common import (CommandWatch, keys_option, model_option, quiet_option, reports_errors, run_stage, say,
                     scheduler_option, verbose_option, wait_option, weak_key_option, workers_option)

DEFAULT_OUTPUT = "Encrypted_Data/data.json"


@click.command(name="encrypt", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("records", required=False, metavar="[RECORDS]")
@click.option("-o", "--output", default=None,
              help=f"Encrypted-features document to write (default {DEFAULT_OUTPUT}); - for stdout "
                   "(JSON Lines). A name ending in .jsonl is written as JSON Lines. With a folder "
                   "of CSVs as RECORDS: the output folder (default Encrypted_Data/).")
@keys_option
@click.option("--key-size", type=int, default=None,
              help="Modulus size in bits for a new key pair (default 3072). Keys are created "
                   "only if the key folder holds none.")
@model_option
@workers_option
@scheduler_option
@wait_option
@weak_key_option
@verbose_option
@quiet_option
@reports_errors
def encrypt_command(records, output, keys_dir, key_size, model_dir, workers, scheduler, wait, allow_weak_key,
                    verbose, quiet):
    """Encrypt records for the company's model.

    RECORDS is a CSV of raw records — for the laptop model the columns Company, TypeName,
    Inches, ScreenResolution, Cpu, Ram, Memory, Gpu, OpSys, Weight (a Price column is
    ignored) — or - for stdin, or a folder: then every *.csv in it whose output is missing or
    was made from other bytes is encrypted into the output folder (cron mode). An id column
    names the records. Without RECORDS, the bundled sample laptop is encrypted. A key pair is
    created in the key folder if there is none.
    """
    from .. import files, stages
    from ..records import is_laptop_transform
    from ..errors import KeyFileError
    from ..keystore import KeyStore

    watch = CommandWatch("Encrypting", verbose, quiet)
    with watch.step("load model"):
        spec, col_tnf = stages.customer_model(model_dir)
    if records is None and not is_laptop_transform(col_tnf):
        raise click.UsageError(f"RECORDS is required for this model (the sample laptop only fits the laptop "
                               f"model); give a CSV with the columns {', '.join(col_tnf.input_columns)}")
    store = KeyStore(keys_dir)
    existing = store.load_public(allow_weak_key) if store.exists() else None
    if existing is not None and key_size is not None and key_size != existing.bits:
        raise KeyFileError(f"holds a {existing.bits}-bit key pair, not {key_size} bits; "
                           f"replace it with `python -m ppml keygen --key-size {key_size} --force`",
                           str(keys_dir))
    keys = stages.CustomerKeys(store, existing.bits if existing else key_size, allow_weak_key,
                               on_create=lambda public, store: say(
                                   quiet, f"Created a {public.bits}-bit key pair in {store.folder}/ "
                                          "(private key mode 0600)."))

    def process(source, output):
        done = stages.encrypt(source, output, spec=spec, col_tnf=col_tnf, keys=keys, workers=workers,
                              scheduler=scheduler, protected=stages.model_files(model_dir), watch=watch)
        watch.end()
        m = spec.codec.slots_for(keys.bits)
        what = "the sample laptop" if source is None else files.display_name(source)
        say(quiet, f"Encrypted {done.records} record(s) from {what} into {done.batches} batch(es) of up to {m} → "
                   f"{files.display_name(output) if output != '-' else '<stdout>'}")

    run_stage(records, output, process, default_file=DEFAULT_OUTPUT, default_folder=str(Path(DEFAULT_OUTPUT).parent),
              suffixes=(".csv",), out_name=lambda p: p.stem + ".json", quiet=quiet, what="encrypt", wait=wait)
    watch.report()
