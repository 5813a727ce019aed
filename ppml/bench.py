"""Benchmark: the seed project's phe pipeline against ours, on the same records and key.

``python -m ppml.bench`` (run from the repository root) measures, in one run:

* **Original style** — the seed project's way with python-paillier (phe): every float
  feature of every record is its own ciphertext (``public_key.encrypt(float(x))``, phe's
  ``EncodedNumber`` floats), the server computes ``sum(coef_i * enc_x_i) + intercept`` with
  phe's ``EncryptedNumber`` arithmetic and plaintext float weights, and re-randomizes the
  result (``obfuscate``: what phe's ``ciphertext()`` does before the value is shared); the
  customer decrypts with ``private_key.decrypt``. Stage documents are serialized as the seed
  did, one JSON document ``{"values": [[str(ciphertext), exponent], ...]}`` per record. At
  3072 bits this costs about 1.2 s per record, so it runs on the first ``--baseline-records``
  (default 10) of the N records, and the output says so.
* **Ours** — the stage layer the three scripts run (``ppml.stages.encrypt`` → ``score`` →
  ``decrypt``) with ``--workers`` processes: records CSV → features (JSON Lines) → answer
  (JSON Lines) → predictions CSV in a temporary folder, packed fixed-point plaintexts, DJN
  encryption with precomputed tables (built inside the timed stages), one masked answer
  ciphertext per batch re-randomized with the server's own ``r^n``. Each stage's time
  includes reading and writing its documents.

Both use the same N records (default 1,000, the bundled ``Data/laptop_data.csv`` in file
order, cycled when N exceeds its 1,300 rows, Price column dropped) and one key pair (built by
``ppml.paillier.generate_keypair``; phe's key objects are made from the same ``n``, ``p``,
``q``). Every stage is timed with ``time.perf_counter``; "documents" is the original style's
time to serialize and write its documents (ours writes them inside each stage). The output gives per-record milliseconds per stage, the
end-to-end ratio original/ours, document bytes per record, peak resident memory
(``ru_maxrss`` of this process and of its largest child process) and the largest
``|log(decrypted price) − pipeline.predict(record)|`` against the plaintext scikit-learn
pipeline, with the product targets marked PASS or FAIL.

``--sweep 1000,10000,100000`` then runs our pipeline alone at each size, each in a fresh
``python -m ppml.bench --only-ours`` process (so every peak-memory figure is clean);
``--plot FILE.png`` draws time and memory per record against the size. Each run also reports
what the trust boundary costs per answer ciphertext (:func:`run_crypto_costs`).
Timings on a shared machine are noisy; re-run for final figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_RECORDS = 1000
DEFAULT_BASELINE_RECORDS = 10
DEFAULT_SWEEP = "1000,10000,100000"
DEFAULT_DATA = "Data/laptop_data.csv"

#: Product targets, printed next to the measured values (the speed-up is a minimum, the rest maxima).
TARGET_SPEEDUP = 500.0
TARGET_MS_PER_RECORD = 2.0
TARGET_ANSWER_BYTES = 100
TARGET_FEATURES_BYTES = 3 * 1024
TARGET_PEAK_MB = 300.0
TARGET_PEAK_RECORDS = 100_000
TARGET_MAX_ERROR = 1e-9
TARGET_FLOOR_RATIO = 1.15
TARGET_ONLINE_MS = 0.8
#: The modulus proof at 3072 bits, once per key: verified by the company, made at keygen.
TARGET_PROOF_VERIFY_MS = 1000
TARGET_PROOF_PROVE_MS = 2000


# ---------------------------------------------------------------------------------------------
# Inputs: model, records, keys
# ---------------------------------------------------------------------------------------------
class Model:
    """The customer's and the server's model files (and, lazily, the plaintext pipeline)."""

    def __init__(self, model_dir: str):
        from . import artifacts

        self.dir = Path(model_dir)
        self.spec = artifacts.load_spec(self.dir)
        self.col_tnf = artifacts.load_customer_transform(self.dir / artifacts.COL_TNF)
        self.params = artifacts.load_parameters(self.dir / artifacts.PARAMS_DIR)
        self._pipeline = None

    @property
    def pipeline(self):
        """The whole fitted scikit-learn pipeline: raw records → log price (the reference)."""
        if self._pipeline is None:
            from . import artifacts

            self._pipeline = artifacts.load_pickle(self.dir / artifacts.PIPELINE)
        return self._pipeline


class Records:
    """Deterministic benchmark records: the bundled rows in file order, cycled past the end."""

    def __init__(self, path: str):
        import pandas as pd

        from .errors import InputError

        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        except (OSError, ValueError, pd.errors.ParserError) as e:
            raise InputError(f"cannot read the benchmark records: {e}", str(path)) from None
        if frame.empty:
            raise InputError("holds no records", str(path))
        self.base = frame.drop(columns=["Price"], errors="ignore").reset_index(drop=True)

    def take(self, start: int, count: int):
        """Records ``start … start+count−1`` as (raw DataFrame, ids); ids are the positions."""
        import numpy as np

        rows = np.arange(start, start + count) % len(self.base)
        frame = self.base.iloc[rows].reset_index(drop=True)
        return frame, list(range(start, start + count))

    def chunks(self, n: int, size: int):
        """(raw DataFrame, ids) chunks of ``size`` records covering records 0 … n−1, lazily."""
        for start in range(0, n, size):
            yield self.take(start, min(size, n - start))


def load_or_generate_keys(args):
    """The key pair in ``--keys`` if given, else a fresh one; returns (public, private, seconds)."""
    t0 = time.perf_counter()
    if args.keys:
        from .keystore import KeyStore

        private = KeyStore(args.keys).load_private(allow_weak=args.allow_weak_key)
        return private.public, private, 0.0
    from .paillier import generate_keypair

    public, private = generate_keypair(args.key_size, allow_weak=args.allow_weak_key)
    return public, private, time.perf_counter() - t0


def peak_memory_mb() -> tuple[float, float]:
    """Peak resident set size so far, in MB: (this process, its largest waited-for child).

    Both come from ``resource.getrusage``'s ``ru_maxrss``, except that on Linux this process's
    own peak is read from ``VmHWM`` in ``/proc/self/status``: ``ru_maxrss`` survives ``exec``,
    so a sweep process started by a large parent would report the parent's memory as its own.
    """
    import resource

    scale = 2 ** 20 if sys.platform == "darwin" else 2 ** 10  # ru_maxrss: bytes on macOS, KB on Linux
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            own = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 2 ** 10
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    return own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / scale


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its waited-for children (pool workers are
    waited for when their pool closes), for a load-independent view next to wall time."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# ---------------------------------------------------------------------------------------------
# Original style: phe, one ciphertext per float value
# ---------------------------------------------------------------------------------------------
def run_original(raw, model: Model, public, private, reference, out_dir: Path) -> dict:
    """The seed project's pipeline on ``raw`` (a few records); figures per record."""
    from phe import paillier

    pub = paillier.PaillierPublicKey(int(public.n))
    priv = paillier.PaillierPrivateKey(pub, int(private.p), int(private.q))
    coefficients, intercept = model.params.coefficients[0], model.params.intercepts[0]  # one output: the price
    n = len(raw)

    c0, t0 = cpu_seconds(), time.perf_counter()
    x = model.col_tnf.transform(raw)
    encrypted = [[pub.encrypt(float(v)) for v in row] for row in x]
    t1 = time.perf_counter()
    scored = []
    for record in encrypted:
        value = sum(c * e for c, e in zip(coefficients, record)) + intercept
        value.obfuscate()  # what phe's ciphertext() does before a result may be shared
        scored.append(value)
    t2 = time.perf_counter()
    decrypted = [priv.decrypt(value) for value in scored]
    t3 = time.perf_counter()
    features_bytes = _write_phe_documents(out_dir / "original-data", encrypted)
    answer_bytes = _write_phe_documents(out_dir / "original-answer", [[v] for v in scored])
    t4, cpu = time.perf_counter(), cpu_seconds() - c0

    errors = [abs(d - r) for d, r in zip(decrypted, reference)]
    return _figures(n, t1 - t0, t2 - t1, t3 - t2, t4 - t3, cpu, features_bytes, answer_bytes, max(errors))


