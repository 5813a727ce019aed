"""The service under clients nobody vetted: bodies built to blow up memory, keys built to burn
CPU, quota edges, documents that bend the protocol's rules, and (against a real server on
127.0.0.1) connections that are opened and never used. Every loop is bounded in count and
time; every server is stopped.
"""
from __future__ import annotations

import json
import os
import re
import socket
import stat
import time

import pytest

from conftest import ROOT, PpmlServer
from ppml.paillier.keys import PUBLIC_FORMAT, fingerprint_of
from ppml.service.app import PEEK_BATCHES
from test_service import Service, _error, as_json, as_jsonl, document, laptops  # noqa: F401 - fixtures

MERSENNE_3217 = 2 ** 3217 - 1  # prime: a full primality test to refuse


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    with Service(tmp_path_factory.mktemp("hostile"), key_checks=3, key_check_seconds=3600) as s:
        yield s


def with_key(document, n: int, h_s: int = 4) -> dict:
    key = {"format": PUBLIC_FORMAT, "version": document["public_key"]["version"], "bits": n.bit_length(),
           "fingerprint": fingerprint_of(n, h_s), "n": format(n, "x"), "h_s": format(h_s, "x"),
           "proof": document["public_key"]["proof"]}  # well-formed, but the proof of another key
    return dict(document, public_key=key, key_fingerprint=key["fingerprint"])


def one_record_batches(document, count: int) -> dict:
    """``count`` batches of one record each (ids 0…count−1), reusing the first batch's ciphertexts."""
    cts = document["batches"][0]["ciphertexts"]
    return dict(document, batches=[{"ids": [i], "ciphertexts": cts} for i in range(count)], records=count)


def audit(s) -> dict:
    return json.loads(s.audit.read_text().splitlines()[-1])


