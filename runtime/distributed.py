"""A geo optimizer over DTensor parameters (FSDP2's `fully_shard`, `Shard(0)`, uneven shards included): issue 11.

Each parameter's compiled rule is classified from its operators' `sharding` facets (compiler/ops/registry.py):

- **local**: only LOCAL operators (and reductions that keep the rows, such as `row_mean_sq`): every rank runs the
  ordinary step on its own rows; nothing communicates.
- **reduce**: the step also reduces across rows (a Frobenius norm, a mean over the tensor): every rank runs it on its
  rows with the reference interpreter, and each reduction across rows is the ranks' partials (float64) all-reduced
  and combined as the operator's facet says, every parameter's partials at one depth in one `all_reduce` per combine
  kind.
- **split** (WHOLE operators in the step): the operators that need the whole matrix, and what lies between them,
  run on the parameter's owner; every rank computes what they read on its rows, one `all_to_all_single` per dtype
  carries it to the owners, and one carries the rows of their results back (Dion's volume for Muon: one tensor each
  way); the rest of the step runs on the rows.
- **owner** (a view or a transposed role; a rule compiled for its shape; an initial state or `when` condition that
  needs more than the rows): the whole step on the owner. One `all_to_all_single` per dtype carries every rank's
  rows of the parameter, its gradient and its states to the owner, the owner runs the ordinary single-process step
  on the whole tensors, and a second carries the rows of the new parameter and states back.

Owners are chosen once, greedily largest-FLOPs-first onto the least loaded rank, so no rank runs every matrix's
Newton–Schulz. Shape facts (`rows`, `cols`, Muon's scale factor: the `SHAPE_OF` facet) are the whole parameter's.

States of a sharded parameter are DTensors on the parameter's mesh: `Shard(0)` when they have rows (the
parameter's placement for parameter-shaped states; a power-iteration vector or a preconditioner is split by rows
the same way), `Replicate()` when 0-d or the same on every rank (column statistics of a reduce-mode rule). Uniform DTensor storage is what lets `torch.distributed.checkpoint` save,
load and reshard them (`save`, `load` below) and spreads their memory over the ranks.

Every rank takes the same decisions: the non-finite gradient check is one all-reduce (MIN) of one flag per
parameter, so a gradient with a NaN on one rank skips that parameter on every rank; the random seed is rank 0's,
broadcast once, and a random operator (a WHOLE operator) draws on the owner from the whole tensor's key, so a
sharded run draws what the unsharded one does. Communication uses torch.distributed only (gloo on CPUs, nccl on
GPUs, unchanged).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from ..compiler import backends
from ..compiler.backends.reference import ReferenceStep, evaluate
from ..compiler.ir import reachable
from ..compiler.ops import registry
from .checkpoint import STEP_KEY, param_name
from .shard_plan import (COLLECTIVE, LOCAL, OWNER, REDUCE, SPLIT, assign_owners, chunk_rows, classify,
                         is_rows, program_flops, region, row_reductions, shape_facts)

if TYPE_CHECKING:
    from .optimizer import GeoOptimizer



def _dtensor():
    from torch.distributed.tensor import DTensor, Replicate, Shard
    return DTensor, Replicate, Shard


def is_sharded(opt: GeoOptimizer) -> bool:
    """Whether any parameter of the optimizer is a DTensor (the distributed step then runs)."""
    if not dist.is_available():  # a torch built without torch.distributed has no DTensors
        return False
    DTensor = _dtensor()[0]
    return any(isinstance(p, DTensor) for g in opt.param_groups for p in g["params"])


# ---- the exchange ------------------------------------------------------------------------------------------------
@dataclass
class _Piece:
    """One tensor of one owner-computed parameter: its global shape, dtype, whether it is split by rows (else it is
    replicated, 0-d), this rank's local part, and on the owner, after the gather, the whole."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    sharded: bool
    local: torch.Tensor | None = None
    whole: torch.Tensor | None = None

    def rows(self, world: int) -> list[int]:
        return chunk_rows(self.shape[0], world) if self.sharded else [0] * world

    def numel_of(self, world: int, rank: int) -> int:
        inner = math.prod(self.shape[1:]) if self.shape else 1
        return self.rows(world)[rank] * inner


