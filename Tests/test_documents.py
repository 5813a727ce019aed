"""Stage documents: round trips, and every check a reader makes before doing any work."""
from __future__ import annotations

import copy
import json

import pytest

from ppml.documents import EncryptedFeatures, EncryptedPredictions, ModelParameters, ModelSpec
from ppml.errors import DocumentError, KeyMismatchError
from ppml.links import ClassLink, TargetLink
from ppml.paillier import Encryptor, design_codec, encrypt_packed

LOG = TargetLink((("func", "exp"),))


@pytest.fixture(scope="module")
def spec():
    codec = design_codec([0.0, -1.0], [1.0, 10.0], [0.3, -0.2], 1.5)
    return ModelSpec(["a", "b"], [0.0, -1.0], [1.0, 10.0], codec, ["Price"], LOG, {"b_raw": [0.0, 5.0]})


@pytest.fixture(scope="module")
def classes_spec():
    codec = design_codec([0.0, -1.0], [1.0, 10.0], [0.3, 0.4], 1.5)
    return ModelSpec(["a", "b"], [0.0, -1.0], [1.0, 10.0], codec, ["decision_x", "decision_y", "decision_z"],
                     ClassLink(("x", "y", "z"), "softmax"))


@pytest.fixture(scope="module")
def features_doc(keypair, spec):
    public = keypair[0]
    codec = spec.codec
    rows = [[codec.encode_bound(0.5), codec.encode_bound(3.0)], [0, 0]]
    from ppml.documents import Batch

    cts = encrypt_packed(Encryptor(public), codec, rows)
    return EncryptedFeatures(public, spec.fingerprint, codec, codec.slots_for(public.bits), spec.features,
                             [Batch([0, "x"], cts)]).to_dict()


def test_spec_round_trip_and_fingerprint_covers_content(spec):
    d = json.loads(json.dumps(spec.to_dict()))
    assert ModelSpec.from_dict(d) == spec
    d["upper"][0] = 2.0
    with pytest.raises(DocumentError, match="fingerprint does not match the content"):
        ModelSpec.from_dict(d)


def test_every_link_round_trips_and_is_fingerprinted(spec, classes_spec):
    d = json.loads(json.dumps(classes_spec.to_dict()))
    assert d["version"] == 2 and d["link"] == {"kind": "class", "classes": ["x", "y", "z"], "probability": "softmax"}
    assert ModelSpec.from_dict(d) == classes_spec
    assert classes_spec.columns == ["prediction", "proba_x", "proba_y", "proba_z"]
    d["link"]["probability"] = "logistic"
    with pytest.raises(DocumentError, match="fingerprint does not match the content"):
        ModelSpec.from_dict(d)
    d = json.loads(json.dumps(spec.to_dict()))
    assert d["outputs"] == ["Price"] and d["link"] == {"kind": "target", "steps": [["func", "exp"]]}
    assert spec.columns == ["prediction"] and spec.prediction([0.0]) == (1.0,)


@pytest.mark.parametrize("outputs, link, message", [
    (["y"], {"kind": "target", "steps": [["func", "eval"]]}, "link function 'eval' is not one of exp, expm1,"),
    (["y", "z"], {"kind": "target", "steps": [["mul", [2.0]]]},
     "link step 'mul' must be one of add, sub, mul, div, func with 2 finite number(s)"),
    (["y"], {"kind": "target", "steps": [["div", [0.0]]]}, "link step 'div' divides by zero"),
    (["y"], {"kind": "tree"}, "field 'link' must be an object of kind 'target' or 'class'"),
    (["d"], {"kind": "class", "classes": ["a", "a"], "probability": None}, "link classes must be a list of at least"),
    (["d"], {"kind": "class", "classes": [1, 2, 3], "probability": None},
     "3 classes need 3 output(s), the model has 1"),
    (["d"], {"kind": "class", "classes": [0, 1], "probability": "sigmoid"}, "link probability must be one of"),
])
def test_malformed_links_are_refused(spec, outputs, link, message):
    d = dict(spec.to_dict(), outputs=outputs, link=link)
    with pytest.raises(DocumentError) as e:
        ModelSpec.from_dict(d)
    assert str(e.value).startswith(message)


