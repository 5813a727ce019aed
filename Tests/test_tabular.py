"""Generic tabular models (`train DATA --target COLUMN`): column detection, the feature step,
declared bounds, training, safe loading, and the salary use case encrypted end to end
in-process (1024-bit test keys), compared record by record with the plaintext pipeline."""
from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import ROOT
from ppml import artifacts, customer, server
from ppml.documents import EncryptedFeatures, EncryptedPredictions
from ppml.errors import ArtifactError, EncodingRangeError, FeatureParseError, InputError
from ppml.links import TargetLink
from ppml.model import auto_min_frequency, train_tabular_model
from ppml.tabular import TabularFeatures, default_bounds, detect_columns, parse_bounds

PUBLIC_SALARIES = ROOT.parent / "shared" / "data" / "employee_data.csv"
RELATIVE_TOLERANCE = 1e-9


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def salary_frame(n: int = 300, seed: int = 7) -> pd.DataFrame:
    """A deterministic salary-like data set, as strings (as the CSV reader gives them): the
    public file's columns, a salary far from zero so that a missing intercept shows."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 65, n)
    eating = rng.integers(0, 11, n)
    active = rng.integers(0, 11, n)
    gender = rng.integers(0, 2, n)
    salary = 4000 + 350 * age + 900 * eating + 700 * active + 2500 * gender + rng.normal(0, 2000, n)
    salary = np.round(np.clip(salary, 1000, None), -1).astype(int)
    frame = pd.DataFrame({"age": age, "healthy_eating": eating, "active_lifestyle": active,
                          "Gender": gender, "salary": salary})
    return frame.astype(str)


def mixed_frame(n: int = 120, seed: int = 3) -> pd.DataFrame:
    """Numeric and categorical columns, a rare category, padding blanks, an id and a column to ignore."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["Paris", "Lyon", "Nice"], n, p=[0.5, 0.35, 0.15]).astype(object)
    city[5] = "Brest"  # seen once: shares the infrequent column
    size = rng.uniform(-3.0, 7.0, n).round(3)
    rooms = rng.integers(1, 6, n)
    y = 50 + 8 * size + 5 * rooms + np.where(city == "Paris", 30, 0) + rng.normal(0, 1, n)
    return pd.DataFrame({
        "id": [f"r{i}" for i in range(n)],
        "city": [f" {c} " if i % 7 == 0 else c for i, c in enumerate(city)],
        "size": [str(v) for v in size],
        "rooms": [f" {v}" for v in rooms],
        "note": ["x"] * n,
        "value": [f"{v:.4f}" for v in y],
    })


def _write(frame: pd.DataFrame, path):
    frame.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------------------------------
# Detection, feature step, bounds
# ---------------------------------------------------------------------------------------------
def test_columns_are_detected_and_overrides_win():
    frame = pd.DataFrame({
        "id": ["1", "2", "3"], "age": ["36", " 55 ", "1e1"], "score": ["-0.5", "", "2"],
        "Gender": ["0", "1", "1"], "city": ["Paris", "12", "Lyon"], "blank": ["", "", ""],
        "odd": ["inf", "1", "2"], "y": ["1", "2", "3"],
    })
    assert detect_columns(frame, "y") == (["age", "score", "Gender"], ["city", "blank", "odd"])
    assert detect_columns(frame, "y", categorical=["Gender"], numeric=["city"], ignore=["blank", "odd"]) == \
        (["age", "score", "city"], ["Gender"])
    # A DataFrame of numbers works too.
    assert detect_columns(pd.DataFrame({"a": [1.5, 2.0], "b": [True, False], "t": [1, 2]}), "t") == (["a"], ["b"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(target="nope"), "no target column 'nope'; columns: a, b, y"),
    (dict(target="y", numeric=["c"]), "--numeric: no column(s) 'c'; columns: a, b, y"),
    (dict(target="y", categorical=["y"]), "--categorical: column 'y' is the target and cannot be a feature"),
    (dict(target="y", numeric=["a"], categorical=["a"]),
     "column(s) 'a' cannot be both --numeric and --categorical"),
    (dict(target="y", ignore=["a", "b"]), "no feature columns: every column is the target, the id or ignored (a, b, y)"),
])
def test_detection_errors(kwargs, message):
    frame = pd.DataFrame({"a": ["1"], "b": ["x"], "y": ["2"]})
    with pytest.raises(InputError) as e:
        detect_columns(frame, **kwargs)
    assert str(e.value) == message