# -- memory follows what is parsed -----------------------------------------------------------
class Endless:
    """A binary stream: ``head``, then nested empty arrays for ever; counts what was read."""

    def __init__(self, head: bytes, fill: bytes = b"[[],"):
        self.head, self.fill, self.read_bytes = head, fill, 0

    def read(self, size: int = -1) -> bytes:
        size = 1 << 16 if size is None or size < 0 else size
        if self.head:
            data, self.head = self.head[:size], self.head[size:]
        else:
            data = self.fill * (size // len(self.fill))
        self.read_bytes += len(data)
        return data


@pytest.mark.parametrize("field", ["features", "codec", "public_key", "slots", "records", "unknown"])
def test_nested_empty_arrays_are_refused_after_a_bounded_prefix(params, field):
    """Nested empty arrays in any header field: refused at once, whatever follows."""
    from ppml.errors import DocumentError
    from ppml.server import features_limits
    from ppml.streams import DocumentReader

    stream = Endless(f'{{"format": "ppml.encrypted-features", "version": 1, "{field}": '.encode())
    with pytest.raises(DocumentError, match="nested too deeply|unknown field"):
        DocumentReader(stream, features_limits(params), "body")
    assert stream.read_bytes <= 2 << 16


DEEP = """
import io, re, sys
from ppml.artifacts import load_parameters
from ppml.errors import DocumentError
from ppml.server import features_limits
from ppml.streams import DocumentReader
body = b'{"format": "ppml.encrypted-features", "version": 1, "features": ' + b"[[]," * (1 << 20)
try:
    DocumentReader(io.BytesIO(body), features_limits(load_parameters(sys.argv[1])), "body")
except DocumentError as e:
    print(e)
print(int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024)
"""


def test_ever_deeper_arrays_cost_no_memory():
    """4 MiB of "[[],": 16,000 levels per 64 KiB read. The parser's events carry no dotted path
    (which alone cost 650 MB for one read) and the first level too deep is refused."""
    import subprocess
    import sys

    from ppml.artifacts import PARAMS_DIR

    out = subprocess.run([sys.executable, "-c", DEEP, str(ROOT / PARAMS_DIR)], capture_output=True, text=True,
                         timeout=120)
    message, peak_mb = out.stdout.splitlines()
    assert message == "body: JSON nested too deeply (field 'features' nests at most 1 level)"
    assert int(peak_mb) < 100, peak_mb


def test_a_field_past_its_cap_is_refused(params):
    from ppml.errors import DocumentError
    from ppml.server import features_limits
    from ppml.streams import DocumentReader

    stream = Endless(b'{"format": "ppml.encrypted-features", "public_key": {"proof": [', b'"",')
    limits = features_limits(params)
    with pytest.raises(DocumentError, match="field 'public_key' is longer than"):
        DocumentReader(stream, limits, "body")
    assert stream.read_bytes <= limits.fields["public_key"].bytes + (3 << 16)


def test_nested_arrays_in_a_request_are_400(svc, document):
    head = json.dumps({"format": document["format"], "version": 1})[:-1]
    assert "nested too deeply" in _error(svc.score((head + ', "features": ' + "[" * 1000).encode()), 400)


def test_a_batch_larger_than_its_key_and_slots_allow_is_refused(svc, document):
    doc = dict(document)
    doc["batches"] = [{"ids": ["x" * 200] * 10_000, "ciphertexts": document["batches"][0]["ciphertexts"]}]
    assert "a batch is longer than the" in _error(svc.score(as_json(doc)), 400)


# -- keys --------------------------------------------------------------------------------------
def test_an_oversized_key_is_refused_before_any_arithmetic(svc, document):
    message = _error(svc.score(as_json(with_key(document, 2 ** 16383 + 1))), 400)
    assert message == "public_key: a key of about 16,384 bits is larger than this server's limit of 4,096 bits"


def test_key_checks_run_once_per_key_and_refused_keys_spend_the_clients_budget(tmp_path, document):
    with Service(tmp_path, key_checks=2, key_check_seconds=3600) as s:
        keys = s.service.keys
        for _ in range(3):  # a good key: checked once, then remembered
            assert s.score(as_json(document)).status_code == 200
        assert keys.checked == 1
        prime = with_key(document, MERSENNE_3217)
        assert _error(s.score(as_json(prime)), 400) == "n is prime, not an RSA modulus"
        assert keys.checked == 2
        r = s.score(as_json(prime))
        assert "too many new keys checked" in _error(r, 429) and int(r.headers["retry-after"]) >= 1
        assert keys.checked == 2  # refused without computing
        assert s.score(as_json(document)).status_code == 200  # a known key costs nothing
        assert s.score(as_json(prime), who="bob").status_code == 400  # budgets are per client
        usage = {u.name: u for u in s.db.usage()}
        assert usage["bob"].today == 0


# -- quota edges -------------------------------------------------------------------------------
def test_quota_cut_is_exact_and_the_answer_matches_the_charge(tmp_path, document):
    with Service(tmp_path) as s:
        token = s.db.add("carol", quota=PEEK_BATCHES + 1)
        s.tokens["carol"] = token
        r = s.score(as_jsonl(one_record_batches(document, PEEK_BATCHES + 2)), who="carol")
        assert r.status_code == 200
        lines = r.text.splitlines()
        assert len(lines) == 1 + PEEK_BATCHES + 1 + 1, lines[-3:]  # header, 65 batches, the error line
        assert json.loads(lines[-1]) == {"error": f"daily quota of {PEEK_BATCHES + 1} records reached; "
                                                  f"the answer was cut after {PEEK_BATCHES + 1} records"}
        usage = {u.name: u for u in s.db.usage()}["carol"]
        assert (usage.today, usage.requests) == (PEEK_BATCHES + 1, 1)
        message = _error(s.score(as_json(one_record_batches(document, 1)), who="carol"), 429)
        assert message == f"daily quota of {PEEK_BATCHES + 1} records exceeded: 0 left today, this request needs 1"


def test_quota_exactly_met_answers_whole_and_one_more_is_refused_whole(tmp_path, document):
    with Service(tmp_path) as s:
        s.tokens["dan"] = s.db.add("dan", quota=10)
        _error(s.score(as_json(one_record_batches(document, 11)), who="dan"), 429)
        assert {u.name: u for u in s.db.usage()}["dan"].today == 0
        r = s.score(as_json(one_record_batches(document, 10)), who="dan")
        assert r.status_code == 200 and r.json()["records"] == 10
        assert {u.name: u for u in s.db.usage()}["dan"].today == 10


def test_a_bad_batch_after_the_first_ones_still_delivers_every_batch_before_it(svc, document):
    doc = one_record_batches(document, PEEK_BATCHES + 2)
    doc["batches"][-1] = {"ids": [PEEK_BATCHES + 1], "ciphertexts": ["zz"] * len(doc["batches"][0]["ciphertexts"])}
    r = svc.score(as_jsonl(doc))
    lines = r.text.splitlines()
    assert len(lines) == 1 + PEEK_BATCHES + 1 + 1
    error = json.loads(lines[-1])["error"]
    assert error.endswith(f"the answer was cut after {PEEK_BATCHES + 1} records") and "not hexadecimal" in error


# -- one rule for every document ----------------------------------------------------------------
def _after_format(d: dict, key: str, value) -> None:
    items = list(d.items())
    d.clear()
    d.update([items[0], (key, value), *items[1:]])


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["batches"][1].update(ids=d["batches"][0]["ids"]), "appears twice in the document"),
    (lambda d: d["batches"][0]["ids"].__setitem__(0, 2 ** 70), "not a signed 64-bit integer|does not fit in 64 bits"),
    (lambda d: d["batches"][0]["ids"].__setitem__(0, -2 ** 64 - 5),
     "not a signed 64-bit integer|does not fit in 64 bits"),
    (lambda d: d["batches"][0]["ids"].__setitem__(0, ""), "a record id string must have 1 to 256 characters"),
    (lambda d: d.update(comment="hi"), "unknown field 'comment'|field 'comment' after 'batches'"),
    (lambda d: _after_format(d, "comment", "hi"), "unknown field 'comment'"),
    (lambda d: _after_format(d, "layout", "json"), "field 'layout' belongs to the JSON Lines header only"),
])
def test_documents_that_bend_the_rules_are_400(svc, document, edit, message):
    doc = json.loads(json.dumps(document))
    edit(doc)
    for body in (as_json(doc), as_jsonl(doc)) if "layout" not in doc else (as_json(doc),):
        assert re.search(message, _error(svc.score(body), 400))


