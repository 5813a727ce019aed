"""The bad-input battery (issue #4): one table, every case run the same way.

Each case is (name, setup, command, args, exit status, the exact ``Error:`` line). ``setup``
spoils a copy of a complete working folder (model, 1024-bit keys, records, encrypted
documents and a predictions CSV, all made once per module); the command then runs inside that
copy. For every case we check:

* the exit status (1 failure, 2 usage, 3 invalid input, 4 key/model mismatch — never 70);
* stderr is exactly one line, the expected ``Error: <file>: <what>``, with no traceback
  (a usage error, status 2, prints click's usage lines first: its *last* line is compared);
* nothing was written to stdout (train prints its metrics before writing anything: allowed);
* the folder is byte for byte what it was before the run: no output created (not even an
  empty folder or a temporary file), existing outputs and inputs untouched, modes unchanged.

Most cases run in-process through click's CliRunner; the ones in ``SUBPROCESS`` also run as
real processes of the root scripts (and ``python -m ppml``), to show that a real user sees the
same single line and no traceback. Permission bits do not stop root: when the suite runs as
root, the ``UNPRIVILEGED`` cases (a read-only output folder) run only as real processes started
through ``setpriv`` without CAP_DAC_OVERRIDE, so that the bits apply again.

Placeholders in the expected lines: ``{tmp}`` the working folder, ``{fp}``/``{ofp}`` the first
19 characters of the key's / the other key's fingerprint, ``{FP}``/``{OFP}`` the whole ones,
``{features}`` the model's feature count, ``{slots}`` records per batch, ``{limit}`` the
longest ciphertext in hex digits; a setup may return more.
"""
from __future__ import annotations

import csv
import io
import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import gmpy2
import pytest
from click.testing import CliRunner

from conftest import ROOT, TEST_KEY_BITS, model_folder
from ppml import files
from ppml.cli import main
from ppml.cli.decrypt import decrypt_command
from ppml.cli.encrypt import encrypt_command
from ppml.cli.score import score_command

WEAK = "--allow-weak-key"
DATA = "Encrypted_Data/data.json"
DATA_JSONL = "Encrypted_Data/data.jsonl"
ANSWER = "Encrypted_Predicted_value/answer.json"
ANSWER_JSONL = "Encrypted_Predicted_value/answer.jsonl"
PUBLIC = "PaillierKeys/public_key.json"
PRIVATE = "PaillierKeys/private_key.json"
MODEL = "Encrypted_ModelParameters/Model.json"
COEFFICIENTS = "Encrypted_ModelParameters/Coefficients.json"
INTERCEPT = "Encrypted_ModelParameters/Intercept.json"
RECORDS_ROWS = 3
TRAIN_ROWS = 200

COMMANDS = {"encrypt": (encrypt_command, []), "score": (score_command, []),
            "decrypt": (decrypt_command, []), "train": (main, ["train"]), "keygen": (main, ["keygen"]),
            "export": (main, ["export"])}
SCRIPTS = {"encrypt": ["CustomerEncrypts.py"], "score": ["ServerModelRun.py"],
           "decrypt": ["CustomerDecrypts.py"], "train": ["-m", "ppml", "train"],
           "keygen": ["-m", "ppml", "keygen"], "export": ["-m", "ppml", "export"]}


# ---------------------------------------------------------------------------------------------
# The complete working folder every case starts from
# ---------------------------------------------------------------------------------------------
def _write_keys(folder: Path, public, private) -> None:
    folder.mkdir(mode=0o700)
    files.atomic_write_bytes(folder / "private_key.json", files.dump_json(private.to_dict()).encode(), 0o600)
    files.atomic_write_bytes(folder / "public_key.json", files.dump_json(public.to_dict()).encode(), 0o644)


