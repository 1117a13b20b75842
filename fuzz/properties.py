"""The properties every optimizer of a spec must satisfy, and fuzzing one of them with hypothesis.

Each property runs a drawn `Case` twice in a way that must give the same trajectory, bit for bit: on the
backend under test and on the reference (`agree`); with and without a non-finite gradient under
`nonfinite="skip"` (`nonfinite`); uninterrupted and through `state_dict` → `torch.save` → `load_state_dict`
(`checkpoint`); as one of two param groups and as an optimizer of its own (`groups`); twice from one seed
(`deterministic`). `finite` checks one run: no NaN from finite inputs. The operator laws (`LAWS`) are not a
per-case property; `spec.fuzz_laws` runs them.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..dsl.diagnostics import GeoError
from .cases import (Case, Mismatch, Run, Subject, Target, advance, build, compare_runs, draw_case, run_case,
                    runtime_scalar_hyper, snapshot, targets)
from .draw import Draw, Skip, hypothesis_run
from .report import Failure, spec_failure
from .tensors import FINITE_KINDS, GRAD_KINDS, NONFINITE_KINDS, Recipe, difference, same, summarize


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
    compare_runs(ref, got, ("reference", backend), f"the {backend} backend disagrees with the reference")


def _has_nan(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point() and bool(x.isnan().any())


def _prop_finite(subject: Subject, case: Case, backend: str, draw: Draw) -> None:
    run = build(subject.cls, case, backend, nonfinite="raise")
    before = run.p.detach().clone()
    for i, g in enumerate(case.grads):
        prev = (run.p.detach().clone(), snapshot(run.opt.state.get(run.p, {})))
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
    compare_runs(clean, skipping, ("without the non-finite gradient", 'nonfinite="skip"'),
                  'nonfinite="skip" did not leave the parameter and state untouched')
    skips = sum(skipping.opt.nonfinite_skips.values())
    if skips != 1:
        raise Mismatch('nonfinite="skip" miscounted the skipped steps', "1 skip", f"{skips} skips")
    strict = build(subject.cls, case, backend, nonfinite="raise")
    advance(strict, case, grads[:bad_at])
    before = (strict.p.detach().clone(), snapshot(strict.opt.state.get(strict.p, {})))
    strict.p.grad = bad.build(case.shape, case.dtype)
    try:
        strict.opt.step()
    except FloatingPointError:
        pass
    else:
        raise Mismatch('nonfinite="raise" did not raise on a non-finite gradient', "FloatingPointError", "no error")
    after = (strict.p.detach(), snapshot(strict.opt.state.get(strict.p, {})))
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
    compare_runs(straight, first, ("uninterrupted", f"saved after step {case.split} and resumed"),
                  "resuming from a checkpoint is not the uninterrupted run")


def _prop_groups(subject: Subject, case: Case, backend: str, draw: Draw) -> None:
    if subject.cls._geo.info.across is not None:  # its decisions depend on which parameters the optimizer holds
        raise Skip("an `across` block decides across parameters: a group does not step as its own optimizer")
    changed = runtime_scalar_hyper(subject.cls, case.target.rule)
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
            r.states.append(snapshot(both.state.get(r.p, {})))
        advance(alone1, case, [g])
        advance(alone2, case, [g])
    compare_runs(alone1, grouped1, ("its own optimizer", "group 0"), "param group 0 (defaults) is not run as on its own")
    compare_runs(alone2, grouped2, (f"its own optimizer with {hyper}={value:g}", f"group 1 ({hyper}={value:g})"),
                  f"param group 1's own `{hyper}` is not respected")


def _prop_deterministic(subject: Subject, case: Case, backend: str, draw: Draw) -> None:
    runs = []
    for _ in range(2):
        torch.manual_seed(1234)
        runs.append(run_case(subject.cls, case, backend))
    compare_runs(runs[0], runs[1], ("first run", "second run"), "two seeded runs differ")


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
            changed = runtime_scalar_hyper(subject.cls, target.rule)
            ctx["extra"] = {"hyper": changed[0], "value": changed[1]} if changed else {}
        prop.check(subject, case, backend, draw)

    n, failed = hypothesis_run(body, examples, seed)
    if failed is None:
        return n, None
    return n, spec_failure(subject, prop.name, failed.get("case"), failed["error"], backend, failed.get("extra"))
