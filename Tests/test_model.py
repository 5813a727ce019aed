"""Training, the committed artifacts, and safe loading of model files."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from conftest import ROOT
from ppml import artifacts
from ppml.errors import ArtifactError
from ppml.model import train_laptop_model

MAX_ABS_COEFFICIENT = 10.0  # the original project's were ±6.3e10


@pytest.fixture(scope="module")
def retrained(tmp_path_factory, bundled_raw):
    out = tmp_path_factory.mktemp("model")
    trained = train_laptop_model(bundled_raw)
    artifacts.save_model(trained, out)
    return trained, out


def test_bundled_data_is_what_the_generator_writes(tmp_path):
    """Regenerated data equals the committed file: text columns exactly, numbers within 1e-12
    (NumPy promises its bit generators across versions, not every distribution's last bit)."""
    import pandas as pd

    from ppml.datagen import write_laptops_csv

    write_laptops_csv(tmp_path / "laptops.csv")
    fresh, committed = (pd.read_csv(p, keep_default_na=False) for p in (tmp_path / "laptops.csv",
                                                                        ROOT / "Data" / "laptop_data.csv"))
    pd.testing.assert_frame_equal(fresh, committed, check_exact=False, rtol=1e-12, atol=0)


def assert_same_model(folder, reference, raw):
    """Two artifact sets describe the same model: what the code fully controls (feature names,
    codec, target) exactly; what training computes in floats within rtol 1e-12, since BLAS and
    NumPy builds may differ in the last bits."""
    import json

    spec, ref = (json.loads((f / artifacts.PARAMS_DIR / artifacts.MODEL_JSON).read_text()) for f in (folder, reference))
    for key in ("format", "version", "features", "codec", "outputs", "link", "tolerance"):
        assert spec[key] == ref[key], key
    for key in ("lower", "upper"):
        np.testing.assert_allclose(spec[key], ref[key], rtol=1e-12, atol=1e-12)
    assert spec["inputs"].keys() == ref["inputs"].keys()
    np.testing.assert_allclose(list(spec["inputs"].values()), list(ref["inputs"].values()), rtol=1e-12)
    coef, ref_coef = (json.loads((f / artifacts.PARAMS_DIR / artifacts.COEFFICIENTS_JSON).read_text())
                      for f in (folder, reference))
    np.testing.assert_allclose(coef["coefficients"], ref_coef["coefficients"], rtol=1e-12, atol=1e-14)
    intercept, ref_intercept = (json.loads((f / artifacts.PARAMS_DIR / artifacts.INTERCEPT_JSON).read_text())
                                for f in (folder, reference))
    np.testing.assert_allclose(intercept["intercepts"], ref_intercept["intercepts"], rtol=1e-12)
    for name in (artifacts.COL_TNF, artifacts.PIPELINE):
        load = artifacts.load_customer_transform if name == artifacts.COL_TNF else artifacts.load_pickle
        fresh, committed = (load(f / name) for f in (folder, reference))
        apply = (lambda m: m.predict(raw)) if name == artifacts.PIPELINE else (lambda m: m.transform(raw))
        np.testing.assert_allclose(apply(fresh), apply(committed), rtol=1e-12, atol=1e-12)


def test_committed_artifacts_are_what_train_writes(retrained, bundled_raw):
    _, out = retrained
    assert_same_model(out, ROOT, bundled_raw)


def test_train_command_without_target_is_still_the_laptop_model(tmp_path, retrained, bundled_raw):
    from click.testing import CliRunner

    from ppml.cli import main

    result = CliRunner().invoke(main, ["train", str(ROOT / "Data" / "laptop_data.csv"), "--out-dir", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].startswith("held-out R² (log price): 0.")
    _, out = retrained
    # The same training twice in one environment is deterministic: the same bytes.
    for name in (artifacts.COL_TNF, artifacts.PIPELINE):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    for name in (artifacts.MODEL_JSON, artifacts.COEFFICIENTS_JSON, artifacts.INTERCEPT_JSON):
        assert (tmp_path / artifacts.PARAMS_DIR / name).read_bytes() == \
               (out / artifacts.PARAMS_DIR / name).read_bytes(), name
    assert_same_model(tmp_path, ROOT, bundled_raw)


def test_model_is_accurate_and_well_conditioned(retrained):
    trained, _ = retrained
    assert trained.metrics["r2_log"] >= 0.8
    assert trained.metrics["max_abs_coefficient"] <= MAX_ABS_COEFFICIENT
    assert trained.metrics["rows_test"] >= 200


def test_exported_parameters_reproduce_the_pipeline(params, col_tnf, pipeline, bundled_raw):
    x = col_tnf.transform(bundled_raw)
    linear = x @ np.array(params.coefficients[0]) + params.intercepts[0]
    np.testing.assert_allclose(linear, pipeline.predict(bundled_raw), rtol=0, atol=1e-12)
    assert params.spec.features == col_tnf.feature_names


@pytest.mark.parametrize("source", ["bundled", "public", "unseen categories"])
def test_compiled_transformer_equals_scikit_learn_bit_for_bit(source, col_tnf, pipeline, bundled_raw):
    import pandas as pd

    from conftest import PUBLIC_LAPTOPS

    raw = bundled_raw
    if source == "public":
        if not PUBLIC_LAPTOPS.exists():
            pytest.skip("the public laptop data set is not beside this checkout")
        raw = pd.read_csv(PUBLIC_LAPTOPS, dtype=str, keep_default_na=False)
    elif source == "unseen categories":
        raw = bundled_raw.iloc[:20].copy()
        raw["Company"] = "Nokia"
        raw["TypeName"] = "Tablet"
    np.testing.assert_array_equal(col_tnf.transform(raw), pipeline[:-1].transform(raw))


def test_customer_transformer_loads_without_scikit_learn():
    import subprocess
    import sys

    code = ("import sys; from ppml.artifacts import load_customer_transform; load_customer_transform('col_tnf.pkl'); "
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_customer_loader_admits_no_global_at_all(tmp_path):
    path = tmp_path / artifacts.COL_TNF
    path.write_bytes((ROOT / artifacts.PIPELINE).read_bytes())
    with pytest.raises(ArtifactError) as e:
        artifacts.load_customer_transform(path)
    assert str(e.value) == (f"{path}: refusing to load sklearn.pipeline.Pipeline: col_tnf.pkl holds plain data only "
                            "(lists, text, numbers), never a class or function (the file may be tampered with)")


def test_every_bundled_record_is_inside_the_declared_bounds(params, col_tnf, bundled_raw):
    x = col_tnf.transform(bundled_raw)
    assert (x >= np.array(params.spec.lower)).all() and (x <= np.array(params.spec.upper)).all()


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


def test_pickle_that_runs_a_command_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "col_tnf.pkl"
    evil.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(ArtifactError) as e:
        artifacts.load_customer_transform(evil)
    assert str(e.value) == (f"{evil}: refusing to load posix.system: col_tnf.pkl holds plain data only (lists, text, "
                            "numbers), never a class or function (the file may be tampered with)")
    with pytest.raises(ArtifactError) as e:  # the company's own pipeline loader refuses it too
        artifacts.load_pickle(evil)
    assert str(e.value) == (f"{evil}: refusing to load posix.system: not a model class this toolkit uses "
                            "(the file may be tampered with)")
    assert not marker.exists()


@pytest.mark.parametrize("payload, message", [
    (b"", "not a readable model file (EOFError: Ran out of input)"),
    (b"garbage", "not a readable model file (UnpicklingError: pickle data was truncated)"),
])
def test_corrupt_pickles_are_clean_errors(tmp_path, payload, message):
    path = tmp_path / "x.pkl"
    path.write_bytes(payload)
    with pytest.raises(ArtifactError) as e:
        artifacts.load_pickle(path)
    assert str(e.value) == f"{path}: {message}"


def test_truncated_committed_pickle_is_a_clean_error(tmp_path):
    data = (ROOT / artifacts.PIPELINE).read_bytes()
    path = tmp_path / "p.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="not a readable model file"):
        artifacts.load_pickle(path)


# ---------------------------------------------------------------------------------------------
# The customer's transformer is plain data: no global, every field checked
# ---------------------------------------------------------------------------------------------
PLAIN_DATA = "col_tnf.pkl holds plain data only (lists, text, numbers), never a class or function " \
             "(the file may be tampered with)"


class _ObjectArray:
    """Pickles as numpy's ``_frombuffer`` building an array of dtype object whose element
    pointers are bytes of the writer's choosing: loading it would crash the process."""

    def __reduce__(self):
        from numpy._core.numeric import _frombuffer

        return _frombuffer, (b"\x41" * 32, np.dtype(object), (4,), "C")


def _crafted_model(folder, payload: bytes):
    import shutil

    folder.mkdir()
    shutil.copytree(ROOT / artifacts.PARAMS_DIR, folder / artifacts.PARAMS_DIR)
    (folder / artifacts.COL_TNF).write_bytes(payload)
    return folder


def test_committed_col_tnf_is_a_pickle_of_builtins_without_any_global():
    data = (ROOT / artifacts.COL_TNF).read_bytes()
    assert artifacts.pickle_globals(data) == frozenset()
    d = pickle.loads(data)
    assert (d["format"], d["version"]) == ("ppml.customer-transform", 1)
    assert [f["parser"] for f in d["features"]][:6] == ["laptop.company", "laptop.type_name", "laptop.cpu_brand",
                                                         "laptop.gpu_brand", "laptop.os", "laptop.ram_gb"]


def test_crafted_object_array_pickle_is_refused_by_customer_encrypts_in_its_own_process(tmp_path):
    import subprocess
    import sys

    model = _crafted_model(tmp_path / "model", pickle.dumps(_ObjectArray()))
    out = subprocess.run([sys.executable, str(ROOT / "CustomerEncrypts.py"), "--model", str(model), "--keys",
                          str(tmp_path / "keys"), "-o", str(tmp_path / "data.json"), "--allow-weak-key"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, (out.returncode, out.stderr)  # not a signal (a crash is negative)
    assert out.stderr.splitlines() == [
        f"Error: {model / artifacts.COL_TNF}: refusing to load numpy._core.numeric._frombuffer: {PLAIN_DATA}"]
    assert not (tmp_path / "data.json").exists() and not (tmp_path / "keys").exists()


def test_crafted_pickle_is_refused_by_fetch_model_and_the_portal(tmp_path):
    import hashlib

    import httpx

    from ppml import client
    from ppml.documents import ModelSpec
    from ppml.portal.predict import Customer

    crafted = pickle.dumps(_ObjectArray())
    model_json = (ROOT / artifacts.PARAMS_DIR / artifacts.MODEL_JSON).read_bytes()
    spec = artifacts.load_spec(ROOT)
    assert isinstance(spec, ModelSpec)
    served = {"/v1/model/Model.json": model_json, "/v1/model/col_tnf.pkl": crafted}
    description = {"format": client.MODEL_DESCRIPTION, "model_fingerprint": spec.fingerprint,
                   "files": {name.rsplit("/", 1)[1]: {"sha256": hashlib.sha256(data).hexdigest()}
                             for name, data in served.items()}}

    def handler(request):
        if request.url.path == "/v1/model":
            return httpx.Response(200, json=description)
        return httpx.Response(200, content=served[request.url.path])

    with pytest.raises(client.ServiceError) as e:
        client.fetch_model("http://x", tmp_path / "m", http=httpx.Client(transport=httpx.MockTransport(handler)))
    assert str(e.value) == (f"http://x/v1/model/col_tnf.pkl: col_tnf.pkl: refusing to load "
                            f"numpy._core.numeric._frombuffer: {PLAIN_DATA}")
    assert not (tmp_path / "m" / "col_tnf.pkl").exists()

    model = _crafted_model(tmp_path / "portal", crafted)
    with pytest.raises(ArtifactError) as e:
        Customer.load("http://x", "token", model, keys=None)
    assert str(e.value) == f"{model / artifacts.COL_TNF}: refusing to load numpy._core.numeric._frombuffer: {PLAIN_DATA}"


@pytest.mark.parametrize("payload, name", [
    (pickle.dumps(np.zeros(2)), "numpy._core.multiarray._reconstruct"),
    (b"\x80\x04cbuiltins\ndict\n)R.", "builtins.dict"),  # even a harmless global
    (pickle.dumps(eval, protocol=4), "builtins.eval"),  # STACK_GLOBAL
    (pickle.dumps(__import__("collections").OrderedDict()), "collections.OrderedDict"),
], ids=["ndarray", "GLOBAL", "STACK_GLOBAL", "class"])
def test_a_pickle_naming_any_global_is_refused(tmp_path, payload, name):
    path = tmp_path / artifacts.COL_TNF
    path.write_bytes(payload)
    with pytest.raises(ArtifactError) as e:
        artifacts.load_customer_transform(path)
    assert str(e.value) == f"{path}: refusing to load {name}: {PLAIN_DATA}"


def _edit(change):
    d = pickle.loads((ROOT / artifacts.COL_TNF).read_bytes())
    change(d)
    return d


def _set(path, value):
    def change(d):
        node = d
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


LAST = -1  # the laptop transform's last block scales the numeric features
MALFORMED = [
    (lambda d: None, "expected a JSON object of format 'ppml.customer-transform', got list"),
    (_set(["format"], "ppml.model"), "format is 'ppml.model', expected 'ppml.customer-transform'"),
    (_set(["version"], 2), "version 2 of 'ppml.customer-transform' is not supported (supported: 1)"),
    (_set(["code"], "os.system"),
     "transform must be an object with exactly the fields format, version, inputs, features, blocks, names"),
    (_set(["inputs", 1], "Company"), "inputs names a column twice"),
    (_set(["inputs", 0], ["Company"]), "inputs[0] must be non-empty text of at most 1000 characters"),
    (_set(["inputs", 0], "C" * 1001), "inputs[0] must be non-empty text of at most 1000 characters"),
    (_set(["features", 2, "parser"], "builtins.eval"),
     "features[2].parser must be one of number, category, laptop.company, laptop.type_name, laptop.cpu_brand, "
     "laptop.gpu_brand, laptop.os, laptop.ram_gb, laptop.weight_kg, laptop.touchscreen, laptop.ips, laptop.ppi, "
     "laptop.cpu_ghz, laptop.gpu_number, laptop.hdd_gb, laptop.ssd_gb, laptop.hybrid_gb, laptop.flash_gb"),
    (_set(["features", 9, "columns"], ["ScreenResolution"]),
     "features[9].columns must name 2 column(s) for 'laptop.ppi'"),
    (_set(["features", 10, "parser"], "number"),
     "features: column 'Cpu' is read both as 'laptop.cpu' and as 'number'"),
    (_set(["features", 5, "columns"], ["RAM"]),
     "features: inputs and the features' source columns differ ('Ram')"),
    (_set(["blocks", 0, "kind"], "sklearn"), "blocks[0].kind must be one of one_hot, scale"),
    (_set(["blocks", 0, "width"], True), "blocks[0].width must be an integer from 1 to 100001"),
    (_set(["blocks", 0, "index", 0], 99), "blocks[0].index[0] must be an integer from -1 to 8"),
    (_set(["blocks", 0, "unknown"], -3), "blocks[0].unknown must be an integer from -2 to 8"),
    (_set(["blocks", 0, "categories", 1], "Acer"), "blocks[0].categories[1] repeats a category"),
    (_set(["blocks", 0, "categories", 1], b"\x00" * 8), "blocks[0].categories[1] must be a finite number"),
    (_set(["blocks", 0, "categories"], ["x"] * 100_001),
     "blocks[0].categories must be a list of at most 100000 entries"),
    (_set(["blocks", 0, "column"], "Ram"), "blocks[0] reads 'Ram', which is not a feature"),
    (_set(["blocks", 0, "column"], "ram_gb"), None),  # a one-hot block may read a number: fine
    (_set(["blocks", LAST, "mean", 0], float("nan")), "blocks[5].mean[0] must be a finite number"),
    (_set(["blocks", LAST, "scale", 3], 0.0), "blocks[5].scale must not contain 0"),
    (_set(["blocks", LAST, "factor"], [1.0]), "blocks[5].factor must have one number per column (11)"),
    (_set(["blocks", LAST, "columns", 0], "Company"), "blocks[5] scales 'Company', which is text"),
    (_set(["names", 0], "Company_Dell"), "names must name each output column of the blocks once"),
]


@pytest.mark.parametrize("change, message", MALFORMED, ids=[m or "accepted" for _, m in MALFORMED])
def test_malformed_transform_fields_are_refused_with_one_line(tmp_path, change, message):
    d = [] if message and message.endswith("got list") else _edit(change)
    path = tmp_path / artifacts.COL_TNF
    path.write_bytes(pickle.dumps(d, protocol=5))
    if message is None:
        artifacts.load_customer_transform(path)
        return
    with pytest.raises(ArtifactError) as e:
        artifacts.load_customer_transform(path)
    assert str(e.value) == f"{path}: {message}"


def test_the_published_schema_describes_col_tnf_and_its_parser_vocabulary(retrained):
    import json

    from jsonschema import Draft202012Validator

    from ppml.features import PARSERS

    schema = json.loads((ROOT / "docs" / "schema" / "customer-transform.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    for folder in (ROOT, retrained[1]):
        Draft202012Validator(schema).validate(pickle.loads((folder / artifacts.COL_TNF).read_bytes()))
    assert schema["properties"]["features"]["items"]["properties"]["parser"]["enum"] == list(PARSERS)
    with pytest.raises(Exception, match="is not one of"):
        Draft202012Validator(schema).validate(_edit(_set(["features", 0, "parser"], "builtins.eval")))


def test_a_col_tnf_pickled_by_an_older_ppml_says_how_to_replace_it(tmp_path):
    # The old form pickled ppml's classes: its first global is the transform's class.
    path = tmp_path / artifacts.COL_TNF
    path.write_bytes(b"\x80\x04cppml.encoder\nCustomerTransform\n)\x81.")
    with pytest.raises(ArtifactError) as e:
        artifacts.load_customer_transform(path)
    assert str(e.value) == (f"{path}: refusing to load ppml.encoder.CustomerTransform: col_tnf.pkl holds plain data "
                            "only (lists, text, numbers), never a class or function (an older ppml wrote it: write "
                            "it again with `python -m ppml train` or `export`, or `fetch-model`)")