def _exchange(pieces_by_owner: list[tuple[int, list[_Piece]]], group, world: int, rank: int, device,
              to_owner: bool) -> tuple[int, int]:
    """One all_to_all_single per dtype. to_owner: every rank's rows of each sharded piece go to its owner, who
    assembles `whole`; else the owner sends each rank its rows of `whole` (into `local`) and every rank the whole
    of a replicated piece. Returns (collectives issued, bytes this rank sent)."""
    # every rank holds the same pieces (same parameters, same states), so all enter the same collectives
    dtypes = sorted({p.dtype for _, ps in pieces_by_owner for p in ps}, key=str)
    calls = sent = 0
    for dtype in dtypes:
        send: list[list[torch.Tensor]] = [[] for _ in range(world)]
        recv_plan: list[list[tuple[_Piece, int]]] = [[] for _ in range(world)]  # per source: (piece, numel)
        for owner, ps in pieces_by_owner:
            for p in ps:
                if p.dtype != dtype:
                    continue
                if to_owner:
                    if p.sharded and rank != owner:
                        send[owner].append(p.local.reshape(-1))
                    if rank == owner and p.sharded:
                        for src in range(world):
                            if src != owner:
                                recv_plan[src].append((p, p.numel_of(world, src)))
                else:
                    if rank == owner:
                        for dst in range(world):
                            if dst == owner:
                                continue
                            if p.sharded:
                                start = sum(p.rows(world)[:dst])
                                send[dst].append(p.whole[start:start + p.rows(world)[dst]].reshape(-1))
                            else:
                                send[dst].append(p.whole.reshape(-1))
                    else:
                        recv_plan[owner].append((p, p.numel_of(world, rank) if p.sharded else math.prod(p.shape)))
        in_sizes = [sum(t.numel() for t in s) for s in send]
        out_sizes = [sum(n for _, n in r) for r in recv_plan]
        flat_in = torch.cat([t for s in send for t in s]) if any(in_sizes) else torch.empty(0, dtype=dtype,
                                                                                              device=device)
        flat_out = torch.empty(sum(out_sizes), dtype=dtype, device=device)
        dist.all_to_all_single(flat_out, flat_in.contiguous(), out_sizes, in_sizes, group=group)
        calls += 1
        sent += flat_in.numel() * flat_in.element_size()
        received: dict[int, dict[int, torch.Tensor]] = {}  # id(piece) -> source -> its part
        offset = 0
        for src in range(world):
            for p, n in recv_plan[src]:
                received.setdefault(id(p), {})[src] = flat_out[offset:offset + n]
                offset += n
        for owner, ps in pieces_by_owner:
            for p in ps:
                if p.dtype != dtype:
                    continue
                if to_owner and rank == owner:
                    if p.sharded:
                        parts = []
                        for src, n_rows in enumerate(p.rows(world)):
                            part = p.local if src == owner else received[id(p)][src]
                            parts.append(part.reshape(n_rows, *p.shape[1:]))
                        p.whole = torch.cat(parts)
                    else:
                        p.whole = p.local.clone()
                elif not to_owner and rank != owner:
                    part = received[id(p)][owner]
                    shape = (p.rows(world)[rank], *p.shape[1:]) if p.sharded else p.shape
                    p.local = part.reshape(shape)
        # the owner keeps its own rows of the result
        if not to_owner:
            for owner, ps in pieces_by_owner:
                if rank == owner:
                    for p in ps:
                        if p.dtype == dtype:
                            start = sum(p.rows(world)[:rank]) if p.sharded else 0
                            p.local = p.whole[start:start + p.rows(world)[rank]] if p.sharded else p.whole
    return calls, sent


# ---- the step ----------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Item:
    group: dict[str, Any]
    rule: Any
    statics: dict[str, Any]
    hypers: dict[str, Any]
    p: Any  # the DTensor parameter
    rank_active: tuple
    shape: tuple[int, ...]
    mode: str
    fresh: bool
    t0: float
    decided: dict[str, float]
    owner: int = 0
    pieces: dict[str, _Piece] = field(default_factory=dict)


