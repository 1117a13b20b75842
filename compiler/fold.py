"""The limits of static evaluation (constant folding while a rule is elaborated).

Folding runs Python arithmetic on the spec's static values, so a few bytes of spec could ask for unbounded
work: `"a" * 1000000000` (a 1 GB string), `((1, 2) * 1000000000)[0]`, a string doubled in a `repeat`, `2^2^2^2^2^2`,
or a complex number (`(-1) ^ 0.5` is 1j in Python; geo's numbers are real). The elaborator asks these
functions before (sizes, powers) and after (complex results) it folds, and reports GEO0207 instead; unrolling
and inlining have their own bounds in elaborate.py.

    MAX_STATIC_SIZE   the characters of a static string or the items of a static tuple that folding builds
    FOLD_BUDGET       the characters, items and numbers that all the folding of one check (every default,
                      range and rule) or one specialization produces together
"""
from __future__ import annotations

import math
from typing import Any

MAX_STATIC_SIZE = 100_000
FOLD_BUDGET = 10_000_000


class FoldBudget:
    """What is left of FOLD_BUDGET for one check or one specialization."""

    def __init__(self, limit: int = FOLD_BUDGET):
        self.left = limit

    def spend(self, value: Any) -> bool:
        """Counts a folded value (a string or tuple by its length, anything else as one); False once the budget
        is spent."""
        self.left -= len(value) if isinstance(value, (str, tuple)) else 1
        return self.left >= 0


def sequence_size(op: str, raw: list[Any]) -> int | None:
    """The length of the string or tuple that `+` or `*` of these static values would build, computed without
    building it; None for any other operation."""
    if op == "mul" and len(raw) == 2:
        for seq, n in (raw, raw[::-1]):
            if isinstance(seq, (str, tuple)) and isinstance(n, int):
                return len(seq) * max(int(n), 0)
    if op == "add" and len(raw) == 2 and (all(isinstance(r, str) for r in raw) or all(isinstance(r, tuple) for r in raw)):
        return len(raw[0]) + len(raw[1])
    return None


def has_complex(value: Any) -> bool:
    """Whether a folded value is (or holds) a complex number."""
    return isinstance(value, complex) or isinstance(value, tuple) and any(has_complex(v) for v in value)


def too_large_power(raw: list[Any]) -> bool:
    """Whether base ^ exponent of static numbers has more than 1000 bits (checked before computing it)."""
    if len(raw) != 2 or not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in raw):
        return False
    base, exponent = raw
    return abs(base) > 1 and exponent > 0 and exponent * math.log2(abs(base)) > 1000
