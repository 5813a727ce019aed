"""How predictions are shown: the readable lines ``CustomerDecrypts.py`` prints and the portal
shows (``0: Price = 62,996.92``), and the CSV text of predictions (full precision, quoted where
needed, text that a spreadsheet would take for a formula neutralized)."""
from __future__ import annotations

import re

from .documents import ModelSpec


def readable(value: float) -> str:
    """How a prediction is shown to a person (``CustomerDecrypts.py``'s lines, the portal):
    prices and salaries as 62,996.92; small values with six significant digits, not 0.00."""
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.6g}"


def prediction_text(spec: ModelSpec, prediction: tuple) -> str:
    """A record's prediction as a person reads it: ``Price = 62,996.92``; ``y_0 = 1.5, y_1 =
    2.25`` for several outputs; ``class = setosa (p = 0.973)`` (the label's probability, if the
    model has probabilities)."""
    from .links import ClassLink

    if isinstance(spec.link, ClassLink):
        label, *proba = prediction
        shown = f"class = {label}"
        return shown + f" (p = {proba[spec.link.classes.index(label)]:.3f})" if proba else shown
    return ", ".join(f"{name} = {readable(value)}" for name, value in zip(spec.outputs, prediction))


#: First characters that make a spreadsheet take a text cell for a formula (OWASP's CSV
#: injection list): such a cell is written with a leading ``'``.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Text that is a plain decimal number: a spreadsheet reads it as that number, never a formula.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def csv_field(value) -> str:
    """One CSV cell, as every CSV this toolkit writes holds it: a number as itself (a float at
    full precision, ``repr`` reads back as the same double; a negative one stays a number); text
    — an id, a class label, a column name — with a leading ``'`` when it begins with ``=``,
    ``+``, ``-``, ``@``, a tab or CR and is not a plain decimal number, so that no cell is ever
    a live formula (``=HYPERLINK(…)`` in an id); quoted when it holds ``,``, ``"`` or a line
    break."""
    if isinstance(value, float):
        return repr(float(value))  # numpy's float64 is a float whose own repr names its type
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not _DECIMAL.fullmatch(text):
        text = "'" + text
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
