"""The customer's transformer (``col_tnf.pkl``): raw records → the model's feature vector.

Training fits a scikit-learn ``ColumnTransformer``; this module compiles the fitted one into a
small numpy object with the same output, bit for bit (same float operations in the same
order). That object is what ``col_tnf.pkl`` holds: loading it imports neither scikit-learn nor
SciPy (about a second saved on every encryption run), and the restricted unpickler only has
to admit a handful of ppml and numpy names. It carries category lists, column order and
scaling constants — never weights.

An exported model (:mod:`ppml.export`) may use steps with no exact numpy rule here
(``PolynomialFeatures``, ``KBinsDiscretizer``, …). Those stay fitted scikit-learn objects
inside a :class:`SklearnBlock`, next to the compiled blocks; such a ``col_tnf.pkl`` needs
scikit-learn to load, through an allowlist computed when it was written
(:mod:`ppml.artifacts`).
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

import numpy as np

from .errors import InputError

#: ``OneHotBlock.unknown`` for an encoder fitted with ``handle_unknown="error"``: an unseen
#: value is refused, as scikit-learn refuses it.
REFUSE_UNKNOWN = -2


@dataclass
class OneHotBlock:
    """One categorical column: ``index[value]`` is its output column (-1: none, as for a dropped
    category), ``unknown`` the column of values not seen in training (the infrequent group), -1
    for none, or :data:`REFUSE_UNKNOWN`."""

    column: str
    index: dict
    unknown: int
    width: int

    @property
    def columns(self) -> list:
        return [self.column]

    def apply(self, frame) -> np.ndarray:
        values = frame[self.column].to_numpy(dtype=object)
        cols = np.fromiter((self.index.get(v, self.unknown) for v in values), dtype=np.int64, count=len(values))
        if self.unknown == REFUSE_UNKNOWN and (cols == REFUSE_UNKNOWN).any():
            r = int(np.argmax(cols == REFUSE_UNKNOWN))
            raise InputError(f"row {frame.index[r]}, column {self.column!r}: category {values[r]!r} was not "
                             "seen in training, and the model refuses unknown categories")
        out = np.zeros((len(values), self.width), dtype=np.float64)
        hit = cols >= 0
        out[np.nonzero(hit)[0], cols[hit]] = 1.0
        return out

    def bounds(self, inputs, engineered):
        return [0.0] * self.width, [1.0] * self.width


@dataclass
class ScaleBlock:
    """Numeric columns, as ``((x − mean) / scale) · factor + offset`` in that order (``None``
    skips a step): passthrough, ``StandardScaler``, ``MaxAbsScaler`` (scale only) and
    ``MinMaxScaler`` (factor and offset)."""

    columns: list
    mean: np.ndarray | None
    scale: np.ndarray | None
    factor: np.ndarray | None = None  # class defaults: blocks pickled before these existed load
    offset: np.ndarray | None = None

    def apply(self, frame) -> np.ndarray:
        return self._affine(frame[self.columns].to_numpy(dtype=np.float64, copy=True))

    def _affine(self, x: np.ndarray) -> np.ndarray:
        if self.mean is not None:
            x -= self.mean
        if self.scale is not None:
            x /= self.scale
        if self.factor is not None:
            x *= self.factor
        if self.offset is not None:
            x += self.offset
        return x

    def bounds(self, inputs, engineered):
        """Each column's declared input interval through the same float operations as the
        transform (monotone), so a value on a bound transforms exactly onto the feature's bound."""
        ends = self._affine(np.array([[float(inputs[c][i]) for c in self.columns] for i in (0, 1)]))
        return [float(v) for v in ends.min(axis=0)], [float(v) for v in ends.max(axis=0)]


@dataclass
class SklearnBlock:
    """A fitted scikit-learn transformer with no exact numpy rule here, applied to
    ``frame[select]`` (a column name gives a Series, a list a DataFrame, as ``ColumnTransformer``
    passes them; ``as_array`` for transformers fitted on arrays)."""

    transformer: object
    select: object
    width: int
    as_array: bool = False

    @property
    def columns(self) -> list:
        return [self.select] if isinstance(self.select, str) else list(self.select)

    def apply(self, frame) -> np.ndarray:
        x = frame[self.select]
        if self.as_array:
            x = x.to_numpy()
        try:
            out = self.transformer.transform(x)
        except ValueError as e:  # unknown categories, values it cannot take, …
            detail = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise InputError(f"the model's {type(self.transformer).__name__} refused the records: {detail}") from None
        if hasattr(out, "toarray"):  # sparse
            out = out.toarray()
        out = np.asarray(out, dtype=np.float64)
        if out.ndim != 2 or out.shape != (len(frame), self.width):
            raise InputError(f"the model's {type(self.transformer).__name__} gave {out.shape} values for "
                             f"{len(frame)} records, expected {self.width} per record")
        return out

    def bounds(self, inputs, engineered):
        """No interval rule for an arbitrary transformer: each output column gets
        :func:`ppml.tabular.default_bounds` of its values on the training records."""
        from .tabular import default_bounds

        lower, upper = zip(*(default_bounds(col) for col in self.apply(engineered).T))
        return list(lower), list(upper)


