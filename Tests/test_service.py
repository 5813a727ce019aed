"""The prediction service in-process (Starlette's TestClient drives the ASGI app, lifespan and
scoring processes included): answers that decrypt to the plaintext model, every refusal with
its status and JSON body, quotas, the public model files, metrics, the audit log, and the
client library (``ppml.client``) against it.

1024-bit keys (``allow_weak_key``) for speed.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():  # newer Starlette prefers httpx2 for its TestClient; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from conftest import ROOT, encrypted_document
from ppml import client as ppml_client
from ppml.artifacts import PARAMS_DIR, load_parameters
from ppml.customer import decrypt_stream, prepare_features
from ppml.documents import EncryptedPredictions
from ppml.errors import PpmlError
from ppml.service.app import PEEK_BATCHES, Settings, create_app
from ppml.service.clients import ClientDB

REL_TOLERANCE = 1e-9
WEIGHT_FILES = ("Coefficients.json", "Intercept.json", "PreProcessingDataAndModel.pkl")


# -- documents and answers ----------------------------------------------------------------------
def features_document(raw, keypair, col_tnf, params) -> dict:
    """The customer's encrypted-features document of ``raw`` records (ids 0…)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return encrypted_document(raw.reset_index(drop=True), keypair, col_tnf, params.spec, Path(folder))


def as_json(doc: dict) -> bytes:
    return json.dumps(doc).encode()


def as_jsonl(doc: dict) -> bytes:
    head = {k: v for k, v in doc.items() if k not in ("batches", "records")}
    lines = [json.dumps({**head, "layout": "jsonl"})] + [json.dumps(b) for b in doc["batches"]]
    lines.append(json.dumps({"end": True, "records": doc["records"], "batches": len(doc["batches"])}))
    return ("\n".join(lines) + "\n").encode()


def decrypt_answer(body: bytes, keypair) -> tuple[list, bool]:
    """(id, prediction) pairs of an answer in either layout, and whether it was JSON Lines."""
    public, private = keypair
    text = body.decode()
    first = json.loads(text.split("\n", 1)[0])
    if first.get("layout") == "jsonl":
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        header, raw_batches, end = lines[0], lines[1:-1], lines[-1]
        assert end["end"] is True and end["records"] == sum(len(b["ids"]) for b in raw_batches)
        jsonl = True
    else:
        header = json.loads(text)
        raw_batches, jsonl = header["batches"], False
    doc = EncryptedPredictions.parse_header(header, public)
    batches = [doc.parse_batch(b, i, public) for i, b in enumerate(raw_batches)]
    spec = load_parameters(ROOT / PARAMS_DIR).spec
    return [(rid, price) for chunk in decrypt_stream(doc, batches, private, spec) for rid, (price,) in chunk], jsonl


def assert_matches_plaintext(pairs, raw, pipeline):
    expected = [math.exp(v) for v in pipeline.predict(raw)]
    assert [i for i, _ in pairs] == list(range(len(raw)))
    worst = max(abs(p - e) / e for (_, p), e in zip(pairs, expected))
    assert worst <= REL_TOLERANCE


# -- the app ------------------------------------------------------------------------------------
class Service:
    """A running in-process service with two clients: ``alice`` (unlimited) and ``bob``
    (quota 100 records a day)."""

    def __init__(self, folder, **settings):
        self.db = ClientDB(folder / "clients.db")
        self.audit = folder / "audit.jsonl"
        self.tokens = {"alice": self.db.add("alice"), "bob": self.db.add("bob", quota=100)}
        params = load_parameters(ROOT / PARAMS_DIR)
        settings = Settings(**{"workers": 1, "allow_weak_key": True, **settings})
        self.app = create_app(params, db=self.db, settings=settings, model_dir=ROOT, audit_log=self.audit)
        self.http = TestClient(self.app)

    def __enter__(self):
        self.http.__enter__()
        return self

    def __exit__(self, *exc):
        self.http.__exit__(*exc)

    @property
    def service(self):
        return self.app.state.service

    def score(self, body: bytes, who="alice", ctype="application/json", headers=None):
        h = {"Content-Type": ctype, **({"Authorization": f"Bearer {self.tokens[who]}"} if who else {}),
             **(headers or {})}
        return self.http.post("/v1/score", content=body, headers=h)


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    with Service(tmp_path_factory.mktemp("service")) as s:
        yield s