def test_feature_step_parses_strips_and_keeps_the_index():
    step = TabularFeatures(numeric=["age", "score"], categorical=["city"])
    raw = pd.DataFrame({"y": ["9", "9"], "score": ["-1.5", "+2e3"], "age": [" 36", "4."],
                        "city": [" Paris ", "Lyon"]}, index=[10, 11])
    out = step(raw)
    assert list(out.columns) == ["city", "age", "score"]
    assert list(out.index) == [10, 11]
    assert out["city"].tolist() == ["Paris", "Lyon"]
    assert out["age"].dtype == np.float64 and out["age"].tolist() == [36.0, 4.0]
    assert out["score"].tolist() == [-1.5, 2000.0]


def test_unparseable_value_message_is_exact():
    step = TabularFeatures(numeric=["age"])
    with pytest.raises(FeatureParseError) as e:
        step(pd.DataFrame({"age": ["36", "4x", ""]}))
    assert str(e.value) == "row 1, column 'age': cannot parse '4x' (expected a finite number, e.g. 42 or -3.5)"
    assert (e.value.row, e.value.column, e.value.value) == (1, "age", "4x")


@pytest.mark.parametrize("value", ["", "  ", "nan", "NaN", "inf", "-Infinity", "1e999", "1_000", "0x10",
                                   "1,5", "12 kg"])
def test_blank_nan_infinite_and_malformed_numbers_are_refused(value):
    with pytest.raises(FeatureParseError) as e:
        TabularFeatures(numeric=["x"])(pd.DataFrame({"x": ["1", value]}))
    assert str(e.value) == f"row 1, column 'x': cannot parse {value!r} (expected a finite number, e.g. 42 or -3.5)"


def test_non_text_category_and_non_finite_number_are_refused():
    with pytest.raises(FeatureParseError, match=r"row 0, column 'c': cannot parse nan \(expected a category"):
        TabularFeatures(categorical=["c"])(pd.DataFrame({"c": [float("nan"), "a"]}))
    with pytest.raises(FeatureParseError, match=r"row 1, column 'x': cannot parse inf"):
        TabularFeatures(numeric=["x"])(pd.DataFrame({"x": [1.0, float("inf")]}))


def test_missing_feature_columns_are_named():
    with pytest.raises(InputError) as e:
        TabularFeatures(numeric=["age", "score"], categorical=["city"])(pd.DataFrame({"age": ["1"]}))
    assert str(e.value) == "missing column(s) 'city', 'score'; expected columns: city, age, score"


@pytest.mark.parametrize("values, bounds", [
    ([18, 64], (0.0, 2048.0)),     # 2^ceil(log2 65) = 128, ×16
    ([0, 1], (0.0, 32.0)),
    ([0, 0], (0.0, 16.0)),
    ([-3.2, 7], (-128.0, 128.0)),  # 2^ceil(log2 8) = 8, ×16, symmetric: a value is negative
    ([0.25], (0.0, 32.0)),
    ([5530, 55500], (0.0, 2.0 ** 16 * 16)),
])
def test_default_bounds_rule(values, bounds):
    assert default_bounds(values) == bounds
    assert default_bounds(np.array(values, dtype=float)) == bounds


def test_bounds_option_is_parsed_and_checked():
    assert parse_bounds(["age=0:150", "t=-40:60.5", "a=b=1e-3:2"]) == \
        {"age": (0.0, 150.0), "t": (-40.0, 60.5), "a=b": (0.001, 2.0)}
    for bad in ("age", "age=1", "age=x:2", "age=2:1", "age=0:inf", "=0:1"):
        with pytest.raises(InputError, match=r"--bounds"):
            parse_bounds([bad])


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed")
    raw = mixed_frame()
    trained = train_tabular_model(raw, "value", ignore=["note"], bounds={"rooms": (0, 100)})
    artifacts.save_model(trained, out)
    return raw, trained, out