@dataclass
class CompiledColumns:
    blocks: list
    names: list

    def get_feature_names_out(self):
        return np.asarray(self.names, dtype=object)

    def transform(self, frame) -> np.ndarray:
        parts = [block.apply(frame) for block in self.blocks]
        return np.hstack(parts) if parts else np.empty((len(frame), 0))

    def bounds(self, inputs: dict, engineered=None) -> tuple[list, list]:
        """Declared ``[lower, upper]`` of every feature, from the numeric input columns' declared
        ``inputs`` (one-hot columns are 0/1); ``engineered`` (the training records after the
        feature step) bounds the outputs of :class:`SklearnBlock` parts."""
        lower, upper = [], []
        for block in self.blocks:
            lo, hi = block.bounds(inputs, engineered)
            lower += lo
            upper += hi
        if len(lower) != len(self.names):
            raise AssertionError("bounds do not cover every output column")  # programming error
        return lower, upper

    @classmethod
    def from_sklearn(cls, ct, fallback: bool = False, input_names=None) -> CompiledColumns:
        """Compile a fitted ColumnTransformer part by part (see :func:`compile_blocks`). A part
        with no exact rule raises TypeError, or with ``fallback`` stays a fitted scikit-learn
        object (:class:`SklearnBlock`). ``input_names`` name the columns of a transformer fitted
        on an array, by position."""
        fitted_names = getattr(ct, "feature_names_in_", None)
        names_in = [str(n) for n in (fitted_names if fitted_names is not None else input_names or [])] or None
        blocks = []
        for name, transformer, spec in ct.transformers_:
            columns = _select(spec, names_in)
            if isinstance(transformer, str) and transformer == "drop" or not len(columns):
                continue
            try:
                blocks += compile_blocks(transformer, columns)
            except TypeError:
                if not fallback:
                    raise
                width = ct.output_indices_[name].stop - ct.output_indices_[name].start
                blocks.append(SklearnBlock(transformer, spec if isinstance(spec, str) else columns, width,
                                           fitted_names is None))
        width = sum(s.stop - s.start for s in ct.output_indices_.values())
        return cls(blocks, output_names(ct, width))


