"""Bring your own scikit-learn model, end to end under encryption: a fitted estimator is pickled,
exported (``python -m ppml export`` or ``ppml.export``), and its records go through the three
stages; the decrypted CSV equals ``predict`` / ``predict_proba`` column by column —
regressions within 1e-9 relative, probabilities within 1e-9 absolute, classes identical on
every record.

One regressor, one binary and one multi-class classifier and one multi-output regressor run
as the company and the customer would run them: ``python -m ppml keygen``, ``python -m ppml
export`` and the three scripts, each its own process. Every other supported class runs
in-process through :mod:`ppml.stages`, the layer the scripts are made of (a process per class
would take minutes). Keys are 1024-bit (``--allow-weak-key``), for speed only.
"""
from __future__ import annotations

import pickle
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import (ARDRegression, BayesianRidge, ElasticNet, ElasticNetCV, HuberRegressor, Lasso,
                                  LassoCV, LinearRegression, LogisticRegression, Ridge, RidgeClassifier, RidgeCV,
                                  SGDClassifier, SGDRegressor)
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC, LinearSVR

import ppml
from conftest import TEST_KEY_BITS, dataset_frame, imported_heavy_modules, mixed_frame, run_script
from ppml import artifacts, stages
from ppml.keystore import KeyStore

PY = sys.executable
WEAK = "--allow-weak-key"
RELATIVE = 1e-9
PROBABILITY = 1e-9


pytestmark = pytest.mark.filterwarnings("ignore")  # convergence and deprecation warnings of the fits


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """One key pair for the module, made as a customer makes it."""
    folder = tmp_path_factory.mktemp("keys") / "keys"
    _ok(subprocess.run([PY, "-m", "ppml", "keygen", "--keys", str(folder), "--key-size", str(TEST_KEY_BITS), WEAK,
                        "-q"], capture_output=True, timeout=120))
    return folder


def _ok(proc):
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


def mixed(n: int = 120, seed: int = 7):
    """Categorical and numeric columns, numbers as numbers, and a price."""
    X, price, _ = mixed_frame(n, seed, age=False)
    return X, price


def mixed_columns() -> ColumnTransformer:
    return ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "kind"]),
                              ("num", StandardScaler(), ["size"]), ("minmax", MinMaxScaler(), ["rooms"])])


def read_predictions(path, classifier: bool) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"prediction": str} if classifier else None, float_precision="round_trip")


def assert_matches(out: pd.DataFrame, estimator, X, targets=()):
    """The decrypted CSV, column by column, against the estimator on the same records."""
    assert list(out["id"]) == list(range(len(X)))
    if is_classifier(estimator):
        assert list(out["prediction"]) == [str(c) for c in estimator.predict(X)]
        if hasattr(estimator, "predict_proba"):
            columns = [f"proba_{c}" for c in estimator.classes_]
            assert list(out.columns) == ["id", "prediction", *columns]
            assert np.abs(out[columns].to_numpy() - estimator.predict_proba(X)).max() <= PROBABILITY
        else:
            assert list(out.columns) == ["id", "prediction"]
        return
    expected = np.asarray(estimator.predict(X), dtype=np.float64).reshape(len(X), -1)
    columns = ["prediction"] if expected.shape[1] == 1 else [f"prediction_{t}" for t in targets]
    assert list(out.columns) == ["id", *columns]
    relative = np.abs(out[columns].to_numpy() / expected - 1)
    assert relative.max() <= RELATIVE, relative.max()


# ---------------------------------------------------------------------------------------------
# As the company and the customer run it: separate processes
# ---------------------------------------------------------------------------------------------
def company_exports(work, estimator, train: pd.DataFrame, *targets: str) -> subprocess.CompletedProcess:
    """The estimator pickled and ``train`` (with its target columns) written as CSV, then
    ``python -m ppml export``."""
    with open(work / "model.pkl", "wb") as f:
        pickle.dump(estimator, f)
    train.to_csv(work / "train.csv", index=False)
    args = [f"--target={t}" for t in targets]
    return subprocess.run([PY, "-m", "ppml", "export", "model.pkl", "--data", "train.csv", *args, "--out-dir", "model"],
                          cwd=work, capture_output=True, timeout=300)


