"""The modulus proof against a dishonest customer who crafts its own modulus.

Each crafted modulus is built with its factorisation known, and the cheater then does the best
any prover can: exact n-th roots and fourth roots wherever they exist, its best guess
elsewhere. The verifier must refuse every one, naming the part of the proof that fails; an
honest key's proof must verify and survive its file format. Keys are small (512 to 1024 bits,
``allow_weak``) for speed only: the checks do not depend on the size.
"""
from __future__ import annotations

import json
import math
import secrets

import gmpy2
import pytest

from conftest import ROOT, run_script
from ppml.errors import KeyProofError
from ppml.keystore import KeyStore
from ppml.paillier import proof as proof_module
from ppml.paillier.keys import PublicKey, fingerprint_of, generate_keypair
from ppml.paillier.proof import FOURTH_ROOT_ROUNDS, NTH_ROOT_ROUNDS, ModulusProof, challenge, prove, verify


def _prime(bits: int, residue: int | None = None) -> int:
    """A random prime of ``bits`` bits, ≡ ``residue`` (mod 4) when given."""
    while True:
        p = int(gmpy2.next_prime(secrets.randbits(bits) | (1 << (bits - 1))))
        if p.bit_length() == bits and (residue is None or p % 4 == residue):
            return p


def _root_or_guess(y: int, factors: list[int], n: int, exponent_of) -> int:
    """The cheater's answer: a root of ``y`` modulo every prime-power factor where one exists
    (by the CRT), the value ``y`` itself where none does. ``exponent_of(m, order)`` is the root
    exponent for the cyclic group ``Z*_m`` of that order, or None where no root exists."""
    x, modulus = 0, 1
    for m in factors:
        r = _prime_of(m)
        order = m // r * (r - 1)
        e = exponent_of(m, order)
        part = pow(y % m, e, m) if e is not None else y % m
        x += (part - x) * pow(modulus, -1, m) % m * modulus
        modulus *= m
    return x % n


def _prime_of(m: int) -> int:
    """The prime r of a prime power m = r^k (k ≤ 3 here)."""
    for k in (3, 2):
        root, exact = gmpy2.iroot(m, k)
        if exact and gmpy2.is_prime(root):
            return int(root)
    return m


