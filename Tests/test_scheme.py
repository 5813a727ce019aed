"""Encryption, encrypted scoring and decryption on small fixed keys."""
from __future__ import annotations

import secrets

import gmpy2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppml.paillier import Encryptor, decrypt_packed, design_codec, encrypt_packed, score_packed
from ppml.paillier.multiexp import bos_coster, signed_multi_pow
from ppml.paillier.scheme import CombTable, FixedBaseTable, choose_table


@pytest.mark.parametrize("window", [1, 3, 4, 8])
def test_fixed_base_table_matches_powmod(keypair, window):
    public = keypair[0]
    table = FixedBaseTable(public.h_s, public.n_sq, 300, window)
    for e in [0, 1, 2, (1 << 300) - 1, secrets.randbits(300), secrets.randbits(17)]:
        assert table.pow(e) == gmpy2.powmod(public.h_s, e, public.n_sq)
    with pytest.raises(ValueError):
        table.pow(1 << 300)


def test_table_choice_scales_with_workload():
    assert choose_table(1536, 1, 6144) == ("none",)  # one exponentiation: no table
    small, large = choose_table(1536, 40, 6144), choose_table(1536, 100_000, 6144)
    assert small[0] == large[0] == "window" and 0 < small[1] < large[1]
    # More workers share the use, not the build: smaller tables pay.
    assert choose_table(1536, 2_000, 3072, workers=8)[1] <= choose_table(1536, 2_000, 3072)[1]
    # Where combs are allowed they win for real workloads, and never for a single exponentiation.
    assert choose_table(1536, 2_000, 3072, comb=True)[0] == "comb"
    assert choose_table(1536, 1, 3072, comb=True) == ("none",)


@pytest.mark.parametrize("teeth, blocks", [(4, 1), (5, 2), (12, 4), (7, 8), (13, 3)])
def test_comb_table_matches_powmod(keypair, teeth, blocks):
    public = keypair[0]
    table = CombTable(public.h_s, public.n_sq, 300, teeth, blocks)
    for e in [0, 1, 2, (1 << 300) - 1, 1 << 299, secrets.randbits(300), secrets.randbits(17)]:
        assert table.pow(e) == gmpy2.powmod(public.h_s, e, public.n_sq)
    with pytest.raises(ValueError):
        table.pow(1 << 300)


@pytest.mark.parametrize("with_private", [False, True])
def test_encryption_is_standard_paillier(keypair, with_private):
    """Our ciphertexts decrypt with python-paillier: g = n + 1, DJN randomness is an n-th residue."""
    from phe import paillier as phe

    public, private = keypair
    enc = Encryptor(public, private if with_private else None, expected=50)
    phe_private = phe.PaillierPrivateKey(phe.PaillierPublicKey(int(public.n)), int(private.p), int(private.q))
    for m in [0, 1, 123456789, int(public.n) - 1, -5]:
        c = enc.encrypt(m)
        assert phe_private.raw_decrypt(int(c)) == m % int(public.n)
        assert private.raw_decrypt(c) == m % public.n
    assert enc.encrypt(7) != enc.encrypt(7)  # randomized


def test_packed_score_decrypts_to_every_record(keypair):
    public, private = keypair
    rng = np.random.default_rng(5)
    d = 8
    lower, upper = -rng.random(d) * 10, rng.random(d) * 1000
    w, b = rng.normal(size=d), -2.5
    codec = design_codec(lower, upper, w, b)
    m = codec.slots_for(public.bits)
    x = lower + (upper - lower) * rng.random((m, d))
    X = codec.encode_features(x, lower, upper, [str(i) for i in range(d)])
    cts = encrypt_packed(Encryptor(public, private, expected=d), codec, X)
    W, B = codec.encode_weights(w), codec.encode_intercept(b)
    result = score_packed(public, codec, W, B, cts, m)
    sums = decrypt_packed(private, codec, result, m)
    assert sums == [sum(a * c for a, c in zip(W, row)) + B for row in X]
    np.testing.assert_allclose([codec.decode(s) for s in sums], x @ w + b, rtol=0, atol=1e-10)


def test_scores_are_rerandomized(keypair):
    """Same inputs, two scorings: different ciphertexts (the server re-randomizes), same plaintext."""
    public, private = keypair
    codec = design_codec([0.0], [1.0], [0.5], 0.0)
    cts = encrypt_packed(Encryptor(public), codec, [[codec.encode_bound(1.0)]])
    W, B = codec.encode_weights([0.5]), codec.encode_intercept(0.0)
    r1, r2 = (score_packed(public, codec, W, B, cts, 1) for _ in range(2))
    assert r1 != r2
    # Without re-randomization the result would be exactly c^W: check we are not returning that.
    assert r1 != gmpy2.powmod(cts[0], W[0], public.n_sq) * (1 + codec.pack_offset(B, 1) * public.n) % public.n_sq
    assert decrypt_packed(private, codec, r1, 1) == decrypt_packed(private, codec, r2, 1)


def _plain_product(bases, exps, mod):
    expected = gmpy2.mpz(1)
    for b, e in zip(bases, exps):
        expected = expected * (gmpy2.powmod(b, e, mod) if e >= 0 else gmpy2.invert(gmpy2.powmod(b, -e, mod), mod)) % mod
    return expected


