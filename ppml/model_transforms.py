"""Target transforms shared by training and decryption (kept apart so decryption needs no sklearn)."""
from __future__ import annotations

import math

from .errors import DocumentError


def apply_transform(values, transform: str) -> list[float]:
    """Model output → the target's own units (exp for a log-trained target)."""
    if transform == "log":
        try:
            return [math.exp(v) for v in values]
        except OverflowError:
            raise DocumentError("a decrypted log-prediction is too large to exponentiate "
                                "(the answer's codec or ciphertexts were altered)") from None
    if transform == "identity":
        return [float(v) for v in values]
    raise ValueError(f"unknown target transform {transform!r}")
