"""Every stdlib spec passes every fuzz property (a small budget here; `geo fuzz stdlib/*.geo` runs the default)."""
from __future__ import annotations

import os

import pytest

from geo.dsl.loader import stdlib_names
from geo.fuzz.spec import fuzz_spec

EXAMPLES = int(os.environ.get("GEO_FUZZ_EXAMPLES", "8"))


@pytest.mark.parametrize("spec", stdlib_names())
def test_stdlib_spec_passes_every_property(spec):
    out = fuzz_spec(spec, examples=EXAMPLES, seed=0)
    assert out.ok, "\n\n".join(f.render() for f in out.failures)
    assert {c[1] for c in out.checks} >= {"agree", "finite", "nonfinite", "checkpoint", "groups", "deterministic"}
    assert all(n > 0 for _, prop, n, _ in out.checks if prop not in ("laws", "groups", "compose")), out.checks
