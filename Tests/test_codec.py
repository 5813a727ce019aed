"""The packed fixed-point codec: exact integer algebra, bounds, scales (no keys needed)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppml.errors import AnswerMismatchError, DocumentError, EncodingRangeError
from ppml.paillier.codec import FixedPointCodec, design_codec, max_abs_error


def _scored_total(codec, W, B, X_rows, n=None):
    """What the server's homomorphic sum decrypts to, computed in the clear (mod n if given)."""
    m = len(X_rows)
    packed = [codec.pack([row[i] for row in X_rows]) for i in range(len(W))]
    total = sum(w * p for w, p in zip(W, packed)) + codec.pack_offset(B, m)
    return total % n if n else total


bounds = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False)


@st.composite
def models(draw):
    d = draw(st.integers(1, 12))
    pairs = [sorted((draw(bounds), draw(bounds))) for _ in range(d)]
    lower = np.array([p[0] for p in pairs])
    upper = np.array([p[1] for p in pairs])
    w = np.array(draw(st.lists(st.floats(-100, 100, allow_nan=False), min_size=d, max_size=d)))
    b = draw(st.floats(-1e3, 1e3, allow_nan=False))
    return lower, upper, w, b


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=models(), data=st.data(), key_bits=st.sampled_from([1024, 2048, 3072]))
def test_packed_slots_decode_to_exact_integer_dot_products(model, data, key_bits):
    lower, upper, w, b = model
    codec = design_codec(lower, upper, w, b)
    m_max = codec.slots_for(key_bits)
    m = data.draw(st.integers(1, m_max))
    # Features anywhere in the box, including exactly at the bounds.
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    kind = rng.integers(0, 3, size=(m, len(w)))  # 0: at lower, 1: at upper, 2: inside
    x = np.where(kind == 0, lower, np.where(kind == 1, upper, lower + (upper - lower) * rng.random((m, len(w)))))
    x = np.clip(x, lower, upper)
    names = [f"f{i}" for i in range(len(w))]
    X = codec.encode_features(x, lower, upper, names)
    W, B = codec.encode_weights(w), codec.encode_intercept(b)
    total = _scored_total(codec, W, B, X)
    # The packed plaintext fits below any n of key_bits bits: nothing wraps.
    assert 0 <= total < 2 ** (key_bits - 1)
    assert codec.unpack(total, m) == [sum(Wi * Xi for Wi, Xi in zip(W, row)) + B for row in X]
    # …and decodes to the float model within the proven bound.
    bound = max_abs_error(codec, lower, upper, w)
    for s, row in zip(codec.unpack(total, m), x):
        exact = sum(Fraction(a) * Fraction(c) for a, c in zip(w, row)) + Fraction(b)
        # decode() rounds once to float: allow half an ulp on top of the proven bound.
        assert abs(Fraction(codec.decode(s)) - exact) <= Fraction(bound) + Fraction(math.ulp(float(exact)))


def test_negative_packed_values_wrap_modulo_n_and_still_decode():
    codec = design_codec([-5.0, -5.0], [5.0, 5.0], [-2.0, 3.0], -1.0)
    n = (1 << 1023) + 12345  # any odd n larger than the slots
    x = np.array([[-5.0, 5.0], [5.0, -5.0], [0.0, 0.0]])
    X = codec.encode_features(x, np.array([-5.0, -5.0]), np.array([5.0, 5.0]), ["a", "b"])
    W, B = codec.encode_weights([-2.0, 3.0]), codec.encode_intercept(-1.0)
    total = _scored_total(codec, W, B, X, n)
    assert [codec.decode(s) for s in codec.unpack(total, 3)] == [24.0, -26.0, -1.0]


def test_out_of_range_feature_is_refused_with_record_and_feature():
    codec = FixedPointCodec(10, 10, 40)
    x = np.array([[0.5, 2.5]])
    with pytest.raises(EncodingRangeError) as e:
        codec.encode_features(x, np.array([0.0, 0.0]), np.array([1.0, 2.0]), ["ips", "ppi"], ids=["r7"])
    assert str(e.value) == "record r7: feature 'ppi' = 2.5 is outside the model's declared range [0.0, 2.0]"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_feature_is_refused(bad):
    codec = FixedPointCodec(10, 10, 40)
    with pytest.raises(EncodingRangeError, match="feature 'a' = "):
        codec.encode_features(np.array([[bad]]), np.array([-1.0]), np.array([1.0]), ["a"])


def test_scales_meet_the_tolerance_and_grow_with_it():
    lower, upper, w = [-3.0, 0.0], [800.0, 1.0], [0.4, -0.2]
    coarse = design_codec(lower, upper, w, 10.0, tolerance=2.0 ** -20)
    fine = design_codec(lower, upper, w, 10.0, tolerance=2.0 ** -40)
    assert max_abs_error(coarse, lower, upper, w) <= 2.0 ** -20
    assert max_abs_error(fine, lower, upper, w) <= 2.0 ** -40
    assert fine.feature_bits > coarse.feature_bits and fine.slot_bits > coarse.slot_bits


def test_unpack_refuses_a_slot_beyond_the_models_reach():
    codec = FixedPointCodec(4, 4, 8)
    assert codec.reach == 127
    assert codec.unpack((1 << 8) | 255, 2) == [127, -127]  # the ends of the reach
    with pytest.raises(AnswerMismatchError) as e:
        codec.unpack((1 << 16) | 1, 2)  # slot 1 is 0: −Δ = −128
    assert e.value.slot == 1 and e.value.exit_code == 4
    assert e.value.message == ("decodes outside the range the model can reach over its declared bounds "
                               "(|Σ W·X + B| ≤ 2^7 − 1 with Model.json's 8-bit slots)")


def test_key_too_small_for_one_slot():
    with pytest.raises(EncodingRangeError, match="cannot hold one 600-bit slot"):
        FixedPointCodec(4, 4, 600).slots_for(512)


@pytest.mark.parametrize("d, message", [
    ({"feature_bits": 1, "weight_bits": 1}, "codec lacks 'slot_bits'"),
    ({"feature_bits": -1, "weight_bits": 1, "slot_bits": 9}, "codec feature_bits must be an integer in [0, 4096], got -1"),
    ({"feature_bits": 1, "weight_bits": True, "slot_bits": 9}, "codec weight_bits must be an integer in [0, 4096], got True"),
    ("x", "codec must be an object with feature_bits, weight_bits, slot_bits"),
])
def test_codec_from_dict_validates(d, message):
    with pytest.raises(DocumentError) as e:
        FixedPointCodec.from_dict(d)
    assert str(e.value) == message
