"""Paillier key pairs with a Damgård–Jurik–Nielsen (DJN) public generator.

The public key is ``(n, h_s)`` with ``g = n + 1`` implied (so raw ciphertexts are the ones
python-paillier produces) and ``h_s = (−x²)^n mod n²`` for a random unit ``x``. Anybody can
then encrypt as ``(1 + m·n) · h_s^α mod n²`` with a short random exponent ``α`` instead of
``r^n`` with a full-size ``r`` — see :mod:`ppml.paillier.scheme` for the construction, its
assumption and the reference. The private key is the factorisation ``p, q``; decryption uses
the CRT over ``p²`` and ``q²``.

No file I/O here: ``to_dict``/``from_dict`` give plain JSON-able dicts and validate them.
"""
from __future__ import annotations

import hashlib
import math
import re
import reprlib
import secrets
from dataclasses import dataclass, field

import gmpy2

from ..errors import KeyFileError, KeyMismatchError

#: Smallest modulus accepted without ``allow_weak`` (NIST SP 800-57: 2048 bits ≈ 112-bit security).
MIN_SECURE_BITS = 2048
#: Smallest modulus accepted at all, even for tests.
MIN_TEST_BITS = 512
DEFAULT_KEY_BITS = 3072

PUBLIC_FORMAT = "ppml.paillier-public-key"
PRIVATE_FORMAT = "ppml.paillier-private-key"
KEY_VERSION = 1
#: What a hexadecimal field holds (``int(…, 16)`` alone would also take "0x…", "_", spaces, signs).
HEX = re.compile(r"[0-9a-fA-F]+")

_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 80
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxdict = 2, 4, 4


def shown(value) -> str:
    """``repr`` of a value read from a file, for an error message: bounded in length, and safe
    on values nested too deeply for ``repr`` itself."""
    return _SHOW.repr(value)


