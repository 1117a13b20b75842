"""The IR verifier: every pass must leave a program this accepts (a failure is a compiler bug)."""
from __future__ import annotations

from .ir import SOURCE_OPS, Program, fail
from .ops import registry
from .types import Static


def verify(program: Program, stage: str = "verify") -> Program:
    seen: set[int] = set()
    slots = {s.name for s in program.states}
    for n in program.nodes():
        for a in n.args:
            if a.id not in seen:
                raise fail(stage, "an argument is used before it is defined", n, program)
        seen.add(n.id)
        if n.op in SOURCE_OPS:
            if n.args:
                raise fail(stage, "a source op has arguments", n, program)
            if n.op == "state" and n.attr("name") not in slots:
                raise fail(stage, f"reads an undeclared state {n.attr('name')!r}", n, program)
            if n.op == "hyper" and n.attr("name") not in program.hypers:
                raise fail(stage, f"reads an unknown hyperparameter {n.attr('name')!r}", n, program)
            continue
        opdef = registry.get(n.op)
        if opdef is None:
            raise fail(stage, f"unknown operator {n.op!r}", n, program)
        if len(n.args) != len(opdef.value_params):
            raise fail(stage, f"{n.op} takes {len(opdef.value_params)} values, has {len(n.args)}", n, program)
        attrs = dict(n.attrs)
        if set(attrs) != {p.name for p in opdef.static_params}:
            raise fail(stage, f"{n.op} has static attributes {sorted(attrs)}", n, program)
        result = opdef.type_rule([a.type for a in n.args], attrs, [])
        if isinstance(result, Static) or result != n.type:
            raise fail(stage, f"type {n.type.show()} but its rule gives {result.show()}", n, program)
    if "param" not in program.outputs:
        raise fail(stage, "the program writes no parameter", None, program)
    for name in program.outputs:
        if name != "param" and name not in slots:
            raise fail(stage, f"writes an undeclared state {name!r}", None, program)
    return program
