"""The reference backend: an interpreter over the IR that calls each operator's torch reference.

Readable and dtype-faithful (float32 and float64 alike); every faster backend is tested against it.
"""
from __future__ import annotations

from typing import Any

import torch

from ...dsl.diagnostics import InternalError
from ..ir import Node, Program, reachable
from ..ops import registry
from . import epilogue  # `epilogue.store` by attribute: every backend's new values pass through that one function
from .epilogue import storage_id


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
        elif n.op == "input":  # a per-parameter input: the random key, an `across` value
            v = env["inputs"][n.attr("name")]
        else:
            v = registry.get(n.op).apply([values[a.id] for a in n.args], dict(n.attrs), n.type)
        values[n.id] = v
    return values


class ReferenceStep:
    name = "reference"

    def __init__(self, program: Program):
        if program.per_shape:  # every backend builds one of these: none runs the program of no shape
            raise InternalError("backend", f"rule `{program.rule_text}` is compiled per parameter shape: specialize "
                                "it with the parameter's shape (`dims`) before running it", program.span)
        self.program = program
        self.step_nodes = program.step_nodes()
        self.init_nodes = reachable([s.init for s in program.states])
        self.slots = {s.name: s for s in program.states}

    def init(self, param: torch.Tensor, hypers: dict[str, Any]) -> dict[str, Any]:
        values = evaluate(self.init_nodes, {"param": param, "hypers": hypers})
        out = {}
        for s in self.program.states:
            v = values[s.init.id]
            out[s.name] = epilogue.store(v, v if isinstance(v, torch.Tensor) else 0.0, s.dtype)
        return out

    def step(self, param, grad, state, hypers, t, inputs=None, known=None):
        """`known`: values of nodes computed elsewhere (runtime/distributed.py's reductions across ranks)."""
        values = evaluate(self.step_nodes, {"param": param, "grad": grad, "state": state, "hypers": hypers, "t": t,
                                            "inputs": inputs or {}}, known)
        new_param = epilogue.store(values[self.program.outputs["param"].id], param, None)
        new_state = {name: epilogue.store(values[node.id], state[name], self.slots[name].dtype)
                     for name, node in self.program.outputs.items() if name != "param"}
        return new_param, new_state

    def step_group(self, params, grads, states, hypers, ts, inputs=None, known=None) -> None:
        """One parameter at a time: writes each new parameter into its buffer and rebinds each state. `known`: per
        parameter, values of nodes computed elsewhere (as `step`)."""
        per_param = inputs
        for i, (p, g, state, t) in enumerate(zip(params, grads, states, ts)):
            new_param, new_state = self.step(p, g, state, hypers, t, per_param[i] if per_param else None,
                                             known[i] if known else None)
            # `W = W.T`, `m = W`, `m = grad`: a result may be the parameter or its gradient itself (or a view of
            # them). The copy would then overlap, and a state would change with the parameter or grad.
            inputs = (storage_id(p), storage_id(g))
            # copies of what aliases the inputs are taken before the parameter changes (`prev = W` keeps the old W)
            new_state = {k: v.clone() if isinstance(v, torch.Tensor) and storage_id(v) in inputs else v
                         for k, v in new_state.items()}
            p.copy_(new_param.clone() if storage_id(new_param) in inputs else new_param)
            state.update(new_state)
