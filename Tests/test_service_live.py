"""The service as it is run: ``python -m ppml serve`` on 127.0.0.1 (an ephemeral port), driven
by ``python -m ppml request``, curl, a ``-`` pipeline, raw sockets and concurrent clients; then
SIGTERM. Every loop is bounded in count and time, and the server is always stopped.
"""
from __future__ import annotations

import concurrent.futures
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest

from conftest import ROOT, PpmlServer, run_script

pytestmark = [pytest.mark.slow, pytest.mark.live]

PY = sys.executable
WEAK = ["--allow-weak-key"]
REL_TOLERANCE = 1e-9


def ppml(*args, cwd, stdin=None, env=None, timeout=120):
    return subprocess.run([PY, "-m", "ppml", *args], cwd=cwd, input=stdin, capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def ok(proc):
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


@pytest.fixture(scope="module")
def site(tmp_path_factory, bundled_raw, pipeline):
    """A customer folder with keys and documents, a server with clients alice and bob (quota 100)."""
    folder = tmp_path_factory.mktemp("live")
    raw = bundled_raw.iloc[:60].reset_index(drop=True)
    raw.to_csv(folder / "records.csv", index=False)
    ok(run_script("CustomerEncrypts.py", "records.csv", "--model", str(ROOT), "--key-size", "1024", *WEAK,
                  "-o", "data.json", "-q", cwd=folder))
    ok(run_script("CustomerEncrypts.py", "records.csv", "--model", str(ROOT), *WEAK, "-o", "data.jsonl", "-q",
                  cwd=folder))
    tokens = {}
    for name, extra in (("alice", []), ("bob", ["--quota", "100"])):
        out = ok(ppml("clients", "add", name, *extra, "--db", "clients.db", cwd=folder)).stdout.decode()
        tokens[name] = out.strip().splitlines()[-1]
        (folder / f"{name}.token").write_text(tokens[name] + "\n")
        os.chmod(folder / f"{name}.token", 0o600)
    server = PpmlServer(folder, "serve", "--model", str(ROOT), "--db", "clients.db", "--host", "127.0.0.1",
                        "--port", "0", "--workers", "2", "--audit-log", "audit.jsonl", *WEAK, timeout=60)
    expected = [math.exp(v) for v in pipeline.predict(raw)]
    try:
        yield dict(folder=folder, url=server.url, tokens=tokens, server=server, expected=expected)
    finally:
        server.stop()


def decrypted(site, answer_name):
    ok(run_script("CustomerDecrypts.py", answer_name, "-o", "p.csv", "--model", str(ROOT), *WEAK, cwd=site["folder"]))
    return pd.read_csv(site["folder"] / "p.csv")["prediction"].tolist()


def assert_close(got, expected):
    assert len(got) == len(expected)
    assert max(abs(g - e) / e for g, e in zip(got, expected)) <= REL_TOLERANCE


def test_request_curl_and_a_pipeline_all_decrypt_to_the_plaintext_model(site):
    folder, url = site["folder"], site["url"]
    for doc, answer in (("data.json", "a.json"), ("data.jsonl", "a.jsonl")):
        ok(ppml("request", url, doc, "-o", answer, "--token-file", "alice.token", "-q", cwd=folder))
        assert_close(decrypted(site, answer), site["expected"])
    if shutil.which("curl"):
        ok(subprocess.run(["curl", "-sf", "-H", f"Authorization: Bearer {site['tokens']['alice']}", "-H",
                           "Content-Type: application/json", "--data-binary", "@data.json", f"{url}/v1/score",
                           "-o", "curl.json"], cwd=folder, capture_output=True, timeout=60))
        assert_close(decrypted(site, "curl.json"), site["expected"])
    pipeline = (f"{PY} {ROOT / 'CustomerEncrypts.py'} records.csv --model {ROOT} --allow-weak-key -q -o - | "
                f"{PY} -m ppml request {url} - -o - -q | "
                f"{PY} {ROOT / 'CustomerDecrypts.py'} - -o piped.csv --model {ROOT} --allow-weak-key -q")
    ok(subprocess.run(pipeline, shell=True, cwd=folder, capture_output=True, timeout=120,
                      env={**os.environ, "PPML_TOKEN": site["tokens"]["alice"]}))
    assert_close(pd.read_csv(folder / "piped.csv")["prediction"].tolist(), site["expected"])


def test_request_errors_are_one_line_with_the_scripts_exit_codes(site):
    folder, url = site["folder"], site["url"]
    (folder / "garbage.json").write_text("garbage")
    r = ppml("request", url, "garbage.json", "-o", "x.json", "--token-file", "alice.token", cwd=folder)
    assert r.returncode == 3
    assert r.stderr.decode() == (f"Error: {url}/v1/score: 400 invalid JSON: lexical error: invalid char in json "
                                 "text.\n")
    r = ppml("request", url, "data.json", "-o", "x.json", cwd=folder, env={"PPML_TOKEN": "wrong"})
    assert r.returncode == 1 and r.stderr.decode().startswith(f"Error: {url}/v1/score: 401 ")
    os.chmod(folder / "alice.token", 0o644)
    try:
        r = ppml("request", url, "data.json", "--token-file", "alice.token", cwd=folder)
        assert r.returncode == 1 and "too open" in r.stderr.decode()
    finally:
        os.chmod(folder / "alice.token", 0o600)
    r = ppml("request", "http://127.0.0.1:9", "data.json", "--retries", "1", "--token-file", "alice.token",
             cwd=folder)
    assert r.returncode == 1 and "cannot reach the service" in r.stderr.decode()
    assert not (folder / "x.json").exists()


def test_abandoned_uploads_do_not_hurt_the_server(site):
    host, port = site["url"].removeprefix("http://").split(":")
    socks = []
    for _ in range(5):
        s = socket.create_connection((host, int(port)), timeout=5)
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + site["tokens"]["alice"].encode() +
                  b"\r\nContent-Length: 1000000\r\n\r\n{\"format\":\"ppml.encrypted-features\",")
        socks.append(s)
    for s in socks:
        s.close()
    with urllib.request.urlopen(site["url"] + "/healthz", timeout=10) as r:
        assert r.status == 200


