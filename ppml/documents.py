"""The JSON documents passed between stages: build, validate, parse.

Every document carries ``format``, ``version``, the key fingerprint and/or model fingerprint,
the codec parameters and record ids; ciphertexts are hexadecimal strings. ``from_dict``
checks all of it — format, version, fingerprints, counts, shapes and every ciphertext
(``0 < c < n²``, ``gcd(c, n) = 1``) — before any work is done. No crypto maths here.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import CodecError, DocumentError, KeyMismatchError, PpmlError
from .links import ClassLink, TargetLink, link_from_dict
from .paillier.codec import FixedPointCodec
from .paillier.keys import PublicKey
from .paillier.proof import FOURTH_ROOT_ROUNDS, NTH_ROOT_ROUNDS
from .streams import Field, Limits
from .validation import check_header as _check_header, hex_int, shown

MODEL_FORMAT = "ppml.model"
COEFFICIENTS_FORMAT = "ppml.coefficients"
INTERCEPT_FORMAT = "ppml.intercept"
FEATURES_FORMAT = "ppml.encrypted-features"
PREDICTIONS_FORMAT = "ppml.encrypted-predictions"
#: The one version of each document this toolkit reads and writes. Version 2 of the model files
#: and of the answers carries several outputs (a weight row, an intercept and an answer
#: ciphertext per output) and the link; the features document did not change.
VERSIONS = {MODEL_FORMAT: 2, COEFFICIENTS_FORMAT: 2, INTERCEPT_FORMAT: 2, FEATURES_FORMAT: 1, PREDICTIONS_FORMAT: 2}
_MODEL_FILES = (MODEL_FORMAT, COEFFICIENTS_FORMAT, INTERCEPT_FORMAT)


def check_header(d: Any, fmt: str) -> dict:
    """Refuse anything that is not an object of format ``fmt`` in this toolkit's version of it,
    saying what was expected (for a model file, how to get a current one)."""
    hint = "; retrain or re-export the model to write it again" if fmt in _MODEL_FILES else ""
    return _check_header(d, fmt, VERSIONS[fmt], DocumentError, hint)


def _get(d: dict, name: str, kind, what: str):
    if name not in d:
        raise DocumentError(f"field {shown(name)} is missing")
    v = d[name]
    if not isinstance(v, kind) or isinstance(v, bool):
        raise DocumentError(f"field {shown(name)} must be {what}")
    return v


def _count(d: dict, name: str, minimum: int = 0) -> int:
    v = _get(d, name, int, "an integer")
    if v < minimum:
        raise DocumentError(f"field {name!r} must be at least {minimum}, got {v}")
    return v


def _names(d: dict, name: str = "features") -> list[str]:
    v = _get(d, name, list, "a list of names")
    if not v or not all(isinstance(s, str) and s and _unicode(s) for s in v) or len(set(v)) != len(v):
        raise DocumentError(f"field {name!r} must be a non-empty list of distinct names")
    return v


def _floats(d: dict, name: str, length: int) -> list[float]:
    v = _get(d, name, list, "a list of numbers")
    if len(v) != length:
        raise DocumentError(f"field {shown(name)} has {len(v)} values, expected {length}")
    if not all(_finite(x) for x in v):
        raise DocumentError(f"field {shown(name)} must hold finite numbers only")
    return [float(x) for x in v]


def _finite(x) -> bool:
    """A JSON number that is a finite float (an integer too large for a float is not)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


def _fingerprint_field(d: dict, name: str) -> str:
    v = _get(d, name, str, "a fingerprint string")
    if not v.startswith("sha256:") or len(v) != 71:
        raise DocumentError(f"field {name!r} is not a sha256 fingerprint")
    return v


def _ids(batch: dict, limit: int) -> list:
    ids = _get(batch, "ids", list, "a list of record ids")
    if not 1 <= len(ids) <= limit:
        raise DocumentError(f"a batch holds {len(ids)} records, expected 1 to {limit}")
    if not all(isinstance(i, int) and not isinstance(i, bool) or isinstance(i, str) and _unicode(i) for i in ids):
        raise DocumentError("record ids must be strings or integers")
    return ids


