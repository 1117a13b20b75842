"""Step orders: a spec's own steps composed two or three at a time in random orders (H ∘ A, A >> H).

Steps that check one by one must compose into an optimizer that checks, agrees with the reference and stays
finite. Steps may declare one hyperparameter with different defaults; the composition's header settles it
(the first step's default wins), as a user writing the composition would have to.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from ..compiler.spec import HyperInfo, REQUIRED
from ..compiler.ir import geo_literal
from ..compiler.pipeline import front
from ..dsl.diagnostics import GeoError
from ..dsl.source import SourceFile
from .cases import Subject, optimizer_class, targets
from .draw import Draw, RandomDraw
from .properties import PROPERTIES, fuzz_property
from .report import Failure


COMPOSITION = "geo_fuzz_composition"


def composable(subject: Subject) -> dict[str, dict[str, HyperInfo]]:
    """The steps a spec's own file defines, and its single-rule optimizers (usable as steps), with their
    hyperparameters."""
    out: dict[str, dict[str, HyperInfo]] = {}
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
        if info.span.source is source and len(info.rules) == 1 and info.rules[0].view is None \
                and info.across is None:  # (an optimizer with an `across` block is not a step)
            out[name] = dict(info.hypers)
    return out


def composition_header(chain: Sequence[str], hypers: dict[str, dict[str, HyperInfo]]) -> str | None:
    """The header that settles hyperparameters the chain's steps declare differently (the first default wins);
    None when one is static in one step and runtime in another (the checker rightly rejects that)."""
    seen: dict[str, HyperInfo] = {}
    header: dict[str, HyperInfo] = {}
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
        if h.default is REQUIRED:
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
