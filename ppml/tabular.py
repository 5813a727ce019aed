"""Any tabular data set: column detection, the feature step and declared bounds.

The laptop model has hand-written parsers (:mod:`ppml.features`); a generic CSV has none. Its
columns are either *numeric* (parsed to float64 and standardised) or *categorical* (stripped
text, one-hot encoded), and :class:`TabularFeatures` is the whole feature step: the first step
of the scikit-learn pipeline (inside a ``FunctionTransformer``), and as data
(:attr:`TabularFeatures.step`: a ``category`` or ``number`` parser per column) the ``features``
of the customer's transformer (``col_tnf.pkl``).

Rules (also in ``python -m ppml train --help``):

* **Detection** (:func:`detect_columns`): a column whose non-empty values all parse as finite
  decimal numbers is numeric, any other column categorical. ``--numeric`` / ``--categorical``
  force a column's kind, ``--ignore`` drops it; the target and an ``id`` column are never
  features.
* **Bounds** (:func:`default_bounds`): with no domain knowledge, every numeric column gets a
  generous box derived from the training file: ``B = 2^ceil(log2(max|v| + 1)) · 16`` and
  ``[0, B]`` if every training value is ≥ 0, else ``[−B, B]``. Records inside the box encode;
  a customer's record outside it is refused before encryption. The box is published in
  ``Model.json``, so it reveals the power of two just above the largest training magnitude
  (nothing finer); declare domain bounds with ``--bounds COL=LO:HI`` to reveal nothing about
  the data.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from .errors import InputError
from .features import (CATEGORY_EXPECTED, NUMBER_EXPECTED, FeatureStep, Unparseable, parse_number, parse_numeric,
                       plain_value)

__all__ = [
    "ID_COLUMN", "NUMBER_EXPECTED", "CATEGORY_EXPECTED", "BOUNDS_FACTOR",
    "TabularFeatures", "detect_columns", "is_number_text", "parse_numeric",
    "default_bounds", "parse_bounds", "numeric_lookalikes", "unnamed_column_notes",
]

#: The column that names records (see :func:`ppml.customer.iter_record_chunks`); never a feature.
ID_COLUMN = "id"
#: Headroom of the default bounds over the largest training magnitude's power of two.
BOUNDS_FACTOR = 16


def is_number_text(value) -> bool:
    try:
        parse_number(value)
    except (Unparseable, ValueError, OverflowError):
        return False
    return True


@dataclass(frozen=True)
class TabularFeatures:
    """Raw records (a DataFrame, typically of strings as read from CSV) → the feature columns:
    ``categorical`` (stripped text, object dtype) then ``numeric`` (float64), with the input's
    index. Other columns (target, ``id``, anything else) are ignored.

    Raises:
        InputError: a feature column is missing (or duplicated).
        FeatureParseError: a numeric value is blank, not a decimal number, NaN or infinite, or
            a categorical value is not text (e.g. NaN); it names the row label, column and value.
    """

    numeric: tuple = ()
    categorical: tuple = ()

    def __post_init__(self):
        numeric, categorical = tuple(map(str, self.numeric)), tuple(map(str, self.categorical))
        both = set(numeric) & set(categorical)
        if both:
            raise InputError(f"column(s) {', '.join(repr(c) for c in sorted(both))} cannot be both numeric "
                             "and categorical")
        if len(set(numeric + categorical)) != len(numeric + categorical):
            raise InputError("a feature column is listed twice")
        object.__setattr__(self, "numeric", numeric)
        object.__setattr__(self, "categorical", categorical)

    @property
    def columns(self) -> tuple:
        return self.categorical + self.numeric

    @property
    def step(self) -> FeatureStep:
        """The same step as data: a ``category`` parser per categorical column, ``number`` per
        numeric one."""
        return FeatureStep(self.columns, tuple((c, "category", (c,)) for c in self.categorical)
                           + tuple((c, "number", (c,)) for c in self.numeric))

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"TabularFeatures expects a pandas DataFrame, got {type(frame).__name__}")
        return self.step(frame)


def detect_columns(frame: pd.DataFrame, target: str, categorical: Iterable[str] = (),
                   numeric: Iterable[str] = (), ignore: Iterable[str] = ()) -> tuple[list, list]:
    """``(numeric, categorical)`` feature columns of a training frame, in the frame's order.

    A column whose non-empty values all parse as finite decimal numbers is numeric; any other
    is categorical (a column with no non-empty value at all too). ``categorical`` and
    ``numeric`` force a column's kind, ``ignore`` drops columns; ``target`` and ``id`` are
    never features.
    """
    categorical, numeric, ignore = list(categorical), list(numeric), list(ignore)
    present = list(frame.columns)
    if target not in present:
        raise InputError(f"no target column {target!r}; columns: {', '.join(present)}")
    for option, names in (("--categorical", categorical), ("--numeric", numeric), ("--ignore", ignore)):
        missing = [n for n in names if n not in present]
        if missing:
            raise InputError(f"{option}: no column(s) {', '.join(repr(n) for n in missing)}; "
                             f"columns: {', '.join(present)}")
        for name in names:
            if option != "--ignore" and name in (target, ID_COLUMN):
                raise InputError(f"{option}: column {name!r} is the "
                                 f"{'target' if name == target else 'record id'} and cannot be a feature")
    both = sorted(set(categorical) & set(numeric))
    if both:
        raise InputError(f"column(s) {', '.join(repr(c) for c in both)} cannot be both --numeric and --categorical")
    dup = sorted({c for c in present if present.count(c) > 1})
    if dup:
        raise InputError(f"duplicate column(s) {', '.join(repr(c) for c in dup)}")
    num, cat = [], []
    for column in present:
        if column in (target, ID_COLUMN) or column in ignore:
            continue
        if column in numeric:
            num.append(column)
        elif column in categorical:
            cat.append(column)
        elif _looks_numeric(frame[column]):
            num.append(column)
        else:
            cat.append(column)
    if not num and not cat:
        raise InputError(f"no feature columns: every column is the target, the id or ignored "
                         f"({', '.join(present)})")
    return num, cat


def _looks_numeric(series: pd.Series) -> bool:
    if series.dtype.kind == "b":
        return False
    if series.dtype.kind in "iuf":
        return not series.isna().all()  # NaN / inf are refused later, by the feature step
    seen = False
    for value in pd.unique(series):
        if isinstance(value, str) and not value.strip():
            continue  # empty: no evidence either way
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if not is_number_text(value):
            return False
        seen = True
    return seen


def numeric_lookalikes(frame: pd.DataFrame, categorical: Iterable[str]) -> list[str]:
    """Notes on categorical columns most of whose distinct non-empty values are numbers: often a
    numeric column with a typo or a missing-value marker, which auto-detection turned categorical."""
    notes = []
    for column in categorical:
        series = frame[column]
        if series.dtype.kind != "O":
            continue
        values = [v for v in pd.unique(series) if not (isinstance(v, str) and not v.strip())]
        numbers_ = [is_number_text(v) for v in values]
        if len(values) >= 3 and sum(numbers_) >= 0.8 * len(values):
            first = next(v for v, ok in zip(values, numbers_) if not ok)
            row = plain_value(series.index[int(np.argmax((series == first).to_numpy()))])
            notes.append(f"column {column!r} is treated as categorical: row {row} holds {first!r}, "
                         f"not a number; fix the data, or pass --numeric {column} to have such values "
                         f"refused, or --categorical {column} to keep it so")
    return notes


_UNNAMED_RE = re.compile(r"^Unnamed: [0-9]+$")


def unnamed_column_notes(columns: Iterable[str]) -> list[str]:
    """Notes on feature columns that had no header in the CSV (pandas names them
    ``Unnamed: N``): usually a saved row index, which would be fitted as a feature."""
    return [f"column {c!r} has no name in the CSV header (often a saved row index); "
            f"pass --ignore '{c}' if it is not a feature" for c in columns if _UNNAMED_RE.match(str(c))]


def default_bounds(values) -> tuple[float, float]:
    """The declared ``[lower, upper]`` of a numeric column without domain knowledge:
    ``B = 2^ceil(log2(max|v| + 1)) · 16``; ``[0, B]`` if every value is ≥ 0, else ``[−B, B]``.

    So a column of ages up to 64 gets ``[0, 2048]``, a 0/1 flag ``[0, 32]`` and values in
    ``[−3.2, 7]`` get ``[−256, 256]``.
    """
    v = np.asarray(values, dtype=np.float64)
    if not v.size or not np.isfinite(v).all():
        raise InputError("bounds need finite values")
    m = float(np.abs(v).max())
    try:
        b = math.ldexp(float(BOUNDS_FACTOR), math.ceil(math.log2(m + 1.0)))
    except OverflowError:
        raise InputError(f"values up to {m:g} are too large to bound; declare bounds with --bounds") from None
    return (0.0, b) if float(v.min()) >= 0 else (-b, b)


def parse_bounds(items: Iterable[str]) -> dict[str, tuple[float, float]]:
    """``COL=LO:HI`` strings (``--bounds``) → ``{COL: (LO, HI)}``."""
    out = {}
    for item in items:
        column, eq, span = str(item).rpartition("=")
        lo_text, colon, hi_text = span.partition(":")
        if not eq or not column or not colon:
            raise InputError(f"--bounds {item!r}: expected COL=LO:HI, e.g. age=0:150")
        try:
            lo, hi = parse_number(lo_text), parse_number(hi_text)
        except (Unparseable, ValueError, OverflowError):
            raise InputError(f"--bounds {item!r}: LO and HI must be finite numbers") from None
        if lo > hi:
            raise InputError(f"--bounds {item!r}: LO must be at most HI")
        if column in out:
            raise InputError(f"--bounds: column {column!r} given twice")
        out[column] = (lo, hi)
    return out