def _unicode(text: str) -> bool:
    """Text that can be written out again (JSON may hold lone surrogates, UTF-8 cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_ciphertext(value: Any, key: PublicKey, where: str):
    """A hex string → a validated ciphertext for ``key``."""
    c = hex_int(value, where, (2 * key.bits + 3) // 4, DocumentError)  # n² < 2^(2·bits)
    try:
        return key.check_ciphertext(c, where)
    except KeyMismatchError as e:
        raise DocumentError(e.message) from None


def format_ciphertext(c) -> str:
    return format(c, "x")


# ---------------------------------------------------------------------------------------------
# The model: public spec (for the customer) and the weights (for the server only)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """What the customer needs to encode for the model and to read its answers — the features
    and their bounds, the codec, the outputs (one per weight row) and the link applied to them
    after decryption — and nothing about the weights except a bound on their size (the slot
    width)."""

    features: list[str]
    lower: list[float]
    upper: list[float]
    codec: FixedPointCodec
    outputs: list[str]
    link: TargetLink | ClassLink
    inputs: dict[str, list[float]] = field(default_factory=dict)  # engineered-column bounds
    tolerance: float = 0.0
    library: dict[str, str] = field(default_factory=dict)

    def _core(self) -> dict:
        return {
            "features": self.features, "lower": self.lower, "upper": self.upper,
            "codec": self.codec.to_dict(), "outputs": self.outputs, "link": self.link.to_dict(),
            "inputs": self.inputs, "tolerance": self.tolerance,
        }

    @property
    def fingerprint(self) -> str:
        canonical = json.dumps(self._core(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def to_dict(self) -> dict:
        return {"format": MODEL_FORMAT, "version": VERSIONS[MODEL_FORMAT], "fingerprint": self.fingerprint,
                **self._core(), "library": self.library}

    @property
    def columns(self) -> list[str]:
        """The decrypted CSV's columns after ``id``: ``prediction`` (the value, or the class label
        as ``predict`` gives it), then ``proba_<label>`` per class of a probabilistic classifier;
        a multi-output regression has ``prediction_<output>`` per output instead."""
        if isinstance(self.link, ClassLink):
            probabilities = [f"proba_{c}" for c in self.link.classes] if self.link.probability else []
            return ["prediction", *probabilities]
        return ["prediction"] if len(self.outputs) == 1 else [f"prediction_{o}" for o in self.outputs]

    def prediction(self, decision) -> tuple:
        """One record's values for :attr:`columns`, from its decrypted outputs ``W·x + b``."""
        if isinstance(self.link, ClassLink):
            return (self.link.label(decision), *(self.link.proba(decision) or ()))
        return tuple(self.link.apply(decision))

    @classmethod
    def from_dict(cls, d) -> ModelSpec:
        check_header(d, MODEL_FORMAT)
        names = _names(d)
        lower, upper = _floats(d, "lower", len(names)), _floats(d, "upper", len(names))
        if any(lo > hi for lo, hi in zip(lower, upper)):
            raise DocumentError("every lower bound must be at most its upper bound")
        outputs = _names(d, "outputs")
        link = link_from_dict(d.get("link"), len(outputs))
        inputs = _get(d, "inputs", dict, "an object of [lower, upper] bounds")
        for k, v in inputs.items():
            _floats({k: v}, k, 2)
        tol = d.get("tolerance", 0.0)
        spec = cls(names, lower, upper, codec_of(d), outputs, link,
                   {k: [float(a) for a in v] for k, v in inputs.items()},
                   float(tol) if _finite(tol) else 0.0,
                   d.get("library") if isinstance(d.get("library"), dict) else {})
        if d.get("fingerprint") != spec.fingerprint:
            raise DocumentError("fingerprint does not match the content (the model file was altered)")
        return spec