def _write_phe_documents(folder: Path, records) -> int:
    """One seed-style JSON document per record; returns the total bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i, values in enumerate(records):
        data = json.dumps({"values": [[str(v.ciphertext()), v.exponent] for v in values]}).encode()
        (folder / f"{i}.json").write_bytes(data)
        total += len(data)
    return total


# ---------------------------------------------------------------------------------------------
# Ours: the stage layer the three scripts run
# ---------------------------------------------------------------------------------------------
def run_ours(n: int, records: Records, model: Model, public, private, workers: int, allow_weak: bool,
             out_dir: Path, pooled: bool = False) -> dict:
    """Our pipeline on ``n`` records, through :mod:`ppml.stages` exactly as the three scripts
    run it: records CSV → features (JSON Lines) → answer (JSON Lines) → predictions CSV, each
    stage streaming batch by batch with ``workers`` processes, so memory stays flat.

    Each stage's time includes reading its input and writing its document; its CPU time is
    that of this process and its workers (joined when the stage ends). The records CSV is
    written before the clock starts; the check against the plaintext pipeline runs after the
    peak memory is read, so loading scikit-learn does not count against the pipeline's memory.
    With ``pooled``, both pools (:mod:`ppml.pools`) are first filled for exactly these records
    (offline, timed apart as ``offline_cpu_ms``), so the stages do the online work only.
    """
    import numpy as np
    import pandas as pd

    from . import files, pools, stages
    from .keystore import PRIVATE_NAME, PUBLIC_NAME, KeyStore

    m = model.spec.codec.slots_for(public.bits)
    size = m * 64
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, features, answer, predictions = (out_dir / name for name in
                                               ("records.csv", "data.jsonl", "answer.jsonl", "predictions.csv"))
    for i, (raw, ids) in enumerate(records.chunks(n, size)):
        raw.insert(0, "id", ids)
        raw.to_csv(csv_path, mode="a" if i else "w", header=not i, index=False)
    keys_dir, pools_dir = out_dir / "keys", out_dir / "pools"
    files.atomic_write_bytes(keys_dir / PRIVATE_NAME, files.dump_json(private.to_dict()).encode(), mode=0o600)
    files.atomic_write_bytes(keys_dir / PUBLIC_NAME, files.dump_json(public.to_dict()).encode())
    keys = stages.CustomerKeys(KeyStore(keys_dir), allow_weak=allow_weak)
    offline = 0.0
    if pooled:
        c0 = cpu_seconds()
        batches = -(-n // m)
        pools.fill(pools.customer_pool(keys_dir, public), batches * len(model.spec.features), private, workers)
        pools.fill(pools.server_pool(pools_dir, public), batches * len(model.spec.outputs), None, workers)
        offline = cpu_seconds() - c0

    c0, t0 = cpu_seconds(), time.perf_counter()
    stages.encrypt(str(csv_path), str(features), spec=model.spec, col_tnf=model.col_tnf, keys=keys, workers=workers)
    c1, t1 = cpu_seconds(), time.perf_counter()
    stages.score(str(features), str(answer), params=model.params, workers=workers, allow_weak=allow_weak,
                 pools_dir=pools_dir if pooled else None)
    c2, t2 = cpu_seconds(), time.perf_counter()
    stages.decrypt(str(answer), str(predictions), spec=model.spec, keys=keys, workers=workers)
    c3, t3 = cpu_seconds(), time.perf_counter()
    peak_self, peak_children = peak_memory_mb()

    error = 0.0
    decrypted = pd.read_csv(predictions, chunksize=size)
    for (raw, ids), got in zip(records.chunks(n, size), decrypted):
        if list(got["id"]) != ids:
            raise AssertionError("decrypted ids differ from the input ids")  # would be a library bug
        reference = model.pipeline.predict(raw)
        error = max(error, float(np.max(np.abs(np.log(got["prediction"].to_numpy()) - reference))))
    figures = _figures(n, t1 - t0, t2 - t1, t3 - t2, 0.0, c3 - c0, features.stat().st_size, answer.stat().st_size,
                       error)
    per = 1000.0 / n
    figures.update(peak_self_mb=peak_self, peak_children_mb=peak_children, encrypt_cpu_ms=(c1 - c0) * per,
                   score_cpu_ms=(c2 - c1) * per, decrypt_cpu_ms=(c3 - c2) * per, offline_cpu_ms=offline * per,
                   features_path=str(features))
    return figures


def _figures(n, encrypt_s, score_s, decrypt_s, documents_s, cpu_s, features_bytes, answer_bytes, error) -> dict:
    """Per-record figures: stage wall times and total CPU time in ms, document bytes."""
    per = 1000.0 / n
    return {
        "records": n,
        "encrypt_ms": encrypt_s * per, "score_ms": score_s * per, "decrypt_ms": decrypt_s * per,
        "documents_ms": documents_s * per,
        "total_ms": (encrypt_s + score_s + decrypt_s + documents_s) * per, "cpu_ms": cpu_s * per,
        "features_bytes": features_bytes / n, "answer_bytes": answer_bytes / n,
        "max_error": error,
    }


# ---------------------------------------------------------------------------------------------
# The arithmetic floor: what each stage's big-integer operations alone cost, timed in this run
# ---------------------------------------------------------------------------------------------
def _per_call_ms(fn, repeats: int) -> float:
    """CPU milliseconds per call of ``fn``: the median of three rounds, so that a primitive is
    timed under the same load as the stages it is compared with (the fastest round would be
    measured in the quietest moment and make every ratio look worse)."""
    rounds = []
    for _ in range(3):
        c0 = time.process_time()
        for _ in range(repeats):
            fn()
        rounds.append(time.process_time() - c0)
    return sorted(rounds)[1] * 1000 / repeats


def arithmetic_floors(n: int, model: Model, public, private, workers: int) -> dict:
    """Per-record CPU milliseconds of each stage's big-integer arithmetic alone, from primitives
    timed now: what no implementation in this design can go below.

    * encrypt: per ciphertext, the two comb exponentiations (modulo p² and q², for the comb the
      stage chooses for ``n`` records) counted in multiplications and squarings, the CRT, and
      ``(1 + P·n)·h_s^α mod n²``; with a pool, that last multiplication alone;
    * score: per answer ciphertext, the weights' addition chain counted in multiplications
      modulo n², one inversion, the plaintext and noise multiplications, and ``r^n``; with a
      pool, no ``r^n``;
    * decrypt: one CRT decryption (two ``powmod_sec``) per answer ciphertext.

    Reading, parsing and writing documents, the features transform, table building and key
    loading are not in the floor: they are what the stages spend above it."""
    import secrets

    import gmpy2

    from .paillier.keys import crt
    from .paillier.multiexp import bos_coster
    from .paillier.scheme import choose_table, server_noise

    spec = model.spec
    m = spec.codec.slots_for(public.bits)
    batches, features, outputs = -(-n // m), len(spec.features), len(spec.outputs)
    n_sq, p_sq, q_sq = public.n_sq, private.p ** 2, private.q ** 2
    rand = lambda modulus: gmpy2.mpz(secrets.randbelow(int(modulus)))  # noqa: E731
    a, b, x, y = rand(p_sq), rand(p_sq), rand(n_sq), rand(n_sq)
    mul_half = _per_call_ms(lambda: a * b % p_sq, 2000)
    sq_half = _per_call_ms(lambda: a * a % p_sq, 2000)
    mul_full = _per_call_ms(lambda: x * y % n_sq, 1000)
    plain = rand(public.n)
    pack = _per_call_ms(lambda: (1 + plain * public.n) * x % n_sq, 1000)
    inv = gmpy2.invert(p_sq, q_sq)
    crt_ms = _per_call_ms(lambda: crt(a, rand(q_sq), p_sq, q_sq, inv), 500)
    invert = _per_call_ms(lambda: gmpy2.invert(x, n_sq), 200)
    noise = _per_call_ms(lambda: server_noise(public), 5)
    answer = x  # any unit: powmod_sec's time does not depend on the value
    decrypt = _per_call_ms(lambda: private.raw_decrypt(answer), 10)

    kind = choose_table(public.alpha_bits, batches * features, max(p_sq.bit_length(), q_sq.bit_length()),
                        min(workers, batches), comb=True)
    if kind[0] == "comb":
        teeth, blocks = kind[1], kind[2]
        col = -(-(-(-public.alpha_bits // teeth)) // blocks)
        exponentiation = (col - 1) * sq_half + blocks * col * (1 - 2.0 ** -teeth) * mul_half
    else:  # a tiny workload: plain powmod, about 1.5 operations per exponent bit
        exponentiation = 1.5 * public.alpha_bits * mul_half
    mask = 2 * exponentiation + crt_ms
    chain = sum(bos_coster(tuple(max(s * w, 0) for w in W)).multiplications for W, _ in
                model.params.integer_weights() for s in (1, -1)) / outputs
    answer_ms = chain * mul_full + invert + 2 * mul_full
    per_record = lambda per_batch: per_batch * batches / n  # noqa: E731
    return {
        "table": list(kind), "chain_multiplications": chain,
        "primitives_us": {"mulmod_p2": mul_half * 1000, "sqrmod_p2": sq_half * 1000, "mulmod_n2": mul_full * 1000,
                          "crt": crt_ms * 1000, "invert_n2": invert * 1000},
        "r_n_ms": noise, "decrypt_ms": decrypt, "mask_ms": mask,
        "encrypt_ms": per_record(features * (mask + pack)), "encrypt_pooled_ms": per_record(features * pack),
        "score_ms": per_record(outputs * (answer_ms + noise)), "score_pooled_ms": per_record(outputs * answer_ms),
        "decrypt_per_record_ms": per_record(outputs * decrypt),
        "offline_ms": per_record(features * mask + outputs * noise),
    }


def parallel_efficiency(features_path: str, model: Model, workers: int, allow_weak: bool, wall_workers: float,
                        out_dir: Path) -> dict:
    """The score stage again on the same document with one worker: speed-up and efficiency
    (speed-up ÷ workers) of the ``workers``-process run timed before."""
    from . import stages

    t0 = time.perf_counter()
    stages.score(features_path, str(out_dir / "answer-1-worker.jsonl"), params=model.params, workers=1,
                 allow_weak=allow_weak)
    wall_one = time.perf_counter() - t0
    speedup = wall_one / wall_workers if wall_workers else 0.0
    return {"workers": workers, "wall_1_s": wall_one, "wall_n_s": wall_workers, "speedup": speedup,
            "efficiency": speedup / workers}


# ---------------------------------------------------------------------------------------------
# What the trust boundary costs, per answer ciphertext
# ---------------------------------------------------------------------------------------------
def run_crypto_costs(model: Model, public, private, repeats: int = 20) -> dict:
    """Milliseconds per answer ciphertext (one full batch of ``m`` records) for: scoring as
    before the trust-boundary change (re-randomized by a fresh DJN encryption under the
    customer's ``h_s``, table sized for the workload) and as now (mask above the declared slots
    plus the server's own ``r^n``), ``r^n`` alone, and decryption with ``gmpy2.powmod`` (variable
    time) against ``gmpy2.powmod_sec`` (constant time, what the key owner uses)."""
    import secrets

    import gmpy2

    from .paillier.multiexp import signed_multi_pow
    from .paillier.scheme import Encryptor, encrypt_packed, score_packed, server_noise

    codec = model.spec.codec
    m = codec.slots_for(public.bits)
    (W, B), = model.params.integer_weights()  # the laptop model has one output
    rows = [[secrets.randbelow(1 << codec.feature_bits) for _ in W] for _ in range(m)]
    cts = encrypt_packed(Encryptor(public, private, expected=len(W)), codec, rows)
    old = Encryptor(public, expected=LARGE_BATCHES_FOR_COSTS)

    def before():
        n_sq = public.n_sq
        return signed_multi_pow(cts, W, n_sq) * old.encrypt(codec.pack_offset(B, m)) % n_sq

    answer = score_packed(public, codec, W, B, cts, m)
    p_sq, p1 = private.p ** 2, private.p - 1

    def timed(fn, times: int = repeats) -> float:
        t0 = time.perf_counter()
        for _ in range(times):
            fn()
        return (time.perf_counter() - t0) * 1000 / times

    from .paillier.proof import prove, verify

    proof = prove(private.p, private.q, public.h_s)
    return {
        "slots": m,
        "proof_prove_ms": timed(lambda: prove(private.p, private.q, public.h_s), 3),
        "proof_verify_ms": timed(lambda: verify(public.n, public.h_s, proof), 3),
        "proof_bytes": len(json.dumps(proof.to_dict(), separators=(",", ":"))),
        "score_before_ms": timed(before),
        "score_now_ms": timed(lambda: score_packed(public, codec, W, B, cts, m)),
        "server_noise_ms": timed(lambda: server_noise(public)),
        "decrypt_powmod_ms": timed(lambda: (gmpy2.powmod(answer, p1, p_sq), gmpy2.powmod(answer, p1, p_sq))),
        "decrypt_powmod_sec_ms": timed(lambda: private.raw_decrypt(answer)),
    }


#: Workload the "before" re-randomization table is sized for (the old server sized it so).
LARGE_BATCHES_FOR_COSTS = 10_000


def render_crypto_costs(c: dict) -> list[str]:
    m = c["slots"]
    return [
        f"modulus proof, once per key, one process: prove {c['proof_prove_ms']:.0f} ms, verify "
        f"{c['proof_verify_ms']:.0f} ms, {c['proof_bytes']:,} bytes of JSON",
        f"trust boundary, per answer ciphertext ({m} records), one process:",
        f"  score, before (DJN re-randomization with the customer's h_s): {c['score_before_ms']:.2f} ms"
        f" ({c['score_before_ms'] / m:.3f} ms/record)",
        f"  score, now (mask + the server's own r^n):                    {c['score_now_ms']:.2f} ms"
        f" ({c['score_now_ms'] / m:.3f} ms/record), of which r^n {c['server_noise_ms']:.2f} ms",
        f"  decrypt, powmod (variable time):                              {c['decrypt_powmod_ms']:.2f} ms",
        f"  decrypt, powmod_sec (constant time, used):                    {c['decrypt_powmod_sec_ms']:.2f} ms",
    ]


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------
def benchmark(args) -> dict:
    """The side-by-side run (and the sweep, if asked): every figure in one dict."""
    from .parallel import default_workers

    workers = args.workers or default_workers()
    model = Model(args.model)
    records = Records(args.data)
    public, private, keygen_s = load_or_generate_keys(args)
    m = model.spec.codec.slots_for(public.bits)
    result = {"settings": _settings(args, model, public, m, workers, keygen_s)}
    baseline = min(args.baseline_records, args.records)

    with tempfile.TemporaryDirectory(prefix="ppml-bench-") as tmp:
        if baseline:
            raw, _ = records.take(0, baseline)
            reference = [float(v) for v in model.pipeline.predict(raw)]
            result["original"] = run_original(raw, model, public, private, reference, Path(tmp))
            result["original"]["peak_self_mb"], _ = peak_memory_mb()
        result["ours"] = run_ours(args.records, records, model, public, private, workers, args.allow_weak_key,
                                  Path(tmp) / "plain")
        result["pooled"] = run_ours(args.records, records, model, public, private, workers, args.allow_weak_key,
                                    Path(tmp) / "pooled", pooled=True)
        if workers > 1:
            result["parallel"] = parallel_efficiency(result["ours"]["features_path"], model, workers,
                                                     args.allow_weak_key, result["ours"]["score_ms"] * args.records
                                                     / 1000, Path(tmp))
    for run in ("ours", "pooled"):
        del result[run]["features_path"]
    result["floor"] = arithmetic_floors(args.records, model, public, private, workers)
    if baseline:
        result["ratio"] = result["original"]["total_ms"] / result["ours"]["total_ms"]
    result["crypto"] = run_crypto_costs(model, public, private)
    if args.sweep:
        result["sweep"] = run_sweep(args, public, private, workers)
    return result


def _settings(args, model: Model, public, m: int, workers: int, keygen_s: float) -> dict:
    import gmpy2

    try:
        from importlib.metadata import version
        phe_version = version("phe")
    except Exception:  # noqa: BLE001 - only a label in the report
        phe_version = "?"
    return {
        "key_bits": public.bits, "alpha_bits": public.alpha_bits, "slots": m,
        "slot_bits": model.spec.codec.slot_bits, "feature_bits": model.spec.codec.feature_bits,
        "weight_bits": model.spec.codec.weight_bits, "features": len(model.spec.features),
        "workers": workers, "cores": os.cpu_count(), "records": args.records,
        "baseline_records": min(args.baseline_records, args.records), "keygen_s": keygen_s,
        "key_loaded": bool(args.keys),
        "python": platform.python_version(), "gmpy2": gmpy2.version(), "phe": phe_version,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def run_sweep(args, public, private, workers: int) -> list[dict]:
    """Each size in a fresh ``--only-ours`` process sharing this run's key (via a 0600 temp
    folder), so every peak-memory figure belongs to that size alone."""
    from . import files
    from .keystore import PRIVATE_NAME, PUBLIC_NAME

    rows = []
    with tempfile.TemporaryDirectory(prefix="ppml-bench-keys-") as keys:
        files.atomic_write_bytes(Path(keys) / PRIVATE_NAME, files.dump_json(private.to_dict()).encode(), mode=0o600)
        files.atomic_write_bytes(Path(keys) / PUBLIC_NAME, files.dump_json(public.to_dict()).encode())
        for n in args.sweep:
            cmd = [sys.executable, "-m", "ppml.bench", "--only-ours", "--json", "--records", str(n),
                   "--keys", keys, "--workers", str(workers), "--model", args.model, "--data", args.data]
            if args.allow_weak_key:
                cmd.append("--allow-weak-key")
            print(f"sweep: {n:,} records …", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if done.returncode:
                raise RuntimeError(f"sweep run for {n} records failed:\n{done.stderr}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["process_wall_s"] = wall
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def render(result: dict) -> str:
    s, ours, orig = result["settings"], result["ours"], result.get("original")
    key_note = "key loaded from --keys" if s["key_loaded"] else f"keygen {s['keygen_s']:.2f} s"
    lines = [
        "ppml benchmark — seed-style phe pipeline vs ours, same records, same key",
        f"key {s['key_bits']} bits · α {s['alpha_bits']} bits · m = {s['slots']} records per ciphertext · "
        f"slot {s['slot_bits']} bits (Fx {s['feature_bits']}, Fw {s['weight_bits']}) · {s['features']} features",
        f"N = {s['records']:,} records · workers {s['workers']} of {s['cores']} cores · "
        f"{key_note} · "
        f"Python {s['python']}, gmpy2 {s['gmpy2']}, phe {s['phe']} · load average {_load(s)}",
    ]
    if orig:
        lines.append(f"original style measured on the first {orig['records']:,} of the {s['records']:,} records "
                     f"(≈1.2 s per record at 3072 bits); ours on all {ours['records']:,}, through the stage "
                     "layer the scripts run, each stage reading and writing its documents.")
    else:
        lines.append("original style skipped (--baseline-records 0).")
    lines.append("")
    head = f"{'per record':<26}{'original (phe)':>16}{'ours':>14}{'speed-up':>11}"
    lines += [head, "-" * len(head)]
    for key, label in (("encrypt_ms", "encrypt (ms)"), ("score_ms", "score (ms)"), ("decrypt_ms", "decrypt (ms)"),
                       ("documents_ms", "write documents (ms)"), ("total_ms", "total, wall (ms)"),
                       ("cpu_ms", "total, CPU all procs (ms)")):
        lines.append(f"{label:<26}{_num(orig, key):>16}{_fmt(ours[key]):>14}{_speedup(orig, ours, key):>11}")
    for key, label in (("features_bytes", "features document (B)"), ("answer_bytes", "answer document (B)")):
        lines.append(f"{label:<26}{_num(orig, key, '{:,.0f}'):>16}{ours[key]:>14,.0f}"
                     f"{_ratio(orig, ours, key):>11}")
    lines.append(f"{'max |error| (log price)':<26}{_num(orig, 'max_error', '{:.2e}'):>16}{ours['max_error']:>14.2e}")
    lines.append("")
    if "ratio" in result:
        lines.append(f"end-to-end ratio original/ours: {result['ratio']:,.0f}× "
                     f"({orig['total_ms']:,.1f} ms vs {ours['total_ms']:.3f} ms per record)")
    own, kids = ours["peak_self_mb"], ours["peak_children_mb"]
    peak = (f"peak resident memory: this process {own:.0f} MB, largest child process (pool workers) "
            f"{kids:.0f} MB, self + children {own + kids:.0f} MB")
    if orig:
        peak += f" (after the original style alone: {orig['peak_self_mb']:.0f} MB)"
    lines.append(peak + ".")
    lines += ["", *render_floor(result)]
    lines += ["", *render_crypto_costs(result["crypto"])]
    if result.get("sweep"):
        lines += ["", *render_sweep(result["sweep"], "size sweep — ours only, each size in a fresh process, "
                                                        "streaming through JSONL files")]
    lines += ["", *render_targets(result)]
    return "\n".join(lines)


def render_floor(result: dict) -> list[str]:
    """CPU per record of each stage (all processes) against its arithmetic floor, without and
    with pools, and the worker pool's parallel efficiency."""
    ours, pooled, f = result["ours"], result["pooled"], result["floor"]
    w = result["settings"]["workers"]
    rows = [("encrypt", ours["encrypt_cpu_ms"], f["encrypt_ms"], pooled["encrypt_cpu_ms"], f["encrypt_pooled_ms"]),
            ("score", ours["score_cpu_ms"], f["score_ms"], pooled["score_cpu_ms"], f["score_pooled_ms"]),
            ("decrypt", ours["decrypt_cpu_ms"], f["decrypt_per_record_ms"], pooled["decrypt_cpu_ms"],
             f["decrypt_per_record_ms"])]
    rows.append(("total", *(sum(r[i] for r in rows) for i in range(1, 5))))
    head = (f"{'CPU per record (ms)':<22}{'no pools':>10}{'floor':>9}{'ratio':>8}   "
            f"{'pools filled':>13}{'floor':>9}{'ratio':>8}")
    lines = [f"each stage against its arithmetic floor (CPU of all processes, {w} worker(s); floor = the "
             "big-integer operations alone, primitives timed in this run):", head, "-" * len(head)]
    for name, cpu, floor, cpu_p, floor_p in rows:
        lines.append(f"{name:<22}{cpu:>10.3f}{floor:>9.3f}{cpu / floor:>7.2f}×   {cpu_p:>13.3f}{floor_p:>9.3f}"
                     f"{cpu_p / floor_p:>7.2f}×")
    lines.append(f"{'offline (pool filling)':<22}{'':>10}{'':>9}{'':>8}   {pooled['offline_cpu_ms']:>13.3f}"
                 f"{f['offline_ms']:>9.3f}{pooled['offline_cpu_ms'] / f['offline_ms']:>7.2f}×")
    p = f["primitives_us"]
    lines.append(f"primitives: mulmod p² {p['mulmod_p2']:.2f} µs, sqrmod p² {p['sqrmod_p2']:.2f} µs, mulmod n² "
                 f"{p['mulmod_n2']:.2f} µs, CRT {p['crt']:.2f} µs, invert n² {p['invert_n2']:.1f} µs, r^n "
                 f"{f['r_n_ms']:.2f} ms, decryption {f['decrypt_ms']:.2f} ms; comb {tuple(f['table'][1:])} "
                 f"(teeth, blocks): {f['mask_ms']:.3f} ms per h_s^α; addition chain "
                 f"{f['chain_multiplications']:.0f} multiplications per answer")
    lines.append(f"with pools: max |error| {pooled['max_error']:.2e}; wall {pooled['total_ms']:.3f} ms per record "
                 f"(no pools {ours['total_ms']:.3f} ms)")
    par = result.get("parallel")
    if par:
        lines.append(f"worker pool, score stage: 1 worker {par['wall_1_s']:.2f} s, {par['workers']} workers "
                     f"{par['wall_n_s']:.2f} s: speed-up {par['speedup']:.2f}×, parallel efficiency "
                     f"{par['efficiency']:.0%}")
    return lines


