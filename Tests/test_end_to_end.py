"""The three scripts as separate processes passing files through the stage folders, compared
record by record with the plaintext scikit-learn pipeline (|log price difference| ≤ 1e-9).

1024-bit keys via the explicit --allow-weak-key test option, for speed.
"""
from __future__ import annotations

import json
import math
import os
import stat

import pandas as pd
import pytest

from conftest import PUBLIC_LAPTOPS, model_folder, ok, run_script

pytestmark = pytest.mark.slow

TOLERANCE = 1e-9


def _three_stages(workdir, records_csv):
    ok(run_script("CustomerEncrypts.py", str(records_csv), "--key-size", "1024", "--allow-weak-key", cwd=workdir))
    ok(run_script("ServerModelRun.py", "--allow-weak-key", cwd=workdir))
    ok(run_script("CustomerDecrypts.py", "-o", "predictions.csv", "--allow-weak-key", cwd=workdir))
    return pd.read_csv(workdir / "predictions.csv", dtype={"id": str})


@pytest.mark.parametrize("source", ["bundled", "public"])
def test_batch_through_the_three_scripts_matches_the_plaintext_model(tmp_path, source, pipeline, bundled_raw):
    if source == "public":
        if not PUBLIC_LAPTOPS.exists():
            pytest.skip("the public laptop data set is not beside this checkout")
        raw = pd.read_csv(PUBLIC_LAPTOPS, dtype=str, keep_default_na=False)
        batch = raw.sample(150, random_state=1)  # the public file's own formats, in random order
    else:
        batch = bundled_raw.iloc[200:320]
    model_folder(tmp_path)
    batch.to_csv(tmp_path / "records.csv", index=False)
    predictions = _three_stages(tmp_path, tmp_path / "records.csv")

    assert list(predictions["id"]) == [str(i) for i in range(len(batch))]
    expected = pipeline.predict(batch)
    errors = [abs(math.log(p) - e) for p, e in zip(predictions["prediction"], expected)]
    assert len(errors) == len(batch) >= 100
    assert max(errors) <= TOLERANCE

    # What each party's files hold: the private key only on the customer side, mode 0600.
    assert stat.S_IMODE(os.stat(tmp_path / "PaillierKeys" / "private_key.json").st_mode) == 0o600
    private = json.loads((tmp_path / "PaillierKeys" / "private_key.json").read_text())
    secrets = [private["p"], private["q"], *private["p_factors"], *private["q_factors"]]
    for shared in ("Encrypted_Data/data.json", "Encrypted_Predicted_value/answer.json"):
        text = (tmp_path / shared).read_text()
        assert '"p"' not in text and '"q"' not in text
        assert not any(secret[:40] in text for secret in secrets)


def test_readable_output_and_missing_input_as_a_user_sees_them(tmp_path, pipeline):
    model_folder(tmp_path)
    ok(run_script("CustomerEncrypts.py", "--key-size", "1024", "--allow-weak-key", cwd=tmp_path))
    ok(run_script("ServerModelRun.py", "--allow-weak-key", cwd=tmp_path))
    out = ok(run_script("CustomerDecrypts.py", "--allow-weak-key", cwd=tmp_path)).stdout.decode()
    from ppml.records import SAMPLE_LAPTOP

    price = math.exp(pipeline.predict(pd.DataFrame([SAMPLE_LAPTOP]))[0])
    assert out == f"0: Price = {price:,.2f}\n"

    proc = run_script("ServerModelRun.py", "missing.json", cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stderr.decode() == "Error: missing.json: file not found\n"
    assert proc.stdout == b""
