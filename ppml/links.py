"""What the customer applies to the decrypted model outputs: the link.

The server computes only ``W·x + b`` (one row of ``W`` per output). Whatever scikit-learn does
after its linear step, the customer does after decryption, with the same float64 operations in
the same order, so that decisions equal to within the codec's error (≤ 2⁻³³) give
``predict_proba`` to within 1e-9 and ``predict`` exactly (unless two classes' decisions tie to
within that error):

* :class:`TargetLink` — regression: the inverse of a ``TransformedTargetRegressor``'s target
  transform (one of :data:`FUNCS`, such as ``np.exp``, or a scaler's inverse), or nothing.
* :class:`ClassLink` — classification: the class label (``classes[decision > 0]`` for one
  output, ``classes[argmax]`` for several, as ``LinearClassifierMixin.predict``) and, for a
  probabilistic model, the probabilities: ``logistic`` (``expit``, then ``[1 − p, p]`` for
  one output or the one-vs-rest normalisation), ``softmax`` (of ``[−d, d]`` for one output, as
  a binary multinomial ``LogisticRegression``) or ``modified_huber`` (``SGDClassifier``).

Plain Python floats, one record at a time: decryption imports neither numpy, pandas nor
scikit-learn for any model (IEEE float64 arithmetic is the same in Python and numpy; ``math``'s
exponentials may differ from numpy's in the last bit, far inside 1e-9). Both links are part of
``Model.json`` (:meth:`to_dict`, parsed and checked by :func:`link_from_dict`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Sequence

from .errors import DocumentError
from .validation import shown

#: Element-wise steps of a target link, in order: ``(op, values)``; ``values`` is a list with one
#: number per output for the arithmetic ops, the function's name for ``func``.
TARGET_OPS = ("add", "sub", "mul", "div", "func")


def _exp2(value: float) -> float:
    """``2 ** value``: ``math.exp2`` is Python 3.11+; ``pow`` agrees with it to the last bit or
    two, far inside 1e-9, and overflows the same way."""
    return 2.0 ** value


def _cbrt(value: float) -> float:
    """The real cube root (negative for a negative value): ``math.cbrt`` is Python 3.11+."""
    return math.copysign(abs(value) ** (1.0 / 3.0), value)


#: The numpy ufuncs a target link may apply (by name), as the customer computes them.
FUNCS = {
    "exp": math.exp, "expm1": math.expm1, "exp2": _exp2, "log": math.log, "log1p": math.log1p,
    "log2": math.log2, "log10": math.log10, "sqrt": math.sqrt, "square": lambda v: v * v, "cbrt": _cbrt,
}
PROBABILITIES = ("logistic", "softmax", "modified_huber")


@dataclass(frozen=True)
class TargetLink:
    """Regression: ``steps`` applied to each record's outputs."""

    steps: tuple = ()

    def __post_init__(self):
        for op, values in self.steps:
            if op not in TARGET_OPS:
                raise ValueError(f"unknown target link step {op!r}")
            if op == "func" and values not in FUNCS:
                raise ValueError(f"{values!r} is not one of the functions {', '.join(FUNCS)}")

    def apply(self, decision: Sequence[float]) -> list[float]:
        """One record's predictions from its decrypted outputs."""
        y = [float(v) for v in decision]
        for op, values in self.steps:
            if op == "func":
                y = [_call(values, v) for v in y]
            elif op == "add":
                y = [a + b for a, b in zip(y, values)]
            elif op == "sub":
                y = [a - b for a, b in zip(y, values)]
            elif op == "mul":
                y = [a * b for a, b in zip(y, values)]
            else:
                y = [a / b for a, b in zip(y, values)]
        return y

    def to_dict(self) -> dict:
        return {"kind": "target",
                "steps": [[op, values if op == "func" else [float(v) for v in values]] for op, values in self.steps]}


def _call(name: str, value: float) -> float:
    try:
        return FUNCS[name](value)
    except (OverflowError, ValueError):
        raise DocumentError(f"a decrypted model output ({value!r}) is outside what {name} can take "
                            "(the answer's codec or ciphertexts were altered)") from None


