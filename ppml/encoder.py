"""The customer's transformer (``col_tnf.pkl``): raw records → the model's feature vector, as
plain data.

Training fits a scikit-learn ``ColumnTransformer``; this module compiles the fitted one into
blocks of numbers and text with the same output, bit for bit (same float operations in the
same order): one-hot maps (category lists, the unknown-value rule) and affine scaling
constants. With the feature step (:class:`~ppml.features.FeatureStep`: named parsers from a
fixed vocabulary) they make a :class:`CustomerTransform`, whose :meth:`~CustomerTransform.to_dict`
is what ``col_tnf.pkl`` holds: a dict of lists, strings and floats. The customer rebuilds it
with :meth:`~CustomerTransform.from_dict`, which checks every field and its size, so the file
the company sends is data the customer validates, never objects it reconstructs. It carries
category lists, column order and scaling constants — never weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ArtifactError, InputError
from .features import PARSERS, FeatureStep

#: ``OneHotBlock.unknown`` for an encoder fitted with ``handle_unknown="error"``: an unseen
#: value is refused, as scikit-learn refuses it.
REFUSE_UNKNOWN = -2
TRANSFORM_FORMAT = "ppml.customer-transform"
TRANSFORM_VERSION = 1
#: Size limits of a customer transform read from a file: input and output columns, categories
#: of one column, characters of a name or category.
MAX_COLUMNS = 10_000
MAX_CATEGORIES = 100_000
MAX_TEXT = 1_000
#: Steps :func:`compile_blocks` has an exact rule for (the message of a refusal lists them).
SUPPORTED_STEPS = ("passthrough", "OneHotEncoder", "StandardScaler", "MinMaxScaler (clip=False)", "MaxAbsScaler",
                   "SimpleImputer (NaN marker, no indicator)", "FunctionTransformer without a function",
                   "in a ColumnTransformer or a Pipeline")


class NoExactRule(TypeError):
    """A fitted step with no rule here: ``step`` names its class, ``why`` says what is missing."""

    def __init__(self, step: str, why: str):
        super().__init__(f"{step}: {why}")
        self.step, self.why = step, why


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

    def bounds(self, inputs):
        return [0.0] * self.width, [1.0] * self.width

    def to_dict(self) -> dict:
        return {"kind": "one_hot", "column": str(self.column), "categories": list(self.index),
                "index": [int(i) for i in self.index.values()], "unknown": int(self.unknown),
                "width": int(self.width)}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "OneHotBlock":
        _keys(d, ("kind", "column", "categories", "index", "unknown", "width"), where)
        column = _text(d["column"], f"{where}.column")
        width = _integer(d["width"], f"{where}.width", 1, MAX_CATEGORIES + 1)
        categories = _list(d["categories"], f"{where}.categories", MAX_CATEGORIES)
        index = _list(d["index"], f"{where}.index", MAX_CATEGORIES)
        if len(index) != len(categories):
            raise ArtifactError(f"{where}.index must have one entry per category ({len(categories)})")
        mapping = {}
        for i, (category, col) in enumerate(zip(categories, index)):
            if isinstance(category, str):
                _text(category, f"{where}.categories[{i}]", allow_empty=True)
            else:
                _number(category, f"{where}.categories[{i}]")
            if category in mapping:
                raise ArtifactError(f"{where}.categories[{i}] repeats a category")
            mapping[category] = _integer(col, f"{where}.index[{i}]", -1, width - 1)
        unknown = _integer(d["unknown"], f"{where}.unknown", REFUSE_UNKNOWN, width - 1)
        return cls(column, mapping, unknown, width)


_SCALE_STEPS = ("mean", "scale", "factor", "offset")


@dataclass
class ScaleBlock:
    """Numeric columns, as ``((x − mean) / scale) · factor + offset`` in that order (``None``
    skips a step): passthrough, ``StandardScaler``, ``MaxAbsScaler`` (scale only) and
    ``MinMaxScaler`` (factor and offset)."""

    columns: list
    mean: np.ndarray | None
    scale: np.ndarray | None
    factor: np.ndarray | None = None
    offset: np.ndarray | None = None

    @property
    def width(self) -> int:
        return len(self.columns)

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

    def bounds(self, inputs):
        """Each column's declared input interval through the same float operations as the
        transform (monotone), so a value on a bound transforms exactly onto the feature's bound."""
        ends = self._affine(np.array([[float(inputs[c][i]) for c in self.columns] for i in (0, 1)]))
        return [float(v) for v in ends.min(axis=0)], [float(v) for v in ends.max(axis=0)]

    def to_dict(self) -> dict:
        d = {"kind": "scale", "columns": [str(c) for c in self.columns]}
        for name in _SCALE_STEPS:
            values = getattr(self, name)
            d[name] = None if values is None else [float(v) for v in values]
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "ScaleBlock":
        _keys(d, ("kind", "columns", *_SCALE_STEPS), where)
        columns = [_text(c, f"{where}.columns[{i}]")
                   for i, c in enumerate(_list(d["columns"], f"{where}.columns", MAX_COLUMNS))]
        if not columns:
            raise ArtifactError(f"{where}.columns must not be empty")
        steps = {}
        for name in _SCALE_STEPS:
            if d[name] is None:
                steps[name] = None
                continue
            values = [_number(v, f"{where}.{name}[{i}]")
                      for i, v in enumerate(_list(d[name], f"{where}.{name}", MAX_COLUMNS))]
            if len(values) != len(columns):
                raise ArtifactError(f"{where}.{name} must have one number per column ({len(columns)})")
            if name == "scale" and 0.0 in values:
                raise ArtifactError(f"{where}.scale must not contain 0")
            steps[name] = np.array(values, dtype=np.float64)
        return cls(columns, **steps)


