"""Golden files of every optimization pass: the program before and after each pass of `PASSES`, on a spec that
gives each of them work (tests/golden/passes/showcase.geo). `pytest --update-goldens` rewrites them."""
from __future__ import annotations

from pathlib import Path

import pytest

from geo.compiler.elaborate import elaborate
from geo.compiler.ir import print_program
from geo.compiler.pipeline import PASSES, front
from geo.compiler.verify import verify
from geo.dsl.source import SourceFile

HERE = Path(__file__).resolve().parent / "passes"


def stages():
    source = SourceFile("showcase.geo", (HERE / "showcase.geo").read_text())
    _, checked = front(source)
    rule = checked.optimizers["showcase"].rules[0]
    program = elaborate(checked, rule, {"beta": 0.9}, 2, None)
    out = []
    for name, run in PASSES:
        after = verify(run(program), name)
        out.append((name, program, after))
        program = after
    return out


@pytest.mark.parametrize("index", range(len(PASSES)), ids=[name for name, _ in PASSES])
def test_pass(index, golden):
    name, before, after = stages()[index]
    text_before, text_after = print_program(before), print_program(after)
    # cse-dce re-interns into a fresh graph; interning already shares equal nodes as they are built, and the
    # printer shows only what the outputs reach, so its printed output is the same by construction.
    assert text_before != text_after or name == "cse-dce", f"the showcase gives pass `{name}` nothing to do"
    golden(HERE / f"{name}.txt", f"# before {name}\n{text_before}\n\n# after {name}\n{text_after}\n")
