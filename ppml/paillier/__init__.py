"""Paillier keys, the packed fixed-point codec and the encrypted linear score. No I/O, no CLI."""
from .codec import DEFAULT_TOLERANCE, FixedPointCodec, design_codec
from .keys import DEFAULT_KEY_BITS, PrivateKey, PublicKey, fingerprint_of, generate_keypair
from .scheme import Encryptor, decrypt_packed, encrypt_packed, score_packed

__all__ = [
    "DEFAULT_KEY_BITS", "DEFAULT_TOLERANCE", "Encryptor", "FixedPointCodec", "PrivateKey",
    "PublicKey", "decrypt_packed", "design_codec", "encrypt_packed", "fingerprint_of",
    "generate_keypair", "score_packed",
]
