"""Fuzzing every reader of outside input: whatever it is fed, only :class:`ppml.errors.PpmlError`
may escape (the CLI turns those into one ``Error:`` line; anything else would be exit 70).

Documents are fuzzed two ways: arbitrary JSON values, and *valid* documents mutated
structurally (keys dropped, values replaced by random JSON, types changed, numbers pushed to
extremes, hex strings made tricky, values buried under deep nesting) so that the fuzzer gets
past the first checks. The byte-level readers (``DocumentReader``, the CSV reader) get
arbitrary bytes and cut or corrupted valid files; the feature parser gets arbitrary strings.

Examples are bounded and derandomized (the same examples every run, no example database), so
the file is deterministic and takes a few seconds.
"""
from __future__ import annotations

import atexit
import copy
import functools
import io
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, TEST_KEY_BITS
from ppml.errors import InputError, PpmlError

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------------------
# Valid documents to start from (built once)
# ---------------------------------------------------------------------------------------------
@functools.cache
def valid():
    """Keys, model files and the two stage documents of two records (ids 0 and "b"), made by
    the stage layer."""
    import tempfile

    import pandas as pd

    from conftest import encrypted_document
    from ppml import stages
    from ppml.artifacts import load_customer_transform, load_parameters
    from ppml.paillier import generate_keypair

    public, private = generate_keypair(TEST_KEY_BITS, allow_weak=True)
    params = load_parameters(ROOT / "Encrypted_ModelParameters")
    spec = params.spec
    folder = Path(tempfile.mkdtemp(prefix="ppml-fuzz-"))
    raw = pd.read_csv(ROOT / "Data" / "laptop_data.csv", dtype=str, keep_default_na=False).iloc[:2]
    raw.insert(0, "id", ["0", "b"])
    features = encrypted_document(raw, (public, private), load_customer_transform(ROOT / "col_tnf.pkl"), spec, folder)
    stages.score(str(folder / "data.json"), str(folder / "answer.json"), params=params, allow_weak=True)
    return {
        "public": public, "private": private, "params": params, "spec": spec,
        "public_key": public.to_dict(), "private_key": private.to_dict(), "model": spec.to_dict(),
        "coefficients": params.coefficients_dict(), "intercept": params.intercept_dict(),
        "features": features, "predictions": json.loads((folder / "answer.json").read_text()),
        "codec": spec.codec.to_dict(),
    }


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------
EXTREME_NUMBERS = st.sampled_from([0, -1, 1, 2, 2 ** 31, 2 ** 63, -(2 ** 63), 10 ** 400, -(10 ** 400), 0.5, -0.0,
                                   1e300, -1e300, 5e-324, float("nan"), float("inf"), float("-inf"), True, False])
TRICKY_STRINGS = st.sampled_from(["", " ", "0", "00", "-1", "+1", "0x1f", "1_0", " ff", "ff ", "f" * 600,
                                  "g", "٣", "\ud800", "\x00", "sha256:", "sha256:" + "0" * 64, "ppml.model",
                                  "identity", "log", "jsonl", "end"])
SCALARS = (st.none() | st.booleans() | st.integers() | EXTREME_NUMBERS | st.floats()
           | st.text(max_size=12) | TRICKY_STRINGS)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)


def _paths(obj, prefix=()):
    yield prefix
    if len(prefix) > 12:  # under a deep nest: nothing more to mutate there
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _at(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _nest(value, depth):
    for _ in range(depth):
        value = [value]
    return value


def _mutate_once(draw, doc):
    paths = list(_paths(doc))
    numbers = [p for p in paths if p and _is_number(_at(doc, p))]
    if numbers and draw(st.integers(0, 3)) == 0:  # a quarter of the time: push a number to an extreme
        path, op = draw(st.sampled_from(numbers)), "extreme"
    else:
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["drop", "replace", "retype", "extreme", "tricky", "nest", "empty", "add"]))
    if not path:
        return draw(JSON) if op in ("replace", "drop") else doc
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key, value = path[-1], parent[path[-1]]
    if op == "drop":
        del parent[key]
    elif op == "replace":
        parent[key] = draw(JSON)
    elif op == "retype":
        parent[key] = draw(st.sampled_from([str(value)[:50], [value], {"value": value}, None]))
    elif op == "extreme":
        parent[key] = draw(EXTREME_NUMBERS)
    elif op == "tricky":
        parent[key] = draw(TRICKY_STRINGS)
    elif op == "nest":
        parent[key] = _nest(value, draw(st.integers(1, 3000)))
    elif op == "empty":
        parent[key] = type(value)() if isinstance(value, (dict, list, str)) else 0
    elif op == "add" and isinstance(value, dict):
        value[draw(st.text(max_size=8))] = draw(JSON)
    elif op == "add" and isinstance(value, list):
        value.append(draw(JSON))
    return doc


