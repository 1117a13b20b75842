"""`geo.compile`: a spec (stdlib name, path, or text) → a `torch.optim.Optimizer` subclass."""
from __future__ import annotations

from pathlib import Path

from ..compiler.pipeline import front
from ..dsl.loader import source_for
from .checkpoint import CheckpointError
from .compiled import BACKENDS, CompiledSpec
from .optimizer import GeoOptimizer

__all__ = ["compile", "CheckpointError"]


def compile(spec: str | Path, backend: str = "auto", name: str | None = None) -> type[GeoOptimizer]:  # noqa: A001
    """Compiles a spec and returns an Optimizer class: `geo.compile("muon")(model.parameters(), lr=0.02)`.

    spec: a stdlib name ("muon"), a path to a `.geo` file, or the spec text itself.
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
    info = checked.select(source.name, name)
    cls = type(info.name, (GeoOptimizer,), {
        "_geo": CompiledSpec(checked, info, backend),
        "__doc__": info.doc or checked.doc,
        "__module__": "geo.compiled",
    })
    return cls

