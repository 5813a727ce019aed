"""The customer's target functions agree with the numpy ufuncs scikit-learn applied, on every
supported Python (``math.exp2`` and ``math.cbrt`` exist only from 3.11)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ppml.links import FUNCS

VALUES = [-1074.5, -700.25, -27.0, -3.3, -1e-300, 0.0, 1e-12, 0.5, 1.0, 8.0, 10.25, 123.456, 1023.9]


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_every_function_agrees_with_numpy(name):
    ufunc = getattr(np, name)
    for value in VALUES:
        with np.errstate(all="ignore"):
            expected = float(ufunc(np.float64(value)))
        if math.isnan(expected) or math.isinf(expected):
            continue  # outside the function's domain: the link refuses such an output
        got = FUNCS[name](value)
        assert got == pytest.approx(expected, rel=1e-13, abs=1e-300), (name, value)


def test_cube_root_of_a_negative_value_is_negative_and_exp2_overflows_as_exp_does():
    assert FUNCS["cbrt"](-27.0) == pytest.approx(-3.0, rel=1e-15)
    with pytest.raises(OverflowError):
        FUNCS["exp2"](1024.5)
