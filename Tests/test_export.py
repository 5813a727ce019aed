"""Bring your own scikit-learn model (phase 1, plaintext side): every supported estimator is
split into the customer's transformer, ``W``, ``b`` and a link whose reconstruction
``link(transformer(records as CSV text) @ W.T + b)`` equals ``predict`` / ``predict_proba``
— also with ``W`` and ``b`` rounded through the fixed-point codec; the customer's transformer
is plain data compiled bit for bit, later scalers and selectors are folded into ``W`` and
``b``, and no published file holds a weight or a training row; everything else is refused
with one line. Tests/test_export_e2e.py runs exported models under
encryption."""
from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_selection import RFE, SelectFromModel, SelectKBest, SelectPercentile, VarianceThreshold, f_regression
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.linear_model import (ARDRegression, BayesianRidge, ElasticNet, ElasticNetCV, HuberRegressor, Lasso,
                                  LassoCV, LinearRegression, LogisticRegression, PoissonRegressor, Ridge, RidgeClassifier,
                                  RidgeCV, SGDClassifier, SGDRegressor)
from sklearn.multioutput import MultiOutputRegressor
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (FunctionTransformer, KBinsDiscretizer, MaxAbsScaler, MinMaxScaler, OneHotEncoder,
                                   PolynomialFeatures, PowerTransformer, StandardScaler)
from sklearn.svm import SVR, LinearSVC, LinearSVR

import ppml
from conftest import ROOT, dataset_frame, mixed_frame
from ppml import artifacts
from ppml.encoder import OneHotBlock, ScaleBlock
from ppml.errors import ArtifactError, InputError, UnsupportedModelError
from ppml.export import export_model, model_parameters
from ppml.files import dump_json

RELATIVE = 1e-9
PROBABILITY = 1e-9


pytestmark = pytest.mark.filterwarnings("ignore")  # convergence and deprecation warnings of the fits


def as_csv_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The records as the customer's CSV reader gives them: every value a string."""
    return frame.astype(str)


def codec_decisions(exported, raw) -> np.ndarray:
    """``W·x + b`` as the encrypted protocol computes it: features, weights and intercepts
    rounded to the shared codec's fixed point, summed exactly over the integers."""
    codec = exported.codec()
    x = exported.transformer.transform(raw)
    X = codec.encode_features(x, exported.lower, exported.upper, exported.features)
    out = np.empty((len(X), len(exported.outputs)))
    for k, (w, b) in enumerate(zip(exported.weights, exported.intercepts)):
        W, B = codec.encode_weights(w), codec.encode_intercept(b)
        for r, row in enumerate(X):
            out[r, k] = codec.decode(sum(wi * xi for wi, xi in zip(W, row)) + B)
    return out


def fitted_secrets(estimator) -> list:
    """Every fitted weight in the estimator, at any depth (the final step's, and those of
    estimators inside steps, such as a SelectFromModel's), as floats."""
    found, stack, seen = [], [estimator], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for name, value in vars(node).items():
            if name in ("coef_", "intercept_", "dual_coef_", "_fit_X") and isinstance(value, np.ndarray):
                found += [float(v) for v in np.ravel(value)]
            items = value if isinstance(value, (list, tuple)) else [value]
            for item in items:
                item = item[1] if isinstance(item, tuple) and len(item) >= 2 else item
                if hasattr(item, "get_params"):
                    stack.append(item)
    return found


