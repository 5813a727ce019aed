"""Fixed-point, packed encoding of feature vectors and linear-model weights.

One scale for everything: features ``X = round(x·2^Fx)``, weights ``W = round(w·2^Fw)``,
intercept ``B = round(b·2^(Fx+Fw))``; a prediction is ``(Σ W·X + B) / 2^(Fx+Fw)``.

Packing: feature ``i`` of ``m`` records goes into one plaintext ``P_i = Σ_j X_ij·2^(k·j)``.
The server's ``Σ_i W_i·P_i + Σ_j (B + Δ)·2^(k·j)`` (with ``Δ = 2^(k−1)``) then holds, in slot
``j``, ``S_j = Σ_i W_i·X_ij + B + Δ``. :func:`design_codec` picks ``k`` from the model's
declared feature bounds and its integer weights so that ``|Σ W·X + B| < Δ`` for every record
inside the bounds; hence every ``S_j`` lies in ``[1, 2^k)``, slots never carry into each other
and ``m·k < |n|`` keeps the whole sum below ``n``. The algebra is exact over the integers, so
negative features and weights need no special care.

Pure integer/float code: no keys, no I/O.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..errors import AnswerMismatchError, DocumentError, EncodingRangeError
from ..validation import shown

#: Default worst-case bound on |decoded − float model output| (1.2e-10): 8.6× inside the 1e-9
#: the product promises, while keeping slots narrow (every bit of Fx or Fw widens each slot,
#: and slot width sets how many records share a ciphertext).
DEFAULT_TOLERANCE = 2.0 ** -33


@dataclass(frozen=True)
class FixedPointCodec:
    """Scales and slot width shared by customer and server (they are in every document)."""

    feature_bits: int  # Fx
    weight_bits: int  # Fw
    slot_bits: int  # k

    def __post_init__(self):
        for name in ("feature_bits", "weight_bits", "slot_bits"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 4096:
                raise DocumentError(f"codec {name} must be an integer in [0, 4096], got {shown(v)}")
        if self.slot_bits < 2:
            raise DocumentError(f"codec slot_bits must be at least 2, got {self.slot_bits}")

    @property
    def offset(self) -> int:
        """Δ = 2^(k−1): added to every slot so it stays non-negative."""
        return 1 << (self.slot_bits - 1)

    def slots_for(self, key_bits: int) -> int:
        """How many records fit one plaintext below an ``key_bits``-bit ``n`` (``m·k ≤ |n| − 1``)."""
        m = (key_bits - 1) // self.slot_bits
        if m < 1:
            raise EncodingRangeError(
                f"a {key_bits}-bit key cannot hold one {self.slot_bits}-bit slot; use a larger key"
            )
        return m

    # -- features -------------------------------------------------------------------------
    def encode_features(self, x, lower, upper,
                        names: Sequence[str], ids: Sequence | None = None) -> list[list[int]]:
        """Fixed-point integers of a (records × features) float array, after checking that every
        value is finite and inside the model's declared bounds (an out-of-range value would
        overflow its slot and decrypt to a silently wrong prediction)."""
        import numpy as np  # here, not at import: the server never encodes features

        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise EncodingRangeError(f"expected {len(names)} features per record, got shape {x.shape}")
        bad = ~np.isfinite(x) | (x < lower) | (x > upper)
        if bad.any():
            r, c = map(int, np.argwhere(bad)[0])
            rid = ids[r] if ids is not None else r
            raise EncodingRangeError(
                f"record {rid}: feature {names[c]!r} = {float(x[r, c])!r} is outside the model's declared "
                f"range [{float(lower[c])!r}, {float(upper[c])!r}]"
            )
        with np.errstate(over="ignore"):
            scaled = np.rint(np.ldexp(x, self.feature_bits))
        if not np.isfinite(scaled).all():  # bounds so wide that 2^Fx·x is beyond any float
            r, c = map(int, np.argwhere(~np.isfinite(scaled))[0])
            raise EncodingRangeError(f"record {ids[r] if ids is not None else r}: feature {names[c]!r} = "
                                     f"{float(x[r, c])!r} is too large for the codec's fixed-point scale")
        if np.abs(scaled).max(initial=0.0) < 2.0 ** 62:
            return scaled.astype(np.int64).tolist()
        return [[int(v) for v in row] for row in scaled]

    def encode_bound(self, value: float) -> int:
        return int(round(math.ldexp(value, self.feature_bits)))

    # -- model ----------------------------------------------------------------------------
    def encode_weights(self, weights: Sequence[float]) -> list[int]:
        return [int(round(math.ldexp(float(w), self.weight_bits))) for w in weights]

    def encode_intercept(self, intercept: float) -> int:
        return int(round(math.ldexp(float(intercept), self.feature_bits + self.weight_bits)))

    # -- packing --------------------------------------------------------------------------
    def pack(self, values: Sequence[int]) -> int:
        """``Σ_j v_j·2^(k·j)`` (may be negative; the caller reduces it modulo n)."""
        k = self.slot_bits
        total = 0
        for j in range(len(values) - 1, -1, -1):
            total = (total << k) + int(values[j])
        return total

    def pack_offset(self, intercept_int: int, m: int) -> int:
        """The plaintext the server adds: ``B + Δ`` in each of ``m`` slots."""
        return self.pack([intercept_int + self.offset] * m)

    @property
    def reach(self) -> int:
        """The largest ``|Σ W·X + B|`` the model can reach over its declared bounds, as its slot
        width declares it: ``Δ − 1 = 2^(k−1) − 1``. The server proves at load that its weights
        stay within it (``ModelParameters.check_slot_width``); the customer refuses any slot
        beyond it (:meth:`unpack`)."""
        return self.offset - 1

    def unpack(self, total: int, m: int) -> list[int]:
        """The ``m`` signed sums ``Σ W·X + B`` held in the declared slots of ``total``.

        Only the declared slots are read: the bits above them carry the server's random mask.
        A sum beyond :attr:`reach` (a slot of 0, i.e. ``−Δ``) is one no record inside the
        declared bounds can give: refused with an :class:`AnswerMismatchError` whose ``slot``
        attribute says which slot."""
        k, mask, off = self.slot_bits, (1 << self.slot_bits) - 1, self.offset
        total = int(total)
        sums = [((total >> (k * j)) & mask) - off for j in range(m)]
        for j, s in enumerate(sums):
            if abs(s) > self.reach:
                error = AnswerMismatchError(f"decodes outside the range the model can reach over its declared "
                                            f"bounds (|Σ W·X + B| ≤ 2^{k - 1} − 1 with Model.json's {k}-bit slots)")
                error.slot = j
                raise error
        return sums

    def decode(self, s: int) -> float:
        """A signed slot sum back to the model's output, correctly rounded to float."""
        try:
            return float(_fraction_to_float(int(s), self.feature_bits + self.weight_bits))
        except OverflowError:  # only a wrong codec or a garbage ciphertext gets here
            raise EncodingRangeError("decrypted value is beyond the range of a float "
                                     "(wrong key, model or codec)") from None

    def slot_bound(self, weights_int: Sequence[int], intercept_int: int, lower, upper) -> int:
        """The largest ``|Σ W·X + B|`` any record inside the declared box can give: the slot
        width must make it ``< Δ``, so every slot ``Σ W·X + B + Δ`` lies in ``[1, 2^k)``."""
        try:
            return abs(intercept_int) + sum(
                max(abs(w * self.encode_bound(lo)), abs(w * self.encode_bound(hi)))
                for w, lo, hi in zip(weights_int, lower, upper))
        except OverflowError:  # e.g. a bound of 1e300 scaled by 2^Fx is beyond any float
            raise DocumentError("the weights or bounds are too large for the codec's fixed-point scale") from None

    def to_dict(self) -> dict:
        return {"feature_bits": self.feature_bits, "weight_bits": self.weight_bits,
                "slot_bits": self.slot_bits}

    @classmethod
    def from_dict(cls, d) -> "FixedPointCodec":
        if not isinstance(d, dict):
            raise DocumentError("codec must be an object with feature_bits, weight_bits, slot_bits")
        try:
            return cls(d["feature_bits"], d["weight_bits"], d["slot_bits"])
        except KeyError as e:
            raise DocumentError(f"codec lacks {e.args[0]!r}") from None


