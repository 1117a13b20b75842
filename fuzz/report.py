"""Failures and their reports: what a fuzz run found, and how to reproduce it.

A `Failure` is a shrunk counterexample rendered for a person: the property, the subject (optimizer, rule and
statics), every input as its recipe and a summary, expected and got, and two reproductions: the `.geo`
declarations involved as written, and a self-contained Python script that rebuilds each input with
`make_tensor` and prints the failing comparison (recipes rather than pickled tensors, so it can be pasted
into an issue). `Outcome` collects the checks and failures of one run.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compiler.ir import geo_literal
from ..dsl.diagnostics import GeoError
from .cases import Case, Mismatch, Subject
from .tensors import Recipe


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


def exception_text(err: BaseException) -> str:
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
        "from geo.fuzz.tensors import make_tensor",
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


def spec_failure(subject: Subject, prop: str, case: Case | None, err: BaseException, backend: str,
                  extra: dict[str, Any] | None = None) -> Failure:
    rule = subject.info.rules[case.target.rule] if case is not None else None
    where = f"optimizer `{subject.name}`" + (f", rule {rule.index} `{rule.text}`" if rule is not None else "")
    if case is not None and rule is not None:
        statics = rule.statics()
        statics.update(case.statics)
        if statics:
            where += " (static: " + ", ".join(f"{k}={geo_literal(v)}" for k, v in statics.items()) + ")"
    if isinstance(err, Mismatch):
        title, expected, got, detail = err.title, err.expected, err.got, err.detail
    else:
        title = "crashed: " + (f"{type(err).__name__}" if not isinstance(err, GeoError) else "a diagnostic at run time")
        expected, got, detail = "no exception", exception_text(err), ""
    return Failure(subject.label, prop, where, title, case.lines() if case is not None else [], expected, got, detail,
                   subject.geo_snippet(), python_snippet(subject, case, prop, backend, extra) if case is not None else "")


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
