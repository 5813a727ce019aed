"""Encryption, encrypted scoring and decryption on small fixed keys."""
from __future__ import annotations

import secrets

import gmpy2
import numpy as np
import pytest

from ppml.paillier import Encryptor, decrypt_packed, design_codec, encrypt_packed, score_packed
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


@pytest.mark.parametrize("window", [1, 3, 4, 5])
def test_multi_pow_matches_separate_powmods(keypair, window):
    from ppml.paillier.scheme import multi_pow

    mod = keypair[0].n_sq
    bases = [gmpy2.mpz(secrets.randbelow(int(mod))) for _ in range(9)]
    exps = [0, 1, 2, 15, 16, secrets.randbits(49), secrets.randbits(3), (1 << 49) - 1, secrets.randbits(60)]
    expected = gmpy2.mpz(1)
    for b, e in zip(bases, exps):
        expected = expected * gmpy2.powmod(b, e, mod) % mod
    assert multi_pow(bases, exps, mod, window) == expected
    assert multi_pow([], [], mod) == 1
    assert multi_pow(bases[:1], [0], mod) == 1
    with pytest.raises(ValueError):
        multi_pow(bases[:1], [-1], mod)
