"""What each rank runs in the distributed tests (module-level functions: spawned processes import them)."""
from __future__ import annotations

import copy
import warnings

import torch
import torch.distributed as dist

import geo
from geo.runtime.distributed import chunk_rows

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


def sharded_pair(name, world, rank, mesh):
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
        opt = Opt(named, backend="torch", seed=SEED)
        ref_opt = Opt(ref_named, backend="torch", seed=SEED)
    return named, opt, ref_named, ref_opt


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)


def equivalence(rank, world, names, steps):
    """Each spec: `steps` sharded steps against the same steps unsharded in this process; returns
    {spec: (max relative difference of the parameters, of the states, modes by parameter)}."""
    from geo.runtime.distributed import classify
    mesh = _mesh(world)
    out = {}
    for name in names:
        named, opt, ref_named, ref_opt = sharded_pair(name, world, rank, mesh)
        for t in range(steps):
            _set_grads(named, t, world, rank, mesh)
            _set_grads(ref_named, t, world, rank, mesh)
            opt.step()
            ref_opt.step()
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
