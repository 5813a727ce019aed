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


def _percentile(values, q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
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
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
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