def published_numbers(data) -> set:
    """Every number in decoded JSON-like data."""
    out, stack = set(), [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack += list(value.values())
        elif isinstance(value, list):
            stack += value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.add(float(value))
    return out


def assert_publishes_no_secrets(exported, estimator, X):
    """What the customer and ``/v1/model`` get — col_tnf.pkl and Model.json, as written — holds
    no weight of the estimator (final or inner) and no training row: only category lists and
    per-column statistics. A weight is looked for among the decoded numbers, as an 8-byte
    float in the pickle and as JSON text; a row (of two or more non-integer values) among the
    decoded numbers."""
    col_tnf = artifacts.dump_customer_transform(exported.transformer)
    model_json = dump_json(model_parameters(exported).spec.to_dict())
    assert artifacts.pickle_globals(col_tnf) == frozenset()
    numbers = published_numbers(artifacts.read_customer_transform(col_tnf).to_dict()) | \
        published_numbers(json.loads(model_json))
    weights = {w for w in fitted_secrets(estimator) + [v for row in exported.weights for v in row]
               + list(exported.intercepts) if w not in (0.0, 1.0, -1.0)}
    assert weights, "no weights found to look for"
    assert not weights & numbers
    for w in weights:
        assert struct.pack(">d", w) not in col_tnf and json.dumps(w) not in model_json
    numeric = X.select_dtypes("number").to_numpy(dtype=np.float64)
    rows = 0
    for row in numeric:
        values = {float(v) for v in row if v != round(v)}
        if len(values) >= 2:
            rows += 1
            assert not values <= numbers, row
    assert rows or not numeric.size or (numeric == numeric.round()).all()


def check_regression(exported, estimator, X):
    assert_publishes_no_secrets(exported, estimator, X)
    raw = as_csv_text(X)
    expected = estimator.predict(X)
    for got in (exported.predict(raw), exported.link_predict(codec_decisions(exported, raw))):
        assert got.shape == expected.shape
        relative = np.abs(got - expected) / np.abs(expected)
        assert relative.max() <= RELATIVE, relative.max()


def check_classifier(exported, estimator, X):
    assert_publishes_no_secrets(exported, estimator, X)
    raw = as_csv_text(X)
    for decision in (exported.decision(raw), codec_decisions(exported, raw)):
        assert np.array_equal(exported.link_predict(decision), estimator.predict(X))
        proba = exported.link_proba(decision)
        if hasattr(estimator, "predict_proba"):
            assert np.abs(proba - estimator.predict_proba(X)).max() <= PROBABILITY
        else:
            assert proba is None


def mixed(n: int = 300, seed: int = 5):
    return mixed_frame(n, seed)


def mixed_columns(**one_hot) -> ColumnTransformer:
    return ColumnTransformer([
        ("cat", OneHotEncoder(**one_hot), ["city", "kind"]),
        ("num", StandardScaler(), ["size", "age"]),
        ("minmax", MinMaxScaler(), ["rooms"]),
    ])


# ---------------------------------------------------------------------------------------------
# Regressors
# ---------------------------------------------------------------------------------------------
REGRESSORS = [LinearRegression(), Ridge(), RidgeCV(), Lasso(alpha=0.01), LassoCV(cv=3), ElasticNet(alpha=0.01),
              ElasticNetCV(cv=3), SGDRegressor(random_state=0), HuberRegressor(max_iter=1000), BayesianRidge(),
              ARDRegression(), LinearSVR(max_iter=20000, random_state=0)]


@pytest.mark.parametrize("regressor", REGRESSORS, ids=lambda r: type(r).__name__)
def test_every_regressor_is_reconstructed_exactly(regressor):
    X, y = dataset_frame(load_diabetes)
    estimator = make_pipeline(StandardScaler(), regressor).fit(X, y)
    exported = export_model(estimator, X)
    assert [type(b) for b in exported.transformer.columns.blocks] == [ScaleBlock]
    assert exported.classes is None and exported.outputs == ["prediction"]
    assert np.array_equal(exported.transformer.transform(as_csv_text(X)), estimator[:-1].transform(X))
    check_regression(exported, estimator, X)


def test_bare_regressor_and_mixed_column_transformer():
    X, y = dataset_frame(load_diabetes)
    bare = Ridge().fit(X, y)
    exported = export_model(bare, X, target="progression")
    assert exported.outputs == ["progression"] and exported.features == list(X.columns)
    check_regression(exported, bare, X)

    X, price, _ = mixed()
    estimator = make_pipeline(mixed_columns(handle_unknown="ignore"), LinearRegression()).fit(X, price)
    exported = export_model(estimator, X)
    assert {type(b) for b in exported.transformer.columns.blocks} == {OneHotBlock, ScaleBlock}
    assert exported.features == list(estimator[:-1].get_feature_names_out())
    check_regression(exported, estimator, X)


def test_transformed_target_regressors_apply_the_inverse_exactly():
    X, price, _ = mixed()
    log = TransformedTargetRegressor(make_pipeline(mixed_columns(), Ridge()), func=np.log, inverse_func=np.exp)
    log.fit(X, price)
    exported = export_model(log, X)
    assert exported.link.steps == (("func", "exp"),)
    check_regression(exported, log, X)

    X, y = dataset_frame(load_diabetes)
    scaled = make_pipeline(StandardScaler(), TransformedTargetRegressor(Lasso(alpha=0.01), transformer=StandardScaler()))
    scaled.fit(X, y)
    exported = export_model(scaled, X)
    assert [op for op, _ in exported.link.steps] == ["mul", "add"]
    # The codec's tolerance is on the prediction in the target's units: W·x + b gets scale_ less.
    assert exported.tolerance < 2.0 ** -33 / 50
    check_regression(exported, scaled, X)

    minmax = TransformedTargetRegressor(Ridge(), transformer=MinMaxScaler()).fit(X, y)
    check_regression(export_model(minmax, X), minmax, X)


def test_multi_output_regressors_have_one_row_per_target():
    X, price, _ = mixed()
    targets = np.c_[price, np.log(price)]
    for final in (LinearRegression(), MultiOutputRegressor(Ridge())):
        estimator = make_pipeline(mixed_columns(handle_unknown="ignore"), final).fit(X, targets)
        exported = export_model(estimator, X, target="y")
        assert exported.outputs == ["y_0", "y_1"] and np.shape(exported.weights) == (2, len(exported.features))
        check_regression(exported, estimator, X)


# ---------------------------------------------------------------------------------------------
# Classifiers
# ---------------------------------------------------------------------------------------------
CLASSIFIERS = [
    (LogisticRegression(max_iter=5000), "softmax", "logistic"),  # multinomial by default for >2 classes
    (LogisticRegression(multi_class="ovr", max_iter=5000), "logistic", "logistic"),
    (LogisticRegression(solver="liblinear"), "logistic", "logistic"),
    (LogisticRegression(multi_class="multinomial", max_iter=5000), "softmax", "softmax"),
    (SGDClassifier(loss="log_loss", random_state=0), "logistic", "logistic"),
    (SGDClassifier(loss="modified_huber", random_state=0), "modified_huber", "modified_huber"),
    (SGDClassifier(random_state=0), None, None),  # hinge: classes only
    (LinearSVC(random_state=0), None, None),
    (RidgeClassifier(), None, None),
]


@pytest.mark.parametrize("classifier, multi, binary", CLASSIFIERS,
                         ids=lambda c: type(c).__name__ if not isinstance(c, (str, type(None))) else "")
def test_every_classifier_gives_classes_and_probabilities(classifier, multi, binary):
    for load, probability in ((load_wine, multi), (load_breast_cancer, binary)):
        X, y = dataset_frame(load)
        estimator = make_pipeline(StandardScaler(), classifier).fit(X, y)
        exported = export_model(estimator, X)
        assert exported.link.probability == probability
        assert exported.classes == list(estimator.classes_)
        assert len(exported.outputs) == (1 if len(exported.classes) == 2 else len(exported.classes))
        check_classifier(exported, estimator, X)


def test_string_labels_and_a_column_transformer_with_drops_and_refused_unknowns():
    X, _, label = mixed()
    estimator = make_pipeline(mixed_columns(drop="first", handle_unknown="error"), LogisticRegression(max_iter=5000))
    estimator.fit(X, label)
    exported = export_model(estimator, X)
    assert exported.classes == ["high", "low", "mid"]
    assert exported.outputs == ["decision_high", "decision_low", "decision_mid"]
    check_classifier(exported, estimator, X)
    # The compiled one-hot refuses an unseen category as scikit-learn does, with a one-line error.
    probe = as_csv_text(X.iloc[:2]).copy()
    probe.loc[probe.index[1], "city"] = "Lille"
    with pytest.raises(InputError, match=r"^row 1, column 'city': category 'Lille' was not seen in training"):
        exported.transformer.transform(probe)


# ---------------------------------------------------------------------------------------------
# The customer's transformer
# ---------------------------------------------------------------------------------------------
def test_compiled_steps_are_bit_identical_to_scikit_learn():
    X, price, _ = mixed()
    X = X.assign(weight=np.random.default_rng(0).uniform(-4, 9, len(X)))
    columns = ColumnTransformer([
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(min_frequency=20, handle_unknown="infrequent_if_exist")), ["city", "kind"]),
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["size"]),
        ("maxabs", MaxAbsScaler(), ["weight"]),
        ("scale_only", StandardScaler(with_mean=False), ["age"]),
    ], remainder="passthrough")
    estimator = make_pipeline(columns, Ridge()).fit(X, price)
    exported = export_model(estimator, X)
    raw = as_csv_text(X)
    probe = raw.copy()
    probe.loc[probe.index[0], "city"] = "Lille"  # unseen: the infrequent column
    for records in (raw, probe):
        assert np.array_equal(exported.transformer.transform(records), estimator[:-1].transform(
            records.astype({c: float for c in ("size", "rooms", "age", "weight")})))
    check_regression(exported, estimator, X)


