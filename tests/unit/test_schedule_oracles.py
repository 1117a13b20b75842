"""Newton–Schulz coefficient schedules against the [CALC] oracles of algorithms.md §1.3 (Keller's quintic) and
§1.4 (Polar Express, the tuned 6-step set, SSO's 8-step list).

Two kinds of oracle, checked accordingly:
- about the scalar polynomial p(σ) = aσ + bσ³ + cσ⁵ and its compositions: computed here with numpy, from the
  coefficients as the reference prints them (typed in below, not read from geo), on dense grids or in closed form;
  then geo's msign (Newton–Schulz, fp64) on diagonal matrices with those singular values must give the same numbers.
  A batch of 2×2 matrices diag(s, √(1 − s²)) has Frobenius norm 1, so its normalized singular values are exactly s
  and √(1 − s²), and entry (0, 0) of msign is the composite map at s (NS acts on each singular value independently,
  §0). Normalized singular values are ≤ 1, so points above 1 (a fixed point, a critical point) are checked on the
  polynomial only;
- about geo's implementation on random matrices (the Gaussian 256×128 and 1024×1024 cases of §1.3).

Tolerances: half a unit of the last printed digit (the reference states no other precision for these numbers),
plus what the computation needs, said at each use. fp64 grids are exact to ~1e-11 here, far below that.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geo.compiler.ops import registry
from geo.compiler.ops.matrix import SCHEDULES

msign = registry.get("msign").reference
F64 = torch.float64

# ---- the coefficients as printed in algorithms.md ----------------------------------------------------------------
KELLER = [(3.4445, -4.7750, 2.0315)]                                                     # §1.3
POLAR_EXPRESS = [                                                                        # §1.4, canonical list
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
]
PE_SAFETY = 1.02                                                                         # §1.4: X/(‖X‖_F·(1+2e-2) + 1e-6)
TUNED6 = [(a / 1024, b / 1024, c / 1024) for a, b, c in (                                # §1.4, each divided by 1024
    (3955, -8306, 5008), (3735, -6681, 3463), (3799, -6499, 3211),
    (4019, -6385, 2906), (2677, -3029, 1162), (2172, -1833, 682))]
SSO8 = [(8.2051, -22.9019, 16.4607), (4.0664, -2.8612, 0.5184), (3.9096, -2.8234, 0.5250),   # §1.4
        (3.2856, -2.4153, 0.4853), (2.2779, -1.6198, 0.3985), (1.8726, -1.2307, 0.3585),
        (1.8564, -1.2132, 0.3568), (1.8750, -1.2500, 0.3750)]

HALF_4DP, HALF_6DP = 5e-5, 5e-7           # half a unit of the 4th / 6th decimal
GEO_VS_POLY = 1e-10                       # fp64 matrix NS vs the scalar map: rounding ~1e-16 times a slope ≤ ~1e3


pytestmark = pytest.mark.usefixtures("single_blas_thread")


# ---- the scalar polynomial ---------------------------------------------------------------------------------------
def p(s, t):
    a, b, c = t
    return a * s + b * s**3 + c * s**5


def dp(s, t):
    a, b, c = t
    return a + 3 * b * s**2 + 5 * c * s**4


def composite(s, tuples, steps, safety=1.0):
    """p_k ∘ … ∘ p_1 (σ / safety), step k using tuple min(k, len − 1) as §1.4 says."""
    s = np.asarray(s, dtype=np.float64) / safety
    for k in range(steps):
        s = p(s, tuples[min(k, len(tuples) - 1)])
    return s


def grid(lo, n=200_001):
    return np.geomspace(lo, 1.0, n)


def poly_range(lo, tuples, steps, safety=1.0):
    s = grid(lo)
    y = composite(s, tuples, steps, safety)
    return y.min(), y.max(), s[y.argmin()], s[y.argmax()]


# ---- geo on diagonal matrices ------------------------------------------------------------------------------------
def geo_diag(s, steps, coeffs, safety=None):
    """Entry (0, 0) of geo's msign (fp64 Newton–Schulz) of diag(s, √(1 − s²)), batched over s."""
    s = torch.as_tensor(np.asarray(s, dtype=np.float64))
    d = torch.zeros(len(s), 2, 2, dtype=F64)
    d[:, 0, 0], d[:, 1, 1] = s, (1 - s * s).clamp(min=0).sqrt()
    out = msign(d, steps=steps, coeffs=coeffs, dtype="fp64", safety=safety)
    assert out[:, 0, 1].abs().max() == 0 and out[:, 1, 0].abs().max() == 0  # stays diagonal
    return out[:, 0, 0].numpy()