def _mesh_info(p):
    """(process group, world size, this rank's coordinate) of a DTensor parameter, checking its placement."""
    DTensor, Replicate, Shard = _dtensor()
    mesh = p.device_mesh
    placements = tuple(p.placements)
    if mesh.ndim != 1 or not (placements == (Shard(0),) or placements == (Replicate(),)):
        raise ValueError(f"geo's distributed step supports DTensor parameters on a 1-D mesh placed Shard(0) (FSDP2's "
                         f"fully_shard) or Replicate(); this one is {list(placements)} on a {mesh.ndim}-D mesh")
    return mesh.get_group(), mesh.size(), mesh.get_local_rank()


def _local(t):
    DTensor = _dtensor()[0]
    return t._local_tensor if isinstance(t, DTensor) else t


def _wrap(local: torch.Tensor, p, full_shape: tuple[int, ...], sharded: bool = True):
    """A state as a DTensor on the parameter's mesh: Shard(0) with rows (Replicate for a replicated parameter),
    Replicate when 0-d or the same on every rank (`sharded` False)."""
    DTensor, Replicate, Shard = _dtensor()
    if not sharded or local.dim() == 0 or tuple(p.placements) == (Replicate(),):
        placements = [Replicate()]
    else:
        placements = [Shard(0)]
    stride = torch.empty(full_shape, device="meta").stride()
    return DTensor.from_local(local, p.device_mesh, placements, run_check=False, shape=torch.Size(full_shape),
                              stride=stride)


class DistributedState:
    """What the distributed step keeps between steps: whether the seed is agreed, the owners (by set of parameters),
    and the last step's traffic."""

    def __init__(self) -> None:
        self.seed_agreed = False
        # the last step's traffic from this rank: {"all_reduce", "all_to_all", "bytes"} (what `geo explain
        # --world-size` predicts; tests/distributed compares the two)
        self.last: dict[str, int] = {}
        self.plans: dict[tuple, dict[int, tuple[str, int]]] = {}


def _ensure_seed(opt: GeoOptimizer, group) -> None:
    ds = opt.__dict__.setdefault("_geo_dist", DistributedState())
    if not ds.seed_agreed:
        box = [opt._geo_seed]
        dist.broadcast_object_list(box, src=dist.get_global_rank(group, 0), group=group)
        opt._geo_seed = int(box[0])
        ds.seed_agreed = True


def plan_items(opt: GeoOptimizer, items: list[_Item], world: int) -> None:
    """Owners of the owner-computed parameters, balanced by FLOPs (computed once per set of parameters)."""
    ds = opt.__dict__.setdefault("_geo_dist", DistributedState())
    key = tuple((id(it.p), it.mode) for it in items)
    found = ds.plans.get(key)
    if found is None:
        owned = [it for it in items if it.mode in (OWNER, SPLIT)]
        costs = []
        for it in owned:
            rank_, active = it.rank_active
            program = opt._geo.program(it.rule, it.statics, rank_, active, shape=it.shape)
            costs.append(program_flops(program, it.shape))
        owners = assign_owners(costs, world)
        found = ds.plans[key] = {id(it.p): o for it, o in zip(owned, owners)}
    for it in items:
        if it.mode in (OWNER, SPLIT):
            it.owner = found[id(it.p)]


