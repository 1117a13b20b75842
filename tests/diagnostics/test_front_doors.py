"""Every front door reaches the same verdict on a spec: `geo check`, `geo.compile`, `geo explain` and
`geo compile --emit STAGE` for every stage (issue 14: `--emit` once refused, with a spurious GEO0203, a spec the
others accepted, because it specialized rules its own way; now all go through compiler/pipeline.py).

A verdict is "ok" or the sorted diagnostic codes. `--emit ast` parses only, so it agrees on syntax errors and
is ok otherwise; `geo explain` binds a model's parameters, so on a spec that checks it may add binding errors
(GEO04xx) and nothing else.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import geo
from geo.compiler.pipeline import STAGES, emit, front
from geo.dsl.diagnostics import GeoError
from geo.dsl.loader import read_file, source_for, stdlib_names
from geo.dsl.source import SourceFile
from geo.runtime import explain as ex

HERE = Path(__file__).resolve().parent
CASES = sorted(HERE.glob("*.geo")) + sorted(p / "main.geo" for p in HERE.iterdir() if (p / "main.geo").is_file())
PARSE_CODES = ("GEO0001", "GEO0002", "GEO0003", "GEO0004", "GEO0005")


def verdict(run) -> str:
    try:
        run()
    except GeoError as err:
        return " ".join(sorted({d.code for d in err.diagnostics}))
    return "ok"


def verdicts(source: SourceFile) -> dict[str, str]:
    out = {"check": verdict(lambda: front(source)), "compile": verdict(lambda: geo.compile(source))}
    out |= {f"emit {stage}": verdict(lambda stage=stage: emit(source, stage)) for stage in STAGES}
    out["explain"] = verdict(lambda: ex.explain(geo.compile(source), ex.GPT2_SMALL_LAYER))
    return out


def assert_agree(v: dict[str, str]) -> None:
    check = v["check"]
    parse_error = check != "ok" and all(code in PARSE_CODES for code in check.split())
    assert v["emit ast"] == (check if parse_error else "ok"), v
    for door in ["compile"] + [f"emit {s}" for s in STAGES if s != "ast"]:
        assert v[door] == check, (door, v)
    if check == "ok":
        assert v["explain"] == "ok" or all(c.startswith("GEO04") for c in v["explain"].split()), v
    else:
        assert v["explain"] == check, v


@pytest.mark.parametrize("name", stdlib_names())
def test_stdlib_specs(name):
    v = verdicts(source_for(name))
    assert v["check"] == "ok"
    assert_agree(v)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.relative_to(HERE).as_posix())
def test_diagnostics_cases(case):
    v = verdicts(read_file(str(case)))
    assert v["check"] != "ok"
    assert_agree(v)


def test_a_rule_made_of_a_matrix_step_prints_as_the_matrix_rule_it_is():
    """The case of the issue: `optimizer x = s` with `step s(matrix W; …)` is a matrix rule for every door."""
    text = ("step s(matrix W; lr = 0.1):\n    let o = msign(grad)\n    W = W - lr * o\n\n"
            "optimizer x = s\n")
    source = SourceFile("x.geo", text)
    v = verdicts(source)
    assert_agree(v)
    assert v["check"] == "ok" and v["emit ir"] == "ok" and v["emit triton"] == "ok", v
    assert "matrix[m, n]" in emit(source, "ir")
