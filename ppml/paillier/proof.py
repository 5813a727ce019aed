"""A non-interactive proof that a customer's Paillier modulus is well formed.

Why the company needs it. The company answers with ``c · r^n mod n²`` (``r`` its own, uniform
in ``Z_n^*``) plus a random mask above the declared slots. That hides everything about its
weights except the masked plaintext **only if** ``gcd(n, φ(n)) = 1``: then ``Z*_{n²}`` is the
direct product of ``⟨1 + n⟩`` (order ``n``) and the ``n``-th residues (order ``φ(n)``), the map
``r ↦ r^n mod n²`` is a bijection from ``Z_n^*`` onto the ``n``-th residues (its kernel is
``r ≡ 1 mod n``), so ``c · r^n`` is ``(1 + n)^m`` times a *uniform* ``n``-th residue,
independent of everything else: the answer reveals ``m mod n`` and nothing more. A customer
who crafts ``n = p·S`` with ``S | p − 1`` breaks that: ``Z*_{p²}`` then has a component of order
``S`` that ``r^n`` cannot touch (``S | n``), the server's ``∏ c_i^{W_i}`` carries
``Σ e_i·W_i mod S`` through it, and Pohlig–Hellman reads the weights back from one record.
So the company computes nothing with a key whose proof does not verify.

The statement, for the public key ``(n, h_s)`` (``h_s`` is bound into every challenge):

1. **``n`` is odd, not prime, and has no prime factor below** :data:`SMALL_FACTOR_BOUND`
   ``= 2^16``. The verifier checks this itself: one gcd with the product of the primes below
   the bound, and a probable-prime test (a prime ``n`` always fails it, so a verdict
   "composite" is never wrong where it matters).
2. **``gcd(n, φ(n)) = 1``** (Goldberg, Reyzin, Sagga and Baldimtsi, "Efficient noninteractive
   certification of RSA moduli and beyond", ASIACRYPT 2019). For ``i < NTH_ROOT_ROUNDS`` the
   proof holds ``z_i`` with ``z_i^n ≡ ρ_i (mod n)``, ``ρ_i = H("nth-root", n, h_s, i)``.
   Soundness: if a prime ``ℓ`` divides both ``n`` and ``φ(n)``, some cyclic factor
   ``Z*_{r^e}`` of ``Z_n^*`` has order divisible by ``ℓ`` while ``ℓ | n``, so the ``n``-th
   powers have index at least ``ℓ`` in ``Z_n^*``; by 1., ``ℓ > 2^16``. A challenge that is a
   unit (the verifier refuses any other) is an ``n``-th residue with probability below
   ``2^−16``: ``8`` rounds give ``2^−128``.
3. **``n = p·q`` with ``p ≡ q ≡ 3 (mod 4)``** (the Paillier–Blum modulus proof of Canetti,
   Gennaro, Goldfeder, Makriyannis and Peled, "UC non-interactive, proactive, threshold ECDSA
   with identifiable aborts", CCS 2020, ``Π^mod``). The proof holds ``w`` with Jacobi symbol
   ``(w | n) = −1`` and, for ``i < FOURTH_ROOT_ROUNDS``, ``x_i`` with
   ``x_i^4 ≡ ±w^b·y_i (mod n)`` for some sign and ``b ∈ {0, 1}``,
   ``y_i = H("fourth-root", n, h_s, w, i)``. Soundness: by 2., ``n`` is square-free. If it has
   three or more prime factors, the squares have index ``≥ 8`` in ``Z_n^*`` and the four
   cosets ``{±1, ±w}·y`` hit them with probability at most ``1/2``; with two factors one of
   which is ``≡ 1 (mod 4)``, the fourth powers have index ``≥ 8``, likewise. ``128`` rounds
   give ``2^−128``. (With one factor, 1. refuses.)

``H(label, …)`` is SHA-256 in counter mode over the ASCII text
``"ppml-modulus-proof-v1:<label>:<n hex>:<h_s hex>[:<w hex>]:<i>:<j>"`` for ``j = 0, 1, …``,
the first ``⌈(|n| + 128)/8⌉`` bytes read big-endian and reduced mod ``n`` (statistically
within ``2^−128`` of uniform). The challenges depend only on the statement (and ``w``), so a
cheating prover's only freedom is to try other moduli: each try succeeds with probability at
most ``2^−128`` per part. docs/protocol.md §2 gives the same rules for other implementations.

With the proof, an answer ciphertext reveals exactly its plaintext modulo ``n`` — the declared
slots plus the company's uniform mask — and the plaintext reveals at most the slot width per
declared record (see :func:`ppml.paillier.scheme.mask_undeclared`). Proving costs the key
owner ``2·128`` half-size exponentiations; verifying costs ``8`` full-size ones.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gmpy2

from ..errors import KeyProofError
from ..validation import hex_int

if TYPE_CHECKING:
    from .keys import PublicKey

DOMAIN = "ppml-modulus-proof-v1"
#: Rounds of n-th roots: each fails a bad modulus with probability ≥ 1 − 2^−16.
NTH_ROOT_ROUNDS = 8
#: Rounds of fourth roots: each fails a modulus that is not Paillier–Blum with probability ≥ 1/2.
FOURTH_ROOT_ROUNDS = 128
#: No prime factor of n may lie below this bound (it sets the n-th-root rounds' soundness).
SMALL_FACTOR_BOUND = 1 << 16
#: Statistical distance of a hashed challenge from uniform: 2^−SECURITY_BITS.
SECURITY_BITS = 128
#: Keys whose proof verified, by fingerprint (bounded: a service sees many customers).
CACHE_SIZE = 4096

_FIELDS = ("w", "nth_roots", "fourth_roots")
_small_primes = None


@dataclass(frozen=True)
class ModulusProof:
    """``w``, the ``n``-th roots ``z_i`` and the fourth roots ``x_i`` (see the module docstring)."""

    w: int
    nth_roots: tuple[int, ...]
    fourth_roots: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"w": format(self.w, "x"), "nth_roots": [format(z, "x") for z in self.nth_roots],
                "fourth_roots": [format(x, "x") for x in self.fourth_roots]}

    @classmethod
    def from_dict(cls, d, n: int) -> ModulusProof:
        """The proof's shape, checked without any exponentiation: exactly the three fields, the
        fixed round counts, and every value a hexadecimal number in ``[1, n)``. Whether it
        *verifies* is :func:`verify`'s question (the expensive one)."""
        if not isinstance(d, dict):
            raise KeyProofError(f"field 'proof' must be an object, got {type(d).__name__}")
        if set(d) != set(_FIELDS):
            raise KeyProofError(f"field 'proof' must have exactly the fields {', '.join(_FIELDS)}")
        digits = (int(n).bit_length() + 3) // 4

        def number(value, where: str) -> int:
            v = hex_int(value, where, digits, KeyProofError)
            if not 0 < v < n:
                raise KeyProofError(f"{where} is not in [1, n)")
            return v

        def numbers(name: str, count: int) -> tuple[int, ...]:
            values = d[name]
            if not isinstance(values, list) or len(values) != count:
                raise KeyProofError(f"proof field {name!r} must be a list of {count} hexadecimal numbers")
            return tuple(number(v, f"proof {name}[{i}]") for i, v in enumerate(values))

        return cls(number(d["w"], "proof field 'w'"), numbers("nth_roots", NTH_ROOT_ROUNDS),
                   numbers("fourth_roots", FOURTH_ROOT_ROUNDS))


