"""Fuzzing a spec (`geo fuzz FILE`): every property on every rule of its optimizers, the laws of the operators
its programs use, then its steps in random orders.

The laws are checked on the operators' torch references with each law's own hypothesis sampler, for the
operators that appear in the spec's programs as written or after the optimization passes (a rewrite may
introduce one the spec never names).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..compiler import binding as P
from ..compiler.ops import registry
from ..compiler.pipeline import specialize
from ..dsl.diagnostics import Diagnostic
from ..dsl.source import SourceFile
from ..compiler.binding import bind_rule
from .cases import Subject, Target, load_subjects, probe_shape, targets
from .orders import fuzz_step_orders
from .properties import ALL_PROPERTIES, LAWS, PROPERTIES, fuzz_property
from .report import Failure, Outcome, exception_text
from .tensors import summarize


DEFAULT_EXAMPLES = 50


def operators_used(subject: Subject, reach: dict[int, list[Target]] | None = None) -> list[str]:
    """The registry operators in the programs of a subject's rules (as written and after the passes)."""
    reach = reach if reach is not None else targets(subject.cls)
    used: set[str] = set()
    for rule in subject.info.rules:
        statics = rule.statics()
        for t in reach.get(rule.index, []):
            binding = bind_rule(subject.cls._geo.info, P.ParamInfo(t.name, probe_shape(t.rank, t.rows_multiple), t.role))
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
                    exception_text(error), geo=f"# `geo doc {name}` shows the law; the reference is {opdef.module}.{name}",
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
