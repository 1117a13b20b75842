"""The optimizer-level `across` block: run once per `step()`, before any rule, over the parameters it covers.

    across hidden matrix layers:           # covers the parameters this selector picks, in param-group order
        let update = subset(layers, k)     # `layers` = [0, 1, …, L − 1]; a random subset of k of the L layers
    for hidden matrix W:
        when update > 0: ...               # each covered parameter reads its entry of `update`

The block is a program like a rule's (compiler/elaborate.py), over a float64 CPU vector of the L covered
parameters' indices, evaluated by the reference interpreter: it is host work, small, and its values decide host
things (`when` blocks). Its `t` is the optimizer's own step count; its states are vectors over the layers; its
random draws use the stream "<across>". All of it lives in the state dict's `geo_global` entry (runtime/
checkpoint.py), so a resumed run decides as the uninterrupted one would. A parameter group added later grows the
vectors: new layers get their states' initial values, the old ones keep theirs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..compiler.backends.reference import evaluate
from ..compiler.binding import selector_matches, show_shape
from ..compiler.ir import Program, reachable
from ..compiler.ops.randomness import RandomKey
from ..compiler.spec import ACROSS, RuleInfo
from ..compiler.types import torch_dtype
from ..dsl.diagnostics import Diagnostic, Label

if TYPE_CHECKING:
    from .optimizer import GeoOptimizer

STREAM = "<across>"


def covered(opt: GeoOptimizer) -> list[torch.Tensor]:
    """The parameters the `across` block covers, in param-group order."""
    rule = opt._geo.info.across
    return [p for g in opt.param_groups for p in g["params"] if selector_matches(rule.terms, opt._geo_params[p])]


def covers(opt: GeoOptimizer, p: torch.Tensor) -> bool:
    rule = opt._geo.info.across
    return rule is not None and selector_matches(rule.terms, opt._geo_params[p])


def uncovered(opt: GeoOptimizer, rule: RuleInfo, p: torch.Tensor, pname: str) -> Diagnostic:
    """GEO0404: a parameter whose rule reads an `across` value the block does not compute for it."""
    block = opt._geo.info.across
    info = opt._geo_params[p]
    return Diagnostic("GEO0404", f"parameter {pname} of shape {show_shape(info.shape)} reads an `across` value, but "
                      f"the `across` block does not cover it", Label(block.binder.span, "covers other parameters"),
                      [Label(rule.binder.span, f"this rule reads the block's values (role: {info.role})")],
                      help="widen the block's selector, or route the parameter to a rule that does not read them")


def _values(opt: GeoOptimizer, rule: RuleInfo) -> tuple[dict[str, Any], dict[str, Any]]:
    """(static values, runtime values) of the block's hyperparameters (the optimizer header's): each from the first
    param group that holds it, else its default."""
    statics, hypers = {}, {}
    for name, h in rule.hypers.items():
        value = next((g[name] for g in opt.param_groups if name in g), h.default)
        (statics if h.static else hypers)[name] = value
    return statics, hypers


def program(opt: GeoOptimizer, firing: frozenset | None = None) -> Program:
    rule = opt._geo.info.across
    statics, _ = _values(opt, rule)
    return opt._geo.program(rule, statics, 1, (0,), firing, (len(covered(opt)),))


def slot_shapes(prog: Program, count: int) -> dict[str, tuple[int, ...]]:
    """Each state slot's shape for `count` covered layers: (L,) for a vector over them, () for a number."""
    return {s.name: (count,) if s.type.shape == ("n",) else () for s in prog.states}


@dataclass
class AcrossStep:
    """One step of the block, computed and not yet applied: each covered parameter's inputs ({"across.NAME":
    value}, by id of the parameter), and the block's step count and states after it, written by `commit` when
    the optimizer's step applies (so a step that fails before changing anything leaves the block as it was)."""

    decided: dict[int, dict[str, float]]
    step: int
    state: dict[str, torch.Tensor]

    def commit(self, opt: GeoOptimizer) -> None:
        opt._geo_across_step, opt._geo_across_state = self.step, self.state


def run(opt: GeoOptimizer) -> AcrossStep:
    """One step of the block, computed from its step count and states (not changed here: `AcrossStep.commit`)."""
    rule = opt._geo.info.across
    layers_of = covered(opt)
    count = len(layers_of)
    _, hypers = _values(opt, rule)
    full = program(opt)
    layers = torch.arange(count, dtype=torch.float64)
    state = _grown(opt, full, layers, hypers)
    step = opt._geo_across_step + 1
    t = float(step)
    inputs = {"rng": RandomKey(opt._geo_seed, STREAM, step)} if "rng" in full.inputs else {}
    firing = opt._geo.firing(full, layers, None, hypers, t, inputs)
    prog = full if firing is None else program(opt, firing)
    nodes = reachable(list(prog.outputs.values()) + list(prog.exports.values()))
    values = evaluate(nodes, {"param": layers, "grad": None, "state": state, "hypers": hypers, "t": t,
                              "inputs": inputs})
    slots = {s.name: s for s in prog.states}
    for name, node in prog.outputs.items():
        if name != "param":
            value = values[node.id]
            value = value if isinstance(value, torch.Tensor) else torch.tensor(float(value), dtype=torch.float64)
            dtype = torch_dtype(slots[name].dtype) if slots[name].dtype else torch.float64
            state[name] = value.detach().to(dtype).expand(state[name].shape).clone()
    out: dict[int, dict[str, float]] = {id(p): {} for p in layers_of}
    for name, node in prog.exports.items():
        value = values[node.id]
        per_layer = isinstance(value, torch.Tensor) and value.dim() == 1 and value.numel() == count and count != 1
        for i, p in enumerate(layers_of):
            out[id(p)][f"{ACROSS}.{name}"] = float(value[i] if per_layer else value.reshape(-1)[0]
                                                   if isinstance(value, torch.Tensor) else value)
    return AcrossStep(out, step, state)


def _grown(opt: GeoOptimizer, prog: Program, layers: torch.Tensor, hypers: dict[str, Any]) -> dict[str, Any]:
    """The block's states for the layers covered now: initialized at the first step; where layers were added
    since, the new entries take their initial values and the old ones stay."""
    state = dict(opt._geo_across_state)
    want = slot_shapes(prog, layers.numel())
    if set(state) == set(want) and all(tuple(state[k].shape) == v for k, v in want.items()):
        return state
    init = evaluate(reachable([s.init for s in prog.states]), {"param": layers, "hypers": hypers, "inputs": {}})
    out = {}
    for s in prog.states:
        value = init[s.init.id]
        value = value if isinstance(value, torch.Tensor) else torch.tensor(float(value), dtype=torch.float64)
        dtype = torch_dtype(s.dtype) if s.dtype else torch.float64
        fresh = value.detach().to(dtype).expand(want[s.name]).clone()
        old = state.get(s.name)
        if old is not None and old.dim() == 1 and fresh.dim() == 1:
            keep = min(old.numel(), fresh.numel())
            fresh[:keep] = old[:keep].to(dtype)
        elif old is not None and old.dim() == 0 and fresh.dim() == 0:
            fresh = old.to(dtype).clone()
        out[s.name] = fresh
    return out
