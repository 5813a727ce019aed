"""The company's side: encrypted features → encrypted predictions, with the public key only.

Imports neither pandas nor scikit-learn: the parameters are JSON, the maths is gmpy2.
"""
from __future__ import annotations

from .documents import Batch, EncryptedFeatures, EncryptedPredictions, ModelParameters
from .errors import DocumentError, KeyMismatchError
from .paillier import Encryptor, score_packed


def check_compatible(doc: EncryptedFeatures, params: ModelParameters) -> None:
    """Refuse a document made for another model (its features would be scored by wrong weights)."""
    spec = params.spec
    if doc.model_fingerprint != spec.fingerprint:
        raise KeyMismatchError(f"encrypted for model {doc.model_fingerprint[:19]}…, but this server runs "
                               f"model {spec.fingerprint[:19]}…")
    if doc.codec != spec.codec:
        raise DocumentError(f"codec {doc.codec.to_dict()} differs from the model's {spec.codec.to_dict()}")
    if doc.features != spec.features:
        raise DocumentError("feature names differ from the model's")


def score_encrypted(doc: EncryptedFeatures, params: ModelParameters) -> EncryptedPredictions:
    """``Enc(w·x + b)`` for every record, one freshly re-randomized ciphertext per batch."""
    check_compatible(doc, params)
    W, B = params.integer_weights()
    encryptor = Encryptor(doc.public_key, expected=len(doc.batches))
    batches = [Batch(list(b.ids), [score_packed(encryptor, doc.codec, W, B, b.ciphertexts, len(b.ids))])
               for b in doc.batches]
    spec = params.spec
    return EncryptedPredictions(doc.public_key.fingerprint, spec.fingerprint, doc.codec, doc.slots,
                                spec.target, spec.transform, batches)
