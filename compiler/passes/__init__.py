"""IR passes: each maps a valid `Program` to a valid `Program` (verified between passes in tests)."""
from __future__ import annotations

from typing import Callable

from ..ir import Graph, Node, Program, StateSlot


def rebuild(program: Program, replace: Callable[[Node, Graph], Node | None] | None = None) -> Program:
    """Copies a program into a fresh graph in topological order, offering every node (with its arguments
    already rebuilt) to `replace` until it declines. Interning in the new graph merges equal nodes (CSE);
    only what the outputs and state initializers reach is copied (DCE)."""
    graph = Graph()
    new: dict[int, Node] = {}
    for n in program.nodes():
        args = tuple(new[a.id] for a in n.args)
        node = graph.node(n.op, args, dict(n.attrs), type=n.type, span=n.span)
        for _ in range(64):  # a rule may enable another; a cycle of rules is a bug, so cap it
            out = replace(node, graph) if replace is not None else None
            if out is None or out is node:
                break
            node = out
        new[n.id] = node
    states = [StateSlot(s.name, s.type, s.dtype, new[s.init.id], s.span) for s in program.states]
    outputs = {k: new[v.id] for k, v in program.outputs.items()}
    outputs = {k: v for k, v in outputs.items() if k == "param" or not (v.op == "state" and v.attr("name") == k)}
    return Program(program.optimizer, program.rule_index, program.rule_text, program.param_name, program.param_type,
                   program.statics, program.hypers, states, outputs, program.constraints, program.span,
                   {k: new[v.id] for k, v in program.guards.items()}, dict(program.guard_parents),
                   {k: new[v.id] for k, v in program.exports.items()}, program.per_shape)
