"""What each rank runs in the distributed tests (module-level functions: spawned processes import them)."""
from __future__ import annotations

import copy
import warnings

import torch

import geo
from geo.runtime.shard_plan import chunk_rows

import _models

SEED = 1234


def _mesh(world):
    from torch.distributed.device_mesh import init_device_mesh
    return init_device_mesh("cpu", (world,))


def _shard_of(full: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    rows = chunk_rows(full.shape[0], world)
    start = sum(rows[:rank])
    return full[start:start + rows[rank]].clone()


def _set_grads(named, t, world, rank, mesh, bad=None):
    from torch.distributed.tensor import DTensor, Shard
    for n, p in named:
        g = _models.grad(n, tuple(p.shape), t, bad=(bad is not None and bad(n, t)))
        if isinstance(p, DTensor):
            p.grad = DTensor.from_local(_shard_of(g, rank, world), mesh, [Shard(0)], run_check=False,
                                        shape=p.shape, stride=p.stride())
        else:
            p.grad = g


def sharded_pair(name, world, rank, mesh, roles=None):
    """(named sharded parameters, sharded optimizer, named plain parameters, plain optimizer) for spec `name`."""
    from torch.distributed.fsdp import fully_shard
    Opt = geo.compile(name)
    net = _models.model()
    ref = copy.deepcopy(net)
    fully_shard(net, mesh=mesh)
    named = _models.params_for(name, net)
    ref_named = _models.params_for(name, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", geo.RoutingWarning)
        opt = Opt(named, backend="torch", seed=SEED, roles=roles)
        ref_opt = Opt(ref_named, backend="torch", seed=SEED, roles=roles)
    return named, opt, ref_named, ref_opt


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)


def stepped_pair(name, world, rank, mesh, steps, roles=None):
    """`sharded_pair` after `steps` steps of both optimizers on the same gradients."""
    named, opt, ref_named, ref_opt = sharded_pair(name, world, rank, mesh, roles)
    for t in range(steps):
        _set_grads(named, t, world, rank, mesh)
        _set_grads(ref_named, t, world, rank, mesh)
        opt.step()
        ref_opt.step()
    return named, opt, ref_named, ref_opt


def equivalence(rank, world, names, steps, roles=None):
    """Each spec: `steps` sharded steps against the same steps unsharded in this process; returns
    {spec: (max relative difference of the parameters, of the states, modes by parameter)}. `roles`: the
    constructor's `roles=`, by parameter name."""
    from geo.runtime.shard_plan import classify
    mesh = _mesh(world)
    out = {}
    for name in names:
        named, opt, ref_named, ref_opt = stepped_pair(name, world, rank, mesh, steps, roles)
        worst = 0.0
        for (n, p), (_, q) in zip(named, ref_named):
            worst = max(worst, rel(p.full_tensor(), q.detach()))
        worst_state = 0.0
        for (n, p), (_, q) in zip(named, ref_named):
            for k, v in ref_opt.state[q].items():
                mine = opt.state[p][k]
                mine = mine.full_tensor() if hasattr(mine, "full_tensor") else mine
                worst_state = max(worst_state, rel(mine.float(), v.float()))
        modes = {}
        for group in opt.param_groups:
            rule = opt._geo.rules[group["geo_rule"]]
            for p in group["params"]:
                _, r, active = opt._geo_binding[p]
                program = opt._geo.program(rule, rule.statics(group), r, active, shape=tuple(p.shape))
                modes[opt._geo_params[p].name] = classify(program, rule, p.dim())[0]
        out[name] = (worst, worst_state, modes)
    return out


def nonfinite(rank, world, names, steps, bad_rank):
    """A NaN in one parameter's gradient on `bad_rank` only, at steps 2 and 5: every rank skips that parameter at those
    steps; the run equals the unsharded run that skips the same. Returns {spec: (skips, max rel difference)}."""
    mesh = _mesh(world)
    out = {}
    for name in names:
        named, opt, ref_named, ref_opt = sharded_pair(name, world, rank, mesh)
        victim = named[0][0]

        def bad(n, t):
            return n == victim and t in (2, 5)
        for t in range(steps):
            _set_grads(named, t, world, rank, mesh, bad=bad if rank == bad_rank else None)
            _set_grads(ref_named, t, world, rank, mesh, bad=bad)
            opt.step()
            ref_opt.step()
        worst = max(rel(p.full_tensor(), q.detach()) for (_, p), (_, q) in zip(named, ref_named))
        steps_taken = {n: float(opt.state[p]["step"]) for n, p in named if p in opt.state}
        out[name] = (dict(opt.nonfinite_skips), worst, steps_taken)
    return out


def dcp_roundtrip(rank, world, names, path, phase, steps):
    """phase "save": `steps` steps, a DCP checkpoint, `steps` more; returns the final parameters (full). phase
    "resume": a fresh model and optimizer at the checkpoint's parameters, the checkpoint loaded, the same `steps`
    more; returns the final parameters (full) — equal, bit for bit, on the same world size."""
    from geo.runtime import distributed as gd
    mesh = _mesh(world)
    out = {}
    for name in names:
        named, opt, _, _ = sharded_pair(name, world, rank, mesh)
        ckpt = f"{path}/{name}"
        if phase == "save":
            for t in range(steps):
                _set_grads(named, t, world, rank, mesh)
                opt.step()
            import torch.distributed.checkpoint as dcp
            dcp.save({"params": {n: p.detach() for n, p in named}}, checkpoint_id=ckpt + "-params")
            gd.save(opt, ckpt)
        else:
            import torch.distributed.checkpoint as dcp
            params = {n: p.detach() for n, p in named}
            dcp.load({"params": params}, checkpoint_id=ckpt + "-params")
            gd.load(opt, ckpt)
        for t in range(steps, 2 * steps):
            _set_grads(named, t, world, rank, mesh)
            opt.step()
        out[name] = {n: p.full_tensor() for n, p in named}
    return out


def dcp_wrong_spec(rank, world, path, saved, other):
    """Loading a checkpoint of spec `saved` into an optimizer of spec `other`: the error's text, on every rank."""
    from geo.runtime import distributed as gd
    mesh = _mesh(world)
    _, opt, _, _ = sharded_pair(other, world, rank, mesh)
    try:
        gd.load(opt, f"{path}/{saved}")
    except Exception as e:  # noqa: BLE001 - the test reads the message
        return f"{type(e).__name__}: {e}"
    return None


def traffic(rank, world, names, steps):
    """`equivalence`, and this rank's traffic in the last step (runtime/distributed.py counts it)."""
    mesh = _mesh(world)
    out = {}
    for name in names:
        named, opt, ref_named, ref_opt = stepped_pair(name, world, rank, mesh, steps)
        worst = max(rel(p.full_tensor(), q.detach()) for (_, p), (_, q) in zip(named, ref_named))
        out[name] = (worst, dict(opt._geo_dist.last), {n: tuple(p.shape) for n, p in named})
    return out


def refusals(rank, world):
    """What the distributed step refuses, with its message: a parameter split by columns (tensor parallelism's
    Shard(1)); returns the messages."""
    from torch.distributed.tensor import DTensor, Shard
    mesh = _mesh(world)
    full = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    cols = DTensor.from_local(full[:, 3 * rank:3 * rank + 3].clone(), mesh, [Shard(1)], run_check=False,
                              shape=full.shape, stride=full.stride())
    p = torch.nn.Parameter(cols)
    opt = geo.compile("muon")([("h.0.weight", p)])
    p.grad = DTensor.from_local(torch.ones(4, 3), mesh, [Shard(1)], run_check=False, shape=full.shape,
                                stride=full.stride())
    try:
        opt.step()
    except ValueError as e:
        return str(e)
    return None