@pytest.fixture(scope="module")
def laptops(bundled_raw):
    return bundled_raw.iloc[:40].reset_index(drop=True)


@pytest.fixture(scope="module")
def document(laptops, keypair, col_tnf, params):
    return features_document(laptops, keypair, col_tnf, params)


# -- answers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["json", "jsonl"])
def test_answers_decrypt_to_the_plaintext_model_in_the_request_layout(svc, document, laptops, keypair,
                                                                      pipeline, layout):
    body = as_json(document) if layout == "json" else as_jsonl(document)
    ctype = "application/json" if layout == "json" else "application/x-ndjson"
    r = svc.score(body, ctype=ctype)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(ctype)
    pairs, jsonl = decrypt_answer(r.content, keypair)
    assert jsonl == (layout == "jsonl")
    assert_matches_plaintext(pairs, laptops, pipeline)


def test_a_long_document_streams_past_the_first_batches(svc, document, keypair):
    """More batches than are checked before the answer starts: the rest stream through."""
    doc = dict(document)
    batch = document["batches"][0]
    n = len(batch["ids"])
    doc["batches"] = [{"ids": list(range(i * n, (i + 1) * n)), "ciphertexts": batch["ciphertexts"]}
                      for i in range(PEEK_BATCHES + 3)]
    doc["records"] = n * len(doc["batches"])
    r = svc.score(as_jsonl(doc), ctype="application/x-ndjson")
    assert r.status_code == 200
    pairs, _ = decrypt_answer(r.content, keypair)
    assert len(pairs) == doc["records"]
    assert len({p for _, p in pairs}) == n  # every batch held the same records


