"""msign and Muon against the [CALC] oracles of algorithms.md §1.6 (fp64 values computed independently).

§1.6(a) uses the 4×3 matrix G below; §1.6(b) the seeded cases (torch.manual_seed recipes as printed). Where the
reference prints a number without a precision, it is held to half a unit of its last printed digit plus the
rounding of the computation (fp32 weights: an ulp of the entry), said at each use.
"""
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


def test_input_singular_values():
    """§1.6(a): G has σ = 3.697603, 2.300207, 1.018224 and ‖G‖_F = √20 (fp64 SVD; ±5e-7, half a unit)."""
    sv = torch.linalg.svdvals(G)
    assert torch.allclose(sv, torch.tensor([3.697603, 2.300207, 1.018224], dtype=torch.float64), rtol=0, atol=5e-7)
    assert abs(G.norm().item() - math.sqrt(20)) <= 1e-14


def test_ns5_bf16_deviation_is_the_printed_one():
    """§1.6(a): torch bf16 NS5 differs from fp64 by ≤ 5.3e-3. geo's bf16 msign runs torch.optim.Muon's addmm
    sequence, so its largest deviation from the printed fp64 NS5 is that number: within half a unit of its last
    digit ([5.25e-3, 5.35e-3]), widened by the 5e-7 to which the fp64 oracle is printed."""
    dev = (msign(G.float(), steps=5, coeffs="keller", dtype="bf16").double() - NS5_FP64).abs().max().item()
    assert 5.25e-3 - 5e-7 <= dev <= 5.35e-3 + 5e-7


def test_polar_express_singular_values():
    sv = torch.linalg.svdvals(msign(G, steps=5, coeffs="polar_express", dtype="fp64", eps=1e-6))
    assert torch.allclose(sv, torch.tensor([1.055172, 1.013976, 0.875593], dtype=torch.float64), atol=1e-5)


def test_polar_express_singular_values_with_the_reference_normalization():
    """§1.6(a): fp64 PE5 σ = 1.055172, 1.013976, 0.875593 with the reference's normalization X/(1.02·‖X‖_F + 1e-6)
    (§1.4), to the printed 6 decimals (±5e-7). geo's msign divides by max(safety·‖X‖_F, eps) instead (a clamp,
    not + 1e-6), which moves these σ by 3e-6 (hence the 1e-5 above); the reference's divisor is geo's with
    safety = 1.02 + 1e-6/‖G‖_F, which isolates the polynomial iteration."""
    safety = 1.02 + 1e-6 / G.norm().item()
    sv = torch.linalg.svdvals(msign(G, steps=5, coeffs="polar_express", dtype="fp64", safety=safety))
    assert torch.allclose(sv, torch.tensor([1.055172, 1.013976, 0.875593], dtype=torch.float64), rtol=0, atol=5e-7)


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


def test_muon_one_step_fp64_row():
    """§1.6(a): torch.optim.Muon(lr=0.1, wd=0), W₀ = 0, one step: the fp64 row 0 is [−0.033230, −0.072114, −0.003512].
    geo's muon with fp64 Newton–Schulz, to the printed 6 decimals (±5e-7; the fp32 weight adds < 1e-8)."""
    w = torch.zeros(4, 3, requires_grad=True)
    opt = geo.compile("muon")([w], lr=0.1, weight_decay=0.0, ns_dtype="fp64")
    w.grad = G.float().clone()
    opt.step()
    assert torch.allclose(w.detach()[0].double(), torch.tensor([-0.033230, -0.072114, -0.003512], dtype=torch.float64),
                          rtol=0, atol=5e-7 + 1e-8)


# ---- §1.6(b) seeded cases ------------------------------------------------------------------------------------------
SEEDED_ROW0 = [[1.55325, -0.30845, -2.16940], [1.54807, -0.31191, -2.14919]]   # after step 1, step 2
ROW_TOL = 5e-6 + 2.4e-7   # half a unit of the 5th decimal + an fp32 ulp of |w| ≈ 2 (2⁻²²)


def _seeded():
    torch.manual_seed(0)
    W = torch.randn(4, 3)
    G1 = torch.randn(4, 3)
    G2 = torch.randn(4, 3)
    return W, [G1, G2]


def _geo_muon_steps(W, grads, **kwargs) -> list[torch.Tensor]:
    w = W.clone().requires_grad_()
    opt = geo.compile("muon")([w], **kwargs)
    out = []
    for g in grads:
        w.grad = g.clone()
        opt.step()
        out.append(w.detach().clone())
    return out


def _ns5_fp64(x: torch.Tensor) -> torch.Tensor:
    """fp64 NS5 with Keller's coefficients, rows ≤ cols orientation, X/clamp(‖X‖_F, 1e-7) (§1.1–1.2)."""
    X = x.double()
    tall = X.shape[0] > X.shape[1]
    X = X.T if tall else X
    X = X / X.norm().clamp(min=1e-7)
    for _ in range(5):
        A = X @ X.T
        X = 3.4445 * X + (-4.7750 * A + 2.0315 * A @ A) @ X
    return X.T if tall else X


