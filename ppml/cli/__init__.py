"""Command-line interface: thin click commands over the library (nothing imports this package)."""
from __future__ import annotations

import click

from .common import keys_option, quiet_option, reports_errors, say, weak_key_option
from .decrypt import decrypt_command
from .encrypt import encrypt_command
from .features import features_command
from .portal import portal_command
from .precompute import precompute_command
from .remote import fetch_model_command, request_command
from .score import score_command
from .service import clients_group, serve_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ppml")
def main():
    """ppml: private predictions from linear models with Paillier encryption.

    The three stages are also the scripts CustomerEncrypts.py, ServerModelRun.py and
    CustomerDecrypts.py.
    """


@main.command(epilog="""\b
Examples:
  python -m ppml train                                  # the laptop model, into .
  python -m ppml train employees.csv --target salary --out-dir salary_model
  python -m ppml train houses.csv --target price --log-target --categorical zip \\
      --bounds rooms=0:100 --out-dir house_model""")
@click.argument("data", required=False, default="Data/laptop_data.csv", metavar="[DATA]")
@click.option("--target", metavar="COLUMN", default=None,
              help="Train a generic tabular model predicting COLUMN of any CSV. Without it, the "
                   "laptop-price model is trained (DATA must have the raw laptop columns and Price).")
@click.option("--log-target", is_flag=True,
              help="Fit log(COLUMN) (every value must be positive); predictions are exp of the model output.")
@click.option("--categorical", "categorical", multiple=True, metavar="COL",
              help="Treat COL as categorical (one-hot). Repeatable.")
@click.option("--numeric", "numeric", multiple=True, metavar="COL",
              help="Treat COL as numeric (parsed as a number, standardised). Repeatable.")
@click.option("--ignore", "ignore", multiple=True, metavar="COL",
              help="Do not use COL as a feature (e.g. a CSV's unnamed index column). Repeatable.")
@click.option("--bounds", "bounds", multiple=True, metavar="COL=LO:HI",
              help="Declare the range a numeric column's values may take, e.g. age=0:150, "
                   "instead of the default rule above. Repeatable.")
@click.option("--min-frequency", type=click.IntRange(1), default=None, metavar="N",
              help="Categories seen fewer than N times in training share one 'infrequent' column "
                   "(default: 1% of the training rows, between 2 and 10).")
@click.option("--out-dir", default=None, metavar="DIR", type=click.Path(file_okay=False),
              help="Where to write col_tnf.pkl, PreProcessingDataAndModel.pkl and "
                   "Encrypted_ModelParameters/ (default . for the laptop model; required with --target).")
@quiet_option
@reports_errors
def train(data, target, log_target, categorical, numeric, ignore, bounds, min_frequency, out_dir, quiet):
    """Train a model on DATA and write its artifacts.

    Without --target: the laptop-price model on DATA (default Data/laptop_data.csv), ridge
    regression on log(Price) of the engineered laptop features.

    With --target COLUMN: any CSV. Every column but COLUMN, an id column and --ignore'd ones
    is a feature: a column whose non-empty values all parse as finite numbers is numeric
    (standardised), any other is categorical (stripped text, one-hot; rare and unseen
    categories share an 'infrequent' column); --numeric/--categorical override. A numeric
    column's declared bounds, published in Model.json, are [0, B] if all its training values
    are >= 0, else [-B, B], with B = 2^ceil(log2(max|value| + 1)) * 16 (ages up to 64 give
    [0, 2048]); --bounds overrides. A customer's record outside them is refused before
    encryption.

    Both fit on 80% of the rows, print the held-out R² and MAE, and write the artifacts the
    three scripts use (pass them --model DIR / --params DIR/Encrypted_ModelParameters).
    """
    from .. import artifacts, files
    from ..customer import read_records
    from ..errors import PpmlError

    if target is None:
        extra = [name for name, given in (("--log-target", log_target), ("--categorical", categorical),
                                          ("--numeric", numeric), ("--ignore", ignore), ("--bounds", bounds),
                                          ("--min-frequency", min_frequency is not None)) if given]
        if extra:
            raise click.UsageError(f"{', '.join(extra)} need(s) --target COLUMN (a generic tabular model)")
    elif out_dir is None:
        raise click.UsageError("--target needs --out-dir DIR (the default . holds the laptop model's artifacts)")
    out_dir = "." if out_dir is None else out_dir

    from ..model import train as train_model
    from ..tabular import parse_bounds

    source = files.display_name(data)
    raw, _ = read_records(files.read_bytes(data), source)
    options = {} if target is None else dict(log_target=log_target, numeric=numeric, categorical=categorical,
                                             ignore=ignore, bounds=parse_bounds(bounds), min_frequency=min_frequency)
    try:
        trained = train_model(raw, target, **options)
    except PpmlError as e:
        raise e.with_source(source)
    m = trained.metrics
    for note in m.get("notes", ()):
        say(quiet, f"Note: {source}: {note}")
    click.echo(f"rows: {m['rows_train']} train, {m['rows_test']} held out")
    if target is None:
        click.echo(f"held-out R² (log price): {m['r2_log']:.4f}")
        click.echo(f"held-out MAE: {m['mae_price']:,.2f} (price), {m['mae_log']:.4f} (log price)")
    else:
        click.echo(f"features: {len(m['numeric'])} numeric ({', '.join(m['numeric']) or '-'}), "
                   f"{len(m['categorical'])} categorical ({', '.join(m['categorical']) or '-'}) "
                   f"→ {m['features']} model features")
        scale = f"log {target}" if m["transform"] == "log" else target
        click.echo(f"held-out R² ({scale}): {m['r2']:.4f}")
        mae = f"held-out MAE: {m['mae']:,.2f} ({target})"
        if m["transform"] == "log":
            mae += f", {m['mae_log']:.4f} (log {target})"
        click.echo(mae)
        click.echo(f"intercept: {m['intercept']:.6g}")
    click.echo(f"max |coefficient|: {m['max_abs_coefficient']:.4g}")
    c = m["codec"]
    click.echo(f"codec: Fx={c['feature_bits']} Fw={c['weight_bits']} slot={c['slot_bits']} bits")
    if target is not None and m["bounds"]:
        click.echo("bounds: " + ", ".join(f"{k} [{lo:g}, {hi:g}]" for k, (lo, hi) in m["bounds"].items()))
    for path in artifacts.save_model(trained, out_dir):
        say(quiet, f"wrote {path}")