def customer_scores(work, keys, printed: bool = False) -> subprocess.CompletedProcess:
    """The three scripts on the training CSV itself (its target columns are ignored)."""
    common = ["--model", "model", WEAK, "-q"]
    _ok(run_script("CustomerEncrypts.py", "train.csv", "-o", "enc.json", "--keys", str(keys), *common, cwd=work))
    _ok(run_script("ServerModelRun.py", "enc.json", "-o", "answer.json", *common, cwd=work))
    _ok(run_script("CustomerDecrypts.py", "answer.json", "-o", "predictions.csv", "--keys", str(keys), *common,
                   cwd=work))
    if printed:
        return _ok(run_script("CustomerDecrypts.py", "answer.json", "--keys", str(keys), *common, cwd=work))


def test_a_regression_with_categories_and_a_log_target_through_the_scripts(tmp_path, keys):
    X, price = mixed()
    estimator = TransformedTargetRegressor(make_pipeline(mixed_columns(), Ridge()), func=np.log,
                                          inverse_func=np.exp).fit(X, price)
    proc = _ok(company_exports(tmp_path, estimator, X.assign(price=price), "price"))
    assert proc.stdout.decode().splitlines()[0] == "TransformedTargetRegressor: regression, output(s) price; 8 features"
    printed = customer_scores(tmp_path, keys, printed=True)
    assert_matches(read_predictions(tmp_path / "predictions.csv", False), estimator, X)
    first = printed.stdout.decode().splitlines()[0]
    assert first == f"0: price = {estimator.predict(X.iloc[:1])[0]:,.2f}"


def test_a_binary_classifier_through_the_scripts(tmp_path, keys):
    X, y = dataset_frame(load_breast_cancer)
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y)
    _ok(company_exports(tmp_path, estimator, X.assign(target=y), "target"))
    customer_scores(tmp_path, keys)
    assert_matches(read_predictions(tmp_path / "predictions.csv", True), estimator, X)


def test_a_multi_class_classifier_with_text_labels_through_the_scripts(tmp_path, keys):
    data = load_iris(as_frame=True)
    X, y = data.data, data.target_names[data.target]
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y)
    proc = _ok(company_exports(tmp_path, estimator, X.assign(species=y), "species"))
    assert proc.stdout.decode().splitlines()[0] == "Pipeline: classifier, 3 classes (softmax probabilities); 4 features"
    printed = customer_scores(tmp_path, keys, printed=True)
    assert_matches(read_predictions(tmp_path / "predictions.csv", True), estimator, X)
    lines = printed.stdout.decode().splitlines()
    proba = estimator.predict_proba(X)
    assert len(lines) == len(X)
    for i in (0, 60, 149):
        label = estimator.predict(X.iloc[[i]])[0]
        p = proba[i, list(estimator.classes_).index(label)]
        assert lines[i] == f"{i}: class = {label} (p = {p:.3f})"
    # Decryption (and its printed lines) loads none of pandas, scikit-learn or numpy.
    assert imported_heavy_modules("CustomerDecrypts.py", ["answer.json", "--model", "model", "--keys", str(keys),
                                                          WEAK, "-q"], tmp_path) == "[]"


def test_a_multi_output_regression_through_the_scripts(tmp_path, keys):
    X, y = dataset_frame(load_diabetes)
    targets = pd.DataFrame({"progression": y, "bmi": X["bmi"]})
    X = X.drop(columns="bmi")
    estimator = make_pipeline(StandardScaler(), LinearRegression()).fit(X, targets)
    _ok(company_exports(tmp_path, estimator, X.join(targets), "progression", "bmi"))
    customer_scores(tmp_path, keys)
    assert_matches(read_predictions(tmp_path / "predictions.csv", False), estimator, X, targets.columns)


def test_a_random_forest_is_refused_and_nothing_is_written(tmp_path):
    X, y = dataset_frame(load_diabetes)
    forest = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, y)
    proc = company_exports(tmp_path, forest, X.assign(target=y), "target")
    assert proc.returncode == 1 and proc.stdout == b""
    assert proc.stderr.decode().splitlines() == [
        "Error: model.pkl: RandomForestRegressor is not a linear model: only linear regressors and classifiers can "
        "be scored under encryption (an ensemble's prediction combines many models, not one W·x + b)"]
    assert not (tmp_path / "model").exists()


def test_export_help_says_the_pickle_runs_code():
    proc = _ok(subprocess.run([PY, "-m", "ppml", "export", "--help"], capture_output=True, timeout=60))
    text = " ".join(proc.stdout.decode().split())
    assert "RUNS CODE the file contains: only export your own files" in text
    assert "There is no --min-frequency" in text


