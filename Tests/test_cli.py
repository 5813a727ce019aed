"""The three commands through click's CliRunner: exit statuses and exact error lines.

Keys are 1024-bit through the explicit --allow-weak-key test option (the default stays 3072).
"""
from __future__ import annotations

import csv
import json
import math
import os
import stat

import pytest
from click.testing import CliRunner

from conftest import ROOT
from ppml.cli import main
from ppml.cli.decrypt import decrypt_command
from ppml.cli.encrypt import encrypt_command
from ppml.cli.score import score_command
from ppml.records import SAMPLE_LAPTOP

WEAK = ["--key-size", "1024", "--allow-weak-key"]
PARAMS = str(ROOT / "Encrypted_ModelParameters")


def run(command, args, input=None):
    return CliRunner().invoke(command, args, input=input, catch_exceptions=False)


def encrypt(args=(), input=None):
    return run(encrypt_command, [*args, "--model", str(ROOT), *WEAK], input)


def score(args=()):
    return run(score_command, [*args, "--params", PARAMS, "--allow-weak-key"])


def decrypt(args=()):
    return run(decrypt_command, [*args, "--allow-weak-key"])


def sample_price(pipeline):
    import pandas as pd

    return math.exp(pipeline.predict(pd.DataFrame([SAMPLE_LAPTOP]))[0])


def test_default_flow_on_the_sample_laptop(stage_dir, pipeline):
    r = encrypt()
    assert r.exit_code == 0, r.output
    assert "Created a 1024-bit key pair in PaillierKeys/" in r.stderr
    assert stat.S_IMODE(os.stat("PaillierKeys/private_key.json").st_mode) == 0o600
    assert json.load(open("Encrypted_Data/data.json"))["format"] == "ppml.encrypted-features"
    assert score().exit_code == 0
    assert json.load(open("Encrypted_Predicted_value/answer.json"))["format"] == "ppml.encrypted-predictions"
    r = decrypt()
    assert r.exit_code == 0
    assert r.stdout == f"0: Price = {sample_price(pipeline):,.2f}\n"


def test_batch_csv_output_keeps_order_and_ids(stage_dir, bundled_raw, pipeline):
    batch = bundled_raw.iloc[:40].copy()
    batch.insert(0, "id", [f"L{i:03d}" for i in range(40)])
    batch.to_csv("batch.csv", index=False)
    assert encrypt(["batch.csv"]).exit_code == 0
    assert score().exit_code == 0
    r = decrypt(["-o", "preds.csv"])
    assert r.exit_code == 0 and r.stdout == ""
    rows = list(csv.DictReader(open("preds.csv")))
    assert [row["id"] for row in rows] == list(batch["id"])
    expected = pipeline.predict(bundled_raw.iloc[:40])
    assert max(abs(math.log(float(row["prediction"])) - e) for row, e in zip(rows, expected)) <= 1e-9


def test_stdin_and_stdout(stage_dir, bundled_raw):
    text = bundled_raw.iloc[:3].to_csv(index=False)
    r = encrypt(["-", "-o", "-"], input=text)
    assert r.exit_code == 0
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines[0]["format"] == "ppml.encrypted-features" and lines[0]["layout"] == "jsonl"
    assert lines[-1] == {"end": True, "records": 3, "batches": 1}
    assert lines[1]["ids"] == [0, 1, 2] and len(lines) == 3
    r = run(score_command, ["-", "-o", "-", "--params", PARAMS, "--allow-weak-key"], input=r.stdout)
    assert r.exit_code == 0
    r = run(decrypt_command, ["-", "-o", "-", "--allow-weak-key"], input=r.stdout)
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0] == "id,prediction" and len(r.stdout.splitlines()) == 4


def test_existing_keys_are_reused_not_replaced(stage_dir):
    assert encrypt().exit_code == 0
    before = open("PaillierKeys/private_key.json").read()
    assert encrypt().exit_code == 0
    assert open("PaillierKeys/private_key.json").read() == before


def test_key_size_conflicting_with_existing_keys(stage_dir):
    assert encrypt().exit_code == 0
    r = run(encrypt_command, ["--model", str(ROOT), "--key-size", "2048", "--allow-weak-key"])
    assert r.exit_code == 1
    assert r.stderr == ("Error: PaillierKeys: holds a 1024-bit key pair, not 2048 bits; replace it with "
                        "`python -m ppml keygen --key-size 2048 --force`\n")


