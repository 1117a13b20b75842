"""How each parameter's rule runs when parameters are split by rows across ranks (issue 11): its mode, read off
the operators' `sharding` facets (compiler/ops/registry.py), the owner's region of a split rule, shape facts, row
counts and owners. Pure functions of programs and shapes: `runtime/distributed.py` runs them, `geo explain
--world-size` counts their communication; neither needs a process group to ask.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..compiler.ir import reachable
from ..compiler.ops import registry

LOCAL, REDUCE, SPLIT, OWNER = "local", "reduce", "split", "owner"
# how a reduction's partials are all-reduced, by its facet's combine
COLLECTIVE = {"sum": "sum", "mean": "sum", "rms": "sum", "max": "max", "min": "min"}


def is_rows(t, program) -> bool:
    """Whether a value of IR type `t` is split by rows as the parameter is: its first dim is the parameter's (a
    rank-free rule: the parameter's own type). A 0-d value, or one whose first dim is 1 or the columns, is the
    same on every rank."""
    from ..compiler.types import Tensor
    if not isinstance(t, Tensor):
        return False
    pshape = program.param_type.shape
    if t.shape is None:
        return pshape is None
    return bool(t.shape) and bool(pshape) and isinstance(pshape[0], str) and t.shape[0] == pshape[0]


def _crossing(node, program, ndim: int):
    """The facet of a node that reduces a row-split value across its rows (dim 0), or None."""
    opdef = registry.get(node.op)
    if opdef is None or not node.args:
        return None
    facet = opdef.sharding_for(dict(node.attrs))
    if facet.mode != "reduction" or not is_rows(node.args[0].type, program):
        return None
    arg = node.args[0].type
    rank = len(arg.shape) if arg.shape is not None else ndim
    return facet if 0 in facet.reduced_dims(dict(node.attrs), rank) else None


def row_reductions(program, ndim: int) -> list:
    """The step's nodes that reduce across rows, in evaluation order: each is one partial per rank, combined."""
    return [n for n in program.step_nodes() if _crossing(n, program, ndim) is not None]


def _mode_of(node) -> str | None:
    opdef = registry.get(node.op)
    return None if opdef is None else opdef.sharding_for(dict(node.attrs)).mode


def classify(program, rule, ndim: int, transposed: bool = False) -> tuple[str, str]:
    """(mode, why) of a compiled rule for a parameter split by rows:

    LOCAL   every operator runs on the rows (its facet LOCAL, or a reduction that keeps dim 0);
    REDUCE  besides, the step reduces across rows, or reads the tensor's shape: partials all-reduced, shapes the
            whole's;
    SPLIT   the step has operators that need the whole tensor: those (and what lies between them) run on the
            parameter's owner, the rest on the rows;
    OWNER   the whole step on the owner: a view or a transposed role (their rows are not the parameter's), or an
            initial state or `when` condition that needs more than the rows (they are evaluated apart from the
            step)."""
    if transposed:
        return OWNER, "stored transposed: its rows are the rule's columns"
    if rule.view is not None:
        return OWNER, "seen through a view (its rows need not be the parameter's)"
    pshape = program.param_type.shape
    if pshape and not isinstance(pshape[0], str) and any(_mode_of(n) != "local" for n in program.nodes()
                                                         if registry.get(n.op) is not None):
        return OWNER, "compiled for its shape: its rows cannot be told from its columns by type"
    outside = reachable([s.init for s in program.states] + list(program.guards.values()))
    for node in outside:
        if _mode_of(node) in ("whole", "shape") or _crossing(node, program, ndim) is not None:
            return OWNER, f"`{node.op}` needs the whole tensor in an initial state or a condition"
    step = program.step_nodes()
    whole = [n for n in step if _mode_of(n) == "whole"]
    if whole:
        return SPLIT, f"`{whole[0].op}` needs the whole tensor"
    crossing = row_reductions(program, ndim)
    if crossing:
        return REDUCE, f"`{crossing[0].op}` reduces across rows: partials all-reduced"
    shaped = [n for n in step if _mode_of(n) == "shape"]
    if shaped:
        return REDUCE, f"`{shaped[0].op}` reads the whole tensor's shape"
    return LOCAL, "elementwise"


def region(program, ndim: int) -> tuple[list, list, list]:
    """The owner's part of a SPLIT rule: the step's nodes that need the whole tensor (WHOLE operators, reductions
    across rows) and every node between two of them; what it reads from the rest (`inputs`) and what the rest reads
    from it, or the step writes (`outputs`). Nothing before an input depends on the region, so the rows compute
    the inputs, the owner the region, and the rows the rest."""
    step = program.step_nodes()
    needs = {n.id for n in step if _mode_of(n) == "whole" or _crossing(n, program, ndim) is not None}
    after = set(needs)
    for n in step:  # ids grow along a topological order
        if any(a.id in after for a in n.args):
            after.add(n.id)
    before = set(needs)
    for n in reversed(step):
        if n.id in before:
            before.update(a.id for a in n.args)
    inside = [n for n in step if n.id in after and n.id in before]
    ids = {n.id for n in inside}
    inputs = sorted({a.id: a for n in inside for a in n.args if a.id not in ids}.values(), key=lambda n: n.id)
    read = {a.id for n in step if n.id not in ids for a in n.args} | {n.id for n in program.outputs.values()}
    outputs = [n for n in inside if n.id in read]
    return inside, inputs, outputs


def shape_facts(program, shape: tuple[int, ...]) -> dict[int, Any]:
    """The values of the step's shape-reading operators (`rows`, `cols`, Muon's scale factor) for the whole
    parameter's `shape`: computed from shapes alone, the same on every rank."""
    from ..compiler.plan import concrete_shapes
    shapes = concrete_shapes(program, shape)
    out = {}
    for node in program.step_nodes():
        if _mode_of(node) == "shape":
            args = [torch.empty(shapes[a.id], device="meta") if a.id in shapes else None for a in node.args]
            out[node.id] = registry.get(node.op).apply(args, dict(node.attrs), node.type)
    return out


def chunk_rows(n: int, world: int) -> list[int]:
    """Rows of each rank for `n` rows split as `torch.chunk` (FSDP2 and DTensor's Shard(0)): ⌈n/world⌉ each, the last
    ranks fewer, possibly none."""
    c = -(-n // world) if n else 0
    return [max(0, min(c, n - r * c)) for r in range(world)]


def assign_owners(costs: list[float], world: int) -> list[int]:
    """Owner rank of each matrix: greedy largest-first onto the least loaded rank (ties: the lowest rank)."""
    load = [0.0] * world
    owners = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(world), key=lambda r: (load[r], r))
        owners[i] = r
        load[r] += costs[i]
    return owners


def program_flops(program, shape: tuple[int, ...]) -> float:
    """FLOPs of one step of `program` on a parameter of `shape` (the plan's cost model, as `geo explain`)."""
    from ..compiler.plan import concrete_shapes, phase_cost, plan
    shapes = concrete_shapes(program, shape)
    total = sum(phase_cost(phase, shapes, 4).flops for phase in plan(program).phases)
    return total if total == total else float(math.prod(shape))
