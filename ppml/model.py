"""Training the laptop-price model and exporting what each party needs.

The fitted scikit-learn :class:`~sklearn.pipeline.Pipeline` has three steps:
``features`` (raw laptop columns → engineered columns), ``columns`` (one-hot categories,
standardised numbers) and ``regressor`` (ridge regression on log price). Its first two steps
are the customer's column transformer (``col_tnf.pkl``); the regressor's weights, with the
feature bounds that make the packed encoding provably safe, are the server's parameters.

Ridge (not ordinary least squares) keeps the model well conditioned: one-hot columns of the
same category sum to one, so least squares has a flat direction along which the original
project's weights reached ±6·10¹⁰ and cancelled; a small L2 penalty pins them to moderate
values at no cost in accuracy.
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
from .encoder import CustomerTransform
from .errors import InputError
from .features import CATEGORICAL_FEATURES, DOMAIN_BOUNDS, NUMERIC_FEATURES, engineer_features
from .paillier.codec import DEFAULT_TOLERANCE, design_codec

LAPTOP_TARGET = "Price"
RIDGE_ALPHA = 1.0
TEST_FRACTION = 0.2
SPLIT_SEED = 42
MIN_CATEGORY_COUNT = 10


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


def _one_hot() -> OneHotEncoder:
    """Categories seen fewer than MIN_CATEGORY_COUNT times share one "infrequent" column, and
    so do categories never seen in training: fewer features means fewer ciphertexts per record
    (52 → 42 on the laptop data, for 0.01 of held-out R²)."""
    return OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=MIN_CATEGORY_COUNT,
                         sparse_output=False)


def feature_bounds(columns: ColumnTransformer, inputs: dict[str, tuple[float, float]]):
    """Declared ``[lower, upper]`` of every model feature, from the engineered-column bounds:
    one-hot columns are 0/1, scaled columns map their input bounds through the scaler."""
    lower, upper = [], []
    for name, transformer, cols in columns.transformers_:
        if name == "remainder" and transformer == "drop":
            continue
        if isinstance(transformer, OneHotEncoder):
            width = len(transformer.get_feature_names_out(cols))  # infrequent groups included
            lower += [0.0] * width
            upper += [1.0] * width
        elif isinstance(transformer, StandardScaler):
            for i, col in enumerate(cols):
                lo, hi = inputs[col]
                mean = transformer.mean_[i] if transformer.mean_ is not None else 0.0
                scale = transformer.scale_[i] if transformer.scale_ is not None else 1.0
                a, b = (lo - mean) / scale, (hi - mean) / scale
                lower.append(float(min(a, b)))
                upper.append(float(max(a, b)))
        elif transformer == "passthrough":
            for col in cols:
                lower.append(float(inputs[col][0]))
                upper.append(float(inputs[col][1]))
        else:
            raise TypeError(f"no bounds rule for transformer {type(transformer).__name__}")
    names = list(columns.get_feature_names_out())
    if len(names) != len(lower):
        raise AssertionError("bounds do not cover every output column")  # programming error
    return names, lower, upper


def export_parameters(pipeline: Pipeline, inputs: dict, target: str, transform: str,
                      tolerance: float = DEFAULT_TOLERANCE) -> ModelParameters:
    """The spec (bounds, codec) and plaintext weights the encrypted protocol runs on."""
    import sklearn

    names, lower, upper = feature_bounds(pipeline.named_steps["columns"], inputs)
    reg = pipeline.named_steps["regressor"]
    coef = [float(c) for c in np.ravel(reg.coef_)]
    intercept = float(np.ravel(reg.intercept_)[0]) if np.ndim(reg.intercept_) else float(reg.intercept_)
    codec = design_codec(lower, upper, coef, intercept, tolerance)
    spec = ModelSpec(names, lower, upper, codec, target, transform,
                     {k: [float(v[0]), float(v[1])] for k, v in inputs.items()}, tolerance,
                     {"ppml": __version__, "scikit-learn": sklearn.__version__})
    return ModelParameters(spec, coef, intercept)


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
    metrics["max_abs_coefficient"] = max(abs(c) for c in params.coefficients)
    metrics["codec"] = params.spec.codec.to_dict()
    return TrainedModel(pipeline, metrics, params)