@pytest.mark.parametrize("tail, message", [
    (b',"records":40,"extra":1}', "field 'extra' after 'batches'"),
    (b',"records":40,"records":40}', "field 'records' appears twice"),
])
def test_only_records_may_follow_the_batches(svc, document, tail, message):
    body = json.dumps({k: v for k, v in document.items() if k != "records"}).encode()
    assert body.endswith(b"]}")
    assert message in _error(svc.score(body[:-1] + tail), 400)


@pytest.mark.parametrize("end, message", [
    ({"end": True, "records": 40, "batches": 99}, "the end line says 99 batches"),
    ({"end": True, "records": 40, "batches": None, "x": 1}, 'the end line must be {"end": true'),
    ({"end": 1, "records": 40, "batches": 1}, 'the end line must be {"end": true'),
])
def test_the_jsonl_end_line_is_exact(svc, document, end, message):
    lines = as_jsonl(document).splitlines()
    end["batches"] = len(document["batches"]) if end["batches"] is None else end["batches"]
    body = b"\n".join([*lines[:-1], json.dumps(end).encode()]) + b"\n"
    assert message in _error(svc.score(body, ctype="application/x-ndjson"), 400)


# -- what the service publishes ------------------------------------------------------------------
def test_no_request_header_is_reflected(svc):
    for path in ("/v1/model", "/v1/schema/", "/v1/openapi.json"):
        r = svc.http.get(path, headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"})
        assert r.status_code == 200 and "evil" not in r.text
    d = svc.http.get("/v1/model").json()
    assert d["score"] == "/v1/score" and all(f["url"].startswith("/v1/model/") for f in d["files"].values())


def test_metrics_can_require_a_token(tmp_path):
    with Service(tmp_path, metrics_token="m-secret") as s:
        r = s.http.get("/metrics")
        assert _error(r, 401) == "/metrics needs its bearer token (Authorization: Bearer TOKEN)"
        assert _error(s.http.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401)
        assert s.http.get("/metrics", headers={"Authorization": "Bearer m-secret"}).status_code == 200


def test_openapi_is_built_from_the_published_schemas(svc):
    api = svc.http.get("/v1/openapi.json").json()
    assert api["openapi"] == "3.1.0"
    index = svc.http.get("/v1/schema/").json()
    assert set(api["components"]["schemas"]) == {n.removesuffix(".schema.json") for n in index["schemas"]}
    for name in index["schemas"]:
        assert svc.http.get(f"/v1/schema/{name}").json()["$id"] == "https://ppml.invalid/v1/schema/" + name
        published = svc.http.get(f"/v1/schema/{name}").json()
        assert api["components"]["schemas"][name.removesuffix(".schema.json")] == published
    text = json.dumps(api)
    for ref in {r for r in __import__("re").findall(r'"\$ref": "#/components/schemas/([^"]+)"', text)}:
        assert ref in api["components"]["schemas"]
    statuses = set(api["paths"]["/v1/score"]["post"]["responses"])
    assert statuses == {"200", "400", "401", "405", "408", "409", "413", "415", "429", "503"}


def test_database_and_audit_log_are_private(tmp_path):
    with Service(tmp_path) as s:
        s.score(b"garbage")
        assert stat.S_IMODE(os.stat(s.audit).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(tmp_path / "clients.db").st_mode) == 0o600


# -- a real server: connections and the event loop -----------------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from ppml.service.clients import ClientDB

    folder = tmp_path_factory.mktemp("live-hostile")
    token = ClientDB(folder / "c.db").add("mallory", quota=0)
    server = PpmlServer(folder, "serve", "--model", str(ROOT), "--db", "c.db", "--host", "127.0.0.1", "--port", "0",
                        "--allow-weak-key", "--head-timeout", "1", "--keep-alive", "1", "--max-connections", "40",
                        timeout=60)
    try:
        yield server.url, token
    finally:
        server.stop()


def _address(url):
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _read_all(sock, limit: float) -> bytes:
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        pass
    return data


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HT", b"POST /v1/score HTTP/1.1\r\nHost: x\r\n"])
def test_a_request_head_that_never_completes_gets_408_and_the_connection_closes(live, sent):
    url, _ = live
    with socket.create_connection(_address(url), timeout=5) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        data = _read_all(sock, 5)
        assert time.monotonic() - started < 4
    assert data.startswith(b"HTTP/1.1 408 ")


def test_past_the_connection_cap_new_connections_get_503_and_healthz_recovers(live):
    url, _ = live
    held = [socket.create_connection(_address(url), timeout=5) for _ in range(45)]
    try:
        answers = [_read_all(s, 0.2) for s in held[-5:]]
        assert any(a.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in a.lower() for a in answers)
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            import urllib.request

            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                assert r.status == 200
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("/healthz did not recover")


def test_prime_keys_do_not_stall_the_event_loop(live, document):
    """Three requests whose n is a 3217-bit prime, from a client with quota 0: /healthz stays fast."""
    import concurrent.futures
    import urllib.request

    url, token = live
    body = as_json(with_key(document, MERSENNE_3217))

    def post():
        req = urllib.request.Request(url + "/v1/score", data=body, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=60)
        except urllib.error.HTTPError as e:
            return e.code

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(post) for _ in range(3)]
        worst = 0.0
        while not all(f.done() for f in futures):
            started = time.perf_counter()
            with urllib.request.urlopen(url + "/healthz", timeout=10) as r:
                assert r.status == 200
            worst = max(worst, time.perf_counter() - started)
            time.sleep(0.02)
        assert [f.result() for f in futures] == [400, 400, 400]
    assert worst < 0.5, worst


