"""Paillier key pairs with a Damgård–Jurik–Nielsen (DJN) public generator.

The public key is ``(n, h_s)`` with ``g = n + 1`` implied (so raw ciphertexts are the ones
python-paillier produces) and ``h_s = (−x²)^n mod n²``. Anybody can then encrypt as
``(1 + m·n) · h_s^α mod n²`` with a short random exponent ``α`` instead of ``r^n`` with a
full-size ``r`` — see :mod:`ppml.paillier.scheme` for the construction, its assumption and the
reference.

Keys are built as the DJN paper builds them: ``p`` and ``q`` are Blum primes
(``p ≡ q ≡ 3 mod 4``) with ``gcd(p − 1, q − 1) = 2``, so the group of Jacobi-symbol-1 units is
cyclic of order ``λ = lcm(p − 1, q − 1)``, and ``h = −x²`` is chosen to generate it. Each prime
is made as ``p = 2·a·P + 1`` with ``a`` (about 64 bits) and ``P`` prime, so the key owner knows
the factorisation of ``p − 1`` and can *prove* to itself, every time it loads its key, that
``h_s`` is an n-th residue of full order ``λ`` (:meth:`PrivateKey.check_generator`): a public-key
file whose ``h_s`` was replaced (by ``±1``, ``1 + n``, an element of small or secret order) is
refused, never used to "encrypt". The key fingerprint covers ``n`` and ``h_s``.

The public key carries a proof that its modulus is well formed (:mod:`ppml.paillier.proof`):
the company, which must not trust the customer's choice of ``n``, verifies it before it computes
anything. Parsing a key only checks the proof's shape; :func:`ppml.paillier.proof.require_proven`
does the arithmetic.

The private key is the factorisation; decryption uses the CRT over ``p²`` and ``q²`` (see
:meth:`PrivateKey.raw_decrypt` for what runs in constant time and what does not). No file I/O here: ``to_dict``/``from_dict`` give plain JSON-able dicts and validate them.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

import gmpy2

from ..errors import KeyFileError, KeyMismatchError, KeyProofError
from .proof import ModulusProof, prove
from ..validation import check_header, hex_int, shown

#: Smallest modulus accepted without ``allow_weak`` (NIST SP 800-57: 2048 bits ≈ 112-bit security).
MIN_SECURE_BITS = 2048
#: Smallest modulus accepted at all, even for tests.
MIN_TEST_BITS = 512
DEFAULT_KEY_BITS = 3072

PUBLIC_FORMAT = "ppml.paillier-public-key"
PRIVATE_FORMAT = "ppml.paillier-private-key"
#: Version 3: the public key carries its modulus proof. (Version 2: fingerprint over (n, h_s),
#: primes with a known factorisation of p − 1.)
KEY_VERSION = 3
#: The command that turns a version-2 key folder into a version-3 one.
PROVE_COMMAND = "python -m ppml prove-key --keys DIR"


def fingerprint_of(n: int, h_s: int) -> str:
    """``sha256:`` + SHA-256 of the ASCII text ``"<n hex>:<h_s hex>"`` (lowercase, no leading
    zeros): names a key in every document. It covers ``h_s`` so that a public key whose
    generator was swapped no longer matches the private key that records the original."""
    return "sha256:" + hashlib.sha256(f"{int(n):x}:{int(h_s):x}".encode("ascii")).hexdigest()


def crt(a, b, m1, m2, m1_inv):
    """The ``x mod m1·m2`` with ``x ≡ a (mod m1)`` and ``x ≡ b (mod m2)`` (Garner's form), given
    ``a, b ≥ 0`` and ``m1_inv = m1⁻¹ mod m2``: how every CRT result (decryption, the owner's
    encryption, key generation) is put back together. ``b + m2 − (a mod m2)`` keeps the operand
    positive, so the reduction has no sign to correct (no branch on secret residues)."""
    return a + ((b + m2 - a % m2) * m1_inv % m2) * m1


def check_key_size(bits: int, allow_weak: bool = False) -> None:
    """Refuse moduli that are too small to be secure (or, with ``allow_weak``, to work)."""
    floor = MIN_TEST_BITS if allow_weak else MIN_SECURE_BITS
    if bits < floor:
        hint = "" if allow_weak else " (smaller keys only for tests, with --allow-weak-key)"
        raise KeyFileError(f"a {bits}-bit key is too small: at least {floor} bits{hint}")


@dataclass(frozen=True, eq=False)
class PublicKey:
    """``n``, the DJN generator ``h_s`` and the modulus proof: everything the company ever
    needs. The proof is not part of the key's identity (equality, fingerprint): it is evidence
    about ``n``, checked once per key."""

    n: gmpy2.mpz
    h_s: gmpy2.mpz
    proof: ModulusProof | None = field(default=None, repr=False)
    n_sq: gmpy2.mpz = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "n", gmpy2.mpz(self.n))
        object.__setattr__(self, "h_s", gmpy2.mpz(self.h_s))
        object.__setattr__(self, "n_sq", self.n * self.n)

    @property
    def bits(self) -> int:
        return int(self.n.bit_length())

    @property
    def alpha_bits(self) -> int:
        """Length of the DJN randomness α: ⌈|n|/2⌉, the conservative choice of the original paper."""
        return (self.bits + 1) // 2

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.n, self.h_s)

    def __eq__(self, other) -> bool:
        return isinstance(other, PublicKey) and self.n == other.n and self.h_s == other.h_s

    def __hash__(self) -> int:
        return hash(int(self.n))

    def check_ciphertext(self, c: int, where: str = "ciphertext") -> gmpy2.mpz:
        """Return ``c`` as mpz if it is a valid ciphertext: ``0 < c < n²`` and ``gcd(c, n) = 1``."""
        c = gmpy2.mpz(c)
        if not 0 < c < self.n_sq:
            raise KeyMismatchError(f"{where} is out of range for this key (need 0 < c < n²)")
        if gmpy2.gcd(c, self.n) != 1:
            raise KeyMismatchError(f"{where} is not a unit modulo n: not a valid ciphertext")
        return c

    def to_dict(self) -> dict:
        if self.proof is None:  # programming error: every key this toolkit writes is proven
            raise ValueError("a public key without its modulus proof cannot be written")
        return {
            "format": PUBLIC_FORMAT,
            "version": KEY_VERSION,
            "bits": self.bits,
            "fingerprint": self.fingerprint,
            "n": format(self.n, "x"),
            "h_s": format(self.h_s, "x"),
            "proof": self.proof.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict, allow_weak: bool = False) -> "PublicKey":
        """Parse a public key with cheap checks only: odd ``n`` of the declared size, ``h_s`` a
        unit modulo ``n²``, fingerprint consistent, a modulus proof of the right shape. Whether
        the proof verifies (and so whether ``n`` may be used at all) is
        :func:`ppml.paillier.proof.require_proven`'s question."""
        _check_header(d, PUBLIC_FORMAT)
        n = _hex_field(d, "n")
        h_s = _hex_field(d, "h_s")
        bits = d.get("bits")
        if not isinstance(bits, int) or isinstance(bits, bool) or bits != n.bit_length():
            raise KeyFileError(f"declared size {shown(bits)} does not match n ({n.bit_length()} bits)")
        check_key_size(bits, allow_weak)
        if n % 2 == 0:
            raise KeyFileError("n is even: not an RSA modulus")
        if not 1 < h_s < n * n or gmpy2.gcd(h_s, n) != 1:
            raise KeyFileError("h_s is not a unit modulo n²")
        if fingerprint_of(n, h_s) != d.get("fingerprint"):
            raise KeyFileError("fingerprint does not match n and h_s (the key file was altered)")
        if "proof" not in d:
            raise KeyProofError("field 'proof' is missing: the key carries no modulus proof")
        return cls(n, h_s, ModulusProof.from_dict(d["proof"], n))


@dataclass(frozen=True, eq=False)
class PrivateKey:
    """The factorisation of ``n`` (with the factors of ``p − 1`` and ``q − 1``, which let the
    owner check its generator) plus CRT constants for fast decryption (and encryption).

    ``p_factors = (a, P)`` means ``p = 2·a·P + 1`` with ``a`` and ``P`` odd primes.
    """

    public: PublicKey
    p: gmpy2.mpz
    q: gmpy2.mpz
    p_factors: tuple
    q_factors: tuple

    def __post_init__(self):
        (p, pf), (q, qf) = sorted(((gmpy2.mpz(self.p), tuple(map(gmpy2.mpz, self.p_factors))),
                                   (gmpy2.mpz(self.q), tuple(map(gmpy2.mpz, self.q_factors)))))
        if p * q != self.public.n:
            raise KeyMismatchError("p·q ≠ n: the private key does not belong to this public key")
        for name, value in (("p", p), ("q", q), ("p_factors", pf), ("q_factors", qf)):
            object.__setattr__(self, name, value)
        p_sq, q_sq = p * p, q * q
        object.__setattr__(self, "_p_sq", p_sq)
        object.__setattr__(self, "_q_sq", q_sq)
        # h_p = L_p(g^(p−1) mod p²)^−1 mod p with g = n + 1 (Paillier, CRT variant).
        object.__setattr__(self, "_hp", gmpy2.invert(_l(gmpy2.powmod_sec(self.public.n + 1, p - 1, p_sq), p), p))
        object.__setattr__(self, "_hq", gmpy2.invert(_l(gmpy2.powmod_sec(self.public.n + 1, q - 1, q_sq), q), q))
        object.__setattr__(self, "_p_inv_q", gmpy2.invert(p, q))

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    def raw_decrypt(self, c: int) -> gmpy2.mpz:
        """Plaintext in ``[0, n)`` of ciphertext ``c`` by the CRT: two half-size exponentiations.

        The company picks ``c`` and may time the customer (the portal answers online), so the
        secret arithmetic has no branch on secret values: ``powmod_sec`` (GMP's
        ``mpz_powm_sec``, constant time) for the exponentiations, an exact division for the
        ``L`` step (``gmpy2.divexact``: no remainder, no quotient correction) and the
        sign-free Garner form of :func:`crt`. What stays variable-time is below gmpy2's
        interface: GMP's ``mpz`` multiplication, exact division and reduction run in time
        that depends on their operands' lengths in limbs (leading zero limbs are stripped),
        and gmpy2 exposes none of GMP's ``mpn_sec_*`` functions that would fix the lengths.
        Reading the slots out of the plaintext (after decryption) is ordinary arithmetic on
        the customer's own result."""
        mp = _l(gmpy2.powmod_sec(c, self.p - 1, self._p_sq), self.p) * self._hp % self.p
        mq = _l(gmpy2.powmod_sec(c, self.q - 1, self._q_sq), self.q) * self._hq % self.q
        return crt(mp, mq, self.p, self.q, self._p_inv_q)

    def check_generator(self) -> None:
        """Prove that ``h_s`` is what key generation made: an n-th residue of full order
        ``λ = lcm(p − 1, q − 1)`` (so not ``±1``, not of small or secret order, not ``1 + n``).

        Modulo ``p²`` (cyclic of order ``p(p − 1)``) ``h_s`` is an n-th residue iff
        ``h_s^(p−1) = 1``, and then has order exactly ``p − 1`` iff ``h_s^((p−1)/ℓ) ≠ 1`` for the
        three primes ``ℓ ∈ {2, a, P}`` of ``p − 1``; likewise modulo ``q²``. A ``h_s`` that fails
        would let DJN encryption leak: ``h_s = n² − 1`` turns every ciphertext into ``±(1 + m·n)``.
        """
        h_s = self.public.h_s
        for prime, factors, modulus in ((self.p, self.p_factors, self._p_sq), (self.q, self.q_factors, self._q_sq)):
            order = prime - 1
            if gmpy2.powmod_sec(h_s, order, modulus) != 1:
                raise KeyFileError("h_s is not an n-th residue: the public key's generator was altered "
                                   "(create a new pair with `python -m ppml keygen --force`)")
            if any(gmpy2.powmod_sec(h_s, order // ell, modulus) == 1 for ell in (2, *factors)):
                raise KeyFileError("h_s does not have full order: the public key's generator was altered "
                                   "(create a new pair with `python -m ppml keygen --force`)")

    def to_dict(self) -> dict:
        return {
            "format": PRIVATE_FORMAT,
            "version": KEY_VERSION,
            "fingerprint": self.fingerprint,
            "p": format(self.p, "x"),
            "q": format(self.q, "x"),
            "p_factors": [format(f, "x") for f in self.p_factors],
            "q_factors": [format(f, "x") for f in self.q_factors],
            "h_s": format(self.public.h_s, "x"),
        }

    @classmethod
    def from_dict(cls, d: dict, public: PublicKey) -> "PrivateKey":
        """The private key for ``public``, refused unless it is a well-formed pair whose
        generator passes :meth:`check_generator`."""
        _check_header(d, PRIVATE_FORMAT)
        same_n = _hex_field(d, "p") * _hex_field(d, "q") == public.n
        if d.get("fingerprint") != public.fingerprint:
            if same_n:
                raise KeyFileError("the public key's h_s is not the one its private key records (the public "
                                   "key file was altered; delete it and it is rebuilt from the private key)")
            raise KeyMismatchError(
                f"private key {shown(d.get('fingerprint'))} does not belong to public key {public.fingerprint}"
            )
        if not same_n:
            raise KeyMismatchError("p·q ≠ n: the private key does not belong to this public key")
        private = cls.restore(d)
        if private.public != public:  # the fingerprint matched, so only a hash collision gets here
            raise KeyMismatchError("the private key does not belong to this public key")
        return private

    @classmethod
    def restore(cls, d: dict, upgrade: bool = False) -> "PrivateKey":
        """The key pair from the private-key file alone (it records ``h_s``), with a fresh
        modulus proof: for a key folder whose public key was lost (a run killed between
        writing the two files), and, with ``upgrade``, for a version-2 file (no proof yet)."""
        _check_header(d, PRIVATE_FORMAT, upgrade)
        p, q = _primes(_hex_field(d, "p"), _hex_field(d, "q"))
        p_factors, q_factors = _factors(d, "p_factors", p), _factors(d, "q_factors", q)
        if gmpy2.gcd(p - 1, q - 1) != 2:
            raise KeyFileError("gcd(p − 1, q − 1) ≠ 2: not a key this toolkit generates")
        h_s = _hex_field(d, "h_s")
        n = p * q
        if not h_s < n * n or gmpy2.gcd(h_s, n) != 1:
            raise KeyFileError("h_s is not a unit modulo n²")
        if fingerprint_of(n, h_s) != d.get("fingerprint"):
            raise KeyFileError("fingerprint does not match p·q and h_s (the key file was altered)")
        private = cls(PublicKey(n, h_s, prove(p, q, h_s)), p, q, p_factors, q_factors)
        private.check_generator()
        return private


def _primes(p: gmpy2.mpz, q: gmpy2.mpz) -> tuple[gmpy2.mpz, gmpy2.mpz]:
    # Composite factors with p·q = n would decrypt to garbage without any error.
    if p == q or not (gmpy2.is_prime(p) and gmpy2.is_prime(q)):
        raise KeyFileError("p and q are not two distinct primes: not a Paillier private key")
    return p, q


def _factors(d: dict, name: str, prime) -> tuple:
    """``[a, P]`` with ``prime = 2·a·P + 1``, both odd primes (a Blum prime with known ``p − 1``)."""
    v = d.get(name)
    if not isinstance(v, list) or len(v) != 2:
        raise KeyFileError(f"field {name!r} must list the two odd prime factors of (p − 1)/2")
    a, big = (_hex_field({name: x}, name) for x in v)
    if 2 * a * big + 1 != prime or a % 2 == 0 or big % 2 == 0 or not (gmpy2.is_prime(a) and gmpy2.is_prime(big)):
        raise KeyFileError(f"field {name!r} is not the factorisation of (p − 1)/2 into two odd primes")
    return a, big


def _l(u, d):
    """Paillier's ``L(u) = (u − 1)/d``, an exact division for every ``u ≡ 1 (mod d)``."""
    return gmpy2.divexact(u - 1, d)


def _check_header(d, fmt: str, upgrade: bool = False) -> None:
    if isinstance(d, dict) and d.get("format") == fmt and d.get("version") == 2 and d.get("version") is not True:
        if upgrade:
            return
        raise KeyVersionError(f"a version-2 key carries no modulus proof, which the company now requires; add one "
                              f"with `{PROVE_COMMAND}` (the key itself is kept)")
    check_header(d, fmt, KEY_VERSION, KeyFileError, "; create a new pair with `python -m ppml keygen --force`")


class KeyVersionError(KeyProofError):
    """A version-2 key file: sound, but without the modulus proof version 3 adds."""

    def for_folder(self, folder: str) -> "KeyVersionError":
        """The same error naming the key folder in the command to run."""
        return KeyVersionError(self.message.replace("DIR", folder), self.source)


def _hex_field(d: dict, name: str) -> gmpy2.mpz:
    value = gmpy2.mpz(hex_int(d.get(name), f"field {name!r}", 8192, KeyFileError))
    if value <= 1:
        raise KeyFileError(f"field {name!r} must be greater than 1")
    return value


def _blum_prime(bits: int) -> tuple[gmpy2.mpz, gmpy2.mpz, gmpy2.mpz]:
    """A random prime ``p = 2·a·P + 1`` of exactly ``bits`` bits with ``p ≥ 3·2^(bits−2)`` (so a
    product of two has ``2·bits`` bits), ``a`` a prime of about 64 bits and ``P`` a large prime:
    a Blum prime (``p ≡ 3 mod 4``) whose ``p − 1`` the owner can factor. Returns ``(p, a, P)``.

    ``P`` is drawn once; then only the small ``a`` varies, so each try costs a 64-bit prime and
    one primality test of ``p`` (p − 1 keeps a large prime factor, so Pollard's p − 1 gains nothing).
    """
    big_bits = bits - 66
    while True:
        big = gmpy2.next_prime(gmpy2.mpz(secrets.randbits(big_bits) | (1 << (big_bits - 1))))
        if big.bit_length() != big_bits:
            continue
        lo = -(-(3 << (bits - 2)) // (2 * big))  # smallest a with 2·a·P + 1 ≥ 3·2^(bits−2)
        hi = ((1 << bits) - 1) // (2 * big)  # largest a with p < 2^bits
        for _ in range(20 * bits):
            a = gmpy2.next_prime(lo + secrets.randbelow(int(hi - lo)))
            p = 2 * a * big + 1
            if a <= hi and p.bit_length() == bits and gmpy2.is_prime(p, 50):
                return p, a, big


def generate_keypair(bits: int = DEFAULT_KEY_BITS, allow_weak: bool = False) -> tuple[PublicKey, PrivateKey]:
    """Fresh DJN key pair with an ``bits``-bit modulus, randomness from ``secrets``: Blum primes
    with ``gcd(p − 1, q − 1) = 2`` and a generator of full order (see the module docstring)."""
    if bits % 2:
        raise KeyFileError(f"key size must be even, got {bits}")
    check_key_size(bits, allow_weak)
    half = bits // 2
    while True:
        p, *p_factors = _blum_prime(half)
        q, *q_factors = _blum_prime(half)
        n = p * q
        if p != q and n.bit_length() == bits and gmpy2.gcd(p - 1, q - 1) == 2:
            break
    h_s = djn_generator(p, q, p_factors, q_factors)
    public = PublicKey(n, h_s, prove(p, q, h_s))
    return public, PrivateKey(public, p, q, p_factors, q_factors)


def djn_generator(p, q, p_factors, q_factors) -> gmpy2.mpz:
    """``h_s = h^n mod n²`` for ``h = −x² mod n`` of full order ``lcm(p − 1, q − 1)`` (DJN).

    ``−x²`` is a non-square modulo ``p`` and ``q`` (``−1`` is one, for Blum primes); it has full
    order modulo ``p`` unless ``x²`` misses a factor ``a`` or ``P`` of ``(p − 1)/2``, which a
    random ``x`` does with probability about ``1/a``: such an ``x`` is drawn again.
    """
    n = p * q
    while True:
        x = gmpy2.mpz(secrets.randbelow(int(n) - 2) + 2)
        if gmpy2.gcd(x, n) != 1:
            continue
        h = (-x * x) % n
        if all(gmpy2.powmod_sec(h, (r - 1) // ell, r) != 1
               for r, factors in ((p, p_factors), (q, q_factors)) for ell in (2, *factors)):
            break
    # h^n mod n² via CRT over p², q² (half-size moduli, about 3× faster than direct).
    p_sq, q_sq = p * p, q * q
    hp, hq = gmpy2.powmod_sec(h, n, p_sq), gmpy2.powmod_sec(h, n, q_sq)
    return crt(hp, hq, p_sq, q_sq, gmpy2.invert(p_sq, q_sq))
