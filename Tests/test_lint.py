"""The project's own lint and type configuration (pyproject.toml) holds on the tree: ruff on
everything, mypy on the layers it covers (``[tool.mypy] files``)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT


def _tool(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    pytest.importorskip(module)  # both come with the test extra
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_ruff_is_clean():
    out = _tool("ruff", "check", "--no-cache", ".", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_mypy_is_clean():
    # A cold run checks ppml and what it imports in about half a minute on 2 shared cores.
    out = _tool("mypy", "--no-incremental", timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("Success: no issues found"), out.stdout