def _best_effort_proof(factors: list[int], h_s: int) -> ModulusProof:
    """The strongest proof a prover who knows ``n = ∏ factors`` (pairwise coprime prime powers)
    can make: real n-th and fourth roots modulo each factor wherever they exist."""
    n = math.prod(factors)

    def nth_exponent(m, order):
        return pow(n, -1, order) if math.gcd(n, order) == 1 else None

    def fourth_exponent(m, order):  # squares form a group of odd order order/2 when r ≡ 3 (mod 4)
        return pow(4, -1, order // 2) if order % 4 == 2 else None

    while True:  # the best w: a square modulo the first factor, so that its sign sits in one place
        w = secrets.randbelow(n - 2) + 2
        if gmpy2.jacobi(w, n) == -1 and (len(factors) == 1 or gmpy2.legendre(w, _prime_of(factors[0])) == 1):
            break
    nth = [_root_or_guess(int(challenge("nth-root", n, h_s, i)), factors, n, nth_exponent)
           for i in range(NTH_ROOT_ROUNDS)]
    fourth = []
    for i in range(FOURTH_ROOT_ROUNDS):
        y = int(challenge("fourth-root", n, h_s, i, w))
        candidates = [y, n - y, w * y % n, n - w * y % n]
        best = next((c for c in candidates if all(gmpy2.legendre(c, _prime_of(m)) == 1 for m in factors)), y)
        fourth.append(_root_or_guess(best, factors, n, fourth_exponent))
    return ModulusProof(w, tuple(nth), tuple(fourth))


def _h_s(n: int) -> int:
    return int(gmpy2.powmod(secrets.randbelow(n - 2) + 2, n, n * n))


def _attack_modulus(bits: int = 1024) -> list[int]:
    """``n = p·S``, ``S`` a product of 24-bit primes with ``S | p − 1``: the shape that reads the
    weights back through an order-S component that the server's ``r^n`` cannot touch. Returns
    the factors ``[p, s1, s2, …]``."""
    small = [_prime(24) for _ in range(8)]
    s = math.prod(small)
    while True:
        k = secrets.randbits(bits - s.bit_length() * 2) | 1
        p = 2 * k * s + 1
        if gmpy2.is_prime(p) and (p * s).bit_length() >= bits - 2:
            return [p, *small]


def _blum_gcd_attack_modulus(bits: int = 1024) -> list[int]:
    """``n = p·s`` with ``s | p − 1``, both primes ≡ 3 (mod 4), ``s`` of 64 bits: a
    Paillier–Blum modulus in every respect but ``gcd(n, φ(n)) = s``, so only the n-th roots
    can catch it (the order-``s`` component of the attack above, with one factor)."""
    s = _prime(64, 3)
    while True:
        k = secrets.randbits(bits - 64 * 2) | 1  # odd k: p = 2·k·s + 1 ≡ 3 (mod 4)
        p = 2 * k * s + 1
        if gmpy2.is_prime(p):
            return [p, s]


def test_an_honest_keys_proof_verifies_and_survives_its_file_format():
    public, private = generate_keypair(1024, allow_weak=True)
    verify(public.n, public.h_s, public.proof)
    again = PublicKey.from_dict(json.loads(json.dumps(public.to_dict())), allow_weak=True)
    assert again.proof == public.proof
    verify(again.n, again.h_s, again.proof)
    assert len(public.proof.nth_roots) == 8 and len(public.proof.fourth_roots) == 128


def test_round_counts_give_128_bit_soundness():
    """The soundness argument of the module docstring, as arithmetic: n-th roots fail a bad
    modulus with probability above 1 − 2^−16 each, fourth roots with probability 1/2 each."""
    assert NTH_ROOT_ROUNDS * math.log2(proof_module.SMALL_FACTOR_BOUND) >= 128
    assert FOURTH_ROOT_ROUNDS >= 128
    # No prime below the bound divides the trial-division product's complement: the bound is real.
    assert gmpy2.gcd(proof_module._small_prime_product(), 65521) == 65521


def _refused(factors: list[int], message: str, proof: ModulusProof | None = None) -> None:
    n = math.prod(factors)
    h_s = _h_s(n)
    with pytest.raises(KeyProofError) as e:
        verify(n, h_s, proof if proof is not None else _best_effort_proof(factors, h_s))
    assert str(e.value).startswith(message), str(e.value)


def test_the_order_s_component_attack_modulus_is_refused():
    """The attack that read all weights from one record: many factors, gcd(n, φ(n)) = S."""
    _refused(_attack_modulus(), "the modulus proof fails at")


def test_a_blum_modulus_with_a_common_factor_is_refused_by_the_nth_roots():
    """Two primes ≡ 3 (mod 4) pass every fourth root; gcd(n, φ(n)) = s > 2^16 leaves most
    challenges without an n-th root."""
    factors = _blum_gcd_attack_modulus()
    n = math.prod(factors)
    assert math.gcd(n, math.prod(r - 1 for r in factors)) == factors[1]
    _refused(factors, "the modulus proof fails at n-th root")


def test_three_primes_are_refused_even_with_exact_nth_roots():
    """gcd(n, φ(n)) = 1 holds for three random primes, so the n-th roots are real; the fourth
    roots give it away."""
    factors = [_prime(342, 3) for _ in range(3)]
    assert math.gcd(math.prod(factors), math.prod(r - 1 for r in factors)) == 1
    _refused(factors, "the modulus proof fails at fourth root")


def test_a_prime_congruent_to_1_mod_4_is_refused():
    _refused([_prime(512, 1), _prime(512, 3)], "the modulus proof fails at fourth root")


def test_a_square_factor_is_refused():
    """n = p²·q: p divides φ(n); the fourth roots of a prime power can exist, the n-th roots
    cannot."""
    p, q = _prime(340, 3), _prime(340, 3)
    _refused([p * p, q], "the modulus proof fails at n-th root")


def test_a_small_factor_is_refused():
    factors = [65521, _prime(1000, 3)]
    _refused(factors, "n has a prime factor below 65536")


def test_a_prime_modulus_is_refused():
    """A prime n ≡ 3 (mod 4) passes both root checks (every residue has its roots), so the
    verifier's own primality test must catch it."""
    p = _prime(1024, 3)
    _refused([p], "n is prime, not an RSA modulus")


def test_a_proof_for_another_key_or_generator_is_refused():
    public, _ = generate_keypair(1024, allow_weak=True)
    other, _ = generate_keypair(1024, allow_weak=True)
    with pytest.raises(KeyProofError, match="^the modulus proof"):
        verify(public.n, public.h_s, other.proof)
    with pytest.raises(KeyProofError, match="^the modulus proof fails"):
        verify(public.n, _h_s(int(public.n)), public.proof)  # the challenges bind h_s


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("proof"), "field 'proof' is missing: the key carries no modulus proof"),
    (lambda d: d["proof"]["nth_roots"].pop(), "proof field 'nth_roots' must be a list of 8 hexadecimal numbers"),
    (lambda d: d["proof"]["fourth_roots"].append("1"),
     "proof field 'fourth_roots' must be a list of 128 hexadecimal numbers"),
    (lambda d: d["proof"].update(extra=1), "field 'proof' must have exactly the fields w, nth_roots, fourth_roots"),
    (lambda d: d["proof"].update(w="0"), "proof field 'w' is not in [1, n)"),
    (lambda d: d["proof"]["nth_roots"].__setitem__(0, d["n"]), "proof nth_roots[0] is not in [1, n)"),
    (lambda d: d["proof"]["fourth_roots"].__setitem__(3, "1" * 300),
     "proof fourth_roots[3] must be a hexadecimal string of at most 256 digits"),
    (lambda d: d.update(proof=[]), "field 'proof' must be an object, got list"),
])
def test_a_malformed_proof_is_refused_before_any_arithmetic(change, message):
    public, _ = generate_keypair(1024, allow_weak=True)
    d = public.to_dict()
    change(d)
    with pytest.raises(KeyProofError) as e:
        PublicKey.from_dict(d, allow_weak=True)
    assert str(e.value) == message


