"""Unattended runs: they never hang, never skip work silently, never grow.

Each case runs the scripts as real processes (1024-bit keys, ``--allow-weak-key``, for speed)
and ends with one ``Error:`` line or the right output, nothing left behind, and bounded memory:
a worker killed mid-run, Ctrl-C on a pooled run, an input replaced with an old modification
time, two inputs whose outputs collide, a killed folder run's temporary files, a 200 MB batch,
``/dev/zero``, ``-o`` aimed at model and key files, ``umask 077`` and ``-o -`` into a full disk.
"""
from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, model_folder, run_script

pytestmark = pytest.mark.slow

WEAK = "--allow-weak-key"
PARAMS = ["--params", str(ROOT / "Encrypted_ModelParameters")]
#: Memory a stage may use on a hostile input (its normal peak is well under this).
MAX_RSS_MB = 200


#: Runs a root script and, at exit, writes the process's own peak resident memory (VmHWM, which
#: exec resets; ru_maxrss would include the test runner's pages the child inherited at fork).
PEAK_WRAPPER = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(os.environ["PPML_TEST_PEAK"], "w") as out:
        out.write(str(kb))
atexit.register(_peak)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _script(name: str, *args, cwd, **kwargs) -> subprocess.Popen:
    peak = Path(cwd) / f".peak-{time.monotonic_ns()}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PPML_TEST_PEAK=str(peak))
    proc = subprocess.Popen([sys.executable, "-c", PEAK_WRAPPER, str(ROOT / name), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
    proc.peak_file = peak
    return proc


def _finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str, float]:
    """Exit status, stderr and the process's own peak resident memory in MB. An endless input
    (:func:`_score_endlessly`) stays open: the run must end by itself."""
    try:
        if proc.stdin is None:
            _, stderr = proc.communicate(timeout=timeout)
        else:
            proc.wait(timeout)  # (its stdout is empty and its stderr one line: no pipe fills up)
            stderr = proc.stderr.read()
            proc.feeder.join(timeout)  # it stops at the broken pipe
            with contextlib.suppress(OSError):  # what it had buffered can no longer be delivered
                proc.stdin.close()
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"{proc.args} did not end within {timeout} s") from None
    peak = proc.peak_file.read_text() if proc.peak_file.exists() else "0"
    proc.peak_file.unlink(missing_ok=True)
    return proc.returncode, stderr.decode(), int(peak) / 1024


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _gone(pids, timeout: float = 5) -> bool:
    """Whether every process in ``pids`` has ended (a zombie awaiting its reaper counts as ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z":
                alive.append(pid)
        if not alive:
            return True
        time.sleep(0.05)
    return False


def _unlocked(folder: Path) -> bool:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def work(tmp_path_factory, bundled_raw):
    """A customer folder with keys, the model's public files, 60 records and their documents."""
    folder = model_folder(tmp_path_factory.mktemp("unattended"), public_only=True)
    bundled_raw.iloc[:60].to_csv(folder / "records.csv", index=False)
    for out in ("data.json", "data.jsonl"):
        done = run_script("CustomerEncrypts.py", "records.csv", "-o", out, "--key-size", "1024", WEAK, "-q",
                          cwd=folder)
        assert done.returncode == 0, done.stderr.decode()
    return folder


# ---------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------
def _score_endlessly(work: Path, output: str, **kwargs) -> subprocess.Popen:
    """``ServerModelRun.py -j 2`` on a JSON Lines document from stdin that does not end: a thread
    writes data.jsonl's header, then its batches again and again for as long as the run reads.
    So the run is busy whenever the test acts on it, however slow or loaded the machine."""
    lines = (work / "data.jsonl").read_bytes().splitlines(keepends=True)
    header, batches = lines[0], [json.loads(line) for line in lines[1:-1]]
    proc = _script("ServerModelRun.py", "-", "-o", output, *PARAMS, WEAK, "-q", "-j", "2", cwd=work,
                   stdin=subprocess.PIPE, **kwargs)

    def feed():
        try:
            proc.stdin.write(header)
            for rnd in itertools.count():  # ids stay unique within the document, as the protocol requires
                if proc.poll() is not None:
                    break
                proc.stdin.writelines(json.dumps({**b, "ids": [f"{rnd}-{i}" for i in b["ids"]]}).encode() + b"\n"
                                      for b in batches)
                proc.stdin.flush()
        except (OSError, ValueError):  # the run stopped reading: it ended, or its stdin was closed
            pass

    proc.feeder = threading.Thread(target=feed, daemon=True)
    proc.feeder.start()
    return proc