def check_geo_agrees(lo, tuples, steps, coeffs, safety_poly=1.0, safety_geo=None, extra=()):
    s = np.concatenate([np.geomspace(lo, 1.0, 4001), np.asarray(extra, dtype=np.float64)])
    np.testing.assert_allclose(geo_diag(s, steps, coeffs, safety_geo), composite(s, tuples, steps, safety_poly),
                               rtol=0, atol=GEO_VS_POLY)


# ---- the schedules geo ships are the reference's ------------------------------------------------------------------
def test_geo_schedules_hold_the_reference_coefficients_and_bands():
    """SCHEDULES (compiler/ops/matrix.py) hold exactly the tuples printed in §1.3–1.4, the 1.02 Polar Express safety
    factor, and as `band` the printed composite ranges for σ ∈ [1e-2, 1] (§1.3: [0.6818, 1.1344]; §1.4: [0.8589,
    1.1411], [0.9956, 0.9993], and 1.0000 for sso8, whose band geo writes as 1 ± 1e-4)."""
    for name, tuples in (("keller", KELLER), ("polar_express", POLAR_EXPRESS), ("tuned6", TUNED6), ("sso8", SSO8)):
        assert [tuple(t) for t in SCHEDULES[name].tuples] == tuples, name
    assert SCHEDULES["polar_express"].safety == PE_SAFETY
    assert all(SCHEDULES[n].safety == 1.0 for n in ("keller", "tuned6", "sso8"))
    assert SCHEDULES["keller"].band == (0.6818, 1.1344) and SCHEDULES["keller"].band_steps == 5
    assert SCHEDULES["polar_express"].band == (0.8589, 1.1411) and SCHEDULES["polar_express"].band_steps == 5
    assert SCHEDULES["tuned6"].band == (0.9956, 0.9993) and SCHEDULES["tuned6"].band_steps == 6
    lo, hi = SCHEDULES["sso8"].band
    assert lo <= 1.0000 <= hi and SCHEDULES["sso8"].band_steps == 8
    assert [SCHEDULES["sso8"].coefficients(k) for k in (7, 8, 20)] == [SSO8[7]] * 3  # step i uses tuple min(i, 7)


# ---- §1.3 Keller's quintic -----------------------------------------------------------------------------------------
def test_keller_amplifies_tiny_singular_values_by_a_to_the_fifth():
    """§1.3: p'(0) = a, so 5 steps amplify tiny σ by a⁵ ≈ 484.9 (±0.05, half a unit). geo's 5-step msign of a
    normalized σ = 1e-7 gives 484.9·σ: the cubic terms change the ratio by ~|b/a|·(a⁴σ)² ≈ 3e-10 relative."""
    a = KELLER[0][0]
    assert dp(0.0, KELLER[0]) == a
    assert abs(a**5 - 484.9) <= 0.05
    s = 1e-7
    assert abs(geo_diag([s], 5, "keller")[0] / s - 484.9) <= 0.05 + 1e-6


def test_keller_fixed_points_are_repelling():
    """§1.3: positive fixed points 0.868026 and 1.263729, both repelling (|p'| > 1). Roots of p(σ) = σ, i.e. of
    c·u² + b·u + (a − 1) = 0 with u = σ², in closed form (±5e-7, half a unit of the 6th decimal). geo's one-step
    msign leaves the normalized singular value 0.868026… in place (1.263729 > 1 cannot be a normalized value)."""
    a, b, c = KELLER[0]
    disc = math.sqrt(b * b - 4 * c * (a - 1))
    fixed = sorted(math.sqrt((-b + sign * disc) / (2 * c)) for sign in (-1, 1))
    for got, expected in zip(fixed, (0.868026, 1.263729)):
        assert abs(got - expected) <= HALF_6DP
        assert abs(p(got, KELLER[0]) - got) <= 1e-14
        assert abs(dp(got, KELLER[0])) > 1
    assert abs(geo_diag([fixed[0]], 1, "keller")[0] - fixed[0]) <= GEO_VS_POLY


