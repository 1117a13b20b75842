"""The optimizers under test, the parameters that reach each rule, drawn examples, and running them.

A `Subject` is one optimizer of a spec, compiled once. `targets` finds, per rule, the parameter names, roles
and ranks that the spec's routing binds to that rule, so that every rule gets examples (a rule after a
catch-all is reached only by the names and roles its selector singles out). A `Case` is one drawn example: a
parameter of an awkward shape (1×n, n×1, tall, wide, odd, stacks, conv kernels), a dtype, a start and one
gradient per step, all as `Recipe`s. `run_case` steps it on a backend and records the parameter and the state
after every step; `compare_runs` compares two such trajectories bit for bit and raises `Mismatch`.
"""
from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ..compiler.spec import Checked, OptimizerInfo, RuleInfo
from ..compiler import binding as P
from ..compiler.ir import geo_literal
from ..compiler.pipeline import front
from ..dsl.diagnostics import Diagnostic, GeoError
from ..dsl.loader import read_file, source_for
from ..dsl.source import SourceFile
from ..compiler.binding import bind_rule
from ..runtime.compiled import CompiledSpec
from ..runtime.optimizer import GeoOptimizer
from .draw import Draw, Skip
from .tensors import GRAD_KINDS, SCALES, Recipe, difference, same, summarize

MAX_SIDE = 9


@dataclass
class Subject:
    """One optimizer of a spec, compiled once; its rules are fuzzed."""

    label: str                 # how reports name the spec: a path, `stdlib/muon.geo`, or "<composition>"
    source: SourceFile
    checked: Checked
    name: str
    cls: type[GeoOptimizer]
    compile_arg: str           # what `geo.compile(...)` takes to rebuild it in a Python snippet

    @property
    def info(self) -> OptimizerInfo:
        return self.cls._geo.info

    def geo_snippet(self) -> str:
        """The optimizer's definition and the steps its rules use, as written."""
        parts, seen = [], set()
        d = self.info
        parts.append(f"# {d.span.location()}\n{d.span.text.rstrip()}")
        for rule in d.rules:
            for use in rule.chain:
                step = self.checked.steps.get(use.name)
                if step is not None and use.name not in seen:
                    seen.add(use.name)
                    parts.append(f"# {step.span.location()}\n{step.span.text.rstrip()}")
        return "\n\n".join(parts)


def optimizer_class(checked: Checked, name: str, backend: str = "auto") -> type[GeoOptimizer]:
    """`geo.compile` for an already checked spec (the fuzzer compiles generated text placed beside files)."""
    info = checked.optimizers[name]
    return type(info.name, (GeoOptimizer,), {"_geo": CompiledSpec(checked, info, backend),
                                             "__doc__": info.doc or checked.doc, "__module__": "geo.compiled"})


def load_subjects(spec: str | Path | SourceFile, names: Sequence[str] | None = None) -> list[Subject]:
    """The optimizers a spec defines (its own, not those of the specs it `use`s), or the named ones.
    Raises GeoError for an invalid spec."""
    if isinstance(spec, SourceFile):
        source, arg = spec, spec.name
    elif isinstance(spec, Path) or (isinstance(spec, str) and (os.path.isfile(spec) or spec.endswith(".geo"))):
        source, arg = read_file(str(spec)), str(spec)
    else:
        source = source_for(spec)
        arg = spec if "\n" not in spec else spec
    _, checked = front(source)
    chosen = list(names) if names else [source.entry] if source.entry else list(checked.root_optimizers)
    if not chosen:  # a file of steps only: each step is fuzzed as the optimizer `optimizer NAME_ = NAME`
        steps = [n for n, d in checked.steps.items() if d.span.source is source]
        if steps:
            text = source.text + "".join(f"\n\noptimizer geo_fuzz_{n} = {n}\n" for n in steps)
            source = SourceFile(source.name, text)
            _, checked = front(source)
            chosen = [f"geo_fuzz_{n}" for n in steps]
            arg = text  # reports compile the spec text with the added optimizers
    out = []
    for n in chosen:
        if n not in checked.optimizers:
            raise GeoError([Diagnostic("GEO0115", f"the spec defines no optimizer `{n}`",
                                       _builtin_label(source.name),
                                       notes=[f"optimizers: {', '.join(checked.root_optimizers) or 'none'}"])])
        out.append(Subject(source.name, source, checked, n, optimizer_class(checked, n), arg))
    return out


def _builtin_label(name: str):
    from ..dsl.diagnostics import Label
    from ..dsl.source import builtin_span
    return Label(builtin_span(name))


