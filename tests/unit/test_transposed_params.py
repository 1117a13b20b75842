"""A parameter whose storage is transposed (`W.T` of a contiguous tensor) against the same values stored
contiguously, on every stdlib spec (issue 16 reported differences up to 3.7e-6).

Expected, and bounded: every elementwise operation gives the same bits whatever the layout, and so do most
stdlib specs, bit for bit. Those that differ (muon_sphere, spectral_sphere, spectral_ball, stiefel_muon, fismo,
hypersphere) feed matrices derived from W itself into matmuls or reductions (power iteration, Newton–Schulz
retraction and projections, the dual solvers; fismo's momentum, a state made like W, into msign; hypersphere's
row norms of W): elementwise results keep W's transposed layout, and a BLAS matmul or a reduction over a
transposed operand sums in another order, so the results differ by rounding (fismo and hypersphere: one ulp,
1.2e-7, after 5 steps). Measured (24×16, 16×24 and 48×32 matrices, 3 seeds, 10
steps): at most 5.9e-6 on weights of magnitude up to 0.8 in fp32, where Newton–Schulz runs in fp32 and the
spectral ball's solver stops at a tolerance. In fp64 with fp64 Newton–Schulz the differences are below 3e-14:
rounding order, not a difference in what is computed.
"""
from __future__ import annotations

import pytest
import torch

import geo
from geo.dsl.loader import stdlib_names

MATRIX_ITERATIVE = {"muon_sphere", "spectral_sphere", "spectral_ball", "stiefel_muon", "fismo", "hypersphere"}


def _run(name: str, dtype: torch.dtype, steps: int = 5, **kw):
    cls = geo.compile(name)
    g = torch.Generator().manual_seed(0)
    W = torch.randn(24, 16, generator=g, dtype=dtype)
    a = W.clone().requires_grad_()
    b = W.T.contiguous().T.requires_grad_()  # the same values, transposed storage
    assert not b.is_contiguous() and torch.equal(a, b)
    oa, ob = cls([("h.0.w", a)], **kw), cls([("h.0.w", b)], **kw)
    for _ in range(steps):
        grad = torch.randn(24, 16, generator=g, dtype=dtype)
        a.grad, b.grad = grad.clone(), grad.clone()
        oa.step()
        ob.step()
    assert not b.is_contiguous()  # the step wrote into the parameter's own storage
    return a.detach(), b.detach()


@pytest.mark.parametrize("name", stdlib_names())
def test_a_transposed_parameter(name):
    a, b = _run(name, torch.float32)
    if name not in MATRIX_ITERATIVE:
        assert torch.equal(a, b)
    else:
        scale = max(1.0, float(a.abs().max()))
        assert float((a - b).abs().max()) <= 1e-5 * scale


@pytest.mark.parametrize("name, kw", [("spectral_ball", dict(ns_dtype="fp64")), ("stiefel_muon", dict(ns_dtype="fp64")),
                                      ("spectral_sphere", dict(msign_dtype="fp64")),
                                      ("muon_sphere", dict(msign_dtype="fp64"))])
def test_in_fp64_the_difference_is_rounding(name, kw):
    a, b = _run(name, torch.float64, **kw)
    assert float((a - b).abs().max()) <= 1e-12
