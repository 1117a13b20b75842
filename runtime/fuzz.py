"""`geo fuzz`: hypothesis-driven fuzzing of specs, operator and step compositions, and of geo's front end.

Four engines share this module (docs/fuzzing.md is the user's guide):

1. **Spec fuzzing** (`fuzz_spec`). For every rule of every optimizer a spec defines, hypothesis draws
   parameters the rule selects (shapes 1×n, n×1, tall, wide, odd, batched stacks, conv kernels; fp32, bf16,
   fp64) and a sequence of gradients (gaussian at three scales, zeros, tiny ~1e-30, huge ~1e30, rank-1,
   ill-conditioned, NaN, Inf), and checks the properties of `PROPERTIES`: the backend agrees with the
   reference, no NaN comes out of finite inputs, non-finite gradients follow the `nonfinite` policy, a state
   dict round-trips and resuming from it equals an uninterrupted run bit for bit, per-group hyperparameters
   are respected, a seeded run is deterministic, and the laws of every operator the spec uses hold. A failure
   is shrunk by hypothesis and rendered by `Failure.render` with a `.geo` and a Python reproduction.
2. **Compositions**. `step_orders` composes a spec's steps in random orders (H ∘ A and A ∘ H); `expression`
   builds random well-typed expressions over the operator registry, typed by the operators' own type rules
   and fed from their declared domains (`OpDef.domain`); both are fuzzed like specs (`fuzz_operators`).
3. **The composition explorer** (`explore`): do the given steps or operators commute on sampled inputs, and
   how large is the difference?
4. **Front-end robustness** (`robustness_campaign`): grammar-aware generated and byte-mutated spec text runs
   through the whole pipeline; nothing but geo's diagnostics may come out, every span inside its file.

hypothesis is imported lazily (a test dependency); `make_tensor` is what reports' Python snippets call.
"""
from __future__ import annotations

import copy
import io
import math
import os
import random
import re
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..compiler import check as checker
from ..compiler import params as P
from ..compiler.ir import geo_literal
from ..compiler.ops import registry
from ..compiler.pipeline import front, specialize
from ..compiler.types import SCALAR, Scalar, Tensor
from ..dsl.diagnostics import Diagnostic, GeoError
from ..dsl.loader import STDLIB, read_file, source_for
from ..dsl.source import SourceFile
from .optimizer import CompiledSpec, GeoOptimizer, bind_rule

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp64": torch.float64}
FINITE_KINDS = ("gaussian", "zeros", "tiny", "huge", "rank1", "illcond")
NONFINITE_KINDS = ("nan", "inf")
GRAD_KINDS = FINITE_KINDS + NONFINITE_KINDS
SCALES = (1e-3, 1.0, 1e3)
DEFAULT_EXAMPLES = 50
MAX_SIDE = 9