def step(opt: GeoOptimizer, init_only: bool = False) -> list[str | int]:
    """One step of every parameter with a gradient (`init_only`: create the states of every parameter that has
    none, and step nothing: `init_state`). Returns the keys of the parameters skipped for a non-finite gradient
    (on some rank), which the optimizer counts."""
    from . import across
    spec = opt._geo
    name = spec.info.name
    groups = opt._rule_groups()
    params = [(g, p) for g, *_ in groups for p in g["params"]]
    if not params:
        return []
    pg, world, rank = _mesh_info(params[0][1])
    for _, p in params:
        if _mesh_info(p)[:2] != (pg, world):
            raise ValueError(f"{name}: every parameter must live on one device mesh")
    _ensure_seed(opt, pg)
    todo = []
    for group, rule, statics, hypers in groups:
        seen = set()
        for p in group["params"]:
            if id(p) in seen:
                raise ValueError(f"{name}: parameter {param_name(group, p)} is listed twice in its group; the "
                                 "distributed step steps each parameter once")
            seen.add(id(p))
            if init_only:
                if not opt.state.get(p) and p.numel():
                    todo.append((group, rule, statics, hypers, p))
            elif p.grad is not None and p.numel():
                todo.append((group, rule, statics, hypers, p))
    skipped: list[str | int] = []
    ds = opt.__dict__["_geo_dist"]
    ds.last = {"all_reduce": 0, "all_to_all": 0, "bytes": 0, "reduce_bytes": 0}
    if not init_only and opt.nonfinite != "propagate" and todo:
        ds.last["all_reduce"] += 1
        flags = torch.stack([torch.isfinite(_local(p.grad)).all() for *_, p in todo]).to(torch.float32)
        flags = flags.to(_local(todo[0][4]).device)
        dist.all_reduce(flags, op=dist.ReduceOp.MIN, group=pg)  # one decision for all ranks
        kept = []
        for item, ok in zip(todo, flags.tolist()):
            if ok:
                kept.append(item)
                continue
            group, p = item[0], item[4]
            if opt.nonfinite == "raise":
                raise FloatingPointError(f"{name}: the gradient of parameter {param_name(group, p)} is not finite "
                                         "(on some rank)")
            skipped.append(opt._param_key(group, p))
        todo = kept
    across_step = across.run(opt) if spec.info.across is not None and not init_only else None
    decided = across_step.decided if across_step is not None else {}
    items = []
    for group, rule, statics, hypers, p in todo:
        _, rank_, active = opt._geo_binding[p]
        shape = opt._geo_shape(p)
        program = spec.program(rule, statics, rank_, active, shape=shape)
        mode, _ = classify(program, rule, p.dim(), p in opt._geo_transposed)
        if tuple(p.placements) == (_dtensor()[1](),):
            mode = LOCAL  # replicated: every rank holds the whole
        state = opt.state.get(p)
        items.append(_Item(group, rule, statics, hypers, p, (rank_, active), shape, mode, not state,
                           float(state[STEP_KEY]) if state else 0.0, decided.get(id(p), {})))
    plan_items(opt, items, world)
    if across_step is not None:
        across_step.commit(opt)
    for it in items:
        if it.mode == LOCAL or (it.mode in (REDUCE, SPLIT) and init_only):
            _step_local(opt, it, init_only)  # their initial states need only the rows (classify)
    if not init_only:
        _step_reduced(opt, [it for it in items if it.mode == REDUCE], pg, world)
        _step_split(opt, [it for it in items if it.mode == SPLIT], pg, world, rank)
    _step_owned(opt, [it for it in items if it.mode == OWNER], pg, world, rank, init_only)
    return skipped


def _run(opt: GeoOptimizer, it: _Item, param: torch.Tensor, grad: torch.Tensor | None,
         state: dict[str, torch.Tensor] | None, init_only: bool) -> dict[str, torch.Tensor]:
    """The ordinary single-process step of one parameter on plain tensors (its rows, or the whole on its owner):
    the rule's view, `maximize`, `when` blocks and random key as GeoOptimizer's step. Returns the new state
    (param updated in place)."""
    from .optimizer import _set_step, fresh_state
    spec = opt._geo
    rank_, active = it.rank_active
    backend = backends.resolve(opt._geo_backend, param.is_cuda, param.numel())
    if backend == "inductor":
        backend = "torch"  # the non-finite check is done above, once for all ranks
    runner = spec.runner(it.rule, it.statics, rank_, active, backend, shape=it.shape)
    # a weight stored (in, out) (a `.T` role: owner mode, whole tensors) is stepped as the rules see it, transposed
    base = param.T if it.p in opt._geo_transposed else param
    if state is None:
        state = fresh_state(base, it.rule, runner, it.hypers, (param, grad))
    if init_only:
        return state
    if it.p in opt._geo_transposed:
        grad = grad.T
    view = it.rule.view.forward(base, it.rule.view_args) if it.rule.view is not None else base
    if it.rule.view is not None:
        grad = it.rule.view.forward(grad, it.rule.view_args)
    if it.group.get("maximize"):
        grad = torch.neg(grad)
    t = it.t0 + 1
    inputs = opt._inputs(runner.program, it.group, it.p, t, it.decided)
    if runner.program.guards:
        firing = spec.firing(runner.program, view, grad, it.hypers, t, inputs)
        if firing is not None:
            runner = spec.runner(it.rule, it.statics, rank_, active, backend, firing, it.shape)
    extra = {"inputs": [inputs]} if inputs else {}
    runner.step_group([view], [grad], [state], it.hypers, [t], **extra)
    if view is not base and view.data_ptr() != base.data_ptr():
        base.copy_(view.reshape(base.shape))
    _set_step(state, t)
    return state


