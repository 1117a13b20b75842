"""Golden files of every printed stage of every stdlib spec: tests/golden/<spec>.<stage>.

The printers are the interface between stages (a stage's output is what the next one reads), so their text
is locked here. The text is exactly what `geo compile SPEC --emit STAGE` prints. After an intended change,
`pytest --update-goldens` rewrites the files; review the diff like code.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from geo.cli import EMITS, main
from geo.dsl.loader import stdlib_names

HERE = Path(__file__).resolve().parent
SPECS = stdlib_names()


def emit(spec: str, stage: str, capsys) -> str:
    capsys.readouterr()
    assert main(["compile", spec, "--emit", stage]) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert err == ""
    return out


@pytest.mark.parametrize("stage", EMITS)
@pytest.mark.parametrize("spec", SPECS)
def test_emit(spec: str, stage: str, golden, capsys):
    golden(HERE / f"{spec}.{stage}", emit(spec, stage, capsys))


@pytest.mark.parametrize("stage", EMITS)
def test_emit_is_stable_text(stage: str, capsys):
    """No memory addresses, no absolute paths, and the same text when printed twice."""
    for spec in SPECS:
        text = emit(spec, stage, capsys)
        assert text == emit(spec, stage, capsys)
        assert not re.search(r"0x[0-9a-f]{6,}|object at|/work/|/home/|/tmp/|site-packages", text), spec
        assert text.strip()


def test_every_golden_file_belongs_to_a_spec():
    """A golden file of a spec that no longer exists is stale: remove it."""
    known = {f"{spec}.{stage}" for spec in SPECS for stage in EMITS}
    stale = sorted(p.name for p in HERE.iterdir() if p.suffix.lstrip(".") in EMITS and p.name not in known)
    assert not stale, f"stale golden files: {stale}"
