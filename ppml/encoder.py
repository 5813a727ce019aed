"""The customer's transformer (``col_tnf.pkl``): raw records → the model's feature vector.

Training fits a scikit-learn ``ColumnTransformer``; this module compiles the fitted one into a
small numpy object with the same output, bit for bit (same float operations in the same
order). That object is what ``col_tnf.pkl`` holds: loading it imports neither scikit-learn nor
SciPy (about a second saved on every encryption run), and the restricted unpickler only has
to admit a handful of ppml and numpy names. It carries category lists, column order and
scaling constants — never weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np



@dataclass
class OneHotBlock:
    """One categorical column: ``index[value]`` is its output column, ``unknown`` the column
    of values not seen in training (the infrequent group), or -1 for none."""

    column: str
    index: dict
    unknown: int
    width: int


@dataclass
class ScaleBlock:
    """Numeric columns, standardised as ``(x − mean) / scale`` (``None`` skips a step)."""

    columns: list
    mean: np.ndarray | None
    scale: np.ndarray | None


@dataclass
class CompiledColumns:
    blocks: list
    names: list

    def get_feature_names_out(self):
        return np.asarray(self.names, dtype=object)

    def transform(self, frame) -> np.ndarray:
        parts = []
        for block in self.blocks:
            if isinstance(block, OneHotBlock):
                values = frame[block.column].to_numpy(dtype=object)
                cols = np.fromiter((block.index.get(v, block.unknown) for v in values), dtype=np.int64,
                                   count=len(values))
                out = np.zeros((len(values), block.width), dtype=np.float64)
                hit = cols >= 0
                out[np.nonzero(hit)[0], cols[hit]] = 1.0
                parts.append(out)
            else:
                x = frame[block.columns].to_numpy(dtype=np.float64, copy=True)
                if block.mean is not None:
                    x -= block.mean
                if block.scale is not None:
                    x /= block.scale
                parts.append(x)
        return np.hstack(parts) if parts else np.empty((len(frame), 0))

    @classmethod
    def from_sklearn(cls, ct) -> "CompiledColumns":
        """Compile a fitted ColumnTransformer of OneHotEncoder / StandardScaler / passthrough
        parts. One-hot maps are read off the fitted encoder by transforming each category (and
        an unseen value), so infrequent groups and unknown handling match it exactly."""
        import pandas as pd
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        blocks = []
        for name, transformer, cols in ct.transformers_:
            if transformer == "drop" or (name == "remainder" and not len(cols)):
                continue
            if isinstance(transformer, OneHotEncoder):
                if len(cols) != 1:
                    raise TypeError("compile needs one OneHotEncoder per categorical column")
                col = cols[0]
                categories = list(transformer.categories_[0])
                # Read the map off the fitted encoder: each category, then a value never seen.
                out = np.asarray(transformer.transform(pd.DataFrame({col: categories + ["\x00unseen"]})))
                index = {cat: _hot(row) for cat, row in zip(categories, out[:-1])}
                blocks.append(OneHotBlock(col, index, _hot(out[-1]), out.shape[1]))
            elif isinstance(transformer, StandardScaler):
                blocks.append(ScaleBlock(list(cols),
                                         None if transformer.mean_ is None else np.array(transformer.mean_),
                                         None if transformer.scale_ is None else np.array(transformer.scale_)))
            elif transformer == "passthrough":
                blocks.append(ScaleBlock(list(cols), None, None))
            else:
                raise TypeError(f"cannot compile transformer {type(transformer).__name__}")
        return cls(blocks, [str(n) for n in ct.get_feature_names_out()])


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
            return [c for b in self.columns.blocks for c in ([b.column] if isinstance(b, OneHotBlock) else b.columns)]
        from .features import RAW_COLUMNS, engineer_features

        if self.features is engineer_features:
            return list(RAW_COLUMNS)
        return list(self.features.columns)

    @property
    def feature_names(self) -> list:
        return list(self.columns.names)

    @classmethod
    def from_pipeline(cls, pipeline) -> "CustomerTransform":
        steps = dict(pipeline.named_steps)
        features = steps.get("features")
        func = getattr(features, "func", None) if features is not None and features != "passthrough" else None
        return cls(func, CompiledColumns.from_sklearn(steps["columns"]))
