"""Every law of every registered operator, as a hypothesis test (JAX's `testOpAgainstNumpy` habit: the
table drives the tests, so adding an operator with laws adds its tests here without editing this file).

A law is `Law(name, sample, check)`: `sample()` is a hypothesis strategy and `check(fn, example)` raises
AssertionError when the law fails, with `fn` the operator's torch reference.
"""
from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, given, settings

from geo.compiler.ops import registry

# Modest and derandomized by default (the file runs in well under a minute on two cores, the same way every
# time); for a deeper, random search: GEO_LAW_EXAMPLES=500 python -m pytest tests/properties/test_laws.py
MAX_EXAMPLES = int(os.environ.get("GEO_LAW_EXAMPLES", "30"))
DERANDOMIZE = "GEO_LAW_EXAMPLES" not in os.environ

CASES = [(opdef, law) for opdef in registry.all_ops() for law in opdef.laws]


def _case_id(opdef, law) -> str:
    """`op:law-name` in ASCII (pytest escapes other characters), so `-k` selects by op or by law."""
    return f"{opdef.name}:" + re.sub(r"[^A-Za-z0-9_.=()+-]+", "_", law.name).strip("_")


def _ids() -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for opdef, law in CASES:
        base = _case_id(opdef, law)
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return out


def test_every_law_has_a_sampler_and_a_check():
    assert CASES, "no operator declares a law"
    for opdef, law in CASES:
        assert callable(law.sample) and callable(law.check), f"{opdef.name}: {law.name}"


@pytest.mark.parametrize(("opdef", "law"), CASES, ids=_ids())
def test_law(opdef, law):
    def fn(*args, **kwargs):
        return opdef.reference(*args, **kwargs)

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(law.sample())
    def holds(example):
        law.check(fn, example)

    holds()
