"""``CustomerEncrypts.py``: raw records → ``Encrypted_Data/data.json`` (or a folder of CSVs → a
folder of documents)."""
from __future__ import annotations

import itertools
from pathlib import Path

import click

from .common import (Progress, StageTimer, keys_option, model_option, quiet_option,
                     refuse_overwriting, reports_errors, run_stage, say, scheduler_option,
                     verbose_option, weak_key_option, with_source, workers_option)

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
@weak_key_option
@verbose_option
@quiet_option
@reports_errors
def encrypt_command(records, output, keys_dir, key_size, model_dir, workers, scheduler, allow_weak_key,
                    verbose, quiet):
    """Encrypt records for the company's model.

    RECORDS is a CSV of raw records — for the laptop model the columns Company, TypeName,
    Inches, ScreenResolution, Cpu, Ram, Memory, Gpu, OpSys, Weight (a Price column is
    ignored) — or - for stdin, or a folder: then every *.csv in it without an up-to-date
    output is encrypted into the output folder (cron mode). An id column names the records.
    Without RECORDS, the bundled sample laptop is encrypted. A key pair is created in the
    key folder if there is none.
    """
    from .. import artifacts, customer
    from ..errors import KeyFileError, PpmlError
    from ..keystore import KeyStore
    from ..paillier.keys import DEFAULT_KEY_BITS

    timer = StageTimer(verbose)
    with timer.stage("load model"):
        spec = artifacts.load_spec(model_dir)
        col_tnf_path = Path(model_dir) / artifacts.COL_TNF
        col_tnf = artifacts.load_pickle(col_tnf_path)
        try:
            customer.check_transform(col_tnf, spec)
        except PpmlError as e:
            raise e.with_source(str(col_tnf_path))
    if records is None and not customer.is_laptop_transform(col_tnf):
        raise click.UsageError(f"RECORDS is required for this model (the sample laptop only fits the laptop "
                               f"model); give a CSV with the columns {', '.join(col_tnf.input_columns)}")
    store = KeyStore(keys_dir)
    existing = store.load_public(allow_weak_key) if store.exists() else None
    if existing is not None and key_size is not None and key_size != existing.bits:
        raise KeyFileError(f"holds a {existing.bits}-bit key pair, not {key_size} bits; "
                           f"replace it with `python -m ppml keygen --key-size {key_size} --force`",
                           str(keys_dir))
    bits = existing.bits if existing else key_size or DEFAULT_KEY_BITS
    keys = _Keys(store, bits, allow_weak_key, quiet)
    job = dict(spec=spec, col_tnf=col_tnf, keys=keys, workers=workers, scheduler=scheduler,
               timer=timer, quiet=quiet)
    run_stage(records, output, lambda src, dst: _encrypt_file(src, dst, **job), default_file=DEFAULT_OUTPUT,
              default_folder=str(Path(DEFAULT_OUTPUT).parent), suffixes=(".csv",),
              out_name=lambda p: p.stem + ".json", quiet=quiet, what="encrypt")
    timer.report()


class _Keys:
    """The key pair, loaded (or created) only once the first input chunk has been checked."""

    def __init__(self, store, bits, allow_weak, quiet):
        self.store, self.bits, self.allow_weak, self.quiet = store, bits, allow_weak, quiet
        self.pair = None

    def get(self):
        if self.pair is None:
            public, private, created = self.store.load_or_create(self.bits, allow_weak=self.allow_weak)
            if created:
                say(self.quiet, f"Created a {public.bits}-bit key pair in {self.store.folder}/ "
                                "(private key mode 0600).")
            self.pair = public, private
        return self.pair


def _encrypt_file(records, output, spec, col_tnf, keys, workers, scheduler, timer, quiet):
    from .. import customer, files
    from ..parallel import LARGE_INPUT_BATCHES
    from ..streams import DocumentWriter

    m = spec.codec.slots_for(keys.bits)
    chunk = m * customer.CHUNK_BATCHES
    if records is None:
        source, chunks = "the sample laptop", customer.sample_records()
    else:
        source = files.display_name(records)
        chunks = customer.iter_record_chunks(records, source, chunk)
    with timer.stage("read"):
        prepared = with_source(customer.prepare_chunks(chunks, col_tnf, spec), source)
        first = next(prepared)  # the first chunk is read and checked before any key is created
    refuse_overwriting(output, [records], keys.store)
    expected = -(-len(first[1]) // m) if len(first[1]) < chunk else LARGE_INPUT_BATCHES
    with timer.stage("keys"):
        public, private = keys.get()
    header = customer.features_header(spec, public)
    progress = Progress("Encrypting", quiet)
    with timer.stage("encrypt"), DocumentWriter(output, header.header()) as writer:
        for batch in customer.encrypt_stream(itertools.chain([first], prepared), spec, public, private,
                                             workers, expected, scheduler):
            writer.write(header.batch_dict(batch), len(batch.ids))
            progress.update(len(batch.ids))
    progress.close()
    say(quiet, f"Encrypted {writer.records} record(s) from {source} into {writer.batches} batch(es) "
               f"of up to {m} → {files.display_name(output) if output != '-' else '<stdout>'}")