def challenge(label: str, n: int, h_s: int, i: int, w: int | None = None) -> gmpy2.mpz:
    """``H(label, n, h_s[, w], i)``: a challenge in ``Z_n``, SHA-256 in counter mode (module
    docstring)."""
    parts = [DOMAIN, label, format(n, "x"), format(h_s, "x"), *([format(w, "x")] if w is not None else []), str(i)]
    seed = ":".join(parts).encode("ascii")
    size = (int(n).bit_length() + SECURITY_BITS + 7) // 8
    stream = b"".join(hashlib.sha256(seed + b":" + str(j).encode("ascii")).digest() for j in range(-(-size // 32)))
    return gmpy2.mpz(int.from_bytes(stream[:size], "big")) % n


def prove(p: int, q: int, h_s: int) -> ModulusProof:
    """The proof for ``n = p·q`` (distinct primes ``≡ 3 mod 4``), made by the key owner.

    Exponents derived from ``p`` and ``q`` are secret, so every exponentiation is
    ``powmod_sec``. Raises KeyProofError for factors that cannot have a proof (the owner's own
    key is then not one this toolkit accepts)."""
    p, q = gmpy2.mpz(p), gmpy2.mpz(q)
    n = p * q
    if p % 4 != 3 or q % 4 != 3 or p == q:
        raise KeyProofError("the modulus proof needs two distinct primes p ≡ q ≡ 3 (mod 4)")
    if gmpy2.gcd(n, (p - 1) * (q - 1)) != 1:
        raise KeyProofError("gcd(n, φ(n)) ≠ 1: no modulus proof exists for this key")
    from .keys import crt as join  # the one CRT recombination (keys imports this module first)

    p_inv_q = gmpy2.invert(p, q)

    def crt(a, b):  # the x mod n with x ≡ a (mod p), x ≡ b (mod q)
        return join(a, b, p, q, p_inv_q)

    # n-th roots: z = ρ^(n⁻¹ mod φ(n)), by the CRT with n⁻¹ mod (p − 1) and mod (q − 1).
    d_p, d_q = gmpy2.invert(n, p - 1), gmpy2.invert(n, q - 1)
    nth = []
    for i in range(NTH_ROOT_ROUNDS):
        rho = _unit_challenge("nth-root", n, h_s, i)
        nth.append(crt(gmpy2.powmod_sec(rho % p, d_p, p), gmpy2.powmod_sec(rho % q, d_q, q)))
    # Fourth roots: for p ≡ 3 (mod 4) a square a has the square root a^((p+1)/4), itself a square,
    # so a^(((p+1)/4)² mod (p−1)) is a fourth root.
    e_p, e_q = ((p + 1) // 4) ** 2 % (p - 1), ((q + 1) // 4) ** 2 % (q - 1)
    while True:
        w = gmpy2.mpz(secrets.randbelow(int(n) - 2) + 2)
        if gmpy2.jacobi(w, n) == -1:
            break
    fourth = []
    for i in range(FOURTH_ROOT_ROUNDS):
        y = _unit_challenge("fourth-root", n, h_s, i, w)
        for candidate in (y, n - y, w * y % n, n - w * y % n):
            if gmpy2.legendre(candidate, p) == 1 and gmpy2.legendre(candidate, q) == 1:
                break
        fourth.append(crt(gmpy2.powmod_sec(candidate % p, e_p, p), gmpy2.powmod_sec(candidate % q, e_q, q)))
    return ModulusProof(int(w), tuple(map(int, nth)), tuple(map(int, fourth)))


def _unit_challenge(label: str, n, h_s, i: int, w=None) -> gmpy2.mpz:
    value = challenge(label, n, h_s, i, w)
    if gmpy2.gcd(value, n) != 1:  # probability below 2^−1000 for an honest key; it would factor n
        raise KeyProofError(f"challenge {label} {i} is not a unit modulo n: the modulus proof is refused")
    return value


def verify(n: int, h_s: int, proof: ModulusProof | None) -> None:
    """Raise KeyProofError unless ``proof`` shows that ``n`` is a Paillier–Blum modulus with
    ``gcd(n, φ(n)) = 1`` and no prime factor below ``2^16`` (module docstring). Cheap checks
    come first; the cost is dominated by ``NTH_ROOT_ROUNDS`` exponentiations modulo ``n``."""
    n, h_s = gmpy2.mpz(n), gmpy2.mpz(h_s)
    if proof is None:
        raise KeyProofError("the public key carries no modulus proof (the customer adds one with "
                            "`python -m ppml prove-key`)")
    if n % 2 == 0 or n < SMALL_FACTOR_BOUND:
        raise KeyProofError("n is not an odd modulus above 2^16")
    if gmpy2.gcd(n, _small_prime_product()) != 1:
        raise KeyProofError(f"n has a prime factor below {SMALL_FACTOR_BOUND}")
    if gmpy2.is_prime(n, 1):  # a prime always passes, so this never accepts a prime
        raise KeyProofError("n is prime, not an RSA modulus")
    if gmpy2.jacobi(proof.w, n) != -1:
        raise KeyProofError("the modulus proof's w does not have Jacobi symbol −1")
    for i, x in enumerate(proof.fourth_roots):
        y = _unit_challenge("fourth-root", n, h_s, i, proof.w)
        wy = proof.w * y % n
        if gmpy2.powmod(x, 4, n) not in (y, n - y, wy, n - wy):
            raise KeyProofError(f"the modulus proof fails at fourth root {i}: n is not a product of two "
                                "primes ≡ 3 (mod 4)")
    for i, z in enumerate(proof.nth_roots):
        if gmpy2.powmod(z, n, n) != _unit_challenge("nth-root", n, h_s, i):
            raise KeyProofError(f"the modulus proof fails at n-th root {i}: gcd(n, φ(n)) ≠ 1 is not ruled out")


def _small_prime_product() -> gmpy2.mpz:
    global _small_primes
    if _small_primes is None:
        _small_primes = gmpy2.primorial(SMALL_FACTOR_BOUND - 1)
    return _small_primes


class _Verified:
    """Fingerprints of keys whose proof verified in this process, least recently used out
    first. The fingerprint covers ``(n, h_s)``, which is the whole statement, so a later
    document with the same key needs no second check whatever proof bytes it carries."""

    def __init__(self, size: int):
        self.size = size
        self.keys: OrderedDict[str, None] = OrderedDict()
        self.lock = threading.Lock()

    def __contains__(self, fingerprint: str) -> bool:
        with self.lock:
            if fingerprint in self.keys:
                self.keys.move_to_end(fingerprint)
                return True
            return False

    def add(self, fingerprint: str) -> None:
        with self.lock:
            self.keys[fingerprint] = None
            while len(self.keys) > self.size:
                self.keys.popitem(last=False)


_verified = _Verified(CACHE_SIZE)


def require_proven(public: PublicKey) -> None:
    """Raise KeyProofError unless ``public`` carries a modulus proof that verifies; checked once
    per key and process (by fingerprint). The company calls this before computing anything
    with a customer's key. Costly (about 0.1 s at 3072 bits): a service runs it off its event
    loop."""
    fingerprint = public.fingerprint
    if fingerprint in _verified:
        return
    verify(public.n, public.h_s, public.proof)
    _verified.add(fingerprint)


def is_proven(public: PublicKey) -> bool:
    """Whether :func:`require_proven` has already accepted this key in this process (a service
    decides with it whether the check must be queued off its event loop)."""
    return public.fingerprint in _verified