@main.command("export", epilog="""\b
Examples:
  python -m ppml export model.pkl --data train.csv --target price --out-dir house_model
  python -m ppml export iris.pkl --data iris.csv --target species --bounds "petal length (cm)=0:20" --out-dir iris_model

\b
There is no --min-frequency: a fitted estimator's OneHotEncoder has already grouped its rare
categories (its own min_frequency / max_categories), and regrouping them here would change
its predictions. Fit the encoder with min_frequency to get fewer features.""")
@click.argument("model_pkl", metavar="MODEL.pkl")
@click.option("--data", required=True, metavar="TRAIN.csv",
              help="CSV of the training records (the estimator's input columns; the target column(s) and "
                   "an id column are ignored). Bounds of numeric columns are derived from it as train "
                   "derives them, and the export is checked against the estimator's predictions on it.")
@click.option("--target", "targets", multiple=True, metavar="COL",
              help="The target column of TRAIN.csv (not a feature); it names a regression's output "
                   "(Price in '0: Price = …'). Repeat it for each target of a multi-output regression.")
@click.option("--bounds", "bounds", multiple=True, metavar="COL=LO:HI",
              help="Declare the range a numeric input column's values may take, e.g. age=0:150, instead of "
                   "the default rule of train. Repeatable.")
@click.option("--out-dir", required=True, metavar="DIR", type=click.Path(file_okay=False),
              help="Where to write col_tnf.pkl, PreProcessingDataAndModel.pkl and Encrypted_ModelParameters/.")
@quiet_option
@reports_errors
def export(model_pkl, data, targets, bounds, out_dir, quiet):
    """Export a company's own fitted scikit-learn model for encrypted scoring.

    MODEL.pkl is a pickled fitted estimator: a linear regressor or classifier, bare or at the
    end of a Pipeline (with a ColumnTransformer of one-hot encoders and scalers, then scalers
    and feature selectors), possibly inside a TransformedTargetRegressor. It is loaded with
    plain pickle, which RUNS CODE the file contains: only export your own files. Then the
    three scripts run it with --model DIR, and their decrypted predictions equal the
    estimator's predict / predict_proba.

    The customer's col_tnf.pkl is plain data (column kinds, categories, scaling constants):
    scalers and feature selectors after the column transformer are folded into the weights
    (a dropped column weighs 0), and a step the data cannot describe (KNNImputer,
    PolynomialFeatures, a FunctionTransformer with a function, ...) is refused with one line
    naming it. So is anything that is not one linear step (trees, ensembles, kernels, neural
    networks). Nothing is written then.
    """
    from ..errors import InputError, PpmlError
    from ..export import export as export_artifacts
    from ..export import load_estimator, training_frame
    from ..tabular import parse_bounds

    estimator = load_estimator(model_pkl)
    frame = training_frame(data, estimator, targets)
    try:
        exported = export_artifacts(estimator, frame, out_dir, bounds=parse_bounds(bounds), target=list(targets) or None)
    except InputError as e:  # the training records or --bounds
        raise e.with_source(data)
    except PpmlError as e:  # the estimator
        raise e.with_source(model_pkl)
    if exported.classes is None:
        kind = f"regression, output(s) {', '.join(exported.outputs)}"
    else:
        probability = f"{exported.link.probability} probabilities" if exported.link.probability else "no probabilities"
        kind = f"classifier, {len(exported.classes)} classes ({probability})"
    click.echo(f"{type(exported.estimator).__name__}: {kind}; {len(exported.features)} features")
    c = exported.codec()
    click.echo(f"codec: Fx={c.feature_bits} Fw={c.weight_bits} slot={c.slot_bits} bits")
    if exported.inputs:
        click.echo("bounds: " + ", ".join(f"{k} [{lo:g}, {hi:g}]" for k, (lo, hi) in exported.inputs.items()))
    say(quiet, f"wrote {out_dir}/ (col_tnf.pkl, PreProcessingDataAndModel.pkl, Encrypted_ModelParameters/)")


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


@main.command("prove-key")
@keys_option
@weak_key_option
@quiet_option
@reports_errors
def prove_key(keys_dir, allow_weak_key, quiet):
    """Add the modulus proof to an existing key pair (version 2 → 3), keeping the key.

    The company scores nothing with a key whose public half lacks a valid proof that its
    modulus is a product of two primes with gcd(n, φ(n)) = 1 (docs/protocol.md §2). Key pairs
    made by `keygen` or the scripts carry one already; this upgrades older folders in place.
    """
    from ..keystore import KeyStore

    public = KeyStore(keys_dir).prove(allow_weak=allow_weak_key)
    say(quiet, f"Added the modulus proof to key {public.fingerprint[:23]}… in {keys_dir}/")


main.add_command(encrypt_command)
main.add_command(score_command)
main.add_command(decrypt_command)
main.add_command(serve_command)
main.add_command(clients_group)
main.add_command(request_command)
main.add_command(fetch_model_command)
main.add_command(features_command)
main.add_command(portal_command)
main.add_command(precompute_command)
