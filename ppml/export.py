"""Bring your own scikit-learn model: a company's fitted linear estimator → what ppml serves.

:func:`export_model` splits a fitted estimator — a bare linear model, a ``Pipeline``, a
``ColumnTransformer`` inside one, a ``TransformedTargetRegressor`` around either — into what
each party needs:

* the **customer's transformer** (``col_tnf.pkl``, plain data): a feature step over the
  estimator's input columns (numeric columns of the training frame are parsed to float, the
  others kept as text), then the leading steps :mod:`ppml.encoder` has an exact data rule for
  (one-hot maps, scaling constants), checked bit for bit against the estimator's own transform
  on the training records. The steps after them must be affine on the feature vector and are
  **folded into W and b**: scalers exactly as algebra (``W/scale``, ``b − W·mean/scale``),
  feature selectors (``SelectKBest``, ``VarianceThreshold``, ``SelectFromModel``, …) as zero
  weights of the columns they drop, so the customer computes every column and no selector's
  fitted estimator is ever published. Any other step (``KNNImputer``, ``PolynomialFeatures``, a
  ``FunctionTransformer`` with a function, …) is refused with one line naming it and listing
  what is supported: the customer's file holds only column kinds, category lists and
  per-column statistics, never weights or training rows.
* the **server's weights**: the final step's matrix ``W`` (one row per output: per target of a
  multi-output regressor, per class of a multi-class classifier, one row for a binary one) and
  intercepts ``b``, checked against the estimator's own decisions on the training records.
* the **link** the customer applies to the decrypted ``W·x + b`` (:mod:`ppml.links`).
* declared **bounds**: numeric input columns get ``--bounds`` or
  :func:`~ppml.tabular.default_bounds` of the training values, as ``train`` does; the
  customer's features map those exactly (a record beyond them is refused before encryption,
  never mis-scored).

Anything that is not linear is refused with one line naming the class and why
(:class:`~ppml.errors.UnsupportedModelError`). :func:`export` writes the artifacts of any of
them: ``Model.json`` names the outputs and carries the link, ``Coefficients.json`` holds ``W``
and ``Intercept.json`` ``b``, all on one fixed-point codec.
"""
from __future__ import annotations

import pickle
import sys
import types
from dataclasses import dataclass

import numpy as np

from .errors import ArtifactError, FeatureParseError, InputError, UnsupportedModelError
from .links import FUNCS, ClassLink, TargetLink
from .paillier.codec import DEFAULT_TOLERANCE

#: Regressors whose ``predict`` is ``X @ coef_.T + intercept_`` (the issue's list).
REGRESSORS = ("LinearRegression", "Ridge", "RidgeCV", "Lasso", "LassoCV", "ElasticNet", "ElasticNetCV",
              "SGDRegressor", "HuberRegressor", "BayesianRidge", "ARDRegression", "LinearSVR")
#: Classifiers whose ``decision_function`` is ``X @ coef_.T + intercept_``.
CLASSIFIERS = ("LogisticRegression", "SGDClassifier", "LinearSVC", "RidgeClassifier")
#: What non-linear model families are, for the refusal message.
_NOT_LINEAR = (
    ("sklearn.tree", "a decision tree's prediction is a lookup, not W·x + b"),
    ("sklearn.ensemble", "an ensemble's prediction combines many models, not one W·x + b"),
    ("sklearn.svm", "a kernel machine's prediction sums kernels over support vectors, not W·x + b"),
    ("sklearn.kernel_ridge", "a kernel machine's prediction sums kernels over training points, not W·x + b"),
    ("sklearn.gaussian_process", "a Gaussian process's prediction sums kernels over training points, not W·x + b"),
    ("sklearn.neural_network", "a neural network's prediction goes through non-linear layers, not one W·x + b"),
    ("sklearn.neighbors", "a nearest-neighbours prediction looks up training points, not W·x + b"),
    ("sklearn.naive_bayes", "a naive Bayes prediction is not W·x + b"),
)
_LINEAR_ONLY = "only linear regressors and classifiers can be scored under encryption"
#: Relative agreement required between ppml's reconstruction and the estimator on the training
#: records (float rounding of another summation order is ~1e-15).
AGREEMENT = 1e-9