def test_keller_critical_points_and_values():
    """§1.3: critical points 0.554529 (local max, p = 1.202369) and 1.050136 (local min, p = 0.681831). Roots of
    p'(σ) = a + 3b·u + 5c·u² = 0, u = σ², in closed form (±5e-7); the kind from the sign of p''. geo's one-step
    msign of the normalized value 0.554529… gives 1.202369."""
    a, b, c = KELLER[0]
    disc = math.sqrt(9 * b * b - 20 * a * c)
    crit = sorted(math.sqrt((-3 * b + sign * disc) / (10 * c)) for sign in (-1, 1))
    d2p = lambda s: 6 * b * s + 20 * c * s**3  # noqa: E731
    (s_max, s_min) = crit
    assert abs(s_max - 0.554529) <= HALF_6DP and d2p(s_max) < 0
    assert abs(s_min - 1.050136) <= HALF_6DP and d2p(s_min) > 0
    assert abs(p(s_max, KELLER[0]) - 1.202369) <= HALF_6DP
    assert abs(p(s_min, KELLER[0]) - 0.681831) <= HALF_6DP
    assert abs(geo_diag([s_max], 1, "keller")[0] - 1.202369) <= HALF_6DP + GEO_VS_POLY


def test_keller_invariant_band_and_attracting_four_cycle():
    """§1.3: the band [0.6818, 1.1344] is invariant (p maps it into itself, ±5e-5; its ends are reached: p's local
    min 0.681831 inside it, and p(0.6818) ≈ 1.1344), and it holds an attracting 4-cycle ≈ 0.682 → 1.134 → 0.753 →
    1.047 (±5e-4, half a unit of the 3rd decimal). The cycle is found by iterating p from 0.5; attracting means
    |(p⁴)'| = Π|p'| < 1 along it. geo's 4-step msign of the cycle point 0.682… returns it."""
    band = np.linspace(0.6818, 1.1344, 200_001)
    image = p(band, KELLER[0])
    assert image.min() >= 0.6818 - HALF_4DP and image.max() <= 1.1344 + HALF_4DP
    assert abs(image.min() - 0.6818) <= HALF_4DP and abs(image.max() - 1.1344) <= HALF_4DP
    x = 0.5
    for _ in range(2000):
        x = p(x, KELLER[0])
    cycle = []
    for _ in range(8):
        cycle.append(x)
        x = p(x, KELLER[0])
    assert abs(cycle[4] - cycle[0]) <= 1e-12                                     # period 4 …
    assert min(abs(u - v) for i, u in enumerate(cycle[:4]) for v in cycle[i + 1:4]) > 0.05  # … not 2 or 1
    start = int(np.argmin(cycle[:4]))
    ordered = [cycle[(start + k) % 4] for k in range(4)]
    for got, expected in zip(ordered, (0.682, 1.134, 0.753, 1.047)):
        assert abs(got - expected) <= 5e-4
    assert abs(math.prod(dp(v, KELLER[0]) for v in ordered)) < 1
    assert abs(geo_diag([ordered[0]], 4, "keller")[0] - ordered[0]) <= GEO_VS_POLY


def test_keller_five_step_ranges():
    """§1.3: the 5-step composite for normalized σ ∈ [1e-2, 1] ranges over [0.6818, 1.1344], for σ ∈ [1e-3, 1] over
    [0.4705, 1.2024], and p⁵(1) = 0.6964 (all ±5e-5, half a unit). The range is the min/max over a 200 001-point
    log grid (converged: 1e5 and 4e6 points agree to 1e-11). geo's msign agrees on the grid, at its extremes and at 1."""
    for lo, expected in ((1e-2, (0.6818, 1.1344)), (1e-3, (0.4705, 1.2024))):
        ymin, ymax, at_min, at_max = poly_range(lo, KELLER, 5)
        assert abs(ymin - expected[0]) <= HALF_4DP and abs(ymax - expected[1]) <= HALF_4DP, (lo, ymin, ymax)
        check_geo_agrees(lo, KELLER, 5, "keller", extra=(at_min, at_max))
    assert abs(composite(1.0, KELLER, 5) - 0.6964) <= HALF_4DP
    assert abs(geo_diag([1.0], 5, "keller")[0] - 0.6964) <= HALF_4DP + GEO_VS_POLY