def test_later_scalers_and_selectors_are_folded_into_the_weights():
    X, y = dataset_frame(load_diabetes)
    Xm, price, _ = mixed()
    cases = [
        (X, y, make_pipeline(StandardScaler(), SelectFromModel(Ridge(alpha=0.01), threshold="mean"), Ridge())),
        (X, y, make_pipeline(SelectKBest(f_regression, k=4), StandardScaler(), Ridge())),
        (X, y, make_pipeline(SimpleImputer(), StandardScaler(), MinMaxScaler(), VarianceThreshold(),
                             SelectPercentile(f_regression, percentile=50), MaxAbsScaler(), Lasso(alpha=0.01))),
        (X, y, make_pipeline(StandardScaler(), RFE(Ridge(), n_features_to_select=3), LinearRegression())),
        (Xm, price, make_pipeline(mixed_columns(handle_unknown="ignore"), StandardScaler(),
                                  SelectKBest(f_regression, k=5), Ridge())),
    ]
    for frame, target, estimator in cases:
        estimator.fit(frame, target)
        exported = export_model(estimator, frame)
        assert {type(b) for b in exported.transformer.columns.blocks} <= {OneHotBlock, ScaleBlock}
        check_regression(exported, estimator, frame)
        selectors = [s for s in estimator[:-1] if hasattr(s, "get_support")]
        if selectors:  # the columns the selector drops weigh nothing; the customer still computes them
            assert len(exported.features) == exported.transformer.transform(as_csv_text(frame)).shape[1]
            dropped = sum(int((~s.get_support()).sum()) for s in selectors)
            assert sum(w == 0.0 for w in exported.weights[0]) >= dropped > 0