def _fp64_muon_steps(W, grads, lr, wd, mu, nesterov, adjust_lr="original") -> list[torch.Tensor]:
    """torch.optim.Muon's step (§1.2) in fp64 throughout, written out here: the "fp64-NS reference"."""
    m, n = W.shape
    scale = math.sqrt(max(1, m / n)) if adjust_lr == "original" else 0.2 * math.sqrt(max(m, n))
    w, buf, out = W.double(), torch.zeros(m, n, dtype=torch.float64), []
    for g in grads:
        g = g.double()
        buf = torch.lerp(buf, g, 1 - mu)
        u = torch.lerp(g, buf, mu) if nesterov else buf
        w = w * (1 - lr * wd) - lr * scale * _ns5_fp64(u)
        out.append(w)
    return out


SEEDED_SETTINGS = dict(lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True)


def test_muon_seeded_two_steps():
    """§1.6(b): manual_seed(0); W, G1, G2 = randn(4, 3) ×3; Muon(lr=0.02, wd=0.1, momentum=0.95, nesterov=True)
    (bf16 NS, the default): row 0 after step 1 = [1.55325, −0.30845, −2.16940], after step 2 = [1.54807, −0.31191,
    −2.14919]. geo's muon (defaults: Keller coefficients, 5 steps, bf16, "original" scale), ±ROW_TOL."""
    W, grads = _seeded()
    steps = _geo_muon_steps(W, grads, **SEEDED_SETTINGS)
    for w, row in zip(steps, SEEDED_ROW0):
        assert torch.allclose(w[0], torch.tensor(row), rtol=0, atol=ROW_TOL)


def test_muon_seeded_fp64_reference_gap():
    """§1.6(b): the fp64-NS reference differs from the bf16 result by ≤ 4.6e-4 (seeded 4×3, both steps); wide case
    (fp64 ref diff 2.9e-5). The reference is written out here from §1.2; geo's fp64 Newton–Schulz path must match it
    to 1e-6 (fp32 weights: a few ulps of |w| ≤ 2.2), and geo's bf16 gap must be the printed one: within half a unit of
    its last digit, widened by an fp32 ulp of the entries (2.4e-7 at |w| ≈ 2, 6e-8 at |w| ≈ 0.66)."""
    W, grads = _seeded()
    ref = _fp64_muon_steps(W, grads, lr=0.02, wd=0.1, mu=0.95, nesterov=True)
    bf16 = _geo_muon_steps(W, grads, **SEEDED_SETTINGS)
    fp64 = _geo_muon_steps(W, grads, **SEEDED_SETTINGS, ns_dtype="fp64")
    for a, b in zip(fp64, ref):
        assert (a.double() - b).abs().max() <= 1e-6
    gap = max((a.double() - b).abs().max().item() for a, b in zip(bf16, ref))
    assert gap <= 4.6e-4 + 5e-6 + 2.4e-7
    assert abs(gap - 4.6e-4) <= 5e-6 + 2.4e-7

    torch.manual_seed(1)
    Ww, Gw = torch.randn(3, 5), torch.randn(3, 5)
    wide = dict(lr=0.01, weight_decay=0.0, momentum=0.9, nesterov=False, adjust_lr="match_rms_adamw")
    ref = _fp64_muon_steps(Ww, [Gw], lr=0.01, wd=0.0, mu=0.9, nesterov=False, adjust_lr="match_rms_adamw")[0]
    assert (_geo_muon_steps(Ww, [Gw], **wide, ns_dtype="fp64")[0].double() - ref).abs().max() <= 1e-6
    gap = (_geo_muon_steps(Ww, [Gw], **wide)[0].double() - ref).abs().max().item()
    assert abs(gap - 2.9e-5) <= 5e-7 + 6e-8


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


@pytest.mark.parametrize("shape", [(5, 7), (7, 5), (64, 48), (3, 6, 4), (3, 4, 6)])
def test_bf16_newton_schulz_is_torch_optim_muons_bit_for_bit(shape):
    """geo's Newton–Schulz writes its products into reused buffers (no fresh mapping per iteration on the CPU);
    the arithmetic must stay torch.optim.Muon's, bit for bit, wide and tall (a tall matrix's first X is a
    transposed view), one matrix or a stack of them."""
    from torch.optim._muon import _zeropower_via_newtonschulz
    torch.manual_seed(0)
    g = torch.randn(shape)
    ours = msign(g, steps=5, coeffs="keller", dtype="bf16")
    theirs = torch.stack([_zeropower_via_newtonschulz(m, (3.4445, -4.7750, 2.0315), 5, 1e-7)
                          for m in g.reshape(-1, *shape[-2:])]).reshape(shape)
    assert torch.equal(ours, theirs)
