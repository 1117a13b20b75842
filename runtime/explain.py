"""`geo explain`: what a compiled optimizer does with each parameter — a routing table (the role each parameter
gets and why, and the rule that takes it), then per parameter its state bytes, the kernels and ops of its step,
and the bytes and FLOPs of each (the plan's cost summary).

Parameters are given as NAME=SHAPE (`h.0.mlp.c_fc.weight=768x3072`), in model order, or NAME=SHAPE:ROLE to give
a role as `roles=` does (`c_attn.weight=768x2304:hidden.T`); roles are chosen as the optimizer chooses them
(compiler/binding.py: names, the model's last layer by position, the rank alone). Without any, a GPT-2-small
layer's parameters are explained.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..compiler.binding import ParamInfo, bind_rule, choose_roles, parse_role, show_shape, viewed_shape
from ..compiler.types import DTYPES, dtype_name
from ..compiler.types import Tensor as TensorType
from ..compiler.ops import registry
from ..compiler.plan import Kernel, concrete_shapes, phase_cost, plan
from ..dsl.diagnostics import Diagnostic, GeoError


def parse_param(text: str) -> tuple[str, tuple[int, ...]] | tuple[str, tuple[int, ...], str]:
    """NAME=SHAPE with SHAPE like 768x3072 (a scalar: `()`), or NAME=SHAPE:ROLE (a role as `roles=` takes)."""
    name, sep, shape = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--param takes NAME=SHAPE (e.g. fc.weight=768x3072), got {text!r}")
    shape, colon, role = shape.partition(":")
    if colon:
        parse_role(role.strip())  # ValueError naming the roles
        return (name, *_parse_shape(name, shape), role.strip())
    return name, *_parse_shape(name, shape)


def _parse_shape(name: str, shape: str) -> tuple[tuple[int, ...]]:
    shape = shape.strip()
    if shape in ("", "()"):
        return ((),)
    try:
        dims = tuple(int(d) for d in shape.lower().split("x"))
    except ValueError:
        raise ValueError(f"--param {name}: the shape {shape!r} is not sizes joined by x (e.g. 768x3072)") from None
    if any(d <= 0 for d in dims):
        raise ValueError(f"--param {name}: sizes must be positive, got {shape!r}")
    return (dims,)


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e4 else f"{n:.0f} B"


def _flops(n: float) -> str:
    if n != n:
        return "? FLOP"
    for unit, scale in (("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} FLOP"


def _bound(spec, params: dict[str, tuple[int, ...]], roles: dict[str, str] | None) -> list[tuple]:
    """(name, stored shape, shape the rules see, RoleChoice, (rule, rank, active steps)) per parameter, routed as
    the constructor routes them; every parameter no rule takes is a diagnostic (GeoError)."""
    diagnostics: list[Diagnostic] = []
    choices = choose_roles(list(params.items()), [(roles or {}).get(name) for name in params])
    bound = []
    for (name, stored), choice in zip(params.items(), choices):
        shape = tuple(reversed(stored)) if choice.transposed else stored
        binding = bind_rule(spec.info, ParamInfo(name, shape, choice.role))
        if isinstance(binding, Diagnostic):
            diagnostics.append(binding)
            continue
        bound.append((name, stored, shape, choice, binding))
    if diagnostics:
        raise GeoError(diagnostics)
    return bound


def explain(optimizer_cls: Any, params: dict[str, tuple[int, ...]], dtype: torch.dtype = torch.float32,
            roles: dict[str, str] | None = None) -> str:
    """params: {name: stored shape} in model order; roles: {name: role} as the constructor's `roles=`."""
    spec = optimizer_cls._geo
    itemsize = DTYPES[dtype_name(dtype)].itemsize
    lines = [f"explain {spec.info.name}  ({len(spec.rules)} rule{'s' if len(spec.rules) != 1 else ''}, "
             f"parameters in {str(dtype).removeprefix('torch.')})"]
    totals = [0.0, 0.0, 0.0, 0, 0, 0.0]  # read, written, flops, kernels, ops, state bytes
    bound = _bound(spec, params, roles)
    lines += ["", "routing: the first rule whose selector holds takes a parameter; its role comes from roles=, its "
                  "name, its place (the model's last layer) or its rank (compiler/binding.py)"]
    width = max(len(name) for name, *_ in bound)
    for name, stored, shape, choice, (index, _, _) in bound:
        role = choice.role + (".T" if choice.transposed else "")
        lines.append(f"  {name:<{width}}  {show_shape(stored):<14} {role:<10} -> rule {index} "
                     f"({spec.rules[index].route}): {choice.why}")
    for name, stored, shape, choice, binding in bound:
        index, rank, active = binding
        rule = spec.rules[index]
        program = spec.program(rule, rule.statics(), rank, active, shape=shape)
        seen = viewed_shape(rule, shape)
        shapes = concrete_shapes(program, seen)
        the_plan = plan(program)
        lines.append("")
        lines.append(f"{name} {list(stored)} (role {choice.role}) -> rule {index} `{rule.text}`"
                     + (f", seen as {list(seen)}" if seen != tuple(stored) else ""))
        state_bytes = 0.0
        parts = []
        init_shapes = concrete_shapes_for_init(program, seen)
        for s in program.states:
            size = math.prod(init_shapes.get(s.name, ())) * (DTYPES[s.dtype].itemsize if s.dtype else itemsize)
            state_bytes += size
            parts.append(f"{s.name} {_mb(size)}" + (f" ({s.dtype})" if s.dtype else ""))
        lines.append(f"  state: {', '.join(parts) or 'none'}  = {_mb(state_bytes)}")
        read = written = flops = 0.0
        kernels = ops = 0
        for phase in the_plan.phases:
            c = phase_cost(phase, shapes, itemsize)
            read, written, flops = read + c.bytes_read, written + c.bytes_written, flops + c.flops
            if isinstance(phase, Kernel):
                kernels += 1
                what = f"kernel k{phase.index}: {len(phase.nodes)} fused ops"
            else:
                ops += 1
                what = f"op {phase.node.op}"
            lines.append(f"  {what:<28} reads {_mb(c.bytes_read):>10}  writes {_mb(c.bytes_written):>10}  "
                         f"{_flops(c.flops):>13}")
        lines.append(f"  step: {kernels} kernel{'s' if kernels != 1 else ''}, {ops} op{'s' if ops != 1 else ''}; "
                     f"reads {_mb(read)}, writes {_mb(written)}, {_flops(flops)}"
                     + (f"; {flops / (read + written):.2f} FLOP/B" if read + written and flops == flops else ""))
        for i, v in enumerate((read, written, flops, kernels, ops, state_bytes)):
            totals[i] += v
    lines.append("")
    lines.append(f"all {len(params)} parameters: {totals[3]} kernels, {totals[4]} ops per step; reads {_mb(totals[0])}, "
                 f"writes {_mb(totals[1])}, {_flops(totals[2])}; state {_mb(totals[5])}")
    return "\n".join(lines)


