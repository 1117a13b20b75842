"""The reference backend: an interpreter over the IR that calls each operator's torch reference.

Readable and dtype-faithful (float32 and float64 alike); every faster backend is tested against it.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..ir import Node, Program, reachable
from ..ops import registry
from ..types import torch_dtype


def evaluate(nodes: list[Node], env: dict[str, Any], known: dict[int, Any] | None = None) -> dict[int, Any]:
    """The values of `nodes` (in topological order) given the step's inputs `env` and values already `known`."""
    values: dict[int, Any] = dict(known or {})
    for n in nodes:
        if n.id in values:
            continue
        if n.op == "param":
            v = env["param"]
        elif n.op == "grad":
            v = env["grad"]
        elif n.op == "t":
            v = env["t"]
        elif n.op == "hyper":
            v = env["hypers"][n.attr("name")]
            v = float(v[n.attr("index")] if n.attr("index") is not None else v)
        elif n.op == "state":
            v = env["state"][n.attr("name")]
        elif n.op == "const":
            v = n.value
        else:
            v = registry.get(n.op).apply([values[a.id] for a in n.args], dict(n.attrs), n.type)
        values[n.id] = v
    return values


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


class ReferenceStep:
    name = "reference"

    def __init__(self, program: Program):
        self.program = program
        self.step_nodes = program.step_nodes()
        self.init_nodes = reachable([s.init for s in program.states])
        self.slots = {s.name: s for s in program.states}

    def init(self, param: torch.Tensor, hypers: dict[str, Any]) -> dict[str, Any]:
        values = evaluate(self.init_nodes, {"param": param, "hypers": hypers})
        out = {}
        for s in self.program.states:
            v = values[s.init.id]
            out[s.name] = store(v, v if isinstance(v, torch.Tensor) else 0.0, s.dtype)
        return out

    def step(self, param, grad, state, hypers, t):
        values = evaluate(self.step_nodes, {"param": param, "grad": grad, "state": state, "hypers": hypers, "t": t})
        new_param = store(values[self.program.outputs["param"].id], param, None)
        new_state = {name: store(values[node.id], state[name], self.slots[name].dtype)
                     for name, node in self.program.outputs.items() if name != "param"}
        return new_param, new_state

    def step_group(self, params, grads, states, hypers, ts) -> None:
        """One parameter at a time: writes each new parameter into its buffer and rebinds each state."""
        for p, g, state, t in zip(params, grads, states, ts):
            new_param, new_state = self.step(p, g, state, hypers, t)
            # `W = W.T`, `m = W`, `m = grad`: a result may be the parameter or its gradient itself (or a view of
            # them). The copy would then overlap, and a state would change with the parameter or grad.
            inputs = (storage_id(p), storage_id(g))
            # copies of what aliases the inputs are taken before the parameter changes (`prev = W` keeps the old W)
            new_state = {k: v.clone() if isinstance(v, torch.Tensor) and storage_id(v) in inputs else v
                         for k, v in new_state.items()}
            p.copy_(new_param.clone() if storage_id(new_param) in inputs else new_param)
            state.update(new_state)


def storage_id(t: torch.Tensor) -> int:
    """Which memory a tensor lives in: equal for a tensor and its views."""
    return t.untyped_storage().data_ptr()


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
