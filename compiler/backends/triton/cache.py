"""The disk cache of generated Triton kernels, under `$GEO_CACHE_DIR` (default `~/.cache/geo`), in `triton/`.

`@triton.jit` reads a kernel's source with `inspect`, so a kernel must live in a real file: each entry is a
Python module, imported from the cache with `importlib.util.spec_from_file_location`.

    name     sha256 of everything the source is generated from — the program as `--emit opt` prints it (nodes,
             statics, spans), the phase, the launch (dtypes, access patterns), BLOCK, the device, the versions of
             geo, its code generator and device library, Triton and torch — so a hit skips generation
    header   `# geo-triton sha256=<hex>`: the hash of the module text below the header together with the constexprs,
             device and versions; an entry whose text no longer matches it (a torn or edited file) is rebuilt

Entries are written atomically (a temporary file in the same folder, then `os.replace`), so a concurrent reader
sees the old entry or the new one, never half of one. No bytecode is written next to them. Triton keeps its own
cache of compiled binaries (keyed by the source, constexprs and target); this one holds the source.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import linecache
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

STATS = {"generated": 0, "disk_hits": 0, "memory_hits": 0, "rebuilt": 0}
_LOADED: dict[str, Any] = {}  # name -> module, for this process
_PREFIX = "# geo-triton sha256="


def cache_dir() -> Path:
    root = os.environ.get("GEO_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "geo")
    return Path(root) / "triton"


def versions() -> dict[str, str]:
    import torch
    import triton

    from ....version import __version__
    from . import codegen, device
    library = hashlib.sha256(Path(device.__file__).read_bytes()).hexdigest()[:16]
    return {"geo": __version__, "codegen": codegen.CODEGEN_VERSION, "library": library,
            "triton": triton.__version__, "torch": torch.__version__}


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()


def clear_memory() -> None:
    """Forgets the modules loaded by this process (the disk cache stays)."""
    _LOADED.clear()


def load(key_parts: Any, generate: Callable[[], str], context: Any) -> Any:
    """The module for `key_parts`: from this process, else from the disk cache, else `generate()`d and written.

    `context` (constexprs, device, versions) is hashed with the text into the entry's header."""
    name = "k" + digest(key_parts)[:40]
    module = _LOADED.get(name)
    if module is not None:
        STATS["memory_hits"] += 1
        return module
    folder = cache_dir()
    path = folder / f"{name}.py"
    text = _read(path, context)
    if text is not None:
        STATS["disk_hits"] += 1
    else:
        if path.exists():
            STATS["rebuilt"] += 1
        STATS["generated"] += 1
        body = generate()
        text = f"{_PREFIX}{_seal(body, context)}\n{body}"
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, text)
    try:
        module = _import(name, path)
    except Exception:  # noqa: BLE001 - an entry that verified but does not import (or vanished): rebuild it once
        STATS["rebuilt"] += 1
        STATS["generated"] += 1
        body = generate()
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, f"{_PREFIX}{_seal(body, context)}\n{body}")
        module = _import(name, path)
    _LOADED[name] = module
    return module


def _seal(body: str, context: Any) -> str:
    return digest(body, context)


def _read(path: Path, context: Any) -> str | None:
    """The entry's text if it is intact, else None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    header, sep, body = text.partition("\n")
    if not sep or not header.startswith(_PREFIX) or header[len(_PREFIX):] != _seal(body, context):
        return None
    return text


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class _SourceOnly(importlib.machinery.SourceFileLoader):
    """Imports from source every time: no `__pycache__` beside the entries (a rebuilt entry could otherwise meet
    a stale bytecode file of the same size and second)."""

    def set_data(self, path, data, *, _mode=0o666):  # noqa: D102 - never write bytecode
        return None

    def path_stats(self, path):  # noqa: D102 - no bytecode is valid for these files
        raise OSError("no bytecode for cached kernels")


def _import(name: str, path: Path) -> Any:
    linecache.cache.pop(str(path), None)  # `inspect` must read the entry as it is now, not a rebuilt one's old text
    loader = _SourceOnly(f"geo_triton_{name}", str(path))
    spec = importlib.util.spec_from_file_location(f"geo_triton_{name}", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