@dataclass(frozen=True)
class Target:
    """A kind of parameter that binds to one rule: its name, role and rank (and the rows its view needs)."""

    rule: int
    name: str
    role: str
    rank: int
    rows_multiple: int = 1


def _glob_example(pattern: str) -> str:
    return re.sub(r"\[[^\]]*\]", "a", pattern).replace("*", "x").replace("?", "y")


def _view_multiple(rule: RuleInfo) -> int:
    if rule.view is not None and rule.view.name in ("heads", "split") and rule.view_args:
        return int(rule.view_args[0])
    return 1


def targets(cls: type[GeoOptimizer]) -> dict[int, list[Target]]:
    """For every rule, the (name, role, rank) parameters that bind to it (an empty list: unreachable)."""
    spec = cls._geo
    names = dict(P.ROLE_EXAMPLES)
    patterns = [t.pattern for r in spec.rules for t in r.binder.selector if t.pattern is not None]
    for r in spec.rules:
        for u in r.chain:
            patterns += [t.pattern for t in u.binder.selector if t.pattern is not None]
    out: dict[int, list[Target]] = {r.index: [] for r in spec.rules}
    multiples = sorted({_view_multiple(r) for r in spec.rules})
    for rank in range(5):
        for role in P.RANK_ROLES[rank]:
            for name in [names[role]] + [_glob_example(p) for p in patterns]:
                for k in multiples:
                    found = bind_rule(spec.info, P.ParamInfo(name, probe_shape(rank, k), role))
                    if isinstance(found, Diagnostic):
                        continue
                    t = Target(found[0], name, role, rank, k)
                    if t not in out[found[0]]:
                        out[found[0]].append(t)
    return out


def probe_shape(rank: int, rows_multiple: int = 1) -> tuple[int, ...]:
    """A shape of `rank` that a `heads`/`split` view with `rows_multiple` rows fits: what routing is probed with."""
    k = rows_multiple
    return {0: (), 1: (6,), 2: (6 * k, 5), 3: (2, 6 * k, 5), 4: (6 * k, 3, 2, 2)}[rank]


def binds_to(cls: type[GeoOptimizer], target: Target, shape: tuple[int, ...]) -> bool:
    found = bind_rule(cls._geo.info, P.ParamInfo(target.name, shape, target.role))
    return not isinstance(found, Diagnostic) and found[0] == target.rule


def draw_shape(draw: Draw, rank: int, rows_multiple: int = 1, max_side: int = MAX_SIDE) -> tuple[int, ...]:
    """Awkward shapes: 1×n, n×1, tall, wide, odd, square; batched stacks and small conv kernels."""
    if rank == 0:
        return ()
    if rank == 1:
        return (draw.int(1, max_side),)
    form = draw.choice(("any", "row", "col", "tall", "wide", "square"))
    m, n = draw.int(1, max_side), draw.int(1, max_side)
    if form == "row":
        m = 1
    elif form == "col":
        n = 1
    elif form == "tall":
        m, n = max(m, n) + 1, min(m, n)
    elif form == "wide":
        m, n = min(m, n), max(m, n) + 1
    elif form == "square":
        n = m
    if rows_multiple > 1:
        m = rows_multiple * draw.int(1, 2)
    if rank == 2:
        return (m, n)
    if rank == 3:
        return (draw.int(1, 3), m, n)
    return (m, draw.int(1, 3), draw.int(1, 3), draw.int(1, 3))


def draw_recipe(draw: Draw, kinds: Sequence[str] = GRAD_KINDS) -> Recipe:
    kind = draw.choice(tuple(kinds))
    return Recipe(kind, draw.int(0, 2**16), draw.choice(SCALES) if kind != "gaussian" or draw.bool(0.7) else 1.0)


@dataclass
class Case:
    """One drawn example: a parameter that binds to `target.rule`, its start, and one gradient per step."""

    target: Target
    shape: tuple[int, ...]
    dtype: str
    init: Recipe
    grads: list[Recipe]
    statics: dict[str, Any] = field(default_factory=dict)
    split: int = 0          # checkpoint properties: steps before the save

    def lines(self) -> list[str]:
        t = self.target
        out = [f"parameter `{t.name}` (role {t.role}), shape {self.shape}, {self.dtype}, starts at {self.init.show()}"]
        for i, g in enumerate(self.grads):
            value = summarize(g.build(self.shape, self.dtype))
            out.append(f"gradient {i + 1}: {g.show()}: {value}")
        if self.statics:
            out.append("static hyperparameters: " + ", ".join(f"{k}={geo_literal(v)}" for k, v in self.statics.items()))
        return out


