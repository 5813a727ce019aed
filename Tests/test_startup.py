"""No stage pays for imports it does not use: checked by the modules a real run loads (speed
itself is measured by the benchmark, not asserted here)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import ROOT

PROBE = """
import runpy, sys
sys.path.insert(0, {root!r})  # as `python script.py` does
sys.argv = {argv!r}
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as e:
    assert not e.code, e.code
print(sorted(m for m in ("pandas", "sklearn", "scipy", "numpy") if m in sys.modules))
"""


def _loaded(script, argv, cwd):
    code = PROBE.format(argv=[script, *argv], script=str(ROOT / script), root=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def answered(tmp_path_factory):
    from ppml.cli.encrypt import encrypt_command

    folder = tmp_path_factory.mktemp("startup")
    import os

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        r = CliRunner().invoke(encrypt_command, ["--model", str(ROOT), "--key-size", "1024", "--allow-weak-key"])
        assert r.exit_code == 0, r.output
    finally:
        os.chdir(cwd)
    return folder


def test_server_scores_without_pandas_sklearn_or_numpy(answered):
    loaded = _loaded("ServerModelRun.py", ["--params", str(ROOT / "Encrypted_ModelParameters"),
                                           "--allow-weak-key", "-q", "-j", "1"], answered)
    assert loaded == "[]"


def test_decryption_imports_nothing_heavy(answered):
    _loaded("ServerModelRun.py", ["--params", str(ROOT / "Encrypted_ModelParameters"), "--allow-weak-key", "-q"],
            answered)
    assert _loaded("CustomerDecrypts.py", ["--model", str(ROOT), "--allow-weak-key", "-q"], answered) == "[]"


@pytest.mark.parametrize("script", ["CustomerEncrypts.py", "ServerModelRun.py", "CustomerDecrypts.py"])
def test_help_imports_nothing_heavy(script, tmp_path):
    assert _loaded(script, ["--help"], tmp_path) == "[]"


def test_encryption_needs_no_scikit_learn(answered):
    loaded = _loaded("CustomerEncrypts.py", ["--model", str(ROOT), "--allow-weak-key", "-q", "-o", "again.json"],
                     answered)
    assert "sklearn" not in loaded and "scipy" not in loaded
