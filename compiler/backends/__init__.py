"""Backends: each runs a specialized `Program` (compiler/pipeline.py) as a step over a param group.

    "torch"      torch_path.py, `TorchPathStep`: the plan as multi-tensor `torch._foreach_*` calls, in place;
                 bit for bit the reference's on the CPU ("auto" picks it for small CPU tensors)
    "triton"     triton/, `TritonStep`: one generated kernel launch per fused kernel ("auto" on CUDA, when the
                 optional `triton` package is installed)
    "inductor"   inductor.py, `InductorStep`: each fused region compiled by TorchInductor (torch.compile),
                 vectorized C++/OpenMP on the CPU, Triton on CUDA; the gradient check inside the kernels
                 ("auto" picks it for CPU tensors of AUTO_INDUCTOR_NUMEL elements or more)
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
                   hypers: dict[str, Any], ts: list[float], inputs: list[dict[str, Any]] | None = None) -> None:
        """One step for every parameter of a group that runs this program: writes each parameter in place and
        rebinds each state dict's slots to their new values (never sharing a buffer with the parameter, its
        gradient or another slot). `inputs`, one dict per parameter, holds what the program's `input` nodes read
        (`Program.inputs`): the random key "rng", the values of an `across` block.

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


# "auto" on the CPU: the inductor backend for a tensor of at least this many elements (when a C++ compiler is
# there), the torch path below. Measured in benchmarks/RESULTS.md ("auto"): below it, one compiled call per
# tensor (~25 µs of dispatch) costs more than the passes it saves, and the torch path's multi-tensor calls step
# all the small tensors of a group at once without compiling anything.
AUTO_INDUCTOR_NUMEL = 1 << 15


def resolve(name: str, on_cuda: bool, numel: int | None = None) -> str:
    """The backend that runs a parameter of `numel` elements. "auto": Triton kernels for CUDA tensors when
    triton is installed (else the torch path); on the CPU, Inductor's fused kernels for tensors of at least
    AUTO_INDUCTOR_NUMEL elements when a C++ compiler is found, the torch path for the others. Any other name
    as it is."""
    if name != AUTO:
        return name
    if on_cuda:
        return "triton" if _has_triton() else "torch"
    if numel is not None and numel >= AUTO_INDUCTOR_NUMEL and has_cpp_compiler():
        return "inductor"
    return "torch"


@functools.cache
def _has_triton() -> bool:
    import importlib.util
    return importlib.util.find_spec("triton") is not None


@functools.cache
def has_cpp_compiler() -> bool:
    """A C++ compiler for TorchInductor's CPU kernels is on the PATH (`$CXX`, else the ones Inductor tries)."""
    import os
    import shutil
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    return any(shutil.which(n) for n in names)