def test_steps_without_a_data_rule_are_refused_naming_the_step_and_nothing_is_written(tmp_path):
    X, y = dataset_frame(load_diabetes)
    supported = ("supported: passthrough, OneHotEncoder, StandardScaler, MinMaxScaler (clip=False), MaxAbsScaler, "
                 "SimpleImputer (NaN marker, no indicator), FunctionTransformer without a function, in a "
                 "ColumnTransformer or a Pipeline; after them StandardScaler, MinMaxScaler (clip=False), MaxAbsScaler, "
                 "feature selectors (SelectKBest, SelectPercentile, VarianceThreshold, SelectFromModel, RFE, …), "
                 "folded into the weights")
    state = "its fitted state is not column kinds, categories or scaling constants"
    cases = [
        (make_pipeline(KNNImputer(), Ridge()), f"KNNImputer cannot be published: the customer's transform is plain "
                                               f"data and {state}; "),
        (make_pipeline(StandardScaler(), PolynomialFeatures(2), Ridge()),
         f"PolynomialFeatures cannot be published: the customer's transform is plain data and {state}; "),
        (make_pipeline(StandardScaler(), PCA(5, random_state=0), LinearRegression()),
         f"PCA cannot be published: the customer's transform is plain data and {state}; "),
        (make_pipeline(ColumnTransformer([("bins", KBinsDiscretizer(n_bins=4, encode="onehot-dense",
                                                                    quantile_method="averaged_inverted_cdf"), ["s1"]),
                                          ("scale", StandardScaler(), ["s2"])]), Ridge()),
         f"KBinsDiscretizer cannot be published: the customer's transform is plain data and {state}; "),
        (make_pipeline(ColumnTransformer([("log", FunctionTransformer(np.log1p), ["s1"])]), Ridge()),
         "FunctionTransformer cannot be published: the customer's transform is plain data and a function is code, "
         "not data; "),
        (make_pipeline(StandardScaler(), KNNImputer(), Ridge()),
         f"KNNImputer cannot be published: the customer's transform is plain data and {state}; "),
    ]
    for estimator, message in cases:
        estimator.fit(X + 1.0, y)
        assert refusal(estimator, X + 1.0) == message + supported
        with pytest.raises(UnsupportedModelError):
            ppml.export(estimator, X + 1.0, tmp_path)
        assert list(tmp_path.iterdir()) == []


