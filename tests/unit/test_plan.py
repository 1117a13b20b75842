"""The kernel plan (compiler/plan.py) on shapes that differ as symbols and agree on a real parameter.

Found by the robustness campaign (a mutated stdlib/mkor.geo, input 7880 of seed 0): in a square W's program,
states of shape [m, m] and [n, n] may be combined elementwise, and within one level a [m, m] kernel then fed a
[n, n] one that fed it back — the plan raised an internal error ("the fused kernels depend on each other in a
cycle") for every square matrix. The plan now splits such kernels at each change of shape (their stage).
"""
from __future__ import annotations

import torch

import geo
from geo.compiler.pipeline import emit, front, specialize
from geo.compiler.plan import Kernel, plan
from geo.dsl.source import SourceFile

SPEC = """optimizer sq(lr = 0.1):
    for matrix W:
        state L = eye(W @ W.T)
        state R = eye(W.T @ W)
        let a = L * 2 + R
        let b = R * 3 + a
        let c = L - b
        L = c
        R = b
        W = W - lr * grad
"""


def test_kernels_that_feed_each_other_through_two_symbolic_shapes_are_ordered():
    _, checked = front(SourceFile("sq.geo", SPEC))
    rule = checked.select("sq.geo", None).rules[0]
    p = plan(specialize(checked, rule, rule.statics(), 2, (0,)))
    seen: set[int] = set()
    for phase in p.phases:  # every value a phase reads was made by an earlier phase (or is an input)
        made_here = {n.id for n in phase.nodes}
        reads = phase.inputs if isinstance(phase, Kernel) else phase.node.args
        produced = {n.id for ph in p.phases for n in ph.nodes}
        assert all(a.id in seen or a.id not in produced or a.id in made_here for a in reads)
        seen |= made_here
    assert "kernel" in emit(SourceFile("sq.geo", SPEC), "plan")


def test_the_step_agrees_with_the_reference_on_a_square_matrix():
    results = []
    for backend in ("torch", "reference"):
        W = torch.randn(3, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
        opt = geo.compile(SPEC, backend=backend)([("w", W)])
        for k in range(2):
            W.grad = torch.randn(3, 3, generator=torch.Generator().manual_seed(k + 1))
            opt.step()
        results.append((W.detach(), opt.state[W]["L"], opt.state[W]["R"]))
    for got, want in zip(*results):
        assert torch.equal(got, want)
