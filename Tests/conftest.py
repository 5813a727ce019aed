"""Shared fixtures. Keys are 1024-bit (``allow_weak``) so that the suite stays fast: the
security of the size is irrelevant to what these tests check; 3072-bit figures come from the
benchmark."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The public laptop data set, beside this checkout (or beside the folder of worktrees).
PUBLIC_LAPTOPS = next((p for p in (ROOT.parent / "shared" / "data" / "laptop_data.csv",
                                   ROOT.parent.parent / "shared" / "data" / "laptop_data.csv") if p.exists()),
                      ROOT.parent / "shared" / "data" / "laptop_data.csv")
TEST_KEY_BITS = 1024


@pytest.fixture(scope="session")
def keypair():
    from ppml.paillier import generate_keypair

    return generate_keypair(TEST_KEY_BITS, allow_weak=True)


@pytest.fixture(scope="session")
def other_keypair():
    from ppml.paillier import generate_keypair

    return generate_keypair(TEST_KEY_BITS, allow_weak=True)


@pytest.fixture(scope="session")
def bundled_raw():
    """The committed synthetic laptop data (raw columns, strings)."""
    import pandas as pd

    return pd.read_csv(ROOT / "Data" / "laptop_data.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def pipeline():
    from ppml.artifacts import PIPELINE, load_pickle

    return load_pickle(ROOT / PIPELINE)


@pytest.fixture(scope="session")
def col_tnf():
    from ppml.artifacts import COL_TNF, load_customer_transform

    return load_customer_transform(ROOT / COL_TNF)


@pytest.fixture(scope="session")
def params():
    from ppml.artifacts import PARAMS_DIR, load_parameters

    return load_parameters(ROOT / PARAMS_DIR)


@pytest.fixture
def stage_dir(tmp_path, monkeypatch):
    """A customer's working folder: the model's public files (``col_tnf.pkl`` and
    ``Encrypted_ModelParameters/Model.json``, as the company publishes them), nothing else."""
    import shutil

    (tmp_path / "Encrypted_ModelParameters").mkdir()
    shutil.copy(ROOT / "Encrypted_ModelParameters" / "Model.json", tmp_path / "Encrypted_ModelParameters")
    shutil.copy(ROOT / "col_tnf.pkl", tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def key_folder(folder: Path, keypair) -> Path:
    """``keypair`` written as a customer's key folder (``PaillierKeys`` layout)."""
    from ppml import files

    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    public, private = keypair
    files.atomic_write_bytes(folder / "private_key.json", files.dump_json(private.to_dict()).encode(), 0o600)
    files.atomic_write_bytes(folder / "public_key.json", files.dump_json(public.to_dict()).encode(), 0o644)
    return folder


def encrypted_document(raw, keypair, col_tnf, spec, folder: Path) -> dict:
    """The encrypted-features document of ``raw`` records (ids 0…), as ``stages.encrypt``
    writes it."""
    import json

    from ppml import stages
    from ppml.keystore import KeyStore

    folder.mkdir(parents=True, exist_ok=True)
    raw.to_csv(folder / "records.csv", index=False)
    keys = stages.CustomerKeys(KeyStore(key_folder(folder / "keys", keypair)), allow_weak=True)
    stages.encrypt(str(folder / "records.csv"), str(folder / "data.json"), spec=spec, col_tnf=col_tnf, keys=keys)
    return json.loads((folder / "data.json").read_text())


def run_script(name: str, *args: str, cwd=None, stdin: bytes | None = None):
    """Run one of the three root scripts as its own process."""
    import subprocess

    return subprocess.run([sys.executable, str(ROOT / name), *args], cwd=cwd, input=stdin,
                          capture_output=True, timeout=300)


_PROBE = """
import runpy, sys
sys.path.insert(0, {root!r})  # as `python script.py` does
sys.argv = {argv!r}
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as e:
    assert not e.code, e.code
print(sorted(m for m in ("pandas", "sklearn", "scipy", "numpy") if m in sys.modules))
"""


def imported_heavy_modules(script: str, argv, cwd) -> str:
    """Which of pandas, scikit-learn, SciPy and numpy a real run of a root script loads, as the
    printed sorted list (``"[]"`` for none)."""
    import subprocess

    code = _PROBE.format(argv=[script, *argv], script=str(ROOT / script), root=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


class PpmlServer:
    """``python -m ppml ARGS`` (``serve`` or ``portal``) as a real process in ``folder``, on
    127.0.0.1, up once it prints its "running on URL" line (within ``timeout`` seconds);
    :meth:`stop` ends it by its process id."""

    def __init__(self, folder, *args: str, timeout: float = 120):
        import re
        import subprocess
        import time

        self.proc = subprocess.Popen([sys.executable, "-m", "ppml", *args], cwd=folder, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.log: list = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
            if m:
                self.url = m.group(1)
                return
        self.stop()
        raise AssertionError(f"ppml {args[0]} did not start: " + "".join(self.log))

    def stop(self, sig=None, timeout: float = 20):
        """Send ``sig`` (SIGTERM by default), wait up to ``timeout`` s, then kill; the exit status."""
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def dataset_frame(load, n: int | None = None):
    """A data set that ships with scikit-learn as a data scientist's frame ``(X, y)``; ``n``
    takes that many rows spread over all of them (and so over every class)."""
    import numpy as np

    X, y = load(return_X_y=True, as_frame=True)
    if n is not None:
        rows = np.linspace(0, len(X) - 1, n).round().astype(int)
        X, y = X.iloc[rows].reset_index(drop=True), y.iloc[rows].reset_index(drop=True)
    return X, y


def mixed_frame(n: int, seed: int, age: bool = True):
    """Categorical and numeric columns as a data scientist's DataFrame (numbers as numbers):
    ``(X, price, label)``, the label ``low``/``mid``/``high`` by price tercile."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    city = rng.choice(["Paris", "Lyon", "Nice", "Brest"], n, p=[0.45, 0.3, 0.2, 0.05])
    kind = rng.choice(["flat", "house"], n)
    size = rng.uniform(15, 250, n).round(1)
    rooms = rng.integers(1, 8, n)
    columns = {"city": city, "kind": kind, "size": size, "rooms": rooms}
    price = 2000 + 40 * size + 3000 * rooms + np.where(city == "Paris", 9000, 0) + np.where(kind == "house", 5000, 0)
    if age:
        columns["age"] = rng.uniform(0, 120, n)
        price = price - 20 * columns["age"]
    price = price + rng.normal(0, 800, n)
    label = np.where(price > np.quantile(price, 0.66), "high", np.where(price > np.quantile(price, 0.33), "mid", "low"))
    return pd.DataFrame(columns), price, label