def render_sweep(rows: list[dict], title: str) -> list[str]:
    head = (f"{'records':>9}{'encrypt':>9}{'score':>8}{'decrypt':>9}{'total':>8}{'cpu':>8}{'wall s':>9}"
            f"{'self MB':>9}{'child MB':>10}{'sum MB':>8}{'feat B':>8}{'ans B':>7}{'max|err|':>10}")
    lines = [title + " (ms per record; stages include reading and writing their documents)", head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['records']:>9,}{r['encrypt_ms']:>9.3f}{r['score_ms']:>8.3f}{r['decrypt_ms']:>9.3f}"
                     f"{r['total_ms']:>8.3f}{r['cpu_ms']:>8.3f}{r['process_wall_s']:>9.1f}{r['peak_self_mb']:>9.0f}"
                     f"{r['peak_children_mb']:>10.0f}{r['peak_self_mb'] + r['peak_children_mb']:>8.0f}"
                     f"{r['features_bytes']:>8,.0f}{r['answer_bytes']:>7.0f}{r['max_error']:>10.1e}")
    lines.append("cpu = CPU time of the process and its workers per record; wall s = the whole process "
                 "(start-up, model loading and the plaintext check included).")
    return lines


def targets(result: dict) -> list[tuple[str, str, str, str]]:
    """(what, target, measured, PASS/FAIL/NOT RUN) rows."""
    ours = result["ours"]
    rows = []
    if "ratio" in result:
        rows.append(("end-to-end speed-up vs original", f"≥ {TARGET_SPEEDUP:,.0f}×", f"{result['ratio']:,.0f}×",
                     _verdict(result["ratio"] >= TARGET_SPEEDUP)))
    else:
        rows.append(("end-to-end speed-up vs original", f"≥ {TARGET_SPEEDUP:,.0f}×", "—", "NOT RUN"))
    rows += [
        (f"ours, total wall per record at {ours['records']:,}", f"≤ {TARGET_MS_PER_RECORD:g} ms",
         f"{ours['total_ms']:.3f} ms",
         _verdict(ours["total_ms"] <= TARGET_MS_PER_RECORD)),
        ("answer document per record", f"≤ {TARGET_ANSWER_BYTES} B", f"{ours['answer_bytes']:,.0f} B",
         _verdict(ours["answer_bytes"] <= TARGET_ANSWER_BYTES)),
        ("features document per record", f"≤ {TARGET_FEATURES_BYTES:,} B", f"{ours['features_bytes']:,.0f} B",
         _verdict(ours["features_bytes"] <= TARGET_FEATURES_BYTES)),
    ]
    largest = max(result.get("sweep", []), key=lambda r: r["records"], default=None)
    if largest:
        rows.append((f"ours, total wall per record at {largest['records']:,} (sweep)",
                     f"≤ {TARGET_MS_PER_RECORD:g} ms", f"{largest['total_ms']:.3f} ms",
                     _verdict(largest["total_ms"] <= TARGET_MS_PER_RECORD)))
    memory = f"peak memory at {TARGET_PEAK_RECORDS:,} records (self + children)"
    big = [r for r in result.get("sweep", []) if r["records"] >= TARGET_PEAK_RECORDS]
    if big:
        mb = max(r["peak_self_mb"] + r["peak_children_mb"] for r in big)
        rows.append((memory, f"≤ {TARGET_PEAK_MB:.0f} MB", f"{mb:.0f} MB", _verdict(mb <= TARGET_PEAK_MB)))
    else:
        seen = (f"{largest['peak_self_mb'] + largest['peak_children_mb']:.0f} MB at {largest['records']:,}"
                if largest else "—")
        rows.append((memory, f"≤ {TARGET_PEAK_MB:.0f} MB", seen, "NOT RUN"))
    if "floor" in result:
        f, pooled = result["floor"], result["pooled"]
        floor = f["encrypt_ms"] + f["score_ms"] + f["decrypt_per_record_ms"]
        ratio = ours["cpu_ms"] / floor
        rows.append(("total CPU ÷ arithmetic floor, no pools", f"≤ {TARGET_FLOOR_RATIO:g}×", f"{ratio:.2f}×",
                     _verdict(ratio <= TARGET_FLOOR_RATIO)))
        rows.append(("online CPU per record, both pools filled", f"≤ {TARGET_ONLINE_MS:g} ms",
                     f"{pooled['cpu_ms']:.3f} ms", _verdict(pooled["cpu_ms"] <= TARGET_ONLINE_MS)))
    if "crypto" in result:
        c = result["crypto"]
        rows.append(("modulus proof verification (once per key)", f"≤ {TARGET_PROOF_VERIFY_MS:,} ms",
                     f"{c['proof_verify_ms']:.0f} ms", _verdict(c["proof_verify_ms"] <= TARGET_PROOF_VERIFY_MS)))
        rows.append(("modulus proof generation (at keygen)", f"≤ {TARGET_PROOF_PROVE_MS:,} ms",
                     f"{c['proof_prove_ms']:.0f} ms", _verdict(c["proof_prove_ms"] <= TARGET_PROOF_PROVE_MS)))
    errors = [ours["max_error"]] + [r["max_error"] for r in result.get("sweep", [])]
    errors += [result["pooled"]["max_error"]] if "pooled" in result else []
    rows.append(("max |error| vs plaintext model (ours)", f"≤ {TARGET_MAX_ERROR:g}", f"{max(errors):.2e}",
                 _verdict(max(errors) <= TARGET_MAX_ERROR)))
    return rows


