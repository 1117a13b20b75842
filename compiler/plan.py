"""The kernel plan: a program's step partitioned into host work, fused elementwise kernels and single ops.

    host      every `Scalar` node (hyperparameter arithmetic, `t`, shape facts): Python floats on the host,
              computed once per distinct (shape, step) of a group, as torch.optim computes its bias corrections
    Kernel    a maximal elementwise region between matrix and reduction boundaries: ONE kernel launch (Triton)
              or one sweep of multi-tensor ops (the torch path), over every parameter of the group at once
    OpCall    a matrix, reduction, init or shape op, run by its torch implementation (same-shape matrices of a
              group batched into one call)

Partitioning (tinygrad's scheduler, in miniature): a node's *level* counts the boundary ops on its longest
path from the inputs. Elementwise nodes sink to the latest level their users allow (a value computed where it
is used is never written to memory), then the nodes of one level and one iteration shape form one kernel.
Elementwise results only grow in shape along a path (broadcasting), so the kernels of a level, ordered by
their first node, never wait on each other in a cycle. A kernel *materializes* (writes to memory) only what
a later phase or the program's outputs read; everything else lives in registers.

`in_place`: the program outputs that may be stored straight into their own buffer (the parameter, a state)
by the phase that computes them, because no later phase reads the old value. The others go to a fresh
buffer that the runtime binds (a state) or copies (the parameter) after the step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..dsl.diagnostics import InternalError
from .ir import SOURCE_OPS, Node, Program
from .ops import registry
from .types import DTYPES, Scalar, Static, Tensor


def is_host(n: Node) -> bool:
    """A Python float on the host: hyperparameters, `t`, constants and scalar arithmetic on them."""
    return isinstance(n.type, (Scalar, Static))


def is_fusible(n: Node) -> bool:
    """A tensor op a kernel can compute element by element."""
    if is_host(n) or n.op in SOURCE_OPS:
        return False
    opdef = registry.get(n.op)
    return opdef is not None and opdef.kind == registry.ELEMENTWISE


@dataclass
class Kernel:
    index: int
    level: int
    shape: tuple[Any, ...] | None  # the iteration domain (symbolic dims); None: the parameter's own shape
    nodes: list[Node]              # elementwise nodes, in topological order
    inputs: list[Node] = field(default_factory=list)   # tensors read from memory
    scalars: list[Node] = field(default_factory=list)  # host scalars: kernel arguments
    outputs: list[Node] = field(default_factory=list)  # tensors written to memory

    label = "kernel"


@dataclass
class OpCall:
    index: int
    level: int
    node: Node

    label = "op"

    @property
    def nodes(self) -> list[Node]:
        return [self.node]


@dataclass
class Plan:
    program: Program
    host: list[Node]
    phases: list[Kernel | OpCall]
    in_place: set[str]
    sources: list[Node]            # param, grad and state reads, and per-parameter inputs (the random key)

    def kernels(self) -> list[Kernel]:
        return [p for p in self.phases if isinstance(p, Kernel)]

    def show(self) -> str:
        """`--emit plan`: the phases in order, what each reads and writes."""
        p = self.program
        num = {n.id: i for i, n in enumerate(p.nodes())}

        def refs(nodes: list[Node]) -> str:
            return ", ".join(f"%{num[n.id]}" for n in nodes) or "-"

        lines = [f"plan {p.optimizer}[{p.rule_index}] {p.rule_text}: {p.param_type.show()}",
                 f"  host: {refs(self.host)}"]
        written = {n.id: name for name, n in p.outputs.items()}
        for phase in self.phases:
            if isinstance(phase, Kernel):
                shape = "param" if phase.shape is None else "[" + ", ".join(str(d) for d in phase.shape) + "]"
                outs = ", ".join(f"%{num[n.id]}" + (f"->{written[n.id]}" + ("!" if written[n.id] in self.in_place
                                                                              else "") if n.id in written else "")
                                 for n in phase.outputs)
                lines.append(f"  kernel k{phase.index} (level {phase.level}, over {shape}): "
                             f"{len(phase.nodes)} ops {refs(phase.nodes)}")
                lines.append(f"    reads {refs(phase.inputs)}; scalars {refs(phase.scalars)}; writes {outs or '-'}")
            else:
                n = phase.node
                out = f" -> {written[n.id]}" if n.id in written else ""
                lines.append(f"  op %{num[n.id]} = {n.op}({refs(list(n.args))}) (level {phase.level}){out}")
        lines.append("  in place: " + (", ".join(sorted(self.in_place)) or "-") + "   (! marks a write into its own buffer)")
        return "\n".join(lines)


def plan(program: Program) -> Plan:
    nodes = program.step_nodes()
    users: dict[int, list[Node]] = {n.id: [] for n in nodes}
    for n in nodes:
        for a in n.args:
            users[a.id].append(n)
    host = [n for n in nodes if is_host(n)]
    sources = [n for n in nodes if n.op in ("param", "grad", "state", "input") and not is_host(n)]
    work = [n for n in nodes if not is_host(n) and n.op not in SOURCE_OPS]

    # ASAP levels: a boundary op's result is available one level after its inputs.
    level: dict[int, int] = {n.id: 0 for n in nodes}
    for n in work:
        level[n.id] = max((level[a.id] + (0 if is_fusible(a) or a.op in SOURCE_OPS or is_host(a) else 1)
                           for a in n.args), default=0)
    # Sink elementwise nodes towards their users (ALAP), so values are computed where they are read.
    for n in reversed(work):
        if is_fusible(n) and users[n.id]:
            level[n.id] = max(level[n.id], min(level[u.id] for u in users[n.id]))

    phases = _order(_partition(work, level, None), users)
    if phases is None:
        # Two shapes that differ as symbols and agree on the parameter's shape (`[m, m]` and `[n, n]` of a square
        # W) can feed each other within a level, so the growth argument above does not order their kernels. Then
        # a kernel also starts anew after each change of shape on a path inside the level (its stage): every
        # edge between kernels of one level goes to a later stage, and the kernels are ordered.
        stage: dict[int, int] = {}
        for n in work:
            stage[n.id] = max((stage.get(a.id, 0) + (a.type.shape != n.type.shape) for a in n.args
                               if is_fusible(a) and level[a.id] == level[n.id]), default=0) if is_fusible(n) else 0
        phases = _order(_partition(work, level, stage), users)
        if phases is None:
            raise InternalError("plan", "the fused kernels depend on each other in a cycle", None, "")
    phase_of = {n.id: ph.index for ph in phases for n in ph.nodes}
    outputs = {n.id for n in program.outputs.values()}
    for ph in phases:
        if not isinstance(ph, Kernel):
            continue
        inside = {n.id for n in ph.nodes}
        seen: set[int] = set()
        for n in ph.nodes:
            for a in n.args:
                if a.id in inside or a.id in seen:
                    continue
                seen.add(a.id)
                (ph.scalars if is_host(a) else ph.inputs).append(a)
            if n.id in outputs or any(phase_of.get(u.id) != ph.index for u in users[n.id]):
                ph.outputs.append(n)

    # A slot's old value (its `state` / `param` read) must not be overwritten before its last reader ran.
    last_read: dict[str, int] = {}
    for n in sources:
        if n.op in ("grad", "input"):
            continue
        slot = "param" if n.op == "param" else n.attr("name")
        last_read[slot] = max((phase_of.get(u.id, -1) for u in users[n.id]), default=-1)
    in_place = set()
    for name, n in program.outputs.items():
        if is_host(n) or n.op in SOURCE_OPS or n.id not in phase_of:
            continue
        if last_read.get(name, -1) <= phase_of[n.id]:
            in_place.add(name)
    return Plan(program, host, phases, in_place, sources)


def _partition(work: list[Node], level: dict[int, int], stage: dict[int, int] | None) -> list[Kernel | OpCall]:
    """One kernel per (level, iteration shape[, stage]) of the fusible nodes, one op per other node."""
    phases: list[Kernel | OpCall] = []
    by_key: dict[tuple, Kernel] = {}
    for n in work:
        if is_fusible(n):
            key = (level[n.id], n.type.shape, stage[n.id] if stage is not None else 0)
            kernel = by_key.get(key)
            if kernel is None:
                kernel = by_key[key] = Kernel(len(phases), level[n.id], n.type.shape, [])
                phases.append(kernel)
            kernel.nodes.append(n)
        else:
            phases.append(OpCall(len(phases), level[n.id], n))
    return phases


def _order(phases: list[Kernel | OpCall], users: dict[int, list[Node]]) -> list[Kernel | OpCall] | None:
    """A topological order of the phases, earliest level first and, within a level, kernels before ops; None
    where they wait on each other in a cycle."""
    import heapq
    home = {n.id: i for i, ph in enumerate(phases) for n in ph.nodes}
    after: dict[int, set[int]] = {i: set() for i in range(len(phases))}
    waiting = [0] * len(phases)
    for i, ph in enumerate(phases):
        for n in ph.nodes:
            for u in users[n.id]:
                j = home.get(u.id)
                if j is not None and j != i and j not in after[i]:
                    after[i].add(j)
                    waiting[j] += 1
    key = [(ph.level, isinstance(ph, OpCall), i) for i, ph in enumerate(phases)]
    ready = [key[i] for i in range(len(phases)) if not waiting[i]]
    heapq.heapify(ready)
    ordered = []
    while ready:
        i = heapq.heappop(ready)[2]
        ordered.append(phases[i])
        for j in after[i]:
            waiting[j] -= 1
            if not waiting[j]:
                heapq.heappush(ready, key[j])
    if len(ordered) != len(phases):
        return None
    for i, ph in enumerate(ordered):
        ph.index = i
    return ordered


# ---- cost summary (`geo explain`) -------------------------------------------------------------------------
@dataclass
class Cost:
    bytes_read: float = 0.0
    bytes_written: float = 0.0
    flops: float = 0.0


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def concrete_shapes(program: Program, shape: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    """Every tensor node's shape for one bound parameter shape (the rule's view of it)."""
    dims: dict[Any, int] = {}
    pshape = program.param_type.shape
    if pshape is not None and not program.param_type.batched and len(pshape) == len(shape):
        dims = {d: s for d, s in zip(pshape, shape) if isinstance(d, str)}
    elif pshape is not None and program.param_type.batched:
        dims = {d: s for d, s in zip(pshape, shape[len(shape) - len(pshape):]) if isinstance(d, str)}
    lead = shape[:len(shape) - len(pshape)] if pshape is not None and program.param_type.batched else ()
    out: dict[int, tuple[int, ...]] = {}
    for n in program.nodes():
        t = n.type
        if not isinstance(t, Tensor):
            continue
        if t.shape is None:
            out[n.id] = shape
        else:
            out[n.id] = (lead if t.batched else ()) + tuple(dims.get(d, d) if isinstance(d, str) else d
                                                          for d in t.shape)
    return out


def _itemsize(n: Node, param_bytes: int) -> int:
    dtype = n.type.dtype if isinstance(n.type, Tensor) else "param"
    return DTYPES[dtype].itemsize if dtype in DTYPES else param_bytes


def phase_cost(phase: Kernel | OpCall, shapes: dict[int, tuple[int, ...]], param_bytes: int = 4) -> Cost:
    """Bytes a phase reads and writes and the FLOPs it does, for one parameter."""
    c = Cost()
    nodes = phase.nodes
    reads = phase.inputs if isinstance(phase, Kernel) else [a for a in phase.node.args if not is_host(a)]
    writes = phase.outputs if isinstance(phase, Kernel) else [phase.node]
    # a factorization's tuple is its factors, counted where they are read (`item`); a random key is no memory
    reads, writes = [n for n in reads if n.id in shapes], [n for n in writes if n.id in shapes]
    c.bytes_read = sum(_numel(shapes[n.id]) * _itemsize(n, param_bytes) for n in reads)
    c.bytes_written = sum(_numel(shapes[n.id]) * _itemsize(n, param_bytes) for n in writes)
    for n in nodes:
        opdef = registry.get(n.op)
        if opdef.cost is not None:
            c.flops += float(opdef.cost([shapes.get(a.id, ()) for a in n.args], dict(n.attrs)))
        elif opdef.kind == registry.ELEMENTWISE:
            c.flops += _numel(shapes[n.id])
        elif opdef.kind == registry.REDUCTION:
            c.flops += sum(_numel(shapes[a.id]) for a in n.args if a.id in shapes)
    return c