def _step_local(opt: GeoOptimizer, it: _Item, init_only: bool) -> None:
    p = it.p
    local_p = _local(p)
    old = opt.state.get(p)
    local_state = None if it.fresh else {k: _local(v) for k, v in old.items()}
    grad = None if init_only else _local(p.grad)
    if local_p.numel() == 0 and not it.fresh:  # no rows here: only the step count moves
        if not init_only:
            from .optimizer import _set_step
            _set_step(old, it.t0 + 1)
        return
    new = _run(opt, it, local_p, grad, local_state, init_only)
    if it.fresh:
        opt.state[p] = _wrapped_states(opt, it, new)
    else:
        _commit_rows(old, new, it.t0 + 1)


def _wrapped_states(opt: GeoOptimizer, it: _Item, new: dict[str, Any]) -> dict[str, Any]:
    """States made on this rank's rows as DTensors: Shard(0) where their type has the parameter's rows, else
    Replicate (a 0-d value, column statistics: the same on every rank)."""
    rank_, active = it.rank_active
    program = opt._geo.program(it.rule, it.statics, rank_, active, shape=it.shape)
    slots = {s.name: s for s in program.states}
    out = {}
    for k, v in new.items():
        if k == STEP_KEY or not isinstance(v, torch.Tensor):
            out[k] = v
            continue
        rows = k in slots and is_rows(slots[k].type, program) and v.dim() > 0
        out[k] = _wrap(v, it.p, (it.p.shape[0], *v.shape[1:]) if rows else tuple(v.shape), rows)
    return out




def _partial(node, args: list[Any], program, p, world_rows: int):
    """This rank's part of a reduction across rows, as float64, and how the all-reduced part becomes the node's
    value: sums add, maxima and minima compare; a mean or RMS adds count-weighted partials (sums of values or of
    squares) and divides by the whole count. A rank without rows gives the combine's identity."""
    opdef = registry.get(node.op)
    attrs = dict(node.attrs)
    facet = opdef.sharding_for(attrs)
    x = args[0]
    dims = facet.reduced_dims(attrs, x.dim())
    local_count = math.prod(x.shape[d] for d in dims)
    whole_count = math.prod(world_rows if d == 0 else x.shape[d] for d in dims)
    meta = opdef.apply([a.to("meta") if isinstance(a, torch.Tensor) else a for a in args], attrs, node.type) \
        if not isinstance(node.type, registry.Scalar) else None
    if local_count == 0:
        fill = {"max": -math.inf, "min": math.inf}.get(facet.combine, 0.0)
        part = torch.full(meta.shape if meta is not None else (), fill, dtype=torch.float64)
    else:
        value = opdef.apply(args, attrs, node.type)
        part = torch.as_tensor(value, dtype=torch.float64)
        if facet.combine == "mean":
            part = part * local_count
        elif facet.combine == "rms":
            part = part * part * local_count
    like = meta

    def finish(total: torch.Tensor):
        if facet.combine == "mean":
            total = total / whole_count
        elif facet.combine == "rms":
            total = torch.sqrt(total / whole_count)
        if like is None:
            return float(total)
        return total.to(dtype=like.dtype, device=x.device).reshape(like.shape)
    return part.reshape(-1), COLLECTIVE[facet.combine], finish