@dataclass(frozen=True)
class ModelParameters:
    """The server's model: the public spec plus one weight row and one intercept per output
    (plaintext floats)."""

    spec: ModelSpec
    coefficients: list[list[float]]
    intercepts: list[float]

    def coefficients_dict(self) -> dict:
        return {"format": COEFFICIENTS_FORMAT, "version": VERSIONS[COEFFICIENTS_FORMAT],
                "model_fingerprint": self.spec.fingerprint, "features": self.spec.features,
                "outputs": self.spec.outputs, "coefficients": self.coefficients}

    def intercept_dict(self) -> dict:
        return {"format": INTERCEPT_FORMAT, "version": VERSIONS[INTERCEPT_FORMAT],
                "model_fingerprint": self.spec.fingerprint, "intercepts": self.intercepts}

    def integer_weights(self) -> list[tuple[list[int], int]]:
        """``(W, B)`` of every output, on the shared codec's fixed-point scale."""
        codec = self.spec.codec
        return [(codec.encode_weights(w), codec.encode_intercept(b))
                for w, b in zip(self.coefficients, self.intercepts)]

    @classmethod
    def from_dicts(cls, spec: ModelSpec, coefficients, intercept) -> ModelParameters:
        check_header(coefficients, COEFFICIENTS_FORMAT)
        check_header(intercept, INTERCEPT_FORMAT)
        for name, d in (("coefficients", coefficients), ("intercepts", intercept)):
            if _fingerprint_field(d, "model_fingerprint") != spec.fingerprint:
                raise KeyMismatchError(f"the {name} belong to another model than the model description")
        if coefficients.get("features") != spec.features:
            raise DocumentError("coefficient feature names differ from the model description")
        if coefficients.get("outputs") != spec.outputs:
            raise DocumentError("coefficient output names differ from the model description")
        rows = _get(coefficients, "coefficients", list, "a list of weight rows, one per output")
        if len(rows) != len(spec.outputs):
            raise DocumentError(f"field 'coefficients' has {len(rows)} rows, expected {len(spec.outputs)} "
                                "(one per output)")
        coef = [_floats({f"coefficients[{k}]": row}, f"coefficients[{k}]", len(spec.features))
                for k, row in enumerate(rows)]
        params = cls(spec, coef, _floats(intercept, "intercepts", len(spec.outputs)))
        params.check_slot_width()
        return params

    def check_slot_width(self) -> None:
        """Prove, for every output, that no record inside the declared bounds can overflow a slot."""
        codec = self.spec.codec
        try:
            weights = self.integer_weights()
        except OverflowError:  # e.g. a weight of 1e300 scaled by 2^Fw is beyond any float
            raise DocumentError("the weights or bounds are too large for the codec's fixed-point scale") from None
        for output, (W, B) in zip(self.spec.outputs, weights):
            try:
                bound = codec.slot_bound(W, B, self.spec.lower, self.spec.upper)
            except CodecError as e:
                raise DocumentError(e.message) from None
            if bound > codec.reach:
                raise DocumentError(f"slot width {codec.slot_bits} bits is too small for the weights of "
                                    f"{output!r} and the bounds (needs {bound.bit_length() + 1})")


# ---------------------------------------------------------------------------------------------
# Stage documents
# ---------------------------------------------------------------------------------------------
@dataclass
class Batch:
    """Up to ``slots`` records: their ids and the ciphertexts that hold them."""

    ids: list
    ciphertexts: list


@dataclass
class EncryptedFeatures:
    """``Encrypted_Data/*.json``: the customer's packed, encrypted feature vectors."""

    public_key: PublicKey
    model_fingerprint: str
    codec: FixedPointCodec
    slots: int
    features: list[str]
    batches: list[Batch]

    @property
    def records(self) -> int:
        return sum(len(b.ids) for b in self.batches)

    def header(self) -> dict:
        return {"format": FEATURES_FORMAT, "version": VERSIONS[FEATURES_FORMAT],
                "key_fingerprint": self.public_key.fingerprint,
                "model_fingerprint": self.model_fingerprint,
                "public_key": self.public_key.to_dict(), "codec": self.codec.to_dict(),
                "slots": self.slots, "features": self.features, "records": self.records}

    def to_dict(self) -> dict:
        return {**self.header(), "batches": [self.batch_dict(b) for b in self.batches]}

    @classmethod
    def from_dict(cls, d, allow_weak: bool = False) -> EncryptedFeatures:
        header = cls.parse_header(d, allow_weak)
        raw_batches = _get(d, "batches", list, "a list of batches")
        header.batches = [header.parse_batch(b, i) for i, b in enumerate(raw_batches)]
        header.check_count(d.get("records", None), len(raw_batches))
        return header

    @classmethod
    def parse_header(cls, d, allow_weak: bool = False) -> EncryptedFeatures:
        """Everything but the batches, validated (a streamed document's first line)."""
        check_header(d, FEATURES_FORMAT)
        try:
            key = PublicKey.from_dict(_get(d, "public_key", dict, "a public key object"), allow_weak)
        except PpmlError as e:
            raise DocumentError(f"public_key: {e.message}") from None
        if _fingerprint_field(d, "key_fingerprint") != key.fingerprint:
            raise DocumentError("key_fingerprint does not match the public key in the document")
        codec, slots = _codec_and_slots(d, key)
        return cls(key, _fingerprint_field(d, "model_fingerprint"), codec, slots, _names(d), [])

    def parse_batch(self, b, i: int) -> Batch:
        return parse_batch(b, i, self.slots, len(self.features), "feature", self.public_key)

    def check_count(self, records, batches: int) -> None:
        check_count(records, batches, self.records)

    def batch_dict(self, b: Batch) -> dict:
        return {"ids": b.ids, "ciphertexts": [format_ciphertext(c) for c in b.ciphertexts]}