def test_verification_is_cached_per_key(monkeypatch):
    public, _ = generate_keypair(1024, allow_weak=True)
    calls = []
    real = proof_module.verify
    monkeypatch.setattr(proof_module, "verify", lambda *a: calls.append(1) or real(*a))
    assert not proof_module.is_proven(public)
    proof_module.require_proven(public)
    proof_module.require_proven(PublicKey(public.n, public.h_s, public.proof))
    assert calls == [1] and proof_module.is_proven(public)
    with pytest.raises(KeyProofError, match="carries no modulus proof"):
        proof_module.require_proven(PublicKey(public.n, _h_s(int(public.n))))


def test_the_prover_refuses_factors_without_a_proof():
    with pytest.raises(KeyProofError, match="two distinct primes p ≡ q ≡ 3"):
        prove(_prime(256, 1), _prime(256, 3), 4)


# -- through the scripts, as separate processes -------------------------------------------------
@pytest.fixture(scope="module")
def customer(tmp_path_factory, bundled_raw):
    """A customer folder (keys, the model's public files) and an honest three-record document."""
    import shutil

    work = tmp_path_factory.mktemp("proof")
    (work / "Encrypted_ModelParameters").mkdir()
    shutil.copy(ROOT / "Encrypted_ModelParameters" / "Model.json", work / "Encrypted_ModelParameters")
    shutil.copy(ROOT / "col_tnf.pkl", work)
    bundled_raw.iloc[:3].to_csv(work / "records.csv", index=False)
    proc = run_script("CustomerEncrypts.py", "records.csv", "--key-size", "1024", "--allow-weak-key", "-q", cwd=work)
    assert proc.returncode == 0, proc.stderr.decode()
    return work, json.loads((work / "Encrypted_Data" / "data.json").read_text())