def _step_reduced(opt: GeoOptimizer, items: list[_Item], pg, world: int) -> None:
    """Reductions across rows: every rank runs the step on its rows with the reference interpreter; each reduction
    that crosses rows is this rank's partial, all-reduced in lockstep with the same reduction of every other such
    parameter (one all_reduce per combine kind and level: few collectives, a few bytes each), then the rest of the
    step runs on the rows."""
    if not items:
        return
    ds = opt.__dict__["_geo_dist"]
    runs = []
    for it in items:
        program, env, state, old = _prepared(opt, it)
        runs.append((it, program, env, row_reductions(program, it.p.dim()), shape_facts(program, it.shape), state,
                     old))
    for level in range(max(len(r[3]) for r in runs)):
        pending: dict[str, list] = {}
        for it, program, env, crossing, known, _, _ in runs:
            if level < len(crossing):
                node = crossing[level]
                known.update(evaluate(reachable(list(node.args)), env, known))
                part, kind, finish = _partial(node, [known[a.id] for a in node.args], program, it.p,
                                              it.p.shape[0])
                pending.setdefault(kind, []).append((part, finish, known, node))
        for kind in sorted(pending):
            parts = pending[kind]
            flat = torch.cat([part for part, *_ in parts]).to(_local(items[0].p).device)
            op = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[kind]
            dist.all_reduce(flat, op=op, group=pg)
            ds.last["all_reduce"] += 1
            ds.last["reduce_bytes"] += flat.numel() * flat.element_size()
            offset = 0
            for part, finish, known, node in parts:
                known[node.id] = finish(flat[offset:offset + part.numel()].cpu())
                offset += part.numel()
    for it, program, env, _, known, state, old in runs:
        _finish_rows(opt, it, program, env, known, state, old)


def _prepared(opt: GeoOptimizer, it: _Item):
    """(program, env, state, old state) of a parameter stepped on its rows by the reference interpreter: its
    state (made on its rows if new), the `when` blocks that fire, its inputs (random key, `across` values)."""
    spec = opt._geo
    p = it.p
    local_p, grad = _local(p), _local(p.grad)
    old = opt.state.get(p)
    state = _run(opt, it, local_p, None, None, True) if it.fresh else {k: _local(v) for k, v in old.items()}
    t = it.t0 + 1
    program = spec.program(it.rule, it.statics, *it.rank_active, shape=it.shape)
    inputs = opt._inputs(program, it.group, p, t, it.decided)
    if program.guards:
        firing = spec.firing(program, local_p, grad, it.hypers, t, inputs)
        if firing is not None:
            program = spec.program(it.rule, it.statics, *it.rank_active, firing, shape=it.shape)
    if it.group.get("maximize"):
        grad = torch.neg(grad)
    env = {"param": local_p, "grad": grad, "state": state, "hypers": it.hypers, "t": t, "inputs": inputs}
    return program, env, state, old


def _finish_rows(opt: GeoOptimizer, it: _Item, program, env, known, state, old) -> None:
    """The rest of the step on the rows (every node not `known` yet), and the states written back."""
    from .optimizer import _set_step
    if env["param"].numel():
        ReferenceStep(program).step_group([env["param"]], [env["grad"]], [state], it.hypers, [env["t"]],
                                          [env["inputs"]] if env["inputs"] else None, known=[known])
    _set_step(state, env["t"])
    if it.fresh:
        opt.state[it.p] = _wrapped_states(opt, it, state)
    else:
        _commit_rows(old, state, env["t"])


def _commit_rows(old: dict[str, Any], new: dict[str, Any], t: float) -> None:
    """A parameter's new state on this rank's rows into its DTensor states (a backend may have put new tensors
    into the state dict rather than update in place), and its step count."""
    from .optimizer import _set_step
    for k, v in new.items():
        if k == STEP_KEY:
            continue
        if not isinstance(v, torch.Tensor):
            old[k] = v
        elif v.data_ptr() != _local(old[k]).data_ptr():
            _local(old[k]).copy_(v)
    _set_step(old, t)


def _value_dtype(node, p) -> torch.dtype:
    """The dtype a node's value has: the parameter's, a storage dtype's, or float64 for a host number."""
    from ..compiler.types import Tensor, torch_dtype
    if not isinstance(node.type, Tensor):
        return torch.float64
    return p.dtype if node.type.dtype == "param" else torch_dtype(node.type.dtype)


