"""Sets, manifolds and spectral maps: behaviour the registry's laws (tests/properties) do not pin down — worked
examples with known answers, edge cases (zero inputs, rank deficiency, wide matrices), the diagnostics of the
type rules, and the Stiefel dual ascent. The laws of project/retract/tangent/spectral_clip/power_iter/… run
from the registry in tests/properties/test_laws.py.
"""
from __future__ import annotations

import math

import pytest
import torch

import geo
from geo.compiler.ops.manifold import SETS, project, retract, stiefel_direction, tangent
from geo.compiler.ops.matrix import msign_svd
from geo.compiler.ops.spectral import (power_iter, right_init, spectral_clip, spectral_hardcap, top_left, top_right,
                                       top_sv)
from geo.dsl.diagnostics import GeoError

F64 = torch.float64
G = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, -1.0], [3.0, 0.0, 1.0], [1.0, 1.0, 1.0]], dtype=F64)  # §1.6(a)


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny matrices: two BLAS threads only add contention on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def svd_map(w, fn):
    U, S, Vh = torch.linalg.svd(w, full_matrices=False)
    return (U * fn(S)) @ Vh


# ---- worked examples -------------------------------------------------------------------------------------
def test_entrywise_sets_worked_examples():
    x = torch.tensor([3.0, 4.0], dtype=F64)                        # ‖x‖₂ = 5
    assert torch.allclose(project.reference(x, 2.0, set="l2_ball"), torch.tensor([1.2, 1.6], dtype=F64))
    assert torch.equal(project.reference(x, 10.0, set="l2_ball"), x)
    assert torch.allclose(project.reference(x, 10.0, set="l2_sphere"), torch.tensor([6.0, 8.0], dtype=F64))
    assert torch.allclose(project.reference(torch.zeros(4, dtype=F64), 2.0, set="l2_sphere"), torch.ones(4, dtype=F64))
    assert torch.equal(project.reference(x, 3.5, set="linf_ball"), torch.tensor([3.0, 3.5], dtype=F64))
    # tangents: sphere removes the radial part; at the ℓ∞ corner +r only non-positive moves stay
    g = torch.tensor([1.0, 1.0], dtype=F64)
    assert torch.allclose(tangent.reference(g, x, set="l2_sphere"), g - (7 / 25) * x)
    corner = torch.tensor([2.0, 0.5], dtype=F64)
    assert torch.equal(tangent.reference(torch.tensor([1.0, 1.0], dtype=F64), corner, 2.0, set="linf_ball"),
                       torch.tensor([0.0, 1.0], dtype=F64))
    inside = torch.tensor([0.1, 0.2], dtype=F64)
    assert torch.equal(tangent.reference(g, inside, 1.0, set="l2_ball"), g)


def test_oblique_columns_and_zero_column():
    w = torch.tensor([[3.0, 0.0], [4.0, 0.0]], dtype=F64)
    p = project.reference(w, 2.0, set="oblique")
    assert torch.allclose(p, torch.tensor([[1.2, math.sqrt(2)], [1.6, math.sqrt(2)]], dtype=F64))
    t = tangent.reference(torch.ones(2, 2, dtype=F64), p, 2.0, set="oblique")
    assert torch.allclose((t * p).sum(0), torch.zeros(2, dtype=F64), atol=1e-15)


def test_spectral_projections_match_svd_formulas():
    assert torch.allclose(project.reference(G, 2.0, set="spectral_ball"), svd_map(G, lambda s: s.clamp(max=2.0)))
    assert torch.allclose(project.reference(G, 2.0, 1.5, set="spectral_band"), svd_map(G, lambda s: s.clamp(1.5, 2.0)))
    sphere = project.reference(G, 2.0, set="spectral_sphere")
    assert torch.allclose(torch.linalg.svdvals(sphere), torch.tensor([2.0, 2.0, 1.018224], dtype=F64), atol=1e-6)
    small = 0.1 * G                                                # σ₁ < r: the top singular value is raised
    assert torch.allclose(torch.linalg.svdvals(project.reference(small, 2.0, set="spectral_sphere")),
                          torch.tensor([2.0, 0.2300207, 0.1018224], dtype=F64), atol=1e-6)
    stiefel = project.reference(G, math.sqrt(4 / 3), set="stiefel")
    assert torch.allclose(stiefel.T @ stiefel, torch.eye(3, dtype=F64) * 4 / 3, atol=1e-12)
    assert torch.allclose(stiefel, math.sqrt(4 / 3) * msign_svd(G), atol=1e-12)  # the polar factor