def test_keller_gaussian_256x128():
    """§1.3: a Gaussian 256×128 has σ/‖G‖_F ∈ [0.026, 0.153]; geo's bf16 msign (the torch path) gives output σ in
    [0.6809, 1.1365], the fp64 iteration [0.6818, 1.1344]. The reference gives no seed; this is seed 0.
    - input range: ±5e-4 (half a unit of the 3rd decimal); seed 0 needs no more;
    - fp64: every σ/‖G‖_F ≥ 1e-2, so the outputs lie in the composite range of the 5-step test (±5e-5). Its ends are
      reached only where a sample σ falls near a preimage of an extremum: allow 5e-4 for that (seeds 0–3: ≤ 2.6e-4);
    - bf16: rounding moves the extremes off the fp64 band; the reference's own sample shows 9e-4 and 2.1e-3, a
      sample-specific noise, so another sample's bf16 extremes are held to the printed ones within 2.1e-3 + 5e-5."""
    g = torch.randn(256, 128, generator=torch.Generator().manual_seed(0))
    rel = torch.linalg.svdvals(g.double()) / g.double().norm()
    assert abs(rel.min().item() - 0.026) <= 5e-4 and abs(rel.max().item() - 0.153) <= 5e-4
    assert rel.min().item() >= 1e-2
    sv64 = torch.linalg.svdvals(msign(g.double(), steps=5, coeffs="keller", dtype="fp64"))
    assert sv64.min().item() >= 0.6818 - HALF_4DP and sv64.max().item() <= 1.1344 + HALF_4DP
    assert abs(sv64.min().item() - 0.6818) <= 5e-4 + HALF_4DP and abs(sv64.max().item() - 1.1344) <= 5e-4 + HALF_4DP
    sv16 = torch.linalg.svdvals(msign(g, steps=5, coeffs="keller", dtype="bf16").double())
    tol = 2.1e-3 + HALF_4DP
    assert abs(sv16.min().item() - 0.6809) <= tol and abs(sv16.max().item() - 1.1365) <= tol
    assert (sv16.min().item(), sv16.max().item()) != (sv64.min().item(), sv64.max().item())  # bf16 really rounded


def test_keller_square_gaussian_smallest_singular_value_stays_tiny():
    """§1.3: a square 1024×1024 Gaussian has σ_min ≈ 0, so its 5-step output σ_min is ≈ 0.007: tiny σ need more than
    5 steps. The printed 0.007 belongs to the reference's (unstated) sample — √n·σ_min of a square Gaussian varies
    by O(1) between samples — so what is checked is the property: along G's smallest singular pair geo's msign
    (fp32) gives p⁵(σ_min/‖G‖_F) = a⁵·σ_min/‖G‖_F to 1e-3 relative (the cubic terms are ~1e-4 there) and ≪ 1.
    The pair comes from inverse iteration on GᵀG (LU of G), cheaper than an SVD of a 1024² matrix."""
    g = torch.randn(1024, 1024, generator=torch.Generator().manual_seed(0))
    G = g.double()
    lu = torch.linalg.lu_factor(G)
    v = torch.randn(1024, 1, dtype=F64, generator=torch.Generator().manual_seed(1))
    for _ in range(30):
        v = torch.linalg.lu_solve(lu.LU, lu.pivots, torch.linalg.lu_solve(lu.LU, lu.pivots, v, adjoint=True))
        v = v / v.norm()
    sigma_min = (G @ v).norm().item() / G.norm().item()
    out = (msign(g, steps=5, coeffs="keller", dtype="fp32").double() @ v).norm().item()
    a = KELLER[0][0]
    assert sigma_min < 1e-3
    assert abs(out - a**5 * sigma_min) <= 1e-3 * a**5 * sigma_min
    assert out < 0.05


