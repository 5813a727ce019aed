"""The layers of docs/architecture.md hold: no module imports a module of a higher layer, and
the extra rules (the cryptography, the service, click) are kept. Imports are read with ``ast``,
so lazy imports inside functions count too."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "ppml"
DOC = (ROOT / "docs" / "architecture.md").read_text()


def _layers() -> dict[str, int]:
    """First part of a ppml module name (``paillier``, ``stages``…) → its layer, from the table."""
    layers = {}
    for number, names in re.findall(r"^\| (\d) \| ([^|]+) \|", DOC, re.M):
        for name in re.findall(r"`([\w.]+)`", names):
            layers[name] = int(number)
    return layers


LAYERS = _layers()


def _module(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every module ``path`` (under ``root``) imports, absolute: relative imports resolved,
    ``from . import x`` gives ``package.x``."""
    module = _module(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if not node.level:
                found.add(node.module)
                continue
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            if node.module:
                found.add(".".join([*base, node.module]))
            else:
                found.update(".".join([*base, alias.name]) for alias in node.names)
    return found


def _layer_of(module: str) -> int | None:
    """The layer of a ppml module (None for the package itself, whose __init__ imports nothing)."""
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_table_names_every_module_once():
    top = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in SOURCES} - {"__init__"}
    assert set(LAYERS) == top, f"not in docs/architecture.md: {top - set(LAYERS)}; gone: {set(LAYERS) - top}"


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_no_module_imports_a_higher_layer(path):
    own = _layer_of(_module(path))
    if own is None:
        return
    upward = sorted(m for m in imports(path) if m.startswith("ppml.") and (_layer_of(m) or 0) > own)
    assert not upward, f"{_module(path)} (layer {own}) imports {upward}"


def _third_party(path: Path) -> set[str]:
    return {m.split(".")[0] for m in imports(path) if not m.startswith("ppml")}


def test_the_cryptography_imports_no_documents_files_or_frameworks():
    for path in (PACKAGE / "paillier").rglob("*.py"):
        ours = {m for m in imports(path) if m.startswith("ppml.") and not m.startswith("ppml.paillier")}
        assert ours <= {"ppml.errors", "ppml.validation"}, f"{path.name} imports {ours}"
        banned = _third_party(path) & {"pandas", "sklearn", "scipy", "click", "starlette", "httpx", "jinja2"}
        assert not banned, f"{path.name} imports {banned}"


def test_the_service_imports_no_portal_client_or_stages():
    for path in (PACKAGE / "service").rglob("*.py"):
        wrong = {m for m in imports(path)
                 if m.startswith(("ppml.portal", "ppml.client", "ppml.stages", "ppml.folders", "ppml.cli"))}
        assert not wrong, f"service/{path.name} imports {wrong}"


def test_only_the_command_line_imports_click():
    users = [str(p.relative_to(ROOT)) for p in SOURCES if "click" in _third_party(p)]
    assert users and all(u.startswith("ppml/cli/") for u in users), users


def test_the_check_sees_lazy_and_relative_imports(tmp_path):
    """What the tests rely on: an import inside a function is found and a relative one resolved,
    so a lower layer reaching up lazily is caught."""
    module = tmp_path / "ppml" / "paillier" / "codec.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n    from ..stages import encrypt\n    from . import keys\n    import click\n")
    assert imports(module, tmp_path) == {"ppml.stages", "ppml.paillier.keys", "click"}
    assert _layer_of("ppml.stages") > _layer_of("ppml.paillier.codec")
