"""The composition explorer (`geo fuzz --compose A B ...`): do these steps or operators commute, and by how
much do they not?

Every pair runs both ways (A then B, B then A, each with its own state and the same gradients) on sampled
float64 parameters of a kind every named step selects. The difference is reported relative to the larger
of the two steps' displacements, ‖P_AB − P_BA‖_F / max ‖P − P₀‖_F, so that it reads as "a fraction of a
step" whatever the learning rate.
"""
from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..compiler.ops import registry
from ..compiler.pipeline import front
from ..dsl.diagnostics import Diagnostic, GeoError
from ..dsl.loader import read_file, source_for
from ..dsl.source import SourceFile
from ..runtime.optimizer import GeoOptimizer
from .cases import Case, Target, binds_to, draw_recipe, draw_shape, optimizer_class, targets
from .draw import RandomDraw


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