@dataclass
class ExportedModel:
    """Everything the artifacts need (see the module docstring). ``weights`` is
    outputs × features, ``intercepts`` one per output; ``classes`` is None for a regressor;
    ``lower``/``upper`` bound every feature, ``inputs`` every numeric input column;
    ``tolerance`` bounds the error of ``W·x + b`` (the target's units for an affine link)."""

    transformer: object  # ppml.encoder.CustomerTransform
    estimator: object
    weights: list
    intercepts: list
    outputs: list
    link: TargetLink | ClassLink
    classes: list | None
    features: list
    lower: list
    upper: list
    inputs: dict
    tolerance: float
    single: bool = True  # a regressor fitted on a 1-D target (its predict gives a vector)

    def decision(self, raw) -> np.ndarray:
        """``transformer(raw) @ W.T + b``: what the customer decrypts (in plaintext)."""
        x = self.transformer.transform(raw)
        return x @ np.asarray(self.weights, dtype=np.float64).T + np.asarray(self.intercepts, dtype=np.float64)

    def predict(self, raw) -> np.ndarray:
        return self.link_predict(self.decision(raw))

    def predict_proba(self, raw) -> np.ndarray | None:
        return self.link_proba(self.decision(raw))

    def link_predict(self, decision) -> np.ndarray:
        """What the customer makes of decrypted decisions (records × outputs), shaped as
        ``predict``'s result."""
        if isinstance(self.link, ClassLink):
            return np.array(self.classes)[[self.link.index(row) for row in np.asarray(decision).tolist()]]
        y = np.array([self.link.apply(row) for row in np.asarray(decision).tolist()], dtype=np.float64)
        return y[:, 0] if self.single else y

    def link_proba(self, decision) -> np.ndarray | None:
        """``predict_proba`` from decrypted decisions, or None for a model without probabilities."""
        if not isinstance(self.link, ClassLink) or self.link.probability is None:
            return None
        return np.array([self.link.proba(row) for row in np.asarray(decision).tolist()], dtype=np.float64)

    def codec(self):
        """One fixed-point codec for every output: :func:`~ppml.paillier.codec.design_codec` of
        the largest weight magnitude of each feature and the largest intercept (its error bound
        and slot width grow with those magnitudes, so it holds for every row)."""
        from .paillier.codec import design_codec

        w = np.abs(np.asarray(self.weights, dtype=np.float64)).max(axis=0)
        return design_codec(self.lower, self.upper, w, float(np.abs(self.intercepts).max()), self.tolerance)