@dataclass(frozen=True)
class ClassLink:
    """Classification over ``classes`` (``estimator.classes_``, as Python scalars);
    ``probability`` is one of :data:`PROBABILITIES`, or None for a model that only predicts
    classes. One decision column means two classes (the positive one is ``classes[1]``)."""

    classes: tuple
    probability: str | None = None

    def __post_init__(self):
        if self.probability is not None and self.probability not in PROBABILITIES:
            raise ValueError(f"unknown probability link {self.probability!r}")

    def index(self, decision: Sequence[float]) -> int:
        """The predicted class's index (the first of equal maxima, as ``np.argmax``)."""
        if len(decision) == 1:
            return int(decision[0] > 0)
        return max(range(len(decision)), key=lambda i: (decision[i], -i))

    def label(self, decision: Sequence[float]):
        return self.classes[self.index(decision)]

    def proba(self, decision: Sequence[float]) -> list[float] | None:
        """``predict_proba`` of one record, or None for a model without probabilities."""
        if self.probability is None:
            return None
        d = [float(v) for v in decision]
        binary = len(d) == 1
        if self.probability == "logistic":  # LinearClassifierMixin._predict_proba_lr
            prob = [_expit(v) for v in d]
            if binary:
                return [1 - prob[0], prob[0]]
            total = sum(prob)
            return [p / total for p in prob]
        if self.probability == "softmax":  # sklearn.utils.extmath.softmax
            x = [-d[0], d[0]] if binary else d
            top = max(x)
            e = [math.exp(v - top) for v in x]
            total = sum(e)
            return [v / total for v in e]
        # modified_huber: SGDClassifier.predict_proba
        prob = [(min(1.0, max(-1.0, v)) + 1.0) / 2.0 for v in d]
        if binary:
            return [1.0 - prob[0], prob[0]]
        total = sum(prob)
        if total == 0:
            return [1.0 / len(self.classes)] * len(self.classes)
        return [p / total for p in prob]

    def to_dict(self) -> dict:
        return {"kind": "class", "classes": list(self.classes), "probability": self.probability}


def _expit(v: float) -> float:
    """``scipy.special.expit``: ``1 / (1 + exp(−v))``, 0 where ``exp(−v)`` overflows."""
    try:
        return 1.0 / (1.0 + math.exp(-v))
    except OverflowError:
        return 0.0


def link_from_dict(d, outputs: int) -> TargetLink | ClassLink:
    """``Model.json``'s ``link`` for a model of ``outputs`` outputs, checked: a target link's
    arithmetic has one finite non-zero-divisor value per output; a class link has distinct
    labels (text, booleans or finite numbers), one output for two classes or one per class."""
    if not isinstance(d, dict) or d.get("kind") not in ("target", "class"):
        raise DocumentError("field 'link' must be an object of kind 'target' or 'class'")
    if d["kind"] == "target":
        steps = d.get("steps")
        if not isinstance(steps, list) or not all(isinstance(s, list) and len(s) == 2 for s in steps):
            raise DocumentError("link steps must be a list of [operation, values] pairs")
        parsed = []
        for op, values in steps:
            if op == "func":
                if values not in FUNCS:
                    raise DocumentError(f"link function {shown(values)} is not one of {', '.join(FUNCS)}")
                parsed.append((op, values))
                continue
            if op not in TARGET_OPS or not isinstance(values, list) or len(values) != outputs or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                raise DocumentError(f"link step {shown(op)} must be one of {', '.join(TARGET_OPS)} with "
                                    f"{outputs} finite number(s)")
            if op == "div" and 0 in values:
                raise DocumentError("link step 'div' divides by zero")
            parsed.append((op, [float(v) for v in values]))
        return TargetLink(tuple(parsed))
    classes, probability = d.get("classes"), d.get("probability")
    if not isinstance(classes, list) or len(classes) < 2 or not all(_label(c) for c in classes) \
            or len({str(c) for c in classes}) != len(classes):
        raise DocumentError("link classes must be a list of at least two distinct labels (text, booleans or numbers)")
    if outputs != (1 if len(classes) == 2 else len(classes)):
        raise DocumentError(f"{len(classes)} classes need {1 if len(classes) == 2 else len(classes)} "
                            f"output(s), the model has {outputs}")
    if probability is not None and probability not in PROBABILITIES:
        raise DocumentError(f"link probability must be one of {', '.join(PROBABILITIES)} or null")
    return ClassLink(tuple(classes), probability)


def _label(c) -> bool:
    """Text that can be written out again (JSON may hold lone surrogates, UTF-8 cannot), a
    boolean, an integer or a finite number."""
    if isinstance(c, str):
        try:
            c.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return bool(c)
    return isinstance(c, (bool, int)) or isinstance(c, float) and math.isfinite(c)
