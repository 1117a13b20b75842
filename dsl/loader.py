"""Finding and reading specs: `geo.compile("muon")`, a path, or spec text; `use NAME` in a spec.

A stdlib name is a file of the stdlib (`muon` → stdlib/muon.geo) or any optimizer one of them defines
(`muon_conv`, `horst_r3`, `auon_paper`: the file that defines it, with `SourceFile.entry` naming the optimizer).
`use NAME` resolves to `NAME.geo` beside the using file, else to the stdlib. A name is an identifier, so a
spec can never reach outside those two folders (no paths, no `..`): a `.geo` file is data.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from . import ast
from .diagnostics import Diagnostic, GeoError, Label
from .parser import parse
from .source import SourceFile, builtin_span

STDLIB = Path(__file__).resolve().parent.parent / "stdlib"


@dataclass
class Loaded:
    root: ast.Module
    modules: dict[str, ast.Module] = field(default_factory=dict)  # every module, by name, the root included
    order: list[str] = field(default_factory=list)                 # dependencies before dependents


def stdlib_names() -> list[str]:
    """The stdlib's files, by stem (`muon` for stdlib/muon.geo)."""
    return sorted(p.stem for p in STDLIB.glob("*.geo"))


@functools.cache
def _stdlib_defs() -> tuple[tuple[str, str, str, str], ...]:
    """(kind, name, file stem, one-line summary) for every step and optimizer the stdlib defines, file by file,
    from the parsed files (a file that does not parse defines nothing here; `geo check` says why)."""
    out = []
    for stem in stdlib_names():
        try:
            module = parse(read_file(str(STDLIB / f"{stem}.geo"), display=f"stdlib/{stem}.geo"))
        except GeoError:
            continue
        for item in module.items:
            if isinstance(item, ast.OptimizerDef):
                doc = item.doc or (module.doc if item.name == stem else None) or _derived(item)
                out.append(("optimizer", item.name, stem, doc.strip().splitlines()[0] if doc.strip() else ""))
            elif isinstance(item, ast.StepDef):
                out.append(("step", item.name, stem, ""))
    return tuple(out)


def _derived(item: ast.OptimizerDef) -> str:
    """A summary for an undocumented optimizer: what it is written as (`muon(ns_coeffs = "polar_express")`)."""
    if item.step is not None:
        return "= " + item.step.span.text.strip()
    rules = "; ".join(" ".join(r.span.text.split()) for r in item.rules)
    return rules if len(rules) <= 100 else rules[:99] + "…"


def stdlib_optimizers() -> dict[str, str]:
    """Every optimizer the stdlib defines → the stem of the file that defines it (`muon_conv` → `muon`): each
    is reachable by its own name (`geo.compile("muon_conv")`) and listed by `geo doc --stdlib`."""
    out: dict[str, str] = {}
    for kind, name, stem, _ in _stdlib_defs():
        if kind == "optimizer":
            out.setdefault(name, stem)
    return out


def stdlib_definitions() -> dict[str, str]:
    """Every step and optimizer the stdlib defines → the file stem that defines it (what to `use`)."""
    out: dict[str, str] = {}
    for _, name, stem, _ in _stdlib_defs():
        out.setdefault(name, stem)
    return out


def stdlib_catalog() -> list[tuple[str, str, str]]:
    """`geo doc --stdlib`: (optimizer, `stdlib/FILE.geo`, one-line summary) for every stdlib optimizer."""
    return [(name, f"stdlib/{stem}.geo", summary) for kind, name, stem, summary in _stdlib_defs()
            if kind == "optimizer"]