# ---------------------------------------------------------------------------------------------
# Every supported class, in-process through the stage layer the scripts are made of
# ---------------------------------------------------------------------------------------------
def through_stages(work, keys, estimator, X, targets=None) -> pd.DataFrame:
    """``ppml.export`` (the notebook entry point), then encrypt → score → decrypt on ``X``'s
    records as CSV text, documents passing through files."""
    model = work / "model"
    ppml.export(estimator, X, model, target=targets)
    X.to_csv(work / "records.csv", index=False)
    spec = artifacts.load_spec(model)
    customer_keys = stages.CustomerKeys(KeyStore(keys), allow_weak=True)
    stages.encrypt(str(work / "records.csv"), str(work / "enc.json"), spec=spec,
                   col_tnf=artifacts.load_customer_transform(model / artifacts.COL_TNF), keys=customer_keys)
    stages.score(str(work / "enc.json"), str(work / "answer.json"),
                 params=artifacts.load_parameters(model / artifacts.PARAMS_DIR), allow_weak=True)
    stages.decrypt(str(work / "answer.json"), str(work / "predictions.csv"), spec=spec, keys=customer_keys)
    return read_predictions(work / "predictions.csv", is_classifier(estimator))


REGRESSORS = [LinearRegression(), Ridge(), RidgeCV(), Lasso(alpha=0.01), LassoCV(cv=3), ElasticNet(alpha=0.01),
              ElasticNetCV(cv=3), SGDRegressor(random_state=0), HuberRegressor(max_iter=1000), BayesianRidge(),
              ARDRegression(), LinearSVR(max_iter=20000, random_state=0)]


@pytest.mark.parametrize("regressor", REGRESSORS, ids=lambda r: type(r).__name__)
def test_every_regressor_under_encryption(regressor, tmp_path, keys):
    X, y = dataset_frame(load_diabetes, 40)
    estimator = make_pipeline(StandardScaler(), regressor).fit(X, y)
    assert_matches(through_stages(tmp_path, keys, estimator, X), estimator, X)


def test_multi_output_and_scaled_target_regressions_under_encryption(tmp_path, keys):
    X, price = mixed(60)
    targets = np.c_[price, np.log(price)]
    for i, final in enumerate((MultiOutputRegressor(Ridge()), MultiOutputRegressor(LinearSVR(random_state=0)))):
        estimator = make_pipeline(mixed_columns(), final).fit(X, targets)
        (tmp_path / str(i)).mkdir()
        assert_matches(through_stages(tmp_path / str(i), keys, estimator, X, ["price", "log_price"]), estimator, X,
                       ["price", "log_price"])
    X, y = dataset_frame(load_diabetes, 40)
    scaled = TransformedTargetRegressor(make_pipeline(StandardScaler(), Lasso(alpha=0.01)),
                                        transformer=StandardScaler()).fit(X, y)
    (tmp_path / "scaled").mkdir()
    assert_matches(through_stages(tmp_path / "scaled", keys, scaled, X), scaled, X)


CLASSIFIERS = [LogisticRegression(max_iter=5000), LogisticRegression(multi_class="ovr", max_iter=5000),
               LogisticRegression(solver="liblinear"), LogisticRegression(multi_class="multinomial", max_iter=5000),
               SGDClassifier(loss="log_loss", random_state=0), SGDClassifier(loss="modified_huber", random_state=0),
               SGDClassifier(random_state=0), LinearSVC(random_state=0), RidgeClassifier()]


@pytest.mark.parametrize("classifier", CLASSIFIERS,
                         ids=lambda c: re.sub(r"\s+", "", repr(c)).replace("max_iter=5000", "").replace(",)", ")"))
@pytest.mark.parametrize("load", [load_wine, load_breast_cancer], ids=["multi-class", "binary"])
def test_every_classifier_under_encryption(classifier, load, tmp_path, keys):
    X, y = dataset_frame(load, 45)
    estimator = make_pipeline(StandardScaler(), classifier).fit(X, y)
    assert_matches(through_stages(tmp_path, keys, estimator, X), estimator, X)


def test_a_classifier_of_text_labels_over_categories_under_encryption(tmp_path, keys):
    X, price = mixed(90)
    label = np.where(price > np.median(price), "dear", "cheap")
    label[::7] = "mid"
    estimator = make_pipeline(mixed_columns(), LogisticRegression(max_iter=5000)).fit(X, label)
    assert_matches(through_stages(tmp_path, keys, estimator, X), estimator, X)

