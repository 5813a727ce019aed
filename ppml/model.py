"""Training the laptop-price model (or a model of any tabular data set) and exporting what each
party needs.

The fitted scikit-learn :class:`~sklearn.pipeline.Pipeline` has three steps:
``features`` (raw laptop columns → engineered columns), ``columns`` (one-hot categories,
standardised numbers) and ``regressor`` (ridge regression on log price). Its first two steps
are the customer's column transformer (``col_tnf.pkl``); the regressor's weights, with the
feature bounds that make the packed encoding provably safe, are the server's parameters.

Ridge (not ordinary least squares) keeps the model well conditioned: one-hot columns of the
same category sum to one, so least squares has a flat direction along which the original
project's weights reached ±6·10¹⁰ and cancelled; a small L2 penalty pins them to moderate
values at no cost in accuracy.

:func:`train_tabular_model` fits the same shape of model on any CSV: its ``features`` step is
a :class:`~ppml.tabular.TabularFeatures` (column selection and strict parsing), one one-hot
encoder per categorical column, a scaler over the numeric ones, and ridge regression on the
target (or its log); see :mod:`ppml.tabular` for the detection and bounds rules.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from . import __version__
from .documents import ModelParameters, ModelSpec
from .encoder import CompiledColumns, CustomerTransform
from .errors import InputError
from .features import CATEGORICAL_FEATURES, DOMAIN_BOUNDS, NUMERIC_FEATURES, RAW_COLUMNS, engineer_features
from .links import TargetLink
from .paillier.codec import DEFAULT_TOLERANCE, design_codec
from .tabular import (TabularFeatures, default_bounds, detect_columns, numeric_lookalikes, parse_numeric,
                      unnamed_column_notes)

LAPTOP_TARGET = "Price"
RIDGE_ALPHA = 1.0
TEST_FRACTION = 0.2
SPLIT_SEED = 42
MIN_CATEGORY_COUNT = 10
#: The link after decryption of a model fitted on the target (identity) or on its log.
TRANSFORM_LINKS = {"identity": (), "log": (("func", "exp"),)}
#: Fewest records a generic data set must have (80% to fit, at least 2 held out to score).
MIN_TABULAR_ROWS = 10


@dataclass
class TrainedModel:
    pipeline: Pipeline
    metrics: dict
    parameters: ModelParameters

    @property
    def column_transformer(self) -> CustomerTransform:
        """The customer's part: raw records → the model's feature vector (no weights), compiled
        so that using it needs no scikit-learn."""
        return CustomerTransform.from_pipeline(self.pipeline)


def build_laptop_pipeline(alpha: float = RIDGE_ALPHA) -> Pipeline:
    columns = ColumnTransformer(
        [(name, _one_hot(), [name]) for name in CATEGORICAL_FEATURES]
        + [("number", StandardScaler(), list(NUMERIC_FEATURES))],
        verbose_feature_names_out=False,
    )
    return Pipeline([
        ("features", FunctionTransformer(engineer_features)),
        ("columns", columns),
        ("regressor", Ridge(alpha=alpha)),
    ])


def _one_hot(min_frequency: int = MIN_CATEGORY_COUNT) -> OneHotEncoder:
    """Categories seen fewer than ``min_frequency`` (MIN_CATEGORY_COUNT) times share one
    "infrequent" column, and so do categories never seen in training: fewer features means
    fewer ciphertexts per record (52 → 42 on the laptop data, for 0.01 of held-out R²)."""
    return OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=min_frequency,
                         sparse_output=False)


def auto_min_frequency(rows_train: int) -> int:
    """The generic models' ``min_frequency``: a category needs 1% of the training rows, at
    least 2 (a category seen once would get a weight fitted to a single record) and at most
    MIN_CATEGORY_COUNT (as for the laptop model). 800 training rows → 8, 100 → 2."""
    return min(MIN_CATEGORY_COUNT, max(2, -(-rows_train // 100)))


def build_tabular_pipeline(features: TabularFeatures, min_frequency: int, alpha: float = RIDGE_ALPHA) -> Pipeline:
    """The laptop pipeline's shape for any columns: ``features`` → one-hot / scaled columns →
    ridge. Transformer names are positional (``category0``…, ``numeric``), so no column name can
    collide with them."""
    parts = [(f"category{i}", _one_hot(min_frequency), [name]) for i, name in enumerate(features.categorical)]
    if features.numeric:
        parts.append(("numeric", StandardScaler(), list(features.numeric)))
    columns = ColumnTransformer(parts, verbose_feature_names_out=False)
    return Pipeline([
        ("features", FunctionTransformer(features)),
        ("columns", columns),
        ("regressor", Ridge(alpha=alpha)),
    ])


def feature_bounds(columns: ColumnTransformer, inputs: dict[str, tuple[float, float]]):
    """Declared ``[lower, upper]`` of every model feature, from the engineered-column bounds:
    one-hot columns are 0/1, scaled columns map their input bounds through the scaler
    (:meth:`ppml.encoder.CompiledColumns.bounds`)."""
    compiled = CompiledColumns.from_sklearn(columns)
    lower, upper = compiled.bounds(inputs)
    return compiled.names, lower, upper


def model_spec(features: list, lower: list, upper: list, codec, outputs: list, link, inputs: dict,
               tolerance: float) -> ModelSpec:
    """The public ``Model.json`` of a trained or exported model: input bounds as pairs of
    floats, and the versions of ppml and scikit-learn that wrote it."""
    import sklearn

    return ModelSpec(list(features), list(lower), list(upper), codec, list(outputs), link,
                     {k: [float(lo), float(hi)] for k, (lo, hi) in inputs.items()}, tolerance,
                     {"ppml": __version__, "scikit-learn": sklearn.__version__})


def export_parameters(pipeline: Pipeline, inputs: dict, target: str, transform: str,
                      tolerance: float = DEFAULT_TOLERANCE) -> ModelParameters:
    """The spec (bounds, codec) and plaintext weights the encrypted protocol runs on."""
    names, lower, upper = feature_bounds(pipeline.named_steps["columns"], inputs)
    reg = pipeline.named_steps["regressor"]
    coef = [float(c) for c in np.ravel(reg.coef_)]
    intercept = float(np.ravel(reg.intercept_)[0]) if np.ndim(reg.intercept_) else float(reg.intercept_)
    codec = design_codec(lower, upper, coef, intercept, tolerance)
    link = TargetLink(TRANSFORM_LINKS[transform])
    spec = model_spec(names, lower, upper, codec, [target], link, inputs, tolerance)
    return ModelParameters(spec, [coef], [intercept])


def train(raw: pd.DataFrame, target: str | None = None, **options) -> TrainedModel:
    """The model ``python -m ppml train`` fits: the laptop-price model when ``target`` is None
    (``raw`` must hold the raw laptop columns and Price), else a tabular model of ``target``
    (``options`` are :func:`train_tabular_model`'s)."""
    if target is not None:
        return train_tabular_model(raw, target, **options)
    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:  # not laptop data at all: say how to train on it (a missing Price is bad data)
        raise InputError(f"lacks the laptop column(s) {', '.join(repr(c) for c in missing)}; pass --target "
                         "COLUMN to train a model of any CSV")
    return train_laptop_model(raw)


def train_laptop_model(raw: pd.DataFrame, alpha: float = RIDGE_ALPHA, test_fraction: float = TEST_FRACTION,
                       seed: int = SPLIT_SEED) -> TrainedModel:
    """Fit on log(Price) with a held-out split; report R² (log scale) and MAE (price units)."""
    if LAPTOP_TARGET not in raw.columns:
        raise InputError(f"training data has no {LAPTOP_TARGET!r} column")
    price = pd.to_numeric(raw[LAPTOP_TARGET], errors="coerce")
    if price.isna().any() or (price <= 0).any():
        bad = price.index[price.isna() | (price <= 0)][0]
        raise InputError(f"row {bad}, column {LAPTOP_TARGET!r}: price must be a positive number")
    y = np.log(price.to_numpy(dtype=np.float64))
    X_train, X_test, y_train, y_test = train_test_split(raw, y, test_size=test_fraction, random_state=seed)
    pipeline = build_laptop_pipeline(alpha).fit(X_train, y_train)
    pred = pipeline.predict(X_test)
    metrics = {
        "rows_train": len(X_train), "rows_test": len(X_test),
        "r2_log": float(r2_score(y_test, pred)),
        "mae_log": float(mean_absolute_error(y_test, pred)),
        "mae_price": float(mean_absolute_error(np.exp(y_test), np.exp(pred))),
    }
    params = export_parameters(pipeline, dict(DOMAIN_BOUNDS), LAPTOP_TARGET, "log")
    metrics["max_abs_coefficient"] = max(abs(c) for c in params.coefficients[0])
    metrics["codec"] = params.spec.codec.to_dict()
    return TrainedModel(pipeline, metrics, params)


def train_tabular_model(raw: pd.DataFrame, target: str, *, log_target: bool = False,
                        numeric=(), categorical=(), ignore=(), bounds: dict | None = None,
                        min_frequency: int | None = None, alpha: float = RIDGE_ALPHA,
                        test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED) -> TrainedModel:
    """Fit ridge regression on ``target`` (or its log) of any tabular data, with a held-out split.

    Args:
        raw: the training records (strings as read from CSV, or numbers).
        target: the column to predict; with ``log_target`` every value must be positive and the
            model predicts its log (decryption returns ``exp`` of it).
        numeric, categorical, ignore: override the automatic column detection
            (:func:`ppml.tabular.detect_columns`).
        bounds: declared ``{column: (lo, hi)}`` of numeric columns; others get
            :func:`ppml.tabular.default_bounds` of the whole file's values. Every training value
            must lie inside its column's bounds.
        min_frequency: the one-hot encoders' ``min_frequency`` (default
            :func:`auto_min_frequency` of the training rows).

    Metrics: ``r2`` on the model's scale (log target: log scale), ``mae`` in the target's units
    (and ``mae_log`` for a log target), as for the laptop model; ``notes`` on auto-detected
    columns that look wrong (no header name; mostly numbers but detected categorical).
    """
    if not isinstance(raw, pd.DataFrame):
        raise TypeError(f"train_tabular_model expects a pandas DataFrame, got {type(raw).__name__}")
    num_cols, cat_cols = detect_columns(raw, target, categorical=categorical, numeric=numeric, ignore=ignore)
    if len(raw) < MIN_TABULAR_ROWS:
        raise InputError(f"{len(raw)} record(s) is too few to train and hold out {test_fraction:.0%}; "
                         f"need at least {MIN_TABULAR_ROWS}")
    y = parse_numeric(raw[target], target, "expected a finite number (the target)")
    transform = "identity"
    if log_target:
        bad = y <= 0
        if bad.any():
            r = int(np.argmax(bad))
            raise InputError(f"row {raw.index[r]}, column {target!r}: a log target must be positive, "
                             f"got {raw[target].iloc[r]!r}")
        y, transform = np.log(y), "log"
    features = TabularFeatures(numeric=num_cols, categorical=cat_cols)
    engineered = features(raw)  # parses every record once, so a bad value fails before fitting
    inputs = input_bounds(engineered, num_cols, dict(bounds or {}))

    X_train, X_test, y_train, y_test = train_test_split(raw, y, test_size=test_fraction, random_state=seed)
    minf = auto_min_frequency(len(X_train)) if min_frequency is None else int(min_frequency)
    if minf < 1:
        raise InputError("min_frequency must be at least 1")
    pipeline = build_tabular_pipeline(features, minf, alpha).fit(X_train, y_train)
    try:
        names = list(pipeline.named_steps["columns"].get_feature_names_out())
    except ValueError:
        names = None
    if names is None or len(set(names)) != len(names):
        raise InputError("two model features would get the same name (a one-hot column "
                         "'<column>_<category>' equals another column's name); rename a column")
    pred = pipeline.predict(X_test)
    forced = set(categorical) | set(numeric)
    metrics = {
        "notes": unnamed_column_notes(c for c in [*num_cols, *cat_cols] if c not in forced)
                 + numeric_lookalikes(raw, [c for c in cat_cols if c not in forced]),
        "target": target, "transform": transform,
        "numeric": list(num_cols), "categorical": list(cat_cols), "min_frequency": minf,
        "rows_train": len(X_train), "rows_test": len(X_test),
        "r2": float(r2_score(y_test, pred)),
    }
    if log_target:
        metrics["mae_log"] = float(mean_absolute_error(y_test, pred))
        metrics["mae"] = float(mean_absolute_error(np.exp(y_test), np.exp(pred)))
    else:
        metrics["mae"] = float(mean_absolute_error(y_test, pred))
    params = export_parameters(pipeline, inputs, target, transform)
    metrics["features"] = len(params.spec.features)
    metrics["intercept"] = params.intercepts[0]
    metrics["max_abs_coefficient"] = max((abs(c) for c in params.coefficients[0]), default=0.0)
    metrics["codec"] = params.spec.codec.to_dict()
    metrics["bounds"] = {k: tuple(v) for k, v in inputs.items()}
    return TrainedModel(pipeline, metrics, params)


def input_bounds(engineered: pd.DataFrame, numeric, declared: dict) -> dict[str, tuple[float, float]]:
    """Declared ``{column: (lo, hi)}`` of the numeric feature columns: ``declared`` (``--bounds``),
    which must hold every training value, else :func:`~ppml.tabular.default_bounds` of the
    training values."""
    unknown = [c for c in declared if c not in numeric]
    if unknown:
        raise InputError(f"--bounds: {', '.join(repr(c) for c in unknown)} is not a numeric feature column "
                         f"(numeric: {', '.join(numeric) or 'none'})")
    inputs = {}
    for column in numeric:
        values = engineered[column].to_numpy(dtype=np.float64)
        if column in declared:
            lo, hi = (float(v) for v in declared[column])
            outside = (values < lo) | (values > hi)
            if outside.any():
                r = int(np.argmax(outside))
                raise InputError(f"--bounds {column}={lo:g}:{hi:g}: row {engineered.index[r]} has {values[r]:g}, "
                                 "outside; the bounds must hold every training value")
            inputs[column] = (lo, hi)
        else:
            inputs[column] = default_bounds(values)
    return inputs