# =========================================================================================================
# Tensors: reproducible adversarial inputs
# =========================================================================================================
def make_tensor(kind: str, shape: Sequence[int], dtype: str = "fp32", seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """A reproducible tensor of one of GRAD_KINDS (fuzz reports' Python snippets call this).

    gaussian: N(0, 1)·scale; zeros; tiny: N(0, 1)·1e-30; huge: N(0, 1)·1e30; rank1: u·vᵀ·scale per matrix (a
    constant for vectors); illcond: U·diag(1 … 1e-12)·Vᵀ·scale per matrix (log-spaced magnitudes for vectors);
    nan / inf: gaussian with one entry NaN / ±Inf."""
    shape = tuple(int(d) for d in shape)
    g = torch.Generator().manual_seed(int(seed))
    base = torch.randn(shape, generator=g, dtype=torch.float64)
    if kind == "gaussian":
        x = base * scale
    elif kind == "zeros":
        x = torch.zeros(shape, dtype=torch.float64)
    elif kind == "tiny":
        x = base * 1e-30
    elif kind == "huge":
        x = base * 1e30
    elif kind == "rank1":
        if len(shape) >= 2:
            u = torch.randn(shape[:-1] + (1,), generator=g, dtype=torch.float64)
            v = torch.randn(shape[:-2] + (1, shape[-1]), generator=g, dtype=torch.float64)
            x = u @ v * scale
        else:
            x = torch.full(shape, scale, dtype=torch.float64)
    elif kind == "illcond":
        if len(shape) >= 2:
            m, n = shape[-2], shape[-1]
            k = min(m, n)
            qa, _ = torch.linalg.qr(torch.randn(shape[:-2] + (m, k), generator=g, dtype=torch.float64))
            qb, _ = torch.linalg.qr(torch.randn(shape[:-2] + (n, k), generator=g, dtype=torch.float64))
            s = torch.logspace(0, -12, k, dtype=torch.float64) if k > 1 else torch.ones(1, dtype=torch.float64)
            x = (qa * s) @ qb.mT * scale
        else:
            n = max(1, math.prod(shape))
            mags = torch.logspace(0, -12, n, dtype=torch.float64) if n > 1 else torch.ones(1, dtype=torch.float64)
            x = (mags * torch.sign(base.reshape(-1) + 1e-300)).reshape(shape) * scale
    elif kind in ("nan", "inf"):
        x = (base * scale).reshape(-1).clone()
        if x.numel():
            i = int(torch.randint(x.numel(), (1,), generator=g))
            x[i] = float("nan") if kind == "nan" else (float("inf") if seed % 2 == 0 else -float("inf"))
        x = x.reshape(shape)
    else:
        raise ValueError(f"unknown tensor kind {kind!r}; one of {', '.join(GRAD_KINDS)}")
    return x.to(DTYPES[dtype])


@dataclass(frozen=True)
class Recipe:
    """How to rebuild one input tensor: `make_tensor(kind, shape, dtype, seed, scale)`."""

    kind: str
    seed: int = 0
    scale: float = 1.0

    def build(self, shape, dtype: str) -> torch.Tensor:
        return make_tensor(self.kind, shape, dtype, self.seed, self.scale)

    @property
    def finite(self) -> bool:
        return self.kind not in NONFINITE_KINDS

    def show(self) -> str:
        scale = f", scale={self.scale:g}" if self.kind in ("gaussian", "rank1", "illcond", "nan", "inf") else ""
        return f"{self.kind}(seed={self.seed}{scale})"

    def python(self, shape, dtype: str) -> str:
        return f"make_tensor({self.kind!r}, {tuple(shape)!r}, {dtype!r}, seed={self.seed}, scale={self.scale!r})"


def summarize(x: Any) -> str:
    """A one-line summary of a value: shape, dtype, range, norm, and how many entries are NaN/Inf."""
    if not isinstance(x, torch.Tensor):
        return repr(x)
    if x.numel() == 0:
        return f"empty {tuple(x.shape)} {x.dtype}"
    f = x.detach().to(torch.float64)
    nan, inf = int(f.isnan().sum()), int(f.isinf().sum())
    finite = f[f.isfinite()]
    parts = [f"shape {tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"]
    if x.numel() <= 6:
        parts.append("values " + ", ".join(f"{v:.6g}" for v in f.reshape(-1).tolist()))
    elif finite.numel():
        parts.append(f"min {finite.min().item():.4g} max {finite.max().item():.4g} ‖·‖ {finite.norm().item():.4g}")
    if nan or inf:
        parts.append(f"{nan} NaN, {inf} Inf")
    return "; ".join(parts)


def same(a: Any, b: Any) -> bool:
    """Bit-for-bit equality of two values (NaN equals NaN; dtypes and shapes must match)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return bool(((a == b) | (a.isnan() & b.isnan())).all()) if a.is_floating_point() else torch.equal(a, b)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return a == b


def difference(a: Any, b: Any) -> str:
    """Where two values differ first and by how much (for reports)."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return f"{a!r} vs {b!r}"
    if a.dtype != b.dtype or a.shape != b.shape:
        return f"{tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}"
    fa, fb = a.to(torch.float64), b.to(torch.float64)
    bad = ~((fa == fb) | (fa.isnan() & fb.isnan()))
    if not bad.any():
        return "equal"
    idx = tuple(int(i) for i in bad.nonzero()[0])
    diff = (fa - fb).abs()
    diff = diff[diff.isfinite()]
    worst = f"; max |difference| {diff.max().item():.3g}" if diff.numel() else ""
    return f"{int(bad.sum())} of {a.numel()} entries differ; first at {idx}: {fa[idx].item():.9g} vs {fb[idx].item():.9g}{worst}"


# =========================================================================================================
# Draws: one generator code for hypothesis (shrinkable) and for a seeded random.Random (fast campaigns)
# =========================================================================================================
class Draw:
    """A source of choices. Generators take a Draw, so the same code runs under hypothesis (`data.draw`,
    which shrinks) and under a seeded `random.Random` (fast, for long campaigns and the explorer)."""

    def int(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[self.int(0, len(seq) - 1)]

    def bool(self, p: float = 0.5) -> bool:
        return self.int(0, 999) < int(p * 1000)

    def float(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.int(0, 1000) / 1000


class RandomDraw(Draw):
    def __init__(self, rng: random.Random):
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


class HypothesisDraw(Draw):
    def __init__(self, data):
        self.data = data

    def int(self, lo: int, hi: int) -> int:
        from hypothesis import strategies as st
        return self.data.draw(st.integers(lo, hi))


# =========================================================================================================
# Specs under test
# =========================================================================================================
@dataclass
class Subject:
    """One optimizer of a spec, compiled once; its rules are fuzzed."""

    label: str                 # how reports name the spec: a path, `stdlib/muon.geo`, or "<composition>"
    source: SourceFile
    checked: checker.Checked
    name: str
    cls: type[GeoOptimizer]
    compile_arg: str           # what `geo.compile(...)` takes to rebuild it in a Python snippet

    @property
    def info(self) -> checker.OptimizerInfo:
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


def optimizer_class(checked: checker.Checked, name: str, backend: str = "auto") -> type[GeoOptimizer]:
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
    chosen = list(names) if names else list(checked.root_optimizers)
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


# =========================================================================================================
# Which parameters reach which rule
# =========================================================================================================
ROLE_NAMES = {"hidden": "layer.weight", "embedding": "embed.weight", "head": "lm_head.weight",
              "bias": "layer.bias", "norm": "norm.weight"}
RANK_ROLES = {0: ("norm", "bias"), 1: ("norm", "bias"), 2: ("hidden", "embedding", "head"),
              3: ("hidden", "embedding", "head"), 4: ("hidden", "embedding", "head")}


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


def _view_multiple(rule: checker.RuleInfo) -> int:
    if rule.view is not None and rule.view.name in ("heads", "split") and rule.view_args:
        return int(rule.view_args[0])
    return 1


def targets(cls: type[GeoOptimizer]) -> dict[int, list[Target]]:
    """For every rule, the (name, role, rank) parameters that bind to it (an empty list: unreachable)."""
    spec = cls._geo
    names = dict(ROLE_NAMES)
    patterns = [t.pattern for r in spec.rules for t in r.binder.selector if t.pattern is not None]
    for r in spec.rules:
        for u in r.chain:
            patterns += [t.pattern for t in u.binder.selector if t.pattern is not None]
    out: dict[int, list[Target]] = {r.index: [] for r in spec.rules}
    multiples = sorted({_view_multiple(r) for r in spec.rules})
    for rank in range(5):
        for role in RANK_ROLES[rank]:
            for name in [names[role]] + [_glob_example(p) for p in patterns]:
                for k in multiples:
                    shape = {0: (), 1: (6,), 2: (6 * k, 5), 3: (2, 6 * k, 5), 4: (6 * k, 3, 2, 2)}[rank]
                    found = bind_rule(spec, P.ParamInfo(name, shape, role))
                    if isinstance(found, Diagnostic):
                        continue
                    t = Target(found[0], name, role, rank, k)
                    if t not in out[found[0]]:
                        out[found[0]].append(t)
    return out


def binds_to(cls: type[GeoOptimizer], target: Target, shape: tuple[int, ...]) -> bool:
    found = bind_rule(cls._geo, P.ParamInfo(target.name, shape, target.role))
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


# =========================================================================================================
# Running a case
# =========================================================================================================
class Mismatch(AssertionError):
    """A property does not hold: what was expected, what came out."""

    def __init__(self, title: str, expected: str = "", got: str = "", detail: str = ""):
        super().__init__(title)
        self.title, self.expected, self.got, self.detail = title, expected, got, detail


class Skip(Exception):
    """The drawn example does not apply (e.g. a view the shape does not fit): draw another."""


@dataclass
class Run:
    p: torch.nn.Parameter
    opt: GeoOptimizer
    params: list[torch.Tensor] = field(default_factory=list)   # after each step
    states: list[dict[str, Any]] = field(default_factory=list)

    @property
    def state(self) -> dict[str, Any]:
        return self.states[-1] if self.states else {}


def _snapshot(state: dict[str, Any]) -> dict[str, Any]:
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
        run.states.append(_snapshot(run.opt.state.get(run.p, {})))
    return run


def run_case(cls, case: Case, backend: str, **kw) -> Run:
    return advance(build(cls, case, backend, **kw), case, case.grads)


def _compare_runs(a: Run, b: Run, names: tuple[str, str], what: str) -> None:
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


def _runtime_scalar_hyper(cls, rule_index: int) -> tuple[str, float] | None:
    rule = cls._geo.rules[rule_index]
    names = [k for k, h in rule.hypers.items() if not h.static and isinstance(h.default, float)]
    if not names:
        return None
    name = "lr" if "lr" in names else names[0]
    default = rule.hypers[name].default
    return name, (default * 0.5 if default else 0.5)


# =========================================================================================================
# Properties
# =========================================================================================================
@dataclass(frozen=True)
class Property:
    name: str
    doc: str
    kinds: tuple[str, ...]                     # the gradient kinds its examples draw
    check: Callable[["Subject", Case, str, Draw], None]
    needs_other_backend: bool = False          # meaningless when the backend under test is the reference


def _prop_agree(subject: Subject, case: Case, backend: str, draw: Draw) -> None:
    ref = run_case(subject.cls, case, "reference")
    got = run_case(subject.cls, case, backend)
    _compare_runs(ref, got, ("reference", backend), f"the {backend} backend disagrees with the reference")


def _has_nan(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point() and bool(x.isnan().any())


def _prop_finite(subject: Subject, case: Case, backend: str, draw: Draw) -> None:
    run = build(subject.cls, case, backend, nonfinite="raise")
    before = run.p.detach().clone()
    for i, g in enumerate(case.grads):
        prev = (run.p.detach().clone(), _snapshot(run.opt.state.get(run.p, {})))
        advance(run, case, [g])
        bad = ["the parameter"] if _has_nan(run.params[-1]) else []
        bad += [f"state `{k}`" for k, v in run.states[-1].items() if _has_nan(v)]
        if bad:
            shown = run.params[-1] if bad[0] == "the parameter" else run.states[-1][bad[0].split("`")[1]]
            raise Mismatch(f"a step with finite inputs created NaN in {' and '.join(bad)} (step {i + 1})",
                           f"finite values (the parameter before: {summarize(prev[0])})", summarize(shown),
                           "states before the step: " + "; ".join(f"{k}: {summarize(v)}" for k, v in prev[1].items())
                           if prev[1] else f"the parameter started at {summarize(before)}")


def _prop_nonfinite(subject: Subject, case: Case, backend: str, draw: Draw) -> None:
    bad_at = draw.int(0, len(case.grads))
    bad = Recipe(draw.choice(NONFINITE_KINDS), draw.int(0, 2**16), 1.0)
    grads = list(case.grads[:bad_at]) + [bad] + list(case.grads[bad_at:])
    case.grads = grads
    clean = run_case(subject.cls, Case(case.target, case.shape, case.dtype, case.init,
                                       [g for g in grads if g.finite], case.statics), backend)
    skipping = build(subject.cls, case, backend, nonfinite="skip")
    for g in grads:
        advance(skipping, case, [g])
    kept = [i for i, g in enumerate(grads) if g.finite]
    skipping.params = [skipping.params[i] for i in kept]
    skipping.states = [skipping.states[i] for i in kept]
    _compare_runs(clean, skipping, ("without the non-finite gradient", 'nonfinite="skip"'),
                  'nonfinite="skip" did not leave the parameter and state untouched')
    skips = sum(skipping.opt.nonfinite_skips.values())
    if skips != 1:
        raise Mismatch('nonfinite="skip" miscounted the skipped steps', "1 skip", f"{skips} skips")
    strict = build(subject.cls, case, backend, nonfinite="raise")
    advance(strict, case, grads[:bad_at])
    before = (strict.p.detach().clone(), _snapshot(strict.opt.state.get(strict.p, {})))
    strict.p.grad = bad.build(case.shape, case.dtype)
    try:
        strict.opt.step()
    except FloatingPointError:
        pass
    else:
        raise Mismatch('nonfinite="raise" did not raise on a non-finite gradient', "FloatingPointError", "no error")
    after = (strict.p.detach(), _snapshot(strict.opt.state.get(strict.p, {})))
    if not same(before[0], after[0]) or set(before[1]) != set(after[1]) or \
            any(not same(before[1][k], after[1][k]) for k in before[1]):
        raise Mismatch('nonfinite="raise" changed the parameter or state before raising', summarize(before[0]),
                       summarize(after[0]))


def _state_dicts_equal(a: dict, b: dict) -> str | None:
    if set(a) != set(b):
        return f"top-level keys {sorted(a)} vs {sorted(b)}"
    if a.get("geo") != b.get("geo"):
        return f"identity {a.get('geo')} vs {b.get('geo')}"
    ga, gb = a["param_groups"], b["param_groups"]
    if len(ga) != len(gb):
        return f"{len(ga)} vs {len(gb)} param groups"
    for i, (x, y) in enumerate(zip(ga, gb)):
        if set(x) != set(y) or any(not same(x[k], y[k]) for k in x):
            return f"param group {i}: {x} vs {y}"
    if set(a["state"]) != set(b["state"]):
        return f"state ids {sorted(a['state'])} vs {sorted(b['state'])}"
    for pid, sa in a["state"].items():
        sb = b["state"][pid]
        if set(sa) != set(sb):
            return f"state {pid}: slots {sorted(sa)} vs {sorted(sb)}"
        for k in sa:
            if not same(sa[k], sb[k]):
                return f"state {pid} `{k}`: {difference(sa[k], sb[k])}"
    return None


def _prop_checkpoint(subject: Subject, case: Case, backend: str, draw: Draw) -> None:
    straight = run_case(subject.cls, case, backend)
    first = advance(build(subject.cls, case, backend), case, case.grads[:case.split])
    sd = first.opt.state_dict()
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    resumed = build(subject.cls, case, backend, init=first.p.detach())
    resumed.opt.load_state_dict(loaded)
    differs = _state_dicts_equal(sd, resumed.opt.state_dict())
    if differs is not None:
        raise Mismatch(f"state_dict → torch.save → load_state_dict → state_dict is not the same after {case.split} steps",
                       "the saved state_dict", "another one", differs)
    advance(resumed, case, case.grads[case.split:])
    first.params += resumed.params
    first.states += resumed.states
    _compare_runs(straight, first, ("uninterrupted", f"saved after step {case.split} and resumed"),
                  "resuming from a checkpoint is not the uninterrupted run")


def _prop_groups(subject: Subject, case: Case, backend: str, draw: Draw) -> None:
    changed = _runtime_scalar_hyper(subject.cls, case.target.rule)
    if changed is None:
        raise Skip("no runtime scalar hyperparameter to vary")
    hyper, value = changed
    t = case.target
    other = Recipe(case.init.kind, case.init.seed + 1, case.init.scale)
    p1 = torch.nn.Parameter(case.init.build(case.shape, case.dtype))
    p2 = torch.nn.Parameter(other.build(case.shape, case.dtype))
    try:
        both = subject.cls([{"params": [(t.name, p1)]}, {"params": [(t.name, p2)], hyper: value}],
                           roles={t.name: t.role}, backend=backend, nonfinite="propagate", **case.statics)
    except GeoError as err:
        raise Skip(str(err)) from None
    alone1 = build(subject.cls, case, backend)
    alone2 = build(subject.cls, case, backend, init=other.build(case.shape, case.dtype), hypers={hyper: value})
    grouped1, grouped2 = Run(p1, both), Run(p2, both)
    for g in case.grads:
        grad = g.build(case.shape, case.dtype)
        p1.grad, p2.grad = grad.clone(), grad.clone()
        both.step()
        for r in (grouped1, grouped2):
            r.params.append(r.p.detach().clone())
            r.states.append(_snapshot(both.state.get(r.p, {})))
        advance(alone1, case, [g])
        advance(alone2, case, [g])
    _compare_runs(alone1, grouped1, ("its own optimizer", "group 0"), "param group 0 (defaults) is not run as on its own")
    _compare_runs(alone2, grouped2, (f"its own optimizer with {hyper}={value:g}", f"group 1 ({hyper}={value:g})"),
                  f"param group 1's own `{hyper}` is not respected")


def _prop_deterministic(subject: Subject, case: Case, backend: str, draw: Draw) -> None:
    runs = []
    for _ in range(2):
        torch.manual_seed(1234)
        runs.append(run_case(subject.cls, case, backend))
    _compare_runs(runs[0], runs[1], ("first run", "second run"), "two seeded runs differ")


PROPERTIES: dict[str, Property] = {p.name: p for p in [
    Property("agree", "every backend agrees with the reference backend, bit for bit (NaN, Inf and huge gradients "
             "included, nonfinite=\"propagate\")", GRAD_KINDS, _prop_agree, needs_other_backend=True),
    Property("finite", "no NaN created from finite inputs (parameter and every state, after every step)",
             FINITE_KINDS, _prop_finite),
    Property("nonfinite", "a NaN/Inf gradient is skipped (parameter and state untouched, counted) or raises, as the "
             "`nonfinite` policy says", FINITE_KINDS, _prop_nonfinite),
    Property("checkpoint", "state_dict round trip through torch.save, and resume after save/load equals the "
             "uninterrupted run bit for bit", FINITE_KINDS, _prop_checkpoint),
    Property("groups", "per-group hyperparameters are respected: each group steps as its own optimizer would",
             FINITE_KINDS, _prop_groups),
    Property("deterministic", "two runs with the same seed are bit-identical", GRAD_KINDS, _prop_deterministic),
]}
LAWS = "laws"
ALL_PROPERTIES = tuple(PROPERTIES) + (LAWS,)


# =========================================================================================================
# Failures and their reports
# =========================================================================================================
@dataclass
class Failure:
    """A shrunk counterexample, ready to print."""

    spec: str                       # the file (or <composition>)
    prop: str                       # the property (or law) that failed
    subject: str                    # "optimizer `muon`, rule 0 `for matrix W`" or "operator `msign`"
    title: str
    inputs: list[str] = field(default_factory=list)
    expected: str = ""
    got: str = ""
    detail: str = ""
    geo: str = ""
    python: str = ""

    def render(self) -> str:
        out = [f"FAILED [{self.prop}] {self.spec}: {self.title}", f"  subject:    {self.subject}"]
        for i, line in enumerate(self.inputs):
            out.append(("  inputs:     " if i == 0 else "              ") + line)
        if self.expected:
            out.append(f"  expected:   {self.expected}")
        if self.got:
            out.append(f"  got:        {self.got}")
        if self.detail:
            out.append(f"  detail:     {self.detail}")
        if self.geo:
            out.append("  reproduce (.geo):")
            out += ["      " + line for line in self.geo.splitlines()]
        if self.python:
            out.append("  reproduce (Python):")
            out += ["      " + line for line in self.python.splitlines()]
        return "\n".join(out)


def _exception_text(err: BaseException) -> str:
    if isinstance(err, GeoError):
        return err.render()
    frames = traceback.extract_tb(err.__traceback__)
    where = next((f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in reversed(frames)), "")
    return f"{type(err).__name__}: {err}" + (f" (at {where})" if where else "")


_PY_TAILS = {
    "agree": ('ref, got = run("reference"), run({backend!r})\n'
              'print("parameter equal:", torch.equal(ref[0].nan_to_num(), got[0].nan_to_num()))\n'
              'for k in ref[1]:\n'
              '    print(k, "equal:", torch.equal(torch.as_tensor(ref[1][k]).nan_to_num(), torch.as_tensor(got[1][k]).nan_to_num()))'),
    "finite": ('p, state = run({backend!r})\n'
               'print("NaN in parameter:", p.isnan().any().item())\n'
               'print({{k: torch.as_tensor(v).isnan().any().item() for k, v in state.items()}})'),
    "nonfinite": ('# one gradient above is NaN/Inf: with nonfinite="skip" the run must equal the run without it\n'
                  'skipped = run({backend!r}, nonfinite="skip")\n'
                  'grads[:] = [g for g in grads if g.isfinite().all()]\n'
                  'clean = run({backend!r})\n'
                  'print("equal:", torch.equal(skipped[0], clean[0]))'),
    "checkpoint": ('import copy, io\n'
                   'straight = run({backend!r})\n'
                   'p = torch.nn.Parameter(init.clone())\n'
                   'opt = Opt([(name, p)], roles={{name: role}}, backend={backend!r}, nonfinite="propagate", **statics)\n'
                   'for g in grads[:{split}]:\n'
                   '    p.grad = g.clone(); opt.step()\n'
                   'buf = io.BytesIO(); torch.save(opt.state_dict(), buf); buf.seek(0)\n'
                   'q = torch.nn.Parameter(p.detach().clone())\n'
                   'opt2 = Opt([(name, q)], roles={{name: role}}, backend={backend!r}, nonfinite="propagate", **statics)\n'
                   'opt2.load_state_dict(torch.load(buf, weights_only=True))\n'
                   'for g in grads[{split}:]:\n'
                   '    q.grad = g.clone(); opt2.step()\n'
                   'print("resumed equals uninterrupted:", torch.equal(q.detach(), straight[0]))'),
    "groups": ('p1, p2 = torch.nn.Parameter(init.clone()), torch.nn.Parameter(init2.clone())\n'
               'both = Opt([{{"params": [(name, p1)]}}, {{"params": [(name, p2)], {hyper!r}: {value!r}}}], roles={{name: role}},\n'
               '           backend={backend!r}, nonfinite="propagate", **statics)\n'
               'for g in grads:\n'
               '    p1.grad, p2.grad = g.clone(), g.clone(); both.step()\n'
               'alone = run({backend!r}, start=init2, **{{{hyper!r}: {value!r}}})\n'
               'print("group 1 equals its own optimizer:", torch.equal(p2.detach(), alone[0]))'),
    "deterministic": ('torch.manual_seed(1234); a = run({backend!r})\n'
                      'torch.manual_seed(1234); b = run({backend!r})\n'
                      'print("equal:", torch.equal(a[0].nan_to_num(), b[0].nan_to_num()))'),
}


def python_snippet(subject: Subject, case: Case, prop: str, backend: str, extra: dict[str, Any] | None = None) -> str:
    t = case.target
    compile_line = f"Opt = geo.compile({subject.compile_arg!r}, name={subject.name!r})"
    if subject.compile_arg.endswith("__geo_fuzz__.geo"):
        compile_line = f"Opt = geo.compile(\"{subject.compile_arg}\", name={subject.name!r})  # save the .geo snippet there"
    lines = [
        "import torch",
        "import geo",
        "from geo.runtime.fuzz import make_tensor",
        "",
        compile_line,
        f"name, role, statics = {t.name!r}, {t.role!r}, {case.statics!r}",
        f"init = {case.init.python(case.shape, case.dtype)}",
        "grads = [",
        *[f"    {g.python(case.shape, case.dtype)}," for g in case.grads],
        "]",
    ]
    if prop == "groups":
        lines.append(f"init2 = {Recipe(case.init.kind, case.init.seed + 1, case.init.scale).python(case.shape, case.dtype)}")
    lines += [
        "",
        'def run(backend, nonfinite="propagate", start=None, **hypers):',
        "    p = torch.nn.Parameter((init if start is None else start).clone())",
        "    opt = Opt([(name, p)], roles={name: role}, backend=backend, nonfinite=nonfinite, **statics, **hypers)",
        "    for g in grads:",
        "        p.grad = g.clone()",
        "        opt.step()",
        "    return p.detach(), opt.state[p]",
        "",
    ]
    values = {"backend": backend, "split": case.split, **(extra or {})}
    tail = _PY_TAILS.get(prop)
    if tail is not None:
        lines.append(tail.format(**values))
    return "\n".join(lines)


def _spec_failure(subject: Subject, prop: str, case: Case | None, err: BaseException, backend: str,
                  extra: dict[str, Any] | None = None) -> Failure:
    rule = subject.info.rules[case.target.rule] if case is not None else None
    where = f"optimizer `{subject.name}`" + (f", rule {rule.index} `{rule.text}`" if rule is not None else "")
    if case is not None and rule is not None:
        statics = {k: h.default for k, h in rule.hypers.items() if h.static}
        statics.update(case.statics)
        if statics:
            where += " (static: " + ", ".join(f"{k}={geo_literal(v)}" for k, v in statics.items()) + ")"
    if isinstance(err, Mismatch):
        title, expected, got, detail = err.title, err.expected, err.got, err.detail
    else:
        title = "crashed: " + (f"{type(err).__name__}" if not isinstance(err, GeoError) else "a diagnostic at run time")
        expected, got, detail = "no exception", _exception_text(err), ""
    return Failure(subject.label, prop, where, title, case.lines() if case is not None else [], expected, got, detail,
                   subject.geo_snippet(), python_snippet(subject, case, prop, backend, extra) if case is not None else "")


# =========================================================================================================
# The hypothesis harness
# =========================================================================================================
def hypothesis_run(body: Callable[[Draw, dict], None], examples: int, seed: int) -> tuple[int, dict | None]:
    """Runs `body(draw, ctx)` on `examples` hypothesis examples. Returns (examples run, the context of the shrunk
    failing example — its `error` key holds the exception — or None). `Skip` discards an example."""
    from hypothesis import HealthCheck, Phase, Verbosity, assume, given, settings
    from hypothesis import seed as fix_seed
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable

    count = [0]
    last: dict[str, Any] = {}

    @settings(max_examples=examples, deadline=None, database=None, report_multiple_bugs=False,
              verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck),
              phases=(Phase.generate, Phase.shrink))
    @fix_seed(seed)
    @given(st.data())
    def test(data):
        ctx: dict[str, Any] = {}
        try:
            body(HypothesisDraw(data), ctx)
        except Skip:
            assume(False)
        except BaseException as err:  # noqa: BLE001 - every escape is a finding
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            ctx["error"] = err
            last.clear()
            last.update(ctx)
            raise
        count[0] += 1

    try:
        test()
    except Unsatisfiable:
        return count[0], None
    except BaseException as err:  # noqa: BLE001
        if isinstance(err, KeyboardInterrupt):
            raise
        if not last:
            last["error"] = err
        return count[0], last
    return count[0], None


# =========================================================================================================
# Fuzzing a spec
# =========================================================================================================
@dataclass
class Outcome:
    """What one fuzz run did: per (subject, property) the examples run, and the failures."""

    label: str
    checks: list[tuple[str, str, int, float]] = field(default_factory=list)   # (subject, property, examples, seconds)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def examples(self) -> int:
        return sum(c[2] for c in self.checks)

    @property
    def ok(self) -> bool:
        return not self.failures


def fuzz_property(subject: Subject, prop: Property, examples: int, seed: int, backend: str,
                  reachable: dict[int, list[Target]] | None = None) -> tuple[int, Failure | None]:
    reach = reachable if reachable is not None else targets(subject.cls)
    pools = [ts for ts in reach.values() if ts]
    if not pools:
        return 0, None

    def body(draw: Draw, ctx: dict) -> None:
        target = draw.choice(draw.choice(pools))  # a rule, then a parameter it selects: every rule gets examples
        case = draw_case(draw, subject.cls, target, kinds=prop.kinds)
        if case is None:
            raise Skip("shape does not bind")
        ctx["case"] = case
        if prop.name == "groups":
            changed = _runtime_scalar_hyper(subject.cls, target.rule)
            ctx["extra"] = {"hyper": changed[0], "value": changed[1]} if changed else {}
        prop.check(subject, case, backend, draw)

    n, failed = hypothesis_run(body, examples, seed)
    if failed is None:
        return n, None
    return n, _spec_failure(subject, prop.name, failed.get("case"), failed["error"], backend, failed.get("extra"))


def operators_used(subject: Subject, reach: dict[int, list[Target]] | None = None) -> list[str]:
    """The registry operators in the programs of a subject's rules (as written and after the passes)."""
    reach = reach if reach is not None else targets(subject.cls)
    used: set[str] = set()
    for rule in subject.info.rules:
        statics = {k: h.default for k, h in rule.hypers.items() if h.static}
        for t in reach.get(rule.index, []):
            binding = bind_rule(subject.cls._geo, P.ParamInfo(t.name, {0: (), 1: (6,), 2: (6 * t.rows_multiple, 5),
                                                                        3: (2, 6 * t.rows_multiple, 5),
                                                                        4: (6 * t.rows_multiple, 3, 2, 2)}[t.rank], t.role))
            if isinstance(binding, Diagnostic):
                continue
            for optimize in (False, True):
                program = specialize(subject.checked, rule, statics, binding[1], binding[2], optimize=optimize)
                used |= {n.op for n in program.nodes() if registry.get(n.op) is not None}
    return sorted(used)


def _value_python(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"torch.tensor({x.tolist()!r}, dtype={str(x.dtype)})"
    if isinstance(x, tuple):
        return "(" + ", ".join(_value_python(v) for v in x) + ("," if len(x) == 1 else "") + ")"
    if isinstance(x, float) and not math.isfinite(x):
        return f"float({str(x)!r})"
    return repr(x)


def _describe_example(x: Any) -> list[str]:
    if isinstance(x, tuple):
        return [f"argument {i}: {summarize(v)}" for i, v in enumerate(x)]
    return [summarize(x)]


def fuzz_laws(opnames: Sequence[str], examples: int, seed: int, label: str = "") -> tuple[int, list[Failure]]:
    """Every law of the given operators, with hypothesis (each law's own sampler)."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as fix_seed

    total, failures = 0, []
    for name in opnames:
        opdef = registry.get(name)
        for law in opdef.laws:
            count, last = [0], {}

            def make(_opdef=opdef, _law=law, _count=count, _last=last):
                @settings(max_examples=examples, deadline=None, database=None, report_multiple_bugs=False,
                          verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck),
                          phases=(Phase.generate, Phase.shrink))
                @fix_seed(seed)
                @given(_law.sample())
                def holds(example):
                    try:
                        _law.check(lambda *a, **k: _opdef.reference(*a, **k), example)
                    except BaseException as err:  # noqa: BLE001
                        _last.update(example=example, error=err)
                        raise
                    _count[0] += 1
                return holds

            try:
                make()()
            except BaseException as err:  # noqa: BLE001
                if isinstance(err, KeyboardInterrupt):
                    raise
                example, error = last.get("example"), last.get("error", err)
                failures.append(Failure(
                    label or "<registry>", "laws", f"operator `{name}` ({opdef.module})", f"law failed: {law.name}",
                    _describe_example(example) if example is not None else [], "the law holds",
                    _exception_text(error), geo=f"# `geo doc {name}` shows the law; the reference is {opdef.module}.{name}",
                    python="\n".join([
                        "import torch",
                        "from geo.compiler.ops import registry",
                        f"op = registry.get({name!r})",
                        f"law = next(l for l in op.laws if l.name == {law.name!r})",
                        f"example = {_value_python(example)}",
                        "law.check(op.reference, example)  # raises AssertionError",
                    ])))
            total += count[0]
    return total, failures


def fuzz_spec(spec: str | Path | SourceFile, *, examples: int = DEFAULT_EXAMPLES, seed: int = 0, backend: str = "torch",
              properties: Sequence[str] = ALL_PROPERTIES, names: Sequence[str] | None = None, compositions: bool = True,
              log: Callable[[str], None] | None = None) -> Outcome:
    """Fuzzes every optimizer a spec defines (or the named ones): the properties, then its steps in random
    orders. Raises GeoError for an invalid spec."""
    subjects = load_subjects(spec, names)
    label = subjects[0].label if subjects else str(spec)
    out = Outcome(label)
    backend = "torch" if backend == "auto" else backend
    ops: set[str] = set()
    for subject in subjects:
        reach = targets(subject.cls)
        for index, ts in reach.items():
            if not ts:
                out.notes.append(f"{subject.name}: rule {index} `{subject.info.rules[index].text}` selects no parameter "
                                 "(an earlier rule takes them all)")
        for name in properties:
            if name == LAWS:
                continue
            prop = PROPERTIES[name]
            if prop.needs_other_backend and backend == "reference":
                continue
            start = time.perf_counter()
            n, failure = fuzz_property(subject, prop, examples, seed, backend, reach)
            out.checks.append((subject.name, name, n, time.perf_counter() - start))
            if log:
                log(f"  {subject.name:24s} {name:14s} {n:4d} examples  {time.perf_counter() - start:6.1f}s"
                    + ("  FAILED" if failure else ""))
            if failure is not None:
                out.failures.append(failure)
        ops |= set(operators_used(subject, reach))
    if LAWS in properties and ops:
        start = time.perf_counter()
        n, failures = fuzz_laws(sorted(o for o in ops if registry.get(o).laws), max(3, examples // 4), seed, label)
        out.checks.append(("operators", LAWS, n, time.perf_counter() - start))
        out.failures += failures
        if log:
            log(f"  {'operators':24s} {LAWS:14s} {n:4d} examples  {time.perf_counter() - start:6.1f}s"
                + ("  FAILED" if failures else ""))
    # Step orders check what the spec itself passed: a failure of the spec's own steps is reported once.
    order_props = [p for p in ("agree", "finite") if p in properties and p not in {f.prop for f in out.failures}]
    if compositions and subjects and order_props:
        start = time.perf_counter()
        n, failures, note = fuzz_step_orders(subjects[0], examples=max(2, examples // 4), seed=seed, backend=backend,
                                             properties=order_props)
        if n or failures:
            out.checks.append(("step orders", "compose", n, time.perf_counter() - start))
            if log:
                log(f"  {'step orders':24s} {'compose':14s} {n:4d} examples  {time.perf_counter() - start:6.1f}s"
                    + ("  FAILED" if failures else ""))
        out.failures += failures
        if note:
            out.notes.append(note)
    return out


# =========================================================================================================
# Step orders: a spec's steps composed in random orders (H ∘ A and A ∘ H)
# =========================================================================================================
COMPOSITION = "geo_fuzz_composition"


def composable(subject: Subject) -> dict[str, dict[str, checker.HyperInfo]]:
    """The steps a spec's own file defines, and its single-rule optimizers (usable as steps), with their
    hyperparameters."""
    out: dict[str, dict[str, checker.HyperInfo]] = {}
    source = subject.source
    for name, d in subject.checked.steps.items():
        if d.span.source is source:
            text = source.text + f"\n\noptimizer {COMPOSITION} = {name}\n"
            try:
                _, probe = front(SourceFile(source.name, text))
            except GeoError:
                continue
            out[name] = dict(probe.optimizers[COMPOSITION].hypers)
    for name, info in subject.checked.optimizers.items():
        if info.span.source is source and len(info.rules) == 1 and info.rules[0].view is None:
            out[name] = dict(info.hypers)
    return out


def composition_header(chain: Sequence[str], hypers: dict[str, dict[str, checker.HyperInfo]]) -> str | None:
    """The header that settles hyperparameters the chain's steps declare differently (the first default wins);
    None when one is static in one step and runtime in another (the checker rightly rejects that)."""
    seen: dict[str, checker.HyperInfo] = {}
    header: dict[str, checker.HyperInfo] = {}
    for name in chain:
        for k, h in hypers[name].items():
            if k in seen:
                if seen[k].static != h.static:
                    return None
                if seen[k].default != h.default:
                    header[k] = seen[k]
            else:
                seen[k] = h
    parts = []
    for k, h in header.items():
        if h.default is checker.REQUIRED:
            parts.append(k)
        else:
            parts.append(("static " if h.static else "") + f"{k} = {geo_literal(h.default)}")
    return f"({', '.join(parts)})" if parts else ""


def draw_chain(draw: Draw, names: Sequence[str]) -> tuple[list[str], str]:
    """2–3 steps in execution order, written with `∘` or `>>` (`A >> B` is `B ∘ A`)."""
    chain = [draw.choice(tuple(names)) for _ in range(draw.int(2, 3))]
    if draw.bool():
        return chain, " ∘ ".join(reversed(chain))
    return chain, " >> ".join(chain)


def _composition_subject(subject: Subject, written: str, header: str) -> Subject:
    line = f"optimizer {COMPOSITION}{header} = {written}\n"
    source = SourceFile(subject.source.name, subject.source.text + "\n\n" + line)
    _, checked = front(source)
    sub = Subject(subject.label, source, checked, COMPOSITION, optimizer_class(checked, COMPOSITION),
                  subject.compile_arg)
    if subject.label.startswith("stdlib/"):
        stem = Path(subject.label).stem
        sub.compile_arg = f"use {stem}\n\n{line}"
        sub.geo_snippet = lambda: f"use {stem}\n\n{line.rstrip()}"  # type: ignore[method-assign]
    else:
        sub.geo_snippet = lambda: f"# appended to {subject.label}:\n{line.rstrip()}"  # type: ignore[method-assign]
        sub.compile_arg = subject.compile_arg
    return sub


def fuzz_step_orders(subject: Subject, *, examples: int, seed: int, backend: str = "torch",
                     properties: Sequence[str] = ("agree", "finite")) -> tuple[int, list[Failure], str | None]:
    """Random orders of the spec's steps, each fuzzed for `properties`."""
    steps = composable(subject)
    if not steps:
        return 0, [], None
    names = sorted(steps)
    total, failures = 0, []
    rng = random.Random(seed)
    seen: set[str] = set()
    for _ in range(max(1, examples)):
        chain, written = draw_chain(RandomDraw(rng), names)
        if written in seen:
            continue
        seen.add(written)
        header = composition_header(chain, steps)
        if header is None:
            continue
        try:
            sub = _composition_subject(subject, written, header)
        except GeoError as err:
            failures.append(Failure(subject.label, "compose", f"the composition `{written}`",
                                    "a composition of checked steps is rejected by the checker",
                                    [f"steps: {', '.join(chain)} (in execution order)"], "it checks", err.render(),
                                    geo=f"optimizer {COMPOSITION}{header} = {written}"))
            continue
        reach = targets(sub.cls)
        for name in properties:
            prop = PROPERTIES[name]
            if prop.needs_other_backend and backend == "reference":
                continue
            n, failure = fuzz_property(sub, prop, max(2, examples // 2), seed, backend, reach)
            total += n
            if failure is not None:
                failure.prop = f"compose/{name}"
                failures.append(failure)
    return total, failures, None


# =========================================================================================================
# Random well-typed operator expressions, typed by the registry's type rules, fed from their domains
# =========================================================================================================
PARAM_FORMS = {
    "matrix": ("for matrix W", Tensor(("m", "n"))),
    "vector": ("for vector W", Tensor(("n",))),
    "tensor": ("for tensor W", Tensor(None)),
    "stack": ("for stack W as batch", Tensor(("m", "n"), batched=True)),
}
_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "^", "and": "and", "or": "or", "eq": "==",
          "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_KEYWORD_OPS = {"and", "or", "not"}
SMOOTH_OPS = {"add", "sub", "mul", "div", "neg", "sqrt", "rsqrt", "exp", "log", "sinh", "cosh", "asinh", "tanh",
              "square", "lerp", "ema", "nesterov", "bias_correction", "sum", "mean", "rms", "dot", "transpose",
              "matmul", "pow", "axpy", "addcmul", "row_mean_sq", "zeros_like", "ones_like"}


def _kind_of(t: Any, ptype: Tensor) -> str | None:
    """"T": the parameter's type; "S": a host scalar; "Z": a 0-d tensor (a reduction's result)."""
    if isinstance(t, Scalar):
        return "S"
    if isinstance(t, Tensor) and t.shape == () and not t.batched:
        return "Z"
    if isinstance(t, Tensor) and t == Tensor(ptype.shape, ptype.batched, t.dtype) and t.dtype == "param":
        return "T"
    return None


def _number_text(x: float) -> str:
    text = repr(float(x))
    return f"({text})" if text.startswith("-") else text


KIND_TYPES = {"S": SCALAR, "Z": Tensor(())}


class ExpressionGenerator:
    """Random expressions of a wanted kind over the registry: "T" (the parameter's type), "S" (a host scalar)
    or "Z" (a 0-d tensor)."""

    def __init__(self, draw: Draw, ptype: Tensor, smooth: bool = False, max_depth: int = 3):
        self.draw, self.ptype, self.smooth, self.max_depth = draw, ptype, smooth, max_depth
        self.ops = [o for o in registry.all_ops() if o.kind != registry.INIT or o.name in ("zeros_like", "ones_like")]
        if smooth:
            self.ops = [o for o in self.ops if o.name in SMOOTH_OPS]
        self.used: set[str] = set()

    def leaf(self, kind: str) -> str:
        d = self.draw
        if kind == "T":
            return d.choice(("grad", "W", "m", "grad", "m"))
        if kind == "Z":
            return d.choice(("mean(grad)", "sum(m)", "rms(W)"))
        return d.choice(("lr", "beta", "t", _number_text(d.choice((0.5, 2.0, 1e-3, 3.0, 0.9))), "lr"))

    def literal(self, dom: registry.Domain) -> str:
        lo = max(dom.low, -10.0)
        hi = min(dom.high, 10.0)
        if lo > hi:
            lo = hi = dom.low if math.isfinite(dom.low) else dom.high
        value = min(max(round(self.draw.float(lo, hi), 4), lo), hi) if hi > lo else lo
        return _number_text(value)

    def fit(self, text: str, kind: str, dom: registry.Domain) -> str:
        lo, hi = dom.low, dom.high
        if lo == -math.inf and hi == math.inf:
            return text
        if kind == "S" and self.draw.bool(0.7):
            return self.literal(dom)
        if kind == "Z" and math.isfinite(lo) and math.isfinite(hi):
            return f"clamp({text}, {_number_text(lo)}, {_number_text(hi)})"
        if math.isfinite(lo) and math.isfinite(hi):
            return f"clamp({text}, {_number_text(lo)}, {_number_text(hi)})"
        if math.isfinite(lo):
            return f"(abs({text}) + {_number_text(lo)})"
        return f"({_number_text(hi)} - abs({text}))"

    def expr(self, kind: str, depth: int = 0) -> str:
        d = self.draw
        if depth >= self.max_depth or d.bool(0.25 + 0.15 * depth):
            return self.leaf(kind)
        for _ in range(8):
            opdef = d.choice(self.ops)
            call = self.call(opdef, kind, depth)
            if call is not None:
                return call
        return self.leaf(kind)

    def call(self, opdef: registry.OpDef, kind: str, depth: int) -> str | None:
        d = self.draw
        attrs: dict[str, Any] = {}
        written: dict[str, str] = {}
        for p in opdef.static_params:
            dom = opdef.domain_of(p.name)
            if p.required:
                if not dom.choices:
                    return None
                attrs[p.name] = d.choice(dom.choices)
                written[p.name] = geo_literal(attrs[p.name])
            elif dom.choices and d.bool(0.3):
                attrs[p.name] = d.choice(dom.choices)
                written[p.name] = geo_literal(attrs[p.name])
            else:
                attrs[p.name] = p.default
        values = [p for p in opdef.value_params if p.required]
        patterns = []
        for code in range(3 ** len(values)):
            kinds = ["TSZ"[code // 3 ** i % 3] for i in range(len(values))]
            types = [self.ptype if k == "T" else KIND_TYPES[k] for k in kinds]
            constraints: list = []
            try:
                result = opdef.type_rule(types, dict(attrs), constraints)
            except Exception:  # noqa: BLE001 - a type rule rejecting this pattern (ShapeError, or a bad probe)
                continue
            if not constraints and _kind_of(result, self.ptype) == kind:
                patterns.append(kinds)
        if not patterns:
            return None
        kinds = d.choice(patterns)
        args = [self.fit(self.expr(k, depth + 1), k, opdef.domain_of(p.name)) for p, k in zip(values, kinds)]
        self.used.add(opdef.name)
        name = opdef.name
        if name in _INFIX and len(args) == 2 and not written and (name in _KEYWORD_OPS or d.bool(0.6)):
            return f"({args[0]} {_INFIX[name]} {args[1]})"
        if name == "not":
            return f"(not {args[0]})"
        if name == "neg":
            return f"(-{args[0]})"
        if name == "transpose" and d.bool():
            return f"{args[0]}.T" if args[0].isidentifier() or args[0].endswith(")") else f"({args[0]}).T"
        parts = args + [f"{k} = {v}" for k, v in written.items()]
        return f"{name}({', '.join(parts)})"


def expression_spec(draw: Draw, form: str | None = None, smooth: bool = False) -> tuple[str, str, set[str]]:
    """(spec text, the parameter form, the operators used): a rule whose update is a random expression."""
    form = form or draw.choice(tuple(PARAM_FORMS))
    binder, ptype = PARAM_FORMS[form]
    gen = ExpressionGenerator(draw, ptype, smooth)
    update = gen.expr("T")
    scale = gen.expr("S", 1) if draw.bool(0.3) else "lr"
    text = (f"optimizer geo_fuzz_expression(lr = 0.01, beta = 0.9):\n"
            f"    {binder}:\n"
            f"        state m = zeros_like(W)\n"
            f"        m = lerp(m, grad, 1 - beta)\n"
            f"        let u = {update}\n"
            f"        W = W - {scale} * u\n")
    return text, form, gen.used


FORM_TARGETS = {"matrix": Target(0, "layer.weight", "hidden", 2), "vector": Target(0, "norm.weight", "norm", 1),
                "tensor": Target(0, "layer.weight", "hidden", 2), "stack": Target(0, "experts.weight", "hidden", 3)}


def _reference_programs(subject: Subject, case: Case, optimize: bool):
    from ..compiler.backends.reference import ReferenceStep
    rule = subject.info.rules[0]
    statics = {k: h.default for k, h in rule.hypers.items() if h.static}
    binding = bind_rule(subject.cls._geo, P.ParamInfo(case.target.name, case.shape, case.target.role))
    return ReferenceStep(specialize(subject.checked, rule, statics, binding[1], binding[2], optimize=optimize))


def _passes_preserve(subject: Subject, case: Case) -> None:
    """The optimization passes do not change what a program computes (fp64, finite results, smooth ops)."""
    hypers = {"lr": 0.01, "beta": 0.9}
    outs = []
    for optimize in (False, True):
        step = _reference_programs(subject, case, optimize)
        param = case.init.build(case.shape, "fp64")
        state = step.init(param, hypers)
        for i, g in enumerate(case.grads):
            param, new = step.step(param, g.build(case.shape, "fp64"), state, hypers, float(i + 1))
            state.update(new)
        outs.append(param)
    a, b = outs
    if not (a.isfinite().all() and b.isfinite().all()):
        return
    if not torch.allclose(a, b, rtol=1e-7, atol=1e-9 * max(1.0, float(a.abs().max()))):
        raise Mismatch("the optimization passes changed what the program computes (reference backend, fp64)",
                       f"unoptimized: {summarize(a)}", f"optimized: {summarize(b)}", difference(a, b))


def fuzz_operators(*, examples: int = 100, seed: int = 0, backend: str = "torch") -> Outcome:
    """Random well-typed operator expressions: the checker accepts what the type rules accept, the backend agrees
    with the reference bit for bit on adversarial inputs, nothing crashes, and on smooth expressions the
    optimization passes preserve the result."""
    out = Outcome("<operator compositions>")
    backend = "torch" if backend == "auto" else backend

    def body(draw: Draw, ctx: dict) -> None:
        smooth = draw.bool(0.3)
        text, form, used = expression_spec(draw, smooth=smooth)
        ctx["text"], ctx["used"] = text, used
        try:
            _, checked = front(SourceFile("<composition>", text))
        except GeoError as err:
            raise Mismatch("the checker rejects an expression the operators' type rules accept", "it checks",
                           err.render()) from None
        subject = Subject("<composition>", SourceFile("<composition>", text), checked, "geo_fuzz_expression",
                          optimizer_class(checked, "geo_fuzz_expression"), text)
        ctx["subject"] = subject
        case = draw_case(draw, subject.cls, FORM_TARGETS[form], steps=(1, 2), flip_statics=False)
        if case is None:
            raise Skip("shape")
        ctx["case"] = case
        if backend != "reference":
            _prop_agree(subject, case, backend, draw)
        else:
            run_case(subject.cls, case, backend)
        if smooth and all(g.finite for g in case.grads):
            _passes_preserve(subject, case)

    start = time.perf_counter()
    n, failed = hypothesis_run(body, examples, seed)
    out.checks.append(("operator compositions", "agree", n, time.perf_counter() - start))
    if failed is not None:
        err = failed["error"]
        case, subject = failed.get("case"), failed.get("subject")
        text = failed.get("text", "")
        if subject is not None and case is not None:
            f = _spec_failure(subject, "operators", case, err, backend)
            f.geo = text.rstrip()
            f.python = python_snippet(subject, case, "agree", backend)
        else:
            f = Failure("<operator compositions>", "operators", "a generated expression",
                        err.title if isinstance(err, Mismatch) else f"crashed: {type(err).__name__}",
                        [], getattr(err, "expected", "no exception"),
                        getattr(err, "got", "") or _exception_text(err), getattr(err, "detail", ""), text.rstrip(),
                        f"import geo\ngeo.compile({text!r})")
        f.inputs.insert(0, "operators: " + ", ".join(sorted(failed.get("used", ()))))
        out.failures.append(f)
    return out


# =========================================================================================================
# The composition explorer: do these steps (or operators) commute?
# =========================================================================================================
PROBE = "geo_fuzz_probe"


@dataclass
class Stepper:
    """One name given to `--compose`: a step (or single-rule optimizer) of a spec, or an operator applied to
    the parameter (`W = op(W)`), compiled as an optimizer of its own."""

    name: str
    origin: str
    cls: type[GeoOptimizer]
    geo: str


def _probe_class(source: SourceFile) -> type[GeoOptimizer]:
    _, checked = front(source)
    return optimizer_class(checked, PROBE)


def resolve_stepper(name: str, files: Sequence[str] = ()) -> Stepper:
    """A step or single-rule optimizer defined in one of `files` (else in the stdlib), or an operator: a bare
    operator name (`msign`) or an expression over the parameter `W` (`lmo(W, "spectral")`)."""
    if registry.get(name) is not None or "(" in name:
        expr = f"{name}(W)" if registry.get(name) is not None else name
        errors: list[Diagnostic] = []
        for binder in ("for matrix W", "for vector W", "for tensor W"):
            text = f"optimizer {PROBE}:\n    {binder}:\n        W = {expr}\n"
            try:
                return Stepper(name, "operator", _probe_class(SourceFile("<compose>", text)), f"W = {expr}")
            except GeoError as err:
                errors.extend(err.diagnostics)
        raise GeoError(errors[:1])
    candidates: list[SourceFile] = []
    for f in files:
        candidates.append(read_file(f) if os.path.isfile(f) else source_for(f))
    from ..dsl.loader import stdlib_names
    candidates += [source_for(n) for n in stdlib_names() if n not in {Path(c.name).stem for c in candidates}]
    known: list[str] = []
    for source in candidates:
        try:
            _, checked = front(source)
        except GeoError:
            continue
        here = [n for n, d in checked.steps.items() if d.span.source is source] + \
               [n for n, o in checked.optimizers.items() if o.span.source is source and len(o.rules) == 1]
        known += here
        if name in here:
            text = source.text + f"\n\noptimizer {PROBE} = {name}\n"
            cls = _probe_class(SourceFile(source.name, text))
            d = checked.steps.get(name) or checked.optimizers[name]
            kind = "step" if name in checked.steps else "optimizer"
            return Stepper(name, f"{kind} from {source.name}", cls, d.span.text.rstrip())
    from ..dsl.diagnostics import Label, did_you_mean
    from ..dsl.source import builtin_span
    raise GeoError([Diagnostic("GEO0101", f"unknown step or operator `{name}`", Label(builtin_span("geo fuzz --compose")),
                               help=did_you_mean(name, known + registry.names()) or
                               "name a step of the given spec or the stdlib, an operator, or an expression over `W`")])


@dataclass
class Pairing:
    first: str
    second: str
    samples: int = 0
    max_rel: float = 0.0
    median_rel: float = 0.0
    max_abs: float = 0.0
    worst: str = ""

    @property
    def commute(self) -> bool:
        return self.max_rel <= 1e-9

    @property
    def verdict(self) -> str:
        if self.samples == 0:
            return "no samples"
        if self.commute:
            return "commute"
        return "nearly (≤ 1e-4)" if self.max_rel <= 1e-4 else "do not commute"


@dataclass
class Exploration:
    steppers: list[Stepper]
    pairs: list[Pairing]
    samples: int
    rank: int

    def render(self) -> str:
        kind = {0: "scalars", 1: "vectors", 2: "matrices", 3: "stacks of matrices", 4: "conv kernels"}[self.rank]
        operators_only = all(s.origin == "operator" for s in self.steppers)
        how = "one application each" if operators_only else "1–3 steps, the same gradient for both orders"
        out = [f"geo fuzz --compose: {len(self.steppers)} {'operators' if operators_only else 'steps'} on up to "
               f"{self.samples} sampled {kind} (float64, {how})"]
        width = max(len(s.name) for s in self.steppers)
        for s in self.steppers:
            out.append(f"  {s.name:{width}s}  {s.origin}")
        labels = [f"{p.first}, {p.second}" for p in self.pairs]
        lw = max([len("pair")] + [len(x) for x in labels])
        out.append("")
        out.append(f"  {'pair':{lw}s}  {'samples':>7s}  {'verdict':15s}  {'max rel. diff':>13s}  {'median':>9s}  "
                   f"{'max ‖AB − BA‖':>13s}")
        for label, p in zip(labels, self.pairs):
            out.append(f"  {label:{lw}s}  {p.samples:7d}  {p.verdict:15s}  {p.max_rel:13.3g}  {p.median_rel:9.3g}  "
                       f"{p.max_abs:13.3g}")
        out.append("")
        out.append("  AB: A then B; BA: B then A. rel. diff = ‖P_AB − P_BA‖_F / the larger of ‖P − P₀‖_F; "
                   "'commute': ≤ 1e-9 on every sample; 'nearly': "
                   "≤ 1e-4, the rounding of steps that compute in fp32 or bf16")
        for p in self.pairs:
            if not p.commute and p.worst:
                out.append(f"  largest difference for ({p.first}, {p.second}): {p.worst}")
        out.append("")
        out.append("  the two orders of each pair, as .geo:")
        by_name = {s.name: s for s in self.steppers}
        for p in self.pairs:
            a, b = by_name[p.first], by_name[p.second]
            for x, y in ((a, b), (b, a)):
                if x.origin == "operator" and y.origin == "operator":
                    inner = x.geo.split("=", 1)[1].strip()
                    text = "W = " + y.geo.split("=", 1)[1].strip().replace("W", inner if inner.endswith(")") else f"({inner})", 1) \
                        if y.geo.count("W") == 2 else f"{x.geo}; then {y.geo}"
                elif x.origin != "operator" and y.origin != "operator":
                    text = f"optimizer {x.name}_then_{y.name} = {y.name} ∘ {x.name}"
                else:
                    text = f"{x.name} then {y.name} (an operator is the step `{(x if x.origin == 'operator' else y).geo}`)"
                out.append(f"      {x.name} then {y.name}:  {text}")
        return "\n".join(out)


def _common_target(steppers: Sequence[Stepper]) -> Target | None:
    reach = [[t for ts in targets(s.cls).values() for t in ts] for s in steppers]
    for rank in (2, 1, 3, 4, 0):
        for t in reach[0]:
            if t.rank != rank:
                continue
            if all(any(u.rank == rank and u.role == t.role for u in r) for r in reach[1:]):
                return t
    return None


def explore(names: Sequence[str], files: Sequence[str] = (), *, examples: int = 50, seed: int = 0) -> Exploration:
    """Do the given steps or operators commute? Every pair is run both ways on sampled parameters and gradients."""
    steppers = [resolve_stepper(n, files) for n in names]
    target = _common_target(steppers)
    if target is None:
        from ..dsl.diagnostics import Label
        from ..dsl.source import builtin_span
        raise GeoError([Diagnostic("GEO0401", "these steps select no common kind of parameter",
                                   Label(builtin_span("geo fuzz --compose")),
                                   notes=[f"{s.name}: {s.origin}" for s in steppers])])
    rng = random.Random(seed)
    cases = []
    for _ in range(examples * 4):
        if len(cases) >= examples:
            break
        draw = RandomDraw(rng)
        shape = draw_shape(draw, target.rank, target.rows_multiple)
        if not all(binds_to(s.cls, Target(0, target.name, target.role, target.rank), shape)
                   or any(binds_to(s.cls, t, shape) for ts in targets(s.cls).values() for t in ts) for s in steppers):
            continue
        init = draw_recipe(draw, ("gaussian", "rank1", "illcond"))
        steps = 1 if all(s.origin == "operator" for s in steppers) else draw.int(1, 3)
        grads = [draw_recipe(draw, ("gaussian", "gaussian", "rank1", "illcond")) for _ in range(steps)]
        cases.append(Case(target, shape, "fp64", init, grads))
    pairs = []
    for i in range(len(steppers)):
        for j in range(i + 1, len(steppers)):
            a, b = steppers[i], steppers[j]
            pairing = Pairing(a.name, b.name)
            rels = []
            for case in cases:
                ends = []
                try:
                    for first, second in ((a, b), (b, a)):
                        p = torch.nn.Parameter(case.init.build(case.shape, "fp64"))
                        opts = [s.cls([(target.name, p)], roles={target.name: target.role}, nonfinite="propagate")
                                for s in (first, second)]
                        for g in case.grads:
                            for o in opts:
                                p.grad = g.build(case.shape, "fp64")
                                o.step()
                        ends.append(p.detach().clone())
                except GeoError:
                    continue
                p0 = case.init.build(case.shape, "fp64")
                d = float((ends[0] - ends[1]).norm())
                u = max(float((ends[0] - p0).norm()), float((ends[1] - p0).norm()))
                rel = d / u if u > 0 else (0.0 if d == 0 else math.inf)
                if not math.isfinite(d):
                    rel = math.inf if not (ends[0].isnan().any() and ends[1].isnan().any()) else 0.0
                rels.append(rel)
                if rel >= pairing.max_rel:
                    pairing.max_rel = rel
                    pairing.worst = (f"shape {case.shape}, start {case.init.show()}, gradients "
                                     + ", ".join(g.show() for g in case.grads) + f": rel. diff {rel:.3g}")
                pairing.max_abs = max(pairing.max_abs, d if math.isfinite(d) else math.inf)
            pairing.samples = len(rels)
            pairing.median_rel = sorted(rels)[len(rels) // 2] if rels else 0.0
            pairs.append(pairing)
    return Exploration(steppers, pairs, len(cases), target.rank)


# =========================================================================================================
# Front-end robustness: generated and mutated spec text through the whole pipeline
# =========================================================================================================
HOSTILE_NAMES = ("__import__", "__builtins__", "__class__", "__init__", "__dict__", "class", "import", "lambda",
                 "None", "True", "False", "exec", "eval", "open", "os", "sys", "globals", "K", "F", "store", "param",
                 "hypers", "state", "v0", "v1", "float", "print", "del", "yield", "await", "self", "params",
                 "geo_rule", "param_names", "step", "defaults", "x" * 200)
HOSTILE_STRINGS = ('"); import os; os.system("echo pwned") #', "\\n__import__('os')", "{0.__class__}", "%s%s%n",
                   "../../../../etc/passwd", "/dev/zero", "\\x00", "\\u202e", "a" * 500, "keller\\\"", "'''", "\\\\")
_NORMAL_NAMES = ("W", "p", "m", "v", "x", "y", "buf", "lr", "beta", "eps", "momentum", "wd", "u", "g", "d", "h")
_KEYWORDS = ("use", "def", "step", "optimizer", "for", "state", "let", "if", "elif", "else", "repeat", "return",
             "pass", "static", "as", "not", "and", "or", "true", "false")
_NUMBERS = ("0", "1", "2", "0.5", "1e-8", "1e308", "1e999", "9" * 40, ".5", "5.", "0e0", "1e-320", "3", "1000", "1001",
            "0.999", "100000")
_TOKENS = ("(", ")", "[", "]", ":", ",", "=", "==", "+", "-", "*", "/", "@", "^", "**", ".", ".T", "∘", ">>", ";",
           "#", '"', '"""', "\n", "\t", "    ", "\r\n", "\\", "'", "{", "}", "?", "!", "$", "\x00", "\ufeff", "é", "∑",
           "if", "else", "not", "static", "as", "for", "repeat", "state", "let", "return")


def _stdlib_texts() -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted(STDLIB.glob("*.geo"))}


class SpecGenerator:
    """Grammar-aware random specs: mostly well-formed declarations with random names, selectors, views,
    hyperparameters, statements and operator expressions; hostile names and strings mixed in."""

    def __init__(self, draw: Draw):
        self.d = draw
        self.indent = draw.choice(("    ", "    ", "  ", "\t"))

    def name(self) -> str:
        d = self.d
        r = d.int(0, 99)
        if r < 55:
            return d.choice(_NORMAL_NAMES)
        if r < 70:
            return d.choice(HOSTILE_NAMES)
        if r < 80:
            return d.choice(_KEYWORDS)
        if r < 92:
            return d.choice(registry.names())
        return "n" + str(d.int(0, 999))

    def string(self) -> str:
        d = self.d
        if d.bool(0.6):
            return '"' + d.choice(("keller", "polar_express", "sso8", "spectral", "rms_rms", "bf16", "fp32", "svd", "ns",
                                   "l2_ball", "stiefel", "hypentropy", "code", "paper", "*.weight", "embed*")) + '"'
        return '"' + d.choice(HOSTILE_STRINGS) + '"'

    def literal(self) -> str:
        d = self.d
        r = d.int(0, 9)
        if r < 6:
            return d.choice(_NUMBERS)
        if r < 7:
            return d.choice(("true", "false"))
        if r < 9:
            return self.string()
        return "(" + ", ".join(d.choice(_NUMBERS) for _ in range(d.int(1, 3))) + ")"

    def expr(self, depth: int = 0) -> str:
        d = self.d
        if depth > 3 or d.bool(0.3):
            return self.name() if d.bool(0.6) else self.literal()
        r = d.int(0, 9)
        if r < 4:
            args = [self.expr(depth + 1) for _ in range(d.int(0, 3))]
            if d.bool(0.3):
                args.append(f"{self.name()} = {self.expr(depth + 1)}")
            return f"{d.choice(registry.names()) if d.bool(0.8) else self.name()}({', '.join(args)})"
        if r < 7:
            op = d.choice(("+", "-", "*", "/", "@", "^", "**", "==", "<", ">=", "and", "or"))
            return f"{self.expr(depth + 1)} {op} {self.expr(depth + 1)}"
        if r < 8:
            return f"{self.expr(depth + 1)} if {self.expr(depth + 1)} else {self.expr(depth + 1)}"
        if r < 9:
            return f"({self.expr(depth + 1)})" + d.choice(("", ".T", "[0]", "[1]", ".x"))
        return d.choice(("-", "not ")) + self.expr(depth + 1)

    def typed_expr(self, form: str = "matrix") -> str:
        return ExpressionGenerator(self.d, PARAM_FORMS[form][1], max_depth=2).expr("T")

    def hypers(self) -> str:
        d = self.d
        out = []
        for _ in range(d.int(0, 4)):
            static = "static " if d.bool(0.25) else ""
            value = f" = {self.literal() if d.bool(0.8) else self.expr(2)}" if d.bool(0.85) else ""
            out.append(f"{static}{self.name() if d.bool(0.5) else d.choice(('lr', 'beta', 'eps', 'momentum'))}{value}")
        return ", ".join(out)

    def binder(self) -> str:
        d = self.d
        words = []
        for _ in range(d.int(0, 2)):
            r = d.int(0, 9)
            if r < 6:
                words.append(d.choice(tuple(P.SELECTORS)))
            elif r < 7:
                words.append(f'name {self.string()}')
            elif r < 8:
                words.append("not " + d.choice(tuple(P.SELECTORS)))
            else:
                words.append(self.name())
        view = ""
        if d.bool(0.15):
            view = " as " + d.choice(("matrix", "batch", f"heads({d.choice(_NUMBERS)})", f"split({d.int(0, 4)})",
                                      self.name()))
        return " ".join(words + [d.choice(("W", "W", "p", self.name()))]) + view

    def body(self, level: int, param: str = "W", form: str = "matrix") -> list[str]:
        d = self.d
        pad = self.indent * level
        lines = []
        if d.bool(0.1):
            lines.append(f'{pad}"""a docstring {d.choice(HOSTILE_STRINGS)}"""')
        if d.bool(0.6):
            dtype = (": " + d.choice(("bf16", "fp32", "fp64", "fp16", "int8", self.name()))) if d.bool(0.2) else ""
            lines.append(f"{pad}state {d.choice(('m', 'buf', self.name()))}{dtype} = "
                         f"{d.choice(('zeros_like', 'ones_like', 'right_init'))}({param})" if d.bool(0.8)
                         else f"{pad}state {self.name()} = {self.literal()}")
        for _ in range(d.int(1, 4)):
            r = d.int(0, 9)
            if r < 3:
                lines.append(f"{pad}let {self.name()} = {self.typed_expr(form) if d.bool(0.5) else self.expr()}")
            elif r < 6:
                target = d.choice((param, param, "m", self.name()))
                value = f"{param} - lr * {self.typed_expr(form)}" if d.bool(0.6) else self.expr()
                lines.append(f"{pad}{target} = {value}")
            elif r < 7 and level < 5:
                lines.append(f"{pad}if {self.expr(2)}:")
                lines += self.body(level + 1, param, form)
                if d.bool(0.4):
                    lines.append(f"{pad}else:")
                    lines += self.body(level + 1, param, form)
            elif r < 8 and level < 5:
                lines.append(f"{pad}repeat {d.choice(('2', '3', '0', '1001', 'n', self.literal()))}"
                             + (f" as {self.name()}" if d.bool(0.3) else "") + ":")
                lines += self.body(level + 1, param, form)
            elif r < 9:
                lines.append(f"{pad}return {self.expr()}")
            else:
                lines.append(f"{pad}pass")
        return lines

    def stepexpr(self, names: list[str]) -> str:
        d = self.d
        parts = []
        for _ in range(d.int(1, 3)):
            n = d.choice(names) if names and d.bool(0.8) else self.name()
            if d.bool(0.3):
                n += f"({self.name()} = {self.literal()})"
            parts.append(n)
        return d.choice((" ∘ ", " >> ")).join(parts)

    def legal_name(self) -> str:
        """A name the grammar accepts, often one that means something to Python or to the generated code."""
        d = self.d
        pool = [n for n in HOSTILE_NAMES if n not in _KEYWORDS] + ["m2", "acc", "z"]
        return d.choice(pool) if d.bool(0.5) else d.choice(("u", "g", "d", "h", "y", "acc"))

    def valid_spec(self) -> str:
        """A spec that should check: one optimizer whose rules update W by random well-typed expressions,
        with hostile (but legal) names for hyperparameters, states and locals."""
        d = self.d
        i1, i2, i3 = self.indent, self.indent * 2, self.indent * 3
        taken = {"lr", "beta", "W", "grad", "t", "m", "flag", "k"}
        extra = self.legal_name()
        extra = extra if extra not in taken else "z"
        taken.add(extra)
        state = self.legal_name()
        state = state if state not in taken else "acc_"
        taken.add(state)
        lines = [f"optimizer {d.choice(('fuzzed', 'spec', 'lambda_', 'class_'))}(lr = 0.01, beta = 0.9, "
                 f"{extra} = {d.choice(('0.5', '2.0', '1e-3'))}, static flag = {d.choice(('true', 'false'))}):"]
        used_forms = []
        for _ in range(d.int(1, 2)):
            form = d.choice(tuple(f for f in ("matrix", "vector", "stack") if f not in used_forms))
            used_forms.append(form)
            binder = {"matrix": "matrix W", "vector": "vector W", "stack": "stack W as batch"}[form]
            lines.append(f"{i1}for {binder}:")
            lines.append(f"{i2}state m = zeros_like(W)")
            lines.append(f"{i2}state {state}{d.choice(('', ': bf16', ': fp64'))} = zeros_like(W)")
            lines.append(f"{i2}m = lerp(m, grad, 1 - beta)")
            lines.append(f"{i2}{state} = {state} * beta + {extra} * grad")
            local = self.legal_name()
            local = local if local not in taken else "u_"
            lines.append(f"{i2}let {local} = {self.typed_expr(form)}")
            if d.bool(0.4):
                lines.append(f"{i2}if flag:")
                lines.append(f"{i3}{local} = {local} + {self.typed_expr(form)}")
            if d.bool(0.3):
                lines.append(f"{i2}repeat {d.int(0, 3)} as k:")
                lines.append(f"{i3}{local} = lerp({local}, {self.typed_expr(form)}, 0.5)")
            lines.append(f"{i2}W = W - lr * {local}")
        return "\n".join(lines) + "\n"

    def spec(self) -> str:
        d = self.d
        if d.bool(0.5):
            text = self.valid_spec()
            return mutate_text(d, text) if d.bool(0.2) else text
        lines: list[str] = []
        if d.bool(0.3):
            lines.append('"""A generated spec."""')
        if d.bool(0.3):
            lines.append("use " + ", ".join(d.choice(list(_stdlib_texts()) + [self.name()]) for _ in range(d.int(1, 2))))
        steps: list[str] = []
        for _ in range(d.int(0, 2)):
            fname = self.name()
            params = ", ".join(self.name() for _ in range(d.int(0, 2)))
            lines.append(f"def {fname}({params}):")
            lines += self.body(1, "x")[:-1] or [self.indent + "pass"]
            lines.append(f"{self.indent}return {self.expr()}")
        for _ in range(d.int(0, 2)):
            sname = d.choice(("a_step", "b_step", self.name()))
            steps.append(sname)
            form = d.choice(("matrix", "vector"))
            lines.append(f"step {sname}({form if d.bool(0.5) else ''} W; {self.hypers() or 'lr = 0.1'}):")
            lines += self.body(1, "W", form)
        for _ in range(d.int(1, 2)):
            head = f"optimizer {d.choice(('opt', 'fuzzed', self.name()))}"
            if d.bool(0.8):
                head += f"({self.hypers() or 'lr = 0.01'})"
            if steps and d.bool(0.3):
                lines.append(f"{head} = {self.stepexpr(steps)}")
                continue
            lines.append(head + ":")
            for _ in range(d.int(1, 3)):
                if steps and d.bool(0.3):
                    lines.append(f"{self.indent}for {self.binder()} = {self.stepexpr(steps + ['adamw', 'muon', 'sgd'])}")
                else:
                    form = d.choice(("matrix", "vector"))
                    lines.append(f"{self.indent}for {form if d.bool(0.7) else self.binder()} W:")
                    lines += self.body(2, "W", form)
        text = "\n".join(lines) + ("\n" if d.bool(0.9) else "")
        if d.bool(0.3):
            text = mutate_text(d, text)
        return text


def mutate_text(d: Draw, text: str) -> str:
    """Token- and line-level mutations: delete, duplicate or swap lines, re-indent, insert or drop a token."""
    lines = text.split("\n")
    for _ in range(d.int(1, 3)):
        if not lines:
            break
        i = d.int(0, len(lines) - 1)
        r = d.int(0, 6)
        if r == 0:
            del lines[i]
        elif r == 1:
            lines.insert(i, lines[i])
        elif r == 2:
            j = d.int(0, len(lines) - 1)
            lines[i], lines[j] = lines[j], lines[i]
        elif r == 3:
            lines[i] = d.choice(("", " ", "\t", "  ", "        ")) + lines[i].lstrip(" \t")
        elif r == 4:
            k = d.int(0, len(lines[i]))
            lines[i] = lines[i][:k] + d.choice(_TOKENS) + lines[i][k:]
        elif r == 5 and lines[i]:
            k = d.int(0, len(lines[i]) - 1)
            lines[i] = lines[i][:k] + lines[i][k + d.int(1, 6):]
        else:
            lines[i] = lines[i] + " " + d.choice(_TOKENS + _KEYWORDS)
    return "\n".join(lines)


def mutate_bytes(d: Draw, data: bytes, others: Sequence[bytes] = ()) -> bytes:
    """Byte-level mutations of a file: bit flips, byte edits, inserted tokens and edge numbers, deleted,
    duplicated and spliced ranges, deep nesting."""
    b = bytearray(data)
    for _ in range(d.int(1, 4)):
        n = len(b)
        i = d.int(0, n) if n else 0
        r = d.int(0, 10)
        if r == 0 and n:
            j = min(i, n - 1)
            b[j] ^= 1 << d.int(0, 7)
        elif r == 1 and n:
            b[min(i, n - 1)] = d.int(0, 255)
        elif r == 2:
            b[i:i] = d.choice(_TOKENS + _KEYWORDS + _NUMBERS + HOSTILE_NAMES).encode("utf-8")
        elif r == 3 and n:
            del b[i:i + d.int(1, 24)]
        elif r == 4 and n:
            j = min(n, i + d.int(1, 80))
            b[j:j] = b[i:j]
        elif r == 5 and others:
            src = d.choice(tuple(others))
            if src:
                k = d.int(0, len(src) - 1)
                b[i:i] = src[k:k + d.int(1, 200)]
        elif r == 6:
            depth = d.choice((50, 99, 100, 101, 300, 2000))
            b[i:i] = (b"(" * depth + b"1" + b")" * depth) if d.bool() else (b"-" * depth + b"1")
        elif r == 7:
            numbers = list(re.finditer(rb"\d+(\.\d*)?([eE][+-]?\d+)?", bytes(b)))
            if numbers:
                m = d.choice(numbers)
                b[m.start():m.end()] = d.choice(_NUMBERS).encode()
        elif r == 8:
            names = list(re.finditer(rb"[A-Za-z_]\w*", bytes(b)))
            if names:
                m = d.choice(names)
                b[m.start():m.end()] = d.choice(HOSTILE_NAMES + _KEYWORDS + tuple(registry.names())).encode()
        elif r == 9:
            b[i:i] = d.choice((b"\xff", b"\xc3", b"\xe2\x88", b"\x00", b"\r", b"\xef\xbb\xbf", b"\x80\x80"))
        else:
            lines = bytes(b).split(b"\n")
            if len(lines) > 2:
                k = d.int(0, len(lines) - 2)
                lines[k], lines[k + 1] = lines[k + 1], lines[k]
                b = bytearray(b"\n".join(lines))
    return bytes(b)


def robustness_input(index: int, seed: int = 0) -> tuple[str, str, bytes]:
    """The `index`-th input of a campaign: (origin, file stem, bytes). Deterministic in (index, seed); even
    indices mutate a stdlib spec, odd ones are generated by the grammar."""
    rng = random.Random(f"geo-fuzz:{seed}:{index}")
    d = RandomDraw(rng)
    texts = _stdlib_texts()
    if index % 2 == 0:
        stem = d.choice(sorted(texts))
        return f"mutated stdlib/{stem}.geo", stem, mutate_bytes(d, texts[stem], list(texts.values()))
    text = SpecGenerator(d).spec()
    return "generated", d.choice(("fuzzed", "spec", "muon")), text.encode("utf-8", "surrogatepass")


class RobustnessFailure(Exception):
    def __init__(self, what: str, data: bytes, origin: str, detail: str = ""):
        super().__init__(what)
        self.what, self.data, self.origin, self.detail = what, data, origin, detail


def check_diagnostics(diags: Sequence[Diagnostic], path: Path, text: str | None) -> None:
    """Every span lies inside its file (and is of the file's text as read), and every diagnostic renders."""
    texts = {str(path): text}
    for d in diags:
        if not re.fullmatch(r"GEO\d{4}", d.code):
            raise AssertionError(f"diagnostic code {d.code!r} is not GEOnnnn")
        for label in [d.primary] + list(d.secondary):
            span = label.span
            src = span.source
            if not 0 <= span.start <= span.end <= len(src.text):
                raise AssertionError(f"span [{span.start}, {span.end}) outside {src.name} ({len(src.text)} characters)")
            if not src.text:
                continue
            expected = texts.get(src.name)
            if expected is None:
                disk = STDLIB / f"{Path(src.name).stem}.geo" if src.name.startswith("stdlib/") else Path(src.name)
                try:
                    expected = disk.read_bytes().decode("utf-8-sig")
                except OSError:
                    raise AssertionError(f"a span points into {src.name!r}, which is no file the spec read") from None
                texts[src.name] = expected
            if src.text != expected:
                raise AssertionError(f"a span of {src.name} points into a text other than the file's")
        shown = d.render()
        if not shown.startswith(f"{d.severity}[{d.code}]: "):
            raise AssertionError(f"a diagnostic renders without its header: {shown[:80]!r}")


def _deep_check(checked: checker.Checked, pick: int = 0) -> str:
    """Past the checker, for one optimizer of the spec (`pick` chooses): specialize each rule for its defaults,
    generate and compile both backends, and run one step with a parameter the rule selects. Only geo
    diagnostics may come out."""
    from ..compiler.backends.reference import ReferenceStep
    names = list(checked.optimizers)
    if not names:
        return "ok"
    cls = optimizer_class(checked, names[pick % len(names)])
    reach = targets(cls)
    for rule in cls._geo.rules:
        statics = {k: h.default for k, h in rule.hypers.items() if h.static}
        for t in reach.get(rule.index, [])[:1]:
            shape = {0: (), 1: (6,), 2: (6 * t.rows_multiple, 5), 3: (2, 6 * t.rows_multiple, 5),
                     4: (6 * t.rows_multiple, 3, 2, 2)}[t.rank]
            binding = bind_rule(cls._geo, P.ParamInfo(t.name, shape, t.role))
            ReferenceStep(specialize(checked, rule, statics, binding[1], binding[2]))
            hypers = {k: 0.01 for k, h in rule.hypers.items() if h.default is checker.REQUIRED}
            p = torch.nn.Parameter(make_tensor("gaussian", shape, "fp32", 1))
            try:
                opt = cls([(t.name, p)], roles={t.name: t.role}, backend="torch", **hypers)
            except GeoError as err:
                check_diagnostics(err.diagnostics, Path("<bind>"), None)
                continue
            p.grad = make_tensor("gaussian", shape, "fp32", 2)
            opt.step()
    return "ok"


def check_input(data: bytes, path: Path, origin: str = "", deep: bool = True, pick: int = 0) -> str:
    """Runs one input through geo. Returns "diagnostic" (rejected with geo diagnostics) or "ok"; raises
    RobustnessFailure when anything else comes out, or a span or rendering is wrong."""
    path.write_bytes(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    try:
        return _check_input(data, path, text, origin, deep, pick)
    finally:
        path.unlink(missing_ok=True)  # a later input's `use` must not find this one


def _check_input(data: bytes, path: Path, text: str | None, origin: str, deep: bool, pick: int) -> str:
    try:
        try:
            source = read_file(str(path))
            _, checked = front(source)
        except GeoError as err:
            check_diagnostics(err.diagnostics, path, text)
            return "diagnostic"
        if deep:
            try:
                _deep_check(checked, pick)
            except GeoError as err:
                check_diagnostics(err.diagnostics, path, text)
                return "diagnostic"
        return "ok"
    except AssertionError as err:
        raise RobustnessFailure(f"bad diagnostic: {err}", data, origin) from None
    except RobustnessFailure:
        raise
    except BaseException as err:  # noqa: BLE001 - anything but a geo diagnostic is a finding
        if isinstance(err, KeyboardInterrupt):
            raise
        raise RobustnessFailure(f"{type(err).__name__}: {str(err)[:300]}", data, origin,
                                "".join(traceback.format_exception(err)[-6:])) from None


@dataclass
class Campaign:
    """The result of a robustness campaign."""

    count: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    by_origin: dict[str, int] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[int, str, str, bytes, str]] = field(default_factory=list)  # (index, origin, what, input, detail)
    seconds: float = 0.0

    def merge(self, other: "Campaign") -> None:
        self.count += other.count
        for mine, theirs in ((self.outcomes, other.outcomes), (self.by_origin, other.by_origin), (self.codes, other.codes)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        self.failures += other.failures

    def render(self, limit: int = 5) -> str:
        out = [f"geo fuzz --robustness: {self.count} inputs in {self.seconds:.1f}s "
               f"({', '.join(f'{v} {k}' for k, v in sorted(self.outcomes.items()))}; "
               f"{', '.join(f'{v} {k}' for k, v in sorted(self.by_origin.items()))})"]
        if self.codes:
            top = sorted(self.codes.items(), key=lambda kv: -kv[1])[:12]
            out.append("  diagnostics seen: " + ", ".join(f"{k}×{v}" for k, v in top))
        for index, origin, what, data, detail in self.failures[:limit]:
            out.append(f"\nFAILED input #{index} ({origin}): {what}")
            shown = data.decode("utf-8", "backslashreplace")
            out += ["      " + line for line in shown.splitlines()[:40]]
            if detail:
                out += ["    " + line for line in detail.rstrip().splitlines()]
        if len(self.failures) > limit:
            out.append(f"\n... and {len(self.failures) - limit} more failures")
        return "\n".join(out)


def _campaign_slice(args: tuple[int, int, int, int, bool]) -> Campaign:
    start, stop, step, seed, deep = args
    result = Campaign()
    with tempfile.TemporaryDirectory(prefix="geo-fuzz-") as tmp:
        for index in range(start, stop, step):
            origin, stem, data = robustness_input(index, seed)
            kind = origin.split()[0]
            result.by_origin[kind] = result.by_origin.get(kind, 0) + 1
            path = Path(tmp) / f"{stem}.geo"
            try:
                outcome = _with_alarm(lambda: check_input(data, path, origin, deep, index // 2), 30)
                result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1
            except RobustnessFailure as err:
                result.failures.append((index, origin, err.what, data, err.detail))
                result.outcomes["failure"] = result.outcomes.get("failure", 0) + 1
            result.count += 1
    return result


def _with_alarm(fn: Callable[[], str], seconds: int) -> str:
    """Runs fn; an input that takes longer than `seconds` is a failure (a hang)."""
    import signal
    if not hasattr(signal, "SIGALRM"):
        return fn()

    def timeout(signum, frame):
        raise TimeoutError(f"no result after {seconds}s")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def robustness_campaign(count: int, seed: int = 0, workers: int | None = None, deep: bool = True) -> Campaign:
    """Runs inputs 0 … count-1 of the campaign `seed`, split over `workers` processes (default: up to 2)."""
    workers = max(1, min(workers or min(2, os.cpu_count() or 1), count or 1))
    start = time.perf_counter()
    slices = [(i, count, workers, seed, deep) for i in range(workers)]
    total = Campaign()
    if workers == 1:
        total.merge(_campaign_slice(slices[0]))
    else:
        import multiprocessing
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for part in pool.map(_campaign_slice, slices):
                total.merge(part)
    total.failures.sort(key=lambda f: f[0])
    total.seconds = time.perf_counter() - start
    return total


# =========================================================================================================
# `geo fuzz`
# =========================================================================================================
def run_cli(args, source: Callable[[str], SourceFile]) -> int:
    """The `geo fuzz` command (cli.py parses the arguments). 0: every property held; 1: a failure or an invalid
    spec (diagnostics on stderr); 2: a usage error."""
    import sys

    def usage(message: str) -> int:
        print(f"geo fuzz: {message}", file=sys.stderr)
        return 2

    modes = sum(bool(x) for x in (args.compose, args.operators, args.robustness is not None))
    if modes > 1:
        return usage("--compose, --operators and --robustness are separate runs; give one")
    if args.examples is not None and args.examples < 1:
        return usage("--examples takes a positive number")
    unknown = [p for p in args.property if p not in ALL_PROPERTIES]
    if unknown:
        return usage(f"unknown property {unknown[0]!r}; properties: {', '.join(ALL_PROPERTIES)}")
    if args.robustness is not None:
        if args.robustness < 1:
            return usage("--robustness takes a positive number of inputs")
        campaign = robustness_campaign(args.robustness, args.seed, args.workers)
        print(campaign.render())
        return 1 if campaign.failures else 0
    if args.operators:
        out = fuzz_operators(examples=args.examples or 300, seed=args.seed, backend=args.backend)
        print(f"geo fuzz --operators: {out.examples} random operator expressions, "
              f"{sum(c[3] for c in out.checks):.1f}s: " + ("ok" if out.ok else "FAILED"))
        for f in out.failures:
            print("\n" + f.render())
        return 0 if out.ok else 1
    if args.compose:
        if len(args.compose) < 2:
            return usage("--compose takes at least two steps or operators")
        print(explore(args.compose, args.files, examples=args.examples or 40, seed=args.seed).render())
        return 0
    if not args.files:
        return usage("give a FILE to fuzz (or --compose, --operators, --robustness)")
    properties = tuple(args.property) or ALL_PROPERTIES
    examples = args.examples or DEFAULT_EXAMPLES
    failed = False
    for f in args.files:
        start = time.perf_counter()
        try:
            src = source(f)
            out = fuzz_spec(src if os.path.isfile(f) else f, examples=examples, seed=args.seed, backend=args.backend,
                            properties=properties, names=args.name or None, compositions=not args.no_orders,
                            log=(lambda line: print(line, flush=True)) if args.verbose else None)
        except GeoError as err:
            print(err.render(), file=sys.stderr)
            failed = True
            continue
        seconds = time.perf_counter() - start
        props = sorted({c[1] for c in out.checks})
        verdict = "ok" if out.ok else f"FAILED ({len(out.failures)} counterexample{'s' if len(out.failures) > 1 else ''})"
        print(f"{f}: {verdict} — {out.examples} examples, {len(props)} propert{'y' if len(props) == 1 else 'ies'}, {seconds:.1f}s", flush=True)
        for note in out.notes:
            print(f"  note: {note}")
        for failure in out.failures:
            print("\n" + failure.render() + "\n", flush=True)
        failed |= not out.ok
    return 1 if failed else 0
