"""`geo.compile`: a spec (stdlib name, path, or text) → a `torch.optim.Optimizer` subclass; `geo.roles(model)`."""
from __future__ import annotations

import weakref
from pathlib import Path

from ..compiler.binding import RoutingWarning
from ..compiler.pipeline import front
from ..dsl.loader import source_for
from ..dsl.source import SourceFile
from .checkpoint import CheckpointError
from .compiled import BACKENDS, CompiledSpec
from .optimizer import GeoOptimizer
from .roles import roles

__all__ = ["compile", "roles", "CheckpointError", "RoutingWarning"]

# The classes geo.compile made in this process, by a token of their own: an optimizer unpickled (or deep-copied) in
# the process that pickled it gets the very class its original had.
_CLASSES: weakref.WeakValueDictionary[str, type[GeoOptimizer]] = weakref.WeakValueDictionary()


def compile(spec: str | Path, backend: str = "auto", name: str | None = None) -> type[GeoOptimizer]:  # noqa: A001
    """Compiles a spec and returns an Optimizer class: `geo.compile("muon")(model.parameters(), lr=0.02)`.

    spec: a stdlib name (a file, "muon", or any optimizer a stdlib file defines, "muon_conv"), a path to a
    `.geo` file, or the spec text itself.
    backend: "auto" (Triton kernels for CUDA tensors when triton is installed; on the CPU TorchInductor's fused
    kernels for tensors of 2^15 elements or more when a C++ compiler is found, the multi-tensor torch path for
    the others), "torch", "inductor" (torch.compile'd regions, CPU or CUDA), "triton" (CUDA tensors, or CPU
    tensors under TRITON_INTERPRET=1), "reference".
    name: which optimizer of the spec, when it defines several (default: the only one, or the one named
    like the file).
    Raises GeoError (rendered diagnostics) for an invalid spec.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    source = source_for(spec)
    _, checked = front(source)
    info = checked.select(source.name, name if name is not None else source.entry)
    cls = type(info.name, (GeoOptimizer,), {
        "_geo": CompiledSpec(checked, info, backend),
        "__doc__": info.doc or checked.doc,
        "__module__": "geo.compiled",
    })
    _CLASSES[cls._geo.token] = cls
    return cls


def restore(ref: tuple[str, str, str, str, str], token: str) -> GeoOptimizer:
    """An empty optimizer of the class that `ref` (`CompiledSpec.ref()`) and `token` name, for pickle to fill with
    its state: the class itself where it still lives (this process), else the spec compiled again from its text.
    A spec whose modules have changed since (a `use`d file edited) is refused: the state belongs to the old one."""
    cls = _CLASSES.get(token)
    if cls is None:
        name, text, optimizer, backend, fingerprint = ref
        cls = compile(SourceFile(name, text), backend=backend, name=optimizer)
        if cls._geo.info.fingerprint != fingerprint:
            raise CheckpointError(f"cannot unpickle the optimizer `{optimizer}`: its spec ({name}) or a spec it uses "
                                  "has changed since it was pickled")
    return cls.__new__(cls)