def _ok(command, args):
    r = CliRunner().invoke(command, [*args, "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def base(tmp_path_factory, keypair, other_keypair):
    b = tmp_path_factory.mktemp("base")
    model_folder(b)
    _write_keys(b / "PaillierKeys", *keypair)
    _write_keys(b / "OtherKeys", *other_keypair)
    lines = (ROOT / "Data" / "laptop_data.csv").read_text().splitlines(keepends=True)
    (b / "records.csv").write_text("".join(lines[:RECORDS_ROWS + 1]))
    (b / "train.csv").write_text("".join(lines[:TRAIN_ROWS + 1]))
    keys, model = ["--keys", str(b / "PaillierKeys")], ["--model", str(b)]
    params = ["--params", str(b / "Encrypted_ModelParameters")]
    for out in (DATA, DATA_JSONL):
        _ok(encrypt_command, [str(b / "records.csv"), "-o", str(b / out), *keys, *model, WEAK])
    for src, out in ((DATA, ANSWER), (DATA_JSONL, ANSWER_JSONL)):
        _ok(score_command, [str(b / src), "-o", str(b / out), *params, WEAK])
    _ok(decrypt_command, [str(b / ANSWER), "-o", str(b / "predictions.csv"), *keys, WEAK])
    _company_estimators(b)
    return b


def _company_estimators(folder: Path) -> None:
    """A company's own pickled estimators (a linear one and a forest) and their training CSV."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.uniform(0, 10, 30), "z": rng.uniform(-5, 5, 30)})
    y = 3 * X["x"] - X["z"]
    X.assign(y=y).to_csv(folder / "est_train.csv", index=False)
    for name, estimator in (("est.pkl", Ridge()), ("forest.pkl", RandomForestRegressor(2, random_state=0))):
        (folder / name).write_bytes(pickle.dumps(estimator.fit(X, y)))


@pytest.fixture(scope="module")
def placeholders(base, keypair, other_keypair):
    doc = json.loads((base / DATA).read_text())
    fp, ofp = keypair[0].fingerprint, other_keypair[0].fingerprint
    return {"fp": fp[:19], "ofp": ofp[:19], "FP": fp, "OFP": ofp, "features": str(len(doc["features"])),
            "slots": str(doc["slots"]), "limit": str((2 * TEST_KEY_BITS + 3) // 4)}


# ---------------------------------------------------------------------------------------------
# Small tools for the setups (each runs inside the working folder)
# ---------------------------------------------------------------------------------------------
def edit(path, change):
    """Load a JSON file, let ``change`` alter the dict, write it back (compact, as ours are)."""
    d = json.loads(Path(path).read_text())
    change(d)
    Path(path).write_text(json.dumps(d, separators=(",", ":")) + "\n")


def doc_edit(change, path=DATA):
    return lambda w: edit(path, change)


def write(path, data):
    def setup(w):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data if isinstance(data, bytes) else data.encode())
    return setup


def csv_edit(source, change, out):
    """``source`` as a list of dict rows → ``change(rows, columns)`` (may return new columns) → ``out``."""
    def setup(w):
        with open(source, newline="") as f:
            reader = csv.DictReader(f)
            columns, rows = list(reader.fieldnames), list(reader)
        columns = change(rows, columns) or columns
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        Path(out).write_text(buffer.getvalue())
    return setup


def records_edit(change, out="bad.csv"):
    return csv_edit("records.csv", change, out)


def training_rows(change):
    return training_rows_of("train.csv", change)


def training_rows_of(source, change):
    return csv_edit(source, change, "bad_train.csv")


def cell(column, value, row=1, out="bad.csv"):
    def change(rows, columns):
        rows[row][column] = value
    return records_edit(change, out)


def key_numbers():
    pub = json.loads(Path(PUBLIC).read_text())
    priv = json.loads(Path(PRIVATE).read_text())
    return int(pub["n"], 16), int(priv["p"], 16), int(priv["q"], 16)


def ciphertext(index, make):
    """Replace ciphertext ``index`` of batch 0 of data.json by ``make(n, p)``."""
    def setup(w):
        n, p, _ = key_numbers()
        edit(DATA, lambda d: d["batches"][0]["ciphertexts"].__setitem__(index, make(n, p)))
    return setup


def answer_ciphertext(make):
    def setup(w):
        n, p, q = key_numbers()
        edit(ANSWER, lambda d: d["batches"][0]["ciphertexts"].__setitem__(0, make(n, p, q)))
    return setup


def chain(*setups):
    def setup(w):
        ctx = {}
        for s in setups:
            ctx.update(s(w) or {})
        return ctx
    return setup


def remove(path):
    def setup(w):
        p = Path(path)
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return setup


def chmod(path, mode):
    return lambda w: os.chmod(path, mode)


def mkdir(path):
    return lambda w: Path(path).mkdir(parents=True)


def truncate_json(path, keep=0.5):
    """Cut a one-line JSON document in half."""
    def setup(w):
        text = Path(path).read_text()
        Path(path).write_text(text[:int(len(text) * keep)])
    return setup


def drop_last_lines(path, count=1):
    def setup(w):
        lines = Path(path).read_text().splitlines(keepends=True)
        Path(path).write_text("".join(lines[:-count]))
    return setup


def cut_jsonl_line(path, line_index):
    """Cut line ``line_index`` (0-based) of a JSON Lines document in the middle: a run killed
    while writing to a pipe."""
    def setup(w):
        lines = Path(path).read_text().splitlines(keepends=True)
        half = lines[line_index][:len(lines[line_index]) // 2]
        Path(path).write_text("".join(lines[:line_index]) + half)
        try:
            json.loads(half)
        except json.JSONDecodeError as e:
            return {"at": f"line {line_index + 1} column {e.colno}: {e.msg}"}
    return setup


def evil_pickle(w):
    class RunsACommand:
        def __reduce__(self):
            return os.system, ("touch pwned",)

    Path("col_tnf.pkl").write_bytes(pickle.dumps(RunsACommand()))


def col_tnf_of_another_model(w):
    from ppml.artifacts import dump_customer_transform, load_customer_transform

    tnf = load_customer_transform("col_tnf.pkl")
    tnf.columns.names[0] = "Company_Unknown"
    Path("col_tnf.pkl").write_bytes(dump_customer_transform(tnf))


def private_key_of_other_factors(w):
    other = json.loads(Path("OtherKeys/private_key.json").read_text())
    edit(PRIVATE, lambda d: d.update(p=other["p"], q=other["q"]))


def composite_factor_key_pair(w):
    """n = a·b·c passes every public-key check; p = a·b, q = c has p·q = n but would decrypt to
    garbage without any error."""
    from ppml.paillier.keys import PublicKey, _blum_prime
    from ppml.paillier.proof import FOURTH_ROOT_ROUNDS, NTH_ROOT_ROUNDS, ModulusProof

    (a, *_), (b, *_), (c, *_) = _blum_prime(340), _blum_prime(340), _blum_prime(344)
    n = a * b * c
    # A proof of the right shape (the customer's own files are not checked against it: only
    # the company verifies proofs; this key is refused by the private key's checks).
    shaped = ModulusProof(2, (1,) * NTH_ROOT_ROUNDS, (1,) * FOURTH_ROOT_ROUNDS)
    public = PublicKey(n, gmpy2.powmod(4, n, n * n), shaped)
    Path(PUBLIC).write_text(files.dump_json(public.to_dict()))
    edit(PRIVATE, lambda d: d.update(fingerprint=public.fingerprint, h_s=format(public.h_s, "x"),
                                     p=format(a * b, "x"), q=format(c, "x")))


def lone_private_key_with_p_equal_to_q(w):
    """A private key alone (its public key is then rebuilt from it) whose p = q."""
    from ppml.paillier.keys import fingerprint_of

    Path(PUBLIC).unlink()
    p = int(json.loads(Path(PRIVATE).read_text())["p"], 16)
    edit(PRIVATE, lambda d: d.update(q=d["p"], fingerprint=fingerprint_of(p * p, int(d["h_s"], 16))))


def overflowing_answer(n, p, q):
    """A valid ciphertext of 0 (the unit 1): every declared slot is 0, which no sum inside the
    declared bounds gives (each lies in [1, 2^k))."""
    return "1"


def another_n(d):
    """A nearby n that passes every check but the fingerprint (odd, composite, h_s a unit)."""
    n, h_s = int(d["n"], 16), int(d["h_s"], 16)
    n += 2
    while gmpy2.is_prime(n) or gmpy2.gcd(h_s, n) != 1:
        n += 2
    d["n"] = format(n, "x")


def n_plus_one_in_document(d):
    n = int(d["public_key"]["n"], 16)
    d["public_key"]["n"] = format(n + 1, "x")


def huge_integer_id(w):
    text = Path(DATA).read_text()
    Path(DATA).write_text(text.replace('"ids":[0,', '"ids":[' + "7" * 5000 + ",", 1))


def nan_in_document(w):
    text = Path(DATA).read_text()
    Path(DATA).write_text(text.replace('"slots":', '"slots":NaN,"x":', 1))


def tamper_model_bound(d):
    d["upper"][-1] = d["upper"][-1] * 2


def codec_of_another_model(d):
    d["codec"]["feature_bits"] += 1


def read_only_output_folder(w):
    os.chmod("Encrypted_Predicted_value", 0o500)


def surrogate(d):
    d["batches"][0]["ids"][0] = "\udcff"


def records_without_ram(rows, columns):
    columns.remove("Ram")


def duplicate_ids(rows, columns):
    for row in rows:
        row["id"] = "L1"
    return ["id", *columns]


def ragged_row(w):
    lines = Path("records.csv").read_text().splitlines(keepends=True)
    lines[2] = lines[2].rstrip("\n") + ",extra\n"
    Path("bad.csv").write_text("".join(lines))


def non_utf8_records(w):
    data = Path("records.csv").read_bytes().replace(b"Notebook", b"Noteb\xf6ok", 1)
    Path("bad.csv").write_bytes(data)


def header_only(w):
    Path("bad.csv").write_text(Path("records.csv").read_text().splitlines(keepends=True)[0])


def without_price(rows, columns):
    columns.remove("Price")


def params_folder_is_a_file(w):
    Path("out").mkdir()
    Path("out/Encrypted_ModelParameters").write_text("not a folder\n")


def nothing(w):
    return None


# ---------------------------------------------------------------------------------------------
# The battery
# ---------------------------------------------------------------------------------------------
def case(name, setup, command, args, status, stderr, slow: bool = False):
    """One bad input; ``slow`` cases (tens of seconds of parsing) run only in the full tier."""
    return pytest.param(name, setup, command, args, status, stderr, id=name,
                        marks=[pytest.mark.slow] if slow else [])


PRICE_ROW = "row 17, column 'Price': price must be a positive number"
PARSE = "row 1, column {!r}: cannot parse {!r} ({})"
IN_RECORDS = "Error: bad.csv: "
IN_DATA = f"Error: {DATA}: "
IN_ANSWER = f"Error: {ANSWER}: "
SO = ["-o", "predictions.csv"]  # decrypt into the existing predictions.csv (must stay untouched)
EXPORT = ["--data", "est_train.csv", "--target", "y", "--out-dir", "exported"]
WEAK_KEY = "a 1024-bit key is too small: at least 2048 bits (smaller keys only for tests, with --allow-weak-key)"
CT_RANGE = "is out of range for this key (need 0 < c < n²)"

CASES = [
    # -- CustomerEncrypts.py: records --------------------------------------------------------
    case("csv-missing-column", records_edit(records_without_ram), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + "missing column(s) 'Ram'; expected columns: Company, TypeName, Inches, "
                      "ScreenResolution, Cpu, Ram, Memory, Gpu, OpSys, Weight"),
    case("csv-company-blank", cell("Company", ""), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + PARSE.format("Company", "", "expected a manufacturer name, e.g. 'Dell'")),
    case("csv-typename-spaces", cell("TypeName", "   "), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + PARSE.format("TypeName", "   ", "expected a laptop type, e.g. 'Notebook'")),
    case("csv-inches-words", cell("Inches", "fifteen"), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + PARSE.format("Inches", "fifteen", "expected a positive screen diagonal in inches, e.g. 15.6")),
    case("csv-screen-no-resolution", cell("ScreenResolution", "Full HD"), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + PARSE.format("ScreenResolution", "Full HD", "expected e.g. 'IPS Panel Full HD 1920x1080'")),
    case("csv-cpu-no-clock", cell("Cpu", "Intel Core i5 7200U"), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + PARSE.format("Cpu", "Intel Core i5 7200U", "expected e.g. 'Intel Core i5 7200U 2.5GHz'")),
    case("csv-ram-unit", cell("Ram", "8TB"), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + PARSE.format("Ram", "8TB", "expected e.g. '8GB'")),
    case("csv-memory-part", cell("Memory", "256GB SSD + lots"), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + PARSE.format("Memory", "256GB SSD + lots",
                                   "expected e.g. '256GB SSD' or '128GB SSD +  1TB HDD'")),
    case("csv-gpu-number-too-long", cell("Gpu", "Nvidia GeForce 12345678901"), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + PARSE.format("Gpu", "Nvidia GeForce 12345678901", "expected e.g. 'Intel HD Graphics 620'")),
    case("csv-opsys-empty", cell("OpSys", ""), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + PARSE.format("OpSys", "", "expected e.g. 'Windows 10'")),
    case("csv-weight-pounds", cell("Weight", "4.4lbs"), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + PARSE.format("Weight", "4.4lbs", "expected e.g. '1.37kg'")),
    case("csv-nan-cell", cell("Inches", "NaN"), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + PARSE.format("Inches", "NaN", "expected a positive screen diagonal in inches, e.g. 15.6")),
    case("csv-inf-cell", cell("Inches", "inf"), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + PARSE.format("Inches", "inf", "expected a positive screen diagonal in inches, e.g. 15.6")),
    case("csv-zero-weight", cell("Weight", "0kg"), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + PARSE.format("Weight", "0kg", "expected e.g. '1.37kg'")),
    case("csv-ram-out-of-range", cell("Ram", "8192GB"), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + "record 1: ram_gb = 8192 is outside the range the model accepts [0, 4096]"),
    case("csv-weight-out-of-range", cell("Weight", "60kg", row=2), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + "record 2: weight_kg = 60 is outside the range the model accepts [0, 50]"),
    case("csv-not-utf8", non_utf8_records, "encrypt", ["bad.csv", WEAK], 3, IN_RECORDS + "is not UTF-8 text"),
    case("csv-header-only-no-keys-yet", chain(header_only, remove("PaillierKeys")), "encrypt",
         ["bad.csv", "--key-size", "1024", WEAK], 3, IN_RECORDS + "has a header but no records"),
    case("csv-empty-file", write("bad.csv", b""), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + "is empty, expected a CSV with a header row"),
    case("csv-duplicate-ids", records_edit(duplicate_ids), "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + "column 'id' has duplicate values"),
    case("csv-ragged-row", ragged_row, "encrypt", ["bad.csv", WEAK], 3,
         IN_RECORDS + "is not a readable CSV: Error tokenizing data. C error: Expected 11 fields in line 3, saw 12"),
    # -- CustomerEncrypts.py: model files, keys, output ---------------------------------------
    case("pickle-runs-a-command", evil_pickle, "encrypt", ["records.csv", WEAK], 1,
         "Error: col_tnf.pkl: refusing to load posix.system: col_tnf.pkl holds plain data only (lists, text, "
         "numbers), never a class or function (the file may be tampered with)"),
    case("pickle-truncated", lambda w: Path("col_tnf.pkl").write_bytes(Path("col_tnf.pkl").read_bytes()[:700]),
         "encrypt", ["records.csv", WEAK], 1,
         "Error: col_tnf.pkl: not a readable model file (UnpicklingError: pickle data was truncated)"),
    case("pickle-empty", write("col_tnf.pkl", b""), "encrypt", ["records.csv", WEAK], 1,
         "Error: col_tnf.pkl: not a readable model file (EOFError: Ran out of input)"),
    case("col-tnf-of-another-model", col_tnf_of_another_model, "encrypt", ["records.csv", WEAK], 4,
         "Error: col_tnf.pkl: the column transformer does not match the model description "
         "(col_tnf.pkl and Encrypted_ModelParameters/Model.json are from different trainings)"),
    case("model-json-tampered-customer", lambda w: edit(MODEL, tamper_model_bound), "encrypt",
         ["records.csv", WEAK], 3,
         f"Error: {MODEL}: fingerprint does not match the content (the model file was altered)"),
    case("model-json-old-version", lambda w: edit(MODEL, lambda d: d.update(version=1)), "encrypt",
         ["records.csv", WEAK], 3, f"Error: {MODEL}: version 1 of 'ppml.model' is not supported (supported: 2; "
                                   "retrain or re-export the model to write it again)"),
    case("weak-key-without-flag", nothing, "encrypt", ["records.csv"], 1, f"Error: {PUBLIC}: {WEAK_KEY}"),
    case("private-key-mode-0644-encrypt", chmod(PRIVATE, 0o644), "encrypt", ["records.csv", WEAK], 1,
         f"Error: {PRIVATE}: permissions 0644 are too open: the private key must be readable by its "
         f"owner only (chmod 600 {PRIVATE})"),
    case("public-key-tampered-n", lambda w: edit(PUBLIC, another_n), "encrypt",
         ["records.csv", WEAK], 1, f"Error: {PUBLIC}: fingerprint does not match n and h_s (the key file was altered)"),
    case("public-key-even-n", lambda w: edit(PUBLIC, lambda d: d.update(n=format(int(d["n"], 16) + 1, "x"))),
         "encrypt", ["records.csv", WEAK], 1, f"Error: {PUBLIC}: n is even: not an RSA modulus"),
    case("public-key-empty", write(PUBLIC, b""), "encrypt", ["records.csv", WEAK], 1,
         f"Error: {PUBLIC}: is empty, expected a JSON document"),
    case("key-size-odd", nothing, "encrypt", ["records.csv", "--keys", "NewKeys", "--key-size", "1025", WEAK], 1,
         "Error: key size must be even, got 1025"),
    case("key-size-below-test-floor", nothing, "encrypt",
         ["records.csv", "--keys", "NewKeys", "--key-size", "256", WEAK], 1,
         "Error: a 256-bit key is too small: at least 512 bits"),
    case("encrypt-output-is-a-folder", mkdir("out.json"), "encrypt", ["records.csv", "-o", "out.json", WEAK], 1,
         "Error: out.json: is a folder; give a file name for the output"),
    case("encrypt-output-parent-is-a-file", nothing, "encrypt", ["records.csv", "-o", "records.csv/data.json", WEAK],
         1, "Error: records.csv/data.json: cannot write here: records.csv is a file, not a folder"),
    case("encrypt-output-is-the-private-key", nothing, "encrypt", ["records.csv", "-o", PRIVATE, WEAK], 1,
         f"Error: {PRIVATE}: is the private key; refusing to overwrite it (choose another output)"),
    # -- ServerModelRun.py: the encrypted-features document ------------------------------------
    case("json-malformed", write(DATA, '{"format": "ppml.encrypted-features",,}'), "score", [WEAK], 3,
         IN_DATA + "invalid JSON: parse error: invalid object key (must be a string)"),
    case("json-truncated", truncate_json(DATA), "score", [WEAK], 3,
         IN_DATA + "invalid JSON: parse error: premature EOF"),
    case("jsonl-without-end-line", drop_last_lines(DATA_JSONL), "score", [DATA_JSONL, WEAK], 3,
         f"Error: {DATA_JSONL}: the stream ended before its end line (truncated document)"),
    case("jsonl-cut-mid-line", cut_jsonl_line(DATA_JSONL, 1), "score", [DATA_JSONL, WEAK], 3,
         f"Error: {DATA_JSONL}: invalid JSON: parse error: premature EOF"),
    case("jsonl-data-after-end-line", lambda w: Path(DATA_JSONL).write_text(Path(DATA_JSONL).read_text() + "\n\n{}\n"),
         "score", [DATA_JSONL, WEAK], 3, f"Error: {DATA_JSONL}: data after the end line"),
    case("json-empty-file", write(DATA, b""), "score", [WEAK], 3, IN_DATA + "is empty, expected a JSON document"),
    case("json-not-utf8", write(DATA, b'{"format": "\xff"}'), "score", [WEAK], 3, IN_DATA + "is not UTF-8 text"),
    case("json-nested-too-deeply", write(DATA, '{"format": "ppml.encrypted-features", "features": '
                                         + "[" * 100_000 + "]" * 100_000 + "}"), "score", [WEAK], 3,
         IN_DATA + "JSON nested too deeply (field 'features' nests at most 1 level)"),
    case("json-nan-constant", nan_in_document, "score", [WEAK], 3,
         IN_DATA + "invalid JSON: lexical error: invalid char in json text."),
    case("json-integer-too-long", huge_integer_id, "score", [WEAK], 3,
         IN_DATA + "invalid JSON: an integer does not fit in 64 bits"),
    case("json-not-an-object", write(DATA, "[]"), "score", [WEAK], 3,
         IN_DATA + "expected a JSON object of format 'ppml.encrypted-features', got list"),
    case("wrong-format", nothing, "score", [ANSWER, WEAK], 3,
         f"Error: {ANSWER}: format is 'ppml.encrypted-predictions', expected 'ppml.encrypted-features'"),
    case("unknown-version", doc_edit(lambda d: d.update(version=2)), "score", [WEAK], 3,
         IN_DATA + "version 2 of 'ppml.encrypted-features' is not supported (supported: 1)"),
    case("version-as-string", doc_edit(lambda d: d.update(version="1")), "score", [WEAK], 3,
         IN_DATA + "version '1' of 'ppml.encrypted-features' is not supported (supported: 1)"),
    case("key-fingerprint-of-another-key", doc_edit(lambda d: d.update(key_fingerprint=d["model_fingerprint"])),
         "score", [WEAK], 3, IN_DATA + "key_fingerprint does not match the public key in the document"),
    case("document-weak-key-without-flag", nothing, "score", [], 3, IN_DATA + "public_key: " + WEAK_KEY),
    case("document-key-even-n", doc_edit(n_plus_one_in_document), "score", [WEAK], 3,
         IN_DATA + "public_key: n is even: not an RSA modulus"),
    case("document-for-another-model", doc_edit(lambda d: d.update(model_fingerprint="sha256:" + "ab" * 32)),
         "score", [WEAK], 4, IN_DATA + "encrypted for model sha256:abababababab…, but this server runs model "
                                       "{model_fp}…"),
    case("codec-of-another-model", doc_edit(codec_of_another_model), "score", [WEAK], 3,
         IN_DATA + "codec {codec_doc} differs from the model's {codec_model}"),
    case("feature-names-differ", doc_edit(lambda d: d["features"].reverse()), "score", [WEAK], 3,
         IN_DATA + "feature names differ from the model's"),
    case("slots-beyond-the-key", doc_edit(lambda d: d.update(slots=d["slots"] + 1)), "score", [WEAK], 3,
         IN_DATA + "{slots_plus_one} slots of {slot_bits} bits do not fit a 1024-bit key"),
    case("ciphertext-zero", ciphertext(0, lambda n, p: "0"), "score", [WEAK], 3,
         IN_DATA + "batch 0 ciphertext 0 " + CT_RANGE),
    case("ciphertext-n-squared", ciphertext(1, lambda n, p: format(n * n, "x")), "score", [WEAK], 3,
         IN_DATA + "batch 0 ciphertext 1 " + CT_RANGE),
    case("ciphertext-multiple-of-p", ciphertext(2, lambda n, p: format(p * 12345, "x")), "score", [WEAK], 3,
         IN_DATA + "batch 0 ciphertext 2 is not a unit modulo n: not a valid ciphertext"),
    case("ciphertext-not-hex", ciphertext(3, lambda n, p: "xyz"), "score", [WEAK], 3,
         IN_DATA + "batch 0 ciphertext 3 is not hexadecimal"),
    case("ciphertext-0x-prefix", ciphertext(4, lambda n, p: "0x1f"), "score", [WEAK], 3,
         IN_DATA + "batch 0 ciphertext 4 is not hexadecimal"),
    case("ciphertext-huge", ciphertext(5, lambda n, p: "f" * 5000), "score", [WEAK], 3,
         IN_DATA + "batch 0 ciphertext 5 must be a hexadecimal string of at most {limit} digits"),
    case("ciphertext-a-number", ciphertext(6, lambda n, p: 12345), "score", [WEAK], 3,
         IN_DATA + "batch 0 ciphertext 6 must be a hexadecimal string of at most {limit} digits"),
    case("ciphertexts-one-missing", doc_edit(lambda d: d["batches"][0]["ciphertexts"].pop()), "score", [WEAK], 3,
         IN_DATA + "batch 0 has {features_minus_one} ciphertexts, expected {features} (one per feature)"),
    case("records-count-wrong", doc_edit(lambda d: d.update(records=d["records"] + 1)), "score", [WEAK], 3,
         IN_DATA + f"records says {RECORDS_ROWS + 1} but the batches hold {RECORDS_ROWS}"),
    case("ids-more-than-slots", doc_edit(lambda d: d["batches"][0].update(ids=list(range(d["slots"] + 1)))),
         "score", [WEAK], 3, IN_DATA + "a batch holds {slots_plus_one} records, expected 1 to {slots}"),
    case("ids-empty", doc_edit(lambda d: d["batches"][0].update(ids=[])), "score", [WEAK], 3,
         IN_DATA + "a batch holds 0 records, expected 1 to {slots}"),
    case("ids-not-strings-or-integers", doc_edit(lambda d: d["batches"][0]["ids"].__setitem__(0, 1.5)), "score",
         [WEAK], 3, IN_DATA + "record ids must be strings or integers"),
    case("ids-lone-surrogate", doc_edit(surrogate), "score", [WEAK], 3, IN_DATA + "is not UTF-8 text"),
    case("batches-not-a-list", doc_edit(lambda d: d.update(batches={"0": {}})), "score", [WEAK], 3,
         IN_DATA + "field 'batches' must be a list of batches"),
    # -- ServerModelRun.py: the model parameters and the output --------------------------------
    case("model-params-tampered", lambda w: edit(MODEL, tamper_model_bound), "score", [WEAK], 3,
         f"Error: {MODEL}: fingerprint does not match the content (the model file was altered)"),
    case("coefficients-of-another-model",
         lambda w: edit(COEFFICIENTS, lambda d: d.update(model_fingerprint="sha256:" + "cd" * 32)), "score", [WEAK], 4,
         "Error: Encrypted_ModelParameters: the coefficients belong to another model than the model description"),
    case("coefficients-one-missing", lambda w: edit(COEFFICIENTS, lambda d: d["coefficients"][0].pop()), "score",
         [WEAK], 3, "Error: Encrypted_ModelParameters: field 'coefficients[0]' has {features_minus_one} values, "
                    "expected {features}"),
    case("coefficients-one-row-too-many", lambda w: edit(COEFFICIENTS, lambda d: d["coefficients"].append([0.0])),
         "score", [WEAK], 3,
         "Error: Encrypted_ModelParameters: field 'coefficients' has 2 rows, expected 1 (one per output)"),
    case("coefficients-astronomical",
         lambda w: edit(COEFFICIENTS, lambda d: d["coefficients"][0].__setitem__(0, 1e300)),
         "score", [WEAK], 3,
         "Error: Encrypted_ModelParameters: the weights or bounds are too large for the codec's fixed-point scale"),
    case("intercept-missing", remove(INTERCEPT), "score", [WEAK], 1,
         f"Error: {INTERCEPT}: model parameter file not found (run `python -m ppml train` or pass --model/--params)"),
    case("score-output-is-a-folder", mkdir("answer_dir"), "score", ["-o", "answer_dir", WEAK], 1,
         "Error: answer_dir: is a folder; give a file name for the output"),
    case("score-output-parent-is-a-file", nothing, "score", ["-o", "records.csv/answer.json", WEAK], 1,
         "Error: records.csv/answer.json: cannot write here: records.csv is a file, not a folder"),
    case("score-output-folder-read-only", read_only_output_folder, "score", [WEAK], 1,
         "Error: Encrypted_Predicted_value: cannot write here: Permission denied"),
    case("score-output-is-its-input", nothing, "score", [DATA, "-o", DATA, WEAK], 1,
         f"Error: {DATA}: is also the input; choose another output"),
    case("score-output-in-new-folder-bad-input", ciphertext(0, lambda n, p: "0"), "score",
         ["-o", "New/Deeper/answer.json", WEAK], 3, IN_DATA + "batch 0 ciphertext 0 " + CT_RANGE),
    # -- CustomerDecrypts.py -------------------------------------------------------------------
    case("answer-for-another-key", nothing, "decrypt", ["--keys", "OtherKeys", *SO, WEAK], 4,
         IN_ANSWER + "encrypted for key {fp}…, but the key in use is {ofp}…"),
    case("answer-ciphertext-zero", answer_ciphertext(lambda n, p, q: "0"), "decrypt", [*SO, WEAK], 3,
         IN_ANSWER + "batch 0 ciphertext 0 " + CT_RANGE),
    case("answer-ciphertext-multiple-of-q", answer_ciphertext(lambda n, p, q: format(q, "x")), "decrypt", [*SO, WEAK],
         3, IN_ANSWER + "batch 0 ciphertext 0 is not a unit modulo n: not a valid ciphertext"),
    case("answer-ciphertexts-one-per-output", doc_edit(lambda d: d["batches"][0]["ciphertexts"].append("1"), ANSWER),
         "decrypt", [*SO, WEAK], 3, IN_ANSWER + "batch 0 has 2 ciphertexts, expected 1 (one per output)"),
    case("answer-ciphertext-overflows-slots", answer_ciphertext(overflowing_answer), "decrypt", [*SO, WEAK], 4,
         IN_ANSWER + "record 0, output 'Price': decodes outside the range the model can reach over its declared "
                     "bounds (|Σ W·X + B| ≤ 2^92 − 1 with Model.json's 93-bit slots)"),
    case("answer-jsonl-without-end-line", drop_last_lines(ANSWER_JSONL), "decrypt", [ANSWER_JSONL, *SO, WEAK], 3,
         f"Error: {ANSWER_JSONL}: the stream ended before its end line (truncated document)"),
    case("answer-records-count-wrong", doc_edit(lambda d: d.update(records=7), ANSWER), "decrypt", [*SO, WEAK], 4,
         IN_ANSWER + f"declares 7 records where the request sent {RECORDS_ROWS}"),
    case("answer-records-count-wrong-printed", doc_edit(lambda d: d.update(records=7), ANSWER), "decrypt", [WEAK], 4,
         IN_ANSWER + f"declares 7 records where the request sent {RECORDS_ROWS}"),
    case("answer-outputs-of-another-model", doc_edit(lambda d: d.update(outputs=["Salary"]), ANSWER), "decrypt",
         [*SO, WEAK], 4, IN_ANSWER + "the answer's outputs ['Salary'] are not the model's ['Price']"),
    case("answer-output-lone-surrogate", doc_edit(lambda d: d.update(outputs=["\udcff"]), ANSWER), "decrypt",
         [WEAK], 3, IN_ANSWER + "is not UTF-8 text"),
    case("answer-unknown-version", doc_edit(lambda d: d.update(version=99), ANSWER), "decrypt", [*SO, WEAK], 3,
         IN_ANSWER + "version 99 of 'ppml.encrypted-predictions' is not supported (supported: 2)"),
    case("answer-empty", write(ANSWER, b"\n\n"), "decrypt", [*SO, WEAK], 3,
         IN_ANSWER + "is empty, expected a JSON document"),
    case("decrypt-output-is-a-folder", mkdir("preds"), "decrypt", ["-o", "preds", WEAK], 1,
         "Error: preds: is a folder; give a file name for the output"),
    case("decrypt-output-parent-is-a-file", nothing, "decrypt", ["-o", "predictions.csv/p.csv", WEAK], 1,
         "Error: predictions.csv/p.csv: cannot write here: predictions.csv is a file, not a folder"),
    case("private-key-mode-0644", chmod(PRIVATE, 0o644), "decrypt", [*SO, WEAK], 1,
         f"Error: {PRIVATE}: permissions 0644 are too open: the private key must be readable by its "
         f"owner only (chmod 600 {PRIVATE})"),
    case("private-key-pq-not-n", private_key_of_other_factors, "decrypt", [*SO, WEAK], 4,
         f"Error: {PRIVATE}: p·q ≠ n: the private key does not belong to this public key"),
    case("private-key-composite-factors", composite_factor_key_pair, "decrypt", [*SO, WEAK], 1,
         f"Error: {PRIVATE}: p and q are not two distinct primes: not a Paillier private key"),
    case("private-key-alone-p-equals-q", lone_private_key_with_p_equal_to_q, "decrypt", [*SO, WEAK], 1,
         f"Error: {PRIVATE}: p and q are not two distinct primes: not a Paillier private key"),
    case("private-key-of-another-pair", lambda w: shutil.copyfile("OtherKeys/private_key.json", PRIVATE), "decrypt",
         [*SO, WEAK], 4, f"Error: {PRIVATE}: private key '{{OFP}}' does not belong to public key {{FP}}"),
    case("private-key-0x-hex", lambda w: edit(PRIVATE, lambda d: d.update(p="0x" + d["p"])), "decrypt", [*SO, WEAK],
         1, f"Error: {PRIVATE}: field 'p' is not hexadecimal"),
    case("private-key-is-a-public-key", lambda w: Path(PRIVATE).write_bytes(Path(PUBLIC).read_bytes()), "decrypt",
         [*SO, WEAK], 1,
         f"Error: {PRIVATE}: format is 'ppml.paillier-public-key', expected 'ppml.paillier-private-key'"),
    case("private-key-missing", remove(PRIVATE), "decrypt", [*SO, WEAK], 1,
         f"Error: {PRIVATE}: private key not found beside its public key (restore it from a backup, or create "
         "a new pair with `python -m ppml keygen --force`)"),
    case("wrong-key-folder", nothing, "decrypt", ["--keys", "Nowhere", *SO, WEAK], 1,
         "Error: Nowhere/public_key.json: key file not found (run CustomerEncrypts.py first to create keys)"),
    case("key-folder-is-a-file", nothing, "decrypt", ["--keys", "records.csv", *SO, WEAK], 2,
         "Error: Invalid value for '--keys': Directory 'records.csv' is a file."),
    case("decrypt-weak-key-without-flag", nothing, "decrypt", SO, 1, f"Error: {PUBLIC}: {WEAK_KEY}"),
    # -- python -m ppml train / keygen ---------------------------------------------------------
    case("train-without-price", training_rows(without_price), "train", ["bad_train.csv", "--out-dir", "out"], 3,
         "Error: bad_train.csv: training data has no 'Price' column"),
    case("train-non-positive-price", training_rows(lambda rows, c: rows[17].update(Price="0")), "train",
         ["bad_train.csv", "--out-dir", "out"], 3, "Error: bad_train.csv: " + PRICE_ROW),
    case("train-price-not-a-number", training_rows(lambda rows, c: rows[17].update(Price="cheap")), "train",
         ["bad_train.csv", "--out-dir", "out"], 3, "Error: bad_train.csv: " + PRICE_ROW),
    case("train-unparseable-feature", training_rows(lambda rows, c: rows[5].update(Ram="lots")), "train",
         ["bad_train.csv", "--out-dir", "out"], 3,
         "Error: bad_train.csv: row 5, column 'Ram': cannot parse 'lots' (expected e.g. '8GB')"),
    case("train-empty-csv", write("bad_train.csv", b""), "train", ["bad_train.csv", "--out-dir", "out"], 3,
         "Error: bad_train.csv: is empty, expected a CSV with a header row"),
    case("train-data-missing", nothing, "train", ["nope.csv", "--out-dir", "out"], 3,
         "Error: nope.csv: file not found"),
    case("train-params-folder-is-a-file", params_folder_is_a_file, "train", ["train.csv", "--out-dir", "out", "-q"], 1,
         "Error: out/Encrypted_ModelParameters/Model.json: cannot write here: out/Encrypted_ModelParameters "
         "is a file, not a folder"),
    case("keygen-pair-exists", nothing, "keygen", ["--key-size", "1024", WEAK], 1,
         "Error: PaillierKeys: a key pair already exists here; refusing to overwrite it (use --force)"),
    case("keygen-odd-size", nothing, "keygen", ["--keys", "NewKeys", "--key-size", "1023", WEAK], 1,
         "Error: key size must be even, got 1023"),
    case("keygen-weak-without-flag", nothing, "keygen", ["--keys", "NewKeys", "--key-size", "1024"], 1,
         "Error: " + WEAK_KEY),
    case("keygen-folder-under-a-file", nothing, "keygen", ["--keys", "records.csv/keys", "--key-size", "1024", WEAK],
         1, "Error: records.csv/keys/private_key.json: cannot write here: records.csv is a file, not a folder"),
    # -- python -m ppml export -----------------------------------------------------------------
    case("export-random-forest", nothing, "export", ["forest.pkl", *EXPORT], 1,
         "Error: forest.pkl: RandomForestRegressor is not a linear model: only linear regressors and classifiers "
         "can be scored under encryption (an ensemble's prediction combines many models, not one W·x + b)"),
    case("export-not-a-pickle", nothing, "export", ["records.csv", *EXPORT], 1,
         "Error: records.csv: cannot unpickle the estimator (UnpicklingError: invalid load key, ' '.)", slow=True),
    case("export-pickle-missing", nothing, "export", ["nope.pkl", *EXPORT], 3, "Error: nope.pkl: file not found"),
    case("export-data-lacks-a-column", training_rows_of("est_train.csv", lambda rows, c: [k for k in c if k != "z"]),
         "export", ["est.pkl", "--data", "bad_train.csv", "--target", "y", "--out-dir", "exported"], 3,
         "Error: bad_train.csv: X_train lacks column(s) 'z' that the estimator was fitted on"),
    case("export-bounds-exclude-training-data", nothing, "export", ["est.pkl", *EXPORT, "--bounds", "x=0:1"], 3,
         "Error: est_train.csv: --bounds x=0:1: row 0 has 6.36962, outside; the bounds must hold every training "
         "value"),
]

#: Permission bits do not stop root. Under root these run only as real processes, started
#: through ``setpriv`` without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (so the bits apply again).
UNPRIVILEGED = ["score-output-folder-read-only"]
DROP_ROOT_BYPASS = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]

#: Also run as real processes of the root scripts / ``python -m ppml``.
SUBPROCESS = UNPRIVILEGED + ["csv-not-utf8", "pickle-runs-a-command", "json-truncated", "jsonl-without-end-line",
              "ciphertext-multiple-of-p", "score-output-is-a-folder", "answer-for-another-key",
              "private-key-mode-0644", "train-non-positive-price", "keygen-folder-under-a-file",
              "export-random-forest"]


# ---------------------------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------------------------
def snapshot(root: Path) -> dict:
    """Every file (bytes and mode) and folder (mode) under ``root``."""
    out = {}
    for folder, dirs, names in os.walk(root):
        for d in dirs:
            p = Path(folder, d)
            out[str(p.relative_to(root)) + "/"] = stat.S_IMODE(os.lstat(p).st_mode)
        for name in names:
            p = Path(folder, name)
            out[str(p.relative_to(root))] = (stat.S_IMODE(os.lstat(p).st_mode), p.read_bytes())
    return out


def assert_untouched(before: dict, after: dict) -> None:
    created = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert (created, removed, changed) == ([], [], []), "the failed run changed the folder"


def expand(text: str, values: dict) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def prepare(base, tmp_path, monkeypatch, placeholders, setup):
    work = tmp_path / "work"
    shutil.copytree(base, work, symlinks=True)
    monkeypatch.chdir(work)
    doc = json.loads(Path(DATA).read_text())
    model = json.loads(Path(MODEL).read_text())
    values = {**placeholders, "tmp": str(work), "model_fp": model["fingerprint"][:19],
              "features_minus_one": str(int(placeholders["features"]) - 1),
              "slots_plus_one": str(doc["slots"] + 1), "slot_bits": str(doc["codec"]["slot_bits"]),
              "codec_model": str(model["codec"])}
    ctx = setup(work)
    ctx = ctx if isinstance(ctx, dict) else {}
    try:
        ctx.setdefault("codec_doc", str(json.loads(Path(DATA).read_text())["codec"]))
    except (ValueError, KeyError, TypeError, RecursionError):
        pass
    values.update({k: str(v) for k, v in ctx.items()})
    return work, values


def check_stderr(stderr: str, status: int, expected: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    if status == 2:  # click prints the usage and a hint first; the error is the last line
        assert lines and lines[-1] == expected, stderr
    else:
        assert lines == [expected], stderr



def test_the_battery_covers_every_command_and_every_documented_failure_status():
    """Each case has its own name, the real-process list names existing cases, and every
    command is fed bad input that ends in each failure status the README documents for it."""
    names = [p.values[0] for p in CASES]
    assert len(names) == len(set(names))
    assert set(SUBPROCESS) <= set(names), set(SUBPROCESS) - set(names)
    assert {p.values[2] for p in CASES} == set(COMMANDS)
    assert {p.values[4] for p in CASES} == {1, 2, 3, 4}  # failure, usage, invalid input, mismatch
    for command in ("encrypt", "score", "decrypt"):
        assert {p.values[4] for p in CASES if p.values[2] == command} >= {1, 3}, command


@pytest.mark.parametrize("name, setup, command, args, status, stderr", CASES)
def test_bad_input_in_process(name, setup, command, args, status, stderr, base, placeholders, tmp_path,
                              monkeypatch):
    if name in UNPRIVILEGED and os.geteuid() == 0:
        pytest.skip("root bypasses permission bits in this process; the real-process variant drops that power")
    work, values = prepare(base, tmp_path, monkeypatch, placeholders, setup)
    before = snapshot(work)
    cmd, prefix = COMMANDS[command]
    r = CliRunner().invoke(cmd, [*prefix, *args], catch_exceptions=False)
    assert r.exit_code == status, r.output
    check_stderr(r.stderr, status, expand(stderr, values))
    assert r.stdout == "" or command == "train"  # train prints its metrics before it writes
    assert_untouched(before, snapshot(work))


@pytest.mark.slow
@pytest.mark.parametrize("name, setup, command, args, status, stderr",
                         [p for p in CASES if p.values[0] in SUBPROCESS])
def test_bad_input_as_a_real_process(name, setup, command, args, status, stderr, base, placeholders, tmp_path,
                                     monkeypatch):
    work, values = prepare(base, tmp_path, monkeypatch, placeholders, setup)
    before = snapshot(work)
    script = SCRIPTS[command]
    if script[0].endswith(".py"):
        script = [str(ROOT / script[0]), *script[1:]]
    launcher = []
    if name in UNPRIVILEGED and os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("runs as root and setpriv is missing: permission bits would not apply")
        launcher = DROP_ROOT_BYPASS
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([*launcher, sys.executable, *script, *args], cwd=work, capture_output=True,
                          timeout=120, env=env)
    assert proc.returncode == status, proc.stderr.decode()
    check_stderr(proc.stderr.decode(), status, expand(stderr, values))
    assert proc.stdout == b"" or command == "train"
    assert_untouched(before, snapshot(work))
    assert not (work / "pwned").exists()
