"""A small model and a driver that runs a geo optimizer and an independent oracle side by side.

The oracle is a plain-torch transcription of the source's update rule (the paper's equations or its released
code, written out again here, never through geo): `oracle(params, grads, state, t)` updates the parameters in
place. Both see the same model, data and initial weights, in float64, and the parameters are compared after
every step, so a wrong term shows at the step where it first matters.
"""
from __future__ import annotations

from typing import Callable

import torch

import geo

SHAPES = {"layer0.weight": (10, 6), "layer1.weight": (10, 10), "layer2.weight": (3, 10)}


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.Tanh(), torch.nn.Linear(10, 10), torch.nn.Tanh(),
                            torch.nn.Linear(10, 3)).double()
    return m


def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(32, 6, generator=g, dtype=torch.float64), torch.randn(32, 3, generator=g, dtype=torch.float64)


def matrices(m: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The weight matrices, named as `infer_role` calls them hidden (biases stay frozen)."""
    return [(f"layer{i}.weight", m[j].weight) for i, j in enumerate((0, 2, 4))]


def _grads(m, x, y, params):
    for p in m.parameters():
        p.grad = None
    loss = ((m(x) - y) ** 2).mean()
    loss.backward()
    return loss.item()


def compare(spec: str, name: str | None, oracle: Callable, steps: int = 25, rtol: float = 1e-9, atol: float = 1e-12,
            hypers: dict | None = None, params: Callable = matrices, backend: str = "torch") -> list[float]:
    """Runs `steps` steps of geo's optimizer and of the oracle from the same start; asserts the parameters agree
    after every step; returns geo's losses."""
    x, y = data()
    geo_model, ref_model = model(), model()
    Opt = geo.compile(spec, name=name)
    geo_params, ref_params = params(geo_model), params(ref_model)
    opt = Opt(geo_params, backend=backend, **(hypers or {}))
    state: dict = {}
    losses = []
    for t in range(1, steps + 1):
        losses.append(_grads(geo_model, x, y, geo_params))
        opt.step()
        _grads(ref_model, x, y, ref_params)
        with torch.no_grad():
            oracle([p for _, p in ref_params], [p.grad.clone() for _, p in ref_params], state, t)
        for (pname, a), (_, b) in zip(geo_params, ref_params):
            torch.testing.assert_close(a.detach(), b.detach(), rtol=rtol, atol=atol,
                                       msg=lambda m, pname=pname, t=t: f"{pname} after step {t}: {m}")
    return losses


def polar(x: torch.Tensor) -> torch.Tensor:
    """U Vᵀ by float64 SVD (the oracle's orthogonalization)."""
    u, _, vh = torch.linalg.svd(x, full_matrices=False)
    return u @ vh


def newton_schulz(g: torch.Tensor, steps: int, coeffs=(3.4445, -4.7750, 2.0315), eps: float = 1e-7) -> torch.Tensor:
    """Keller Jordan's quintic Newton–Schulz in g's dtype, written out (X/(‖X‖ + eps), wide orientation)."""
    a, b, c = coeffs
    x = g.mT if g.size(0) > g.size(1) else g
    x = x / (x.norm() + eps)
    for _ in range(steps):
        s = x @ x.mT
        x = a * x + (b * s + c * s @ s) @ x
    return x.mT if g.size(0) > g.size(1) else x
