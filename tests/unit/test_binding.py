"""compiler/binding.py: the inverse role tables agree with `infer_role`, and the selector's rank."""
from __future__ import annotations

import pytest

from geo.compiler.binding import RANK_ROLES, ROLE_EXAMPLES, ROLES, infer_role, selector_rank
from geo.dsl.ast import SelectorTerm
from geo.dsl.source import builtin_span

SHAPES = {0: (), 1: (6,), 2: (6, 5), 3: (2, 6, 5), 4: (6, 3, 2, 2)}


def test_role_examples_cover_every_role():
    assert set(ROLE_EXAMPLES) == set(ROLES)
    assert {r for roles in RANK_ROLES.values() for r in roles} == set(ROLES)
    assert set(RANK_ROLES) == set(SHAPES)


@pytest.mark.parametrize("rank", sorted(RANK_ROLES))
def test_infer_role_agrees_with_role_examples(rank):
    shape = SHAPES[rank]
    for role in RANK_ROLES[rank]:  # each example name gets its role at every rank listed for that role
        assert infer_role(ROLE_EXAMPLES[role], shape) == role
    for role, name in ROLE_EXAMPLES.items():  # and no name gets a role its rank does not list
        assert infer_role(name, shape) in RANK_ROLES[rank], (name, shape)


def _terms(*words: str) -> tuple[SelectorTerm, ...]:
    span = builtin_span()
    return tuple(SelectorTerm(span, w.removeprefix("not "), None, w.startswith("not ")) for w in words)


@pytest.mark.parametrize("words,rank", [
    ((), None), (("tensor",), None), (("hidden", "matrix"), 2), (("not matrix",), None), (("conv",), 4),
    (("vector", "bias"), 1), (("matrix", "vector"), None), (("stack", "hidden"), 3)])
def test_selector_rank(words, rank):
    assert selector_rank(_terms(*words)) == rank