def test_weak_key_needs_the_explicit_flag(stage_dir):
    r = run(encrypt_command, ["--model", str(ROOT), "--key-size", "1024"])
    assert r.exit_code == 1
    assert r.stderr == ("Error: a 1024-bit key is too small: at least 2048 bits "
                        "(smaller keys only for tests, with --allow-weak-key)\n")
    assert not os.path.exists("PaillierKeys/private_key.json")


def test_missing_input(stage_dir):
    r = encrypt(["nope.csv"])
    assert r.exit_code == 3
    assert r.stderr == "Error: nope.csv: file not found\n"
    assert not os.path.exists("Encrypted_Data/data.json")
    r = score(["nope.json"])
    assert (r.exit_code, r.stderr) == (3, "Error: nope.json: file not found\n")


def test_unparseable_record_names_file_row_and_column(stage_dir, bundled_raw):
    bad = bundled_raw.iloc[:3].copy()
    bad.loc[1, "Ram"] = "eight"
    bad.to_csv("bad.csv", index=False)
    r = encrypt(["bad.csv"])
    assert r.exit_code == 3
    assert r.stderr == "Error: bad.csv: row 1, column 'Ram': cannot parse 'eight' (expected e.g. '8GB')\n"
    assert not os.path.exists("Encrypted_Data/data.json") and not os.path.exists("PaillierKeys/public_key.json")


def test_out_of_range_record_is_refused(stage_dir, bundled_raw):
    bad = bundled_raw.iloc[:2].copy()
    bad.loc[0, "Ram"] = "8192GB"
    bad.to_csv("big.csv", index=False)
    r = encrypt(["big.csv"])
    assert r.exit_code == 3
    assert r.stderr == "Error: big.csv: record 0: ram_gb = 8192 is outside the range the model accepts [0, 4096]\n"


def test_wrong_document_kind(stage_dir):
    assert encrypt().exit_code == 0
    r = score(["PaillierKeys/public_key.json"])
    assert r.exit_code == 3
    assert r.stderr == ("Error: PaillierKeys/public_key.json: format is 'ppml.paillier-public-key', "
                        "expected 'ppml.encrypted-features'\n")


def test_answer_for_another_key(stage_dir, tmp_path):
    assert encrypt().exit_code == 0 and score().exit_code == 0
    r = run(decrypt_command, ["--keys", str(tmp_path / "other"), "--allow-weak-key"])
    assert r.exit_code == 1
    assert r.stderr == (f"Error: {tmp_path / 'other' / 'public_key.json'}: key file not found "
                        "(run CustomerEncrypts.py first to create keys)\n")
    run(main, ["keygen", "--keys", "other", "--key-size", "1024", "--allow-weak-key"])
    r = run(decrypt_command, ["--keys", "other", "--allow-weak-key"])
    assert r.exit_code == 4
    assert r.stderr.startswith("Error: Encrypted_Predicted_value/answer.json: encrypted for key sha256:")


def test_document_for_another_model(stage_dir):
    assert encrypt().exit_code == 0
    doc = json.load(open("Encrypted_Data/data.json"))
    doc["model_fingerprint"] = "sha256:" + "ab" * 32
    json.dump(doc, open("Encrypted_Data/data.json", "w"))
    r = score()
    assert r.exit_code == 4
    assert r.stderr.startswith("Error: Encrypted_Data/data.json: encrypted for model sha256:abababababab…, "
                               "but this server runs model sha256:")
    assert not os.path.exists("Encrypted_Predicted_value/answer.json")


def test_debug_shows_the_traceback(stage_dir):
    with pytest.raises(Exception, match="file not found"):
        CliRunner().invoke(score_command, ["nope.json", "--debug", "--params", PARAMS],
                           catch_exceptions=False)


@pytest.mark.parametrize("command", [encrypt_command, score_command, decrypt_command, main])
def test_every_command_has_help(command):
    r = run(command, ["--help"])
    assert r.exit_code == 0 and "Usage:" in r.stdout and len(r.stdout.splitlines()) > 5


def test_usage_error_exit_status():
    r = run(score_command, ["--no-such-option"])
    assert r.exit_code == 2 and "No such option" in r.stderr


def test_keygen_refuses_to_overwrite(stage_dir):
    assert run(main, ["keygen", "--key-size", "1024", "--allow-weak-key"]).exit_code == 0
    r = run(main, ["keygen", "--key-size", "1024", "--allow-weak-key"])
    assert r.exit_code == 1
    assert r.stderr == ("Error: PaillierKeys: a key pair already exists here; refusing to overwrite it "
                        "(use --force)\n")
