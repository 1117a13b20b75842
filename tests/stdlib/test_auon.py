"""AuON and Hybrid-AuON against the [CALC] oracles of algorithms.md §3.3.

G is the 4×3 matrix of §1.6(a); at step 1 the Nesterov momentum is U = (1 − μ²)·G = 0.0975·G, so with
W₀ = 0 and lr = 1 the new weight is −update.
"""
from __future__ import annotations

import math

import torch

import geo

G = torch.tensor([[1, 2, 0], [0, 1, -1], [3, 0, 1], [1, 1, 1]], dtype=torch.float64)


def _update(name: str, **kwargs) -> torch.Tensor:
    w = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    spec = "hybrid_auon" if name.startswith("hybrid") else "auon"
    opt = geo.compile(spec, name=name)([w], lr=1.0, **kwargs)
    w.grad = G.clone()
    opt.step()
    return -w.detach()


def _cosh_r(x: torch.Tensor, gamma: float) -> float:
    """r = sqrt(mean(cosh(γ·x/‖x‖_F)²)), computed independently of the spec."""
    X = x / (x.norm() + 1e-7)
    return math.sqrt(torch.cosh(gamma * X).pow(2).mean().item())


def test_code_form():
    U = 0.0975 * G
    assert abs(_cosh_r(U, 1.5) - 1.108415) < 1e-6
    upd = _update("auon")
    assert torch.allclose(upd[2], torch.tensor([0.263890, 0, 0.087963], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(upd, U / (_cosh_r(U, 1.5) + 1e-8), atol=1e-12)


def test_paper_form():
    U = 0.0975 * G
    assert abs(_cosh_r(U, 1.0) - 1.044479) < 1e-6
    upd = _update("auon_paper")
    assert torch.allclose(upd[2], torch.tensor([0.642253, 0, 0.214084], dtype=torch.float64), atol=1e-6)


def test_hybrid_one_newton_schulz_step():
    upd = _update("hybrid_auon", ns_steps=1)
    assert torch.allclose(upd[0], torch.tensor([0.130742, 0.815282, -0.111173], dtype=torch.float64), atol=1e-6)
    X = 0.0975 * G
    X = X / X.norm()
    A = X @ X.T
    O = 3.4445 * X + (-4.7750 * A + 2.0315 * A @ A) @ X  # one Newton–Schulz step on the wide orientation
    assert abs(_cosh_r(O, 1.5) - 1.103620) < 1e-6


# ---- §3.3 the range of r ---------------------------------------------------------------------------------------------
GAMMA = 1.5
R_BOUNDS = {12: (1.0952, 1.1738), 100: (1.0113, 1.0224), 4096: (1.0003, 1.0006)}   # §3.3, γ = 1.5
SHAPES = {12: (4, 3), 100: (10, 10), 4096: (64, 64)}
HALF_4DP = 5e-5                                                                      # half a unit of the 4th decimal


def _bounds(n: int, gamma: float = GAMMA) -> tuple[float, float]:
    """§3.3 closed form: r ∈ [cosh(γ/√N), sqrt(1 + sinh²(γ)/N)] when Σ X_i² = 1."""
    return math.cosh(gamma / math.sqrt(n)), math.sqrt(1 + math.sinh(gamma) ** 2 / n)


def _auon_step_update(grad: torch.Tensor, name: str = "auon") -> torch.Tensor:
    """The first-step update of geo's auon (W₀ = 0, lr = 1, default momentum 0.95): U/(r + 1e-8) for the code form,
    with U = (1 − μ²)·grad = 0.0975·grad."""
    w = torch.zeros_like(grad, requires_grad=True)
    opt = geo.compile("auon", name=name)([w], lr=1.0)
    w.grad = grad.clone()
    opt.step()
    return -w.detach()


def _r_of_auon(grad: torch.Tensor) -> float:
    """r as geo's code-form auon step realises it: r = ‖U‖_F / ‖update‖_F − 1e-8."""
    return (0.0975 * grad).norm().item() / _auon_step_update(grad).norm().item() - 1e-8


def test_r_bounds_closed_form():
    """§3.3: γ = 1.5, N = 12 → [1.0952, 1.1738]; N = 100 → [1.0113, 1.0224]; N = 4096 → [1.0003, 1.0006]: the
    closed form of the bounds, to the printed 4 decimals (±5e-5)."""
    for n, (lo, hi) in R_BOUNDS.items():
        got_lo, got_hi = _bounds(n)
        assert abs(got_lo - lo) <= HALF_4DP and abs(got_hi - hi) <= HALF_4DP, (n, got_lo, got_hi)


def test_r_bounds_are_attained_by_the_auon_step():
    """§3.3: mean cosh²(γX_i) is maximal with all mass on one entry and minimal when it is spread evenly. geo's auon
    step realises both ends for N = 12, 100, 4096 (shapes 4×3, 10×10, 64×64): a one-hot gradient gives the upper
    bound, a ±1 gradient (any signs) the lower one, to 1e-8 of the closed form (the gradients are scaled by 1e3 so
    the 1e-7 in X = U/(‖U‖_F + 1e-7) moves r by < 1e-9) and so to the printed bounds (±5e-5); Gaussian gradients fall
    in between."""
    gen = torch.Generator().manual_seed(0)
    for n, shape in SHAPES.items():
        lo, hi = _bounds(n)
        one_hot = torch.zeros(shape, dtype=torch.float64)
        one_hot[1, 2] = 1e3
        signs = torch.randint(0, 2, shape, generator=gen).to(torch.float64) * 2 - 1
        r_hi, r_lo = _r_of_auon(one_hot), _r_of_auon(1e3 * signs)
        assert abs(r_hi - hi) <= 1e-8 and abs(r_lo - lo) <= 1e-8, (n, r_lo, r_hi)
        assert abs(r_hi - R_BOUNDS[n][1]) <= HALF_4DP and abs(r_lo - R_BOUNDS[n][0]) <= HALF_4DP
        r = _r_of_auon(torch.randn(shape, dtype=torch.float64, generator=gen))
        assert lo < r < hi


def test_r_of_a_512x512_gaussian_is_one():
    """§3.3: for a 512×512 Gaussian r = 1.0000043, so code-AuON ≈ plain Nesterov SGD and paper-AuON ≈ Frobenius-
    normalized momentum SGD. Held to the printed 7 decimals (±5e-8): with Σ X_i² = 1, r = 1 + γ²/(2N) + O(γ⁴/N²), and
    the sample only enters the O(1e-10) term, so any seed gives the printed digits. The code-form update is U/r; the
    paper form's (γ = 1) has ‖update‖_F = 1/r inside the bounds' reciprocals for γ = 1."""
    g = torch.randn(512, 512, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r = _r_of_auon(g)
    assert abs(r - 1.0000043) <= 5e-8
    n = g.numel()
    lo, hi = _bounds(n)
    assert lo < r < hi
    paper = _auon_step_update(g, "auon_paper").norm().item()
    lo1, hi1 = _bounds(n, 1.0)
    assert 1 / (hi1 + 1e-8) - 1e-12 <= paper <= 1 / (lo1 + 1e-8) + 1e-12