@st.composite
def mutated(draw, name):
    doc = copy.deepcopy(valid()[name])
    for _ in range(draw(st.integers(1, 3))):
        doc = _mutate_once(draw, doc)
    return doc


def documents(name):
    """Mostly mutated valid documents, sometimes any JSON value at all."""
    return st.one_of(mutated(name), mutated(name), mutated(name), JSON)


def only_ppml_errors(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except PpmlError as e:
        assert str(e) and "\n" not in e.message  # one line, saying something
        return None


# ---------------------------------------------------------------------------------------------
# Document readers
# ---------------------------------------------------------------------------------------------
def test_the_valid_documents_parse():
    from ppml.documents import EncryptedFeatures, EncryptedPredictions, ModelParameters, ModelSpec
    from ppml.paillier.codec import FixedPointCodec
    from ppml.paillier.keys import PrivateKey, PublicKey

    v = valid()
    public = PublicKey.from_dict(v["public_key"], allow_weak=True)
    PrivateKey.from_dict(v["private_key"], public)
    spec = ModelSpec.from_dict(v["model"])
    ModelParameters.from_dicts(spec, v["coefficients"], v["intercept"])
    assert EncryptedFeatures.from_dict(v["features"], allow_weak=True).records == 2
    assert EncryptedPredictions.from_dict(v["predictions"], public).records == 2
    FixedPointCodec.from_dict(v["codec"])


@FUZZ
@given(documents("public_key"), st.booleans())
def test_public_key_reader(d, allow_weak):
    from ppml.paillier.keys import PublicKey

    only_ppml_errors(PublicKey.from_dict, d, allow_weak=allow_weak)


@FUZZ
@given(documents("private_key"))
def test_private_key_reader(d):
    from ppml.paillier.keys import PrivateKey

    key = only_ppml_errors(PrivateKey.from_dict, d, valid()["public"])
    if key is not None:  # whatever got through really is the key
        assert key.p * key.q == valid()["public"].n


@FUZZ
@given(documents("private_key"))
def test_private_key_restore(d):
    from ppml.paillier.keys import PrivateKey

    key = only_ppml_errors(PrivateKey.restore, d)
    if key is not None:
        assert key.public.n == valid()["public"].n


@FUZZ
@given(documents("model"))
def test_model_spec_reader(d):
    from ppml.documents import ModelSpec

    only_ppml_errors(ModelSpec.from_dict, d)


@FUZZ
@given(st.one_of(st.tuples(documents("coefficients"), st.just(None)),
                 st.tuples(st.just(None), documents("intercept")),
                 st.tuples(documents("coefficients"), documents("intercept"))))
def test_model_parameters_reader(pair):
    from ppml.documents import ModelParameters

    coefficients, intercept = (v if v is not None else valid()[k] for v, k in zip(pair, ("coefficients", "intercept")))
    only_ppml_errors(ModelParameters.from_dicts, valid()["spec"], coefficients, intercept)


@FUZZ
@given(documents("codec"))
def test_codec_reader(d):
    from ppml.paillier.codec import FixedPointCodec

    codec = only_ppml_errors(FixedPointCodec.from_dict, d)
    if codec is not None:
        only_ppml_errors(codec.slots_for, TEST_KEY_BITS)


@FUZZ
@given(documents("features"), st.booleans())
def test_encrypted_features_reader(d, allow_weak):
    from ppml.documents import EncryptedFeatures

    only_ppml_errors(EncryptedFeatures.from_dict, d, allow_weak=allow_weak)


@FUZZ
@given(documents("features"))
def test_encrypted_features_header_reader(d):
    from ppml.documents import EncryptedFeatures

    only_ppml_errors(EncryptedFeatures.parse_header, d, allow_weak=True)


@FUZZ
@given(st.one_of(mutated("features"), JSON))
def test_encrypted_features_batch_reader(d):
    from ppml.documents import EncryptedFeatures

    header = EncryptedFeatures.parse_header(valid()["features"], allow_weak=True)
    batches = d.get("batches") if isinstance(d, dict) else d
    for i, b in enumerate(batches if isinstance(batches, list) else [batches]):
        only_ppml_errors(header.parse_batch, b, i)


@FUZZ
@given(documents("predictions"))
def test_encrypted_predictions_reader(d):
    from ppml.documents import EncryptedPredictions

    only_ppml_errors(EncryptedPredictions.from_dict, d, valid()["public"])


@FUZZ
@given(mutated("predictions"))
def test_decrypting_whatever_passes_the_reader(d):
    """What the reader lets through decrypts without a crash (garbage values at worst)."""
    from ppml.documents import EncryptedPredictions

    doc = only_ppml_errors(EncryptedPredictions.from_dict, d, valid()["public"])
    if doc is None:
        return
    pairs = only_ppml_errors(_decrypted, doc) or []
    for _, (value,) in pairs:  # the laptop model: one output, the price
        assert isinstance(value, float)


def _decrypted(doc) -> list:
    from ppml.customer import decrypt_stream

    return [pair for batch in decrypt_stream(doc, doc.batches, valid()["private"], valid()["spec"]) for pair in batch]


def test_decrypting_an_answer_with_a_tampered_codec():
    from ppml.documents import EncryptedPredictions

    d = copy.deepcopy(valid()["predictions"])
    d["codec"]["feature_bits"] = 0
    doc = EncryptedPredictions.from_dict(d, valid()["public"])
    with pytest.raises(PpmlError):
        _decrypted(doc)


# ---------------------------------------------------------------------------------------------
# Byte-level readers
# ---------------------------------------------------------------------------------------------
@functools.cache
def scratch() -> Path:
    path = Path(tempfile.mkdtemp(prefix="ppml-fuzz-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def valid_streams() -> list[bytes]:
    from ppml.streams import DocumentWriter

    out = []
    for name in ("doc.json", "doc.jsonl"):
        d = valid()["features"]
        path = scratch() / name
        with DocumentWriter(path, {k: v for k, v in d.items() if k != "batches"}) as writer:
            for b in d["batches"]:
                writer.write(b, len(b["ids"]))
        out.append(path.read_bytes())
    return out


@st.composite
def damaged_streams(draw):
    data = bytearray(draw(st.sampled_from(valid_streams())))
    for _ in range(draw(st.integers(1, 2))):
        op = draw(st.sampled_from(["cut", "flip", "insert", "number", "number", "delete-line", "duplicate-line"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "number":  # a number (a count, an id) made huge, non-finite or not a number at all
            starts = [m.end() for m in re.finditer(rb"[:\[,](?=-?[0-9])", bytes(data))]
            if starts:
                at = draw(st.sampled_from(starts))
                data[at:at] = draw(st.sampled_from([b"7" * 5000, b"NaN,", b"Infinity,", b"-", b"1e999,", b"0.5,"]))
        elif op == "cut":
            del data[at:]
        elif op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(max_size=20) | st.sampled_from(
                [b"\n", b"{}\n", b'{"end":true}\n', b"\xff", b"NaN", b"-Infinity", b"7" * 5000, b"[" * 5000]))
        else:
            lines = bytes(data).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines[i:i + 1] = [] if op == "delete-line" else [lines[i], lines[i]]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def _read_stream(data: bytes):
    from ppml.documents import EncryptedFeatures, check_count
    from ppml.streams import DocumentReader

    path = scratch() / ("input.jsonl" if data.startswith(b'{"format"') else "input.json")
    path.write_bytes(data)
    reader = DocumentReader(path)
    doc = EncryptedFeatures.parse_header(reader.header, allow_weak=True)
    batches = records = 0
    for i, b in enumerate(reader.batches()):
        records += len(doc.parse_batch(b, i).ids)
        batches += 1
    check_count(reader.declared_records, batches, records)


@FUZZ
@given(st.one_of(st.binary(max_size=600), damaged_streams(), damaged_streams()))
def test_document_reader_on_bytes(data):
    only_ppml_errors(_read_stream, data)


def test_valid_streams_read_back():
    for data in valid_streams():
        _read_stream(data)


LAPTOP_VALUES = {
    "Company": ["Dell", "apple", "HP", "Unknown Co"],
    "TypeName": ["Notebook", "ULTRABOOK", "2 in 1 Convertible"],
    "Inches": ["15.6", '13.3"', "0", "-1", "1e400", ".5", "1e-320"],
    "ScreenResolution": ["IPS Panel Full HD / Touchscreen 1920x1080", "1366x768", "0x0", "9" * 400 + "x1"],
    "Cpu": ["Intel Core i7 7700HQ 2.8GHz", "AMD A9-Series 9420 3GHz", "Samsung Cortex A72&A53 2.0GHz", "0GHz"],
    "Ram": ["8GB", "0GB", "4096GB", "1e3GB", "8 gb"],
    "Memory": ["256GB SSD", "128GB SSD +  1TB HDD", "1.0TB Hybrid", "64GB Flash Storage", "0GB SSD", "+"],
    "Gpu": ["Nvidia GeForce GTX 1050", "Intel HD Graphics", "ARM Mali T860 MP4", "AMD Radeon <U+039C>",
            "X " + "0" * 5000 + "1"],
    "OpSys": ["Windows 10", "macOS", "No OS", "Chrome OS", "Android"],
    "Weight": ["2.0kg", "1.37kgs", "0kg", "4s", "9" * 400 + "kg"],
}


@st.composite
def raw_frames(draw):
    import pandas as pd

    from ppml.features import RAW_COLUMNS

    rows = draw(st.integers(1, 3))
    cell = lambda column: (st.sampled_from(LAPTOP_VALUES[column]) | st.text(max_size=25) | TRICKY_STRINGS
                           | st.none() | st.floats() | st.integers())
    data = {c: [draw(cell(c)) for _ in range(rows)] for c in RAW_COLUMNS
            if draw(st.integers(0, 30))}  # now and then a column is missing
    return pd.DataFrame(data, index=draw(st.sampled_from([None, [f"r{i}" for i in range(rows)]])))


@FUZZ
@given(raw_frames())
def test_feature_parser_on_arbitrary_strings(frame):
    import numpy as np

    from ppml.features import NUMERIC_FEATURES, engineer_features

    out = only_ppml_errors(engineer_features, frame)
    if out is not None:  # what parses is finite
        assert np.isfinite(out[list(NUMERIC_FEATURES)].to_numpy(dtype=np.float64)).all()


@st.composite
def csv_bytes(draw):
    from ppml.features import RAW_COLUMNS

    columns = draw(st.lists(st.sampled_from([*RAW_COLUMNS, "Price", "id", "", "x"]), max_size=12))
    text_cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
    rows = draw(st.lists(st.lists(text_cell, min_size=len(columns), max_size=len(columns)), max_size=4))
    lines = [",".join(columns)] + [",".join(r) for r in rows]
    data = "\n".join(lines).encode(draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"])), "replace")
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return data


@FUZZ
@given(st.one_of(st.binary(max_size=300), csv_bytes(), csv_bytes()), st.sampled_from([None, 1, 2]))
def test_csv_reader_on_bytes(data, chunk):
    from ppml.customer import iter_record_chunks

    def read():
        for frame, ids in iter_record_chunks(io.BytesIO(data), "fuzz.csv", chunk):
            assert len(frame) == len(ids)

    only_ppml_errors(read)


def test_csv_id_with_a_superscript_digit():
    from ppml.customer import iter_record_chunks

    ((_, ids),) = iter_record_chunks(io.BytesIO("id,x\n²,1\n".encode()), "ids.csv", None)
    assert ids == ["²"]


def test_csv_id_with_more_digits_than_python_converts():
    from ppml.customer import iter_record_chunks

    try:
        ((_, ids),) = iter_record_chunks(io.BytesIO(("id,x\n" + "7" * 5000 + ",1\n").encode()), "ids.csv", None)
    except InputError:
        return
    assert ids == ["7" * 5000]