def fingerprint_of(n: int) -> str:
    """SHA-256 of the big-endian bytes of ``n``: names a key in every document."""
    n = int(n)
    return "sha256:" + hashlib.sha256(n.to_bytes((n.bit_length() + 7) // 8, "big")).hexdigest()


def check_key_size(bits: int, allow_weak: bool = False) -> None:
    """Refuse moduli that are too small to be secure (or, with ``allow_weak``, to work)."""
    floor = MIN_TEST_BITS if allow_weak else MIN_SECURE_BITS
    if bits < floor:
        hint = "" if allow_weak else " (smaller keys only for tests, with --allow-weak-key)"
        raise KeyFileError(f"a {bits}-bit key is too small: at least {floor} bits{hint}")


@dataclass(frozen=True, eq=False)
class PublicKey:
    """``n`` and the DJN generator ``h_s``; everything the company ever needs."""

    n: gmpy2.mpz
    h_s: gmpy2.mpz
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
        return fingerprint_of(self.n)

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
        return {
            "format": PUBLIC_FORMAT,
            "version": KEY_VERSION,
            "bits": self.bits,
            "fingerprint": self.fingerprint,
            "n": format(self.n, "x"),
            "h_s": format(self.h_s, "x"),
        }

    @classmethod
    def from_dict(cls, d: dict, allow_weak: bool = False) -> "PublicKey":
        """Parse and validate a public key: odd composite-looking ``n`` of the declared size,
        ``h_s`` a unit modulo ``n²``, fingerprint consistent."""
        _check_header(d, PUBLIC_FORMAT)
        n = _hex_field(d, "n")
        h_s = _hex_field(d, "h_s")
        bits = d.get("bits")
        if not isinstance(bits, int) or isinstance(bits, bool) or bits != n.bit_length():
            raise KeyFileError(f"declared size {shown(bits)} does not match n ({n.bit_length()} bits)")
        check_key_size(bits, allow_weak)
        if n % 2 == 0 or gmpy2.is_prime(n):
            raise KeyFileError("n is not an RSA modulus (it is even or prime)")
        if not 1 < h_s < n * n or gmpy2.gcd(h_s, n) != 1:
            raise KeyFileError("h_s is not a unit modulo n²")
        key = cls(n, h_s)
        if d.get("fingerprint") != key.fingerprint:
            raise KeyFileError("fingerprint does not match n (the key file was altered)")
        return key


@dataclass(frozen=True, eq=False)
class PrivateKey:
    """The factorisation of ``n`` plus CRT constants for fast decryption (and encryption)."""

    public: PublicKey
    p: gmpy2.mpz
    q: gmpy2.mpz

    def __post_init__(self):
        p, q = sorted((gmpy2.mpz(self.p), gmpy2.mpz(self.q)))
        if p * q != self.public.n:
            raise KeyMismatchError("p·q ≠ n: the private key does not belong to this public key")
        object.__setattr__(self, "p", p)
        object.__setattr__(self, "q", q)
        p_sq, q_sq = p * p, q * q
        object.__setattr__(self, "_p_sq", p_sq)
        object.__setattr__(self, "_q_sq", q_sq)
        # h_p = L_p(g^(p−1) mod p²)^−1 mod p with g = n + 1 (Paillier, CRT variant).
        object.__setattr__(self, "_hp", gmpy2.invert(_l(gmpy2.powmod(self.public.n + 1, p - 1, p_sq), p), p))
        object.__setattr__(self, "_hq", gmpy2.invert(_l(gmpy2.powmod(self.public.n + 1, q - 1, q_sq), q), q))
        object.__setattr__(self, "_p_inv_q", gmpy2.invert(p, q))

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    def raw_decrypt(self, c: int) -> gmpy2.mpz:
        """Plaintext in ``[0, n)`` of ciphertext ``c`` (CRT: two half-size exponentiations)."""
        mp = _l(gmpy2.powmod(c, self.p - 1, self._p_sq), self.p) * self._hp % self.p
        mq = _l(gmpy2.powmod(c, self.q - 1, self._q_sq), self.q) * self._hq % self.q
        return mp + ((mq - mp) * self._p_inv_q % self.q) * self.p

    def to_dict(self) -> dict:
        return {
            "format": PRIVATE_FORMAT,
            "version": KEY_VERSION,
            "fingerprint": self.fingerprint,
            "p": format(self.p, "x"),
            "q": format(self.q, "x"),
        }

    @classmethod
    def from_dict(cls, d: dict, public: PublicKey) -> "PrivateKey":
        _check_header(d, PRIVATE_FORMAT)
        if d.get("fingerprint") != public.fingerprint:
            raise KeyMismatchError(
                f"private key {shown(d.get('fingerprint'))} does not belong to public key {public.fingerprint}"
            )
        return cls(public, *_prime_factors(d, public))

    @classmethod
    def restore(cls, d: dict) -> "PrivateKey":
        """The key pair from the private-key file alone, with a fresh DJN generator: for a key
        folder whose public key was lost (e.g. a run killed between writing the two files). Any
        generator works: ciphertexts made under the old one decrypt the same."""
        _check_header(d, PRIVATE_FORMAT)
        p, q = _primes(_hex_field(d, "p"), _hex_field(d, "q"))
        if fingerprint_of(p * q) != d.get("fingerprint"):
            raise KeyFileError("fingerprint does not match p·q (the key file was altered)")
        return cls(PublicKey(p * q, djn_generator(p, q)), p, q)


def _prime_factors(d: dict, public: PublicKey) -> tuple[gmpy2.mpz, gmpy2.mpz]:
    p, q = _hex_field(d, "p"), _hex_field(d, "q")
    if p * q != public.n:
        raise KeyMismatchError("p·q ≠ n: the private key does not belong to this public key")
    return _primes(p, q)


def _primes(p: gmpy2.mpz, q: gmpy2.mpz) -> tuple[gmpy2.mpz, gmpy2.mpz]:
    # Composite factors with p·q = n would decrypt to garbage without any error.
    if p == q or not (gmpy2.is_prime(p) and gmpy2.is_prime(q)):
        raise KeyFileError("p and q are not two distinct primes: not a Paillier private key")
    return p, q


def _l(u, d):
    return (u - 1) // d


def _check_header(d, fmt: str) -> None:
    if not isinstance(d, dict):
        raise KeyFileError(f"expected a JSON object of format {fmt!r}")
    if d.get("format") != fmt:
        raise KeyFileError(f"format is {shown(d.get('format'))}, expected {fmt!r}")
    if d.get("version") != KEY_VERSION:
        raise KeyFileError(f"version {shown(d.get('version'))} is not supported (supported: {KEY_VERSION})")


def _hex_field(d: dict, name: str) -> gmpy2.mpz:
    v = d.get(name)
    if not isinstance(v, str) or not v or len(v) > 8192:
        raise KeyFileError(f"field {name!r} must be a hexadecimal string")
    if not HEX.fullmatch(v):
        raise KeyFileError(f"field {name!r} is not hexadecimal")
    value = gmpy2.mpz(int(v, 16))
    if value <= 1:
        raise KeyFileError(f"field {name!r} must be greater than 1")
    return value


def _random_prime(bits: int) -> gmpy2.mpz:
    """A random prime of exactly ``bits`` bits whose top two bits are set (so p·q has 2·bits)."""
    while True:
        candidate = gmpy2.mpz(secrets.randbits(bits) | (3 << (bits - 2)) | 1)
        p = gmpy2.next_prime(candidate - 2)
        if p.bit_length() == bits and gmpy2.is_prime(p, 50):
            return p


def generate_keypair(bits: int = DEFAULT_KEY_BITS, allow_weak: bool = False) -> tuple[PublicKey, PrivateKey]:
    """Fresh key pair with an ``bits``-bit modulus and a DJN generator, randomness from ``secrets``."""
    if bits % 2:
        raise KeyFileError(f"key size must be even, got {bits}")
    check_key_size(bits, allow_weak)
    half = bits // 2
    while True:
        p, q = _random_prime(half), _random_prime(half)
        n = p * q
        if p != q and n.bit_length() == bits and math.gcd(int(n), int((p - 1) * (q - 1))) == 1:
            break
    public = PublicKey(n, djn_generator(p, q))
    return public, PrivateKey(public, p, q)


def djn_generator(p, q) -> gmpy2.mpz:
    """``h_s = h^n mod n²`` for ``h = −x² mod n`` with a random unit ``x`` (DJN)."""
    n = p * q
    while True:
        x = gmpy2.mpz(secrets.randbelow(int(n) - 2) + 2)
        if gmpy2.gcd(x, n) == 1:
            break
    h = (-x * x) % n
    # h^n mod n² via CRT over p², q² (half-size moduli, about 3× faster than direct).
    p_sq, q_sq = p * p, q * q
    hp, hq = gmpy2.powmod(h, n, p_sq), gmpy2.powmod(h, n, q_sq)
    return hp + ((hq - hp) * gmpy2.invert(p_sq, q_sq) % q_sq) * p_sq
