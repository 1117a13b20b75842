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
