"""``python -m ppml precompute``: fill a pool of one-time randomness ahead of time (offline), so
that encrypting or scoring later does almost no big-integer work."""
from __future__ import annotations

import click

from .common import keys_option, quiet_option, reports_errors, say, weak_key_option, workers_option


@click.command(name="precompute", context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Examples:
  python -m ppml precompute --records 10000                 # the customer, PaillierKeys/
  python -m ppml precompute --server --public-key customer_key.json --records 10000
  ServerModelRun.py data.json                               # uses NoisePools/ when it holds the key's pool""")
@click.option("--records", type=click.IntRange(1, 100_000_000), required=True, metavar="N",
              help="Top the pool up to enough values for N records (nothing is added if it holds that many).")
@keys_option
@click.option("--model", "model_dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Trained model folder: its Encrypted_ModelParameters/Model.json says how many values a "
                   "record needs (features, or outputs, per batch of records).")
@click.option("--server", is_flag=True,
              help="Fill the company's pool of r^n re-randomizers for the customer key --public-key, in --pools.")
@click.option("--public-key", "public_key", metavar="FILE", type=click.Path(dir_okay=False),
              help="With --server: the customer's public_key.json (or any file holding that key).")
@click.option("--pools", "pools_dir", default=None, metavar="DIR", type=click.Path(file_okay=False),
              help="With --server: folder of the company's pools, one file per customer key (default NoisePools/).")
@workers_option
@weak_key_option
@quiet_option
@reports_errors
def precompute_command(records, keys_dir, model_dir, server, public_key, pools_dir, workers, allow_weak_key, quiet):
    """Fill a pool of one-time randomness, offline.

    The customer (default): encryptions of zero h_s^α mod n² in the key folder
    (djn_pool.bin, mode 0600, beside the private key). CustomerEncrypts.py then takes one per
    ciphertext instead of computing it: encryption becomes one multiplication.

    The company (--server): re-randomizers r^n mod n² for one customer key, in
    NoisePools/<key fingerprint>.pool (mode 0600). ServerModelRun.py then takes one per answer
    ciphertext when the pool for the document's key is there.

    Every value is used once: it is removed from the pool (durably) before it is used, so a run
    killed midway never lets a value be used again. A pool for another key is refused.
    Values are secret: never copy a pool to another machine or share it between keys.
    """
    from .. import artifacts, pools
    from ..keystore import KeyStore, load_public_key

    spec = artifacts.load_spec(model_dir)
    if server:
        if public_key is None:
            raise click.UsageError("--server needs --public-key FILE (the customer's public key)")
        public = load_public_key(public_key, allow_weak_key)
        pool, private = pools.server_pool(pools_dir or pools.DEFAULT_SERVER_POOLS, public), None
        per_batch = len(spec.outputs)
    else:
        if public_key is not None or pools_dir is not None:
            raise click.UsageError("--public-key and --pools are for --server")
        private = KeyStore(keys_dir).load_private(allow_weak_key)
        public = private.public
        pool, per_batch = pools.customer_pool(keys_dir, public), len(spec.features)
    m = spec.codec.slots_for(public.bits)
    wanted = -(-records // m) * per_batch
    added = pools.fill(pool, wanted, private, workers)
    say(quiet, f"{pool.path}: {pool.count():,} values (added {added:,}; {per_batch} per batch of {m} records) "
               f"for key {public.fingerprint[:23]}…")