def render_targets(result: dict) -> list[str]:
    lines = [f"{'target':<48}{'wanted':>12}{'measured':>22}  verdict", "-" * 92]
    for what, wanted, seen, verdict in targets(result):
        lines.append(f"{what:<48}{wanted:>12}{seen:>22}  {verdict}")
    return lines


def _load(settings: dict) -> str:
    v = settings.get("load_average")
    return "?" if v is None else f"{v:.2f}"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _fmt(v: float) -> str:
    return f"{v:,.1f}" if v >= 100 else f"{v:.3f}"


def _num(d, key, fmt=None) -> str:
    if not d:
        return "—"
    return fmt.format(d[key]) if fmt else _fmt(d[key])


def _speedup(orig, ours, key) -> str:
    if not orig or not ours[key]:
        return "—"
    return f"{orig[key] / ours[key]:,.0f}×"


def _ratio(orig, ours, key) -> str:
    return f"{orig[key] / ours[key]:,.1f}×" if orig else "—"


def plot_sweep(rows: list[dict], path: str, title: str) -> None:
    """Per-record time and peak memory against the number of records (log x axis)."""
    try:
        import matplotlib
    except ImportError:
        print("--plot needs matplotlib, which is not installed (pip install matplotlib); no plot written.",
              file=sys.stderr)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["records"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("encrypt_ms", "encrypt"), ("score_ms", "score"), ("decrypt_ms", "decrypt"),
                       ("total_ms", "total")):
        left.plot(n, [r[key] for r in rows], marker="o", label=label, linewidth=2.5 if key == "total_ms" else 1.2)
    left.axhline(TARGET_MS_PER_RECORD, color="grey", linestyle="--", label=f"target {TARGET_MS_PER_RECORD:g} ms")
    top = max(TARGET_MS_PER_RECORD, *(r["total_ms"] for r in rows))
    left.set(xscale="log", xlabel="records", ylabel="ms per record", title="time per record", ylim=(0, top * 1.6))
    left.legend(loc="upper center", ncol=3, fontsize="small")
    right.plot(n, [r["peak_self_mb"] for r in rows], marker="o", label="this process")
    right.plot(n, [r["peak_children_mb"] for r in rows], marker="o", label="largest child (worker)")
    right.plot(n, [r["peak_self_mb"] + r["peak_children_mb"] for r in rows], marker="o", linewidth=2.5,
               label="self + children")
    right.axhline(TARGET_PEAK_MB, color="grey", linestyle="--", label=f"target {TARGET_PEAK_MB:.0f} MB")
    top = max(TARGET_PEAK_MB, *(r["peak_self_mb"] + r["peak_children_mb"] for r in rows))
    right.set(xscale="log", xlabel="records", ylabel="MB (VmHWM / ru_maxrss)", title="peak memory",
              ylim=(0, top * 1.4))
    right.legend(loc="upper center", ncol=2, fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"plot written to {path}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated record counts, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("record counts must be positive")
    return sizes


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return v


def _non_negative(text: str) -> int:
    v = int(text) if text.isdigit() else -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ppml.bench",
        description="Compare the seed-style phe pipeline with ours on the same records and key, "
                    "and optionally sweep our pipeline over input sizes. Run from the repository root.")
    p.add_argument("--records", type=_positive, default=DEFAULT_RECORDS,
                   help=f"records to run through our pipeline (default {DEFAULT_RECORDS:,})")
    p.add_argument("--baseline-records", type=_non_negative, default=DEFAULT_BASELINE_RECORDS,
                   help="the first this many records also go through the original phe pipeline "
                        f"(default {DEFAULT_BASELINE_RECORDS}; ≈1.2 s each at 3072 bits; 0 skips it)")
    p.add_argument("--key-size", type=_positive, default=3072, help="Paillier modulus bits (default 3072)")
    p.add_argument("--allow-weak-key", action="store_true", help="accept keys under 2048 bits (tests only)")
    p.add_argument("--keys", metavar="DIR",
                   help="use the key pair in this folder (PaillierKeys layout) instead of generating one")
    p.add_argument("--workers", type=_positive, default=None, help="processes per stage (default: all cores)")
    p.add_argument("--model", metavar="DIR", default=".",
                   help="folder holding col_tnf.pkl, PreProcessingDataAndModel.pkl and Encrypted_ModelParameters/")
    p.add_argument("--data", metavar="CSV", default=DEFAULT_DATA,
                   help=f"raw laptop records to cycle through (default {DEFAULT_DATA})")
    p.add_argument("--sweep", type=_sizes, nargs="?", const=_sizes(DEFAULT_SWEEP), default=None, metavar="N,N,…",
                   help=f"also run ours alone at each size in a fresh process (default sizes {DEFAULT_SWEEP})")
    p.add_argument("--plot", metavar="FILE.png", help="draw the sweep (time and memory per size); needs matplotlib")
    p.add_argument("--only-ours", action="store_true",
                   help="run only our pipeline on --records records, streaming through files with flat memory "
                        "(what each sweep size runs)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object instead of tables")
    p.add_argument("--service", action="store_true",
                   help="benchmark the prediction service instead (python -m ppml.bench --service --help)")
    return p