def export_model(estimator, X_train, *, bounds=None, target=None,
                 tolerance: float = DEFAULT_TOLERANCE) -> ExportedModel:
    """Check a fitted linear estimator and split it (see the module docstring).

    Args:
        estimator: the fitted estimator (``Pipeline``, ``TransformedTargetRegressor``, bare).
        X_train: a DataFrame of the raw training columns (others, such as the target, are
            ignored); numeric dtypes make numeric input columns, text the categorical ones.
        bounds: ``{column: (lo, hi)}`` of numeric input columns (``--bounds``); they must hold
            every training value.
        target: a regression's output name, or one name per output of a multi-output one (a
            single name ``y`` gives ``y_0``, ``y_1``, …); default ``prediction``. A
            classifier's outputs are its classes' decisions, ``decision_<label>``.
        tolerance: the worst-case error of the decrypted ``W·x + b`` (in the target's units if
            the link is affine).

    Raises:
        UnsupportedModelError: not linear, not fitted, or a step the customer cannot reproduce.
        InputError: ``X_train`` lacks a column or holds values a CSV record cannot (missing
            values, non-text categories), or ``bounds`` are wrong.
    """
    import pandas as pd

    from .encoder import CustomerTransform
    from .model import input_bounds
    from .tabular import TabularFeatures

    if not isinstance(X_train, pd.DataFrame):
        raise InputError(f"X_train must be a pandas DataFrame of the raw training columns, got {type(X_train).__name__}")
    steps, final, ttr = _unwrap(estimator)
    raw_columns = _input_columns(estimator, X_train)
    numeric, categorical = _column_kinds(X_train, raw_columns)
    features = TabularFeatures(numeric=numeric, categorical=categorical)
    try:
        engineered = features(X_train)
    except FeatureParseError as e:
        raise e.with_source("X_train") from None
    inputs = input_bounds(engineered, numeric, dict(bounds or {}))

    columns, head = _customer_columns(steps, raw_columns, X_train, engineered)
    transformer = CustomerTransform(features.step, columns)
    lower, upper = columns.bounds(inputs)

    records = X_train[raw_columns]
    prefix = _prefix(steps)
    reference = records.to_numpy(dtype=np.float64) if prefix is None else \
        _dense(prefix.transform(records.to_numpy() if _fitted_on_array(prefix) else records))
    W, b, single = _weights(final, reference)
    W, b = _fold(steps[head:], W, b, list(columns.names))
    if ttr is None and not _is_classifier(final):
        link, classes = TargetLink(()), None
    elif ttr is not None:
        link, classes, single = TargetLink(_target_steps(ttr)), None, ttr._training_dim == 1
    else:
        classes = _labels(final)
        link = ClassLink(tuple(classes), _probability(final))
    outputs = _output_names(target, classes, len(b))
    exported = ExportedModel(transformer, estimator, W.tolist(), b.tolist(), outputs, link, classes,
                             list(columns.names), lower, upper, {k: (float(lo), float(hi)) for k, (lo, hi) in inputs.items()},
                             _decision_tolerance(link, tolerance), single)
    _check_agreement(exported, X_train)
    _check_loadable(exported)
    return exported


# ---------------------------------------------------------------------------------------------
# The estimator's structure
# ---------------------------------------------------------------------------------------------
def _unwrap(estimator):
    """(transformer steps in order, the final linear estimator, the TransformedTargetRegressor
    or None): through Pipelines and one TransformedTargetRegressor, at any depth."""
    from sklearn.base import BaseEstimator
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import Pipeline

    steps, ttr, node = [], None, estimator
    while True:
        if isinstance(node, Pipeline):
            inner = [s for _, s in node.steps if not (s is None or isinstance(s, str) and s == "passthrough")]
            if not inner:
                raise UnsupportedModelError("Pipeline has no final estimator: the last step must be a linear model")
            steps += inner[:-1]
            node = inner[-1]
        elif isinstance(node, TransformedTargetRegressor):
            _check_fitted(node)
            if ttr is not None:
                raise UnsupportedModelError("TransformedTargetRegressor inside another is not supported: "
                                            "compose the target transforms into one")
            ttr, node = node, node.regressor_
        else:
            break
    if not isinstance(node, BaseEstimator):
        raise UnsupportedModelError(f"{type(node).__name__} is not a scikit-learn estimator: "
                                    f"{_LINEAR_ONLY}")
    _check_final(node)
    return steps, node, ttr


