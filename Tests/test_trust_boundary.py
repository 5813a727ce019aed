"""The trust boundary, against a dishonest party, with exact outcomes.

A dishonest customer picks its own key and its own ciphertexts and can read the randomness of
whatever it decrypts. Here keys come from ``python -m ppml keygen`` and honest documents from
the scripts; then public keys and ciphertexts are rebuilt by hand (a generator of secret
order, ``n² − 1``, ``1 + n``, stuffed slots, out-of-bounds values) and fed to
``ServerModelRun.py`` as a separate process. The key owner must find fresh server randomness
in every answer and random bits above the declared slots. On the customer's side, a degraded
key in its own folder and an answer that claims another codec or model are refused with one
``Error:`` line. Keys are 1024-bit (``--allow-weak-key``) for speed only.
"""
from __future__ import annotations

import json
import math
import secrets
import shutil
from pathlib import Path

import gmpy2
import pytest

from conftest import ROOT, run_script
from ppml import files
from ppml.keystore import KeyStore
from ppml.paillier.keys import fingerprint_of

WEAK = "--allow-weak-key"
RECORDS = 3


def _ok(proc):
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


def _python_m(*args, cwd):
    """``python -m ppml …`` of this checkout (not of whatever copy is installed)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "ppml", *args], cwd=cwd, capture_output=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def honest(tmp_path_factory, bundled_raw):
    """A customer folder with keys from keygen, the model's public files, and an honest
    features document for three records (JSON layout)."""
    work = tmp_path_factory.mktemp("trust")
    (work / "Encrypted_ModelParameters").mkdir()
    shutil.copy(ROOT / "Encrypted_ModelParameters" / "Model.json", work / "Encrypted_ModelParameters")
    shutil.copy(ROOT / "col_tnf.pkl", work)
    _ok(_python_m("keygen", "--key-size", "1024", WEAK, cwd=work))
    bundled_raw.iloc[:RECORDS].to_csv(work / "records.csv", index=False)
    _ok(run_script("CustomerEncrypts.py", "records.csv", WEAK, "-q", cwd=work))
    private = KeyStore(work / "PaillierKeys").load_private(allow_weak=True)
    return work, private, json.loads((work / "Encrypted_Data" / "data.json").read_text())


def _score(work: Path, doc: dict, name: str) -> dict:
    """``doc`` through ServerModelRun.py as its own process; the answer document."""
    (work / f"{name}.json").write_text(json.dumps(doc))
    _ok(run_script("ServerModelRun.py", f"{name}.json", "-o", f"{name}-answer.json",
                   "--params", str(ROOT / "Encrypted_ModelParameters"), WEAK, "-q", "-j", "1", cwd=work))
    return json.loads((work / f"{name}-answer.json").read_text())


def _with_key(doc: dict, h_s: int, private) -> dict:
    """``doc`` re-labelled with the public key ``(n, h_s)``: consistent fingerprints and a valid
    modulus proof (the key owner can prove its honest n whatever h_s it binds in), so that
    only the factorisation could tell the generator is degraded."""
    from ppml.paillier.proof import prove

    doc = json.loads(json.dumps(doc))
    key = doc["public_key"]
    key["h_s"] = format(h_s, "x")
    key["fingerprint"] = doc["key_fingerprint"] = fingerprint_of(private.public.n, h_s)
    key["proof"] = prove(private.p, private.q, h_s).to_dict()
    return doc


def _encrypt_with(h_s: int, n: int, plaintext: int, alpha_bits: int = 64) -> str:
    """A ciphertext ``(1 + m·n)·h_s^α`` whose randomness stays in the group ``h_s`` generates."""
    n_sq = n * n
    return format((1 + plaintext % n * n) * gmpy2.powmod(h_s, secrets.randbits(alpha_bits), n_sq) % n_sq, "x")


def _opened(private, ciphertext_hex: str) -> tuple[int, int]:
    """What the key owner reads off an answer ciphertext: its plaintext and its randomness
    ``R = c / (1 + v·n)``, an n-th residue."""
    n, n_sq = private.public.n, private.public.n_sq
    c = gmpy2.mpz(int(ciphertext_hex, 16))
    v = private.raw_decrypt(c)
    return int(v), int(c * gmpy2.invert(1 + v * n, n_sq) % n_sq)


def _secret_order_generator(private) -> tuple[int, int]:
    """``h_s = y^n`` with ``y`` of prime order ``a`` (the ~64-bit factor of ``p − 1``) modulo p
    and 1 modulo q: an n-th residue with Jacobi symbol 1 that nobody without the factorisation
    can tell from an honest generator. Returns ``(h_s, order)``."""
    p, q, n = private.p, private.q, private.public.n
    a = private.p_factors[0]
    while True:
        y_p = gmpy2.powmod(secrets.randbelow(int(p) - 2) + 2, (p - 1) // a, p)
        if y_p != 1:
            break
    y = y_p + ((1 - y_p) * gmpy2.invert(p, q) % q) * p  # y ≡ y_p (mod p), 1 (mod q)
    return int(gmpy2.powmod(y, n, n * n)), int(a)


def _honest_sums(private, answer: dict) -> list[int]:
    from ppml.documents import ModelSpec

    spec = ModelSpec.from_dict(json.loads((ROOT / "Encrypted_ModelParameters" / "Model.json").read_text()))
    codec = spec.codec
    v, _ = _opened(private, answer["batches"][0]["ciphertexts"][0])
    return codec.unpack(v, len(answer["batches"][0]["ids"]))


# ---------------------------------------------------------------------------------------------
# The server: its randomness and its mask, whatever the customer's key and ciphertexts
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("degraded", ["order-2", "secret-odd-order", "one-plus-n"])
def test_degraded_generator_cannot_switch_off_the_servers_randomness(honest, degraded):
    work, private, doc = honest
    n = int(private.public.n)
    if degraded == "order-2":
        h_s, order = n * n - 1, 2
    elif degraded == "secret-odd-order":
        h_s, order = _secret_order_generator(private)
    else:
        h_s, order = n + 1, None  # not an n-th residue: (1+n)^α would add α to the plaintext
    crafted = _with_key(doc, h_s, private)
    if order is not None:
        # Every input ciphertext's randomness lies in <h_s>: the old server's answer did too.
        honest_sums = _honest_sums(private, _score(work, doc, f"{degraded}-honest"))
        for batch in crafted["batches"]:
            batch["ciphertexts"] = [_encrypt_with(h_s, n, private.raw_decrypt(int(c, 16)))
                                    for c in batch["ciphertexts"]]
    answers = [_score(work, crafted, f"{degraded}-{i}") for i in range(2)]
    assert all(a["key_fingerprint"] == crafted["key_fingerprint"] for a in answers)
    opened = [_opened(private, a["batches"][0]["ciphertexts"][0]) for a in answers]
    randomness = [R for _, R in opened]
    assert randomness[0] != randomness[1]  # fresh in every answer
    if order is not None:
        # The answer's randomness is not in the subgroup the customer's generator spans.
        assert all(gmpy2.powmod(R, order, private.public.n_sq) != 1 for R in randomness)
        assert _honest_sums(private, answers[0]) == honest_sums  # and the values are right
    else:
        # h_s was never used: the answer decodes to the honest document's predictions.
        assert _honest_sums(private, answers[0]) == _honest_sums(private, answers[1])


def _stuffed(doc: dict, private, plaintexts) -> dict:
    """One declared record whose feature plaintexts are ``plaintexts`` (crafted, out of any bound)."""
    from ppml.paillier import Encryptor

    crafted = json.loads(json.dumps(doc))
    enc = Encryptor(private.public, private)
    crafted["batches"] = [{"ids": [0], "ciphertexts": [format(enc.encrypt(x), "x") for x in plaintexts]}]
    crafted["records"] = 1
    return crafted


def _declared_slot_or_wrapped(v: int, unmasked: int, n: int, k: int) -> bool:
    """The declared slot of an answer to a crafted plaintext: the unmasked slot, or, when the
    masked value wrapped modulo n, the same slot of ``unmasked − n`` (the one bit the mask's
    edge can add; an honest plaintext never wraps)."""
    return v % (1 << k) in (unmasked % (1 << k), (unmasked - n) % (1 << k))


def test_stuffed_slots_reveal_only_the_declared_slot(honest, params):
    """One declared record, feature i encrypted as 2^(k + 64·i): unmasked, the plaintext would
    hold every weight in its own 64-bit digit above the declared slot. The customer gets the
    declared slot, and random bits above it, fresh in every answer."""
    work, private, doc = honest
    codec, n = params.spec.codec, int(private.public.n)
    k = codec.slot_bits
    (W, B), = params.integer_weights()  # the laptop model: one output
    digits = (n.bit_length() - k) // 64 - 1
    plaintexts = [1 << (k + 64 * i) if i < digits else 0 for i in range(len(W))]
    unmasked = (sum(w * x for w, x in zip(W, plaintexts)) + B + codec.offset) % n
    assert any(((unmasked >> (k + 64 * i)) & ((1 << 64) - 1)) for i in range(1, digits))  # weights up there
    crafted = _stuffed(doc, private, plaintexts)
    values = [_opened(private, _score(work, crafted, f"stuffed-{i}")["batches"][0]["ciphertexts"][0])[0]
              for i in range(3)]
    assert all(_declared_slot_or_wrapped(v, unmasked, n, k) for v in values)
    highs = [v >> k for v in values]
    assert len(set(highs)) == 3 and unmasked >> k not in highs  # masked, freshly, every time
    # Nothing of the weights' digits survives: no 64-bit digit above the slot is the unmasked one.
    digit = lambda v, i: (v >> (k + 64 * i)) & ((1 << 64) - 1)  # noqa: E731
    assert not any(digit(v, i) == digit(unmasked, i) for v in values for i in range(1, digits))


def test_out_of_bounds_value_in_a_declared_slot_stays_within_k_bits(honest, params):
    """A declared record with a feature of 2^80 (far outside the bounds): its slot overflows
    upwards, into bits the server masks; the customer reads k bits and nothing above."""
    work, private, doc = honest
    codec, n = params.spec.codec, int(private.public.n)
    k = codec.slot_bits
    (W, B), = params.integer_weights()  # the laptop model: one output
    i = max(range(len(W)), key=lambda j: abs(W[j]))
    plaintexts = [1 << 80 if j == i else 0 for j in range(len(W))]
    unmasked = (W[i] * (1 << 80) + B + codec.offset) % n
    values = [_opened(private, _score(work, _stuffed(doc, private, plaintexts), f"oob-{r}")["batches"][0]
                      ["ciphertexts"][0])[0] for r in range(2)]
    assert all(_declared_slot_or_wrapped(v, unmasked, n, k) for v in values)
    assert values[0] >> k != values[1] >> k and unmasked >> k not in (values[0] >> k, values[1] >> k)


def test_mask_bound_is_what_the_docstring_says(params, keypair):
    """Honest sums plus the mask never wrap modulo n (the declared slots stay exact), and the
    mask spans every multiple of 2^(m·k) below n that keeps it so."""
    from ppml.paillier.scheme import mask_undeclared

    public = keypair[0]
    codec = params.spec.codec
    for m in (1, 2, codec.slots_for(public.bits)):
        shift, span = codec.slot_bits * m, int(public.n) >> (codec.slot_bits * m)
        masks = [mask_undeclared(public, codec, m) for _ in range(50)]
        assert all(mask % (1 << shift) == 0 and mask + (1 << shift) <= public.n for mask in masks)
        if span > 4:
            assert len(set(masks)) > 1
        assert max(masks) >> shift < span


# ---------------------------------------------------------------------------------------------
# The customer: its own key, its own model
# ---------------------------------------------------------------------------------------------
def _customer_copy(honest, tmp_path) -> Path:
    work, _, _ = honest
    copy = tmp_path / "customer"
    shutil.copytree(work, copy, symlinks=True)
    return copy


def _edit_json(path: Path, change) -> None:
    d = json.loads(path.read_text())
    change(d)
    files.atomic_write_bytes(path, files.dump_json(d).encode(), mode=path.stat().st_mode & 0o777)


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("both_files", [False, True], ids=["public-file-only", "both-key-files"])
@pytest.mark.parametrize("degraded", ["n-squared-minus-1", "one-plus-n", "secret-odd-order"])
def test_degraded_key_in_the_customers_folder_is_refused(honest, tmp_path, degraded, both_files):
    """A key folder whose h_s was replaced (fingerprints recomputed, so only the factorisation
    can tell) encrypts nothing: one Error line, exit 1, no output. With h_s = n² − 1 the old
    code sent every feature as ±(1 + m·n), in clear."""
    work = _customer_copy(honest, tmp_path)
    private = honest[1]
    n = int(private.public.n)
    h_s = {"n-squared-minus-1": n * n - 1, "one-plus-n": n + 1,
           "secret-odd-order": _secret_order_generator(private)[0]}[degraded]
    fingerprint = fingerprint_of(n, h_s)
    public_path, private_path = work / "PaillierKeys" / "public_key.json", work / "PaillierKeys" / "private_key.json"
    _edit_json(public_path, lambda d: d.update(h_s=format(h_s, "x"), fingerprint=fingerprint))
    if both_files:
        _edit_json(private_path, lambda d: d.update(h_s=format(h_s, "x"), fingerprint=fingerprint))
    before = _snapshot(work)
    proc = run_script("CustomerEncrypts.py", "records.csv", "-o", "out.json", WEAK, cwd=work)
    if not both_files:
        reason = (f"{private_path.relative_to(work)}: the public key's h_s is not the one its private key records "
                  "(the public key file was altered; delete it and it is rebuilt from the private key)")
    elif degraded == "one-plus-n":
        reason = (f"{private_path.relative_to(work)}: h_s is not an n-th residue: the public key's generator was "
                  "altered (create a new pair with `python -m ppml keygen --force`)")
    else:
        reason = (f"{private_path.relative_to(work)}: h_s does not have full order: the public key's generator was "
                  "altered (create a new pair with `python -m ppml keygen --force`)")
    assert (proc.returncode, proc.stdout, proc.stderr.decode()) == (1, b"", f"Error: {reason}\n")
    assert _snapshot(work) == before and not (work / "out.json").exists()


@pytest.mark.parametrize("change, reason", [
    (lambda d: d["codec"].update(weight_bits=d["codec"]["weight_bits"] + 1),
     "the answer's codec {codec} is not the model's {model_codec}"),
    (lambda d: d.update(model_fingerprint="sha256:" + "ab" * 32),
     "answers from model sha256:abababababab…, not from the customer's model ({fp}…, Model.json of --model)"),
    (lambda d: d.update(outputs=["Salary"]), "the answer's outputs ['Salary'] are not the model's ['Price']"),
])
def test_answer_cannot_change_how_the_customer_decodes(honest, tmp_path, params, change, reason):
    """The codec, slot count, outputs and link come from the customer's Model.json: an answer
    that claims another codec, model or outputs is refused (exit 4)."""
    work = _customer_copy(honest, tmp_path)
    _ok(run_script("ServerModelRun.py", "--params", str(ROOT / "Encrypted_ModelParameters"), WEAK, "-q", cwd=work))
    answer = work / "Encrypted_Predicted_value" / "answer.json"
    _edit_json(answer, change)
    proc = run_script("CustomerDecrypts.py", "-o", "tampered.csv", WEAK, cwd=work)
    spec = params.spec
    codec = dict(spec.codec.to_dict(), weight_bits=spec.codec.weight_bits + 1)
    reason = reason.format(codec=codec, model_codec=spec.codec.to_dict(), fp=spec.fingerprint[:19])
    assert (proc.returncode, proc.stderr.decode()) == (4, f"Error: Encrypted_Predicted_value/answer.json: {reason}\n")
    assert not (work / "tampered.csv").exists()


def test_generated_keys_follow_the_djn_construction():
    """Blum primes with gcd(p − 1, q − 1) = 2 and h_s of full order, for every key (not by luck)."""
    from ppml.paillier.keys import generate_keypair

    for _ in range(5):
        public, private = generate_keypair(1024, allow_weak=True)
        p, q = private.p, private.q
        assert p % 4 == 3 and q % 4 == 3 and gmpy2.gcd(p - 1, q - 1) == 2
        for prime, (a, big) in ((p, private.p_factors), (q, private.q_factors)):
            assert prime - 1 == 2 * a * big and gmpy2.is_prime(a) and gmpy2.is_prime(big)
            order = prime - 1
            h = public.h_s % prime  # h_s ≡ h^n (mod p): same order as h modulo p
            assert all(gmpy2.powmod(h, order // ell, prime) != 1 for ell in (2, a, big))
        assert gmpy2.jacobi(public.h_s % public.n, public.n) == 1
        private.check_generator()


def test_decryption_is_correct_with_constant_time_exponentiation(keypair):
    public, private = keypair
    from ppml.paillier import Encryptor

    enc = Encryptor(public)
    for m in (0, 1, 12345, int(public.n) - 1, secrets.randbelow(int(public.n))):
        assert private.raw_decrypt(enc.encrypt(m)) == m
    assert math.gcd(int(public.n), int(public.h_s)) == 1


def test_the_readmes_extraction_figures_follow_from_the_bundled_model(params):
    """README: the bundled model's weights and intercept hold about 1,953 bits, so a customer
    learning at most k + log2(3) bits per one-record answer needs at least 21 declared records,
    against d + 1 = 43 honest ones."""
    import math

    readme = (ROOT / "README.md").read_text()
    (W, B), = params.integer_weights()
    bits = sum(abs(w).bit_length() + 1 for w in W) + abs(B).bit_length() + 1
    k = params.spec.codec.slot_bits
    records = math.ceil(bits / (k + math.log2(3)))
    assert (round(bits, -1), records, len(W) + 1) == (1950, 21, 43)
    assert f"about {bits:,} bits in all, `k` = {k}" in readme
    assert f"**{records} declared records**" in readme and f"`d + 1 = {len(W) + 1}`" in readme


def test_decryption_never_uses_variable_time_exponentiation(keypair, monkeypatch):
    """The key owner's secret exponents p − 1 and q − 1 only ever go through gmpy2.powmod_sec:
    with gmpy2.powmod made to fail, decryption still works."""
    from ppml.paillier import Encryptor
    from ppml.paillier import keys as keys_module

    public, private = keypair
    c = Encryptor(public).encrypt(424242)

    def refuse(*args):
        raise AssertionError("variable-time powmod used with a secret exponent")

    monkeypatch.setattr(keys_module.gmpy2, "powmod", refuse)
    assert private.raw_decrypt(c) == 424242