def test_training_on_a_small_synthetic_frame(mixed_model):
    raw, trained, out = mixed_model
    m, spec = trained.metrics, trained.parameters.spec
    assert m["numeric"] == ["size", "rooms"] and m["categorical"] == ["city"]
    assert m["min_frequency"] == auto_min_frequency(96) == 2 and m["rows_train"] == 96
    assert m["r2"] > 0.95
    assert spec.features == ["city_Lyon", "city_Nice", "city_Paris", "city_infrequent_sklearn", "size", "rooms"]
    assert spec.outputs == ["value"] and spec.link == TargetLink(())
    assert spec.inputs == {"size": [-128.0, 128.0], "rooms": [0.0, 100.0]}
    # Exported weights reproduce the pipeline; the compiled transformer equals scikit-learn bit for bit,
    # unseen categories included.
    col_tnf = artifacts.load_customer_transform(out / artifacts.COL_TNF)
    pipeline = artifacts.load_pickle(out / artifacts.PIPELINE)
    probe = raw.copy()
    probe.loc[:9, "city"] = "Atlantis"
    np.testing.assert_array_equal(col_tnf.transform(probe), pipeline[:-1].transform(probe))
    x = col_tnf.transform(probe)
    linear = x @ np.array(trained.parameters.coefficients[0]) + trained.parameters.intercepts[0]
    np.testing.assert_allclose(linear, pipeline.predict(probe), rtol=0, atol=1e-9)
    assert artifacts.load_parameters(out / artifacts.PARAMS_DIR) == trained.parameters


def test_declared_bounds_must_hold_the_training_data_and_name_numeric_columns():
    raw = mixed_frame()
    with pytest.raises(InputError, match=r"--bounds rooms=0:3: row \d+ has [45], outside"):
        train_tabular_model(raw, "value", ignore=["note"], bounds={"rooms": (0, 3)})
    with pytest.raises(InputError, match=r"--bounds: 'city' is not a numeric feature column"):
        train_tabular_model(raw, "value", ignore=["note"], bounds={"city": (0, 3)})


def test_bad_training_values_are_clean_errors():
    raw = mixed_frame()
    raw.loc[4, "size"] = "n/a"
    with pytest.raises(FeatureParseError, match=r"row 4, column 'size': cannot parse 'n/a'"):
        train_tabular_model(raw, "value", ignore=["note"], numeric=["size"])
    # Auto-detection makes such a column categorical, and says so.
    trained = train_tabular_model(raw, "value", ignore=["note"])
    assert trained.metrics["categorical"] == ["city", "size"]
    assert trained.metrics["notes"] == [
        "column 'size' is treated as categorical: row 4 holds 'n/a', not a number; fix the data, or "
        "pass --numeric size to have such values refused, or --categorical size to keep it so"]
    assert train_tabular_model(raw, "value", ignore=["note"], categorical=["size"]).metrics["notes"] == []
    raw = mixed_frame().rename(columns={"note": "Unnamed: 0"})
    assert train_tabular_model(raw, "value").metrics["notes"] == [
        "column 'Unnamed: 0' has no name in the CSV header (often a saved row index); "
        "pass --ignore 'Unnamed: 0' if it is not a feature"]
    raw = mixed_frame()
    raw.loc[2, "value"] = "-1"
    with pytest.raises(InputError) as e:
        train_tabular_model(raw, "value", ignore=["note"], log_target=True)
    assert str(e.value) == "row 2, column 'value': a log target must be positive, got '-1'"
    clash = pd.DataFrame({"a": ["b", "c"] * 20, "a_b": [str(i) for i in range(40)],
                          "y": [str(2 * i) for i in range(40)]})
    with pytest.raises(InputError, match=r"two model features would get the same name"):
        train_tabular_model(clash, "y")
    with pytest.raises(InputError, match="too few"):
        train_tabular_model(mixed_frame().iloc[:9], "value")