def draw_case(draw: Draw, cls: type[GeoOptimizer], target: Target, *, kinds: Sequence[str] = GRAD_KINDS,
              steps: tuple[int, int] = (1, 3), dtypes: Sequence[str] = ("fp32", "bf16", "fp64"),
              flip_statics: bool = True) -> Case | None:
    shape = draw_shape(draw, target.rank, target.rows_multiple)
    if not binds_to(cls, target, shape):
        return None
    dtype = draw.choice(tuple(dtypes))
    init = draw_recipe(draw, ("gaussian", "gaussian", "zeros", "rank1", "illcond"))
    grads = [draw_recipe(draw, kinds) for _ in range(draw.int(*steps))]
    statics: dict[str, Any] = {}
    if flip_statics:
        rule = cls._geo.rules[target.rule]
        for name, h in rule.hypers.items():
            if h.static and isinstance(h.default, bool) and draw.bool(0.25):
                statics[name] = not h.default
            elif h.static and h.choices and draw.bool(0.25):  # `one_of(...)`: another declared value
                statics[name] = draw.choice(h.choices)
    return Case(target, shape, dtype, init, grads, statics, draw.int(0, len(grads)))


class Mismatch(AssertionError):
    """A property does not hold: what was expected, what came out."""

    def __init__(self, title: str, expected: str = "", got: str = "", detail: str = ""):
        super().__init__(title)
        self.title, self.expected, self.got, self.detail = title, expected, got, detail


@dataclass
class Run:
    p: torch.nn.Parameter
    opt: GeoOptimizer
    params: list[torch.Tensor] = field(default_factory=list)   # after each step
    states: list[dict[str, Any]] = field(default_factory=list)

    @property
    def state(self) -> dict[str, Any]:
        return self.states[-1] if self.states else {}


def snapshot(state: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)) for k, v in state.items()}


def build(cls: type[GeoOptimizer], case: Case, backend: str, *, nonfinite: str = "propagate", init: torch.Tensor | None = None,
          hypers: dict[str, Any] | None = None) -> Run:
    t = case.target
    p = torch.nn.Parameter(case.init.build(case.shape, case.dtype) if init is None else init.clone())
    try:
        opt = cls([(t.name, p)], roles={t.name: t.role}, backend=backend, nonfinite=nonfinite,
                  **case.statics, **(hypers or {}))
    except GeoError as err:  # the parameter does not fit (a view, a shape requirement): not this example
        raise Skip(str(err)) from None
    return Run(p, opt)


def advance(run: Run, case: Case, grads: Sequence[Recipe]) -> Run:
    for g in grads:
        run.p.grad = g.build(case.shape, case.dtype)
        run.opt.step()
        run.params.append(run.p.detach().clone())
        run.states.append(snapshot(run.opt.state.get(run.p, {})))
    return run


def run_case(cls, case: Case, backend: str, **kw) -> Run:
    return advance(build(cls, case, backend, **kw), case, case.grads)


def compare_runs(a: Run, b: Run, names: tuple[str, str], what: str) -> None:
    for i, (pa, pb) in enumerate(zip(a.params, b.params)):
        if not same(pa, pb):
            raise Mismatch(f"{what}: the parameter differs after step {i + 1}", f"{names[0]}: {summarize(pa)}",
                           f"{names[1]}: {summarize(pb)}", difference(pa, pb))
        sa, sb = a.states[i], b.states[i]
        if set(sa) != set(sb):
            raise Mismatch(f"{what}: the state slots differ after step {i + 1}", f"{names[0]}: {sorted(sa)}",
                           f"{names[1]}: {sorted(sb)}")
        for k in sa:
            if not same(sa[k], sb[k]):
                raise Mismatch(f"{what}: state `{k}` differs after step {i + 1}", f"{names[0]}: {summarize(sa[k])}",
                               f"{names[1]}: {summarize(sb[k])}", difference(sa[k], sb[k]))


def runtime_scalar_hyper(cls, rule_index: int) -> tuple[str, float] | None:
    rule = cls._geo.rules[rule_index]
    names = [k for k, h in rule.hypers.items() if not h.static and isinstance(h.default, float)]
    if not names:
        return None
    name = "lr" if "lr" in names else names[0]
    h = rule.hypers[name]
    value = h.default * 0.5 if h.default else 0.5
    return name, (value if h.out_of_range(value) is None else h.default)  # a new value in its declared range
