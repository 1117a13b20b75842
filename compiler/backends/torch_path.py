"""The torch path (the "torch" backend, `TorchPathStep`): a program's plan executed over every parameter of a
group at once.

Each elementwise node is ONE multi-tensor call (`torch._foreach_*`, the operator's `foreach` facet) over the
whole group; a node whose operator has no facet, and every matrix/reduction op, runs its torch reference per
tensor (on CUDA, same-shape matrices are stacked into one batched call: one Newton–Schulz for all of them).
Host scalars are computed once per distinct (shape, step) of the group.

In place, as torch.optim's foreach paths: a node overwrites its first argument when that value is dead
afterwards, the buffer belongs to the step (an intermediate, or the old value of a state or of the parameter
that the program rewrites), and the result has that buffer's shape and dtype. Which nodes qualify depends on
the dtypes, shapes and strides of the group's tensors: a step on meta tensors decides them for each group
layout (in place only where the out-of-place result is row-major, as an in-place one into a row-major
buffer is), or, where that cannot be trusted, the layout's first real step runs out of place and records
them; later steps reuse the decisions. The arithmetic is the reference's, call for call, so the results are
bit-identical to the reference backend on CPU (the fuzzer's `agree` property checks it).
"""
from __future__ import annotations

from typing import Any

import torch

from ..ir import Node, Program
from ..ops import registry
from ..ops._foreach import Scalars
from ..plan import Kernel, concrete_shapes, is_host, plan
from .batching import batched_calls
from .epilogue import end_step, storage_id
from .reference import ReferenceStep, evaluate


