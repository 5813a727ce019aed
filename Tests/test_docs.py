"""The README documents every command and option, and CI runs exactly its test command."""
from __future__ import annotations

import re

import click
import pytest

from conftest import ROOT
from ppml.cli import main

README = (ROOT / "README.md").read_text()


def _commands():
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        yield name, main.get_command(ctx, name)


@pytest.mark.parametrize("name, command", list(_commands()), ids=[n for n, _ in _commands()])
def test_every_option_is_documented(name, command):
    assert name in README
    for param in command.params:
        for opt in param.opts:
            if opt.startswith("--") and opt not in ("--help", "--version"):
                assert opt in README, f"{name} {opt} is not in README.md"
    assert command.help and len(command.help.split()) > 5


def test_readme_opens_with_the_two_set_up_commands_and_ci_runs_the_second():
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    run_all, run_tests = blocks[0].strip(), blocks[1].strip()
    assert README.index(run_all) < README.index("## ")  # before any section
    assert run_all.startswith("python -m pip install . && python CustomerEncrypts.py")
    ci = (ROOT / ".ci" / "run").read_text()
    assert run_tests in ci.splitlines()
    # ... inside a fresh virtual environment, activated before it.
    lines = ci.splitlines()
    venv = next(i for i, line in enumerate(lines) if re.match(r"python3? -m venv ", line))
    activate = next(i for i, line in enumerate(lines) if line.startswith(". ") and "/bin/activate" in line)
    assert venv < activate < lines.index(run_tests)