def source_for(spec: str | Path) -> SourceFile:
    """A stdlib name, a path to a `.geo` file, the spec text itself, or a SourceFile already read."""
    if isinstance(spec, SourceFile):
        return spec
    if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec and (spec.endswith(".geo") or "/" in spec)):
        return read_file(str(spec))
    if isinstance(spec, str) and spec.isidentifier():
        path = STDLIB / f"{spec}.geo"
        if path.is_file():
            return read_file(str(path), display=f"stdlib/{spec}.geo")
        stem = stdlib_optimizers().get(spec)
        if stem is not None:  # an optimizer defined inside a stdlib file (`muon_conv` in muon.geo)
            source = read_file(str(STDLIB / f"{stem}.geo"), display=f"stdlib/{stem}.geo")
            source.entry = spec
            return source
        raise GeoError([Diagnostic("GEO0501", f"no stdlib spec named `{spec}`", Label(builtin_span(spec)),
                                   help=_stdlib_help(spec))])
    return SourceFile("<spec>", str(spec))


def read_file(path: str, display: str | None = None) -> SourceFile:
    try:
        return SourceFile(display or path, Path(path).read_bytes().decode("utf-8-sig"))  # a BOM is not text
    except FileNotFoundError:
        message = f"cannot read `{path}`: no such file"
    except IsADirectoryError:
        message = f"cannot read `{path}`: it is a directory"
    except PermissionError:
        message = f"cannot read `{path}`: permission denied"
    except UnicodeDecodeError as err:
        message = f"cannot read `{path}`: not UTF-8 text ({err.reason} at byte {err.start})"
    except OSError as err:
        message = f"cannot read `{path}`: {err.strerror or err}"
    raise GeoError([Diagnostic("GEO0601", message, Label(builtin_span(path)))])


def _stdlib_help(name: str, optimizers: bool = True) -> str:
    """`help:` for a name that is no stdlib spec; `use` takes files only, so it is not offered optimizers."""
    from .diagnostics import did_you_mean
    return (did_you_mean(name, [*stdlib_names(), *(stdlib_optimizers() if optimizers else ())])
            or "stdlib specs: " + ", ".join(stdlib_names()) + " (`geo doc --stdlib` lists every optimizer)")


def load(source: SourceFile) -> Loaded:
    """Parses a spec and, transitively, every spec it `use`s; collects their diagnostics."""
    root = parse(source)
    loaded = Loaded(root)
    root_name = Path(source.name).stem if source.name.endswith(".geo") else "<spec>"
    errors: list[Diagnostic] = []
    base = Path(source.name).parent if source.name.endswith(".geo") and not source.name.startswith("stdlib/") else None
    _visit(root_name, root, base, loaded, [], errors)
    if errors:
        raise GeoError(errors)
    return loaded


def _visit(name: str, module: ast.Module, base: Path | None, loaded: Loaded, stack: list[str],
           errors: list[Diagnostic]) -> None:
    loaded.modules[name] = module
    stack.append(name)
    for item in module.items:
        if not isinstance(item, ast.Use):
            continue
        for used in item.names:
            if used.id in stack:
                errors.append(Diagnostic("GEO0502", f"`use {used.id}` makes a cycle: {' -> '.join(stack + [used.id])}",
                                         Label(used.span, "used here"), help="move what both need into a third spec"))
                continue
            if used.id in loaded.modules:
                continue
            path = _resolve(used.id, base)
            if path is None:
                errors.append(Diagnostic("GEO0501", f"cannot find the spec `{used.id}`", Label(used.span, "not found"),
                                         notes=[f"looked for `{used.id}.geo` beside this file and in the stdlib"],
                                         help=_stdlib_help(used.id, optimizers=False)))
                continue
            display = f"stdlib/{used.id}.geo" if path.parent == STDLIB else str(path)
            try:
                sub = parse(read_file(str(path), display))
            except GeoError as err:
                errors.extend(err.diagnostics)
                continue
            _visit(used.id, sub, path.parent if path.parent != STDLIB else None, loaded, stack, errors)
    stack.pop()
    loaded.order.append(name)


def _resolve(name: str, base: Path | None) -> Path | None:
    if base is not None:
        local = base / f"{name}.geo"
        if local.is_file():
            return local
    std = STDLIB / f"{name}.geo"
    return std if std.is_file() else None

