"""The compiler pipeline, top to bottom. Every stage has a printer (`geo compile --emit STAGE`).

    text ─load/parse→ ast.Module ─check→ Checked ─elaborate→ ir.Program ─PASSES→ ir.Program ─lower→ backend step
"""
from __future__ import annotations

from typing import Any, Callable

from ..dsl.loader import Loaded, load
from ..dsl.source import SourceFile
from .elaborate import elaborate
from .ir import Program
from .passes.canonicalize import canonicalize, contract
from .passes.cse import cse_dce
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
               active: tuple[int, ...] | None = None, *, optimize: bool = True, check_ir: bool = True) -> Program:
    program = elaborate(checked, rule, statics, rank, active)
    if check_ir:
        verify(program, "elaborate")
    if optimize:
        for name, run in PASSES:
            program = run(program)
            if check_ir:
                verify(program, f"pass '{name}'")
    return program
