"""The torch.optim contract beyond param groups and the step: what torch's tools read and what its users pass.

    defaults       `opt.defaults`: the hyperparameters every rule has, with the spec's defaults, and torch.optim's
                   common flags. torch keeps every key of `defaults` in every param group (its `add_param_group`
                   fills them in), and its tools rely on that: OneCycleLR and CyclicLR cycle `betas[0]` when
                   `defaults` has `betas`, else `momentum`, in every group. A routed optimizer's groups hold
                   their own rule's hyperparameters, so only the names all rules share can be there: muon_adamw
                   has `lr`, `eps` and `weight_decay` but neither `momentum` (Muon) nor `betas` (AdamW), and a
                   momentum-cycling scheduler needs `cycle_momentum=False` there (docs/design.md).
    flags          torch.optim's `maximize`, `foreach`, `fused`, `capturable`, `differentiable`, as constructor
                   keywords and param-group entries: `maximize` negates the gradient (torch's
                   `grad = -grad`), `foreach` is accepted (every geo backend but the reference one is
                   multi-tensor, and on the CPU the torch path is bit-identical to a per-tensor loop), `fused=True`
                   selects the Triton backend (one generated kernel per fused region); `capturable=True` and
                   `differentiable=True` are refused with the reason.
    torch twins    the state dicts of torch.optim.AdamW, SGD and Muon, which the stdlib's `adamw`, `sgd` and `muon`
                   reproduce bit for bit: `load_state_dict` takes theirs (state names and hyperparameters
                   mapped), and `torch_state_dict()` gives one their `load_state_dict` takes.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch.optim.optimizer import required

from ..compiler import backends
from ..compiler.backends import AUTO
from ..compiler.spec import REQUIRED, OptimizerInfo
from .checkpoint import STEP_KEY, CheckpointError, identity

if TYPE_CHECKING:
    from .optimizer import GeoOptimizer

# torch.optim's common flags and their defaults (torch 2.13's AdamW and SGD); each is a param-group entry.
TORCH_FLAGS: dict[str, Any] = {"maximize": False, "foreach": None, "fused": None, "capturable": False,
                               "differentiable": False}

# torch.optim arguments a spec may not have, and what they are: the error for `amsgrad=True` says what it asked for.
TORCH_VARIANTS = {
    "amsgrad": "torch.optim's AMSGrad variant (the running maximum of the second moment)",
    "decoupled_weight_decay": "torch.optim.Adam's switch to decoupled weight decay (AdamW)",
    "nesterov": "Nesterov momentum",
    "dampening": "SGD's dampening",
    "centered": "RMSprop's centered variant",
    "momentum_decay": "NAdam's momentum decay",
    "lr_decay": "Adagrad's learning-rate decay",
    "initial_accumulator_value": "Adagrad's initial accumulator",
}


# The value at which a torch.optim variant switch asks for nothing (`amsgrad=False`): accepted by a spec without it.
TORCH_VARIANTS_OFF = {"amsgrad": False, "centered": False, "nesterov": False}


def split_flags(info: OptimizerInfo, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(torch.optim flags, everything else) of constructor keywords or a param group; a flag's value is checked
    (TypeError, or ValueError for what geo cannot do). A variant switch of torch.optim's left off (`amsgrad=False`)
    that the spec does not have is dropped: it asks for nothing."""
    opt = info.name
    flags = {k: v for k, v in values.items() if k in TORCH_FLAGS}
    for name, value in flags.items():
        allowed = (bool,) if TORCH_FLAGS[name] is False else (bool, type(None))
        if not isinstance(value, allowed):
            raise TypeError(f"{opt}: `{name}` takes {'True or False' if allowed == (bool,) else 'None, True or False'}"
                            f", got {value!r}")
    if flags.get("capturable"):
        raise ValueError(f"{opt}: capturable=True (CUDA graph capture) is not supported: geo computes its "
                         "hyperparameter arithmetic (bias corrections, lr·scale) on the host in double precision, "
                         "as torch.optim's eager step does, which a captured graph cannot replay")
    if flags.get("differentiable"):
        raise ValueError(f"{opt}: differentiable=True is not supported: geo's step runs under torch.no_grad() and "
                         "writes parameters and state in place")
    rest = {k: v for k, v in values.items() if k not in TORCH_FLAGS and not (
        k in TORCH_VARIANTS_OFF and k not in info.hypers and v is TORCH_VARIANTS_OFF[k])}
    return flags, rest