def test_a_version_1_model_is_refused_with_what_to_do(spec):
    with pytest.raises(DocumentError) as e:
        ModelSpec.from_dict(dict(spec.to_dict(), version=1))
    assert str(e.value) == ("version 1 of 'ppml.model' is not supported (supported: 2; retrain or re-export the "
                            "model to write it again)")


def test_parameters_have_one_row_per_output(classes_spec):
    params = ModelParameters(classes_spec, [[0.3, 0.4], [0.1, -0.2], [-0.3, 0.0]], [1.5, -1.0, 0.0])
    coefficients, intercept = params.coefficients_dict(), params.intercept_dict()
    assert ModelParameters.from_dicts(classes_spec, coefficients, intercept) == params
    with pytest.raises(DocumentError, match=r"^field 'coefficients' has 2 rows, expected 3 \(one per output\)$"):
        ModelParameters.from_dicts(classes_spec, dict(coefficients, coefficients=coefficients["coefficients"][:2]),
                                   intercept)
    with pytest.raises(DocumentError, match=r"^field 'intercepts' has 1 values, expected 3$"):
        ModelParameters.from_dicts(classes_spec, coefficients, dict(intercept, intercepts=[1.5]))
    big = dict(coefficients, coefficients=[[0.3, 0.4], [0.1, 3e6], [-0.3, 0.0]])
    with pytest.raises(DocumentError, match=r"slot width \d+ bits is too small for the weights of 'decision_y'"):
        ModelParameters.from_dicts(classes_spec, big, intercept)


def test_parameters_refuse_weights_of_another_model(spec):
    params = ModelParameters(spec, [[0.3, -0.2]], [1.5])
    other = ModelSpec(["a", "b"], [0.0, -1.0], [1.0, 11.0], spec.codec, ["Price"], LOG)
    with pytest.raises(KeyMismatchError, match="the coefficients belong to another model"):
        ModelParameters.from_dicts(other, params.coefficients_dict(), params.intercept_dict())


def test_parameters_refuse_a_slot_width_too_small_for_the_weights(spec):
    params = ModelParameters(spec, [[0.3, -0.2]], [1.5])
    big = params.coefficients_dict()
    big["coefficients"] = [[3e6, -0.2]]
    with pytest.raises(DocumentError, match=r"slot width \d+ bits is too small for the weights of 'Price'"):
        ModelParameters.from_dicts(spec, big, params.intercept_dict())


def test_features_round_trip(keypair, features_doc):
    doc = EncryptedFeatures.from_dict(copy.deepcopy(features_doc), allow_weak=True)
    assert doc.records == 2 and doc.batches[0].ids == [0, "x"]
    assert doc.to_dict() == features_doc


def _mutate(doc, path, value):
    d = copy.deepcopy(doc)
    target = d
    for p in path[:-1]:
        target = target[p]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return d


@pytest.mark.parametrize("path, value, message", [
    (("format",), "ppml.encrypted-predictions",
     "format is 'ppml.encrypted-predictions', expected 'ppml.encrypted-features'"),
    (("version",), 2, "version 2 of 'ppml.encrypted-features' is not supported (supported: 1)"),
    (("version",), True, "version True of 'ppml.encrypted-features' is not supported (supported: 1)"),
    (("records",), 3, "records says 3 but the batches hold 2"),
    (("slots",), 0, "field 'slots' must be at least 1, got 0"),
    (("slots",), 1, "a batch holds 2 records, expected 1 to 1"),
    (("features",), ["a"], "batch 0 has 2 ciphertexts, expected 1 (one per feature)"),
    (("features",), ["a", "a"], "field 'features' must be a non-empty list of distinct names"),
    (("batches",), [], "the document holds no records"),
    (("batches", 0, "ids"), [0, None], "record ids must be strings or integers"),
    (("batches", 0, "ciphertexts", 1), "zz", "batch 0 ciphertext 1 is not hexadecimal"),
    (("batches", 0, "ciphertexts", 1), "0", "batch 0 ciphertext 1 is out of range for this key (need 0 < c < n²)"),
    (("batches", 0, "ciphertexts", 0), 5, "batch 0 ciphertext 0 must be a hexadecimal string of at most 512 digits"),
    (("key_fingerprint",), "sha256:" + "1" * 64, "key_fingerprint does not match the public key in the document"),
    (("model_fingerprint",), KeyError, "field 'model_fingerprint' is missing"),
    (("public_key", "bits"), 4096, "public_key: declared size 4096 does not match n (1024 bits)"),
    (("codec", "slot_bits"), 5000, "codec slot_bits must be an integer in [0, 4096], got 5000"),
])
def test_features_reader_refuses(features_doc, path, value, message):
    with pytest.raises(DocumentError) as e:
        EncryptedFeatures.from_dict(_mutate(features_doc, path, value), allow_weak=True)
    assert str(e.value) == message