def test_bounds_follow_train_and_can_be_declared():
    X, price, _ = mixed()
    estimator = make_pipeline(mixed_columns(handle_unknown="ignore"), Ridge()).fit(X, price)
    exported = export_model(estimator, X, bounds={"size": (0, 1000)})
    assert exported.inputs == {"size": (0.0, 1000.0), "rooms": (0.0, 128.0), "age": (0.0, 2048.0)}
    i = exported.features.index("num__size")
    scaler = estimator[0].named_transformers_["num"]
    assert exported.lower[i] == (0 - scaler.mean_[0]) / scaler.scale_[0]
    assert exported.upper[i] == (1000 - scaler.mean_[0]) / scaler.scale_[0]
    assert exported.lower[:5] == [0.0] * 5 and exported.upper[:5] == [1.0] * 5  # one-hot columns
    with pytest.raises(InputError, match=r"--bounds size=0:100: row \d+ has .*, outside"):
        export_model(estimator, X, bounds={"size": (0, 100)})
    with pytest.raises(InputError, match=r"--bounds: 'city' is not a numeric feature column"):
        export_model(estimator, X, bounds={"city": (0, 1)})


# ---------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------
def add_one(x):
    return x + 1


def refusal(estimator, X) -> str:
    with pytest.raises(UnsupportedModelError) as e:
        export_model(estimator, X)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_non_linear_and_unfitted_models_are_refused_with_one_line():
    X, y = dataset_frame(load_diabetes)
    forest = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, y)
    assert refusal(forest, X) == (
        "RandomForestRegressor is not a linear model: only linear regressors and classifiers can be scored under "
        "encryption (an ensemble's prediction combines many models, not one W·x + b)")
    assert refusal(make_pipeline(StandardScaler(), SVR()).fit(X, y), X) == (
        "SVR is not a linear model: only linear regressors and classifiers can be scored under encryption "
        "(a kernel machine's prediction sums kernels over support vectors, not W·x + b)")
    Xc, yc = dataset_frame(load_iris)
    mlp = MLPClassifier(hidden_layer_sizes=(3,), max_iter=20, random_state=0).fit(Xc, yc)
    assert refusal(mlp, Xc) == (
        "MLPClassifier is not a linear model: only linear regressors and classifiers can be scored under "
        "encryption (a neural network's prediction goes through non-linear layers, not one W·x + b)")
    assert refusal(make_pipeline(StandardScaler(), PCA(3)).fit(X), X).startswith(
        "PCA is not a regressor or classifier: the last step must be a linear model (LinearRegression, Ridge,")
    assert refusal(PoissonRegressor().fit(X, y), X).startswith(
        "PoissonRegressor is not supported: only linear regressors and classifiers can be scored under encryption, "
        "and ppml reproduces exactly LinearRegression, Ridge,")
    assert refusal(make_pipeline(StandardScaler(), Ridge()), X) == (
        "Ridge is not fitted: fit it on the training data before exporting it")


