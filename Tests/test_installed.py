"""The installed toolkit outside a checkout: build a wheel, install it (not editable) into a
fresh virtual environment, and run the three console scripts with no arguments in an empty
folder, as the README's first command does in the repository; then the service benchmark."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv

import pytest
from conftest import ROOT

# Building the wheel and installing it with its dependencies (from pip's cache) takes about a
# minute on 2 shared cores; the bound is generous so that a slow machine does not fail the test.
INSTALL_TIMEOUT = 900


def _run(args, cwd, timeout=INSTALL_TIMEOUT):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, f"{args}: {out.stdout[-2000:]}{out.stderr[-4000:]}"
    return out


def test_defaults_use_the_current_folder_only_when_it_holds_a_model(tmp_path, monkeypatch):
    from ppml import bundled

    monkeypatch.chdir(tmp_path)
    assert (bundled.laptop_model_dir() / "col_tnf.pkl").is_file()
    assert bundled.default_model_dir() == str(bundled.laptop_model_dir())
    assert bundled.default_params_dir() == str(bundled.laptop_model_dir() / "Encrypted_ModelParameters")
    (tmp_path / "Encrypted_ModelParameters").mkdir()
    assert bundled.default_params_dir() == "Encrypted_ModelParameters"
    assert bundled.default_model_dir() == str(bundled.laptop_model_dir())  # no Model.json, no col_tnf.pkl
    (tmp_path / "col_tnf.pkl").write_bytes(b"")
    assert bundled.default_model_dir() == "."  # a broken model here is reported, not replaced


@pytest.mark.slow
def test_console_scripts_work_in_an_empty_folder(tmp_path):
    wheels, env_dir, work = tmp_path / "wheels", tmp_path / "venv", tmp_path / "empty"
    # Built from a copy: setuptools builds in the source tree's build/, where files of earlier
    # builds (a module since moved) would end up in the wheel.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                                                ".*cache", ".hypothesis", "PaillierKeys",
                                                                "Encrypted_Data", "Encrypted_Predicted_value"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(source)], tmp_path)
    (wheel,) = wheels.glob("ppml-*.whl")
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", f"{wheel}[serve]"], tmp_path)  # serve: bench
    work.mkdir()

    where = _run([str(bin_dir / "python"), "-c", "import ppml.bundled as b; print(b.laptop_model_dir())"], work)
    assert str(env_dir) in where.stdout, "the installed package must find its own bundled model"
    _run([str(bin_dir / "ppml-encrypt")], work, timeout=300)
    _run([str(bin_dir / "ppml-score")], work, timeout=300)
    decrypted = _run([str(bin_dir / "ppml-decrypt")], work, timeout=300)
    assert decrypted.stdout == "0: Price = 62,996.92\n"
    assert sorted(p.name for p in work.iterdir()) == ["Encrypted_Data", "Encrypted_Predicted_value", "PaillierKeys"]

    helped = _run([str(bin_dir / "ppml-encrypt"), "--help"], work)
    assert "else the laptop model installed with ppml" in " ".join(helped.stdout.split())

    # Both benchmarks, tiny, on the bundled model and data; the service's runs the installed commands.
    weak = ["--key-size", "1024", "--allow-weak-key", "--workers", "1", "--json"]
    bench = _run([str(bin_dir / "python"), "-m", "ppml.bench", "--records", "12", "--baseline-records", "1", *weak],
                 work, timeout=600)
    assert json.loads(bench.stdout)["ours"]["records"] == 12
    tiny = ["--records", "12", "--clients", "2", "--client-records", "2", "--requests", "1", "--latency-requests", "3"]
    bench = _run([str(bin_dir / "python"), "-m", "ppml.bench", "--service", *tiny, *weak], work, timeout=600)
    figures = json.loads(bench.stdout)
    assert figures["large"]["records"] == 12 and figures["concurrent"]["requests"] == 2
    assert sorted(p.name for p in work.iterdir()) == ["Encrypted_Data", "Encrypted_Predicted_value", "PaillierKeys"]