def test_new_col_tnf_is_plain_data_with_generic_parsers_and_needs_no_scikit_learn(mixed_model):
    _, _, out = mixed_model
    code = ("import sys; from ppml.artifacts import load_customer_transform as load; t = load(sys.argv[1]); "
            "print(sorted({p for _, p, _ in t.features.features}), "
            "sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(out / artifacts.COL_TNF)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "['category', 'number'] []"
    assert artifacts.pickle_globals((out / artifacts.COL_TNF).read_bytes()) == frozenset()
    # The customer's loader refuses the whole pipeline at its first global.
    bad = out / "other" / artifacts.COL_TNF
    bad.parent.mkdir()
    bad.write_bytes((out / artifacts.PIPELINE).read_bytes())
    with pytest.raises(ArtifactError, match=r"refusing to load sklearn\.pipeline\.Pipeline: col_tnf\.pkl holds plain data"):
        artifacts.load_customer_transform(bad)


# ---------------------------------------------------------------------------------------------
# Encrypted end to end (in-process): the salary use case and a log target
# ---------------------------------------------------------------------------------------------
def _encrypted_predictions(model_dir, csv_path, keypair) -> dict:
    """The three stages as the scripts run them, the documents passing through JSON."""
    public, private = keypair
    spec = artifacts.load_spec(model_dir)
    col_tnf = artifacts.load_customer_transform(model_dir / artifacts.COL_TNF)
    params = artifacts.load_parameters(model_dir / artifacts.PARAMS_DIR)
    m = spec.codec.slots_for(public.bits)
    chunks = customer.iter_record_chunks(str(csv_path), csv_path.name, m * 4)
    doc = customer.features_header(spec, public)
    doc.batches = list(customer.encrypt_stream(customer.prepare_chunks(chunks, col_tnf, spec), spec, public,
                                               private, workers=1, expected_batches=64))
    doc = EncryptedFeatures.from_dict(json.loads(json.dumps(doc.to_dict())), allow_weak=True)
    answer = server.predictions_header(doc, params)
    answer.batches = list(server.score_stream(doc, doc.batches, params, 1))
    answer = EncryptedPredictions.from_dict(json.loads(json.dumps(answer.to_dict())), public)
    assert answer.outputs == spec.outputs
    return {rid: value for rid, (value,) in
            itertools.chain.from_iterable(customer.decrypt_stream(answer, answer.batches, private, spec))}


@pytest.mark.parametrize("source", ["synthetic", "public"])
def test_salary_predictions_under_encryption_equal_the_plaintext_model(source, tmp_path, keypair):
    if source == "public":
        if not PUBLIC_SALARIES.exists():
            pytest.skip("the public employee data set is not beside this checkout")
        csv_path = PUBLIC_SALARIES
    else:
        csv_path = _write(salary_frame(), tmp_path / "salaries.csv")
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    trained = train_tabular_model(raw, "salary")
    artifacts.save_model(trained, tmp_path / "model")
    assert trained.metrics["numeric"] == ["age", "healthy_eating", "active_lifestyle", "Gender"]
    assert trained.metrics["r2"] > 0.8
    spec = trained.parameters.spec
    assert (spec.outputs, spec.link) == (["salary"], TargetLink(()))

    predictions = _encrypted_predictions(tmp_path / "model", csv_path, keypair)
    plaintext = artifacts.load_pickle(tmp_path / "model" / artifacts.PIPELINE).predict(raw)
    assert list(predictions) == list(range(len(raw)))
    decrypted = np.array(list(predictions.values()))
    relative = np.abs(decrypted - plaintext) / np.abs(plaintext)
    assert relative.max() <= RELATIVE_TOLERANCE, relative.max()

    # The intercept is in every prediction, and it matters: without it they would be far off.
    intercept = trained.parameters.intercepts[0]
    assert abs(intercept) > 5000
    col_tnf = artifacts.load_customer_transform(tmp_path / "model" / artifacts.COL_TNF)
    without = col_tnf.transform(raw) @ np.array(trained.parameters.coefficients[0])
    assert np.median(np.abs(without - plaintext) / np.abs(plaintext)) > 0.5
    np.testing.assert_allclose(decrypted - without, intercept, rtol=1e-6)


def test_log_target_round_trips_as_exp_of_the_model_output(tmp_path, keypair):
    raw = mixed_frame()
    raw["value"] = [f"{math.exp(float(v) / 40):.6f}" for v in raw["value"]]
    trained = train_tabular_model(raw, "value", log_target=True, ignore=["note"])
    assert trained.parameters.spec.link == TargetLink((("func", "exp"),))
    assert "mae_log" in trained.metrics and trained.metrics["r2"] > 0.9
    artifacts.save_model(trained, tmp_path / "model")
    csv_path = _write(raw, tmp_path / "records.csv")

    predictions = _encrypted_predictions(tmp_path / "model", csv_path, keypair)
    assert list(predictions) == list(raw["id"])  # the id column names the records
    log_model = artifacts.load_pickle(tmp_path / "model" / artifacts.PIPELINE).predict(raw)
    decrypted = np.array(list(predictions.values()))
    assert np.abs(decrypted / np.exp(log_model) - 1).max() <= RELATIVE_TOLERANCE


def test_customer_refuses_records_outside_the_bounds_or_unparseable(tmp_path):
    raw = salary_frame(60)
    trained = train_tabular_model(raw, "salary")
    artifacts.save_model(trained, tmp_path)
    spec, col_tnf = artifacts.load_spec(tmp_path), artifacts.load_customer_transform(tmp_path / artifacts.COL_TNF)
    assert spec.inputs["age"] == [0.0, 2048.0]
    records = raw.drop(columns="salary").iloc[:3].copy()
    records.loc[1, "age"] = "2049"
    with pytest.raises(EncodingRangeError) as e:
        list(customer.prepare_chunks([(records, [7, 8, 9])], col_tnf, spec))
    assert str(e.value) == "record 8: age = 2049 is outside the range the model accepts [0, 2048]"
    records.loc[1, "age"] = "forty"
    with pytest.raises(FeatureParseError, match=r"row 1, column 'age': cannot parse 'forty'"):
        list(customer.prepare_chunks([(records, [7, 8, 9])], col_tnf, spec))
    records = records.drop(columns="Gender")
    with pytest.raises(InputError, match=r"missing column\(s\) 'Gender'; expected columns: age, "):
        list(customer.prepare_chunks([(records, [7, 8, 9])], col_tnf, spec))


# ---------------------------------------------------------------------------------------------
# The train command
# ---------------------------------------------------------------------------------------------
def test_train_command_on_any_csv(tmp_path):
    from ppml.cli import main

    csv_path = _write(salary_frame(), tmp_path / "salaries.csv")
    out = tmp_path / "model"
    result = CliRunner().invoke(main, ["train", str(csv_path), "--target", "salary", "--out-dir", str(out),
                                       "--bounds", "Gender=0:1", "-q"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "rows: 240 train, 60 held out"
    assert lines[1] == ("features: 4 numeric (age, healthy_eating, active_lifestyle, Gender), "
                        "0 categorical (-) → 4 model features")
    assert lines[2].startswith("held-out R² (salary): 0.")
    assert lines[3].startswith("held-out MAE: ") and lines[3].endswith(" (salary)")
    assert lines[-1] == ("bounds: age [0, 2048], healthy_eating [0, 256], active_lifestyle [0, 256], "
                         "Gender [0, 1]")
    spec = artifacts.load_spec(out)
    assert spec.outputs == ["salary"] and spec.inputs["Gender"] == [0.0, 1.0]

    result = CliRunner().invoke(main, ["train", str(csv_path), "--target", "salary", "--out-dir",
                                       str(tmp_path / "log"), "--log-target", "--categorical", "Gender", "-q"])
    assert result.exit_code == 0, result.output
    assert "held-out R² (log salary)" in result.output and "(log salary)" in result.output.splitlines()[3]
    spec = artifacts.load_spec(tmp_path / "log")
    assert spec.link == TargetLink((("func", "exp"),)) and "Gender_1" in spec.features


@pytest.mark.parametrize("args, status, message", [
    (["--log-target"], 2, "--log-target need(s) --target COLUMN"),
    (["--target", "salary"], 2, "--target needs --out-dir DIR"),
    ([], 3, "salaries.csv: lacks the laptop column(s) 'Company',"),
    (["--target", "pay", "--out-dir", "m"], 3, "no target column 'pay'"),
    (["--target", "salary", "--out-dir", "m", "--bounds", "age"], 3, "--bounds 'age': expected COL=LO:HI"),
])
def test_train_command_usage_errors(tmp_path, args, status, message):
    from ppml.cli import main

    csv_path = _write(salary_frame(30), tmp_path / "salaries.csv")
    result = CliRunner().invoke(main, ["train", str(csv_path), *args])
    assert result.exit_code == status, result.output
    assert message in result.output
    assert not (tmp_path / "m").exists()
