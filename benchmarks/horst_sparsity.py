"""HORST vs AdamW on underdetermined sparse regression: loss and sparsity of the solution reached.

HORST here is geo's reconstruction (stdlib/horst.geo): the paper has published only its abstract, so the
algorithm is rebuilt from it, the authors' HAM method and hypentropy mirror descent.

    python benchmarks/horst_sparsity.py

Generated data (no downloads, seeded): y = x·W*ᵀ with a teacher W* of shape 4×128 whose entries are nonzero
with probability 0.05, observed on only 48 samples. The system is underdetermined: every optimizer below
fits it exactly, and which of the many exact solutions it reaches is its implicit bias (AdamW's ℓ∞ geometry:
dense; a hyperbolic/ℓ1 geometry: sparser). Each run starts from the same small random init and takes 400
full-batch steps at lr = 1e-2 with no weight decay.

Sparsity is measured two ways: the effective density (‖w‖₁/‖w‖₂)²/N (1 for a flat dense vector, k/N for a
flat k-sparse one), and the fraction of entries below 1 % of the largest.
"""
from __future__ import annotations

import torch

import geo

RUNS = [("adamw", "adamw", {}), ("horst", "horst", {}), ("horst", "horst_r2", {}), ("horst", "ham", {}),
        ("horst", "horst", {"l1": 1.0}), ("horst", "horst_r3", {"lr": 1e-3})]


def problem(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(48, 128, generator=g)
    truth = torch.randn(4, 128, generator=g) * (torch.rand(4, 128, generator=g) < 0.05)
    return x, x @ truth.T, truth


def effective_density(w: torch.Tensor) -> float:
    return ((w.abs().sum() / w.norm()) ** 2 / w.numel()).item()


def below_one_percent(w: torch.Tensor) -> float:
    return (w.abs() < 0.01 * w.abs().max()).float().mean().item()


def run(spec: str, name: str, steps: int = 400, **hypers) -> tuple[float, torch.Tensor]:
    x, y, _ = problem()
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 128) * 0.01)
    opt = geo.compile(spec, name=name)([w], **{"lr": 1e-2, "weight_decay": 0.0, **hypers})
    for _ in range(steps):
        opt.zero_grad()
        ((x @ w.T - y) ** 2).mean().backward()
        opt.step()
    with torch.no_grad():
        return ((x @ w.T - y) ** 2).mean().item(), w.detach()


def main() -> None:
    _, _, truth = problem()
    print(f"teacher: effective density {effective_density(truth):.3f}, "
          f"{(truth == 0).float().mean().item():.3f} of entries exactly 0")
    print(f"{'optimizer':24s} {'loss':>10s} {'eff. density':>13s} {'<1% of max':>11s} {'‖w−w*‖/‖w*‖':>12s}")
    for spec, name, hypers in RUNS:
        loss, w = run(spec, name, **hypers)
        label = name + "".join(f" {k}={v:g}" for k, v in hypers.items())
        err = ((w - truth).norm() / truth.norm()).item()
        print(f"{label:24s} {loss:10.2e} {effective_density(w):13.3f} {below_one_percent(w):11.3f} {err:12.3f}")


if __name__ == "__main__":
    main()