def backend_for(opt: str, backend: str, flags: dict[str, Any]) -> str:
    """The backend that `fused` asks for: True is geo's fused kernels, the Triton backend."""
    if not flags.get("fused"):
        return backend
    if backend not in (AUTO, "triton"):
        raise ValueError(f"{opt}: fused=True asks for fused kernels, geo's `triton` backend, but backend={backend!r} "
                         "was chosen; drop one of them")
    if backends.resolve(AUTO, on_cuda=True) != "triton":  # the `triton` package is not installed
        raise ValueError(f"{opt}: fused=True asks for fused kernels, geo's `triton` backend, and the `triton` package "
                         "is not installed (pip install 'geo[triton]'); without it, leave `fused` unset: the torch "
                         "backend is multi-tensor")
    return "triton"


def check_group_flags(opt: str, flags: dict[str, Any], backend: str) -> None:
    """A param group's own flags against the optimizer's backend (it is chosen once, for every group)."""
    if flags.get("fused") and backend != "triton":
        raise ValueError(f"{opt}: a param group asks for fused=True, and this optimizer runs the `{backend}` backend; "
                         "pass fused=True (or backend='triton') to the constructor")


def defaults(info: OptimizerInfo, flags: dict[str, Any]) -> dict[str, Any]:
    """`opt.defaults`: the hyperparameters every rule has (the first rule's default: a route's own value is in its
    groups; torch's `required` where there is none), then torch.optim's flags."""
    shared = [name for name in info.rules[0].hypers if all(name in r.hypers for r in info.rules[1:])]
    out: dict[str, Any] = {}
    for name in shared:
        default = info.rules[0].hypers[name].default
        out[name] = required if default is REQUIRED else default
    out.update(TORCH_FLAGS)
    out.update(flags)
    return out


# ---- torch twins: state dicts of torch.optim's own optimizers ---------------------------------------------
@dataclass(frozen=True)
class TorchTwin:
    """A torch.optim optimizer that a stdlib spec reproduces bit for bit, and how their state dicts correspond."""

    torch_class: str                               # its name in torch.optim
    slots: dict[str, str]                          # torch's state name -> geo's slot name
    counts_steps: bool                             # torch keeps `step` in each parameter's state
    from_torch: Callable[[dict[str, Any]], dict[str, Any]]  # a torch param group -> geo's hyperparameters
    to_torch: Callable[[dict[str, Any]], dict[str, Any]]    # a geo param group -> torch's entries
    hypers: tuple[str, ...]                        # torch's own entries of a param group (all replaced)


def _adamw_from(g: dict[str, Any]) -> dict[str, Any]:
    if g.get("amsgrad"):
        raise CheckpointError("this torch.optim.AdamW state was written with amsgrad=True; geo's `adamw` has no "
                              "AMSGrad variant (its state has no `max_exp_avg_sq`)")
    if g.get("decoupled_weight_decay") is False:
        raise CheckpointError("this state was written by torch.optim.Adam with L2 weight decay "
                              "(decoupled_weight_decay=False); geo's `adamw` decouples it")
    return {k: g[k] for k in ("lr", "betas", "eps", "weight_decay")}


def _adamw_to(g: dict[str, Any]) -> dict[str, Any]:
    return {"lr": g["lr"], "betas": tuple(g["betas"]), "eps": g["eps"], "weight_decay": g["weight_decay"],
            "amsgrad": False, "decoupled_weight_decay": True}


def _sgd_from(g: dict[str, Any]) -> dict[str, Any]:
    return {k: g[k] for k in ("lr", "momentum", "dampening", "weight_decay", "nesterov")}


def _sgd_to(g: dict[str, Any]) -> dict[str, Any]:
    return {k: g[k] for k in ("lr", "momentum", "dampening", "weight_decay", "nesterov")}