# -- refusals -----------------------------------------------------------------------------------
def _error(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and body["error"]
    return body["error"]


def test_no_token_and_a_wrong_token_get_the_same_401(svc, document):
    none = svc.score(as_json(document), who=None)
    wrong = svc.http.post("/v1/score", content=as_json(document),
                          headers={"Authorization": "Bearer ppml_not-a-token", "Content-Type": "application/json"})
    assert _error(none, 401) == _error(wrong, 401)
    assert none.headers["www-authenticate"].startswith("Bearer")


def test_a_revoked_client_is_refused(tmp_path, document):
    with Service(tmp_path) as s:
        s.db.revoke("alice")
        _error(s.score(as_json(document)), 401)


@pytest.mark.parametrize("body", [
    b"garbage", b"", b"   \n", b"[]", b'{"format":"ppml.encrypted-features"', b"{" * 100_000,
    b'{"x":' + b"[" * 50_000 + b"]" * 50_000 + b"}", b'{"format":"ppml.model","version":1}',
    b'{"format":"ppml.encrypted-features","version":2,"batches":[]}', b"\xff\xfe{}",
])
def test_malformed_bodies_are_400(svc, body):
    _error(svc.score(body), 400)


def test_truncated_and_tampered_documents_are_400(svc, document):
    body = as_json(document)
    _error(svc.score(body[: len(body) // 2]), 400)
    _error(svc.score(as_jsonl(document).rsplit(b"\n", 2)[0] + b"\n", ctype="application/x-ndjson"), 400)
    wrong_count = dict(document, records=document["records"] + 1)
    assert "records says" in _error(svc.score(as_json(wrong_count)), 400)
    bad = json.loads(body)
    bad["batches"][0]["ciphertexts"][0] = "0"
    _error(svc.score(json.dumps(bad).encode()), 400)


def test_another_model_or_codec_is_409(svc, document):
    other_model = dict(document, model_fingerprint="sha256:" + "0" * 64)
    assert "model" in _error(svc.score(as_json(other_model)), 409)
    other_codec = dict(document, codec={**document["codec"], "feature_bits": document["codec"]["feature_bits"] + 1})
    _error(svc.score(as_json(other_codec)), 409)


def test_content_type_must_be_json(svc, document):
    _error(svc.score(as_json(document), ctype="text/plain"), 415)


def test_body_over_the_limit_is_413_by_length_and_by_counting(tmp_path, document):
    with Service(tmp_path, max_body_bytes=50_000) as s:
        body = as_json(document)
        assert len(body) > 50_000
        r = s.score(body)
        _error(r, 413)

        def chunked():  # no Content-Length: cut off once the count passes the limit
            for i in range(0, len(body), 4096):
                yield body[i:i + 4096]

        _error(s.score(chunked()), 413)
        huge = s.http.post("/v1/score", content=b"{}", headers={
            "Authorization": f"Bearer {s.tokens['alice']}", "Content-Type": "application/json",
            "Content-Length": str(300 << 20)})
        _error(huge, 413)


def test_saturated_service_answers_503_with_retry_after(svc, document):
    service = svc.service
    saved = service.admitted
    service.admitted = service.active + service.settings.queue
    try:
        r = svc.score(as_json(document))
    finally:
        service.admitted = saved
    _error(r, 503)
    assert r.headers["retry-after"] == "1"


def test_quota_refuses_whole_requests_and_charges_only_what_was_answered(tmp_path, bundled_raw, keypair,
                                                                          col_tnf, params, pipeline):
    raw300 = bundled_raw.iloc[:300].reset_index(drop=True)
    raw50 = bundled_raw.iloc[300:350].reset_index(drop=True)
    with Service(tmp_path) as s:
        r = s.score(as_json(features_document(raw300, keypair, col_tnf, params)), who="bob")
        assert "quota" in _error(r, 429)
        assert 0 < int(r.headers["retry-after"]) <= 86401
        _error(s.score(b"garbage", who="bob"), 400)
        r = s.score(as_json(features_document(raw50, keypair, col_tnf, params)), who="bob")
        assert r.status_code == 200
        assert_matches_plaintext(decrypt_answer(r.content, keypair)[0], raw50, pipeline)
        usage = {u.name: u for u in s.db.usage()}
        assert (usage["bob"].today, usage["bob"].total, usage["bob"].requests) == (50, 50, 1)
        raw51 = bundled_raw.iloc[350:401].reset_index(drop=True)
        _error(s.score(as_json(features_document(raw51, keypair, col_tnf, params)), who="bob"), 429)
        assert s.score(as_json(features_document(raw50, keypair, col_tnf, params)), who="bob").status_code == 200
        usage = {u.name: u for u in s.db.usage()}
        assert (usage["bob"].today, usage["bob"].total, usage["bob"].requests) == (100, 100, 2)
        assert (usage["alice"].today, usage["alice"].total) == (0, 0)


def test_an_answer_cut_short_ends_with_an_error_line_and_the_client_says_so(svc, document, tmp_path):
    """A bad batch after the first PEEK_BATCHES: the answer has started, so it is cut."""
    batch = document["batches"][0]
    n = len(batch["ids"])
    batches = [{"ids": list(range(i * n, (i + 1) * n)), "ciphertexts": batch["ciphertexts"]}
               for i in range(PEEK_BATCHES + 2)]
    batches[-1] = {"ids": batches[-1]["ids"], "ciphertexts": ["zz"] * len(batch["ciphertexts"])}
    doc = dict(document, batches=batches, records=n * len(batches))
    r = svc.score(as_json(doc))
    assert r.status_code == 200
    last = json.loads(r.content.decode().rstrip("\n").rsplit("\n", 1)[-1])
    assert set(last) == {"error"} and "not hexadecimal" in last["error"]
    out = tmp_path / "answer.json"
    with pytest.raises(ppml_client.ServiceError, match="cut short: .*not hexadecimal"):
        ppml_client.score("http://testserver", as_json(doc), out, svc.tokens["alice"], http=svc.http)
    assert not out.exists()


# -- the model, schemas, health, metrics, audit ------------------------------------------------
def test_model_description_and_public_files(svc, params):
    d = svc.http.get("/v1/model").json()
    assert d["format"] == "ppml.model-description"
    assert d["model_fingerprint"] == params.spec.fingerprint == d["model"]["fingerprint"]
    assert set(d["files"]) == {"Model.json", "col_tnf.pkl"}
    for name, info in d["files"].items():
        r = svc.http.get(f"/v1/model/{name}")
        assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == info["sha256"]
    assert (ROOT / "col_tnf.pkl").read_bytes() == svc.http.get("/v1/model/col_tnf.pkl").content


@pytest.mark.parametrize("path", [
    "Coefficients.json", "Intercept.json", "PreProcessingDataAndModel.pkl", "../Coefficients.json",
    "Encrypted_ModelParameters/Coefficients.json", "%2e%2e/Intercept.json", "..%2FIntercept.json",
    "%252e%252e%252fIntercept.json", "./Intercept.json", "coefficients.json", "Model.json/../Intercept.json",
    "/etc/passwd", "Model.json%00", "col_tnf.pkl/", "%43oefficients.json", "..\\Intercept.json",
])
def test_weights_are_never_served(svc, path):
    coefficients = json.loads((ROOT / PARAMS_DIR / "Coefficients.json").read_text())["coefficients"]
    secret = [json.dumps(c) for c in coefficients[:3]]
    for prefix in ("/v1/model/", "/v1/model//", "/v1/schema/", "/"):
        r = svc.http.get(prefix + path)
        assert r.status_code in (404, 405), (prefix + path, r.status_code)
        assert not any(c in r.text for c in secret)


def test_schemas_are_published(svc):
    index = svc.http.get("/v1/schema/").json()["schemas"]
    assert "encrypted-features.schema.json" in index
    for name in index:
        schema = svc.http.get(f"/v1/schema/{name}").json()
        assert schema["$schema"].startswith("https://json-schema.org/")


def test_health_and_metrics(svc, document):
    assert svc.http.get("/healthz").json()["status"] == "ok"
    before = _metric(svc, "ppml_records_scored_total")
    assert svc.score(as_json(document)).status_code == 200
    text = svc.http.get("/metrics").text
    assert _metric(svc, "ppml_records_scored_total") == before + document["records"]
    assert 'ppml_requests_total{path="/v1/score",status="200"}' in text
    assert "ppml_request_duration_seconds_bucket" in text and "ppml_requests_in_flight" in text


def _metric(svc, name):
    m = re.search(rf"^{name} (\S+)$", svc.http.get("/metrics").text, re.M)
    return float(m.group(1)) if m else 0.0


def test_audit_log_names_clients_and_holds_no_secrets(svc, document):
    svc.score(as_json(document))
    svc.score(b"garbage")
    svc.score(as_json(document), who=None)
    lines = svc.audit.read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert {"time", "client", "records", "batches", "bytes_in", "bytes_out", "status", "duration"} <= set(entries[-1])
    assert [e["status"] for e in entries[-3:]] == [200, 400, 401]
    assert entries[-3]["client"] == "alice" and entries[-3]["records"] == document["records"]
    text = svc.audit.read_text()
    assert not re.search(r"[0-9a-fA-F]{32}", text)
    assert not any(token in text for token in svc.tokens.values())


# -- the client library -------------------------------------------------------------------------
def test_client_scores_files_and_streams(svc, document, keypair, laptops, pipeline, tmp_path):
    src = tmp_path / "data.jsonl"
    src.write_bytes(as_jsonl(document))
    result = ppml_client.score("http://testserver", src, tmp_path / "answer.jsonl", svc.tokens["alice"],
                               http=svc.http)
    assert result.bytes_sent == src.stat().st_size and result.attempts == 1
    assert_matches_plaintext(decrypt_answer((tmp_path / "answer.jsonl").read_bytes(), keypair)[0], laptops, pipeline)
    sink = io.BytesIO()
    ppml_client.score("http://testserver", io.BytesIO(as_json(document)), sink, svc.tokens["alice"], http=svc.http)
    assert decrypt_answer(sink.getvalue(), keypair)[1] is False


def test_client_retries_503_and_replays_a_piped_document(svc, document):
    import httpx

    calls = []
    body = as_json(document)
    answer = io.BytesIO()  # the service's real answer: the client checks it against the document
    ppml_client.score("http://testserver", body, answer, svc.tokens["alice"], http=svc.http)

    def handler(request):
        calls.append(request.read())
        if len(calls) < 3:
            return httpx.Response(503, json={"error": "busy"}, headers={"Retry-After": "0"})
        return httpx.Response(200, content=answer.getvalue())

    sink = io.BytesIO()
    result = ppml_client.score("http://x", io.BytesIO(body), sink, "t", backoff=0.0,
                               http=httpx.Client(transport=httpx.MockTransport(handler)))
    assert result.attempts == 3 and calls == [body] * 3 and sink.getvalue() == answer.getvalue()

    def always_busy(request):
        return httpx.Response(503, json={"error": "the service is saturated; retry later"})

    with pytest.raises(ppml_client.ServiceError, match="503 the service is saturated") as e:
        ppml_client.score("http://x", body, io.BytesIO(), "t", retries=1, backoff=0.0,
                          http=httpx.Client(transport=httpx.MockTransport(always_busy)))
    assert e.value.exit_code == 1


@pytest.mark.parametrize("who,body,status,code", [(None, b"{}", 401, 1), ("alice", b"garbage", 400, 3)])
def test_client_errors_carry_the_status_and_exit_code(svc, who, body, status, code):
    token = svc.tokens.get(who, "wrong")
    with pytest.raises(ppml_client.ServiceError) as e:
        ppml_client.score("http://testserver", body, io.BytesIO(), token, http=svc.http)
    assert e.value.status == status and e.value.exit_code == code


def test_token_file_must_be_private(tmp_path):
    f = tmp_path / "token"
    f.write_text("ppml_abc\n")
    os.chmod(f, 0o644)
    with pytest.raises(PpmlError, match="too open"):
        ppml_client.read_token(f)
    os.chmod(f, 0o600)
    assert ppml_client.read_token(f) == "ppml_abc"
    assert ppml_client.read_token(environ={"PPML_TOKEN": "ppml_env"}) == "ppml_env"
    with pytest.raises(PpmlError, match="no token"):
        ppml_client.read_token(environ={})


def test_fetch_model_sets_up_a_customer(svc, tmp_path, params):
    written = ppml_client.fetch_model("http://testserver", tmp_path / "m", http=svc.http)
    assert sorted(p.relative_to(tmp_path / "m").as_posix() for p in written) == [
        "Encrypted_ModelParameters/Model.json", "col_tnf.pkl"]
    from ppml.artifacts import load_spec

    assert load_spec(tmp_path / "m").fingerprint == params.spec.fingerprint
    (tmp_path / "m" / "col_tnf.pkl").write_bytes(b"other")
    with pytest.raises(PpmlError, match="refusing to replace"):
        ppml_client.fetch_model("http://testserver", tmp_path / "m", http=svc.http)
    ppml_client.fetch_model("http://testserver", tmp_path / "m", force=True, http=svc.http)
    assert (tmp_path / "m" / "col_tnf.pkl").read_bytes() == (ROOT / "col_tnf.pkl").read_bytes()


def test_fetch_model_refuses_a_tampered_transformer(svc, tmp_path):
    import httpx

    def handler(request):
        r = svc.http.get(request.url.path)
        if request.url.path.endswith("col_tnf.pkl"):
            return httpx.Response(200, content=r.content + b"x")
        return httpx.Response(r.status_code, content=r.content)

    with pytest.raises(ppml_client.ServiceError, match="SHA-256"):
        ppml_client.fetch_model("http://x", tmp_path / "m", http=httpx.Client(transport=httpx.MockTransport(handler)))
    assert not (tmp_path / "m" / "col_tnf.pkl").exists()


# -- features -----------------------------------------------------------------------------------
def test_features_command_prints_the_exact_feature_vectors(tmp_path, laptops, col_tnf, params):
    import csv

    from click.testing import CliRunner

    from ppml.cli import main

    laptops.iloc[:5].to_csv(tmp_path / "r.csv", index=False)
    r = CliRunner().invoke(main, ["features", str(tmp_path / "r.csv"), "--model", str(ROOT), "-q"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["id", *params.spec.features]
    x = prepare_features(col_tnf, params.spec, laptops.iloc[:5], list(range(5)))
    assert [[float(v) for v in row[1:]] for row in rows[1:]] == x.tolist()


# -- the published schemas describe what is on the wire -----------------------------------------
def _validator(name):
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    folder = ROOT / "docs" / "schema"
    documents = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in documents)  # by $id only
    schema = json.loads((folder / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


def test_documents_on_the_wire_follow_the_schemas(svc, document, keypair):
    _validator("encrypted-features.schema.json").validate(document)
    _validator("paillier-public-key.schema.json").validate(keypair[0].to_dict())
    _validator("model.schema.json").validate(json.loads((ROOT / PARAMS_DIR / "Model.json").read_text()))
    _validator("model-description.schema.json").validate(svc.http.get("/v1/model").json())
    _validator("error.schema.json").validate(svc.score(b"garbage").json())
    _validator("schema-index.schema.json").validate(svc.http.get("/v1/schema/").json())
    lines = [json.loads(line) for line in as_jsonl(document).splitlines()]
    _validator("encrypted-features-header.schema.json").validate(lines[0])
    for line in lines[1:-1]:
        _validator("encrypted-features-batch.schema.json").validate(line)
    _validator("jsonl-end.schema.json").validate(lines[-1])
    answer = svc.score(as_json(document)).json()
    _validator("encrypted-predictions.schema.json").validate(answer)
    lines = [json.loads(line) for line in svc.score(as_jsonl(document), ctype="application/x-ndjson").text.splitlines()]
    _validator("encrypted-predictions-header.schema.json").validate(lines[0])
    _validator("jsonl-end.schema.json").validate(lines[-1])
    from jsonschema import ValidationError

    with pytest.raises(ValidationError, match=r"^0 is less than the minimum of 1"):
        _validator("encrypted-features.schema.json").validate({**document, "slots": 0})


PROBE = """
import sys, warnings
warnings.simplefilter("ignore")
from ppml.cli import main  # every command registered, as `python -m ppml serve` loads them
from ppml.artifacts import load_parameters
from ppml.service.app import Settings, create_app
from ppml.service.clients import ClientDB
from starlette.testclient import TestClient
app = create_app(load_parameters({params!r}), db=ClientDB({db!r}), settings=Settings(workers=1), model_dir={root!r})
with TestClient(app) as http:
    assert http.get("/healthz").status_code == 200
    assert http.get("/v1/model").status_code == 200
    assert http.post("/v1/score", content=b"{{}}", headers={{"Authorization": "Bearer " + {token!r},
                     "Content-Type": "application/json"}}).status_code == 400
print(sorted(m for m in ("pandas", "sklearn", "scipy", "numpy") if m in sys.modules))
"""


def test_the_service_imports_no_pandas_sklearn_or_numpy(tmp_path):
    import subprocess
    import sys

    token = ClientDB(tmp_path / "c.db").add("probe")
    code = PROBE.format(params=str(ROOT / PARAMS_DIR), db=str(tmp_path / "c.db"), root=str(ROOT), token=token)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_scoring_on_a_dask_cluster(tmp_path, document, laptops, keypair, pipeline):
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    with cluster, Service(tmp_path, scheduler=cluster.scheduler_address) as s:
        r = s.score(as_json(document))
        assert r.status_code == 200, r.text
        assert_matches_plaintext(decrypt_answer(r.content, keypair)[0], laptops, pipeline)
        assert s.http.get("/healthz").json()["workers"] == 1


def test_idle_time_computes_the_servers_randomness_ahead_each_value_used_once(svc, document, laptops, keypair,
                                                                              pipeline):
    """Between requests the pool computes r^n for the keys that just sent documents; the next
    answer for that key uses (and removes) them, and still decrypts to the plaintext model."""
    import time

    from ppml.paillier.keys import PublicKey

    public = PublicKey.from_dict(document["public_key"], allow_weak=True)
    assert svc.score(as_json(document)).status_code == 200
    reserve = svc.service.noise
    deadline = time.monotonic() + 30
    while len(reserve._reserve[public.fingerprint][1]) < 4:
        assert time.monotonic() < deadline, "nothing was computed ahead while the service was idle"
        time.sleep(0.05)
    ahead = list(reserve._reserve[public.fingerprint][1])
    r = svc.score(as_json(document))
    assert r.status_code == 200
    assert_matches_plaintext(decrypt_answer(r.content, keypair)[0], laptops, pipeline)
    used = ahead[:len(document["batches"])]
    assert not set(map(int, used)) & set(map(int, reserve._reserve[public.fingerprint][1]))


def test_the_randomness_reserve_is_bounded_and_never_shared_between_keys(keypair, other_keypair):
    from ppml.service.pool import NoiseReserve

    reserve = NoiseReserve(per_key=2, keys=1)
    a, b = keypair[0], other_keypair[0]
    reserve.note(a)
    for value in (1, 2, 3):
        reserve.put(a, value)
    assert len(reserve) == 2 and reserve.wanted() is None  # full
    assert reserve.take(b, 1) is None  # another key's values are never handed out
    assert reserve.take(a, 1) == [1] and reserve.take(a, 2) is None and reserve.wanted() is a
    reserve.note(b)  # only the most recent key is kept
    assert reserve.take(a, 1) is None and len(reserve) == 0 and reserve.wanted() is b