#: Record ids are signed 64-bit integers or strings of 1 to MAX_ID_CHARS characters, unique
#: within a document (docs/protocol.md, section 1).
ID_RANGE = (-2 ** 63, 2 ** 63 - 1)
MAX_ID_CHARS = 256


def id_problem(rid) -> str | None:
    """What is wrong with a record id (an int or a str), or None: the one rule the customer
    applies to its CSV ids and the company to every document."""
    if isinstance(rid, int) and not ID_RANGE[0] <= rid <= ID_RANGE[1]:
        return f"record id {rid} is not a signed 64-bit integer"
    if isinstance(rid, str) and not 0 < len(rid) <= MAX_ID_CHARS:
        return f"a record id string must have 1 to {MAX_ID_CHARS} characters"
    return None


def batch_ids(b, i: int, slots: int) -> list:
    """The 1 to ``slots`` record ids of batch ``i`` of a stage document (its ciphertexts unread)."""
    if not isinstance(b, dict):
        raise DocumentError(f"batch {i} must be an object")
    return _ids(b, slots)


def parse_batch(b, i: int, slots: int, count: int, per: str, key: PublicKey) -> Batch:
    """Batch ``i`` of a stage document: an object of 1 to ``slots`` ids and ``count`` valid
    ciphertexts for ``key`` (one per ``per``: feature or output)."""
    where = f"batch {i}"
    ids = batch_ids(b, i, slots)
    cts = _get(b, "ciphertexts", list, "a list of ciphertexts")
    if len(cts) != count:
        raise DocumentError(f"{where} has {len(cts)} ciphertexts, expected {count} (one per {per})")
    return Batch(ids, [parse_ciphertext(c, key, f"{where} ciphertext {j}") for j, c in enumerate(cts)])


def codec_of(d: dict) -> FixedPointCodec:
    """A document's ``codec`` field; what is wrong with it is the document's error."""
    try:
        return FixedPointCodec.from_dict(d.get("codec"))
    except CodecError as e:
        raise DocumentError(e.message) from None


def _codec_and_slots(d: dict, key: PublicKey) -> tuple[FixedPointCodec, int]:
    """The codec and records per batch of a stage document; the slots must fit the key."""
    codec = codec_of(d)
    slots = _count(d, "slots", 1)
    if slots > codec.slots_for(key.bits):
        raise DocumentError(f"{slots} slots of {codec.slot_bits} bits do not fit a {key.bits}-bit key")
    return codec, slots


def check_count(records, batches: int, held: int) -> None:
    """The declared record count agrees with what the batches held (a truncated or padded
    document is refused)."""
    if not batches:
        raise DocumentError("the document holds no records")
    if isinstance(records, bool) or not isinstance(records, int):
        raise DocumentError("field 'records' must be an integer")
    if records != held:
        raise DocumentError(f"records says {records} but the batches hold {held}")