class TorchPathStep:
    name = "torch"

    def __init__(self, program: Program):
        self.program = program
        self.plan = plan(program)
        self._reference = ReferenceStep(program)
        self.slots = {s.name: s for s in program.states}
        order = [n for ph in self.plan.phases for n in ph.nodes]
        self.order = order
        position = {n.id: i for i, n in enumerate(order)}
        end = len(order)
        # the position of each value's last reader; program outputs live to the end of the step
        self.last_use: dict[int, int] = {}
        for n in order:
            for a in n.args:
                self.last_use[a.id] = max(self.last_use.get(a.id, -1), position[n.id])
        for n in program.outputs.values():
            self.last_use[n.id] = end
        self.position = position
        rewritten = {name for name in program.outputs if name != "param"}
        # old values whose buffers the step may reuse once they are dead
        self.reusable_sources = {n.id for n in self.plan.sources
                                 if n.op == "param" or (n.op == "state" and n.attr("name") in rewritten)}
        self.host_nodes = [n for n in program.step_nodes() if is_host(n) or n.op in ("param", "grad")]
        # Shape facts of intermediate tensors (`rows(W * s)`) need only their shapes: meta tensors stand in.
        self.shaped = [a for n in self.host_nodes if is_host(n) for a in n.args
                       if not is_host(a) and a.op not in ("param", "grad")]
        self.fused = {n.id for k in self.plan.phases if isinstance(k, Kernel) for n in k.nodes}
        self._inplace: dict[tuple, set[int]] = {}
        # A per-tensor op (Newton–Schulz) between multi-tensor calls holds the calls' results for the whole
        # group until it has run on every tensor: Muon's Nesterov blend, 340 MB for GPT-2 small's matrices,
        # freed at the end of the step and faulted in again page by page on the next (up to 9 % of the step,
        # depending on the allocator's state). One tensor at a time, as torch.optim.Muon loops, holds one
        # tensor's (small tensors go together, up to CPU_CHUNK_BYTES: one at a time, 200 64×64 matrices took 22 %
        # longer in Python). On CUDA, the caching allocator keeps its blocks and the batched ops want the group.
        self.per_tensor_on_cpu = any(n.id not in self.fused or registry.get(n.op).foreach is None for n in order
                                     if not is_host(n))

    def show(self) -> str:
        """`geo compile --emit torch`: the calls one step makes for a whole group, phase by phase."""
        p = self.program
        num = {n.id: i for i, n in enumerate(p.nodes())}
        written = {n.id: name for name, n in p.outputs.items()}
        lines = [f"# {p.optimizer}[{p.rule_index}] {p.rule_text}: each line is one call over every parameter "
                 "of the group",
                 "host (per distinct shape and step): " + ", ".join(f"%{num[n.id]}" for n in self.plan.host
                                                                    if n.op not in ("const",))]
        for phase in self.plan.phases:
            lines.append(f"{phase.label} {'k' if isinstance(phase, Kernel) else 'p'}{phase.index}:")
            for n in phase.nodes:
                opdef = registry.get(n.op)
                args = ", ".join(f"%{num[a.id]}" for a in n.args)
                facet = opdef.foreach if n.id in self.fused else None
                how = getattr(facet, "call", None) or (f"per tensor: {n.op}'s torch reference"
                                                        + (" (batched by shape on CUDA)" if opdef.kind == registry.MATRIX
                                                           else ""))
                first = n.args[0] if n.args else None
                notes = []
                if facet is not None and first is not None and not is_host(first) and first.op != "grad" and (
                        first.op not in ("param", "state") or first.id in self.reusable_sources) \
                        and self.last_use.get(first.id) == self.position[n.id]:
                    notes.append(f"in place into %{num[first.id]} when shapes and dtypes allow")
                if n.id in written:
                    notes.append(f"-> {written[n.id]}")
                line, col = n.span.source.line_col(n.span.start) if n.span.source.text else (0, 0)
                where = f"  @{line}:{col}" if line else ""
                lines.append(f"  %{num[n.id]} = {n.op}({args})  {how}" + (f"  [{'; '.join(notes)}]" if notes else "")
                             + where)
        return "\n".join(lines)

    def init(self, param, hypers):
        return self._reference.init(param, hypers)

    # ---- the step
    def step_group(self, params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict[str, Any]],
                   hypers: dict[str, Any], ts: list[float], inputs: list[dict[str, Any]] | None = None) -> None:
        """One multi-tensor step for the group; on the CPU, where the program has per-tensor ops, one for each
        run of consecutive tensors of at most CPU_CHUNK_BYTES (a bigger tensor alone). Every operation acts on
        each tensor alone, so this changes no result."""
        inputs = inputs if inputs is not None else [{} for _ in params]
        if self.per_tensor_on_cpu and params and not params[0].is_cuda:
            for lo, hi in _chunks(params, CPU_CHUNK_BYTES):
                self._step_chunk(params[lo:hi], grads[lo:hi], states[lo:hi], hypers, ts[lo:hi], inputs[lo:hi])
        else:
            self._step_chunk(params, grads, states, hypers, ts, inputs)

    def _step_chunk(self, params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict[str, Any]],
                    hypers: dict[str, Any], ts: list[float], inputs: list[dict[str, Any]]) -> None:
        layout = tuple((p.shape, p.stride(), p.dtype, g.stride(), g.dtype) for p, g in zip(params, grads))
        host = self._host_values(params, grads, states, hypers, ts, inputs)
        inplace = self._inplace.get(layout)
        if inplace is None and sum(p.numel() * p.element_size() for p in params) >= META_PROBE_BYTES:
            inplace = self._inplace[layout] = self._meta_probe(params, grads, states, host, inputs)
        if inplace is None:  # decided on the real tensors: this step runs out of place
            values, self._inplace[layout] = self._evaluate(params, grads, states, host, set(), inputs, record=True)
        else:
            values, _ = self._evaluate(params, grads, states, host, inplace, inputs)
        self._write(params, grads, states, values, host)

    def _meta_probe(self, params, grads, states, host, inputs) -> set[int] | None:
        """The in-place decisions for a layout, from a step on meta tensors (shapes, dtypes and strides, no data):
        the first real step then runs in place already, without the out-of-place step's temporaries (GPT-2
        medium's AdamW: a first step of 1.1 s instead of 6.5–12.5 s). None where an op needs data (a solver that
        reads a value on the host), and where a candidate's result has a dim of size 1: the stride torch gives
        such a dim differs between meta and CPU tensors ((5, 1): (1, 1) against (1, 5)), and a later matmul
        rounds by it."""
        def meta(t: Any) -> Any:
            return torch.empty_like(t, device="meta") if isinstance(t, torch.Tensor) else t
        try:
            _, found = self._evaluate([meta(p) for p in params], [meta(g) for g in grads],
                                      [{k: meta(v) for k, v in s.items()} for s in states], host, set(), inputs,
                                      record=True)
        except Exception:  # noqa: BLE001 - an op without a meta form, or a size-1 dim: decide on the real tensors
            return None
        return found

    def _evaluate(self, params, grads, states, host, inplace: set[int], inputs, record: bool = False
                  ) -> tuple[dict[int, Any], set[int]]:
        """Runs the plan's nodes; returns the values alive at the end, and with `record` (nothing in place) the
        nodes that may write into their first argument: those whose result has its shape and dtype and is
        row-major."""
        found: set[int] = set()
        values: dict[int, Any] = {}
        owned: set[int] = set()       # values whose buffers this step may overwrite once they are dead
        # The values whose buffers a value may share (itself, and what it is a view of: `A.T` shares A's): an op
        # may not write its first argument in place while another value that is still to be read shares its
        # memory, an argument of the same op (`A + A.T`) or a view read later (`abs(A) ^ A.T`).
        roots: dict[int, frozenset[int]] = {}
        for n in self.plan.sources:
            if n.op == "param":
                values[n.id] = params
            elif n.op == "grad":
                values[n.id] = grads
            elif n.op == "input":
                values[n.id] = [i[n.attr("name")] for i in inputs]
            else:
                values[n.id] = [s[n.attr("name")] for s in states]
            roots[n.id] = frozenset((n.id,))
            if n.id in self.reusable_sources:
                owned.add(n.id)
        for n in self.order:
            args = [values[a.id] if a.id in values else host[a.id] for a in n.args]
            first = n.args[0] if n.args else None
            reuse = (first is not None and first.id in owned and n.id in inplace
                     and self.last_use.get(first.id) == self.position[n.id]
                     and not any(v != first.id and not roots[first.id].isdisjoint(roots.get(v, ())) for v in values)
                     and _row_major_first(args))
            opdef = registry.get(n.op)
            attrs = dict(n.attrs)
            out = opdef.foreach(args, attrs, reuse) if n.id in self.fused and opdef.foreach is not None else None
            in_place = out is not None and reuse  # then the result is the first argument's (dead, owned) buffers
            if out is None:
                out = self._op(opdef, args, attrs, n, len(params))
            values[n.id] = out
            if record and first is not None and first.id in values and _fits(out, values[first.id]):
                if any(r.is_meta and 1 in r.shape for r in out):
                    raise ValueError("a size-1 dim: its stride on meta tensors is not the CPU's")
                if all(_row_major(r) for r in out):
                    found.add(n.id)
            # A result with buffers of its own may be overwritten later; one that shares an argument's (a view,
            # a `where` that selects) may not. (Recording, nothing is overwritten: meta tensors have no storage.)
            if not record:
                shared = [a.id for a in n.args if a.id in values and _shares(out, [values[a.id]])]
                roots[n.id] = frozenset((n.id,)).union(*(roots[a] for a in shared))
                if not [a for a in shared if not (in_place and a == first.id)]:
                    owned.add(n.id)
            for a in n.args:  # a value no later node reads frees its buffers now, not at the end of the step
                if self.last_use.get(a.id) == self.position[n.id] and a.id in values:
                    del values[a.id]
        return values, found

    def _host_values(self, params, grads, states, hypers, ts, inputs) -> dict[int, Any]:
        """Each host node's value: one float for the group, or a list (one per parameter) where shapes, steps or
        host inputs (`across` values) differ."""
        by_key: dict[tuple, dict[int, Any]] = {}
        keys = []
        for p, g, s, t, i in zip(params, grads, states, ts, inputs):
            key = (p.shape, t, tuple((k, v) for k, v in sorted(i.items()) if isinstance(v, float)))
            keys.append(key)
            if key not in by_key:
                env = {"param": p, "grad": g, "state": s, "hypers": hypers, "t": t, "inputs": i}
                by_key[key] = evaluate(self.host_nodes, env, self._stand_ins(p))
        host: dict[int, Any] = {}
        single = len(by_key) == 1
        for n in self.host_nodes:
            if not is_host(n):
                continue
            if single:
                host[n.id] = next(iter(by_key.values()))[n.id]
            else:
                column = [by_key[k][n.id] for k in keys]
                same = all(v == column[0] or (v != v and column[0] != column[0]) for v in column)
                host[n.id] = column[0] if same else Scalars(column)
        return host

    def _stand_ins(self, p: torch.Tensor) -> dict[int, torch.Tensor]:
        if not self.shaped:
            return {}
        shapes = concrete_shapes(self.program, tuple(p.shape))
        return {a.id: torch.empty(shapes[a.id], device="meta") for a in self.shaped}

    def _op(self, opdef, args, attrs, n: Node, count: int) -> list[Any]:
        """An op without a multi-tensor form: per tensor; on CUDA, same-shape matrices in one batched call (on the
        CPU each matrix alone, which keeps the results bit-identical to the reference's)."""
        first = next((a for a in args if isinstance(a, list) and a and isinstance(a[0], torch.Tensor)), None)
        if first is not None and first[0].is_cuda and opdef.batches and count > 1:
            columns = [_column(args, i) for i in range(count)]
            out = batched_calls(opdef, columns, attrs, n.type)
            return [r if r is not None else opdef.apply(columns[i], attrs, n.type) for i, r in enumerate(out)]
        return [opdef.apply(_column(args, i), attrs, n.type) for i in range(count)]

    def _write(self, params, grads, states, values, host) -> None:
        """Binds each state to its new value (cast to its storage dtype) and writes the parameter."""
        for i, (p, g, state) in enumerate(zip(params, grads, states)):
            end_step(p, g, state, self.program.outputs, self.slots,
                     lambda _, node: values[node.id][i] if node.id in values else _at(host[node.id], i))