def main(argv=None) -> int:
    """Run the benchmark; library errors (missing model files, a bad key …) become one
    ``Error:`` line and the library's exit status."""
    from .errors import PpmlError

    started = time.perf_counter()
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--service" in argv:  # the prediction service's own benchmark (ppml/bench_service.py)
        from .bench_service import main as service_main

        return service_main([a for a in argv if a != "--service"])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.plot and not args.sweep:
        parser.error("--plot draws the sweep: add --sweep")
    if args.only_ours and args.sweep:
        parser.error("--only-ours runs a single size; use --records, not --sweep")
    try:
        if args.only_ours:
            _main_only_ours(args, started)
        else:
            _main_side_by_side(args)
    except PpmlError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


def _main_only_ours(args, started: float) -> None:
    from .parallel import default_workers

    model, records = Model(args.model), Records(args.data)
    public, private, _ = load_or_generate_keys(args)
    with tempfile.TemporaryDirectory(prefix="ppml-bench-") as tmp:
        result = run_ours(args.records, records, model, public, private, args.workers or default_workers(),
                          args.allow_weak_key, Path(tmp))
    del result["features_path"]
    if args.json:
        print(json.dumps(result))
    else:
        result["process_wall_s"] = time.perf_counter() - started
        print("\n".join(render_sweep([result], "ours only, streaming through JSONL files")))


def _main_side_by_side(args) -> None:
    result = benchmark(args)
    print(json.dumps(result, indent=2) if args.json else render(result))
    if args.plot:
        s = result["settings"]
        plot_sweep(result["sweep"], args.plot,
                   f"ppml, {s['key_bits']}-bit key, {s['workers']} workers, m = {s['slots']}, "
                   f"load average at start {_load(s)}")


if __name__ == "__main__":
    sys.exit(main())