def concrete_shapes_for_init(program, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Each state slot's shape for a bound parameter shape."""
    shapes = concrete_shapes(program, shape)
    return {s.name: shapes.get(s.init.id, ()) for s in program.states}


def gpt2_small() -> dict[str, tuple[int, ...]]:
    """GPT-2 small's 148 parameters (124M; nn.Linear's (out, in) storage, the head tied to `wte`), in model order."""
    out: dict[str, tuple[int, ...]] = {"wte.weight": (50257, 768), "wpe.weight": (1024, 768)}
    for i in range(12):
        h = f"h.{i}."
        out.update({h + "ln_1.weight": (768,), h + "ln_1.bias": (768,),
                    h + "attn.c_attn.weight": (2304, 768), h + "attn.c_attn.bias": (2304,),
                    h + "attn.c_proj.weight": (768, 768), h + "attn.c_proj.bias": (768,),
                    h + "ln_2.weight": (768,), h + "ln_2.bias": (768,),
                    h + "mlp.c_fc.weight": (3072, 768), h + "mlp.c_fc.bias": (3072,),
                    h + "mlp.c_proj.weight": (768, 3072), h + "mlp.c_proj.bias": (768,)})
    out.update({"ln_f.weight": (768,), "ln_f.bias": (768,)})
    return out


# `geo explain`'s default: one GPT-2 small layer's matrices and a bias, and the embedding
GPT2_SMALL_LAYER = {name: shape for name, shape in gpt2_small().items()
                    if name in ("wte.weight", "h.0.ln_1.weight", "h.0.attn.c_attn.weight", "h.0.attn.c_attn.bias",
                                "h.0.attn.c_proj.weight", "h.0.mlp.c_fc.weight", "h.0.mlp.c_proj.weight")}
MODELS = {"gpt2-small": gpt2_small, "gpt2-small-layer": lambda: dict(GPT2_SMALL_LAYER)}


def communication(optimizer_cls: Any, params: dict[str, tuple[int, ...]], world: int,
                  dtype: torch.dtype = torch.float32, roles: dict[str, str] | None = None) -> dict[str, Any]:
    """The communication of one steady-state step of the distributed runtime (runtime/distributed.py) for parameters
    split by rows over `world` ranks (FSDP2's Shard(0), uneven shards as torch.chunk): per parameter its mode
    (local or owner-computed, and why), its owner, and the bytes it sends; in total the collectives and bytes.

    Bytes are what leaves a rank, summed over ranks (the network's load): an owner-computed parameter's rows of the
    parameter, its gradient and each state with rows go to the owner from the other ranks, and the rows of the new
    parameter and states come back; a 0-d state comes back whole to each other rank. Every step also all-reduces
    one float32 flag per parameter with a gradient (the non-finite check). Collectives: that all-reduce, and, when
    any parameter is owner-computed, one all_to_all_single per dtype each way. (The first step also broadcasts the
    seed and all-gathers the new states' shapes; not counted here.)"""
    from .shard_plan import COLLECTIVE, LOCAL, OWNER, REDUCE, SPLIT, assign_owners, chunk_rows, classify, \
        is_rows, program_flops, region, row_reductions
    spec = optimizer_cls._geo
    if world < 1:
        raise ValueError(f"--world-size must be at least 1, got {world}")
    itemsize = DTYPES[dtype_name(dtype)].itemsize
    rows = []
    for name, stored, shape, choice, (index, rank, active) in _bound(spec, params, roles):
        rule = spec.rules[index]
        program = spec.program(rule, rule.statics(), rank, active, shape=shape)
        mode, why = classify(program, rule, len(stored), choice.transposed)
        init_shapes = concrete_shapes_for_init(program, viewed_shape(rule, shape))
        states = [(init_shapes.get(s.name, ()), DTYPES[s.dtype].itemsize if s.dtype else itemsize,
                   s.dtype or dtype_name(dtype)) for s in program.states]
        reductions = []
        if mode == REDUCE:
            node_shapes = concrete_shapes(program, viewed_shape(rule, shape))
            for node in row_reductions(program, len(stored)):
                facet = registry.get(node.op).sharding_for(dict(node.attrs))
                reductions.append((COLLECTIVE[facet.combine], math.prod(node_shapes.get(node.id, ()))))
        split = None
        if mode == SPLIT:
            node_shapes = concrete_shapes(program, shape)

            def size(node):
                if not isinstance(node.type, TensorType):
                    return 8, "fp64"
                name_ = dtype_name(dtype) if node.type.dtype == "param" else node.type.dtype
                return DTYPES[name_].itemsize, name_
            _, inputs, outputs = region(program, len(stored))
            split = ([(node_shapes[n.id], *size(n)) for n in inputs if is_rows(n.type, program)],
                     [(node_shapes.get(n.id, ()), *size(n), is_rows(n.type, program)) for n in outputs])
        rows.append({"name": name, "shape": tuple(stored), "mode": mode, "why": why, "states": states,
                     "flops": program_flops(program, shape) if mode in (OWNER, SPLIT) else 0.0, "owner": None,
                     "bytes": 0, "reductions": reductions, "split": split})
    owned = [r for r in rows if r["mode"] in (OWNER, SPLIT) and math.prod(r["shape"])]
    levels = set()  # (level, combine kind): one all_reduce each, every parameter's partials of that level together
    for r in rows:
        for level, (kind, numel) in enumerate(r["reductions"]):
            levels.add((level, kind))
            r["bytes"] += 8 * numel  # float64 partials
    for r, owner in zip(owned, assign_owners([r["flops"] for r in owned], world)):
        r["owner"] = owner
    kinds: dict[str, tuple[set, set]] = {OWNER: (set(), set()), SPLIT: (set(), set())}  # dtypes each way
    for r in owned:
        def away(shape: tuple[int, ...], size: int) -> int:
            """Bytes of the other ranks' rows of a tensor of `shape` (what goes to, or comes from, the owner)."""
            if not shape:
                return 0
            split = chunk_rows(shape[0], world)
            return (sum(split) - split[r["owner"]]) * math.prod(shape[1:]) * size
        there, back = kinds[r["mode"]]
        if r["mode"] == OWNER:
            sharded_states = [away(s, size) for s, size, _ in r["states"] if s]
            replicated = sum(size * (world - 1) for s, size, _ in r["states"] if not s)
            gather = 2 * away(r["shape"], itemsize) + sum(sharded_states)  # param, grad, states
            scatter = away(r["shape"], itemsize) + sum(sharded_states) + replicated  # param, states
            there.update({dtype_name(dtype)} | {d for _, _, d in r["states"]})
            back.update({dtype_name(dtype)} | {d for _, _, d in r["states"]})
        else:  # SPLIT: what the owner's region reads, by rows; what it makes, by rows (or whole, to each rank)
            inputs, outputs = r["split"]
            gather = sum(away(s, size) for s, size, _ in inputs)
            scatter = sum(away(s, size) if rows_ else math.prod(s) * size * (world - 1)
                          for s, size, _, rows_ in outputs)
            there.update(d for _, _, d in inputs)
            back.update(d for _, _, d, _ in outputs)
        r["bytes"] = gather + scatter
    n_a2a = sum(len(there) + len(back) for there, back in kinds.values())
    flag_bytes = 4 * len(rows) * (world - 1) * 2 if world > 1 else 0  # a ring all-reduce moves ~2(N−1)/N per rank
    return {"world": world, "params": rows, "all_to_all": n_a2a, "all_reduce": (1 + len(levels)) if world > 1 else 0,
            "all_to_all_bytes": sum(r["bytes"] for r in rows if r["mode"] in (OWNER, SPLIT)),
            "reduce_bytes": sum(r["bytes"] for r in rows if r["mode"] == REDUCE),
            "all_reduce_bytes": 4 * len(rows),
            "ring_all_reduce_bytes": flag_bytes,
            "owned": len(owned), "local": sum(r["mode"] == LOCAL for r in rows),
            "reduced": sum(r["mode"] == REDUCE for r in rows),
            "owner_flops": _loads(owned, world)}


def _loads(owned: list[dict[str, Any]], world: int) -> list[float]:
    load = [0.0] * world
    for r in owned:
        load[r["owner"]] += r["flops"]
    return load


def explain_communication(optimizer_cls: Any, params: dict[str, tuple[int, ...]], world: int,
                          dtype: torch.dtype = torch.float32, roles: dict[str, str] | None = None,
                          detail: bool = True) -> str:
    """`geo explain --world-size N`: `communication` as text."""
    c = communication(optimizer_cls, params, world, dtype, roles)
    spec = optimizer_cls._geo
    lines = [f"distributed {spec.info.name} on {world} ranks (parameters split by rows, FSDP2's Shard(0); "
             f"runtime/distributed.py)"]
    if detail:
        width = max(len(r["name"]) for r in c["params"])
        for r in c["params"]:
            where = f"owner rank {r['owner']}" if r["owner"] is not None else "every rank its rows"
            if r["reductions"]:
                where = f"{len(r['reductions'])} all-reduced partials"
            lines.append(f"  {r['name']:<{width}}  {show_shape(r['shape']):<14} {r['mode']:<6} {where:<20} "
                         f"{_mb(r['bytes']):>10}  ({r['why']})")
    load = c["owner_flops"]
    lines.append(f"per step: {c['all_to_all']} all_to_all ({_mb(c['all_to_all_bytes'])} over all ranks), "
                 f"{c['all_reduce']} all_reduce ({c['all_reduce_bytes']} B of non-finite flags"
                 + (f", {_mb(c['reduce_bytes'])} of partial reductions per rank" if c["reduced"] else "") + "); "
                 f"{c['local']} parameters local, "
                 + (f"{c['reduced']} reduced across ranks, " if c["reduced"] else "") + f"{c['owned']} owner-computed"
                 + (f"; owner FLOPs per rank {_flops(min(load))} to {_flops(max(load))}" if c["owned"] else ""))
    return "\n".join(lines)
