"""Backends: each runs a specialized `Program` (compiler/pipeline.py) as a step over a param group.

    "torch"      torch_path.py, `TorchPathStep`: the plan as multi-tensor `torch._foreach_*` calls, in place;
                 bit for bit the reference's on the CPU ("auto" picks it for CPU tensors)
    "triton"     triton/, `TritonStep`: one generated kernel launch per fused kernel ("auto" on CUDA, when the
                 optional `triton` package is installed)
    "inductor"   inductor.py, `InductorStep`: each fused region compiled by TorchInductor (torch.compile),
                 vectorized C++/OpenMP on the CPU, Triton on CUDA; the gradient check inside the kernels
    "reference"  reference.py, `ReferenceStep`: an interpreter over the IR, one parameter at a time; the oracle
                 every faster backend is tested against

The runtime builds one backend object per (program, backend) and calls only what `Backend` declares; the end of
a step (storage dtypes, never two slots in one buffer) is shared by all of them in epilogue.py. A new backend
is a class with that shape, one entry in `BACKENDS`, and a run of tests/backends against the reference.
"""
from __future__ import annotations

import functools
import importlib
from typing import Any, Protocol

# key -> "module:class" in this package, imported when first asked for (a process that never steps on the
# reference or Triton backend does not load them); the order is the one error messages list
BACKENDS: dict[str, str] = {
    "torch": "torch_path:TorchPathStep",
    "triton": "triton.step:TritonStep",
    "inductor": "inductor:InductorStep",
    "reference": "reference:ReferenceStep",
}
AUTO = "auto"


class Backend(Protocol):
    """What the runtime calls on a backend object, built as `cls(program)` for one specialized program.

    `param`/`params` and `grad`/`grads` are the tensors as the rule's view shows them (the runtime copies a view
    that had to copy back into the parameter); a state maps slot names to tensors (or floats for scalar slots);
    `hypers` maps the rule's runtime hyperparameters to floats (tuples for tuple hyperparameters); `ts` are the
    step counts, one per parameter (floats)."""

    name: str

    def init(self, param: Any, hypers: dict[str, Any]) -> dict[str, Any]:
        """The initial state of one parameter: {slot name: value}."""
        ...

    def step_group(self, params: list[Any], grads: list[Any], states: list[dict[str, Any]],
                   hypers: dict[str, Any], ts: list[float]) -> None:
        """One step for every parameter of a group that runs this program: writes each parameter in place and
        rebinds each state dict's slots to their new values (never sharing a buffer with the parameter, its
        gradient or another slot).

        A backend whose class sets `checks_finite = True` also takes `check=True` (the runtime's
        `nonfinite="skip"`): it checks each gradient for NaN/±Inf itself (fused into its kernels), leaves the
        parameter and states of a tensor whose gradient is not finite as they were, and returns one 0-d bool
        tensor per parameter (True: stepped). The runtime then skips its own pass over the gradients."""
        ...


@functools.cache
def backend(name: str) -> type[Backend]:
    """The class of the backend `name` (a key of BACKENDS; resolve "auto" first)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join((AUTO, *BACKENDS))}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def resolve(name: str, on_cuda: bool, numel: int | None = None) -> str:
    """The backend that runs a parameter of `numel` elements: for "auto", Triton kernels for CUDA tensors when
    triton is installed and the torch path elsewhere; any other name as it is."""
    if name != AUTO:
        return name
    return "triton" if on_cuda and _has_triton() else "torch"


@functools.cache
def _has_triton() -> bool:
    import importlib.util
    return importlib.util.find_spec("triton") is not None
