"""Hyperparameter values: validating what the user passes, and resolving each param group's values.

A rule's hyperparameters live in its param groups under their own names, so schedulers, `state_dict` and
torch's own tooling see them as they see `lr` of torch.optim. A group's value of each hyperparameter comes,
last one winning, from the spec's default, the constructor's keywords, the constructor's per-route keywords
(`muon={"lr": 0.02}`) and the user's param group. Static values are checked against their declared kind and
choices (they select compiled code); runtime values must be finite numbers, or 1-element tensors that a
scheduler may update in place. Every number must lie in its declared range (`lr = 1e-3 in [0, inf)`), as
torch.optim checks `0 <= lr`: when the optimizer is built, when a checkpoint is loaded, and at every step for
the values the step reads from `param_groups` (a scheduler changes them between steps; a value it, or anyone,
put there that is not a number in range stops the step before anything changes).
"""
from __future__ import annotations

import difflib
import math
from typing import Any

import torch

from ..compiler.spec import REQUIRED, HyperInfo, OptimizerInfo, RuleInfo


def check_hyper(opt: str, h: HyperInfo, value: Any) -> Any:
    """The value to store for hyperparameter `h` of optimizer `opt`; TypeError or ValueError when it is not one
    (not a number, not finite, or outside the declared range). A 1-element tensor is checked by its value and
    stored as it is (a scheduler may update it in place)."""
    if h.static:
        return h.check_static(opt, value)
    checked = step_value(opt, h, value)
    return value if isinstance(value, torch.Tensor) else checked


def step_value(opt: str, h: HyperInfo, value: Any) -> Any:
    """The host value a step reads for runtime hyperparameter `h`: a float (a tuple of floats), from a number
    or a 1-element tensor; TypeError or ValueError when it is not a finite number in the declared range."""
    if isinstance(h.default, tuple):
        if not isinstance(value, (tuple, list)) or len(value) != len(h.default):
            raise TypeError(f"{opt}: `{h.name}` takes a tuple of {len(h.default)} numbers, got {value!r}")
        number: Any = tuple(_number(opt, f"{h.name}[{i}]", v) for i, v in enumerate(value))
    else:
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            raise TypeError(f"{opt}: `{h.name}` must be a number or a 1-element tensor")
        number = _number(opt, h.name, value)
    problem = h.range_error(opt, number)
    if problem is not None:
        raise ValueError(problem)
    return number


def validate_kwargs(info: OptimizerInfo, hypers: dict[str, Any]) -> dict[str, Any]:
    """The constructor's keywords: each a hyperparameter of some rule, or `ROUTE={...}` of that route's, and each
    value valid (a number in range, a declared choice) for every rule that declares it. The values are checked
    here, not only when a param group of the rule is built, so that `muon_adamw(matrices, betas=(-1, 0.9))` is
    refused although no parameter reaches the AdamW route yet: torch.optim checks its arguments at construction,
    and a parameter added later must not meet a bad value already accepted."""
    known = set(info.hypers)
    routes = {r.route for r in info.rules}
    for key, value in hypers.items():
        if key in routes and isinstance(value, dict):
            rule_hypers = set().union(*(r.hypers for r in info.rules if r.route == key))
            for sub in value:
                if sub not in rule_hypers:
                    raise TypeError(f"{info.name}: route `{key}` has no hyperparameter `{sub}`"
                                    + _close(sub, rule_hypers))
            for r in info.rules:
                if r.route == key:
                    for sub, v in value.items():
                        if sub in r.hypers:
                            check_hyper(info.name, r.hypers[sub], v)
        elif key not in known:
            raise TypeError(_unknown(info, key, routes))
        else:
            for r in info.rules + ([info.across] if info.across is not None else []):
                if key in r.hypers:
                    check_hyper(info.name, r.hypers[key], value)
    return hypers


def _unknown(info: OptimizerInfo, key: str, routes: set[str]) -> str:
    """An unknown constructor keyword: a close name if there is one, what it is where torch.optim has it
    (`amsgrad`: a variant the spec does not have), and the spec's hyperparameters; routes apart, as routes."""
    from .torch_optim import TORCH_VARIANTS
    message = f"{info.name}: unknown hyperparameter `{key}`"
    if key in TORCH_VARIANTS:
        message += f": {TORCH_VARIANTS[key]}, which `{info.name}` does not have"
    hit = difflib.get_close_matches(key, sorted(set(info.hypers) | routes), n=1, cutoff=0.6)
    if hit:
        message += f" (did you mean `{hit[0]}`?)"
    message += f"; its hyperparameters: {', '.join(info.hypers) or 'none'}"
    if len(info.rules) > 1:
        message += "; and per route, as ROUTE={...}: " + ", ".join(dict.fromkeys(r.route for r in info.rules))
    return message


def group_values(info: OptimizerInfo, rule: RuleInfo, kwargs: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameter entries of a param group of `rule`: every hyperparameter of the rule, checked, and the
    user's other entries (keys torch or a scheduler put there) as they are."""
    values: dict[str, Any] = {}
    route_kwargs = kwargs.get(rule.route) if isinstance(kwargs.get(rule.route), dict) else {}
    for name, h in rule.hypers.items():
        value = h.default
        for source in (kwargs, route_kwargs, user):
            if name in source and not (source is kwargs and isinstance(source[name], dict)):
                value = source[name]
        if value is REQUIRED:
            raise TypeError(f"{info.name}: the hyperparameter `{name}` has no default; pass `{name}=...`")
        values[name] = check_hyper(info.name, h, value)
    for key, value in user.items():
        if key not in values and key not in ("geo_rule", "initial_lr") and key not in info.hypers:
            raise TypeError(f"{info.name}: param group has unknown hyperparameter `{key}`"
                            + _close(key, rule.hypers))
        values.setdefault(key, value)
    return values


def runtime_values(opt: str, rule: RuleInfo, group: dict[str, Any]) -> dict[str, Any]:
    """The runtime hyperparameters a step reads from a param group, as host numbers (a scheduler may have stored
    a 1-element tensor), each checked as the constructor checks it; TypeError or ValueError naming the first
    that is missing, not a finite number or outside its range."""
    out = {}
    for k, h in rule.hypers.items():
        if h.static:
            continue
        if k not in group:
            raise ValueError(f"{opt}: a param group of rule `{rule.text}` has no hyperparameter `{k}`")
        out[k] = step_value(opt, h, group[k])
    return out


def static_values(opt: str, rule: RuleInfo, group: dict[str, Any]) -> dict[str, Any]:
    """The static hyperparameters of a param group (the declared default where the group has none), each checked
    as the constructor checks it: they choose the program the step runs."""
    return {k: h.check_static(opt, v) for k, v in rule.statics(group).items() for h in (rule.hypers[k],)}


def _number(opt: str, name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and (value.is_floating_point() or not value.is_complex()) \
            and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{opt}: `{name}` takes a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{opt}: `{name}` must be finite, got an integer beyond every float") from None
    if not math.isfinite(number):
        raise ValueError(f"{opt}: `{name}` must be finite, got {number!r}")
    return number


def _close(name: str, options) -> str:
    hit = difflib.get_close_matches(name, sorted(options), n=1, cutoff=0.6)
    return f" (did you mean `{hit[0]}`?)" if hit else (f"; it has: {', '.join(sorted(options))}" if options else "")