@dataclass
class EncryptedPredictions:
    """``Encrypted_Predicted_value/*.json``: per batch, one re-randomized ciphertext per model
    output (``outputs`` names them, in the model's order)."""

    key_fingerprint: str
    model_fingerprint: str
    codec: FixedPointCodec
    slots: int
    outputs: list[str]
    batches: list[Batch]

    @property
    def records(self) -> int:
        return sum(len(b.ids) for b in self.batches)

    def header(self) -> dict:
        return {"format": PREDICTIONS_FORMAT, "version": VERSIONS[PREDICTIONS_FORMAT],
                "key_fingerprint": self.key_fingerprint, "model_fingerprint": self.model_fingerprint,
                "codec": self.codec.to_dict(), "slots": self.slots, "outputs": self.outputs, "records": self.records}

    def to_dict(self) -> dict:
        return {**self.header(), "batches": [self.batch_dict(b) for b in self.batches]}

    def batch_dict(self, b: Batch) -> dict:
        return {"ids": b.ids, "ciphertexts": [format_ciphertext(c) for c in b.ciphertexts]}

    @classmethod
    def from_dict(cls, d, key: PublicKey) -> EncryptedPredictions:
        """Parse and validate against the customer's ``key`` (a document for another key is refused)."""
        header = cls.parse_header(d, key)
        raw_batches = _get(d, "batches", list, "a list of batches")
        header.batches = [header.parse_batch(b, i, key) for i, b in enumerate(raw_batches)]
        header.check_count(d.get("records", None), len(raw_batches))
        return header

    @classmethod
    def parse_header(cls, d, key: PublicKey) -> EncryptedPredictions:
        check_header(d, PREDICTIONS_FORMAT)
        fp = _fingerprint_field(d, "key_fingerprint")
        if fp != key.fingerprint:
            raise KeyMismatchError(f"encrypted for key {fp[:19]}…, but the key in use is {key.fingerprint[:19]}…")
        codec, slots = _codec_and_slots(d, key)
        return cls(fp, _fingerprint_field(d, "model_fingerprint"), codec, slots, _names(d, "outputs"), [])

    def parse_batch(self, b, i: int, key: PublicKey) -> Batch:
        return parse_batch(b, i, self.slots, len(self.outputs), "output", key)

    def check_count(self, records, batches: int) -> None:
        check_count(records, batches, self.records)


# ---------------------------------------------------------------------------------------------
# What a stage document may make a reader hold
# ---------------------------------------------------------------------------------------------
#: The modulus proof's values: w, the n-th roots and the fourth roots (ppml.paillier.proof).
PROOF_VALUES = 1 + NTH_ROOT_ROUNDS + FOURTH_ROOT_ROUNDS
#: The largest key any reader of this toolkit parses (the key files' hex fields hold 8192 digits).
LARGEST_KEY_BITS = 32768
_SCALAR, _FINGERPRINT = Field(256, 0), Field(256, 0)


def _names_field(names: list[str] | None) -> Field:
    """A list of names: twice its JSON text (escapes) and room, or 1 MiB when not known."""
    return Field(2 * len(json.dumps(names, ensure_ascii=True)) + 1024 if names is not None else 1 << 20, 1)


def features_limits(features: list[str] | None, max_key_bits: int = LARGEST_KEY_BITS,
                    batch_bytes: int | None = None) -> Limits:
    """What a features document for a model with these feature names may make a reader hold:
    each header field has a cap computed from the largest key accepted and the names (any other
    field is refused); each batch one from the document's own key and slots."""
    key_hex = -(-max_key_bits // 4)
    fields = {
        "format": _SCALAR, "version": _SCALAR, "key_fingerprint": _FINGERPRINT, "model_fingerprint": _FINGERPRINT,
        # n, h_s (< n²), the modulus proof's values, and room for the other members.
        "public_key": Field(4096 + 3 * key_hex + PROOF_VALUES * (key_hex + 4), 3),
        "codec": Field(4096, 1), "slots": _SCALAR, "features": _names_field(features),
        "records": _SCALAR, "layout": _SCALAR,
    }
    return Limits(header_bytes=sum(f.bytes for f in fields.values()), batch_bytes=batch_bytes, fields=fields,
                  format=FEATURES_FORMAT)


def predictions_limits(outputs: list[str] | None, batch_bytes: int | None = None) -> Limits:
    """The same for a predictions document (an answer): its header holds no key, so only the
    output names (``None``: not known to the reader) set a cap that varies."""
    fields = {
        "format": _SCALAR, "version": _SCALAR, "key_fingerprint": _FINGERPRINT, "model_fingerprint": _FINGERPRINT,
        "codec": Field(4096, 1), "slots": _SCALAR, "outputs": _names_field(outputs), "records": _SCALAR,
        "layout": _SCALAR,
    }
    return Limits(header_bytes=sum(f.bytes for f in fields.values()), batch_bytes=batch_bytes, fields=fields,
                  format=PREDICTIONS_FORMAT)