def _column(args: list[Any], i: int) -> list[Any]:
    return [_at(a, i) for a in args]


def _at(a: Any, i: int) -> Any:
    return a[i] if isinstance(a, (list, Scalars)) else a


def _shares(out: list[Any], inputs: list[Any]) -> bool:
    """Some result shares memory with a tensor argument (a view, or the argument itself)."""
    taken = {storage_id(t) for a in inputs if isinstance(a, list) for t in a if isinstance(t, torch.Tensor)}
    return any(isinstance(r, torch.Tensor) and storage_id(r) in taken for r in out)



CPU_CHUNK_BYTES = 4 << 20


def _chunks(params: list[torch.Tensor], budget: int) -> list[tuple[int, int]]:
    """Runs of consecutive tensors, each of at most `budget` bytes of parameters or a single bigger tensor."""
    out, lo, size = [], 0, 0
    for i, p in enumerate(params):
        nbytes = p.numel() * p.element_size()
        if i > lo and size + nbytes > budget:
            out.append((lo, i))
            lo, size = i, 0
        size += nbytes
    out.append((lo, len(params)))
    return out


# A step on meta tensors costs Python time (1–10 ms, more with matrix ops); an out-of-place first step costs
# time and memory in proportion to the tensors. Below this many bytes of parameters the latter is cheaper.
META_PROBE_BYTES = 64 << 20


def _row_major_first(args: list[Any]) -> bool:
    """The first argument has exactly row-major strides (size-1 dims included). With the probe's finding that
    the reference's new tensor is row-major too, an in-place result is laid out as the reference's would be: a
    later matrix op rounds differently on another memory layout (a transposed SVD factor, a (2, 1) matrix with
    strides (1, 2)). The other arguments may have any layout (a tall matrix's msign is a transposed view)."""
    return isinstance(args[0], list) and all(_row_major(t) for t in args[0])


def _row_major(t: torch.Tensor) -> bool:
    expected = 1
    for size, stride in zip(reversed(t.shape), reversed(t.stride())):
        if stride != expected:
            return False
        expected *= size
    return True


def _fits(out: list[Any], first: Any) -> bool:
    """Every result has its first argument's shape and dtype (and is a tensor): it may be computed in place."""
    if not isinstance(first, list):
        return False
    return all(isinstance(r, torch.Tensor) and isinstance(a, torch.Tensor) and r.shape == a.shape
               and r.dtype == a.dtype for r, a in zip(out, first))


