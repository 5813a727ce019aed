"""Faults: runs killed with SIGKILL at random moments, two runs writing into one folder, a key
pair cut in half.

The kill test runs a batch of 300 bundled records through the three scripts as real processes
(1024-bit keys, ``--workers 2``), in both document layouts (JSON and JSON Lines). Each stage is
started several times and killed — the whole process group, workers included — after a delay
drawn (seeded) between 0 and 1.1× the time the stage takes uninterrupted. The first stage
starts every trial without keys, so kills also land in key generation. After every kill:

* every output is absent or complete and valid: the key pair loads (a private key alone is
  allowed: the next run rebuilds its public key), a document parses to the end (a JSON Lines
  document has its end line) with all 300 records and valid ciphertexts, the CSV has all 300
  rows — never half a file;
* no file appears that is not a finished output except temporary files named ``.NAME.XXXXXXXX.tmp``,
  which no reader takes for an output (hidden, ``.tmp``);

then the stage is run again, which must succeed and remove the temporary files a killed run
left for its output. At the end the predictions equal, record for record, those of an
uninterrupted run in another folder (different keys and randomness: the same values to 1e-9).
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, model_folder, run_script
from ppml import files
from ppml.documents import EncryptedFeatures, EncryptedPredictions, check_count
from ppml.keystore import KeyStore
from ppml.paillier.keys import PrivateKey
from ppml.streams import DocumentReader

pytestmark = pytest.mark.slow

RECORDS = 300
TRIALS = 4
SEED = 20261123
WEAK = "--allow-weak-key"
WORKERS = ["--workers", "2"]
TEMP = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp")  # AtomicFile's temporary file for NAME


def _layout(jsonl: bool) -> dict:
    ext = "jsonl" if jsonl else "json"
    return {"data": f"Encrypted_Data/data.{ext}", "answer": f"Encrypted_Predicted_value/answer.{ext}",
            "predictions": "predictions.csv"}


def _stages(out: dict) -> list:
    """(name, script, arguments, the output it writes)."""
    return [
        ("encrypt", "CustomerEncrypts.py", ["records.csv", "-o", out["data"], "--key-size", "1024", WEAK, *WORKERS],
         out["data"]),
        ("score", "ServerModelRun.py", [out["data"], "-o", out["answer"], WEAK, *WORKERS], out["answer"]),
        ("decrypt", "CustomerDecrypts.py", [out["answer"], "-o", out["predictions"], WEAK, *WORKERS],
         out["predictions"]),
    ]


def _folder(path: Path) -> Path:
    model_folder(path)
    lines = (ROOT / "Data" / "laptop_data.csv").read_text().splitlines(keepends=True)
    (path / "records.csv").write_text("".join(lines[:RECORDS + 1]))
    return path


def _run(work: Path, script: str, args: list) -> float:
    start = time.perf_counter()
    proc = run_script(script, *args, cwd=work)
    assert proc.returncode == 0, proc.stderr.decode()
    return time.perf_counter() - start


def _kill_at(work: Path, script: str, args: list, delay: float) -> bool:
    """Start the stage, SIGKILL its whole process group after ``delay`` s; True if it was
    still running (False: it had finished)."""
    proc = subprocess.Popen([sys.executable, str(ROOT / script), *args], cwd=work, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def _predictions(path: Path) -> dict:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "prediction"], "a predictions CSV without its header"
    assert len(rows) == RECORDS + 1, f"a predictions CSV with {len(rows) - 1} of {RECORDS} rows"
    return {rid: float(value) for rid, value in rows[1:]}


def _read_document(path: Path, parse_header, parse_batch):
    reader = DocumentReader(path)
    doc = parse_header(reader.header)
    batches = records = 0
    for i, b in enumerate(reader.batches()):  # a JSON Lines file without its end line raises here
        records += len(parse_batch(doc, b, i).ids)
        batches += 1
    check_count(reader.declared_records, batches, records)
    assert records == RECORDS
    return doc


def _check(work: Path, out: dict) -> list:
    """Every output absent or complete and valid; returns the temporary files left over."""
    keys = work / "PaillierKeys"
    public_path, private_path = keys / "public_key.json", keys / "private_key.json"
    assert private_path.exists() or not public_path.exists(), "a public key without its private key"
    public = None
    if public_path.exists():
        public = KeyStore(keys).load_private(allow_weak=True).public
    elif private_path.exists():  # checked in memory: the next run writes the public key
        PrivateKey.restore(json.loads(private_path.read_text()))
    data, answer, predictions = (work / out[k] for k in ("data", "answer", "predictions"))
    if data.exists():
        _read_document(data, lambda h: EncryptedFeatures.parse_header(h, allow_weak=True),
                       lambda doc, b, i: doc.parse_batch(b, i))
    if answer.exists():
        assert public is not None
        _read_document(answer, lambda h: EncryptedPredictions.parse_header(h, public),
                       lambda doc, b, i: doc.parse_batch(b, i, public))
    if predictions.exists():
        _predictions(predictions)
    finished = {work / out[k] for k in out} | {public_path, private_path}
    leftovers = []
    for folder, _, names in os.walk(work):
        for name in names:
            path = Path(folder, name)
            if path in finished or path.suffix in (".pkl", ".csv") and path.parent == work:
                continue
            if path.parent == work / "Encrypted_ModelParameters":
                continue
            assert TEMP.fullmatch(name), f"unexpected file after a kill: {path.relative_to(work)}"
            leftovers.append(path.relative_to(work))
    return leftovers


@pytest.mark.parametrize("jsonl", [False, True], ids=["json", "jsonl"])
def test_killed_stages_leave_complete_outputs_or_none(tmp_path, jsonl):
    out = _layout(jsonl)
    stages = _stages(out)
    reference = _folder(tmp_path / "reference")
    took = {name: _run(reference, script, args) for name, script, args, _ in stages}
    expected = _predictions(reference / out["predictions"])

    work = _folder(tmp_path / "work")
    rng = random.Random(SEED + jsonl)
    report = []
    for name, script, args, output in stages:
        for trial in range(TRIALS):
            if name == "encrypt":  # kills may then land in key generation too
                shutil.rmtree(work / "PaillierKeys", ignore_errors=True)
            delay = rng.uniform(0.0, 1.1 * took[name])
            killed = _kill_at(work, script, args, delay)
            keys = sorted(p.name[0:-9] for p in (work / "PaillierKeys").glob("*_key.json"))
            left = _check(work, out)
            _run(work, script, args)  # a later run is not confused by what the kill left
            after = _check(work, out)
            assert not [p for p in after if TEMP.fullmatch(p.name)[1] == Path(output).name], \
                "the re-run left the killed run's temporary files for its output"
            report.append(f"{name} #{trial}: {'killed' if killed else 'finished'} at {delay:.2f}s of "
                          f"{took[name]:.2f}s; keys {'+'.join(keys) or 'none'}; "
                          f"left {', '.join(map(str, left)) or 'nothing'}; "
                          f"after the re-run {', '.join(map(str, after)) or 'nothing'}")
    print("\n".join(report))

    got = _predictions(work / out["predictions"])
    assert list(got) == list(expected)
    assert max(abs(math.log(got[k]) - math.log(expected[k])) for k in expected) <= 1e-9
    # … from other ciphertexts (other keys, fresh randomness).
    assert (work / out["answer"]).read_bytes() != (reference / out["answer"]).read_bytes()


def _opens(pid: int, folder: Path, timeout: float = 120) -> bool:
    """Whether process ``pid`` opens ``folder`` (as it does to lock it) within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(os.readlink(fd) == str(folder) for fd in Path(f"/proc/{pid}/fd").iterdir()):
                return True
        except OSError:  # an fd closed while we looked, or the process ended
            pass
        time.sleep(0.01)  # the polling interval only: nothing is assumed about how long it takes
    return False


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc to see the run's open folder")
def test_a_second_run_into_the_same_folder_waits_for_the_first(tmp_path):
    work = _folder(tmp_path / "work")
    _run(work, "CustomerEncrypts.py", ["--key-size", "1024", WEAK])
    answer = work / "Encrypted_Predicted_value" / "answer.json"
    with files.output_lock(answer):  # a first run, busy writing into Encrypted_Predicted_value/
        proc = subprocess.Popen([sys.executable, str(ROOT / "ServerModelRun.py"), WEAK], cwd=work,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The second run has reached the lock (it holds the folder open) and, while we hold it,
        # neither finishes nor writes.
        reached = _opens(proc.pid, answer.parent.resolve())
        waiting = proc.poll() is None
        written_meanwhile = answer.exists()
    _, stderr = proc.communicate(timeout=120)
    assert reached, "the second run never tried to lock the output folder: " + stderr.decode()
    assert waiting and not written_meanwhile, "the second run did not wait for the lock"
    assert proc.returncode == 0, stderr.decode()
    EncryptedPredictions.from_dict(json.loads(answer.read_text()), KeyStore(work / "PaillierKeys").load_public(True))


def test_a_private_key_whose_public_key_was_lost_is_completed(tmp_path):
    """What a run killed between writing the two key files leaves: the next run rebuilds the
    public key from the private one (same fingerprint) instead of refusing to work."""
    work = _folder(tmp_path / "work")
    _run(work, "CustomerEncrypts.py", ["--key-size", "1024", WEAK])
    keys = work / "PaillierKeys"
    fingerprint = json.loads((keys / "public_key.json").read_text())["fingerprint"]
    (keys / "public_key.json").unlink()
    _run(work, "CustomerEncrypts.py", [WEAK])
    assert json.loads((keys / "public_key.json").read_text())["fingerprint"] == fingerprint
    _run(work, "ServerModelRun.py", [WEAK])
    proc = run_script("CustomerDecrypts.py", WEAK, cwd=work)
    assert proc.returncode == 0 and proc.stdout.decode().startswith("0: Price = ")
