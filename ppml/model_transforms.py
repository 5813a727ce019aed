"""Target transforms shared by training and decryption (kept apart so decryption needs no sklearn)."""
from __future__ import annotations

import math


def apply_transform(values, transform: str) -> list[float]:
    """Model output → the target's own units (exp for a log-trained target)."""
    if transform == "log":
        return [math.exp(v) for v in values]
    if transform == "identity":
        return [float(v) for v in values]
    raise ValueError(f"unknown target transform {transform!r}")