def _check_final(node) -> None:
    from sklearn.multioutput import MultiOutputRegressor

    name = type(node).__name__
    module = type(node).__module__
    if isinstance(node, MultiOutputRegressor):
        _check_fitted(node)
        for inner in node.estimators_:
            _check_final(inner)
            if np.ndim(inner.coef_) != 1 or _is_classifier(inner):
                raise UnsupportedModelError(f"MultiOutputRegressor of {type(inner).__name__} is not supported: "
                                            "each estimator must be a single-output linear regressor")
        return
    if name in REGRESSORS + CLASSIFIERS and module.startswith("sklearn."):
        _check_fitted(node)
        if name == "RidgeClassifier" and node._label_binarizer.y_type_.startswith("multilabel"):
            raise UnsupportedModelError("RidgeClassifier fitted on multilabel targets is not supported: "
                                        "its predict thresholds each label, not one class per record")
        return
    for prefix, why in _NOT_LINEAR:
        if module.startswith(prefix + "."):
            raise UnsupportedModelError(f"{name} is not a linear model: {_LINEAR_ONLY} ({why})")
    if not (hasattr(node, "predict") or hasattr(node, "decision_function")):
        raise UnsupportedModelError(f"{name} is not a regressor or classifier: the last step must be a linear "
                                    f"model ({', '.join(REGRESSORS + CLASSIFIERS)})")
    raise UnsupportedModelError(f"{name} is not supported: {_LINEAR_ONLY}, and ppml reproduces exactly "
                                f"{', '.join(REGRESSORS + CLASSIFIERS)} (also in a MultiOutputRegressor)")


def _check_fitted(node) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(node)
    except NotFittedError:
        raise UnsupportedModelError(f"{type(node).__name__} is not fitted: fit it on the training data "
                                    "before exporting it") from None


def _is_classifier(node) -> bool:
    return hasattr(node, "classes_")


def _prefix(steps):
    """The transformer steps as one fitted object (None for a bare estimator)."""
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]
    from sklearn.pipeline import Pipeline

    return Pipeline([(f"step{i}", s) for i, s in enumerate(steps)])


def _input_columns(estimator, X_train) -> list:
    """The raw columns the estimator reads: those it was fitted on, by name (or, if fitted on an
    array, all of ``X_train``'s in order)."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        n = getattr(estimator, "n_features_in_", X_train.shape[1])
        if n != X_train.shape[1]:
            raise InputError(f"X_train has {X_train.shape[1]} columns but the estimator was fitted on {n} "
                             "(without column names, so all of X_train's columns are its inputs, in order)")
        names = X_train.columns
    names = [str(n) for n in names]
    missing = [n for n in names if n not in X_train.columns]
    if missing:
        raise InputError(f"X_train lacks column(s) {', '.join(repr(n) for n in missing)} that the estimator was "
                         f"fitted on")
    return names


def _column_kinds(X_train, columns) -> tuple[list, list]:
    """Numeric dtypes → numeric input columns (parsed to float); text → categorical. Anything
    else cannot come from a CSV record the way the estimator saw it in training."""
    numeric, categorical = [], []
    for column in columns:
        series = X_train[column]
        kind = series.dtype.kind
        if kind in "iuf":
            numeric.append(column)
            continue
        values = series.dropna().unique() if kind != "b" else [True]
        odd = next((v for v in values if not isinstance(v, str)), None)
        if kind == "b" or odd is not None:
            shown = "booleans" if kind == "b" else f"{type(odd).__name__} values such as {odd!r}"
            raise InputError(f"X_train column {column!r} holds {shown}: a customer's CSV gives numbers or "
                             "text; fit the model on numbers or strings for that column")
        blank = next((v for v in values if v != v.strip()), None)
        if blank is not None:
            raise InputError(f"X_train column {column!r} has the category {blank!r} with surrounding blanks, "
                             "which a customer's record cannot give (values are stripped); strip the column "
                             "before fitting")
        categorical.append(column)
    return numeric, categorical


def _fitted_on_array(transformer) -> bool:
    return not hasattr(transformer, "feature_names_in_")


def _dense(x) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)


def _customer_columns(steps, raw_columns, X_train, engineered):
    """(the compiled form of the longest run of leading steps with exact data rules, how many
    steps it covers), bit-identical to those steps on the training records read as CSV text;
    the raw columns as they are if the first step is a selector (it is folded like the rest).

    Raises:
        UnsupportedModelError: the first step has no data rule (naming the step), or the compiled
            form differs from scikit-learn's.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_selection import SelectorMixin

    from .encoder import CompiledColumns, NoExactRule, ScaleBlock, compile_blocks, output_names

    if not steps or isinstance(steps[0], SelectorMixin):  # the raw columns, and every step folded
        return CompiledColumns([ScaleBlock(list(raw_columns), None, None)], list(raw_columns)), 0
    records = X_train[raw_columns]
    refusal = None
    for k in range(len(steps), 0, -1):
        head = _prefix(steps[:k])
        try:
            reference = _dense(head.transform(records.to_numpy() if _fitted_on_array(head) else records))
            if isinstance(head, ColumnTransformer):
                columns = CompiledColumns.from_sklearn(head, input_names=raw_columns)
            else:
                columns = CompiledColumns(compile_blocks(head, list(raw_columns)),
                                          output_names(head, reference.shape[1]))
        except NoExactRule as e:
            refusal = e  # the last one tried is the first step alone
            continue
        out = columns.transform(engineered)
        if out.shape != reference.shape or not np.array_equal(out, reference):
            kind = type(head).__name__
            raise UnsupportedModelError(f"{kind} gives other features for the training records read as CSV text "
                                        "(numbers parsed to float) than for X_train itself, so customers' records "
                                        "would be scored differently")
        return columns, k
    raise _unsupported_step(refusal.step, refusal.why)