def _with_public_key(doc: dict, n: int, h_s: int, proof: ModulusProof | None) -> dict:
    doc = json.loads(json.dumps(doc))
    key = {"format": "ppml.paillier-public-key", "version": 3, "bits": n.bit_length(),
           "fingerprint": fingerprint_of(n, h_s), "n": format(n, "x"), "h_s": format(h_s, "x")}
    if proof is not None:
        key["proof"] = proof.to_dict()
    doc["public_key"], doc["key_fingerprint"] = key, key["fingerprint"]
    return doc


@pytest.mark.parametrize("shape", ["order-s-attack", "gcd-attack", "three-primes", "no-proof", "version-2"])
def test_server_model_run_refuses_a_crafted_modulus_and_writes_nothing(customer, shape):
    work, doc = customer
    if shape == "order-s-attack":
        factors = _attack_modulus()
    elif shape == "gcd-attack":
        factors = _blum_gcd_attack_modulus()
    elif shape == "three-primes":
        factors = [_prime(342, 3) for _ in range(3)]
    else:
        factors = [_prime(512, 3), _prime(512, 3)]
    n = math.prod(factors)
    h_s = _h_s(n)
    crafted = _with_public_key(doc, n, h_s, None if shape in ("no-proof", "version-2") else
                               _best_effort_proof(factors, h_s))
    if shape == "version-2":
        crafted["public_key"]["version"] = 2
    crafted["slots"] = 1  # fits any of these sizes; the key is refused before the codec matters
    crafted["batches"] = []  # no ciphertext is needed: the key is refused before any is read
    crafted["records"] = 0
    (work / f"{shape}.json").write_text(json.dumps(crafted))
    proc = run_script("ServerModelRun.py", f"{shape}.json", "-o", f"{shape}-answer.json", "--params",
                      str(ROOT / "Encrypted_ModelParameters"), "--allow-weak-key", "-q", cwd=work)
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 3 and len(lines) == 1, proc.stderr.decode()
    expected = {
        "order-s-attack": "the modulus proof fails at",
        "gcd-attack": "the modulus proof fails at n-th root",
        "three-primes": "the modulus proof fails at fourth root",
        "no-proof": "public_key: field 'proof' is missing: the key carries no modulus proof",
        "version-2": "public_key: a version-2 key carries no modulus proof",
    }[shape]
    assert lines[0].startswith(f"Error: {shape}.json: {expected}"), lines[0]
    assert not (work / f"{shape}-answer.json").exists()


def test_prove_key_upgrades_a_version_2_folder_and_keeps_the_key(tmp_path):
    """A version-2 folder is refused with the command that fixes it; that command keeps
    n, h_s and the factors, writes version 3 with a proof that verifies, and the private key
    stays 0600."""
    import os
    import stat

    store = KeyStore(tmp_path / "keys")
    public, private = store.create(1024, allow_weak=True)
    for path in (store.public_path, store.private_path):
        d = json.loads(path.read_text())
        d["version"] = 2
        d.pop("proof", None)
        path.write_text(json.dumps(d))
    proc = run_script("CustomerEncrypts.py", "--keys", str(store.folder), "--model", str(ROOT), "--allow-weak-key", "-q",
                      cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stderr.decode() == (
        f"Error: {store.public_path}: a version-2 key carries no modulus proof, which the company now requires; "
        f"add one with `python -m ppml prove-key --keys {store.folder}` (the key itself is kept)\n")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "ppml", "prove-key", "--keys", str(store.folder), "--allow-weak-key"],
                          cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    upgraded = store.load_private(allow_weak=True)
    assert upgraded.public == public and upgraded.p == private.p
    assert json.loads(store.public_path.read_text())["version"] == 3
    assert json.loads(store.private_path.read_text())["version"] == 3
    verify(upgraded.public.n, upgraded.public.h_s, upgraded.public.proof)
    assert stat.S_IMODE(os.stat(store.private_path).st_mode) == 0o600
