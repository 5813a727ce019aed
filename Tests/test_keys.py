"""Key pairs, fingerprints, key files on disk."""
from __future__ import annotations

import json
import os
import stat

import pytest

from ppml.errors import KeyFileError, KeyMismatchError
from ppml.keystore import KeyStore
from ppml.paillier.keys import PrivateKey, PublicKey, fingerprint_of, generate_keypair


def test_generated_key_has_requested_size_and_valid_djn_generator(keypair):
    public, private = keypair
    assert public.bits == 1024
    assert private.p * private.q == public.n and private.p != private.q
    # h_s is an n-th residue: a Paillier encryption of 0, so it decrypts to 0.
    assert private.raw_decrypt(public.h_s) == 0


def test_fingerprint_is_sha256_of_n_and_h_s():
    import hashlib

    assert fingerprint_of(0xC0FFEE, 0x2A) == "sha256:" + hashlib.sha256(b"c0ffee:2a").hexdigest()
    assert fingerprint_of(0xC0FFEE, 0x2B) != fingerprint_of(0xC0FFEE, 0x2A)


def test_key_dicts_round_trip(keypair):
    public, private = keypair
    pub2 = PublicKey.from_dict(json.loads(json.dumps(public.to_dict())), allow_weak=True)
    assert pub2 == public
    priv2 = PrivateKey.from_dict(json.loads(json.dumps(private.to_dict())), pub2)
    assert (priv2.p, priv2.q) == (private.p, private.q)


def test_weak_key_refused_without_flag(keypair):
    with pytest.raises(KeyFileError) as e:
        PublicKey.from_dict(keypair[0].to_dict())
    assert str(e.value) == ("a 1024-bit key is too small: at least 2048 bits "
                            "(smaller keys only for tests, with --allow-weak-key)")
    with pytest.raises(KeyFileError, match="too small"):
        generate_keypair(1024)


def test_private_key_of_another_public_key_is_refused(keypair, other_keypair):
    with pytest.raises(KeyMismatchError, match="does not belong to public key"):
        PrivateKey.from_dict(other_keypair[1].to_dict(), keypair[0])
    d = keypair[1].to_dict()
    d["q"] = format(other_keypair[1].q, "x")
    with pytest.raises(KeyMismatchError) as e:
        PrivateKey.from_dict(d, keypair[0])
    assert str(e.value) == "p·q ≠ n: the private key does not belong to this public key"


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(n=d["n"][:-1] + "0"), "n is even: not an RSA modulus"),
    (lambda d: d.update(fingerprint="sha256:" + "0" * 64), "fingerprint does not match n and h_s (the key file was altered)"),
    (lambda d: d.update(bits=2048), "declared size 2048 does not match n (1024 bits)"),
    (lambda d: d.update(n="xyz"), "field 'n' is not hexadecimal"),
    (lambda d: d.update(h_s="0"), "field 'h_s' must be greater than 1"),
    (lambda d: d.update(version=1), "version 1 of 'ppml.paillier-public-key' is not supported (supported: 3; "
                                    "create a new pair with `python -m ppml keygen --force`)"),
    (lambda d: d.update(version=True), "version True of 'ppml.paillier-public-key' is not supported "
                                       "(supported: 3; create a new pair with `python -m ppml keygen --force`)"),
    (lambda d: d.update(format="rsa"), "format is 'rsa', expected 'ppml.paillier-public-key'"),
])
def test_tampered_public_key_is_refused(keypair, change, message):
    d = keypair[0].to_dict()
    change(d)
    with pytest.raises(KeyFileError) as e:
        PublicKey.from_dict(d, allow_weak=True)
    assert str(e.value) == message


def test_ciphertext_checks(keypair):
    public = keypair[0]
    with pytest.raises(KeyMismatchError, match="out of range"):
        public.check_ciphertext(public.n_sq)
    with pytest.raises(KeyMismatchError, match="out of range"):
        public.check_ciphertext(0)
    with pytest.raises(KeyMismatchError, match="not a unit"):
        public.check_ciphertext(keypair[1].p)


def test_keystore_writes_private_key_0600_and_never_overwrites(tmp_path):
    store = KeyStore(tmp_path / "keys")
    public, private = store.create(1024, allow_weak=True)
    assert stat.S_IMODE(os.stat(store.private_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.public_path).st_mode) == 0o644
    before = store.private_path.read_bytes()
    with pytest.raises(KeyFileError) as e:
        store.create(1024, allow_weak=True)
    assert str(e.value) == f"{tmp_path / 'keys'}: a key pair already exists here; refusing to overwrite it (use --force)"
    assert store.private_path.read_bytes() == before
    assert store.load_private(allow_weak=True).p == private.p
    # The public file holds no secret.
    text = store.public_path.read_text()
    assert format(private.p, "x") not in text and format(private.q, "x") not in text
    store.create(1024, force=True, allow_weak=True)
    assert store.private_path.read_bytes() != before


def test_private_key_readable_by_others_is_refused(tmp_path):
    store = KeyStore(tmp_path)
    store.create(1024, allow_weak=True)
    os.chmod(store.private_path, 0o644)
    with pytest.raises(KeyFileError) as e:
        store.load_private(allow_weak=True)
    assert str(e.value) == (f"{store.private_path}: permissions 0644 are too open: the private key must be "
                            f"readable by its owner only (chmod 600 {store.private_path})")


def test_missing_keys_say_how_to_create_them(tmp_path):
    with pytest.raises(KeyFileError) as e:
        KeyStore(tmp_path).load_private()
    assert str(e.value) == f"{tmp_path / 'public_key.json'}: key file not found (run CustomerEncrypts.py first to create keys)"