def _keller() -> tuple[float, float, float]:
    from ..compiler.ops.matrix import SCHEDULES
    return SCHEDULES["keller"].tuples[0]


def _muon_from(g: dict[str, Any]) -> dict[str, Any]:
    coefficients = tuple(float(c) for c in g.get("ns_coefficients", _keller()))
    if coefficients != _keller():
        raise CheckpointError(f"this torch.optim.Muon state uses ns_coefficients={coefficients}; geo's `muon` runs "
                              f"the \"keller\" schedule {_keller()} (write a spec with `coeffs = ({coefficients},)` "
                              "for these)")
    adjust = g.get("adjust_lr_fn") or "original"
    return {"lr": g["lr"], "momentum": g["momentum"], "weight_decay": g["weight_decay"], "eps": g["eps"],
            "nesterov": bool(g["nesterov"]), "ns_steps": int(g["ns_steps"]), "ns_coeffs": "keller", "ns_dtype": "bf16",
            "adjust_lr": adjust}


def _muon_to(g: dict[str, Any]) -> dict[str, Any]:
    if g["ns_coeffs"] != "keller" or g["ns_dtype"] != "bf16":
        raise CheckpointError(f"torch.optim.Muon runs the \"keller\" schedule in bf16; this group has "
                              f"ns_coeffs={g['ns_coeffs']!r}, ns_dtype={g['ns_dtype']!r}")
    return {"lr": g["lr"], "weight_decay": g["weight_decay"], "momentum": g["momentum"], "nesterov": g["nesterov"],
            "ns_coefficients": _keller(), "eps": g["eps"], "ns_steps": g["ns_steps"], "adjust_lr_fn": g["adjust_lr"]}


TWINS: dict[str, TorchTwin] = {
    "adamw": TorchTwin("AdamW", {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}, True, _adamw_from, _adamw_to,
                       ("lr", "betas", "eps", "weight_decay", "amsgrad", "decoupled_weight_decay")),
    "sgd": TorchTwin("SGD", {"momentum_buffer": "momentum_buffer"}, False, _sgd_from, _sgd_to,
                     ("lr", "momentum", "dampening", "weight_decay", "nesterov")),
    "muon": TorchTwin("Muon", {"momentum_buffer": "buf"}, False, _muon_from, _muon_to,
                      ("lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "eps", "ns_steps",
                       "adjust_lr_fn")),
}


@functools.cache
def _stdlib_fingerprint(name: str) -> str:
    from ..compiler.pipeline import front
    from ..dsl.loader import source_for
    _, checked = front(source_for(name))
    return checked.optimizers[name].fingerprint


def twin_of(opt: GeoOptimizer) -> TorchTwin | None:
    """The torch.optim twin of this optimizer: only the stdlib's own adamw, sgd and muon (the same spec text)."""
    info = opt._geo.info
    found = TWINS.get(info.name)
    if found is None or info.fingerprint != _stdlib_fingerprint(info.name):
        return None
    return found