def _answering(proc, out: Path, count: int = 2, timeout: float = 60) -> list[int]:
    """The run's ``count`` pool workers, once they have scored batches: the answer's temporary
    file in ``out`` holds bytes (so the workers are set up and taking work)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = _children(proc.pid)
        try:
            answered = any(p.stat().st_size for p in out.iterdir())
        except FileNotFoundError:  # a file went away while we looked
            answered = False
        if len(kids) >= count and answered:
            return kids
        if proc.poll() is not None:
            break
        time.sleep(0.05)  # the polling interval only
    raise AssertionError(f"the pool never answered: {proc.stderr.read().decode() if proc.poll() is not None else ''}")


def test_a_killed_worker_fails_the_stage_at_once(work):
    """kill -9 of one pool worker (what the OOM killer does): one Error line, exit 1, within
    seconds, no output, no temporary file, the folder's lock released."""
    out = work / "killed"
    out.mkdir()
    proc = _score_endlessly(work, "killed/answer.jsonl")
    workers = _answering(proc, out)
    os.kill(workers[0], signal.SIGKILL)
    killed_at = time.monotonic()
    status, stderr, _ = _finish(proc)
    assert time.monotonic() - killed_at < 10
    assert (status, stderr) == (1, "Error: a worker process died (killed by a signal, or out of memory); nothing "
                                   "was written\n")
    assert list(out.iterdir()) == [] and _unlocked(out)
    assert _gone(workers)


