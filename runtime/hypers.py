"""Hyperparameter values: validating what the user passes, and resolving each param group's values.

A rule's hyperparameters live in its param groups under their own names, so schedulers, `state_dict` and
torch's own tooling see them as they see `lr` of torch.optim. A group's value of each hyperparameter comes,
last one winning, from the spec's default, the constructor's keywords, the constructor's per-route keywords
(`muon={"lr": 0.02}`) and the user's param group. Static values are checked against their declared kind and
choices (they select compiled code); runtime values must be finite numbers, or 1-element tensors that a
scheduler may update in place.
"""
from __future__ import annotations

import difflib
import math
from typing import Any

import torch

from ..compiler.spec import REQUIRED, HyperInfo, OptimizerInfo, RuleInfo


def check_hyper(opt: str, h: HyperInfo, value: Any) -> Any:
    """The value to store for hyperparameter `h` of optimizer `opt`; TypeError or ValueError when it is not one."""
    if h.static:
        return h.check_static(opt, value)
    if isinstance(h.default, tuple):
        if not isinstance(value, (tuple, list)) or len(value) != len(h.default):
            raise TypeError(f"{opt}: `{h.name}` takes a tuple of {len(h.default)} numbers, got {value!r}")
        return tuple(_number(opt, h.name, v) for v in value)
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"{opt}: `{h.name}` must be a number or a 1-element tensor")
        return value
    return _number(opt, h.name, value)


def validate_kwargs(info: OptimizerInfo, hypers: dict[str, Any]) -> dict[str, Any]:
    """The constructor's keywords: each a hyperparameter of some rule, or `ROUTE={...}` of that route's."""
    known = set(info.hypers)
    routes = {r.route for r in info.rules}
    for key, value in hypers.items():
        if key in routes and isinstance(value, dict):
            rule_hypers = set().union(*(r.hypers for r in info.rules if r.route == key))
            for sub in value:
                if sub not in rule_hypers:
                    raise TypeError(f"{info.name}: route `{key}` has no hyperparameter `{sub}`"
                                    + _close(sub, rule_hypers))
        elif key not in known:
            raise TypeError(_unknown(info, key, routes))
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


def runtime_values(rule: RuleInfo, group: dict[str, Any]) -> dict[str, Any]:
    """The runtime hyperparameters a step reads from a param group, as host numbers (a scheduler may have stored
    a 1-element tensor)."""
    return {k: _runtime_value(group[k]) for k, h in rule.hypers.items() if not h.static}


def _number(opt: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{opt}: `{name}` takes a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{opt}: `{name}` must be finite, got {value!r}")
    return float(value)


def _runtime_value(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return float(v.item())
    return v


def _close(name: str, options) -> str:
    hit = difflib.get_close_matches(name, sorted(options), n=1, cutoff=0.6)
    return f" (did you mean `{hit[0]}`?)" if hit else (f"; it has: {', '.join(sorted(options))}" if options else "")