def _unsupported_step(step: str, why: str) -> UnsupportedModelError:
    from .encoder import SUPPORTED_STEPS

    return UnsupportedModelError(
        f"{step} cannot be published: the customer's transform is plain data and {why}; supported: "
        f"{', '.join(SUPPORTED_STEPS)}; after them {', '.join(FOLDED_STEPS)}, folded into the weights")


#: Steps after the customer's transform that are folded into W and b.
FOLDED_STEPS = ("StandardScaler", "MinMaxScaler (clip=False)", "MaxAbsScaler", "feature selectors (SelectKBest, "
                "SelectPercentile, VarianceThreshold, SelectFromModel, RFE, …)")


def _fold(tail, W: np.ndarray, b: np.ndarray, names: list) -> tuple[np.ndarray, np.ndarray]:
    """``W``, ``b`` of the final step on the features after ``tail`` → on the customer's
    features (``names``), through each tail step from the last back: a selector's dropped
    columns get weight 0 and its kept ones their weights; an affine step
    ``y = ((x − mean)/scale)·factor + offset`` gives ``W·a`` and ``b + W·c`` with
    ``a = factor/scale``, ``c = offset − mean·a``.

    Raises:
        UnsupportedModelError: a step that is neither (naming it).
    """
    from sklearn.feature_selection import SelectorMixin

    from .encoder import NoExactRule, ScaleBlock, compile_blocks

    widths = [len(names)]
    for step in tail[:-1]:  # the width of each tail step's input
        widths.append(_output_width(step, widths[-1]))
    for step, width in zip(reversed(tail), reversed(widths)):
        kind = type(step).__name__
        if isinstance(step, SelectorMixin):
            keep = np.asarray(step.get_support(), dtype=bool)
            if keep.shape != (width,) or int(keep.sum()) != W.shape[1]:
                raise UnsupportedModelError(f"{kind} keeps {int(keep.sum())} of {keep.size} columns, but the next "
                                            f"step reads {W.shape[1]}")
            full = np.zeros((W.shape[0], width))
            full[:, keep] = W
            W = full
            continue
        try:
            blocks = compile_blocks(step, [f"x{i}" for i in range(width)])
        except NoExactRule as e:
            raise _unsupported_step(e.step, e.why) from None
        if len(blocks) != 1 or not isinstance(blocks[0], ScaleBlock):
            raise _unsupported_step(kind, "it is not affine on the feature vector, so it cannot be folded into "
                                          "the weights")
        block = blocks[0]
        ones, zeros = np.ones(width), np.zeros(width)
        scale = block.scale if block.scale is not None else ones
        factor = block.factor if block.factor is not None else ones
        a = factor / scale
        mean = block.mean if block.mean is not None else zeros
        c = (block.offset if block.offset is not None else zeros) - mean * a
        b = b + W @ c
        W = W * a
    return W, b


