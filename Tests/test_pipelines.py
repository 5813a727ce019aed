"""Shell pipelines, cron folder mode, Dask clusters, progress and --model (1024-bit test keys)."""
from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import ROOT, model_folder

WEAK = ["--allow-weak-key"]
PARAMS = str(ROOT / "Encrypted_ModelParameters")


def _script(name):
    return f"{sys.executable} {ROOT / name}"


def _predictions(path):
    return {row["id"]: float(row["prediction"]) for row in csv.DictReader(open(path))}


def _assert_matches_plaintext(preds: dict, raw, pipeline):
    expected = pipeline.predict(raw)
    assert len(preds) == len(raw)
    assert max(abs(math.log(preds[str(i)]) - e) for i, e in enumerate(expected)) <= 1e-9


@pytest.mark.slow
def test_three_scripts_in_a_shell_pipeline(tmp_path, bundled_raw, pipeline):
    model_folder(tmp_path)
    raw = bundled_raw.iloc[:400]
    raw.to_csv(tmp_path / "big.csv", index=False)
    subprocess.run([sys.executable, str(ROOT / "ServerModelRun.py"), "--help"], check=True, capture_output=True)
    cmd = (f"set -o pipefail; {_script('CustomerEncrypts.py')} big.csv -o - --key-size 1024 --allow-weak-key -q"
           f" | {_script('ServerModelRun.py')} - -o - --allow-weak-key -q"
           f" | {_script('CustomerDecrypts.py')} - -o preds.csv --allow-weak-key -q")
    proc = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    _assert_matches_plaintext(_predictions(tmp_path / "preds.csv"), raw, pipeline)
    assert not os.path.exists(tmp_path / "Encrypted_Data" / "data.json")  # nothing but the pipe


@pytest.mark.slow
def test_closed_pipe_ends_the_upstream_cleanly(tmp_path, bundled_raw):
    model_folder(tmp_path)
    pd.concat([bundled_raw] * 3).to_csv(tmp_path / "big.csv", index=False)
    start = time.monotonic()
    proc = subprocess.run(["bash", "-c", f"{_script('CustomerEncrypts.py')} big.csv -o - --key-size 1024 "
                                         "--allow-weak-key -q | head -c 300 > /dev/null; echo ${PIPESTATUS[0]}"],
                          cwd=tmp_path, capture_output=True, timeout=120)
    assert proc.stderr == b""  # no traceback, no "Broken pipe" noise
    assert proc.stdout.strip() in (b"0", b"1")  # ended, quietly, well before the input was done
    assert time.monotonic() - start < 60


def test_folder_mode_processes_once_skips_done_and_reports_failures(tmp_path, bundled_raw, pipeline):
    from ppml.cli.decrypt import decrypt_command
    from ppml.cli.encrypt import encrypt_command
    from ppml.cli.score import score_command

    os.chdir(tmp_path)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    bundled_raw.iloc[:50].to_csv(incoming / "monday.csv", index=False)
    bundled_raw.iloc[50:90].to_csv(incoming / "tuesday.csv", index=False)
    bad = bundled_raw.iloc[:5].copy()
    bad.loc[2, "Weight"] = "heavy"
    bad.to_csv(incoming / "broken.csv", index=False)
    runner = CliRunner()

    def stage(command, args):
        return runner.invoke(command, args, catch_exceptions=False)

    r = stage(encrypt_command, ["incoming", "--model", str(ROOT), "--key-size", "1024", *WEAK])
    assert r.exit_code == 1
    assert ("Error: incoming/broken.csv: row 2, column 'Weight': cannot parse 'heavy' (expected e.g. '1.37kg')\n"
            in r.stderr)
    assert r.stderr.endswith("encrypt incoming: processed 2, skipped 0, failed 1\n")
    assert sorted(os.listdir("Encrypted_Data")) == [".ppml-manifest.json", "monday.json", "tuesday.json"]

    r = stage(score_command, ["Encrypted_Data", "--params", PARAMS, *WEAK])
    assert r.exit_code == 0 and r.stderr.endswith("score Encrypted_Data: processed 2, skipped 0, failed 0\n")
    r = stage(decrypt_command, ["Encrypted_Predicted_value", "--model", str(ROOT), *WEAK])
    assert r.exit_code == 0 and sorted(os.listdir("Predictions")) == [".ppml-manifest.json", "monday.csv",
                                                                      "tuesday.csv"]
    monday = _predictions("Predictions/monday.csv")
    _assert_matches_plaintext(monday, bundled_raw.iloc[:50], pipeline)

    # A second cron run finds everything done (the broken file still fails, and says so).
    before = {p: os.stat(f"Encrypted_Data/{p}").st_mtime_ns for p in os.listdir("Encrypted_Data")}
    r = stage(encrypt_command, ["incoming", "--model", str(ROOT), *WEAK])
    assert r.stderr.endswith("encrypt incoming: processed 0, skipped 2, failed 1\n")
    assert {p: os.stat(f"Encrypted_Data/{p}").st_mtime_ns for p in os.listdir("Encrypted_Data")} == before
    r = stage(score_command, ["Encrypted_Data", "--params", PARAMS, *WEAK, "-q"])
    assert (r.exit_code, r.stderr) == (0, "")
    r = stage(decrypt_command, ["Encrypted_Predicted_value", "--model", str(ROOT), *WEAK])
    assert r.stderr == "decrypt Encrypted_Predicted_value: processed 0, skipped 2, failed 0\n"

    # A changed input is redone (the manifest compares bytes, not modification times).
    bundled_raw.iloc[:10].to_csv(incoming / "monday.csv", index=False)
    r = stage(encrypt_command, ["incoming", "--model", str(ROOT), *WEAK])
    assert r.stderr.endswith("processed 1, skipped 1, failed 1\n")


