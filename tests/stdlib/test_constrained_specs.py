"""The constrained stdlib specs train, and keep their constraint after every step.

spectral_sphere (SSO) and muon_sphere keep ‖W‖₂ = R = √(d_out/d_in) (measured right after the hard retraction,
see tests/unit/test_sso.py for SSO's 200-step version and the oracles); stiefel_muon keeps WᵀW = s²I (tall) /
WWᵀ = s²I (wide), s = √(d_out/d_in); spectral_ball keeps ‖W‖₂ ≤ R with the cap active. Small tanh MLPs with a
wide (8→6 … 6→3: 6×8, 3×6) and a tall (6→8: 8×6) layer; checkpoints round-trip the new state shapes.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch

import geo

SPECS = ("spectral_sphere", "muon_sphere", "stiefel_muon", "spectral_ball")
FAST = {"spectral_sphere": {"msign_dtype": "fp32"}, "muon_sphere": {"msign_dtype": "fp32"}}


pytestmark = pytest.mark.usefixtures("single_blas_thread")


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 6), torch.nn.Tanh(),
                               torch.nn.Linear(6, 3))


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 6, generator=g), torch.randn(64, 3, generator=g)


def _train(spec, steps, after_step=None, **kwargs):
    model = _model()
    mats = [p for p in model.parameters() if p.dim() == 2]
    opt = geo.compile(spec)(mats, **{**FAST.get(spec, {}), **kwargs})
    x, y = _data()
    losses = []
    for _ in range(steps):
        before = [p.detach().double().clone() for p in mats]
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if after_step is not None:
            for p, w in zip(mats, before):
                after_step(opt, p, w)
    return losses, model, opt


@pytest.mark.parametrize("spec", SPECS)
def test_trains_a_small_model(spec):
    losses, _, _ = _train(spec, 40)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.9 * losses[0], f"{spec}: {losses[0]:.4f} -> {losses[-1]:.4f}"


def _radius(w):
    return math.sqrt(w.shape[0] / w.shape[1])


@pytest.mark.parametrize("spec", ["spectral_sphere", "muon_sphere"])
def test_sphere_specs_keep_the_radius_after_the_retraction(spec):
    """‖R·W_t/(‖W_t v₀ᵀ‖ + eps)‖₂ = R within 1e-3, with v the power-iteration state after step t."""
    worst = []

    def check(opt, p, w):
        v0 = opt.state[p]["v"].double()[:1]
        w_ret = w * (_radius(w) / ((w @ v0.mT).norm() + 1e-7))
        worst.append(abs(float(torch.linalg.matrix_norm(w_ret, 2)) / _radius(w) - 1))
    _train(spec, 60, check)
    assert max(worst) <= 1e-3


def test_stiefel_muon_stays_on_the_scaled_stiefel_manifold():
    worst = []

    def check(opt, p, _):
        w = p.detach().double()
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        s2 = _radius(w) ** 2
        worst.append(float(torch.linalg.matrix_norm(gram - s2 * torch.eye(gram.shape[0], dtype=gram.dtype), 2)) / s2)
    _train("stiefel_muon", 60, check)
    assert max(worst) <= 1e-4, f"‖WᵀW − s²I‖₂/s² reached {max(worst):.2e}"  # measured ≈ 5e-7 (sso8, fp32)
    _train("stiefel_muon", 10, check, dual_method="alternating")
    assert max(worst) <= 1e-4


def test_spectral_ball_caps_the_spectral_norm():
    tops = []

    def check(opt, p, _):
        w = p.detach().double()
        tops.append(float(torch.linalg.matrix_norm(w, 2)) / _radius(w))
    _train("spectral_ball", 60, check)
    assert max(tops) <= 1 + 1e-3                                   # measured ≈ 1 + 2e-5 (Newton–Schulz hardcap)
    assert max(tops) >= 1 - 1e-3                                   # the cap is active: some layer sits on the sphere


def test_spectral_ball_dual_ascent_keeps_the_ball_and_trains():
    """direction = "dual_ascent" (constrained_direction, §4.2): 100 steps keep ‖W‖₂ ≤ R(1 + 1e-3) and lower the loss."""
    tops = []

    def check(opt, p, _):
        w = p.detach().double()
        tops.append(float(torch.linalg.matrix_norm(w, 2)) / _radius(w))
    losses, _, _ = _train("spectral_ball", 100, check, direction="dual_ascent")
    assert all(math.isfinite(v) for v in losses)
    assert max(tops) <= 1 + 1e-3                                   # measured ≈ 1 + 3e-5 (Newton–Schulz hardcap)
    assert max(tops) >= 1 - 1e-3                                   # the cap is active
    assert losses[-1] < 0.9 * losses[0], f"{losses[0]:.4f} -> {losses[-1]:.4f}"   # measured 1.348 -> 1.122
    heuristic, _, _ = _train("spectral_ball", 100)
    assert losses[-1] <= heuristic[-1] + 1e-3                      # no worse than the heuristic (1.1233 vs 1.1260)


def test_spectral_ball_dual_ascent_without_iterations_is_the_heuristic():
    """dual_steps = 0 stops dual ascent at its start, the heuristic η·msign(proj_T(−M)): the same trajectory up to
    Newton–Schulz rounding (the dual form runs msign on M scaled to RMS singular value 1)."""
    heuristic, model_h, _ = _train("spectral_ball", 20)
    zero, model_z, _ = _train("spectral_ball", 20, direction="dual_ascent", dual_steps=0)
    assert zero == pytest.approx(heuristic, rel=1e-6)               # measured 1e-7
    for a, b in zip(model_h.parameters(), model_z.parameters()):
        assert torch.allclose(a, b, atol=2e-5)                     # measured 1.7e-6


def test_spectral_sphere_checkpoint_round_trip():
    """The block state v (k×n with k = min(8, m, n)) and the 0-d prev_lambda survive state_dict()/load."""
    straight, _, opt_a = _train("spectral_sphere", 6)
    first, model, opt = _train("spectral_sphere", 3)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    resumed = _model()
    resumed.load_state_dict(saved_model)
    mats = [p for p in resumed.parameters() if p.dim() == 2]
    opt2 = geo.compile("spectral_sphere")(mats, **FAST["spectral_sphere"])
    opt2.load_state_dict(saved_opt)
    assert {tuple(s["v"].shape) for s in opt2.state.values()} == {(6, 8), (6, 6), (3, 6)}
    assert all(s["prev_lambda"].dim() == 0 for s in opt2.state.values())
    x, y = _data()
    losses = []
    for _ in range(3):
        opt2.zero_grad()
        loss = ((resumed(x) - y) ** 2).mean()
        loss.backward()
        opt2.step()
        losses.append(loss.item())
    assert first + losses == pytest.approx(straight, rel=1e-6)