def _step_split(opt: GeoOptimizer, items: list[_Item], pg, world: int, rank: int) -> None:
    """SPLIT rules: each rank computes, on its rows, what the owner's region reads; one all_to_all_single per dtype
    carries the row-split ones to the owners; each owner runs its parameters' regions on whole tensors (msign,
    power iteration, ...); one all_to_all_single per dtype carries back the rows of what the region produces (the
    whole of a value that is the same on every rank); every rank finishes the step on its rows."""
    if not items:
        return
    from ..compiler.plan import concrete_shapes
    ds = opt.__dict__["_geo_dist"]
    runs = []
    gather = []
    for it in items:
        program, env, state, old = _prepared(opt, it)
        inside, inputs, outputs = region(program, it.p.dim())
        known = shape_facts(program, it.shape)
        known.update(evaluate(reachable(list(inputs)), env, known))
        pieces = {}
        for node in inputs:
            v = known[node.id]
            if isinstance(v, torch.Tensor) and is_rows(node.type, program):
                pieces[node.id] = _Piece((it.p.shape[0], *v.shape[1:]), v.dtype, True, v)
        gather.append((it.owner, list(pieces.values())))
        runs.append((it, program, env, state, old, inside, outputs, known, pieces))
    traffic = [_exchange(gather, pg, world, rank, _local(items[0].p).device, to_owner=True)]
    back = []
    for it, program, env, state, old, inside, outputs, known, pieces in runs:
        shapes = concrete_shapes(program, it.shape)
        out_pieces = {}
        for node in outputs:
            rows = is_rows(node.type, program)
            out_pieces[node.id] = _Piece(tuple(shapes.get(node.id, ())), _value_dtype(node, it.p), rows)
        if it.owner == rank:
            whole = dict(known)
            whole.update({i: piece.whole for i, piece in pieces.items()})
            values = evaluate(inside, {}, whole)
            for node in outputs:
                v = values[node.id]
                out_pieces[node.id].whole = torch.as_tensor(v, dtype=out_pieces[node.id].dtype,
                                                            device=env["param"].device)
        back.append((it.owner, list(out_pieces.values())))
        it.pieces = out_pieces
    traffic.append(_exchange(back, pg, world, rank, _local(items[0].p).device, to_owner=False))
    ds.last["all_to_all"] += sum(c for c, _ in traffic)
    ds.last["bytes"] += sum(b for _, b in traffic)
    from ..compiler.types import Tensor
    for it, program, env, state, old, inside, outputs, known, pieces in runs:
        for node in outputs:
            v = it.pieces[node.id].local
            known[node.id] = v if isinstance(node.type, Tensor) else float(v)
        _finish_rows(opt, it, program, env, known, state, old)


def _step_owned(opt: GeoOptimizer, items: list[_Item], pg, world: int, rank: int, init_only: bool) -> None:
    """Owner-compute: rows to the owners, the whole step there, rows back (two rounds of all_to_all_single)."""
    if not items:
        return
    pieces_by_owner = []
    for it in items:
        p = it.p
        it.pieces["param"] = _Piece(tuple(p.shape), p.dtype, True, _local(p))
        if not init_only:
            it.pieces["grad"] = _Piece(tuple(p.shape), p.grad.dtype, True, _local(p.grad))
        if not it.fresh:
            for k, v in opt.state[p].items():
                if k != STEP_KEY:
                    it.pieces["state." + k] = _Piece(tuple(v.shape), v.dtype, v.dim() > 0 and _is_sharded(v),
                                                     _local(v))
        pieces_by_owner.append((it.owner, list(it.pieces.values())))
    traffic = [_exchange(pieces_by_owner, pg, world, rank, _local(items[0].p).device, to_owner=True)]
    for it in items:
        if it.owner != rank:
            continue
        whole_state = None if it.fresh else {k: (it.pieces["state." + k].whole if k != STEP_KEY else v)
                                             for k, v in opt.state[it.p].items()}
        param = it.pieces["param"].whole
        grad = None if init_only else it.pieces["grad"].whole
        new = _run(opt, it, param, grad, whole_state, init_only)
        it.pieces["param"].whole = param
        for k, v in new.items():
            if k == STEP_KEY:
                continue
            key = "state." + k
            if key not in it.pieces:
                it.pieces[key] = _Piece(tuple(v.shape), v.dtype, v.dim() > 0)
            it.pieces[key].whole = v
    fresh_meta = _state_layouts(items, pg, world, rank)
    back = []
    for i, it in enumerate(items):
        if it.fresh and it.owner != rank:
            for k, (shape, dtype) in fresh_meta[i].items():
                it.pieces["state." + k] = _Piece(shape, dtype, len(shape) > 0)
        if init_only:
            it.pieces.pop("param")
        else:
            it.pieces.pop("grad")
        back.append((it.owner, [it.pieces[k] for k in sorted(it.pieces)]))
    traffic.append(_exchange(back, pg, world, rank, _local(items[0].p).device, to_owner=False))
    last = opt.__dict__["_geo_dist"].last
    last["all_to_all"] += sum(c for c, _ in traffic)
    last["bytes"] += sum(b for _, b in traffic)
    from .optimizer import _set_step
    for it in items:
        p = it.p
        if not init_only:
            piece = it.pieces["param"]
            if piece.local is not _local(p):
                _local(p).copy_(piece.local)
        if it.fresh:
            state = {STEP_KEY: torch.tensor(0.0, dtype=torch.float32)}
            for key in sorted(k for k in it.pieces if k.startswith("state.")):
                piece = it.pieces[key]
                local = piece.local.clone() if it.owner == rank else piece.local
                state[key[len("state."):]] = _wrap(local.contiguous(), p, piece.shape)
            opt.state[p] = state
        else:
            for k, v in opt.state[p].items():
                if k != STEP_KEY:
                    piece = it.pieces["state." + k]
                    if piece.local is not _local(v):
                        _local(v).copy_(piece.local)
        if not init_only:
            _set_step(opt.state[p], it.t0 + 1)


