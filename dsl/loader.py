"""Finding and reading specs: `geo.compile("muon")`, a path, or spec text; `use NAME` in a spec.

A stdlib name is a file of the stdlib (`muon` → stdlib/muon.geo) or any optimizer one of them defines
(`muon_conv`, `horst_r3`, `auon_paper`: the file that defines it, with `SourceFile.entry` naming the optimizer).
`use NAME` resolves to `NAME.geo` beside the using file, else to the stdlib. A name is an identifier, so a
spec can never reach outside those two folders (no paths, no `..`): a `.geo` file is data. A `NAME.geo` that
is a symbolic link is followed only to a `.geo` file in the same folder, and only regular files are read, so
`use` never reads (nor shows in a diagnostic) a file that is not a spec beside it.

Reading is bounded: only regular files (a device such as /dev/zero, a FIFO or a socket is refused before a
byte is read, so nothing blocks or grows without end), of at most MAX_SPEC_BYTES; a chain of `use`s at most
MAX_USE_DEPTH files deep.
"""
from __future__ import annotations

import functools
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from . import ast
from .diagnostics import Diagnostic, GeoError, Label
from .parser import parse
from .source import MAX_SPEC_BYTES, SourceFile, builtin_span

STDLIB = Path(__file__).resolve().parent.parent / "stdlib"
# How deep `use` may nest (a uses b uses c ...): loading recurses once per level.
MAX_USE_DEPTH = 64


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


def read_file(path: str, display: str | None = None, *, follow_links: bool = True) -> SourceFile:
    """The spec in the file at `path`, as text; GEO0601 when it cannot be read, is not a regular file, is larger
    than MAX_SPEC_BYTES or is not UTF-8. The file is opened without blocking (a FIFO would wait for a writer),
    checked on the open descriptor, and read to at most MAX_SPEC_BYTES + 1 bytes (a file may grow meanwhile)."""
    message = None
    try:
        data = _read_regular(path, follow_links)
        if isinstance(data, str):
            message = f"cannot read `{path}`: {data}"
        else:
            return SourceFile(display or path, data.decode("utf-8-sig"))  # a BOM is not text
    except FileNotFoundError:
        message = f"cannot read `{path}`: no such file"
    except IsADirectoryError:
        message = f"cannot read `{path}`: it is a directory"
    except PermissionError:
        message = f"cannot read `{path}`: permission denied"
    except UnicodeDecodeError as err:
        message = f"cannot read `{path}`: not UTF-8 text ({err.reason} at byte {err.start})"
    except (OSError, ValueError) as err:  # ValueError: a NUL in the path
        message = f"cannot read `{path}`: {getattr(err, 'strerror', None) or err}"
    raise GeoError([Diagnostic("GEO0601", message, Label(builtin_span(path)))])


def _read_regular(path: str, follow_links: bool) -> bytes | str:
    """The bytes of a regular file of at most MAX_SPEC_BYTES, or why not (a sentence)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        if not follow_links and os.path.islink(path):
            return "it is a symbolic link"
        raise err from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return "it is a directory"
        if not stat.S_ISREG(st.st_mode):
            kind = ("a character device" if stat.S_ISCHR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode)
                    else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                    else "not a regular file")
            return f"it is {kind}, not a regular file"
        if st.st_size > MAX_SPEC_BYTES:
            return _too_large(st.st_size)
        chunks, size = [], 0
        while size <= MAX_SPEC_BYTES:
            chunk = os.read(fd, MAX_SPEC_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_SPEC_BYTES:
            return _too_large(size)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _too_large(size: int) -> str:
    return f"it is {size:,} bytes or more; a spec may hold at most {MAX_SPEC_BYTES:,} bytes"


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
            if len(stack) >= MAX_USE_DEPTH:
                errors.append(Diagnostic("GEO0503", f"`use {used.id}` nests specs more than {MAX_USE_DEPTH} deep",
                                         Label(used.span, "too deep from here on"),
                                         notes=[f"the chain: {' -> '.join(stack[:3])} -> ... -> "
                                                f"{' -> '.join(stack[-2:])} -> {used.id}"],
                                         help="use the specs you need directly instead of through a chain"))
                continue
            found = _resolve(used.id, base)
            if found is None:
                errors.append(Diagnostic("GEO0501", f"cannot find the spec `{used.id}`", Label(used.span, "not found"),
                                         notes=[f"looked for `{used.id}.geo` beside this file and in the stdlib"],
                                         help=_stdlib_help(used.id, optimizers=False)))
                continue
            if isinstance(found, str):
                errors.append(Diagnostic("GEO0601", f"`use {used.id}` found `{used.id}.geo` but will not read it: "
                                         f"{found}", Label(used.span, "not read"),
                                         notes=["`use` reads only regular `.geo` files beside the spec or in the "
                                                "stdlib, following a symbolic link only to a `.geo` file in the same "
                                                "folder"]))
                continue
            path, display = found
            try:
                sub = parse(read_file(str(path), display, follow_links=False))
            except GeoError as err:
                errors.extend(err.diagnostics)
                continue
            _visit(used.id, sub, path.parent if path.parent != STDLIB else None, loaded, stack, errors)
    stack.pop()
    loaded.order.append(name)


def _resolve(name: str, base: Path | None) -> tuple[Path, str] | str | None:
    """Where `use NAME` reads from, and how diagnostics name it: `NAME.geo` beside the using file, else in the
    stdlib; None when neither exists; a sentence when the file beside it exists but is not one `use` reads (a
    link out of its folder, a directory, a FIFO): that is an error, not a reason to read the stdlib's instead."""
    for folder in ([base] if base is not None else []) + [STDLIB]:
        candidate = folder / f"{name}.geo"
        try:
            st = os.lstat(candidate)
        except (OSError, ValueError):
            continue
        path = candidate
        if stat.S_ISLNK(st.st_mode):
            target = Path(os.path.realpath(candidate))
            if target.parent != Path(os.path.realpath(folder)) or target.suffix != ".geo":
                return "it is a symbolic link to a file outside its folder"
            try:
                st = os.stat(target)
            except OSError:
                return "it is a broken symbolic link"
            path = target
        if not stat.S_ISREG(st.st_mode):
            return "it is a directory" if stat.S_ISDIR(st.st_mode) else "it is not a regular file"
        return path, (f"stdlib/{name}.geo" if folder == STDLIB else str(candidate))
    return None
