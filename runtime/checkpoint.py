"""Checkpoints of a compiled optimizer: the layout of its state_dict, and validating one before it is loaded.

A geo state_dict is torch.optim's (`state`, `param_groups`) plus `geo = {optimizer, fingerprint,
geo_version}`; the fingerprint hashes the text of every spec module involved. Each parameter's state holds
the step count under `STEP_KEY` (as torch.optim does) and one tensor per state slot of its rule's program;
each param group records its rule (`geo_rule`) and every hyperparameter of that rule.

Loading validates everything (owner, version, groups, rules, every hyperparameter's kind and range, every
slot's presence, dtype and shape, every step count) before anything changes, so a failed load leaves the optimizer untouched: torch's own loader would accept another
optimizer's state of the same layout and fail, or silently go wrong, at the next step.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from ..compiler.binding import show_shape, slot_shape
from ..compiler.ir import StateSlot
from ..compiler.spec import OptimizerInfo, RuleInfo
from ..compiler.types import torch_dtype
from ..version import __version__
from .hypers import check_hyper

if TYPE_CHECKING:
    from .optimizer import GeoOptimizer

STEP_KEY = "step"
# Optimizer-level state, present when the spec draws random numbers or has an `across` block: the generator's
# seed, and the across block's step count and states.
GLOBAL_KEY = "geo_global"


class CheckpointError(ValueError):
    """A state_dict that does not belong to this optimizer (another spec, version, or layout)."""


def identity(info: OptimizerInfo) -> dict[str, Any]:
    """The `geo` entry of a state_dict: which optimizer, and which version of its spec, wrote it."""
    return {"optimizer": info.name, "fingerprint": info.fingerprint, "geo_version": __version__}


def global_state(opt: GeoOptimizer) -> dict[str, Any]:
    """The `geo_global` entry: {"seed": int, "step": int, "state": {slot: tensor}} (the across block's)."""
    return {"seed": opt._geo_seed, "step": opt._geo_across_step,
            "state": {k: v.clone() for k, v in opt._geo_across_state.items()}}


def restore_global(opt: GeoOptimizer, entry: dict[str, Any]) -> None:
    """Takes a validated `geo_global` entry: the checkpoint's seed replaces the constructor's."""
    opt._geo_seed = int(entry["seed"])
    opt._geo_across_step = int(entry["step"])
    opt._geo_across_state = {k: v.detach().clone() for k, v in entry["state"].items()}


def _validate_global(opt: GeoOptimizer, sd: dict[str, Any]) -> None:
    entry = sd.get(GLOBAL_KEY)
    name = opt._geo.info.name
    if not opt._geo.info.uses_global:
        if entry is not None:
            raise CheckpointError(f"the state_dict has optimizer-level state (`{GLOBAL_KEY}`), which `{name}` does "
                                  "not keep")
        return
    if not isinstance(entry, dict):
        raise CheckpointError(f"the state_dict has no `{GLOBAL_KEY}` entry (`{name}` keeps its random seed and "
                              "optimizer-level state there)")
    for key in ("seed", "step"):
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(f"`{GLOBAL_KEY}` {key} is not a non-negative integer: {value!r}")
    state = entry.get("state")
    if not isinstance(state, dict):
        raise CheckpointError(f"`{GLOBAL_KEY}` has no state dict")
    if opt._geo.info.across is None or (not state and entry["step"] == 0):
        if state and opt._geo.info.across is None:
            raise CheckpointError(f"`{GLOBAL_KEY}` holds across state, but `{name}` has no `across` block")
        return
    from . import across  # (a sibling module that imports this one)
    shapes = across.slot_shapes(across.program(opt), len(across.covered(opt)))
    if set(state) != set(shapes):
        raise CheckpointError(f"`{GLOBAL_KEY}` holds the across states {sorted(state)}, expected {sorted(shapes)}")
    for k, want in shapes.items():
        v = state[k]
        if not (isinstance(v, torch.Tensor) and v.is_floating_point()) or tuple(v.shape) != want:
            raise CheckpointError(f"across state `{k}` has shape {show_shape(tuple(getattr(v, 'shape', ())))} in the "
                                  f"checkpoint, expected {show_shape(want)} (the layers the block covers now)")


def param_name(group: dict[str, Any], p: torch.Tensor) -> str:
    """How messages name a parameter: by its name when its group has names, else by its place in the group."""
    index = next(i for i, q in enumerate(group["params"]) if q is p)
    if "param_names" in group:
        return f"`{group['param_names'][index]}`"
    return f"#{index} of its group (shape {show_shape(tuple(p.shape))})"


def restore_dtypes(opt: GeoOptimizer, sd: dict[str, Any] | None = None) -> None:
    """Gives each loaded slot back its declared storage dtype: torch's loader casts floating state to the
    parameter's dtype, which would turn a bf16 state of an fp32 parameter into fp32 — and round an fp32 state of a
    bf16 parameter to bf16, so such a slot is taken again from the saved state_dict `sd`, at its full precision."""
    saved: dict[int, Any] = {}
    if sd is not None:
        for g_saved, g_now in zip(sd.get("param_groups", []), opt.param_groups):
            for pid, p in zip(g_saved.get("params", []), g_now["params"]):
                saved[id(p)] = sd.get("state", {}).get(pid)
    for group in opt.param_groups:
        rule = opt._geo.rules[group["geo_rule"]]
        for p in group["params"]:
            state = opt.state.get(p)
            if not state:
                continue
            for slot in _slots(opt, rule, group, p):
                if slot.dtype and isinstance(state.get(slot.name), torch.Tensor):
                    original = (saved.get(id(p)) or {}).get(slot.name)
                    source = original if isinstance(original, torch.Tensor) else state[slot.name]
                    state[slot.name] = source.to(device=p.device, dtype=torch_dtype(slot.dtype), copy=True)


def _slots(opt: GeoOptimizer, rule: RuleInfo, group: dict[str, Any], p: torch.Tensor) -> list[StateSlot]:
    _, rank, active = opt._geo_binding[p]
    return opt._geo.program(rule, rule.statics(group), rank, active, shape=tuple(p.shape)).states


def check_identity(opt: GeoOptimizer, theirs: Any, allow_spec_change: bool) -> None:
    """Raises CheckpointError unless `theirs` (a state dict's `geo` entry) names this optimizer and its spec."""
    mine = identity(opt._geo.info)
    if not isinstance(theirs, dict):
        raise CheckpointError(f"this state_dict was not written by a geo optimizer; `{mine['optimizer']}` expects "
                              "one with a 'geo' entry")
    if theirs.get("optimizer") != mine["optimizer"]:
        raise CheckpointError(f"this state_dict belongs to the optimizer `{theirs.get('optimizer')}`, not "
                              f"`{mine['optimizer']}`")
    if theirs.get("fingerprint") != mine["fingerprint"] and not allow_spec_change:
        raise CheckpointError(f"this state_dict was written by another version of the spec `{mine['optimizer']}` "
                              f"(fingerprint {theirs.get('fingerprint')}, now {mine['fingerprint']}); pass "
                              "allow_spec_change=True to load it anyway")


def validate(opt: GeoOptimizer, sd: dict[str, Any], allow_spec_change: bool) -> None:
    """Raises CheckpointError naming the first thing in `sd` that does not fit this optimizer."""
    check_identity(opt, sd.get("geo") if isinstance(sd, dict) else None, allow_spec_change)
    _validate_global(opt, sd)
    groups = sd.get("param_groups")
    if not isinstance(groups, list) or len(groups) != len(opt.param_groups):
        raise CheckpointError(f"the state_dict has {len(groups) if isinstance(groups, list) else 'no'} param groups, "
                              f"this optimizer has {len(opt.param_groups)}")
    state = sd.get("state")
    if not isinstance(state, dict):
        raise CheckpointError("the state_dict has no 'state' entry")
    listed: set[Any] = set()
    for i, g_saved in enumerate(groups):
        if not isinstance(g_saved, dict) or not isinstance(g_saved.get("params"), list):
            raise CheckpointError(f"param group {i} of the state_dict is not a param group (a dict with a 'params' "
                                  "list)")
        listed.update(g_saved["params"])
    stray = sorted((k for k in state if k not in listed), key=repr)
    if stray:
        raise CheckpointError(f"the state_dict has state for parameter id {stray[0]!r}, which none of its param "
                              "groups lists")
    index = 0
    for g_saved, g_now in zip(groups, opt.param_groups):
        if g_saved.get("geo_rule") != g_now["geo_rule"]:
            raise CheckpointError(f"param group {index} was bound to rule {g_saved.get('geo_rule')} in the checkpoint "
                                  f"and to rule {g_now['geo_rule']} now")
        saved_params = g_saved.get("params", [])
        if len(saved_params) != len(g_now["params"]):
            raise CheckpointError(f"param group {opt.param_groups.index(g_now)} has {len(saved_params)} parameters in "
                                  f"the checkpoint and {len(g_now['params'])} now")
        rule = opt._geo.rules[g_now["geo_rule"]]
        for name, h in rule.hypers.items():  # the loaded group replaces this one: it must be whole and valid
            if name not in g_saved:
                raise CheckpointError(f"param group {index} of the state_dict has no hyperparameter `{name}` (its "
                                      f"rule `{rule.text}` has one)")
            try:
                check_hyper(opt._geo.info.name, h, g_saved[name])
            except (TypeError, ValueError) as err:
                raise CheckpointError(f"param group {index} of the state_dict: {err}") from None
        for pid, p in zip(saved_params, g_now["params"]):
            entry = state.get(pid)
            if entry is None:
                continue
            pname = param_name(g_now, p)
            if not isinstance(entry, dict):
                raise CheckpointError(f"the state of parameter {pname} is a {type(entry).__name__}, not a dict of "
                                      "slots")
            expected = {s.name: s for s in _slots(opt, rule, g_saved, p)}
            missing = sorted((set(expected) | {STEP_KEY}) - set(entry))
            extra = sorted(set(entry) - set(expected) - {STEP_KEY}, key=repr)
            if missing or extra:
                raise CheckpointError(f"state of parameter {pname}: " + "; ".join(
                    x for x in (missing and f"missing {missing}", extra and f"unexpected {extra}") if x))
            step = entry[STEP_KEY]
            if isinstance(step, bool) or not (isinstance(step, (int, float)) or (
                    isinstance(step, torch.Tensor) and step.numel() == 1 and step.is_floating_point())):
                raise CheckpointError(f"state `{STEP_KEY}` of parameter {pname} is not a step count: {step!r}")
            try:
                count = float(step.item() if isinstance(step, torch.Tensor) else step)
            except OverflowError:  # an int beyond every float
                count = math.inf
            if not (math.isfinite(count) and count >= 0 and count.is_integer()):
                # the next step would compute bias corrections (1 - β^t) from it: NaN, or a negative t, corrupts
                # every later step of the parameter
                raise CheckpointError(f"state `{STEP_KEY}` of parameter {pname} is {count!r}, not a step count (a "
                                      "whole number >= 0)")
            for name, slot in expected.items():
                value = entry[name]
                if not (isinstance(value, torch.Tensor) and value.is_floating_point()):
                    raise CheckpointError(f"state `{name}` of parameter {pname} is a "
                                          f"{value.dtype if isinstance(value, torch.Tensor) else type(value).__name__} "
                                          "in the state_dict, expected a floating-point tensor")
                want = slot_shape(slot, opt._geo_shape(p), rule)  # as the rules see it (a Conv1D weight: (out, in))
                have = tuple(value.shape) if isinstance(value, torch.Tensor) else ()
                if want is not None and have != want:
                    raise CheckpointError(f"state `{name}` of parameter {pname} has shape {show_shape(have)} in the "
                                          f"checkpoint, expected {show_shape(want)}")
        index += 1