def _output_width(step, width: int) -> int:
    """Columns ``step`` gives for ``width`` input columns (a selector keeps its support)."""
    from sklearn.feature_selection import SelectorMixin

    return int(np.asarray(step.get_support()).sum()) if isinstance(step, SelectorMixin) else width


# ---------------------------------------------------------------------------------------------
# Weights and links
# ---------------------------------------------------------------------------------------------
def _weights(final, x) -> tuple[np.ndarray, np.ndarray, bool]:
    """(W, b, single-output) of the final step, checked against its own decisions on the
    training features ``x``."""
    from sklearn.multioutput import MultiOutputRegressor

    if isinstance(final, MultiOutputRegressor):
        W = np.vstack([np.asarray(e.coef_, dtype=np.float64) for e in final.estimators_])
        b = np.array([float(np.ravel(e.intercept_)[0]) if np.ndim(e.intercept_) else float(e.intercept_)
                      for e in final.estimators_])
        single = False
    else:
        coef = np.asarray(final.coef_, dtype=np.float64)
        W = np.atleast_2d(coef)
        b = np.broadcast_to(np.asarray(final.intercept_, dtype=np.float64).ravel(), (W.shape[0],)).copy() \
            if np.size(final.intercept_) in (1, W.shape[0]) else None
        single = coef.ndim == 1
        if b is None or W.shape[1] != x.shape[1]:
            raise UnsupportedModelError(f"{type(final).__name__} has coefficients of shape {coef.shape} for "
                                        f"{x.shape[1]} features")
    if not (np.isfinite(W).all() and np.isfinite(b).all()):
        raise UnsupportedModelError(f"{type(final).__name__} has non-finite coefficients")
    own = final.decision_function(x) if _is_classifier(final) else final.predict(x)
    mine = x @ W.T + b
    own = np.asarray(own, dtype=np.float64).reshape(mine.shape)
    if not np.allclose(mine, own, rtol=AGREEMENT, atol=AGREEMENT * max(1.0, float(np.abs(own).max(initial=0)))):
        raise UnsupportedModelError(f"{type(final).__name__} does not predict X·Wᵀ + b from its coef_ and "
                                    "intercept_ on the training records")
    return W, b, single


def _labels(clf) -> list:
    """The classes as Python scalars ``Model.json`` can hold (text, booleans, numbers)."""
    classes = np.asarray(clf.classes_).tolist()
    odd = next((c for c in classes if not isinstance(c, (str, bool, int, float)) or c == "" or c != c), None)
    if odd is not None or len({str(c) for c in classes}) != len(classes):
        raise UnsupportedModelError(f"{type(clf).__name__} has the class label {odd!r}: labels must be distinct "
                                    "non-empty text, booleans or numbers")
    return classes


def _probability(clf) -> str | None:
    """scikit-learn 1.7's ``predict_proba`` of this classifier, as a :class:`ClassLink`
    probability: LogisticRegression is one-vs-rest (``logistic``) for ``multi_class="ovr"``,
    or for two classes or the liblinear solver under the default, else multinomial
    (``softmax``); SGDClassifier's ``log_loss`` is ``logistic``; LinearSVC, RidgeClassifier and
    other losses predict classes only."""
    name = type(clf).__name__
    if name == "LogisticRegression":
        ovr = clf.multi_class in ("ovr", "warn") or (
            clf.multi_class in ("auto", "deprecated") and (len(clf.classes_) <= 2 or clf.solver == "liblinear"))
        return "logistic" if ovr else "softmax"
    if name == "SGDClassifier":
        return {"log_loss": "logistic", "modified_huber": "modified_huber"}.get(clf.loss)
    return None


