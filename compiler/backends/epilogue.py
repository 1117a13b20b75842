"""The end of a step, shared by every backend: new values into the slots they belong to.

A step computes a new parameter and new states; what it computes may be a view of its own inputs (`W = W.T`,
`m = grad`, a `where` that selects a state it keeps), and a backend that updates buffers in place would then
change two slots at once. So, for each parameter:

    store        a value cast to its slot: the slot's storage dtype (a `bf16` state), broadcast to its shape;
                 a scalar slot holds a Python float
    bind_state   a state slot gets its new value as a buffer of its own: a copy where the value shares memory
                 with the parameter, the gradient, a state the step keeps or a slot bound before
    write_param  the parameter is written in place (its buffer is the user's), through a copy where the value
                 overlaps it
    end_step     both, for a backend that wrote some slots in place already (KEPT)

Buffers are told apart by `storage_id`, equal for a tensor and all of its views.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..types import torch_dtype


def storage_id(t: torch.Tensor) -> int:
    """Which memory a tensor lives in: equal for a tensor and its views."""
    return t.untyped_storage().data_ptr()


def store(value: Any, like: Any, dtype: str | None) -> Any:
    """Casts a computed value into its slot: the slot's storage dtype (else `like`'s), broadcast to `like`'s
    shape; a scalar slot holds a Python float."""
    if not isinstance(like, torch.Tensor):
        return float(value)
    target = torch_dtype(dtype) if dtype else like.dtype
    if not isinstance(value, torch.Tensor):
        return torch.full_like(like, float(value), dtype=target)
    if value.shape != like.shape:
        value = value.expand_as(like)
    return value.to(target)


def write_param(p: torch.Tensor, value: Any) -> None:
    """Writes a step's new parameter value into the parameter (its dtype and shape); a value that is a view of
    the parameter itself (`W = W.T`) is copied first, since the two would overlap."""
    if value is p:
        return
    v = store(value, p, None)
    if isinstance(v, torch.Tensor) and storage_id(v) == storage_id(p):
        v = v.clone()
    p.copy_(v.reshape(p.shape) if v.shape != p.shape else v)


def held(param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], outputs) -> set[int]:
    """The buffers a step's new states must not share: the parameter's, the gradient's, and those of the states
    the step keeps as they are (a `where` may select one of them; in-place steps would then change both)."""
    kept = {storage_id(v) for k, v in state.items() if k not in outputs and isinstance(v, torch.Tensor)}
    return {storage_id(param), storage_id(grad)} | kept


KEPT = object()  # end_step: a value a kernel already wrote into its buffer


def end_step(param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], outputs, slots,
             value_of: Callable[[str, Any], Any]) -> None:
    """One tensor's end of a multi-tensor step: binds each state slot to its new value (`value_of(name, node)`,
    or KEPT where it was written in place already), then writes the parameter (unless KEPT)."""
    taken = held(param, grad, state, outputs)
    for name, node in outputs.items():
        if name == "param":
            continue
        value = value_of(name, node)
        if value is KEPT:
            taken.add(storage_id(state[name]))
        else:
            bind_state(state, name, value, slots[name].dtype, taken)
    value = value_of("param", outputs["param"])
    if value is not KEPT:
        write_param(param, value)


def bind_state(state: dict[str, Any], name: str, value: Any, dtype: str | None, taken: set[int]) -> None:
    """Stores a slot's new value (its storage dtype, its shape) as its own buffer: a copy where the value shares
    memory with something in `taken` (the parameter, the gradient, a slot bound before), which then takes it."""
    v = store(value, state[name], dtype)
    if isinstance(v, torch.Tensor):
        if storage_id(v) in taken:
            v = v.clone()
        taken.add(storage_id(v))
    state[name] = v