def from_torch(opt: GeoOptimizer, sd: dict[str, Any]) -> dict[str, Any]:
    """A torch.optim state dict of this optimizer's twin, as this optimizer's own (validated afterwards as any).

    It must look like one: every param group with torch's own entries of its twin (`amsgrad` for AdamW) and none of
    geo's (`geo_rule`: a geo state dict that lost its `geo` entry is refused, not guessed at)."""
    found = twin_of(opt)
    name = opt._geo.info.name
    if found is None:
        raise CheckpointError(f"this state_dict was not written by a geo optimizer; `{name}` expects one with a 'geo' "
                              "entry (torch.optim state dicts load into the stdlib's adamw, sgd and muon only)")
    groups, state = sd.get("param_groups"), sd.get("state")
    signature = set(found.hypers) - {"decoupled_weight_decay"}  # older torch versions did not write it
    if not isinstance(groups, list) or not all(isinstance(g, dict) and signature <= set(g) and "geo_rule" not in g
                                               for g in groups):
        raise CheckpointError(f"this state_dict was not written by a geo optimizer (it has no 'geo' entry), nor by "
                              f"torch.optim.{found.torch_class}, whose state dicts `{name}` also loads (its param "
                              f"groups have {', '.join(sorted(signature))} and no `geo_rule`)")
    if not isinstance(groups, list) or not isinstance(state, dict) or len(groups) != len(opt.param_groups):
        raise CheckpointError(f"this is not a torch.optim.{found.torch_class} state_dict of this optimizer: it has "
                              f"{len(groups) if isinstance(groups, list) else 'no'} param groups, `{name}` has "
                              f"{len(opt.param_groups)}")
    new_groups = []
    for saved, now in zip(groups, opt.param_groups):
        if not isinstance(saved, dict) or "params" not in saved:
            raise CheckpointError("a param group of the state_dict is not a dict with 'params'")
        try:
            hypers = found.from_torch(saved)
        except KeyError as missing:
            raise CheckpointError(f"this is not a torch.optim.{found.torch_class} state_dict: a param group has no "
                                  f"{missing}") from None
        group = {k: v for k, v in saved.items() if k not in found.hypers and k not in TORCH_FLAGS}
        group.update(hypers)
        group.update({k: now.get(k, v) for k, v in TORCH_FLAGS.items()})
        group["maximize"] = bool(saved.get("maximize", False))
        group["geo_rule"] = now["geo_rule"]
        new_groups.append(group)
    new_state: dict[Any, Any] = {}
    for pid, entry in state.items():
        if not isinstance(entry, dict):
            raise CheckpointError(f"the state of parameter id {pid!r} is not a dict")
        unknown = sorted(set(entry) - set(found.slots) - {"step"}, key=repr)
        if unknown:
            raise CheckpointError(f"the state of parameter id {pid!r} has {unknown}, which geo's `{name}` does not "
                                  f"keep (torch.optim.{found.torch_class}'s are {sorted(found.slots)})")
        slots = {mine: entry[theirs] for theirs, mine in found.slots.items() if entry.get(theirs) is not None}
        if not slots:
            continue  # SGD without momentum keeps nothing: geo starts the parameter afresh, as torch would
        if len(slots) != len(found.slots):
            raise CheckpointError(f"the state of parameter id {pid!r} lacks "
                                  f"{sorted(set(found.slots) - {t for t, m in found.slots.items() if m in slots})}")
        # torch.optim.SGD and Muon keep no step count: a parameter with state has taken at least one step, which is
        # all their geo twins read of it (SGD's first step copies the gradient into the momentum buffer)
        step = float(entry["step"]) if found.counts_steps and "step" in entry else 1.0
        new_state[pid] = {STEP_KEY: torch.tensor(step, dtype=torch.float32), **slots}
    return {"state": new_state, "param_groups": new_groups, "geo": identity(opt._geo.info)}


def to_torch(opt: GeoOptimizer) -> dict[str, Any]:
    """This optimizer's state dict as its torch.optim twin writes one (`torch.optim.AdamW(...).load_state_dict`)."""
    found = twin_of(opt)
    if found is None:
        raise ValueError(f"`{opt._geo.info.name}` has no torch.optim twin: torch_state_dict() is for the stdlib's "
                         f"{', '.join(TWINS)} (torch.optim's {', '.join(t.torch_class for t in TWINS.values())})")
    sd = opt.state_dict()
    groups = []
    for g in sd["param_groups"]:
        group = {k: v for k, v in g.items() if k not in ("geo_rule", *opt._geo.rules[g["geo_rule"]].hypers)}
        group.update(found.to_torch(g))
        if found.torch_class == "Muon":
            for flag in TORCH_FLAGS:  # torch.optim.Muon takes none of them
                group.pop(flag, None)
        groups.append(group)
    state = {}
    inverse = {mine: theirs for theirs, mine in found.slots.items()}
    for pid, entry in sd["state"].items():
        group = next(g for g in sd["param_groups"] if pid in g["params"])
        if found.torch_class == "SGD" and group["momentum"] == 0:
            continue  # torch.optim.SGD keeps no buffer without momentum
        out = {inverse[k]: v for k, v in entry.items() if k in inverse}
        if found.counts_steps:
            out["step"] = entry[STEP_KEY]
        state[pid] = out
    return {"state": state, "param_groups": groups}
