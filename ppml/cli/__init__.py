"""Command-line interface: thin click commands over the library (nothing imports this package)."""
from __future__ import annotations

import click

from .common import keys_option, quiet_option, reports_errors, say, weak_key_option
from .decrypt import decrypt_command
from .encrypt import encrypt_command
from .score import score_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ppml")
def main():
    """ppml: privacy-preserving price predictions with Paillier encryption.

    The three stages are also the scripts CustomerEncrypts.py, ServerModelRun.py and
    CustomerDecrypts.py.
    """


@main.command()
@click.argument("data", required=False, default="Data/laptop_data.csv", metavar="[DATA]")
@click.option("--out-dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Where to write col_tnf.pkl, PreProcessingDataAndModel.pkl and "
                   "Encrypted_ModelParameters/.")
@quiet_option
@reports_errors
def train(data, out_dir, quiet):
    """Train the laptop-price model on DATA (default Data/laptop_data.csv) and write its artifacts.

    Fits the column transformer and a ridge regression on log(Price) on 80% of the rows,
    prints held-out R² and MAE, and writes the artifacts the three scripts use.
    """
    from .. import artifacts, files
    from ..customer import read_records
    from ..errors import PpmlError
    from ..model import train_laptop_model

    source = files.display_name(data)
    raw, _ = read_records(files.read_bytes(data), source)
    try:
        trained = train_laptop_model(raw)
    except PpmlError as e:
        raise e.with_source(source)
    m = trained.metrics
    click.echo(f"rows: {m['rows_train']} train, {m['rows_test']} held out")
    click.echo(f"held-out R² (log price): {m['r2_log']:.4f}")
    click.echo(f"held-out MAE: {m['mae_price']:,.2f} (price), {m['mae_log']:.4f} (log price)")
    click.echo(f"max |coefficient|: {m['max_abs_coefficient']:.4g}")
    c = m["codec"]
    click.echo(f"codec: Fx={c['feature_bits']} Fw={c['weight_bits']} slot={c['slot_bits']} bits")
    for path in artifacts.save_model(trained, out_dir):
        say(quiet, f"wrote {path}")


@main.command("generate-data")
@click.option("-o", "--output", default="Data/laptop_data.csv", show_default=True,
              help="CSV file to write.")
@click.option("--rows", default=1300, show_default=True, type=click.IntRange(1, 10_000_000))
@click.option("--seed", default=20261123, show_default=True, type=int)
@reports_errors
def generate_data(output, rows, seed):
    """Write the bundled synthetic laptop data set (deterministic for a given seed)."""
    from ..datagen import write_laptops_csv

    write_laptops_csv(output, n=rows, seed=seed)
    click.echo(f"wrote {rows} rows to {output}", err=True)


@main.command()
@keys_option
@click.option("--key-size", default=3072, show_default=True, type=int, help="Modulus size in bits.")
@click.option("--force", is_flag=True, help="Replace an existing key pair (its ciphertexts become unreadable).")
@weak_key_option
@quiet_option
@reports_errors
def keygen(keys_dir, key_size, force, allow_weak_key, quiet):
    """Create the customer's key pair (public_key.json, private_key.json mode 0600)."""
    from ..keystore import KeyStore

    public, _ = KeyStore(keys_dir).create(key_size, force=force, allow_weak=allow_weak_key)
    say(quiet, f"Created a {public.bits}-bit key pair {public.fingerprint[:23]}… in {keys_dir}/")


main.add_command(encrypt_command)
main.add_command(score_command)
main.add_command(decrypt_command)
