"""msign and Muon against the [CALC] oracles of algorithms.md §1.6 (fp64 values computed independently)."""
from __future__ import annotations

import math

import pytest
import torch

import geo
from geo.compiler.ops import registry

G = torch.tensor([[1, 2, 0], [0, 1, -1], [3, 0, 1], [1, 1, 1]], dtype=torch.float64)
NS5_FP64 = torch.tensor([[.287780, .624528, .030416], [.108462, .242825, -.529522],
                         [.989016, -.047630, .156506], [.179318, .381703, .559938]], dtype=torch.float64)
EXACT = torch.tensor([[.187644, .793499, -.042616], [.140124, .347996, -.725211],
                      [.971029, -.225357, .079482], [.047520, .445503, .682595]], dtype=torch.float64)
msign = registry.get("msign").reference


def test_ns5_keller_fp64_and_fp32():
    assert torch.allclose(msign(G, steps=5, coeffs="keller", dtype="fp64"), NS5_FP64, atol=1e-6)
    out32 = msign(G.float(), steps=5, coeffs="keller", dtype="fp32").double()
    assert torch.allclose(out32, NS5_FP64, atol=1e-6)
    sv = torch.linalg.svdvals(msign(G, steps=5, dtype="fp64"))
    assert torch.allclose(sv, torch.tensor([1.127479, 0.739372, 0.709449], dtype=torch.float64), atol=1e-6)


def test_ns5_bf16_within_bf16_rounding():
    out = msign(G.float(), steps=5, coeffs="keller", dtype="bf16").double()
    assert (out - NS5_FP64).abs().max() <= 1e-2


def test_polar_express_singular_values():
    sv = torch.linalg.svdvals(msign(G, steps=5, coeffs="polar_express", dtype="fp64", eps=1e-6))
    assert torch.allclose(sv, torch.tensor([1.055172, 1.013976, 0.875593], dtype=torch.float64), atol=1e-5)


def test_exact_msign_by_svd():
    assert torch.allclose(msign(G, method="svd"), EXACT, atol=1e-6)
    assert torch.equal(msign(torch.zeros(3, 5), method="svd"), torch.zeros(3, 5))
    assert torch.equal(msign(torch.zeros(3, 5)), torch.zeros(3, 5))


def test_muon_one_step_from_zero_weights():
    """torch.optim.Muon(lr=0.1, wd=0), W₀ = 0, one step: row 0 = [−0.033153, −0.072620, −0.003834] (bf16)."""
    w = torch.zeros(4, 3, requires_grad=True)
    opt = geo.compile("muon")([w], lr=0.1, weight_decay=0.0)
    w.grad = G.float().clone()
    opt.step()
    assert torch.allclose(w.detach()[0], torch.tensor([-0.033153, -0.072620, -0.003834]), atol=1e-5)
    # With fp32 Newton–Schulz it matches the fp64 oracle −0.1·sqrt(4/3)·NS5(G).
    w = torch.zeros(4, 3, requires_grad=True)
    opt = geo.compile("muon")([w], lr=0.1, weight_decay=0.0, ns_dtype="fp32")
    w.grad = G.float().clone()
    opt.step()
    expected = -0.1 * math.sqrt(4 / 3) * NS5_FP64  # momentum scales U by 1 − μ²; NS is scale-invariant
    assert torch.allclose(w.detach().double(), expected, atol=1e-6)


@pytest.mark.parametrize("ns_dtype,atol", [("bf16", 1e-5), ("fp32", 5e-5)])
def test_muon_wide_match_rms_adamw(ns_dtype, atol):
    """§1.6(b) wide case: Muon(lr=0.01, wd=0, momentum=0.9, nesterov=False, match_rms_adamw)."""
    torch.manual_seed(1)
    W, Gw = torch.randn(3, 5), torch.randn(3, 5)
    w = W.clone().requires_grad_()
    opt = geo.compile("muon")([w], lr=0.01, weight_decay=0.0, momentum=0.9, nesterov=False,
                              adjust_lr="match_rms_adamw", ns_dtype=ns_dtype)
    w.grad = Gw.clone()
    opt.step()
    expected = torch.tensor([0.66154, 0.26703, 0.06210, 0.62464, -0.45114])
    assert torch.allclose(w.detach()[0], expected, atol=atol)


def test_muon_zero_grad_only_decays():
    w = torch.ones(2, 2, requires_grad=True)
    opt = geo.compile("muon")([w], lr=0.1, weight_decay=0.1)
    w.grad = torch.zeros(2, 2)
    opt.step()
    assert torch.allclose(w.detach(), torch.full((2, 2), 0.99))