@pytest.mark.slow
def test_dask_cluster_gives_the_local_predictions(tmp_path, bundled_raw):
    distributed = pytest.importorskip("distributed")
    from ppml.cli.decrypt import decrypt_command
    from ppml.cli.encrypt import encrypt_command
    from ppml.cli.score import score_command

    os.chdir(tmp_path)
    bundled_raw.iloc[:120].to_csv("r.csv", index=False)
    runner = CliRunner()
    runner.invoke(encrypt_command, ["r.csv", "-o", "local.json", "--model", str(ROOT), "--key-size", "1024", *WEAK],
                  catch_exceptions=False)
    runner.invoke(score_command, ["local.json", "-o", "local_answer.json", "--params", PARAMS, *WEAK],
                  catch_exceptions=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        r = runner.invoke(encrypt_command, ["r.csv", "-o", "dask.json", "--model", str(ROOT), "--scheduler", address,
                                            *WEAK], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        r = runner.invoke(score_command, ["dask.json", "-o", "dask_answer.json", "--params", PARAMS,
                                          "--scheduler", address, *WEAK], catch_exceptions=False)
        assert r.exit_code == 0, r.output
    for name in ("local", "dask"):
        r = runner.invoke(decrypt_command, [f"{name}_answer.json", "-o", f"{name}.csv", "--model", str(ROOT), *WEAK],
                          catch_exceptions=False)
        assert r.exit_code == 0
    assert _predictions("dask.csv") == _predictions("local.csv")
    assert open("dask.json").read() != open("local.json").read()  # fresh randomness, same answers


def test_unreachable_scheduler_is_one_clean_error(tmp_path, bundled_raw):
    from ppml.cli.score import score_command

    os.chdir(tmp_path)
    r = CliRunner().invoke(score_command, ["--params", PARAMS, "--scheduler", "tcp://127.0.0.1:9", *WEAK])
    # No document yet: the input error comes first, before any cluster is contacted.
    assert r.exit_code == 3 and r.stderr == "Error: Encrypted_Data/data.json: file not found\n"


def test_progress_stays_off_pipes_and_verbose_reports_timing(stage_dir):
    from ppml.cli.encrypt import encrypt_command

    r = CliRunner().invoke(encrypt_command, ["--model", str(ROOT), "--key-size", "1024", *WEAK, "-v"],
                           catch_exceptions=False)
    assert r.exit_code == 0
    assert "Encrypting:" not in r.stderr  # stderr is not a terminal here
    timing = r.stderr.splitlines()[-1]
    assert timing.startswith("timing: load model ") and " · encrypt " in timing and " · total " in timing
    r = CliRunner().invoke(encrypt_command, ["--model", str(ROOT), *WEAK, "-q"], catch_exceptions=False)
    assert (r.exit_code, r.stderr) == (0, "")


def test_progress_on_a_terminal(stage_dir, monkeypatch):
    from ppml.cli import common

    monkeypatch.setattr(common.sys.stderr, "isatty", lambda: True, raising=False)
    progress = common.Progress("Scoring")
    assert progress.enabled
    assert not common.Progress("Scoring", quiet=True).enabled


def test_model_option_on_score_and_decrypt(stage_dir):
    from ppml.cli.decrypt import decrypt_command
    from ppml.cli.encrypt import encrypt_command
    from ppml.cli.score import score_command

    runner = CliRunner()
    assert runner.invoke(encrypt_command, ["--model", str(ROOT), "--key-size", "1024", *WEAK]).exit_code == 0
    r = runner.invoke(score_command, ["--model", str(ROOT), "--params", PARAMS, *WEAK])
    assert r.exit_code == 2 and "give --params or --model, not both" in r.stderr
    assert runner.invoke(score_command, ["--model", str(ROOT), *WEAK]).exit_code == 0
    assert runner.invoke(decrypt_command, ["--model", str(ROOT), *WEAK]).exit_code == 0
    other = stage_dir / "other"
    shutil.copytree(ROOT / "Encrypted_ModelParameters", other / "Encrypted_ModelParameters")
    spec_path = other / "Encrypted_ModelParameters" / "Model.json"
    import json

    from ppml.documents import ModelSpec

    spec = ModelSpec.from_dict(json.loads(spec_path.read_text()))
    spec_path.write_text(json.dumps(ModelSpec(spec.features, spec.lower, spec.upper, spec.codec, ["Salary"],
                                              spec.link).to_dict()))
    r = runner.invoke(decrypt_command, ["--model", str(other), *WEAK])
    assert r.exit_code == 4
    assert r.stderr.startswith("Error: Encrypted_Predicted_value/answer.json: answers from model sha256:")


def test_generic_model_needs_records_and_prints_small_values_readably(stage_dir):
    import numpy as np

    from ppml.cli import main
    from ppml.cli.decrypt import decrypt_command
    from ppml.cli.encrypt import encrypt_command
    from ppml.cli.score import score_command

    rng = np.random.default_rng(3)
    a, b = rng.random(60), rng.integers(0, 5, 60)
    pd.DataFrame({"a": a, "b": b, "y": 0.01 * a + 0.002 * b + 0.003}).to_csv("small.csv", index=False)
    runner = CliRunner()
    r = runner.invoke(main, ["train", "small.csv", "--target", "y", "--out-dir", "m", "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = runner.invoke(encrypt_command, ["--model", "m", "--key-size", "1024", *WEAK])
    assert r.exit_code == 2
    assert r.stderr.endswith("Error: RECORDS is required for this model (the sample laptop only fits the laptop "
                             "model); give a CSV with the columns a, b\n")
    pd.DataFrame({"a": [0.5], "b": [2]}).to_csv("one.csv", index=False)
    assert runner.invoke(encrypt_command, ["one.csv", "--model", "m", "--key-size", "1024", *WEAK]).exit_code == 0
    assert runner.invoke(score_command, ["--model", "m", *WEAK]).exit_code == 0
    r = runner.invoke(decrypt_command, ["--model", "m", *WEAK])
    value = float(r.stdout.split("= ")[1])
    assert r.stdout.startswith("0: y = 0.0") and abs(value - 0.012) < 1e-3


def test_results_do_not_depend_on_the_number_of_workers(stage_dir, bundled_raw):
    from ppml.cli.decrypt import decrypt_command
    from ppml.cli.encrypt import encrypt_command
    from ppml.cli.score import score_command

    bundled_raw.iloc[:150].to_csv("r.csv", index=False)
    runner = CliRunner()
    outputs = {}
    for n in ("1", "2", "3"):
        for command, args in ((encrypt_command, ["r.csv", "-o", f"e{n}.json", "--model", str(ROOT), "--key-size",
                                                 "1024"]),
                              (score_command, [f"e{n}.json", "-o", f"a{n}.json", "--params", PARAMS]),
                              (decrypt_command, [f"a{n}.json", "-o", f"p{n}.csv"])):
            r = runner.invoke(command, [*args, "-j", n, *WEAK], catch_exceptions=False)
            assert r.exit_code == 0, r.output
        outputs[n] = open(f"p{n}.csv").read()
    assert outputs["1"] == outputs["2"] == outputs["3"]
    assert len(outputs["1"].splitlines()) == 151


def test_folder_mode_never_overwrites_its_inputs(stage_dir, bundled_raw):
    from ppml.cli.encrypt import encrypt_command
    from ppml.cli.score import score_command

    bundled_raw.iloc[:5].to_csv("r.csv", index=False)
    runner = CliRunner()
    assert runner.invoke(encrypt_command, ["r.csv", "-o", "docs/r.json", "--model", str(ROOT), "--key-size", "1024",
                                           *WEAK]).exit_code == 0
    before = open("docs/r.json", "rb").read()
    r = runner.invoke(score_command, ["docs", "-o", "docs", "--params", PARAMS, *WEAK])
    assert r.exit_code == 1
    assert r.stderr == ("Error: docs/r.json: is also the input; choose another output\n"
                        "score docs: processed 0, skipped 0, failed 1\n")
    assert open("docs/r.json", "rb").read() == before
