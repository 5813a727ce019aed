"""How predictions are shown: the readable lines ``CustomerDecrypts.py`` prints and the portal
shows (``0: Price = 62,996.92``), and the CSV text of predictions (full precision, quoted where
needed)."""
from __future__ import annotations

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


def csv_value(value) -> str:
    """A prediction's CSV text: a float at full precision (``repr`` reads back as the same
    double), a class label as text."""
    return repr(value) if isinstance(value, float) else csv_field(value)


def csv_field(value) -> str:
    text = str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