def test_retractions_differ_from_projections_where_the_literature_says():
    r = 2.0
    radial = retract.reference(G, r, set="spectral_sphere")        # SSO: (r/σ₁)·W keeps the σ ratios
    assert torch.allclose(radial, G * (r / 3.697603), atol=1e-6)
    assert not torch.allclose(radial, project.reference(G, r, set="spectral_sphere"))
    zero = retract.reference(torch.zeros(3, 2, dtype=F64), r, set="spectral_sphere")
    assert float(torch.linalg.matrix_norm(zero, 2)) == pytest.approx(r)   # 0 cannot be scaled: projected instead
    ns = retract.reference(G, r, set="spectral_ball", dtype="fp64")
    assert torch.allclose(ns, project.reference(G, r, set="spectral_ball"), atol=1e-4)
    tall = retract.reference(G + 0.01, 1.0, set="stiefel", dtype="fp64")
    assert torch.allclose(tall.T @ tall, torch.eye(3, dtype=F64), atol=1e-4)


def test_clip_identity_with_exact_polar_factors_is_exact():
    """algorithms.md §4.2 [CALC]: the msign identities agree with the SVD to ≤ 6e-16 with exact msign."""
    for lo, hi in ((1.5, 3.0), (0.5, 2.0), (0.0, 1.0)):
        want = svd_map(G, lambda s: s.clamp(lo, hi))
        assert (spectral_clip.reference(G, lo, hi, method="polar") - want).abs().max() <= 1e-14
        assert (spectral_clip.reference(G.T, lo, hi, method="polar") - want.T).abs().max() <= 1e-14  # wide
    assert (spectral_hardcap.reference(G, 2.0, method="polar") - svd_map(G, lambda s: s.clamp(max=2.0))).abs().max() <= 1e-14
    # default Newton–Schulz path (sso8, fp32): close, not exact
    assert torch.allclose(spectral_hardcap.reference(G, 2.0), svd_map(G, lambda s: s.clamp(max=2.0)), atol=2e-3)
    # the identity cannot lift an exact null direction; the SVD method does
    rank1 = torch.outer(torch.tensor([1.0, 2.0], dtype=F64), torch.tensor([1.0, 0.0, 1.0], dtype=F64))
    assert torch.linalg.svdvals(spectral_clip.reference(rank1, 1.0, 2.0, method="polar"))[1] <= 1e-12
    assert torch.linalg.svdvals(spectral_clip.reference(rank1, 1.0, 2.0, method="svd"))[1] == pytest.approx(1.0)


def test_spectral_cone_tangents_at_a_capped_matrix():
    """At W with σ = (2, 2, 1.018) on the ball of radius 2, directions that grow the capped block are removed."""
    w = project.reference(G, 2.0, set="spectral_ball")
    U, S, Vh = torch.linalg.svd(w, full_matrices=False)
    outward = U[:, :2] @ Vh[:2]                                    # grows both capped singular values
    assert torch.allclose(tangent.reference(outward, w, 2.0, set="spectral_ball"), torch.zeros_like(w), atol=1e-12)
    inward = -outward
    assert torch.allclose(tangent.reference(inward, w, 2.0, set="spectral_ball"), inward, atol=1e-12)
    free = U[:, 2:] @ Vh[2:]                                       # the uncapped direction is free
    assert torch.allclose(tangent.reference(free, w, 2.0, set="spectral_ball"), free, atol=1e-12)
    # the band [1.018224…, 2]: the bottom singular value may only grow
    band = project.reference(G, 2.0, float(S[2]), set="spectral_band")
    assert torch.allclose(tangent.reference(-free, band, 2.0, float(S[2]), set="spectral_band"),
                          torch.zeros_like(w), atol=1e-12)


def test_stiefel_tangent_wide_and_tall():
    for w in (project.reference(G, 0.5, set="stiefel"), project.reference(G.T, 0.5, set="stiefel")):
        g = torch.ones_like(w)
        t = tangent.reference(g, w, 0.5, set="stiefel")
        sym = (w.T @ t + t.T @ w) if w.size(0) >= w.size(1) else (w @ t.T + t @ w.T)
        assert sym.abs().max() <= 1e-12
        assert torch.allclose(tangent.reference(t, w, 0.5, set="stiefel"), t, atol=1e-12)


# ---- steepest descent on the Stiefel manifold ----------------------------------------------------------
def violation(w, phi):
    return float(torch.linalg.matrix_norm(0.5 * (w.T @ phi + phi.T @ w)))