def _is_sharded(v) -> bool:
    DTensor, Replicate, Shard = _dtensor()
    return isinstance(v, DTensor) and tuple(v.placements) == (Shard(0),)


def _state_layouts(items: list[_Item], pg, world: int, rank: int) -> dict[int, dict]:
    """The (shape, dtype) of the states each owner made for its fresh parameters (by place in `items`), so that
    every rank can receive its rows: one object all-gather, on a parameter's first step only."""
    mine = {i: {k[len("state."):]: (piece.shape, piece.dtype) for k, piece in it.pieces.items()
                if k.startswith("state.")}
            for i, it in enumerate(items) if it.fresh and it.owner == rank}
    if not any(it.fresh for it in items):
        return {}
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, mine, group=pg)
    out: dict[int, dict] = {}
    for part in gathered:
        out.update(part)
    return out


# ---- checkpoints -------------------------------------------------------------------------------------------------
def save(opt: GeoOptimizer, checkpoint_id: Any, key: str = "optimizer") -> None:
    """`torch.distributed.checkpoint.save` of the optimizer's state dict under `key`: each rank writes the rows of
    its DTensor states; the identity (`geo`), param groups and step counts are written once.

    geo's own `state_dict()` is what is saved, not `get_optimizer_state_dict`'s rewrite of it: torch's helper keeps
    only `state` and `param_groups` (it drops the `geo` identity entry, so a checkpoint of another spec could no
    longer be refused), and on an optimizer without states it runs a step with lr = 0 to make them, which advances
    geo's step counts; `init_state()` makes them without a step."""
    import torch.distributed.checkpoint as dcp
    opt.init_state()
    dcp.save({key: opt.state_dict()}, checkpoint_id=checkpoint_id)


def load(opt: GeoOptimizer, checkpoint_id: Any, key: str = "optimizer", allow_spec_change: bool = False) -> None:
    """Loads a checkpoint written by `save`, on any number of ranks (DCP reshards the DTensor states). The checkpoint's
    identity is read and checked first: a checkpoint of another spec is a CheckpointError naming both, before any
    state is read."""
    import torch.distributed.checkpoint as dcp
    from . import checkpoint
    probe = {key: {"geo": checkpoint.identity(opt._geo.info)}}
    dcp.load(probe, checkpoint_id=checkpoint_id)
    checkpoint.check_identity(opt, probe[key]["geo"], allow_spec_change)
    opt.init_state()
    sd = opt.state_dict()
    dcp.load({key: sd}, checkpoint_id=checkpoint_id)
    opt.load_state_dict(sd, allow_spec_change=allow_spec_change)