def _target_steps(ttr) -> tuple:
    """A TransformedTargetRegressor's ``inverse_transform`` as :class:`TargetLink` steps, with
    scikit-learn's operations in its order; refused if the customer cannot apply it exactly."""
    from sklearn.preprocessing import FunctionTransformer, MaxAbsScaler, MinMaxScaler, StandardScaler

    t = ttr.transformer_
    kind = type(t).__name__
    if type(t) is FunctionTransformer:
        inverse = t.inverse_func
        if inverse is None:
            return ()
        if isinstance(inverse, np.ufunc) and inverse.__name__ in FUNCS and getattr(np, inverse.__name__) is inverse \
                and not t.inv_kw_args:
            return (("func", inverse.__name__),)
        shown = getattr(inverse, "__name__", type(inverse).__name__)
        raise UnsupportedModelError(f"TransformedTargetRegressor's inverse function {shown} is not one the "
                                    f"customer can apply exactly (np.{', np.'.join(FUNCS)})")
    if type(t) is StandardScaler:
        return tuple(s for s in (("mul", t.scale_.tolist()) if t.with_std else None,
                                 ("add", t.mean_.tolist()) if t.with_mean else None) if s)
    if type(t) is MinMaxScaler:
        return (("sub", t.min_.tolist()), ("div", t.scale_.tolist()))
    if type(t) is MaxAbsScaler:
        return (("mul", t.scale_.tolist()),)
    raise UnsupportedModelError(f"TransformedTargetRegressor's {kind} is not supported: the customer applies "
                                "the inverse exactly only for a numpy function such as inverse_func=np.exp, "
                                "StandardScaler, MinMaxScaler or MaxAbsScaler")


def _decision_tolerance(link, tolerance: float) -> float:
    """The error allowed on ``W·x + b`` so that an affine target link (a scaler's inverse)
    keeps predictions within ``tolerance`` in the target's units."""
    if isinstance(link, TargetLink) and all(op != "func" for op, _ in link.steps):
        for op, values in link.steps:
            if op == "mul":
                tolerance /= max(1.0, max(abs(v) for v in values))
            elif op == "div":
                tolerance *= min(1.0, min(abs(v) for v in values))
    return tolerance


def _output_names(target, classes, count: int) -> list:
    if classes is not None:
        labels = classes[1:] if count == 1 else classes
        return [f"decision_{c}" for c in labels]
    names = [target] if isinstance(target, str) else list(target or ["prediction"])
    if len(names) == count:
        return names
    if len(names) != 1:
        raise InputError(f"{len(names)} target names for a model of {count} output(s)")
    return [f"{names[0]}_{i}" for i in range(count)]


def _check_agreement(exported: ExportedModel, X_train) -> None:
    """The whole customer path (the records as CSV text → features → ``W·x + b`` → link)
    reproduces the estimator's ``predict`` on the training records."""
    est = exported.estimator
    mine = exported.predict(X_train[exported.transformer.input_columns].astype(str))
    own = np.asarray(est.predict(X_train))
    if exported.classes is not None:
        ok = np.array_equal(mine, own)
        if ok and exported.link.probability is not None:
            proba = exported.predict_proba(X_train[exported.transformer.input_columns].astype(str))
            ok = np.allclose(proba, est.predict_proba(X_train), rtol=0, atol=AGREEMENT)
    else:
        ok = mine.shape == own.shape and np.allclose(mine, own, rtol=AGREEMENT,
                                                     atol=AGREEMENT * max(1.0, float(np.abs(own).max(initial=0))))
    if not ok:
        raise UnsupportedModelError(f"{type(est).__name__}: ppml's reconstruction does not reproduce predict "
                                    "on the training records")