def test_stiefel_dual_ascent_and_alternating_heuristic():
    torch.manual_seed(1)
    w = project.reference(torch.randn(32, 8, dtype=F64), 1.0, set="stiefel")
    g = torch.randn(32, 8, dtype=F64)
    heuristic = stiefel_direction.reference(g, w, iters=1, msign_method="svd")
    assert torch.allclose(heuristic, msign_svd(tangent.reference(g, w, set="stiefel")), atol=1e-12)
    dual = stiefel_direction.reference(g, w, iters=10, msign_method="svd")
    assert violation(w, dual) < 0.1 * violation(w, heuristic)       # measured 0.2 → 0.007 for this seed
    assert float(torch.linalg.matrix_norm(dual, 2)) <= 1 + 1e-9
    alternating = stiefel_direction.reference(g, w, iters=30, method="alternating", msign_method="svd")
    assert violation(w, alternating) <= 1e-6
    # scaled manifold (radius s) and the wide orientation give the same direction up to transposition
    s = 2.0
    scaled = stiefel_direction.reference(g, s * w, s, iters=10, msign_method="svd")
    assert torch.allclose(scaled, dual, atol=1e-12)
    wide = stiefel_direction.reference(g.T, w.T, iters=10, msign_method="svd")
    assert torch.allclose(wide, dual.T, atol=1e-12)
    # Newton–Schulz msign (sso8, fp64) lands close to the exact iterate
    assert torch.allclose(stiefel_direction.reference(g, w, iters=10, dtype="fp64"), dual, atol=1e-3)


# ---- power iteration -------------------------------------------------------------------------------------
def test_power_iteration_zero_matrix_and_warm_start():
    z = torch.zeros(4, 3)
    for rank in (1, 3):
        v = power_iter.reference(z, right_init.reference(z, rank=rank))
        assert torch.isfinite(v).all() and float(v[0].norm()) == pytest.approx(1.0)
        assert float(top_sv.reference(z, v)) == 0.0 and not top_left.reference(z, v).any()
    # a single vector started at v₁ of W and warm-started on a slightly changed W tracks σ₁ in one step
    torch.manual_seed(0)
    w = torch.randn(8, 6, dtype=F64)
    v = right_init.reference(w, method="svd")
    w2 = w + 1e-3 * torch.randn(8, 6, dtype=F64)
    sigma = float(top_sv.reference(w2, power_iter.reference(w2, v, steps=1)))
    assert sigma == pytest.approx(float(torch.linalg.matrix_norm(w2, 2)), rel=1e-6)


def test_block_power_iteration_resolves_clustered_top_singular_values():
    """σ = (1, 0.99, 0.98, 0.5, …): one vector stalls (σ₂/σ₁ = 0.99), a block of 4 with Rayleigh–Ritz does not."""
    torch.manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(16, 16, dtype=F64))
    V, _ = torch.linalg.qr(torch.randn(16, 16, dtype=F64))
    s = torch.tensor([1.0, 0.99, 0.98] + [0.5] * 13, dtype=F64)
    w = (U * s) @ V.T
    v1 = power_iter.reference(w, right_init.reference(w), steps=5)
    v4 = power_iter.reference(w, right_init.reference(w, rank=4), steps=5)
    assert 1 - float(top_sv.reference(w, v4)) <= 1e-5               # measured 2.2e-6: error ∝ (σ₅/σ₁)^(4·steps)
    assert 1 - float(top_sv.reference(w, v1)) > 1e-2                # measured 1.7e-2
    assert abs(float(v4[0] @ V[:, 0])) >= 0.9999 and abs(float(v1[0] @ V[:, 0])) < 0.5
    theta = top_left.reference(w, v4) @ top_right.reference(v4)
    assert torch.allclose(theta.abs(), torch.outer(U[:, 0], V[:, 0]).abs(), atol=1e-2)
    # rank is capped by both sides of the matrix
    assert right_init.reference(torch.zeros(3, 8), rank=8).shape == (3, 8)


# ---- the type rules, through the checker -----------------------------------------------------------------
def _errors(body: str, binder: str = "matrix W") -> str:
    text = f"optimizer probe(lr = 0.1):\n    for {binder}:\n        {body}\n"
    with pytest.raises(GeoError) as err:
        geo.compile(text)
    return str(err.value)


def test_diagnostics_name_the_problem():
    assert "spectral_bal" in _errors('W = project(W, "spectral_bal", 1.0)') and "spectral_ball" in \
        _errors('W = project(W, "spectral_bal", 1.0)')
    assert "needs a matrix" in _errors('W = retract(W, "stiefel", 1.0)', binder="vector W")
    assert "GEO0204" in _errors("W = W * top_sv(W, sum(W))")
    assert "GEO0301" in _errors('W = retract(W, "stiefel", 1.0, steps = lr)')
    assert "GEO0206" in _errors('W = W - lr * stiefel_direction(grad, W, method = "newton")')
    # vectors are fine for the entrywise sets
    geo.compile('optimizer probe(lr = 0.1):\n    for vector b:\n        b = project(b - lr * grad, "l2_ball", 1.0)\n')


def test_every_set_is_documented_in_the_operators():
    for name in SETS:
        for opdef in (project, retract, tangent):
            assert f'"{name}"' in opdef.doc, (opdef.name, name)