_BLOCKS = {"one_hot": OneHotBlock, "scale": ScaleBlock}


@dataclass
class CompiledColumns:
    blocks: list
    names: list

    def get_feature_names_out(self):
        return np.asarray(self.names, dtype=object)

    def transform(self, frame) -> np.ndarray:
        parts = [block.apply(frame) for block in self.blocks]
        return np.hstack(parts) if parts else np.empty((len(frame), 0))

    def bounds(self, inputs: dict) -> tuple[list, list]:
        """Declared ``[lower, upper]`` of every feature, from the numeric input columns' declared
        ``inputs`` (one-hot columns are 0/1)."""
        lower, upper = [], []
        for block in self.blocks:
            lo, hi = block.bounds(inputs)
            lower += lo
            upper += hi
        if len(lower) != len(self.names):
            raise AssertionError("bounds do not cover every output column")  # programming error
        return lower, upper

    @classmethod
    def from_sklearn(cls, ct, input_names=None) -> "CompiledColumns":
        """Compile a fitted ColumnTransformer part by part (see :func:`compile_blocks`).
        ``input_names`` name the columns of a transformer fitted on an array, by position.

        Raises:
            NoExactRule: a part has no exact rule.
        """
        fitted_names = getattr(ct, "feature_names_in_", None)
        names_in = [str(n) for n in (fitted_names if fitted_names is not None else input_names or [])] or None
        blocks = []
        for name, transformer, spec in ct.transformers_:
            columns = _select(spec, names_in)
            if isinstance(transformer, str) and transformer == "drop" or not len(columns):
                continue
            blocks += compile_blocks(transformer, columns)
        width = sum(s.stop - s.start for s in ct.output_indices_.values())
        return cls(blocks, output_names(ct, width))