# -- the customer's side: TLS first ------------------------------------------------------------------
def test_plain_http_to_another_host_warns_once_on_one_line(capsys, monkeypatch):
    from ppml import client

    monkeypatch.setattr(client, "_WARNED", set())
    for url in ("https://example.com", "http://127.0.0.1:8000", "http://localhost:1", "http://[::1]:8000"):
        assert client.plain_http_warning(url) is None
    message = client.plain_http_warning("http://example.com:8000/")
    assert message == ("Warning: sending the bearer token to example.com over plain http://: anyone on the network "
                       "path can read and alter it; use https://")
    assert client.plain_http_warning("http://EXAMPLE.com") is None
    assert capsys.readouterr().err == message + "\n"


def test_request_warns_before_sending_a_token_over_plain_http(tmp_path):
    import subprocess
    import sys

    (tmp_path / "t").write_text("ppml_x\n")
    os.chmod(tmp_path / "t", 0o600)
    (tmp_path / "d.json").write_text("{}")
    out = subprocess.run([sys.executable, "-m", "ppml", "request", "http://192.0.2.1:9", "d.json", "-o", "a.json",
                          "--token-file", "t", "--retries", "0", "--timeout", "1", "-q"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    lines = out.stderr.splitlines()
    assert out.returncode == 1 and len(lines) == 2, out.stderr
    assert lines[0].startswith("Warning: sending the bearer token to 192.0.2.1 over plain http://")
    assert lines[1].startswith("Error: ")


def _kill_workers(executor) -> None:
    import os
    import signal
    import time

    for pid in list(executor._processes):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not executor._broken and time.monotonic() < deadline:  # the executor notices the death
        time.sleep(0.05)


def test_a_dead_scoring_process_is_replaced_and_costs_at_most_the_request_that_noticed(keypair):
    """A scoring process killed from outside (the out-of-memory killer, a signal) breaks its
    executor for good: the call that notices gets PoolRestarted (the service answers it 503
    with Retry-After), the pool is replaced, and the next call is computed."""
    import asyncio

    from ppml.service.app import _refusal
    from ppml.service.pool import PoolRestarted, ScoringPool

    async def run():
        pool = ScoringPool(1)
        await pool.start()
        try:
            broken = pool._executor
            _kill_workers(broken)
            with pytest.raises(PoolRestarted) as e:
                await pool.noise(keypair[0])
            assert pool._executor is not broken
            assert await pool.noise(keypair[0]) > 1
            return e.value
        finally:
            await pool.close()

    error = asyncio.run(run())
    refused = _refusal(error)
    assert (refused.status, refused.headers) == (503, {"Retry-After": "1"})
    assert refused.message == ("a scoring process died (killed by a signal, or out of memory); the scoring pool "
                               "was restarted: retry the request")


def test_the_service_scores_again_after_its_scoring_process_dies(tmp_path, document):
    """The same through the service: its idle precomputation or the next request notices the
    dead process and replaces the pool; requests are scored again."""
    import time

    with Service(tmp_path) as s:
        assert s.score(as_json(document)).status_code == 200
        broken = s.service.pool._executor
        _kill_workers(broken)
        statuses = []
        deadline = time.monotonic() + 60
        while (not statuses or statuses[-1] != 200) and time.monotonic() < deadline:
            statuses.append(s.score(as_json(document)).status_code)
        assert statuses[-1] == 200 and set(statuses) <= {200, 503} and len(statuses) <= 2, statuses
        assert s.service.pool._executor is not broken
