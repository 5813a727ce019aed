"""No stage pays for imports it does not use: checked by the modules a real run loads (speed
itself is measured by the benchmark, not asserted here)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import ROOT, imported_heavy_modules

pytestmark = pytest.mark.slow


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
    loaded = imported_heavy_modules("ServerModelRun.py", ["--params", str(ROOT / "Encrypted_ModelParameters"),
                                           "--allow-weak-key", "-q", "-j", "1"], answered)
    assert loaded == "[]"


def test_decryption_imports_nothing_heavy(answered):
    imported_heavy_modules("ServerModelRun.py", ["--params", str(ROOT / "Encrypted_ModelParameters"),
                                                 "--allow-weak-key", "-q"],
            answered)
    assert imported_heavy_modules("CustomerDecrypts.py", ["--model", str(ROOT), "--allow-weak-key", "-q"],
                                  answered) == "[]"


@pytest.mark.parametrize("script", ["CustomerEncrypts.py", "ServerModelRun.py", "CustomerDecrypts.py"])
def test_help_imports_nothing_heavy(script, tmp_path):
    assert imported_heavy_modules(script, ["--help"], tmp_path) == "[]"


def test_encryption_needs_no_scikit_learn(answered):
    loaded = imported_heavy_modules("CustomerEncrypts.py", ["--model", str(ROOT), "--allow-weak-key", "-q", "-o",
                                                            "again.json"],
                     answered)
    assert "sklearn" not in loaded and "scipy" not in loaded