def compile_blocks(transformer, columns: list) -> list:
    """Blocks that compute ``transformer.transform(frame[columns])`` bit for bit, for a fitted
    ``passthrough``, ``OneHotEncoder``, ``StandardScaler``, ``MinMaxScaler`` (without clip),
    ``MaxAbsScaler``, an identity ``FunctionTransformer``, or a ``Pipeline`` of ``SimpleImputer``
    steps (which never act: the feature step refuses missing values) then one of those.

    Raises:
        NoExactRule: no exact rule for this transformer or these settings.
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
            raise NoExactRule(type(steps[1]).__name__, f"no exact rule after {type(steps[0]).__name__} in a Pipeline")
        return compile_blocks(steps[0] if steps else "passthrough", columns)
    if type(transformer) is FunctionTransformer:
        if transformer.func is None and not transformer.validate:
            return [ScaleBlock(list(columns), None, None)]
        raise NoExactRule(kind, "a function is code, not data")
    if type(transformer) is SimpleImputer:
        stats = np.asarray(transformer.statistics_, dtype=object)
        missing = transformer.missing_values
        if transformer.add_indicator or not (missing is None or isinstance(missing, float) and missing != missing):
            raise NoExactRule(kind, "no exact rule with an indicator or a marker other than NaN")
        if not transformer.keep_empty_features and any(v is None or v != v for v in stats):
            raise NoExactRule(kind, "no exact rule when it drops empty columns")
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
    raise NoExactRule(kind, "its fitted state is not column kinds, categories or scaling constants")


def _one_hot_blocks(encoder, columns: list) -> list:
    """One block per input column. Maps are read off the fitted encoder by transforming each
    category (and a value never seen), so drops, infrequent groups and unknown handling match it
    exactly."""
    import warnings

    import pandas as pd

    widths = list(encoder._n_features_outs)  # output columns per input column (drops, infrequent)
    if len(widths) != len(columns) or len(encoder.categories_) != len(columns):
        raise NoExactRule("OneHotEncoder", "its columns do not match its categories")
    blocks, start = [], 0
    firsts = {c: cats[0] for c, cats in zip(columns, encoder.categories_)}
    for j, (column, width) in enumerate(zip(columns, widths)):
        categories = [c.item() if isinstance(c, np.generic) else c for c in encoder.categories_[j]]
        numeric = np.asarray(encoder.categories_[j]).dtype.kind in "iuf"
        unseen = float(np.nanmax(np.asarray(categories, dtype=np.float64))) + 1.0 if numeric else "\x00unseen"
        if not all(isinstance(c, str) or isinstance(c, (int, float)) and not isinstance(c, bool) and c == c
                   for c in categories):
            raise NoExactRule("OneHotEncoder", "its categories are not all text or finite numbers")

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
        raise NoExactRule("ColumnTransformer", "columns given by position need the input column names")
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
        raise NoExactRule("OneHotEncoder", "a one-hot row with more than one column set")
    return int(hits[0]) if len(hits) else -1


@dataclass
class CustomerTransform:
    """Raw records → engineered columns (``features``) → the model's float feature matrix."""

    features: FeatureStep
    columns: CompiledColumns

    def engineer(self, raw):
        return self.features(raw)

    def transform(self, raw) -> np.ndarray:
        return self.columns.transform(self.engineer(raw))

    @property
    def input_columns(self) -> list:
        """The raw columns a record must have (for messages and help)."""
        return list(self.features.inputs)

    @property
    def feature_names(self) -> list:
        return list(self.columns.names)

    @classmethod
    def from_pipeline(cls, pipeline) -> "CustomerTransform":
        """The customer's part of a pipeline trained by :mod:`ppml.model`: its ``features``
        step (the laptop parser or a :class:`~ppml.tabular.TabularFeatures`) and ``columns``."""
        from .features import LAPTOP_FEATURES, engineer_features
        from .tabular import TabularFeatures

        func = pipeline.named_steps["features"].func
        if func is engineer_features:
            step = LAPTOP_FEATURES
        elif isinstance(func, TabularFeatures):
            step = func.step
        else:
            raise NoExactRule(type(func).__name__, "not a feature step of ppml")
        return cls(step, CompiledColumns.from_sklearn(pipeline.named_steps["columns"]))

    def to_dict(self) -> dict:
        """The plain data ``col_tnf.pkl`` holds (see docs/protocol.md, section 3)."""
        return {"format": TRANSFORM_FORMAT, "version": TRANSFORM_VERSION, **self.features.to_dict(),
                "blocks": [b.to_dict() for b in self.columns.blocks], "names": [str(n) for n in self.columns.names]}

    @classmethod
    def from_dict(cls, d) -> "CustomerTransform":
        """Check every field of a customer transform read from a file, its type, size and
        consistency, and build it.

        Raises:
            ArtifactError: one line naming the first field that is wrong.
        """
        from .validation import check_header

        check_header(d, TRANSFORM_FORMAT, TRANSFORM_VERSION, ArtifactError)
        _keys(d, ("format", "version", "inputs", "features", "blocks", "names"), "transform")
        inputs = [_text(c, f"inputs[{i}]") for i, c in enumerate(_list(d["inputs"], "inputs", MAX_COLUMNS))]
        if len(set(inputs)) != len(inputs):
            raise ArtifactError("inputs names a column twice")
        features = []
        for i, f in enumerate(_list(d["features"], "features", MAX_COLUMNS)):
            where = f"features[{i}]"
            _keys(f, ("name", "parser", "columns"), where)
            name, parser = _text(f["name"], f"{where}.name"), f["parser"]
            if not isinstance(parser, str) or parser not in PARSERS:
                raise ArtifactError(f"{where}.parser must be one of {', '.join(PARSERS)}")
            sources = [_text(c, f"{where}.columns[{j}]")
                       for j, c in enumerate(_list(f["columns"], f"{where}.columns", 2))]
            if len(sources) != len(PARSERS[parser][0]):
                raise ArtifactError(f"{where}.columns must name {len(PARSERS[parser][0])} column(s) for {parser!r}")
            features.append((name, parser, tuple(sources)))
        step = FeatureStep(tuple(inputs), tuple(features))
        if len(set(step.names)) != len(step.names):
            raise ArtifactError("features names a feature twice")
        try:
            step.column_parsers()
        except ValueError as e:
            raise ArtifactError(f"features: {e}") from None
        text, kinds = set(step.text_features), set(step.names)
        blocks = []
        for i, b in enumerate(_list(d["blocks"], "blocks", MAX_COLUMNS)):
            kind = b.get("kind") if isinstance(b, dict) else None
            if not isinstance(kind, str) or kind not in _BLOCKS:
                raise ArtifactError(f"blocks[{i}].kind must be one of {', '.join(_BLOCKS)}")
            blocks.append(_BLOCKS[kind].from_dict(b, f"blocks[{i}]"))
            for column in blocks[-1].columns:
                if column not in kinds:
                    raise ArtifactError(f"blocks[{i}] reads {column!r}, which is not a feature")
                if kind == "scale" and column in text:
                    raise ArtifactError(f"blocks[{i}] scales {column!r}, which is text")
        names = [_text(n, f"names[{i}]") for i, n in enumerate(_list(d["names"], "names", MAX_COLUMNS * 10))]
        if len(set(names)) != len(names) or len(names) != sum(b.width for b in blocks):
            raise ArtifactError("names must name each output column of the blocks once")
        return cls(step, CompiledColumns(blocks, names))


# -- field checks of a transform read from a file ----------------------------------------------
def _keys(d, keys: tuple, where: str) -> None:
    if not isinstance(d, dict) or set(d) != set(keys):
        raise ArtifactError(f"{where} must be an object with exactly the fields {', '.join(keys)}")


def _list(value, where: str, limit: int) -> list:
    if type(value) is not list or len(value) > limit:
        raise ArtifactError(f"{where} must be a list of at most {limit} entries")
    return value


def _text(value, where: str, allow_empty: bool = False) -> str:
    if type(value) is not str or len(value) > MAX_TEXT or not (value or allow_empty):
        raise ArtifactError(f"{where} must be {'' if allow_empty else 'non-empty '}text of at most {MAX_TEXT} "
                            "characters")
    return value


def _number(value, where: str):
    """A finite float, or an integer of at most 64 bits (a category of integers)."""
    if not (type(value) is float and math.isfinite(value) or type(value) is int and abs(value) < 2 ** 63):
        raise ArtifactError(f"{where} must be a finite number")
    return value


def _integer(value, where: str, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise ArtifactError(f"{where} must be an integer from {lo} to {hi}")
    return value
