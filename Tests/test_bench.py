"""Smoke tests of the benchmark (``python -m ppml.bench``) with tiny settings.

They check that it runs end to end and reports what it should; speed targets are the
benchmark's own output and are never asserted here (timings depend on the machine).
"""
from __future__ import annotations

import json
import re

import pytest

from ppml import bench

from conftest import ROOT, TEST_KEY_BITS

TINY = ["--records", "40", "--baseline-records", "2", "--key-size", str(TEST_KEY_BITS),
        "--allow-weak-key", "--workers", "1"]


@pytest.fixture
def in_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_side_by_side_report(in_root, capsys):
    assert bench.main(TINY) == 0
    out = capsys.readouterr().out

    for header in ("per record", "original (phe)", "ours", "speed-up", "encrypt (ms)", "score (ms)",
                   "decrypt (ms)", "total, wall (ms)", "features document (B)", "answer document (B)",
                   "max |error| (log price)", "target", "verdict"):
        assert header in out
    assert "original style measured on the first 2 of the 40 records" in out
    assert re.search(r"^end-to-end ratio original/ours: [\d,]+× ", out, re.M)
    assert f"key {TEST_KEY_BITS} bits · α {TEST_KEY_BITS // 2} bits · m = " in out

    assert "each stage against its arithmetic floor (CPU of all processes, 1 worker(s)" in out
    for stage in ("encrypt", "score", "decrypt", "total"):
        assert re.search(rf"^{stage}\s+[\d.]+\s+[\d.]+\s+[\d.]+×\s+[\d.]+\s+[\d.]+\s+[\d.]+×$", out, re.M)
    assert re.search(r"^offline \(pool filling\)\s+[\d.]+\s+[\d.]+\s+[\d.]+×$", out, re.M)
    assert re.search(r"^total CPU ÷ arithmetic floor, no pools\s+≤ 1.15×\s+[\d.]+×\s+(PASS|FAIL)$", out, re.M)
    assert re.search(r"^online CPU per record, both pools filled\s+≤ 0.8 ms\s+[\d.]+ ms\s+(PASS|FAIL)$", out, re.M)
    assert re.search(r"^modulus proof verification \(once per key\)\s+≤ 1,000 ms\s+\d+ ms\s+(PASS|FAIL)$", out, re.M)
    assert re.search(r"^modulus proof generation \(at keygen\)\s+≤ 2,000 ms\s+\d+ ms\s+(PASS|FAIL)$", out, re.M)
    assert re.search(r"^modulus proof, once per key, one process: prove \d+ ms, verify \d+ ms, [\d,]+ bytes", out, re.M)

    errors = re.search(r"^max \|error\| \(log price\)\s+(\S+)\s+(\S+)$", out, re.M)
    original_error, our_error = map(float, errors.groups())
    assert our_error <= 1e-9
    assert original_error <= 1e-9
    assert re.search(r"^max \|error\| vs plaintext model \(ours\).*PASS$", out, re.M)


def test_json_figures(in_root, capsys):
    assert bench.main([*TINY, "--baseline-records", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)

    assert result["settings"]["records"] == 40 and result["settings"]["baseline_records"] == 1
    assert result["ours"]["records"] == 40 and result["original"]["records"] == 1
    assert result["ratio"] == pytest.approx(result["original"]["total_ms"] / result["ours"]["total_ms"])
    assert result["ours"]["max_error"] <= 1e-9
    # With both pools filled the same records give the same answers, and the online stages
    # cost less CPU than without (the arithmetic left is a multiplication per ciphertext and
    # the addition chain); the floors are consistent with what they leave out.
    pooled, floor = result["pooled"], result["floor"]
    assert pooled["max_error"] <= 1e-9
    assert pooled["encrypt_cpu_ms"] < result["ours"]["encrypt_cpu_ms"]
    assert floor["encrypt_pooled_ms"] < floor["encrypt_ms"] and floor["score_pooled_ms"] < floor["score_ms"]
    assert floor["chain_multiplications"] > 0 and floor["offline_ms"] > 0
    assert "parallel" not in result  # one worker: nothing to compare
    # One ciphertext per feature per batch of m records vs one per value: far smaller.
    assert result["ours"]["features_bytes"] < result["original"]["features_bytes"] / 4


def test_streaming_mode_keeps_every_record(in_root, capsys):
    """``--only-ours`` (what each sweep size runs) over more records than the bundled file
    holds, so rows are cycled and several chunks are streamed through files."""
    assert bench.main(["--only-ours", "--json", "--records", "1400", "--key-size", str(TEST_KEY_BITS),
                       "--allow-weak-key", "--workers", "1"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["records"] == 1400
    assert row["max_error"] <= 1e-9
    assert row["peak_self_mb"] > 0


def test_plot_needs_a_sweep(in_root):
    with pytest.raises(SystemExit) as exc:
        bench.main([*TINY, "--plot", "x.png"])
    assert exc.value.code == 2


def test_parallel_efficiency_is_reported_with_several_workers(in_root, capsys):
    assert bench.main(["--records", "30", "--baseline-records", "0", "--key-size", str(TEST_KEY_BITS),
                       "--allow-weak-key", "--workers", "2", "--json"]) == 0
    par = json.loads(capsys.readouterr().out)["parallel"]
    assert par["workers"] == 2 and par["wall_1_s"] > 0 and par["wall_n_s"] > 0
    assert par["speedup"] == pytest.approx(par["wall_1_s"] / par["wall_n_s"])
    assert par["efficiency"] == pytest.approx(par["speedup"] / 2)
