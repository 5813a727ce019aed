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


#: README.md's sections ("## …"); each command's options are documented in a section that shows
#: how to run it, or among the options every command shares (the "## Commands" section).
SECTIONS = re.split(r"\n(?=## )", README)
SCRIPTS = {"encrypt": "CustomerEncrypts.py", "score": "ServerModelRun.py", "decrypt": "CustomerDecrypts.py"}


def _option(opt: str) -> re.Pattern:
    """``--model`` as a whole option: not the start of ``--model-dir``, not inside ``---``."""
    return re.compile(rf"(?<![\w-]){re.escape(opt)}(?![\w-])")


@pytest.mark.parametrize("name, command", list(_commands()), ids=[n for n, _ in _commands()])
def test_every_option_is_documented_where_its_command_is(name, command):
    runs = [f"python -m ppml {name}", *([SCRIPTS[name]] if name in SCRIPTS else [])]
    own = [s for s in SECTIONS if any(r in s for r in runs)]
    assert own, f"no README section shows how to run {name}"
    shared = next(s for s in SECTIONS if s.startswith("## Commands"))
    for param in command.params:
        for opt in param.opts:
            if opt.startswith("--") and opt not in ("--help", "--version"):
                assert any(_option(opt).search(s) for s in [*own, shared]), \
                    f"{name} {opt} is not documented beside `{runs[0]}` in README.md"
    assert command.help and len(command.help.split()) > 5


def test_the_option_check_can_fail():
    assert not _option("--model").search("use --model-dir DIR")
    assert _option("--model").search("`--model DIR`")


def test_readme_opens_with_the_two_set_up_commands_and_ci_runs_the_second():
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    run_all, run_tests = blocks[0].strip(), blocks[1].strip()
    assert README.index(run_all) < README.index("## ")  # before any section
    assert run_all.startswith("python -m pip install . && python CustomerEncrypts.py")
    ci = (ROOT / ".ci" / "run").read_text()
    lines = ci.splitlines()
    assert run_tests in lines
    # ... inside a fresh virtual environment, activated before it.
    activate = next(i for i, line in enumerate(lines) if line.startswith(". ") and "/bin/activate" in line)
    assert re.search(r'-m venv "\$venv"', ci) and activate < lines.index(run_tests)


def test_ci_runs_the_floor_python_and_the_newest():
    """The floor ``requires-python`` claims is the lowest version CI runs, and the README's."""
    floor = re.search(r'^requires-python = ">=(3\.\d+)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    ci = (ROOT / ".ci" / "run").read_text()
    assert f'low="$(find_python {floor} ' in ci and 'high="$(find_python 3.13 ' in ci
    assert 'run low "$low" installed' in ci and 'run high "$high" checkout' in ci
    assert f"Python {floor}+" in README.split("## ")[0]


def test_every_test_the_readme_names_exists():
    """The README backs its claims with tests named beside them: each name must be a test."""
    sources = [f.read_text() for f in (ROOT / "Tests").glob("test_*.py")]
    defined = {m for text in sources for m in re.findall(r"^def (test_\w+)", text, re.M)}
    files = {f.stem for f in (ROOT / "Tests").glob("test_*.py")}
    named = set(re.findall(r"`(?:Tests/)?(test_\w+)(?:\.py)?`", README)) | set(re.findall(r"\b(test_\w+)`", README))
    assert named, "the README names no test"
    assert not named - defined - files, f"the README names tests that do not exist: {sorted(named - defined - files)}"
