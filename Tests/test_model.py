"""Training, the committed artifacts, and safe loading of model files."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from conftest import ROOT
from ppml import artifacts
from ppml.errors import ArtifactError
from ppml.model import train_laptop_model

MAX_ABS_COEFFICIENT = 10.0  # the original project's were ±6.3e10


@pytest.fixture(scope="module")
def retrained(tmp_path_factory, bundled_raw):
    out = tmp_path_factory.mktemp("model")
    trained = train_laptop_model(bundled_raw)
    artifacts.save_model(trained, out)
    return trained, out


def test_bundled_data_is_what_the_generator_writes(tmp_path):
    """Regenerated data equals the committed file: text columns exactly, numbers within 1e-12
    (NumPy promises its bit generators across versions, not every distribution's last bit)."""
    import pandas as pd

    from ppml.datagen import write_laptops_csv

    write_laptops_csv(tmp_path / "laptops.csv")
    fresh, committed = (pd.read_csv(p, keep_default_na=False) for p in (tmp_path / "laptops.csv",
                                                                        ROOT / "Data" / "laptop_data.csv"))
    pd.testing.assert_frame_equal(fresh, committed, check_exact=False, rtol=1e-12, atol=0)


def assert_same_model(folder, reference, raw):
    """Two artifact sets describe the same model: what the code fully controls (feature names,
    codec, target) exactly; what training computes in floats within rtol 1e-12, since BLAS and
    NumPy builds may differ in the last bits."""
    import json

    spec, ref = (json.loads((f / artifacts.PARAMS_DIR / artifacts.MODEL_JSON).read_text()) for f in (folder, reference))
    for key in ("format", "version", "features", "codec", "outputs", "link", "tolerance"):
        assert spec[key] == ref[key], key
    for key in ("lower", "upper"):
        np.testing.assert_allclose(spec[key], ref[key], rtol=1e-12, atol=1e-12)
    assert spec["inputs"].keys() == ref["inputs"].keys()
    np.testing.assert_allclose(list(spec["inputs"].values()), list(ref["inputs"].values()), rtol=1e-12)
    coef, ref_coef = (json.loads((f / artifacts.PARAMS_DIR / artifacts.COEFFICIENTS_JSON).read_text())
                      for f in (folder, reference))
    np.testing.assert_allclose(coef["coefficients"], ref_coef["coefficients"], rtol=1e-12, atol=1e-14)
    intercept, ref_intercept = (json.loads((f / artifacts.PARAMS_DIR / artifacts.INTERCEPT_JSON).read_text())
                                for f in (folder, reference))
    np.testing.assert_allclose(intercept["intercepts"], ref_intercept["intercepts"], rtol=1e-12)
    for name in (artifacts.COL_TNF, artifacts.PIPELINE):
        fresh, committed = (artifacts.load_pickle(f / name) for f in (folder, reference))
        apply = (lambda m: m.predict(raw)) if name == artifacts.PIPELINE else (lambda m: m.transform(raw))
        np.testing.assert_allclose(apply(fresh), apply(committed), rtol=1e-12, atol=1e-12)


def test_committed_artifacts_are_what_train_writes(retrained, bundled_raw):
    _, out = retrained
    assert_same_model(out, ROOT, bundled_raw)


def test_train_command_without_target_is_still_the_laptop_model(tmp_path, retrained, bundled_raw):
    from click.testing import CliRunner

    from ppml.cli import main

    result = CliRunner().invoke(main, ["train", str(ROOT / "Data" / "laptop_data.csv"), "--out-dir", str(tmp_path),
                                       "-q"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].startswith("held-out R² (log price): 0.")
    _, out = retrained
    # The same training twice in one environment is deterministic: the same bytes.
    for name in (artifacts.COL_TNF, artifacts.PIPELINE):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    for name in (artifacts.MODEL_JSON, artifacts.COEFFICIENTS_JSON, artifacts.INTERCEPT_JSON):
        assert (tmp_path / artifacts.PARAMS_DIR / name).read_bytes() == \
               (out / artifacts.PARAMS_DIR / name).read_bytes(), name
    assert_same_model(tmp_path, ROOT, bundled_raw)


def test_model_is_accurate_and_well_conditioned(retrained):
    trained, _ = retrained
    assert trained.metrics["r2_log"] >= 0.8
    assert trained.metrics["max_abs_coefficient"] <= MAX_ABS_COEFFICIENT
    assert trained.metrics["rows_test"] >= 200


def test_exported_parameters_reproduce_the_pipeline(params, col_tnf, pipeline, bundled_raw):
    x = col_tnf.transform(bundled_raw)
    linear = x @ np.array(params.coefficients[0]) + params.intercepts[0]
    np.testing.assert_allclose(linear, pipeline.predict(bundled_raw), rtol=0, atol=1e-12)
    assert params.spec.features == col_tnf.feature_names


@pytest.mark.parametrize("source", ["bundled", "public", "unseen categories"])
def test_compiled_transformer_equals_scikit_learn_bit_for_bit(source, col_tnf, pipeline, bundled_raw):
    import pandas as pd

    from conftest import PUBLIC_LAPTOPS

    raw = bundled_raw
    if source == "public":
        if not PUBLIC_LAPTOPS.exists():
            pytest.skip("the public laptop data set is not beside this checkout")
        raw = pd.read_csv(PUBLIC_LAPTOPS, dtype=str, keep_default_na=False)
    elif source == "unseen categories":
        raw = bundled_raw.iloc[:20].copy()
        raw["Company"] = "Nokia"
        raw["TypeName"] = "Tablet"
    np.testing.assert_array_equal(col_tnf.transform(raw), pipeline[:-1].transform(raw))


def test_customer_transformer_loads_without_scikit_learn():
    import subprocess
    import sys

    code = ("import sys; from ppml.artifacts import load_pickle; load_pickle('col_tnf.pkl'); "
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_customer_allowlist_admits_no_scikit_learn_class(tmp_path):
    path = tmp_path / artifacts.COL_TNF
    path.write_bytes((ROOT / artifacts.PIPELINE).read_bytes())
    with pytest.raises(ArtifactError, match=r"refusing to load sklearn\.pipeline\.Pipeline"):
        artifacts.load_pickle(path)


def test_every_bundled_record_is_inside_the_declared_bounds(params, col_tnf, bundled_raw):
    x = col_tnf.transform(bundled_raw)
    assert (x >= np.array(params.spec.lower)).all() and (x <= np.array(params.spec.upper)).all()


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


def test_pickle_that_runs_a_command_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "col_tnf.pkl"
    evil.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(ArtifactError) as e:
        artifacts.load_pickle(evil)
    assert str(e.value) == (f"{evil}: refusing to load posix.system: not a model class this toolkit uses "
                            "(the file may be tampered with)")
    assert not marker.exists()


@pytest.mark.parametrize("payload, message", [
    (b"", "not a readable model file (EOFError: Ran out of input)"),
    (b"garbage", "not a readable model file (UnpicklingError: pickle data was truncated)"),
])
def test_corrupt_pickles_are_clean_errors(tmp_path, payload, message):
    path = tmp_path / "x.pkl"
    path.write_bytes(payload)
    with pytest.raises(ArtifactError) as e:
        artifacts.load_pickle(path)
    assert str(e.value) == f"{path}: {message}"


def test_truncated_committed_pickle_is_a_clean_error(tmp_path):
    data = (ROOT / artifacts.PIPELINE).read_bytes()
    path = tmp_path / "p.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="not a readable model file"):
        artifacts.load_pickle(path)