def test_ciphertext_sharing_a_factor_with_n_is_refused(keypair, features_doc):
    d = _mutate(features_doc, ("batches", 0, "ciphertexts", 0), format(keypair[1].p, "x"))
    with pytest.raises(DocumentError, match="batch 0 ciphertext 0 is not a unit modulo n"):
        EncryptedFeatures.from_dict(d, allow_weak=True)


def test_predictions_reader_checks_key_and_one_ciphertext_per_output(keypair, other_keypair, classes_spec):
    from ppml.documents import Batch

    public = keypair[0]
    cts = [Encryptor(public).encrypt(v) for v in (1, 2, 3)]
    doc = EncryptedPredictions(public.fingerprint, classes_spec.fingerprint, classes_spec.codec, 3,
                               classes_spec.outputs, [Batch([0, 1], cts)]).to_dict()
    assert doc["version"] == 2 and len(doc["batches"][0]["ciphertexts"]) == 3
    parsed = EncryptedPredictions.from_dict(copy.deepcopy(doc), public)
    assert parsed.records == 2 and parsed.outputs == classes_spec.outputs and parsed.batches[0].ciphertexts == cts
    with pytest.raises(KeyMismatchError, match="encrypted for key sha256:"):
        EncryptedPredictions.from_dict(doc, other_keypair[0])
    with pytest.raises(DocumentError, match=r"^batch 0 has 2 ciphertexts, expected 3 \(one per output\)$"):
        EncryptedPredictions.from_dict(_mutate(doc, ("batches", 0, "ciphertexts"),
                                               doc["batches"][0]["ciphertexts"][:2]),
                                       public)
    with pytest.raises(DocumentError, match=r"^batch 0 ciphertext 2 is not hexadecimal$"):
        EncryptedPredictions.from_dict(_mutate(doc, ("batches", 0, "ciphertexts", 2), "zz"), public)
    with pytest.raises(DocumentError, match="field 'outputs' must be a non-empty list of distinct names"):
        EncryptedPredictions.from_dict(_mutate(doc, ("outputs",), []), public)


@pytest.mark.parametrize("csv_id, message", [
    ("", "a record id string must have 1 to 256 characters"),
    ("x" * 257, "a record id string must have 1 to 256 characters"),
])
def test_the_customer_refuses_a_csv_id_the_company_would_refuse(csv_id, message):
    """One id rule on both sides: an id the company's reader refuses (documents.id_problem) is
    refused while the CSV is read, before anything is encrypted."""
    import io

    from ppml.errors import InputError
    from ppml.records import iter_record_chunks

    data = f"id,x\n7,1\n{csv_id},2\n".encode()
    with pytest.raises(InputError) as e:
        list(iter_record_chunks(io.BytesIO(data), "r.csv", None))
    assert str(e.value) == f"r.csv: row 1, column 'id': {message}"


def test_csv_ids_become_json_ids_as_the_protocol_says():
    import io

    from ppml.records import iter_record_chunks

    data = b"id,x\n17,1\n017,2\nA-3,3\n-5,4\n0,5\n"
    (_, ids), = iter_record_chunks(io.BytesIO(data), "r.csv", None)
    assert ids == [17, "017", "A-3", "-5", 0]
