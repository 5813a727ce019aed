"""Pools of precomputed randomness (``python -m ppml precompute``): values taken out durably
before use, never used twice (even by a run killed midway), never used under another key."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import gmpy2
import pytest
from click.testing import CliRunner

from ppml import pools
from ppml.cli import main
from ppml.errors import DocumentError, KeyFileError, KeyMismatchError

from conftest import ROOT, TEST_KEY_BITS, key_folder

WEAK = "--allow-weak-key"


def _pool(tmp_path, keypair, kind=pools.CUSTOMER_KIND, name="pool.bin"):
    return pools.RandomnessPool(tmp_path / "keys" / name, keypair[0], kind)


def test_take_removes_values_from_the_end_before_returning_them(tmp_path, keypair):
    pool = _pool(tmp_path, keypair)
    assert pool.count() == 0 and pool.take(3) == []
    values = [gmpy2.mpz(v) for v in (2, 3, int(keypair[0].n_sq) - 1, 12345)]
    assert pool.add(values) == 4
    assert (os.stat(pool.path).st_mode & 0o777) == 0o600
    assert (os.stat(pool.path.parent).st_mode & 0o777) == 0o700
    assert pool.take(3) == values[1:]
    assert pool.count() == 1
    assert pool.take(5) == values[:1]  # fewer than asked: all there is
    assert pool.take(1) == [] and pool.count() == 0
    pool.add(values[:2])
    assert pool.count() == 2 and pool.take(2) == values[:2]


def test_a_pool_for_another_key_is_refused(tmp_path, keypair, other_keypair):
    _pool(tmp_path, keypair).add([5, 6])
    theirs = _pool(tmp_path, other_keypair)
    for operation in (theirs.count, lambda: theirs.take(1), lambda: theirs.add([7])):
        with pytest.raises(KeyMismatchError) as e:
            operation()
        assert e.value.message == (f"holds randomness for key {keypair[0].fingerprint[:23]}…, not for "
                                   f"{other_keypair[0].fingerprint[:23]}…; delete it (and precompute again "
                                   "for this key)")
    assert _pool(tmp_path, keypair).count() == 2  # untouched


def test_a_readable_or_damaged_pool_is_refused(tmp_path, keypair):
    pool = _pool(tmp_path, keypair)
    pool.add([5, 6])
    os.chmod(pool.path, 0o644)
    with pytest.raises(KeyFileError) as e:
        pool.take(1)
    assert e.value.message == (f"permissions 0644 are too open: a randomness pool must be readable by its owner "
                               f"only (chmod 600 {pool.path})") and e.value.source == str(pool.path)
    os.chmod(pool.path, 0o600)
    with open(pool.path, "ab") as f:
        f.write(b"x")
    with pytest.raises(DocumentError) as e:
        pool.take(1)
    assert e.value.message == "is damaged (its length is not a whole number of values); delete it"
    with open(pool.path, "r+b") as f:  # a whole value of zeros
        f.truncate(os.path.getsize(pool.path) - 1 - pool.value_bytes)
        f.seek(0, 2)
        f.write(bytes(pool.value_bytes))
    with pytest.raises(DocumentError) as e:
        pool.take(1)
    assert e.value.message == "holds a value out of range for its key; delete it"
    server = _pool(tmp_path, keypair, pools.SERVER_KIND)
    with pytest.raises(DocumentError) as e:
        server.count()
    assert e.value.message == "holds 'djn-zero' values of version 1, expected 'server-noise' version 1"


# ---------------------------------------------------------------------------------------------
# Through the commands
# ---------------------------------------------------------------------------------------------
def _records(stage_dir, bundled_raw, n):
    bundled_raw.drop(columns=["Price"]).head(n).to_csv(stage_dir / "r.csv", index=False)
    return str(stage_dir / "r.csv")


def _masks_of(document: str, private) -> list:
    """The randomness of every ciphertext of an encrypted-features document: ``c / (1 + P·n)``."""
    public = private.public
    masks = []
    for line in open(document, encoding="utf-8"):
        d = json.loads(line)
        for c in d.get("ciphertexts", ()):
            c = gmpy2.mpz(c, 16)
            masks.append(c * gmpy2.invert(1 + private.raw_decrypt(c) * public.n, public.n_sq) % public.n_sq)
    return masks


def _pool_values(path, public) -> set:
    pool = pools.RandomnessPool(path, public, pools.CUSTOMER_KIND)
    with open(path, "rb") as f:
        f.readline()
        data = f.read()
    size = pool.value_bytes
    return {gmpy2.mpz(int.from_bytes(data[i:i + size], "big")) for i in range(0, len(data), size)}


def test_precompute_then_encrypt_uses_the_pool_and_predictions_are_unchanged(stage_dir, keypair, bundled_raw):
    public, private = keypair
    keys = key_folder(stage_dir / "K", keypair)
    records = _records(stage_dir, bundled_raw, 30)
    runner = CliRunner()
    m = 11  # 1024-bit key, the laptop model's 93-bit slots

    done = runner.invoke(main, ["precompute", "--keys", str(keys), "--records", "25", WEAK, "-j", "1"])
    assert done.exit_code == 0, done.output
    assert f"djn_pool.bin: 126 values (added 126; 42 per batch of {m} records)" in done.output
    before = _pool_values(keys / pools.CUSTOMER_POOL_NAME, public)
    again = runner.invoke(main, ["precompute", "--keys", str(keys), "--records", "20", WEAK, "-j", "1"])
    assert "126 values (added 0;" in again.output

    done = runner.invoke(main, ["encrypt", records, "-o", "d.jsonl", "--keys", str(keys), WEAK, "-j", "1"])
    assert done.exit_code == 0, done.output
    used = _masks_of("d.jsonl", private)
    assert len(used) == 3 * 42 and len(set(used)) == len(used)
    assert set(used) == before  # all three batches drew from the pool, all of it
    assert pools.customer_pool(keys, public).count() == 0

    # An empty pool: fresh randomness; the answers decrypt to the same predictions either way.
    assert runner.invoke(main, ["encrypt", records, "-o", "fresh.jsonl", "--keys", str(keys), WEAK]).exit_code == 0
    assert not set(_masks_of("fresh.jsonl", private)) & before
    for doc in ("d.jsonl", "fresh.jsonl"):
        scored = runner.invoke(main, ["score", doc, "-o", f"a-{doc}", "--params", str(ROOT / "Encrypted_ModelParameters"),
                                      WEAK])
        assert scored.exit_code == 0, scored.output
        assert runner.invoke(main, ["decrypt", f"a-{doc}", "-o", f"p-{doc}.csv", "--keys", str(keys),
                                    WEAK]).exit_code == 0
    assert (stage_dir / "p-d.jsonl.csv").read_text() == (stage_dir / "p-fresh.jsonl.csv").read_text()


def test_encrypting_with_a_pool_for_another_key_fails_with_status_4(stage_dir, keypair, other_keypair, bundled_raw):
    keys = key_folder(stage_dir / "K", keypair)
    pools.customer_pool(keys, other_keypair[0]).add([5])
    done = CliRunner().invoke(main, ["encrypt", _records(stage_dir, bundled_raw, 3), "-o", "d.jsonl", "--keys",
                                     str(keys), WEAK])
    assert done.exit_code == 4
    assert done.output.strip().endswith(f"djn_pool.bin: holds randomness for key "
                                        f"{other_keypair[0].fingerprint[:23]}…, not for "
                                        f"{keypair[0].fingerprint[:23]}…; delete it (and precompute again for "
                                        "this key)")
    assert not (stage_dir / "d.jsonl").exists()


def test_no_output_may_replace_the_pool(stage_dir, keypair, bundled_raw):
    keys = key_folder(stage_dir / "K", keypair)
    pools.customer_pool(keys, keypair[0]).add([5])
    target = str(keys / pools.CUSTOMER_POOL_NAME)
    done = CliRunner().invoke(main, ["encrypt", _records(stage_dir, bundled_raw, 3), "-o", target, "--keys",
                                     str(keys), WEAK])
    assert done.exit_code == 1
    assert done.output.strip().endswith(f"Error: {target}: is the randomness pool; refusing to overwrite it "
                                        "(choose another output)")
    assert pools.customer_pool(keys, keypair[0]).count() == 1


def test_the_server_pool_supplies_each_answer_once(stage_dir, keypair, bundled_raw):
    public, private = keypair
    keys = key_folder(stage_dir / "K", keypair)
    runner = CliRunner()
    records = _records(stage_dir, bundled_raw, 30)
    assert runner.invoke(main, ["encrypt", records, "-o", "d.jsonl", "--keys", str(keys), WEAK]).exit_code == 0
    params = str(ROOT / "Encrypted_ModelParameters")
    done = runner.invoke(main, ["precompute", "--server", "--public-key", str(keys / "public_key.json"), "--pools",
                                "NP", "--records", "25", "--model", str(ROOT), WEAK, "-j", "1"])
    assert done.exit_code == 0, done.output
    pool = pools.server_pool("NP", public)
    assert pool.count() == 3 and (os.stat(pool.path).st_mode & 0o777) == 0o600
    noises = set(pool.take(3))
    pool.add(sorted(noises))

    for name in ("a1.jsonl", "a2.jsonl"):  # three answers: from the pool; then three fresh ones
        done = runner.invoke(main, ["score", "d.jsonl", "-o", name, "--params", params, "--pools", "NP", WEAK])
        assert done.exit_code == 0, done.output
        assert runner.invoke(main, ["decrypt", name, "-o", name + ".csv", "--keys", str(keys), WEAK]).exit_code == 0
    assert pool.count() == 0
    assert (stage_dir / "a1.jsonl.csv").read_text() == (stage_dir / "a2.jsonl.csv").read_text()


def test_precompute_usage_errors(stage_dir):
    runner = CliRunner()
    done = runner.invoke(main, ["precompute", "--server", "--records", "5", "--model", str(ROOT)])
    assert done.exit_code == 2 and "Error: --server needs --public-key FILE (the customer's public key)" in done.output
    done = runner.invoke(main, ["precompute", "--pools", "NP", "--records", "5", "--model", str(ROOT)])
    assert done.exit_code == 2 and "Error: --public-key and --pools are for --server" in done.output


def test_a_pooled_encryption_killed_midway_never_lets_a_value_be_used_twice(stage_dir, keypair, bundled_raw):
    """The first run reads records from a pipe that stays open; once it has taken values out of
    the pool it is killed (SIGKILL). The second run encrypts everything: none of the values the
    first run took appears in its output, no value appears twice, and what it used came out of
    the pool."""
    public, private = keypair
    keys = key_folder(stage_dir / "K", keypair)
    path = keys / pools.CUSTOMER_POOL_NAME
    import pandas as pd

    records = pd.concat([bundled_raw.drop(columns=["Price"])] * 2).head(2600)
    records.insert(0, "id", range(len(records)))
    m, chunk = 11, 11 * 64  # records per batch; records the stage reads per chunk (one draw per chunk)
    pools.fill(pools.customer_pool(keys, public), 3 * 64 * 42, private)
    everything = _pool_values(path, public)

    first = subprocess.Popen([sys.executable, "-m", "ppml", "encrypt", "-", "-o", "d.jsonl", "--keys", str(keys),
                              WEAK, "-j", "1"], cwd=stage_dir, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # Three chunks (past the 256 KiB the CSV reader asks for at once), and the pipe stays open.
        first.stdin.write(records.head(3 * chunk).to_csv(index=False).encode())
        first.stdin.flush()
        deadline = time.monotonic() + 120
        while _pool_values(path, public) == everything and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    left = _pool_values(path, public)
    taken = everything - left
    assert len(taken) % (64 * 42) == 0 and taken  # whole chunks' draws, gone with the killed run
    assert not (stage_dir / "d.jsonl").exists()

    records.to_csv(stage_dir / "all.csv", index=False)
    done = CliRunner().invoke(main, ["encrypt", "all.csv", "-o", "d.jsonl", "--keys", str(keys), WEAK, "-j", "1"])
    assert done.exit_code == 0, done.output
    used = _masks_of(str(stage_dir / "d.jsonl"), private)
    assert len(used) == -(-2600 // m) * 42 and len(set(used)) == len(used)
    assert not set(used) & taken
    pooled = set(used) & everything
    assert pooled == left  # the rest of the pool, used once each; then fresh randomness
    assert _pool_values(path, public) == set()
