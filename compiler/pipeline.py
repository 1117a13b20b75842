"""The compiler pipeline, top to bottom. Every stage has a printer (`emit`, `geo compile --emit STAGE`).

    text ─load/parse→ ast.Module ─check→ Checked ─elaborate→ ir.Program ─PASSES→ ir.Program ─plan→ Plan ─lower→ backend step

Every front door goes through here: `geo check` (`front`), `geo.compile` and `geo explain` (`front`, then
`specialize` per bound parameter), `geo compile --emit` (`emit`), and the fuzzer. A rule is specialized for
the (rank, active steps) variants `RuleInfo.variants` lists, the same ones the checker elaborates, so a spec
that checks also prints.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from ..dsl import ast
from ..dsl.loader import Loaded, load
from ..dsl.parser import parse
from ..dsl.source import SourceFile
from .elaborate import elaborate
from .ir import Program, print_program
from .passes.canonicalize import canonicalize, contract
from .passes.cse import cse_dce
from .plan import plan
from .resolve import check
from .spec import Checked, RuleInfo
from .verify import verify

# The optimization passes, in order; each maps a valid Program to a valid Program.
PASSES: list[tuple[str, Callable[[Program], Program]]] = [
    ("canonicalize", canonicalize),
    ("contract", contract),
    ("cse-dce", cse_dce),
]


def front(source: SourceFile) -> tuple[Loaded, Checked]:
    loaded = load(source)
    return loaded, check(loaded)


def specialize(checked: Checked, rule: RuleInfo, statics: dict[str, Any], rank: int | None,
               active: tuple[int, ...] | None = None, *, firing: frozenset | None = None,
               dims: tuple[int, ...] | None = None, optimize: bool = True, check_ir: bool = True) -> Program:
    program = elaborate(checked, rule, statics, rank, active, firing, dims)
    if check_ir:
        verify(program, "elaborate")
    if optimize:
        for name, run in PASSES:
            program = run(program)
            if check_ir:
                verify(program, f"pass '{name}'")
    return program


# The printable stages, in pipeline order: "ir" is the elaborated program, "opt" the program after PASSES.
STAGES = ("ast", "ir", "opt", "plan", "torch", "triton")


class StaticOverrideError(ValueError):
    """A static value given to `emit` that the optimizer does not declare or does not take."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


def emit(source: SourceFile, stage: str, *, name: str | None = None, statics: Mapping[str, Any] | None = None,
         rank: int | None = None) -> str:
    """The text of one stage of the pipeline for one optimizer of `source` (`geo compile --emit STAGE`).

    `statics` override static hyperparameters (checked as the constructor checks them); `rank` specializes a
    rule that serves any rank. Every rule is printed for each of its variants, the ones `geo check` checked.
    Spec text that reaches the output (the rule as written, string values) is escaped (`RuleInfo.text`,
    `ir.geo_literal`): no spec can start a line of it."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; one of {', '.join(STAGES)}")
    if stage == "ast":
        return ast.dump(parse(source))
    _, checked = front(source)
    info = checked.select(source.name, name if name is not None else source.entry)
    overrides = _checked_overrides(info, dict(statics or {}))
    out = []
    if info.across is not None:
        program = specialize(checked, info.across, info.across.statics(overrides), 1, (0,), optimize=stage != "ir")
        out.append(_print(stage, program, f"# {info.name}[across] {program.rule_text}"))
    for rule in info.rules:
        for variant_rank, active in rule.variants():
            program = specialize(checked, rule, rule.statics(overrides),
                                 variant_rank if variant_rank is not None else rank, active, optimize=stage != "ir")
            out.append(_print(stage, program, f"# {info.name}[{rule.index}] {program.rule_text}"))
    return "\n\n".join(out)


def _checked_overrides(info, overrides: dict[str, Any]) -> dict[str, Any]:
    declared = {k: h for r in info.rules for k, h in r.hypers.items() if h.static}
    for key, value in overrides.items():
        if key not in declared:
            raise StaticOverrideError(key, f"`{info.name}` has no static hyperparameter `{key}` "
                                           f"(static ones: {', '.join(sorted(declared)) or 'none'})")
        try:
            overrides[key] = declared[key].check_static(info.name, value)
        except (TypeError, ValueError) as err:
            raise StaticOverrideError(key, str(err)) from None
    return overrides


def _print(stage: str, program: Program, header: str) -> str:
    if program.per_shape and stage in ("plan", "torch", "triton"):
        return (f"{header}\n# compiled per parameter shape (its static choices read rows/cols): the {stage} of one "
                "shape is `geo explain SPEC --param NAME=SHAPE`'s")
    if stage == "plan":
        return plan(program).show()
    if stage == "torch":
        from .backends.torch_path import TorchPathStep
        return TorchPathStep(program).show()
    if stage == "triton":
        from .backends.triton.codegen import emit_program
        return header + "\n" + emit_program(program, plan(program))
    return print_program(program)