def test_quota_then_concurrent_clients_then_usage_and_audit(site, bundled_raw, pipeline):
    folder, url = site["folder"], site["url"]
    bundled_raw.iloc[:300].to_csv(folder / "r300.csv", index=False)
    bundled_raw.iloc[300:350].to_csv(folder / "r50.csv", index=False)
    for name in ("r300", "r50"):
        ok(run_script("CustomerEncrypts.py", f"{name}.csv", "--model", str(ROOT), *WEAK, "-o", f"{name}.json", "-q",
                      cwd=folder))
    r = ppml("request", url, "r300.json", "-o", "q.json", "--token-file", "bob.token", cwd=folder)
    assert r.returncode == 1 and "429 daily quota of 100 records exceeded" in r.stderr.decode()
    ok(ppml("request", url, "r50.json", "-o", "q.json", "--token-file", "bob.token", "-q", cwd=folder))

    from ppml import client

    def one(i):
        out = folder / f"c{i}.json"
        client.score(url, folder / "data.json", out, site["tokens"]["alice"])
        return out.name

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        names = list(pool.map(one, range(24), timeout=300))
    for name in names:
        assert_close(decrypted(site, name), site["expected"])

    usage = ok(ppml("clients", "usage", "--db", "clients.db", cwd=folder)).stdout.decode().splitlines()
    assert any(line.startswith("bob\ttoday 50\ttotal 50\t") for line in usage)
    entries = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
    assert sum(e["records"] for e in entries if e["client"] == "bob") == 50
    assert not re.search(r"[0-9a-fA-F]{32}", (folder / "audit.jsonl").read_text())
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        assert re.search(rb"^ppml_records_scored_total \d", r.read(), re.M)


def test_sigterm_finishes_in_flight_requests_and_exits(site):
    from ppml import client

    folder = site["folder"]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(client.score, site["url"], folder / "data.jsonl", folder / "last.jsonl",
                             site["tokens"]["alice"], retries=0)
        time.sleep(0.05)
        started = time.monotonic()
        code = site["server"].stop(signal.SIGTERM, timeout=20)
        assert time.monotonic() - started < 20
        assert code in (0, -signal.SIGTERM)
        try:
            future.result(timeout=30)
        except client.ServiceError:
            pass  # sent after the server stopped listening: refused, never half-answered
        else:
            assert_close(decrypted(site, "last.jsonl"), site["expected"])