def test_steps_the_customer_could_not_reproduce_are_refused():
    X, y = dataset_frame(load_diabetes)
    power = TransformedTargetRegressor(Ridge(), transformer=PowerTransformer()).fit(X, y)
    assert refusal(power, X) == (
        "TransformedTargetRegressor's PowerTransformer is not supported: the customer applies the inverse exactly "
        "only for a numpy function such as inverse_func=np.exp, StandardScaler, MinMaxScaler or MaxAbsScaler")
    own = TransformedTargetRegressor(Ridge(), func=np.log, inverse_func=lambda v: np.exp(v), check_inverse=False)
    assert refusal(own.fit(X, y + 1), X) == (
        "TransformedTargetRegressor's inverse function <lambda> is not one the customer can apply exactly "
        "(np.exp, np.expm1, np.exp2, np.log, np.log1p, np.log2, np.log10, np.sqrt, np.square, np.cbrt)")
    custom = make_pipeline(FunctionTransformer(add_one), Ridge()).fit(X, y)
    assert refusal(custom, X).startswith(
        "FunctionTransformer cannot be published: the customer's transform is plain data and a function is code, "
        "not data; supported: ")
    # A scaler's pickle that names a function of the company's own module could not be loaded.
    own = make_pipeline(StandardScaler(), TransformedTargetRegressor(Ridge(), func=add_one, inverse_func=np.expm1,
                                                                     check_inverse=False)).fit(X, y)
    assert refusal(own, X) == (
        "Pipeline pickles test_export.add_one, which a model file may not load (only scikit-learn, numpy and SciPy "
        "names can be loaded)")


def test_training_frames_a_csv_record_cannot_give_are_refused():
    X, price, _ = mixed()
    estimator = make_pipeline(mixed_columns(handle_unknown="ignore"), Ridge()).fit(X, price)
    with pytest.raises(InputError, match=r"^X_train lacks column\(s\) 'age' that the estimator was fitted on$"):
        export_model(estimator, X.drop(columns="age"))
    with pytest.raises(InputError, match=r"^X_train: row 3, column 'size': cannot parse nan"):
        export_model(estimator, X.assign(size=X["size"].where(X.index != 3)))
    padded = X.assign(city=X["city"].str.pad(7))
    with pytest.raises(InputError, match=r"^X_train column 'city' has the category ' +[A-Z][a-z]+' with surrounding blanks"):
        export_model(make_pipeline(mixed_columns(handle_unknown="ignore"), Ridge()).fit(padded, price), padded)


# ---------------------------------------------------------------------------------------------
# Allowlists
# ---------------------------------------------------------------------------------------------
def test_stored_allowlists_only_narrow_and_are_checked_by_a_fixed_rule(tmp_path):
    X, y = dataset_frame(load_diabetes)
    estimator = make_pipeline(StandardScaler(), SGDRegressor(random_state=0)).fit(X, y)
    ppml.export(estimator, X, tmp_path)
    assert not (tmp_path / "col_tnf.allow.json").exists()  # the customer's file is plain data
    path, allow = tmp_path / artifacts.PIPELINE, artifacts.allowlist_path(tmp_path / artifacts.PIPELINE)
    assert allow.name == "PreProcessingDataAndModel.allow.json"
    stored = json.loads(allow.read_text())
    assert stored["format"] == "ppml.pickle-allowlist"
    assert ["sklearn.linear_model._stochastic_gradient", "SGDRegressor"] in stored["globals"]
    artifacts.load_pickle(path)

    for module, name in (("os", "system"), ("builtins", "getattr"), ("builtins", "eval"), ("numpy", "load"),
                         ("numpy", "memmap"), ("sklearn.utils", "Bunch"), ("_loss", "system")):
        tampered = dict(stored, globals=stored["globals"] + [[module, name]])
        allow.write_text(json.dumps(tampered))
        with pytest.raises(ArtifactError, match=rf"refusing to admit {module}\.{name}: "):
            artifacts.load_pickle(path)
    allow.write_text(json.dumps(dict(stored, globals=[g for g in stored["globals"] if g[1] != "SGDRegressor"])))
    with pytest.raises(ArtifactError, match=r"refusing to load sklearn\.linear_model\._stochastic_gradient\.SGDRegressor"):
        artifacts.load_pickle(path)
    allow.write_text(json.dumps(dict(stored, sha256="0" * 64)))
    with pytest.raises(ArtifactError, match=r"is the allowlist of another pickle"):
        artifacts.load_pickle(path)
    assert artifacts.admissible("numpy", "exp") is None
    assert artifacts.admissible("_loss", "CyHalfBinomialLoss") is None


def test_ppml_import_stays_light_and_export_is_callable():
    code = "import sys, ppml; print('sklearn' in sys.modules, 'numpy' in sys.modules, callable(ppml.export))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True"]
