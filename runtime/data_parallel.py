"""Data parallelism: a geo optimizer under DDP (one seed on every rank) and under ZeRO-1 (`Opt.route(params)`).

Under `DistributedDataParallel` every rank steps its own copy of the optimizer on the same averaged gradients, so
the ranks agree bit for bit as long as every copy starts alike; the one thing a rank can hold differently is the
seed of the random draws (drop_muon's layer subsets, frugal_columns' random columns), which defaults to
`torch.initial_seed()`, and training scripts often seed each rank differently (`torch.manual_seed(seed + rank)`,
for data). An optimizer whose programs draw, built without `seed=` in an initialized process group of more than
one rank, warns (`warn_unseeded`): its ranks would draw differently and diverge. A non-finite gradient needs
nothing: DDP's all-reduce spreads it to every rank, and every rank skips the same parameter.

Under `torch.distributed.optim.ZeroRedundancyOptimizer` (ZeRO-1):

ZeRO builds one local optimizer per rank, `Opt(groups, **defaults)`, over that rank's share of each of its own
param groups (bare tensors, no names: ZeRO refuses `(name, tensor)` pairs), and then keeps the local groups and
its own in step one for one (`_sync_param_groups` copies every key but `params` across, before and after each
step, and its `state_dict` maps local groups to its own by position). Three things of geo's break on that:

- a routed spec (muon_adamw: matrices → Muon, the rest → AdamW) splits each group it is given by rule, so a
  rank's local optimizer has more groups than ZeRO, and a rank that owns no parameter of one rule has fewer;
- roles chosen on a rank's share alone differ from the ones chosen over the model: "the model's last layer"
  (the output head, by position) is a fact of the whole list, and a rank's share has another last matrix;
- random draws are keyed by parameter (its name, or `#i`, its place among the optimizer's parameters), and a
  rank's share numbers its parameters from 0.

`Opt.route(params, roles=...)` decides all of that over the whole list, once, as the single-process optimizer
would: it returns ZeRO's param groups already split by rule (each carries `geo_rule`, and the user's own group
keys, nothing else, so ZeRO's keywords still fill in the rest), and remembers, for this optimizer class, each
tensor's name, role and random stream. A local optimizer given these tensors bare takes what was remembered; a
group with `geo_rule` stays one group, empty or not. So ZeRO's rank-local optimizers together step every
parameter exactly as the single-process optimizer does (tests/distributed/test_ddp_zero.py).

The memory is a weak map keyed by tensor identity (a tensor that dies leaves it), per class: nothing is stored in
param groups, so ZeRO's checkpoints carry no tensors and no per-parameter lists that its partition would misalign.

What cannot work: a spec with an `across` block (drop_muon) decides over every covered layer at once and keeps
optimizer-level state (`geo_global`) that ZeRO's checkpoint, made of per-parameter states and groups only, does
not carry. Under ZeRO such a spec is refused with that reason (`refuse_under_zero`), as is a routed spec given
groups that were not routed (ZeRO would fail later with an assertion about group counts, or on one rank only).
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.weak import WeakIdKeyDictionary

from ..compiler.binding import RoleChoice
from .across import program as across_program

if TYPE_CHECKING:
    from .optimizer import GeoOptimizer

# constructor keywords that ZeRO also copies into every one of its param groups (its `defaults`)
CONSTRUCTOR_KEYS = ("roles", "backend", "nonfinite", "seed")


@dataclass(frozen=True)
class Routed:
    """What `route` decided for one tensor over the whole list: its name (None: it had none), role and stream."""

    name: str | None
    choice: RoleChoice
    stream: str


def routed_table(cls: type[GeoOptimizer]) -> WeakIdKeyDictionary:
    """This optimizer class's memory of routed tensors (created on first use, in the class's own dict)."""
    table = cls.__dict__.get("_geo_routed")
    if table is None:
        table = WeakIdKeyDictionary()  # by identity: a tensor's == is elementwise
        setattr(cls, "_geo_routed", table)
    return table


def route(cls: type[GeoOptimizer], given: list[dict[str, Any]], roles: dict[Any, str] | None,
          hypers: dict[str, Any]) -> list[dict[str, Any]]:
    """ZeRO's param groups for `given` (torch.optim's param groups, listed), split by rule as
    `cls(given, roles=roles, **hypers)` splits them, each {"params": [tensors], "geo_rule": i, **the user's own keys
    of the group it came from}; the names, roles and random streams of the tensors are remembered for `cls` (see
    the module's docstring). `hypers` only check that every parameter fits its rule; ZeRO's keywords set them."""
    opt = cls(given, roles=roles, **{**hypers, "seed": 0})  # the seed decides no route
    # the optimizer's groups, in order, are each given group's split (an empty group: one empty group)
    origin: list[dict[str, Any]] = []
    groups = iter(opt.param_groups)
    for g in given:
        members = {id(p[1] if isinstance(p, tuple) else p) for p in g["params"]}
        keys = {k: v for k, v in g.items() if k not in ("params", "param_names")}
        count = 1 if not members else len({id(q) for q in g["params"]})
        while count > 0:
            group = next(groups)
            origin.append(keys)
            count -= max(1, len({id(q) for q in group["params"] if id(q) in members}))
    table = routed_table(cls)
    out = []
    for group, keys in zip(opt.param_groups, origin):
        for p in group["params"]:
            info = opt._geo_params[p]
            table[p] = Routed(info.name if "param_names" in group else None,
                              RoleChoice(info.role, f"decided by {cls.__name__}.route over the whole list",
                                         p in opt._geo_transposed, given=True),
                              opt._stream(group, p))
        out.append({"params": list(group["params"]), **keys, "geo_rule": group["geo_rule"]})
    return out


def called_by_zero(frame) -> bool:
    """Whether `frame` (the caller of the constructor or of `add_param_group`) is ZeRO's: ZeRO calls them from
    its own methods, and does not otherwise say that the optimizer is its local one."""
    zero = sys.modules.get("torch.distributed.optim.zero_redundancy_optimizer")
    cls = getattr(zero, "ZeroRedundancyOptimizer", None)
    return cls is not None and frame is not None and isinstance(frame.f_locals.get("self"), cls)


def refuse_under_zero(opt: GeoOptimizer, groups: list[Any]) -> None:
    """ValueError where ZeRO's contract cannot hold: an `across` block, or a routed spec given a group that was not
    routed (no `geo_rule`). Both are decided from what every rank sees alike (the spec, the keys ZeRO copies into
    every rank's share of a group), so every rank refuses, and none is left waiting in a collective for the others;
    whether a rank's own share happens to split by rule is not."""
    spec = opt._geo.info
    if spec.across is not None:
        raise ValueError(
            f"{spec.name} cannot run under ZeroRedundancyOptimizer: its `across` block decides over every covered "
            "layer at once, and a rank's local optimizer holds only its share of them; its optimizer-level state "
            "(`geo_global`) is not part of ZeRO's checkpoints either. Use DistributedDataParallel with the "
            "optimizer itself (docs/distributed.md, 'DDP and ZeRO-1').")
    if len(spec.rules) > 1 and any(not isinstance(g, dict) or "geo_rule" not in g for g in groups):
        raise ValueError(
            f"{spec.name} routes parameters to {len(spec.rules)} rules, so each group ZeroRedundancyOptimizer gives "
            "it would become one group per rule, and ZeRO needs its groups and each rank's local optimizer's to "
            "match one for one; the roles would also be chosen on a rank's share of the parameters, not over the "
            f"model. Give ZeRO the groups already routed: ZeroRedundancyOptimizer({spec.name}.route("
            "model.named_parameters()), optimizer_class=..., ...)")


def draws(opt: GeoOptimizer) -> bool:
    """Whether the optimizer's programs, as its groups' static values specialize them, draw random numbers (a spec
    may draw only under some static choice: frugal's `projection = "random"`)."""
    spec = opt._geo
    if spec.info.across is not None and "rng" in across_program(opt).inputs:
        return True
    for group in opt.param_groups:
        rule = spec.rules[group["geo_rule"]]
        if not rule.randomized:
            continue
        statics = rule.statics(group)
        for p in group["params"]:
            _, rank, active = opt._geo_binding[p]
            if "rng" in spec.program(rule, statics, rank, active, shape=opt._geo_shape(p)).inputs:
                return True
    return False


def warn_unseeded(opt: GeoOptimizer, seed: int | None, stacklevel: int) -> None:
    """UserWarning for an optimizer that draws random numbers, built without `seed=` in a process group of more
    than one rank."""
    if seed is not None or not (torch.distributed.is_available() and torch.distributed.is_initialized()
                                and torch.distributed.get_world_size() > 1) or not draws(opt):
        return
    warnings.warn(f"{opt._geo.info.name} draws random numbers, seeded by torch.initial_seed() ({opt._geo_seed}) "
                  "since no seed= was given; under DistributedDataParallel every rank must draw alike, or their "
                  "parameters diverge. Pass the same seed= on every rank (and under ZeroRedundancyOptimizer, where "
                  "it is not part of ZeRO's checkpoint, again when resuming).", UserWarning, stacklevel=stacklevel + 1)
