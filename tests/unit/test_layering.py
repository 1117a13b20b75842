"""The house rules of docs/design.md ("The map of the house"), checked on the source itself.

Imports only go down: dsl → compiler → compiler.backends → compiler.pipeline → runtime → fuzz → cli. Every
import counts, a lazy one inside a function too: an upward import is a cycle waiting to happen and makes the
lower layer unusable alone (the runtime would drag the fuzzer in, the parser the torch runtime). Within the
compiler, the operator registry (compiler/ops) stands on the types alone, so an operator can be added, read
and tested without the front end. A module over 800 lines says why at its top.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = ("dsl", "compiler", "runtime", "fuzz", "stdlib")
ROOT_MODULES = ("__init__.py", "__main__.py", "cli.py", "version.py")

# (module prefix, layer): the longest matching prefix decides; a module may import its own layer or lower ones.
LAYERS = [
    ("geo.version", 0),
    ("geo.dsl", 0),
    ("geo.stdlib", 0),
    ("geo.compiler", 1),
    ("geo.compiler.backends", 2),
    ("geo.compiler.pipeline", 3),
    ("geo.runtime", 4),
    ("geo.fuzz", 5),
    ("geo.cli", 6),
    ("geo.__main__", 6),
    ("geo", 6),
]
# What the operator registry may import inside geo (besides itself).
OPS_MAY_IMPORT = ("geo.compiler.types", "geo.dsl.diagnostics", "geo.compiler.ops")
LONG_FILE_LINES = 800
LONG_FILE_REASON = "over 800 lines because"


def layer_of(module: str) -> int:
    best = max((p for p, _ in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return dict(LAYERS)[best]


def modules() -> dict[str, Path]:
    found = {}
    for name in ROOT_MODULES:
        found["geo" if name == "__init__.py" else "geo." + name[:-3]] = ROOT / name
    for folder in PACKAGE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(("geo",) + parts)] = path
    return found


def imports(module: str, path: Path) -> list[tuple[str, int]]:
    """Every geo module `module` imports (absolute names), with the line of the import."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "geo"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "geo":
                continue
            # `from . import x` may name a submodule: judge the submodule, not the package
            out += [(f"{target}.{alias.name}" if f"{target}.{alias.name}" in ALL else target, node.lineno)
                    for alias in node.names]
    return out


ALL = modules()


def test_the_tree_has_the_layers():
    assert {"geo.dsl.parser", "geo.compiler.ops.registry", "geo.compiler.pipeline", "geo.runtime.optimizer",
            "geo.fuzz", "geo.cli"} <= set(ALL)


@pytest.mark.parametrize("module", sorted(ALL))
def test_imports_only_go_down(module):
    upward = [f"{ALL[module].relative_to(ROOT)}:{line} imports {target}"
              for target, line in imports(module, ALL[module]) if layer_of(target) > layer_of(module)]
    assert not upward, "an import goes up the layers (docs/design.md, the map):\n" + "\n".join(upward)


@pytest.mark.parametrize("module", sorted(m for m in ALL if m.startswith("geo.compiler.ops")))
def test_the_operator_registry_stands_on_the_types_alone(module):
    wrong = [f"{ALL[module].relative_to(ROOT)}:{line} imports {target}"
             for target, line in imports(module, ALL[module])
             if not any(target == p or target.startswith(p + ".") for p in OPS_MAY_IMPORT)]
    assert not wrong, "\n".join(wrong)


def test_the_checker_catches_an_upward_import(tmp_path):
    """The check itself can fail: a dsl module that imports the runtime is caught, relative or absolute."""
    bad = tmp_path / "dsl" / "bad.py"
    bad.parent.mkdir()
    bad.write_text("from ..runtime import optimizer\nimport geo.fuzz\n")
    found = [t for t, _ in imports("geo.dsl.bad", bad)]
    assert found == ["geo.runtime.optimizer", "geo.fuzz"]
    assert all(layer_of(t) > layer_of("geo.dsl.bad") for t in found)


@pytest.mark.parametrize("module", sorted(ALL))
def test_a_long_module_says_why(module):
    text = ALL[module].read_text()
    if text.count("\n") > LONG_FILE_LINES:
        doc = ast.get_docstring(ast.parse(text)) or ""
        assert LONG_FILE_REASON in doc, (
            f"{ALL[module].relative_to(ROOT)} has {text.count(chr(10))} lines: split it, or say at its top why "
            f"it is one module ('{LONG_FILE_REASON} …')")
