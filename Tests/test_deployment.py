"""docs/deployment.md's nginx configuration works as written: nginx (if installed) runs that
exact block on 127.0.0.1 with a self-signed certificate, in front of `python -m ppml serve`
on loopback; `fetch-model` and `request --cacert` go through it over HTTPS, and the answer
decrypts to the plaintext model. Everything listens on 127.0.0.1 and is stopped.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import ROOT, PpmlServer, run_script

DOC = ROOT / "docs" / "deployment.md"
pytestmark = pytest.mark.skipif(not (shutil.which("nginx") and shutil.which("openssl")),
                                reason="needs nginx and openssl")


def nginx_block() -> str:
    return re.search(r"```nginx\n(.*?)```", DOC.read_text(), re.S).group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_documented_nginx_config_serves_the_service_over_https(tmp_path, bundled_raw, pipeline):
    folder = tmp_path
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "key.pem", "-out", "cert.pem"],
                   cwd=folder, check=True, capture_output=True, timeout=60)
    raw = bundled_raw.iloc[:20].reset_index(drop=True)
    raw.to_csv(folder / "records.csv", index=False)
    out = subprocess.run([sys.executable, "-m", "ppml", "clients", "add", "acme", "--db", "c.db"], cwd=folder,
                         capture_output=True, text=True, timeout=60, check=True)
    (folder / "token").write_text(out.stdout.strip().splitlines()[-1] + "\n")
    os.chmod(folder / "token", 0o600)
    server = PpmlServer(folder, "serve", "--model", str(ROOT), "--db", "c.db", "--host", "127.0.0.1", "--port", "0",
                        "--allow-weak-key", timeout=60)
    nginx = None
    try:
        service_port = server.url.rsplit(":", 1)[1]
        https_port = free_port()
        site = (nginx_block().replace("127.0.0.1:8000", f"127.0.0.1:{service_port}")
                .replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
                .replace("/etc/ppml/tls/fullchain.pem", str(folder / "cert.pem"))
                .replace("/etc/ppml/tls/privkey.pem", str(folder / "key.pem")))
        (folder / "site.conf").write_text(site)
        (folder / "nginx.conf").write_text(f"""
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    include {folder}/site.conf;
}}
""")
        check = subprocess.run(["nginx", "-t", "-p", str(folder), "-c", str(folder / "nginx.conf")],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        nginx = subprocess.Popen(["nginx", "-p", str(folder), "-c", str(folder / "nginx.conf")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"https://127.0.0.1:{https_port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, (folder / "error.log").read_text()
                time.sleep(0.1)

        def ppml(*args):
            r = subprocess.run([sys.executable, "-m", "ppml", *args], cwd=folder, capture_output=True, text=True,
                               timeout=120)
            assert r.returncode == 0, r.stderr
            assert "Warning" not in r.stderr
            return r

        ppml("fetch-model", url, "--out-dir", "model", "--cacert", "cert.pem", "-q")
        assert run_script("CustomerEncrypts.py", "records.csv", "--model", "model", "--key-size", "1024",
                          "--allow-weak-key", "-o", "data.json", "-q", cwd=folder).returncode == 0
        ppml("request", url, "data.json", "-o", "answer.json", "--token-file", "token", "--cacert", "cert.pem", "-q")
        assert run_script("CustomerDecrypts.py", "answer.json", "-o", "p.csv", "--model", "model", "--allow-weak-key",
                          cwd=folder).returncode == 0
        got = pd.read_csv(folder / "p.csv")["prediction"].tolist()
        expected = [math.exp(v) for v in pipeline.predict(raw)]
        assert max(abs(g - e) / e for g, e in zip(got, expected)) <= 1e-9
    finally:
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)
            try:
                nginx.wait(15)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait(5)
        server.stop()
