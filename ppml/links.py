"""What the customer applies to the decrypted model outputs: the link.

The server computes only ``W·x + b`` (one row of ``W`` per output). Whatever scikit-learn does
after its linear step, the customer does after decryption, with the same float64 operations in
the same order, so that decisions equal to within the codec's error (≤ 2⁻³³) give
``predict_proba`` to within 1e-9 and ``predict`` exactly (unless two classes' decisions tie to
within that error):

* :class:`TargetLink` — regression: the inverse of a ``TransformedTargetRegressor``'s target
  transform (a numpy ufunc such as ``np.exp``, or a scaler's inverse), or nothing.
* :class:`ClassLink` — classification: the class label (``classes[decision > 0]`` for one
  output, ``classes[argmax]`` for several, as ``LinearClassifierMixin.predict``) and, for a
  probabilistic model, the probabilities: ``logistic`` (``expit``, then ``[1 − p, p]`` for
  one output or the one-vs-rest normalisation), ``softmax`` (of ``[−d, d]`` for one output, as
  a binary multinomial ``LogisticRegression``) or ``modified_huber`` (``SGDClassifier``).

numpy only: decryption needs neither scikit-learn nor SciPy. Both links describe themselves as
JSON (``to_dict``) for the model description.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Element-wise steps of a target link, in order: ``(op, values)``; ``values`` is a list with one
#: number per output for the arithmetic ops, the ufunc's name for ``func``.
TARGET_OPS = ("add", "sub", "mul", "div", "func")
PROBABILITIES = ("logistic", "softmax", "modified_huber")


@dataclass(frozen=True)
class TargetLink:
    """Regression: ``steps`` applied to the ``(records × outputs)`` decisions; ``single`` for an
    estimator fitted on a 1-D target (its ``predict`` gives a vector)."""

    steps: tuple = ()
    single: bool = True

    def __post_init__(self):
        for op, values in self.steps:
            if op not in TARGET_OPS:
                raise ValueError(f"unknown target link step {op!r}")
            if op == "func" and not isinstance(getattr(np, str(values), None), np.ufunc):
                raise ValueError(f"{values!r} is not a numpy ufunc")

    def predict(self, decision) -> np.ndarray:
        y = np.array(decision, dtype=np.float64, ndmin=2)
        for op, values in self.steps:
            if op == "func":
                y = getattr(np, values)(y)
            else:
                v = np.asarray(values, dtype=np.float64)
                if op == "add":
                    y += v
                elif op == "sub":
                    y -= v
                elif op == "mul":
                    y *= v
                else:
                    y /= v
        return y[:, 0] if self.single else y

    def predict_proba(self, decision):
        return None

    def to_dict(self) -> dict:
        return {"kind": "target", "single": self.single,
                "steps": [[op, values if op == "func" else [float(v) for v in values]] for op, values in self.steps]}


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

    def predict(self, decision) -> np.ndarray:
        d = np.array(decision, dtype=np.float64, ndmin=2)
        indices = (d[:, 0] > 0).astype(np.intp) if d.shape[1] == 1 else np.argmax(d, axis=1)
        return np.asarray(self.classes, dtype=object if _mixed(self.classes) else None)[indices]

    def predict_proba(self, decision) -> np.ndarray | None:
        if self.probability is None:
            return None
        d = np.array(decision, dtype=np.float64, ndmin=2)
        binary = d.shape[1] == 1
        if self.probability == "logistic":  # LinearClassifierMixin._predict_proba_lr
            prob = 1.0 / (1.0 + np.exp(-d))  # scipy.special.expit
            if binary:
                return np.vstack([1 - prob[:, 0], prob[:, 0]]).T
            prob /= prob.sum(axis=1).reshape((prob.shape[0], -1))
            return prob
        if self.probability == "softmax":  # sklearn.utils.extmath.softmax
            x = np.c_[-d[:, 0], d[:, 0]] if binary else d
            x -= x.max(axis=1).reshape((-1, 1))
            np.exp(x, out=x)
            x /= x.sum(axis=1).reshape((-1, 1))
            return x
        # modified_huber: SGDClassifier.predict_proba
        if binary:
            prob2 = np.ones((d.shape[0], 2))
            prob = prob2[:, 1]
            np.clip(d[:, 0], -1, 1, prob)
        else:
            prob = np.clip(d, -1, 1)
        prob += 1.0
        prob /= 2.0
        if binary:
            prob2[:, 0] -= prob
            return prob2
        prob_sum = prob.sum(axis=1)
        all_zero = prob_sum == 0
        prob[all_zero, :] = 1
        prob_sum[all_zero] = len(self.classes)
        prob /= prob_sum.reshape((prob.shape[0], -1))
        return prob

    def to_dict(self) -> dict:
        return {"kind": "class", "classes": list(self.classes), "probability": self.probability}


def _mixed(classes) -> bool:
    """Labels numpy would coerce to one type (``[1, "a"]`` → strings) are kept as objects."""
    return len({type(c) for c in classes}) > 1