#: Tiny odd moduli (products of two primes, like n², and a prime) where every base can be a unit.
TINY_MODULI = [3 * 5, 101, 7 ** 2 * 11 ** 2, 1009 * 1013, (1 << 61) - 1]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TINY_MODULI), st.lists(st.integers(-(1 << 60), 1 << 60), min_size=0, max_size=12),
       st.data())
def test_chain_equals_plain_product(mod, exps, data):
    """The Bos–Coster chain, replayed on random units, equals the plain signed product."""
    bases = [data.draw(st.integers(1, mod - 1).filter(lambda b: gmpy2.gcd(b, mod) == 1)) for _ in exps]
    assert signed_multi_pow(bases, exps, mod) == _plain_product(bases, exps, mod)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1 << 50), min_size=1, max_size=50))
def test_chain_counts_are_short_and_exact(exps):
    """Replaying the chain symbolically (exponents instead of bases) gives exactly the weights:
    each register's exponent vector is the sum of its operands'."""
    chain = bos_coster(tuple(exps))
    regs = [{i: 1} for i in chain.inputs] + [None] * chain.multiplications
    for d, a, c in chain.steps:
        regs[d] = {k: regs[a].get(k, 0) + regs[c].get(k, 0) for k in regs[a].keys() | regs[c].keys()}
    got = regs[chain.result] if chain.result is not None else {}
    assert {k: v for k, v in got.items() if v} == {i: e for i, e in enumerate(exps) if e}
    # Never worse than square-and-multiply on each exponent separately.
    assert chain.multiplications <= sum(2 * e.bit_length() for e in exps)


def test_chain_of_laptop_weights_is_shorter_than_buckets(params):
    """The laptop model's 42 weights of up to 47 bits: under 500 multiplications (the bucket
    method took about 840), with the chain found once and then served from the cache."""
    (W, _), = params.integer_weights()
    pos, neg = (bos_coster(tuple(max(s * w, 0) for w in W)) for s in (1, -1))
    assert pos.multiplications + neg.multiplications < 500
    assert bos_coster(tuple(max(w, 0) for w in W)) is pos


def test_chain_edge_cases(keypair):
    mod = keypair[0].n_sq
    c = gmpy2.mpz(secrets.randbelow(int(mod)))
    assert signed_multi_pow([], [], mod) == 1
    assert signed_multi_pow([c], [0], mod) == 1
    assert signed_multi_pow([c], [1], mod) == c
    assert signed_multi_pow([c, c], [5, -5], mod) == 1
    with pytest.raises(ValueError, match="^exponents must be non-negative$"):
        bos_coster((1, -1))
    with pytest.raises(ValueError, match="^one exponent per base expected$"):
        signed_multi_pow([c], [1, 2], mod)


def _exponent_of(table, by_column) -> int:
    """The exponent whose comb patterns are ``by_column`` (bit i of pattern [k][j] is bit
    ``i·columns + j·b + k``)."""
    return sum(((u >> i) & 1) << (i * table.columns + j * table.b + k)
               for k, row in enumerate(by_column) for j, u in enumerate(row) for i in range(table.teeth))


@pytest.mark.parametrize("teeth, blocks, bits", [(4, 1, 300), (5, 2, 301), (7, 8, 300), (13, 3, 97)])
def test_random_comb_patterns_are_uniform_exponents_below_the_bound(keypair, teeth, blocks, bits):
    """Drawn patterns are the patterns of an exponent below 2^bits, every one of whose bits is
    set in some draw and clear in another, and the comb computes exactly that power."""
    public = keypair[0]
    table = CombTable(public.h_s, public.n_sq, bits, teeth, blocks)
    draws = table.random_patterns(64)
    exponents = [_exponent_of(table, d) for d in draws]
    assert all(0 <= e < 1 << bits for e in exponents)
    assert all(table.patterns(e) == d for e, d in zip(exponents, draws))
    ored, anded = 0, (1 << bits) - 1
    for e in exponents:
        ored, anded = ored | e, anded & e
    assert ored == (1 << bits) - 1 and anded == 0
    for e, d in zip(exponents[:4], draws):
        assert table.run(d) == gmpy2.powmod(public.h_s, e, public.n_sq)


@pytest.mark.parametrize("comb", [False, True])
def test_masks_are_encryptions_of_zero_and_pooled_masks_are_used_as_given(keypair, comb):
    public, private = keypair
    enc = Encryptor(public, private, expected=200, comb=comb)
    masks = enc.random_masks(3)
    assert len(set(masks)) == 3 and all(private.raw_decrypt(c) == 0 for c in masks)
    codec = design_codec([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5], 0.0)
    rows = [[1, 2, 3], [4, 5, 6]]
    cts = encrypt_packed(enc, codec, rows, masks=masks[:2])  # the third feature gets a fresh mask
    n = public.n
    for i, c in enumerate(cts):
        assert private.raw_decrypt(c) == codec.pack([r[i] for r in rows])
    assert cts[:2] == [(1 + codec.pack([r[i] for r in rows]) * n) * masks[i] % public.n_sq for i in range(2)]