def compile_blocks(transformer, columns: list) -> list:
    """Blocks that compute ``transformer.transform(frame[columns])`` bit for bit, for a fitted
    ``passthrough``, ``OneHotEncoder``, ``StandardScaler``, ``MinMaxScaler`` (without clip),
    ``MaxAbsScaler``, an identity ``FunctionTransformer``, or a ``Pipeline`` of ``SimpleImputer``
    steps (which never act: the feature step refuses missing values) then one of those.

    Raises:
        TypeError: no exact rule for this transformer or these settings.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (FunctionTransformer, MaxAbsScaler, MinMaxScaler, OneHotEncoder,
                                       StandardScaler)

    kind = type(transformer).__name__
    if isinstance(transformer, str) and transformer == "passthrough" or transformer is None:
        return [ScaleBlock(list(columns), None, None)]
    if isinstance(transformer, Pipeline):
        steps = [s for _, s in transformer.steps if not (s is None or isinstance(s, str) and s == "passthrough")]
        while steps and isinstance(steps[0], SimpleImputer) and len(steps) > 1:
            compile_blocks(steps.pop(0), columns)  # only checks that the imputer never acts
        if len(steps) > 1:
            raise TypeError(f"no exact rule for a Pipeline of {len(steps)} steps")
        return compile_blocks(steps[0] if steps else "passthrough", columns)
    if type(transformer) is FunctionTransformer:
        if transformer.func is None and not transformer.validate:
            return [ScaleBlock(list(columns), None, None)]
        raise TypeError("no exact rule for a FunctionTransformer with a function")
    if type(transformer) is SimpleImputer:
        stats = np.asarray(transformer.statistics_, dtype=object)
        missing = transformer.missing_values
        if transformer.add_indicator or not (missing is None or isinstance(missing, float) and missing != missing):
            raise TypeError("no exact rule for a SimpleImputer with an indicator or a marker other than NaN")
        if not transformer.keep_empty_features and any(v is None or v != v for v in stats):
            raise TypeError("no exact rule for a SimpleImputer that drops empty columns")
        return [ScaleBlock(list(columns), None, None)]
    if type(transformer) is OneHotEncoder:
        return _one_hot_blocks(transformer, list(columns))
    if type(transformer) is StandardScaler:
        return [ScaleBlock(list(columns), np.array(transformer.mean_) if transformer.with_mean else None,
                           np.array(transformer.scale_) if transformer.with_std else None)]
    if type(transformer) is MaxAbsScaler:
        return [ScaleBlock(list(columns), None, np.array(transformer.scale_))]
    if type(transformer) is MinMaxScaler and not transformer.clip:
        return [ScaleBlock(list(columns), None, None, np.array(transformer.scale_), np.array(transformer.min_))]
    raise TypeError(f"cannot compile transformer {kind}")


def _one_hot_blocks(encoder, columns: list) -> list:
    """One block per input column. Maps are read off the fitted encoder by transforming each
    category (and a value never seen), so drops, infrequent groups and unknown handling match it
    exactly."""
    import warnings

    import pandas as pd

    widths = list(encoder._n_features_outs)  # output columns per input column (drops, infrequent)
    if len(widths) != len(columns) or len(encoder.categories_) != len(columns):
        raise TypeError("OneHotEncoder columns do not match its categories")
    blocks, start = [], 0
    firsts = {c: cats[0] for c, cats in zip(columns, encoder.categories_)}
    for j, (column, width) in enumerate(zip(columns, widths)):
        categories = list(encoder.categories_[j])
        numeric = np.asarray(encoder.categories_[j]).dtype.kind in "iuf"
        unseen = float(np.nanmax(np.asarray(categories, dtype=np.float64))) + 1.0 if numeric else "\x00unseen"

        def probe(values):
            frame = pd.DataFrame({c: [firsts[c]] * len(values) for c in columns})
            frame[column] = values
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # handle_unknown="warn" warns on the probe
                out = encoder.transform(frame if hasattr(encoder, "feature_names_in_") else frame.to_numpy())
            out = out.toarray() if hasattr(out, "toarray") else np.asarray(out)
            return out[:, start:start + width]

        index = {cat: _hot(row) for cat, row in zip(categories, probe(categories))}
        try:
            unknown = _hot(probe([unseen])[0])
        except ValueError:  # handle_unknown="error"
            unknown = REFUSE_UNKNOWN
        blocks.append(OneHotBlock(column, index, unknown, width))
        start += width
    return blocks


def _select(spec, names_in) -> list:
    """A ColumnTransformer part's column spec (name(s), position(s), slice or mask) → the names
    of the columns it reads."""
    if isinstance(spec, str):
        return [spec]
    if not isinstance(spec, slice) and all(isinstance(s, str) for s in spec):
        return list(spec)
    if names_in is None:
        raise TypeError("columns given by position need the input column names")
    return [str(n) for n in np.asarray(names_in, dtype=object)[spec]]


def output_names(transformer, width: int) -> list:
    """The transformer's feature names, or ``x0``, ``x1``, … if it cannot name them all
    distinctly (a FunctionTransformer without ``feature_names_out``, say)."""
    try:
        names = [str(n) for n in transformer.get_feature_names_out()]
    except (AttributeError, ValueError, TypeError):
        names = []
    if len(names) != width or len(set(names)) != width or not all(names):
        names = [f"x{i}" for i in range(width)]
    return names


def _hot(row) -> int:
    hits = np.flatnonzero(row)
    if len(hits) > 1:
        raise TypeError("a one-hot row with more than one column set")
    return int(hits[0]) if len(hits) else -1


@dataclass
class CustomerTransform:
    """Raw records → engineered columns (``features``) → the model's float feature matrix."""

    features: Callable | None
    columns: CompiledColumns

    def engineer(self, raw):
        return self.features(raw) if self.features is not None else raw

    def transform(self, raw) -> np.ndarray:
        return self.columns.transform(self.engineer(raw))

    @property
    def input_columns(self) -> list:
        """The raw columns a record must have (for messages and help)."""
        if self.features is None:
            return [c for b in self.columns.blocks for c in b.columns]
        from .features import RAW_COLUMNS, engineer_features

        if self.features is engineer_features:
            return list(RAW_COLUMNS)
        return list(self.features.columns)

    @property
    def feature_names(self) -> list:
        return list(self.columns.names)

    @classmethod
    def from_pipeline(cls, pipeline) -> CustomerTransform:
        steps = dict(pipeline.named_steps)
        features = steps.get("features")
        func = getattr(features, "func", None) if features is not None and features != "passthrough" else None
        return cls(func, CompiledColumns.from_sklearn(steps["columns"]))
