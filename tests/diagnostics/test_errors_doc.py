"""docs/errors.md is tested like rustc's error index: in each entry, the first `geo` block produces exactly
the entry's code (and no other), and the second block, the fix, checks clean."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from geo.compiler.pipeline import front
from geo.dsl.diagnostics import GeoError
from geo.dsl.source import SourceFile

DOC = Path(__file__).resolve().parent.parent.parent / "docs" / "errors.md"


def entries() -> dict[str, list[str]]:
    out = {}
    for section in re.split(r"^## ", DOC.read_text(), flags=re.M)[1:]:
        code, _, body = section.partition("\n")
        out[code.strip()] = re.findall(r"^```geo\n(.*?)^```", body, flags=re.M | re.S)
    return out


ENTRIES = entries()
WITH_EXAMPLES = sorted(code for code, blocks in ENTRIES.items() if blocks)


def codes_of(text: str, code: str) -> list[str]:
    try:
        front(SourceFile(f"<{code} example>", text))
    except GeoError as err:
        return [d.code for d in err.diagnostics]
    return []


@pytest.mark.parametrize("code", WITH_EXAMPLES)
def test_example_and_fix(code):
    blocks = ENTRIES[code]
    assert len(blocks) == 2, f"{code}: an entry has an erroneous example and its fix"
    wrong, fixed = blocks
    assert set(codes_of(wrong, code)) == {code}
    assert codes_of(fixed, code) == []


def test_entries_are_in_order_and_unique():
    codes = list(ENTRIES)
    assert codes == sorted(set(codes))
    assert all(re.fullmatch(r"GEO\d{4}", c) for c in codes)