# ---- §1.4 per-step schedules ---------------------------------------------------------------------------------------
def test_polar_express_ranges():
    """§1.4: the Polar Express composite for σ ∈ [1e-2, 1] ranges over [0.8589, 1.1411] (with or without the 1.02
    factor: the same to 4 decimals), and with the 1.02 factor on [1e-3, 1] over [0.8466, 1.1411] (±5e-5). geo's
    msign (its 1.02 safety by default; `safety=1` without) agrees with the polynomial."""
    for lo, safety, expected in ((1e-2, 1.0, (0.8589, 1.1411)), (1e-2, PE_SAFETY, (0.8589, 1.1411)),
                                 (1e-3, PE_SAFETY, (0.8466, 1.1411))):
        ymin, ymax, at_min, at_max = poly_range(lo, POLAR_EXPRESS, 5, safety)
        assert abs(ymin - expected[0]) <= HALF_4DP and abs(ymax - expected[1]) <= HALF_4DP, (lo, safety, ymin, ymax)
        check_geo_agrees(lo, POLAR_EXPRESS, 5, "polar_express", safety_poly=safety,
                         safety_geo=None if safety == PE_SAFETY else 1.0, extra=(at_min, at_max))


def test_polar_express_slope_at_zero():
    """§1.4: with the 1.02 factor the composite's slope at 0 is ≈ 970 (±0.5, half a unit): Π a_k / 1.02. geo's
    5-step msign of a normalized σ = 1e-7 gives 970·σ (cubic corrections ~1e-8 relative)."""
    slope = math.prod(t[0] for t in POLAR_EXPRESS) / PE_SAFETY
    assert abs(slope - 970) <= 0.5
    s = 1e-7
    assert abs(geo_diag([s], 5, "polar_express")[0] / s - 970) <= 0.5 + 1e-3


def test_tuned6_ranges_never_exceed_one():
    """§1.4: the tuned 6-step set maps σ ∈ [1e-2, 1] into [0.9956, 0.9993] and σ ∈ [1e-3, 1] into [0.8663, 0.9993]
    (±5e-5), never exceeding 1. geo's msign agrees with the polynomial."""
    for lo, expected in ((1e-2, (0.9956, 0.9993)), (1e-3, (0.8663, 0.9993))):
        ymin, ymax, at_min, at_max = poly_range(lo, TUNED6, 6)
        assert abs(ymin - expected[0]) <= HALF_4DP and abs(ymax - expected[1]) <= HALF_4DP, (lo, ymin, ymax)
        assert ymax < 1
        check_geo_agrees(lo, TUNED6, 6, "tuned6", extra=(at_min, at_max))
        assert geo_diag(grid(lo, 4001), 6, "tuned6").max() < 1


def test_sso8_is_classical_at_the_end_and_lands_on_one():
    """§1.4: SSO's last tuple is (15/8, −10/8, 3/8), the classical quintic with p(1) = 1, p'(1) = 0 (exactly); the
    8-step output is 1.0000 for σ ∈ [1e-3, 1] (±5e-5). geo's 8-step msign agrees with the polynomial, and steps
    past the 8th reuse the last tuple (step i uses tuple min(i, 7)): 10 steps still give 1.0000."""
    assert SSO8[-1] == (15 / 8, -10 / 8, 3 / 8)
    assert p(1.0, SSO8[-1]) == 1.0 and dp(1.0, SSO8[-1]) == 0.0
    ymin, ymax, at_min, at_max = poly_range(1e-3, SSO8, 8)
    assert abs(ymin - 1.0) <= HALF_4DP and abs(ymax - 1.0) <= HALF_4DP
    check_geo_agrees(1e-3, SSO8, 8, "sso8", extra=(at_min, at_max))
    out10 = geo_diag(grid(1e-3, 4001), 10, "sso8")
    assert np.abs(out10 - 1.0).max() <= HALF_4DP