def _check_loadable(exported: ExportedModel) -> None:
    """The estimator's pickle loads through an allowlist ppml's loader accepts."""
    from . import artifacts

    try:
        artifacts.checked_pickle(exported.estimator, artifacts.PIPELINE_GLOBALS)
    except ArtifactError as e:
        raise UnsupportedModelError(e.message) from None
    except (pickle.PicklingError, AttributeError, TypeError) as e:  # lambdas, local functions
        raise UnsupportedModelError(f"{type(exported.estimator).__name__} cannot be pickled "
                                    f"({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------------------------------------
# Artifacts
# ---------------------------------------------------------------------------------------------
def model_parameters(exported: ExportedModel):
    """The model documents (``Model.json`` …) of an exported model: its outputs and link, ``W``
    and ``b`` on one codec shared by every output (:meth:`ExportedModel.codec`), each row's slot
    width proven."""
    import sklearn

    from . import __version__
    from .documents import ModelParameters, ModelSpec

    spec = ModelSpec(list(exported.features), list(exported.lower), list(exported.upper), exported.codec(),
                     list(exported.outputs), exported.link,
                     {k: [lo, hi] for k, (lo, hi) in exported.inputs.items()}, exported.tolerance,
                     {"ppml": __version__, "scikit-learn": sklearn.__version__})
    params = ModelParameters(spec, [[float(w) for w in row] for row in exported.weights],
                             [float(b) for b in exported.intercepts])
    params.check_slot_width()
    return params


def export(estimator, X_train, out_dir, *, bounds=None, target=None,
           tolerance: float = DEFAULT_TOLERANCE) -> ExportedModel:
    """Export a fitted estimator and write its artifacts into ``out_dir``: ``col_tnf.pkl``,
    ``PreProcessingDataAndModel.pkl`` (the estimator itself), its allowlist and
    ``Encrypted_ModelParameters/`` — then ``CustomerEncrypts.py``, ``ServerModelRun.py`` and
    ``CustomerDecrypts.py`` work with ``--model out_dir``. Nothing is written if the model is
    refused. See :func:`export_model` for the arguments."""
    from . import artifacts

    exported = export_model(estimator, X_train, bounds=bounds, target=target, tolerance=tolerance)
    params = model_parameters(exported)
    artifacts.write_model(exported.transformer, exported.estimator, params, out_dir)
    return exported


# ---------------------------------------------------------------------------------------------
# From files (python -m ppml export)
# ---------------------------------------------------------------------------------------------
def load_estimator(path):
    """The company's own pickled estimator, loaded with plain :mod:`pickle`: unlike every other
    pickle ppml reads, this one may run code, so it must be a file the company wrote itself."""
    from . import files

    data = files.read_bytes(path)
    try:
        return pickle.loads(data)
    except Exception as e:  # noqa: BLE001 - a corrupt pickle or a class this environment lacks raises anything
        detail = (str(e).strip().splitlines() or [""])[0]
        raise ArtifactError(f"cannot unpickle the estimator ({type(e).__name__}: {detail})",
                            files.display_name(path)) from None


def training_frame(path, estimator, targets=()):
    """The training CSV as a data scientist's DataFrame (pandas' own type inference: numbers as
    numbers, text as text), without the target column(s) and without an ``id`` column the
    estimator was not fitted on (the customer's records name themselves with it)."""
    import io

    import pandas as pd

    from . import files
    from .customer import CsvErrors

    source = files.display_name(path)
    with CsvErrors(source):
        frame = pd.read_csv(io.BytesIO(files.read_bytes(path)), encoding="utf-8")
    if frame.empty:
        raise InputError("has a header but no records", source)
    fitted = [str(n) for n in getattr(estimator, "feature_names_in_", ())]
    dropped = [c for c in [*targets, "id"] if c in frame.columns and c not in fitted]
    return frame.drop(columns=dropped)


class _CallableModule(types.ModuleType):
    """``ppml.export`` is both this module and, for notebooks, the function :func:`export`:
    importing the submodule rebinds the package attribute to the module, so the module itself
    is made callable."""

    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