def _fraction_to_float(numerator: int, shift: int) -> float:
    # int/int true division in Python is correctly rounded.
    return numerator / (1 << shift)


def design_codec(lower: Sequence[float], upper: Sequence[float], weights: Sequence[float],
                 intercept: float, tolerance: float = DEFAULT_TOLERANCE) -> FixedPointCodec:
    """The smallest scales whose worst-case rounding error over the declared feature box is at
    most ``tolerance``, and the slot width that keeps every packed slot in range.

    Error of the integer computation against the exact real ``w·x + b`` (|e|,|f|,|g| ≤ ½):
    ``Σ(|w_i|·2^−(Fx+1) + |x_i|·2^−(Fw+1) + 2^−(Fx+Fw+2)) + 2^−(Fx+Fw+1)``.
    ``Fx`` bounds the first term by tolerance/2, ``Fw`` the second; the rest is checked exactly.
    """
    import numpy as np

    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if not (lower.shape == upper.shape == w.shape) or w.ndim != 1:
        raise EncodingRangeError("bounds and weights must be vectors of the same length")
    if not (np.isfinite(lower).all() and np.isfinite(upper).all() and np.isfinite(w).all()
            and math.isfinite(intercept)):
        raise EncodingRangeError("bounds, weights and intercept must be finite")
    if (lower > upper).any():
        raise EncodingRangeError("every lower bound must be at most its upper bound")
    fx = max(0, math.ceil(math.log2(max(float(np.abs(w).sum()), tolerance) / tolerance)))
    fw = max(0, math.ceil(math.log2(max(float(np.maximum(np.abs(lower), np.abs(upper)).sum()), tolerance) / tolerance)))
    while error_bound(fx, fw, lower, upper, w) > tolerance:
        fx, fw = fx + 1, fw + 1
    probe = FixedPointCodec(fx, fw, 2)
    bound = probe.slot_bound(probe.encode_weights(w), probe.encode_intercept(intercept), lower, upper)
    # |Σ W·X + B| ≤ bound < 2^(k−1) = Δ  ⇒  every slot S = Σ W·X + B + Δ lies in [1, 2^k).
    return FixedPointCodec(fx, fw, max(2, bound.bit_length() + 1))


def error_bound(fx: int, fw: int, lower, upper, weights) -> float:
    """The worst-case ``|decoded − w·x − b|`` over the declared box for scales ``Fx``, ``Fw``
    (rounding errors ``|e|, |f|, |g| ≤ ½`` of features, weights and intercept):
    ``Σ(|w_i|·2^−(Fx+1) + |x_i|·2^−(Fw+1) + 2^−(Fx+Fw+2)) + 2^−(Fx+Fw+1)``."""
    import numpy as np

    sum_w = float(np.abs(np.asarray(weights, dtype=np.float64)).sum())
    sum_x = float(np.maximum(np.abs(np.asarray(lower, dtype=np.float64)),
                             np.abs(np.asarray(upper, dtype=np.float64))).sum())
    return sum_w * 2.0 ** -(fx + 1) + sum_x * 2.0 ** -(fw + 1) + (len(weights) + 2) * 2.0 ** -(fx + fw + 1)


def max_abs_error(codec: FixedPointCodec, lower, upper, weights) -> float:
    """The worst-case decode error that :func:`design_codec` guarantees, for reports."""
    return error_bound(codec.feature_bits, codec.weight_bits, lower, upper, weights)
