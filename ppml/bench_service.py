"""``python -m ppml.bench --service``: the prediction service against its targets, on loopback.

1. 3,000 records through ``python -m ppml request``, against ``python -m ppml score`` (what
   ``ServerModelRun.py`` runs) on the same document (both as commands, start-up included).
   Target: at most 1.5×.
2. 8 concurrent clients sending 100-record documents, 3 each: every answer correct; median
   and worst latency.
3. One-record requests on a warm server: median and 99th percentile, alone and under 8
   concurrent clients. Target: median ≤ 100 ms, p99 ≤ 250 ms under 8 clients.
4. The server's peak memory (RSS of the server process and of its largest scoring process)
   before and after the load.

Every answer is decrypted and compared with the plaintext pipeline (relative 1e-9). The
commands run as ``python -m ppml``, so the benchmark works from an installed wheel as from a
checkout; the model and data default to the bundled laptop model's (:mod:`ppml.bundled`).

With ``--hostile`` (:func:`hostile`): honest clients while hostile ones run
beside them (idle connections, nested-array bodies, prime and oversized keys, uploads stalled
mid-body), against the targets: every honest answer correct, ``/healthz`` p99 ≤ 100 ms,
honest p99 ≤ 3× its unloaded value, the server's resident memory ≤ 300 MB throughout.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PY = sys.executable
TOLERANCE = 1e-9


def build_parser() -> argparse.ArgumentParser:
    from .bundled import laptop_model_dir

    model = laptop_model_dir()
    p = argparse.ArgumentParser(prog="python -m ppml.bench --service", description=__doc__.split("\n\n")[0])
    p.add_argument("--key-size", type=int, default=3072)
    p.add_argument("--allow-weak-key", action="store_true", help="accept keys under 2048 bits (tests only)")
    p.add_argument("--records", type=int, default=3000, help="records of the large document (default 3000)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--client-records", type=int, default=100, help="records per concurrent request (default 100)")
    p.add_argument("--requests", type=int, default=3, help="requests per concurrent client (default 3)")
    p.add_argument("--latency-requests", type=int, default=100,
                   help="one-record requests for the latency figures (default 100)")
    p.add_argument("--workers", type=int, default=None, help="scoring processes (default: all cores)")
    p.add_argument("--model", default=str(model), help="trained model folder (default: the bundled laptop model)")
    p.add_argument("--data", default=str(model / "Data" / "laptop_data.csv"),
                   help="raw records to sample (default: the bundled laptop data)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--hostile", action="store_true",
                   help="honest clients beside hostile ones, against the hostile targets (bounded by --duration)")
    p.add_argument("--duration", type=float, default=90.0,
                   help="with --hostile: seconds at most for the hostile phase (default 90)")
    p.add_argument("--honest-requests", type=int, default=10,
                   help="with --hostile: requests of --client-records records per honest client (default 10)")
    return p


def _run(args, cwd, **kw) -> float:
    start = time.perf_counter()
    out = subprocess.run(args, cwd=cwd, capture_output=True, **kw)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))}: {out.stderr.decode()[-2000:]}")
    return time.perf_counter() - start


def _rss_kb(pid: int, field: str = "VmHWM") -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                kids = []
            found += kids
            todo += kids
    return found


def _memory(pid: int) -> dict:
    kids = _descendants(pid)
    return {"server_peak_mb": _rss_kb(pid) / 1024, "server_now_mb": _rss_kb(pid, "VmRSS") / 1024,
            "largest_worker_peak_mb": max((_rss_kb(k) for k in kids), default=0) / 1024}


def _stop(server) -> None:
    """SIGTERM the service (it finishes what is in flight), then kill it after 30 s."""
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _percentile(values, q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.hostile:
        return hostile(args)
    import pandas as pd

    from . import client
    from .artifacts import PIPELINE, load_pickle, load_spec
    from .customer import decrypt_stream
    from .documents import EncryptedPredictions
    from .keystore import KeyStore
    from .parallel import default_workers

    workers = args.workers or default_workers()
    weak = ["--allow-weak-key"] if args.allow_weak_key else []
    model = Path(args.model).resolve()
    raw = pd.read_csv(args.data, dtype=str, keep_default_na=False)
    pipeline = load_pickle(model / PIPELINE)
    spec = load_spec(model)
    figures: dict = {"key_bits": args.key_size, "workers": workers}
    with tempfile.TemporaryDirectory(prefix="ppml-bench-service-") as tmp:
        tmp = Path(tmp)
        _run([PY, "-m", "ppml", "keygen", "--keys", "keys", "--key-size", str(args.key_size), *weak, "-q"], tmp)
        private = KeyStore(tmp / "keys").load_private(args.allow_weak_key)
        sizes = {"large": args.records, "small": args.client_records, "one": 1}
        expected = {}
        for name, count in sizes.items():
            part = raw.sample(count, replace=count > len(raw), random_state=len(name)).reset_index(drop=True)
            part.to_csv(tmp / f"{name}.csv", index=False)
            expected[name] = [math.exp(v) for v in pipeline.predict(part)]
            _run([PY, "-m", "ppml", "encrypt", f"{name}.csv", "--model", str(model), "--keys", "keys",
                  *weak, "-q", "-o", f"{name}.json"], tmp)

        def check(body: bytes, name: str) -> None:
            doc = EncryptedPredictions.from_dict(json.loads(body), private.public)
            got = [p for batch in decrypt_stream(doc, doc.batches, private, spec) for _, (p,) in batch]
            want = expected[name]
            if len(got) != len(want) or max(abs(g - w) / w for g, w in zip(got, want)) > TOLERANCE:
                raise RuntimeError(f"a {name} answer does not match the plaintext model")

        params = str(model / "Encrypted_ModelParameters")
        script = _run([PY, "-m", "ppml", "score", "large.json", "-o", "script.json", "--params", params,
                       "-j", str(workers), *weak, "-q"], tmp)
        check((tmp / "script.json").read_bytes(), "large")

        token = subprocess.run([PY, "-m", "ppml", "clients", "add", "bench", "--db", "c.db"], cwd=tmp,
                               capture_output=True, text=True, check=True).stdout.split()[-1]
        server = subprocess.Popen([PY, "-m", "ppml", "serve", "--model", str(model), "--db", "c.db", "--port", "0",
                                   "--workers", str(workers), "--queue", "64", *weak], cwd=tmp,
                                  stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        try:
            url = None
            deadline = time.monotonic() + 120
            while url is None and time.monotonic() < deadline:
                line = server.stderr.readline()
                if not line:
                    raise RuntimeError("the service did not start")
                m = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
                url = m.group(1) if m else None
            figures["memory_idle"] = _memory(server.pid)
            request = _run([PY, "-m", "ppml", "request", url, "large.json", "-o", "service.json", "-q"], tmp,
                           env={**os.environ, "PPML_TOKEN": token})
            check((tmp / "service.json").read_bytes(), "large")
            figures["large"] = {"records": args.records, "server_model_run_s": script, "request_s": request,
                                "ratio": request / script}

            local = threading.local()

            def send(name: str) -> float:
                if not hasattr(local, "http"):  # one connection pool per client thread, as a portal keeps one
                    local.http = client.http_client(url=url)
                sink = io.BytesIO()
                start = time.perf_counter()
                client.score(url, tmp / f"{name}.json", sink, token, retries=10, http=local.http)
                elapsed = time.perf_counter() - start
                check(sink.getvalue(), name)
                return elapsed

            with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                times = list(pool.map(send, ["small"] * (args.clients * args.requests), timeout=3600))
            figures["concurrent"] = {"clients": args.clients, "records": args.client_records,
                                     "requests": len(times), "median_s": statistics.median(times),
                                     "worst_s": max(times)}
            for _ in range(5):
                send("one")  # warm
            alone = [send("one") for _ in range(args.latency_requests)]
            with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                loaded = list(pool.map(send, ["one"] * args.latency_requests, timeout=3600))
            figures["one_record"] = {"alone_median_ms": 1000 * statistics.median(alone),
                                     "alone_p99_ms": 1000 * _percentile(alone, 0.99),
                                     "loaded_median_ms": 1000 * statistics.median(loaded),
                                     "loaded_p99_ms": 1000 * _percentile(loaded, 0.99)}
            figures["memory_after"] = _memory(server.pid)
        finally:
            _stop(server)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        _print(figures)
    return 0


def _print(f: dict) -> None:
    large, conc, one = f["large"], f["concurrent"], f["one_record"]
    idle, after = f["memory_idle"], f["memory_after"]
    print(f"prediction service, {f['key_bits']}-bit key, {f['workers']} scoring processes, loopback")
    print(f"  {large['records']:,} records: ServerModelRun.py {large['server_model_run_s']:.2f} s, "
          f"request {large['request_s']:.2f} s ({large['ratio']:.2f}×; target ≤ 1.5×)")
    print(f"  {conc['clients']} clients × {conc['requests'] // conc['clients']} requests of {conc['records']} "
          f"records: all correct; median {conc['median_s']:.3f} s, worst {conc['worst_s']:.3f} s")
    print(f"  1 record: median {one['alone_median_ms']:.0f} ms, p99 {one['alone_p99_ms']:.0f} ms alone; "
          f"median {one['loaded_median_ms']:.0f} ms, p99 {one['loaded_p99_ms']:.0f} ms under {conc['clients']} "
          "clients (targets 100 / 250 ms)")
    print(f"  memory: server peak {idle['server_peak_mb']:.0f} MB idle → {after['server_peak_mb']:.0f} MB after "
          f"the load (now {after['server_now_mb']:.0f} MB); largest scoring process peak "
          f"{after['largest_worker_peak_mb']:.0f} MB")



# ---------------------------------------------------------------------------------------------
# --hostile: honest clients beside hostile ones
# ---------------------------------------------------------------------------------------------
HOSTILE_TARGETS = {"healthz_p99_ms": 100.0, "honest_p99_ratio": 3.0, "server_rss_mb": 300.0}
IDLE_CONNECTIONS = 200


def _start_server(tmp: Path, model: Path, workers: int, weak: list, extra: list):
    server = subprocess.Popen([PY, "-m", "ppml", "serve", "--model", str(model), "--db", "c.db", "--host", "127.0.0.1",
                               "--port", "0", "--workers", str(workers), *extra, *weak], cwd=tmp,
                              stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = server.stderr.readline()
        if not line:
            break
        m = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
        if m:
            threading.Thread(target=server.stderr.read, daemon=True).start()  # drain the log
            return server, m.group(1)
    server.kill()
    raise RuntimeError("the service did not start")


def _prime_key_document(template: dict, n: int) -> bytes:
    from .paillier.keys import fingerprint_of

    key = dict(template["public_key"], bits=n.bit_length(), n=format(n, "x"), h_s="4",
               fingerprint=fingerprint_of(n, 4))
    return json.dumps(dict(template, public_key=key, key_fingerprint=key["fingerprint"])).encode()


class _Hostile:
    """The hostile clients, each a thread that stops at ``stop`` and counts what it did."""

    def __init__(self, address, token: str, template: dict, stop: threading.Event):
        self.address, self.token, self.template, self.stop = address, token, template, stop
        self.counts: dict = {}
        self.lock = threading.Lock()

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def _post_head(self, length: int) -> bytes:
        return (f"POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {self.token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()

    def _connect(self):
        import socket

        return socket.create_connection(self.address, timeout=5)

    def _hold(self, count: int, opening, what: str, pause: float) -> None:
        """Keep ``count`` connections made by ``opening()`` open, reopening those the server closes."""
        held: list = []
        while not self.stop.is_set():
            held = [s for s in held if not _closed(s)]
            while len(held) < count and not self.stop.is_set():
                try:
                    held.append(opening())
                    self.count(f"{what} opened")
                except OSError:
                    self.count(f"{what} refused")
                    break
            self.stop.wait(pause)
        for s in held:
            s.close()

    def idle_connections(self) -> None:
        """``IDLE_CONNECTIONS`` connections without a byte sent."""
        self._hold(IDLE_CONNECTIONS, self._connect, "idle connections", 0.5)

    def nested_arrays(self) -> None:
        """Bodies that announce 48 MiB of nested empty arrays in a header field."""
        head = json.dumps({"format": "ppml.encrypted-features", "version": 1})[:-1] + ', "features": '
        chunk = b"[[]," * (1 << 16)
        while not self.stop.is_set():
            try:
                with self._connect() as s:
                    s.sendall(self._post_head(48 << 20) + head.encode())
                    for _ in range(48 << 20 // len(chunk)):
                        s.sendall(chunk)
                    self.count("nested-array bodies sent whole")
            except OSError:
                self.count("nested-array bodies cut off")
            self.stop.wait(0.2)

    def keys(self, body: bytes, what: str) -> None:
        """Documents whose key is prime, or oversized, from a client with quota 0."""
        while not self.stop.is_set():
            try:
                with self._connect() as s:
                    s.settimeout(30)
                    s.sendall(self._post_head(len(body)) + body)
                    status = s.recv(64).split(b" ", 2)[1].decode()
                    self.count(f"{what}: {status}")
            except (OSError, IndexError):
                self.count(f"{what}: no answer")
            self.stop.wait(0.2)

    def stalled_uploads(self) -> None:
        """Uploads that send half of a real document, then nothing."""
        body = json.dumps(self.template).encode()

        def opening():
            s = self._connect()
            s.sendall(self._post_head(len(body)) + body[: len(body) // 2])
            return s

        self._hold(20, opening, "stalled uploads", 1.0)


def _closed(sock) -> bool:
    """Whether the server closed ``sock`` (anything it sent, e.g. a 408 or 503, is discarded)."""
    import select

    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable and not sock.recv(65536):
            sock.close()
            return True
        return False
    except OSError:
        sock.close()
        return True


def hostile(args) -> int:
    """Honest clients alone, then beside the hostile ones; the figures against the targets."""
    import pandas as pd

    from . import client
    from .artifacts import PIPELINE, load_pickle, load_spec
    from .customer import decrypt_stream
    from .documents import EncryptedPredictions
    from .keystore import KeyStore
    from .parallel import default_workers

    workers = args.workers or default_workers()
    weak = ["--allow-weak-key"] if args.allow_weak_key else []
    model = Path(args.model).resolve()
    raw = pd.read_csv(args.data, dtype=str, keep_default_na=False)
    spec = load_spec(model)
    part = raw.sample(args.client_records, replace=args.client_records > len(raw),
                      random_state=7).reset_index(drop=True)
    expected = [math.exp(v) for v in load_pickle(model / PIPELINE).predict(part)]
    figures: dict = {"key_bits": args.key_size, "workers": workers, "honest_clients": 2,
                     "honest_requests": 2 * args.honest_requests, "records": args.client_records}
    with tempfile.TemporaryDirectory(prefix="ppml-bench-hostile-") as tmp:
        tmp = Path(tmp)
        _run([PY, "-m", "ppml", "keygen", "--keys", "keys", "--key-size", str(args.key_size), *weak, "-q"], tmp)
        private = KeyStore(tmp / "keys").load_private(args.allow_weak_key)
        part.to_csv(tmp / "small.csv", index=False)
        _run([PY, "-m", "ppml", "encrypt", "small.csv", "--model", str(model), "--keys", "keys", *weak,
              "-q", "-o", "small.json"], tmp)
        template = json.loads((tmp / "small.json").read_text())
        tokens = {}
        for name, extra in (("honest", []), ("mallory", ["--quota", "0"])):
            tokens[name] = subprocess.run([PY, "-m", "ppml", "clients", "add", name, "--db", "c.db", *extra], cwd=tmp,
                                          capture_output=True, text=True, check=True).stdout.split()[-1]
        server, url = _start_server(tmp, model, workers, weak, ["--queue", "16"])
        try:
            address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))

            def honest_round(count: int) -> list:
                def one_client(_):
                    http = client.http_client(url=url)
                    times = []
                    for _ in range(count):
                        sink = io.BytesIO()
                        start = time.perf_counter()
                        client.score(url, tmp / "small.json", sink, tokens["honest"], retries=20, backoff=0.2,
                                     http=http)
                        times.append(time.perf_counter() - start)
                        doc = EncryptedPredictions.from_dict(json.loads(sink.getvalue()), private.public)
                        got = [p for b in decrypt_stream(doc, doc.batches, private, spec) for _, (p,) in b]
                        if len(got) != len(expected) or max(abs(g - w) / w for g, w in zip(got, expected)) > TOLERANCE:
                            raise RuntimeError("an honest answer does not match the plaintext model")
                    return times

                with concurrent.futures.ThreadPoolExecutor(2) as pool:
                    return [t for ts in pool.map(one_client, range(2), timeout=args.duration * 4) for t in ts]

            honest_round(1)  # warm: the key is checked once, the workers are up
            unloaded = honest_round(args.honest_requests)
            figures["unloaded_p99_s"] = _percentile(unloaded, 0.99)

            stop = threading.Event()
            actors = _Hostile(address, tokens["mallory"], template, stop)
            threads = [threading.Thread(target=actors.idle_connections, daemon=True),
                       threading.Thread(target=actors.nested_arrays, daemon=True),
                       threading.Thread(target=actors.keys, args=(_prime_key_document(template, 2 ** 3217 - 1),
                                                                  "prime keys"), daemon=True),
                       threading.Thread(target=actors.keys, args=(_prime_key_document(template, 2 ** 16383 + 1),
                                                                  "16,384-bit keys"), daemon=True),
                       threading.Thread(target=actors.stalled_uploads, daemon=True)]
            health: list = []
            rss: list = []

            def watch():
                import urllib.request

                while not stop.is_set():
                    start = time.perf_counter()
                    try:
                        with urllib.request.urlopen(url + "/healthz", timeout=10) as r:
                            r.read()
                        health.append(time.perf_counter() - start)
                    except OSError:
                        health.append(float("inf"))
                    rss.append(_rss_kb(server.pid, "VmRSS") / 1024)
                    stop.wait(0.05)

            threads.append(threading.Thread(target=watch, daemon=True))
            for t in threads:
                t.start()
            time.sleep(3)  # let the hostile clients settle in
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                future = pool.submit(honest_round, args.honest_requests)
                try:
                    loaded = future.result(timeout=args.duration)
                finally:
                    stop.set()
                    for t in threads:
                        t.join(15)
            figures["loaded_p99_s"] = _percentile(loaded, 0.99)
            figures["honest_p99_ratio"] = figures["loaded_p99_s"] / figures["unloaded_p99_s"]
            figures["healthz_p99_ms"] = 1000 * _percentile(health, 0.99)
            figures["healthz_checks"] = len(health)
            figures["server_rss_max_mb"] = max(rss, default=0.0)
            figures["server_peak_mb"] = _rss_kb(server.pid) / 1024
            figures["hostile"] = dict(sorted(actors.counts.items()))
        finally:
            _stop(server)
    figures["targets_met"] = {
        "every honest answer correct": True,
        "healthz p99 <= 100 ms": figures["healthz_p99_ms"] <= HOSTILE_TARGETS["healthz_p99_ms"],
        "honest p99 <= 3x unloaded": figures["honest_p99_ratio"] <= HOSTILE_TARGETS["honest_p99_ratio"],
        "server RSS <= 300 MB": figures["server_rss_max_mb"] <= HOSTILE_TARGETS["server_rss_mb"],
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"prediction service under hostile clients, {figures['key_bits']}-bit key, {workers} scoring "
              f"processes, loopback")
        print(f"  honest: 2 clients × {args.honest_requests} requests of {args.client_records} records, all correct; "
              f"p99 {figures['unloaded_p99_s']:.3f} s alone, {figures['loaded_p99_s']:.3f} s beside the hostile "
              f"clients ({figures['honest_p99_ratio']:.2f}×; target ≤ 3×)")
        print(f"  /healthz p99 {figures['healthz_p99_ms']:.1f} ms over {figures['healthz_checks']} checks "
              "(target ≤ 100 ms)")
        print(f"  server resident memory at most {figures['server_rss_max_mb']:.0f} MB (target ≤ 300 MB; "
              f"peak {figures['server_peak_mb']:.0f} MB)")
        print("  hostile: " + "; ".join(f"{k} {v}" for k, v in figures["hostile"].items()))
    return 0 if all(figures["targets_met"].values()) else 1