def test_ctrl_c_on_a_pooled_run_is_one_line(work):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it: workers ignore it,
    the parent stops them and says one line; nothing is left behind."""
    out = work / "interrupted"
    out.mkdir()
    proc = _score_endlessly(work, "interrupted/answer.jsonl", start_new_session=True)
    workers = _answering(proc, out)
    os.killpg(proc.pid, signal.SIGINT)
    status, stderr, _ = _finish(proc)
    assert status == 1 and stderr == "Aborted!\n"
    assert list(out.iterdir()) == [] and _unlocked(out)
    assert _gone(workers)


# ---------------------------------------------------------------------------------------------
# Folder mode by content
# ---------------------------------------------------------------------------------------------
def test_replaced_input_with_an_old_mtime_is_redone(work, bundled_raw, tmp_path):
    (tmp_path / "Encrypted_ModelParameters").mkdir()
    shutil.copy(work / "Encrypted_ModelParameters" / "Model.json", tmp_path / "Encrypted_ModelParameters")
    shutil.copy(work / "col_tnf.pkl", tmp_path)
    shutil.copytree(work / "PaillierKeys", tmp_path / "PaillierKeys")
    (tmp_path / "incoming").mkdir()
    bundled_raw.iloc[:5].to_csv(tmp_path / "incoming" / "x.csv", index=False)
    run = lambda: run_script("CustomerEncrypts.py", "incoming", WEAK, cwd=tmp_path)  # noqa: E731
    assert run().stderr.decode().endswith("encrypt incoming: processed 1, skipped 0, failed 0\n")
    assert run().stderr.decode().endswith("encrypt incoming: processed 0, skipped 1, failed 0\n")
    bundled_raw.iloc[5:9].to_csv(tmp_path / "incoming" / "x.csv", index=False)  # as cp -p / rsync -a would
    old = time.mktime((2000, 1, 1, 0, 0, 0, 0, 0, -1))
    os.utime(tmp_path / "incoming" / "x.csv", (old, old))
    done = run()
    assert done.returncode == 0
    assert done.stderr.decode().endswith("\nencrypt incoming: processed 1, skipped 0, failed 0\n")
    assert json.loads((tmp_path / "Encrypted_Data" / "x.json").read_text())["records"] == 4


def test_inputs_whose_outputs_collide_are_both_refused(work, tmp_path):
    answers = tmp_path / "answers"
    answers.mkdir()
    for name, source in (("a.json", "data.json"), ("a.jsonl", "data.jsonl")):
        done = run_script("ServerModelRun.py", str(work / source), "-o", str(answers / name), *PARAMS, WEAK, "-q",
                          cwd=work)
        assert done.returncode == 0, done.stderr.decode()
    done = run_script("CustomerDecrypts.py", str(answers), "-o", str(tmp_path / "preds"), WEAK, cwd=work)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        f"Error: {answers / 'a.json'}: its output {tmp_path / 'preds' / 'a.csv'} would also be that of "
        f"{answers / 'a.jsonl'}; rename one of them",
        f"Error: {answers / 'a.jsonl'}: its output {tmp_path / 'preds' / 'a.csv'} would also be that of "
        f"{answers / 'a.json'}; rename one of them",
        f"decrypt {answers}: processed 0, skipped 0, failed 2"]
    assert not (tmp_path / "preds" / "a.csv").exists()


def test_a_killed_folder_runs_temporary_files_are_removed(work, tmp_path):
    """What a run killed mid-write leaves (AtomicFile's hidden temporary files) is removed by the
    next run, which then does the work."""
    incoming, out = tmp_path / "in", tmp_path / "out"
    incoming.mkdir()
    out.mkdir()
    shutil.copy(work / "data.json", incoming / "d.json")
    for stale in (".d.json.k1ll3d0x.tmp", ".other.json.abcdefgh.tmp"):
        (out / stale).write_bytes(b'{"format":"ppml.encr')
    done = run_script("ServerModelRun.py", str(incoming), "-o", str(out), *PARAMS, WEAK, cwd=work)
    assert done.returncode == 0
    assert done.stderr.decode().endswith(f"\nscore {incoming}: processed 1, skipped 0, failed 0\n")
    assert sorted(p.name for p in out.iterdir()) == [".ppml-manifest.json", "d.json"]


def test_any_failure_of_one_document_is_reported_and_the_rest_go_on(work, tmp_path, monkeypatch):
    """Not only library errors: an unexpected exception in one document is reported as an
    internal error and the next document is still done."""
    from click.testing import CliRunner

    from ppml import stages
    from ppml.cli.score import score_command

    incoming = tmp_path / "in"
    incoming.mkdir()
    for name in ("a.json", "b.json"):
        shutil.copy(work / "data.json", incoming / name)
    real = stages.score

    def flaky(source, output, **kwargs):
        if Path(source).name == "a.json":
            raise MemoryError("out of memory in a test")
        return real(source, output, **kwargs)

    monkeypatch.setattr(stages, "score", flaky)
    r = CliRunner().invoke(score_command, [str(incoming), "-o", str(tmp_path / "out"), *PARAMS, WEAK, "-q"],
                           catch_exceptions=False)
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [f"Error: {incoming / 'a.json'}: internal error: MemoryError: out of memory in "
                                     "a test", f"score {incoming}: processed 1, skipped 0, failed 1"]
    assert (tmp_path / "out" / "b.json").exists() and not (tmp_path / "out" / "a.json").exists()


# ---------------------------------------------------------------------------------------------
# Bounded reading
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["jsonl", "json"])
def test_a_200_mb_batch_fails_fast_in_bounded_memory(work, tmp_path, layout):
    doc = tmp_path / f"huge.{layout}"
    lines = (work / "data.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    with open(doc, "w") as f:
        if layout == "jsonl":
            f.write(lines[0] + '\n{"ids":[0],"ciphertexts":["' + "f" * 200_000_000 + '"]}\n')
        else:
            del header["layout"]
            f.write(json.dumps(header)[:-1] + ',"batches":[{"ids":[0],"ciphertexts":["' + "f" * 200_000_000 + '"]}]}')
    started = time.monotonic()
    status, stderr, rss = _finish(_script("ServerModelRun.py", str(doc), "-o", "never.json", *PARAMS, WEAK, cwd=work))
    assert status == 3 and rss < MAX_RSS_MB and time.monotonic() - started < 20
    limit = re.search(r"([\d,]+) bytes", stderr).group(1)
    what = "a batch line" if layout == "jsonl" else "a batch"
    assert stderr == (f"Error: {doc}: {what} is longer than the {limit} bytes it can need (raise --max-batch-mb if "
                      "it is genuine)\n")
    assert not (work / "never.json").exists()


def test_dev_zero_fails_fast_in_bounded_memory(work):
    status, stderr, rss = _finish(_script("ServerModelRun.py", "/dev/zero", "-o", "never.json", *PARAMS, WEAK,
                                          cwd=work))
    assert status == 3 and rss < MAX_RSS_MB
    assert stderr.startswith("Error: /dev/zero: ") and len(stderr.splitlines()) == 1
    assert not (work / "never.json").exists()


# ---------------------------------------------------------------------------------------------
# Guarded files, umask, stdout
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script, args, target, what", [
    ("ServerModelRun.py", ["data.json"], "Encrypted_ModelParameters/Coefficients.json", "model"),
    ("ServerModelRun.py", ["data.json"], "Encrypted_ModelParameters/Model.json", "model"),
    ("CustomerEncrypts.py", ["records.csv"], "col_tnf.pkl", "model"),
    ("CustomerEncrypts.py", ["records.csv"], "PaillierKeys/public_key.json", "public"),
    ("CustomerDecrypts.py", ["answer.json"], "PaillierKeys/private_key.json", "private"),
    ("CustomerDecrypts.py", ["answer.json"], "Encrypted_ModelParameters/Model.json", "model"),
    ("CustomerDecrypts.py", ["answer.json"], "link-to-intercept", "model"),
])
def test_outputs_never_replace_model_or_key_files(work, tmp_path, script, args, target, what):
    folder = tmp_path / "site"
    shutil.copytree(work, folder, ignore=shutil.ignore_patterns("killed", "interrupted"))
    for name in ("Coefficients.json", "Intercept.json"):
        shutil.copy(ROOT / "Encrypted_ModelParameters" / name, folder / "Encrypted_ModelParameters")
    os.symlink("Encrypted_ModelParameters/Intercept.json", folder / "link-to-intercept")
    assert run_script("ServerModelRun.py", "data.json", "-o", "answer.json", *PARAMS, WEAK, "-q",
                      cwd=folder).returncode == 0
    params = ["--params", "Encrypted_ModelParameters"] if script == "ServerModelRun.py" else []
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    done = run_script(script, *args, "-o", target, *params, WEAK, cwd=folder)
    shown = target if target != "link-to-intercept" else "Encrypted_ModelParameters/Intercept.json"
    reason = {"model": f"is a model file ({shown}); refusing to overwrite it (choose another output)",
              "public": "is the public key; refusing to overwrite it (choose another output)",
              "private": "is the private key; refusing to overwrite it (choose another output)"}[what]
    assert (done.returncode, done.stderr.decode()) == (1, f"Error: {target}: {reason}\n")
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_outputs_honour_the_umask(work, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "ServerModelRun.py"), "data.json", "-o",
                           str(tmp_path / "answer.json"), *PARAMS, WEAK, "-q"], cwd=work, capture_output=True,
                          preexec_fn=lambda: os.umask(0o077))
    assert done.returncode == 0, done.stderr.decode()
    done = subprocess.run([sys.executable, str(ROOT / "CustomerDecrypts.py"), str(tmp_path / "answer.json"), "-o",
                           str(tmp_path / "predictions.csv"), WEAK, "-q"], cwd=work, capture_output=True,
                          preexec_fn=lambda: os.umask(0o077))
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "answer.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "predictions.csv").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("script, args", [
    ("ServerModelRun.py", ["data.json", *PARAMS]),
    ("CustomerDecrypts.py", ["answer-for-full.json"]),
])
def test_stdout_into_a_full_disk_is_a_failure_not_a_crash(work, script, args):
    if not Path("/dev/full").exists():
        pytest.skip("this system has no /dev/full")
    if script == "CustomerDecrypts.py":
        assert run_script("ServerModelRun.py", "data.json", "-o", "answer-for-full.json", *PARAMS, WEAK, "-q",
                          cwd=work).returncode == 0
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, str(ROOT / script), *args, "-o", "-", WEAK, "-q"], cwd=work,
                              stdout=full, stderr=subprocess.PIPE)
    assert (done.returncode, done.stderr.decode()) == (1, "Error: <stdout>: cannot write: No space left on device\n")
