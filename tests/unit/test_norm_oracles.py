"""Norms, LMOs and mirror maps against the [CALC] numbers of algorithms.md §2.3 and the table of §6.

Every expected value is computed here independently, with numpy (its own SVD, explicit formulas), and the
published numbers are checked against those computations before the operators are checked against them.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import geo
from geo.compiler.ops import registry

ref = {name: registry.get(name).reference for name in
       ("norm", "dual_norm", "lmo", "sharp", "scale_factor", "mirror_map", "mirror_inverse", "mirror_step",
        "bregman", "mirror_potential")}


def T(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64))


# ---- §2.3 hypentropy ---------------------------------------------------------------------------------------
X = np.array([0.5, -0.02, 0.0, 0.003])
D = np.array([1.0, -2.0, 0.5, -0.3])
ETA, BETA = 0.1, 0.1
X_PLUS = np.array([0.451427, 0.000131, -0.005002, 0.006003])          # algorithms.md §2.3 [CALC]
HAM = np.array([0.409365, -0.013406, 0.0, 0.003186])                   # α = 200, β = 1e-3, η = 1e-3


def _np_hypentropy_step(x, d, eta, beta):
    return beta * np.sinh(np.arcsinh(x / beta) - eta * d)


def test_published_hypentropy_step_is_the_asinh_sinh_form_and_the_closed_form():
    via_dual = _np_hypentropy_step(X, D, ETA, BETA)
    closed = X * np.cosh(ETA * D) - np.sqrt(X**2 + BETA**2) * np.sinh(ETA * D)
    np.testing.assert_allclose(via_dual, X_PLUS, atol=1e-6)
    np.testing.assert_allclose(closed, via_dual, atol=1e-15)


def test_mirror_step_hypentropy_reproduces_the_oracle():
    out = ref["mirror_step"](T(X), T(D), ETA, BETA, kind="hypentropy")
    np.testing.assert_allclose(out.numpy(), _np_hypentropy_step(X, D, ETA, BETA), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out.numpy(), X_PLUS, atol=1e-6)
    dual = ref["mirror_map"](T(X), BETA, kind="hypentropy") - ETA * T(D)
    np.testing.assert_allclose(ref["mirror_inverse"](dual, BETA, kind="hypentropy").numpy(), X_PLUS, atol=1e-6)


def test_hypentropy_potential_and_bregman_oracles():
    x, z, beta = np.array([0.4, 0.1]), np.array([0.5, -0.1]), 0.1
    phi = float(np.sum(x * np.arcsinh(x / beta) - np.sqrt(x**2 + beta**2)))
    dist = float(np.sum(x * (np.arcsinh(x / beta) - np.arcsinh(z / beta)) - np.sqrt(x**2 + beta**2)
                        + np.sqrt(z**2 + beta**2)))
    assert phi == pytest.approx(0.372290, abs=1e-6)
    assert dist == pytest.approx(0.186776, abs=1e-6)
    assert float(ref["mirror_potential"](T(x), beta, kind="hypentropy")) == pytest.approx(phi, rel=1e-12)
    assert float(ref["bregman"](T(x), T(z), beta, kind="hypentropy")) == pytest.approx(dist, rel=1e-12)


def test_ham_step_is_the_small_beta_limit_of_the_hypentropy_step():
    alpha, lam, eta = 200.0, 1e-3, 1e-3
    ham = X * np.exp(np.clip(eta * (-alpha * np.sign(X) * D - lam), -5, 5))   # HAM (arXiv 2506.02630), x' = x
    np.testing.assert_allclose(ham, HAM, atol=1e-6)
    direction = T(alpha * D + lam * np.sign(X))                                # EG on |x| for α·f + λ‖x‖₁
    out = ref["mirror_step"](T(X), direction, eta, 1e-12, kind="hypentropy")
    np.testing.assert_allclose(out.numpy(), ham, rtol=1e-9, atol=1e-11)


def test_hypentropy_large_beta_is_gradient_descent_with_lr_times_beta():
    kappa, beta = 0.01, 1e7
    out = ref["mirror_step"](T(X), T(D), kappa / beta, beta, kind="hypentropy")
    np.testing.assert_allclose(out.numpy(), X - kappa * D, atol=1e-12)


def test_other_mirror_maps_by_hand():
    x, d, eta = np.array([0.5, 2.0, 1e-3]), np.array([1.0, -2.0, 0.5]), 0.1
    entropic = ref["mirror_step"](T(x), T(d), eta, kind="entropy")
    np.testing.assert_allclose(entropic.numpy(), x * np.exp(-eta * d), rtol=1e-14)
    np.testing.assert_allclose(ref["mirror_step"](T(x), T(d), eta, kind="euclidean").numpy(), x - eta * d, rtol=1e-14)
    z = np.array([1.0, 1.0, 1.0])
    kl = float(np.sum(x * np.log(x / z) - x + z))
    assert float(ref["bregman"](T(x), T(z), kind="entropy")) == pytest.approx(kl, rel=1e-12)
    # p-norm: ∇(½‖x‖_p²) = sign(x)|x|^{p−1}/‖x‖_p^{p−2}, and the q-map inverts it
    v, p = np.array([3.0, -4.0, 0.0, 1.0]), 3.0
    grad = np.sign(v) * np.abs(v) ** (p - 1) / np.sum(np.abs(v) ** p) ** ((p - 2) / p)
    np.testing.assert_allclose(ref["mirror_map"](T(v), kind="pnorm", p=p).numpy(), grad, rtol=1e-13)
    np.testing.assert_allclose(ref["mirror_inverse"](T(grad), kind="pnorm", p=p).numpy(), v, atol=1e-12)
    assert not ref["mirror_map"](torch.zeros(3, dtype=torch.float64), kind="pnorm", p=p).any()


def test_hypentropy_rejects_a_nonpositive_beta_at_run_time():
    with pytest.raises(ValueError, match="beta > 0"):
        ref["mirror_map"](T(X), 0.0, kind="hypentropy")


# ---- §6: norms, dual norms and LMOs on explicit matrices --------------------------------------------------
G = np.array([[1, 2, 0], [0, 1, -1], [3, 0, 1], [1, 1, 1]], dtype=np.float64)     # algorithms.md §1.6(a)
WIDE = np.array([[2.0, -1.0, 0.0, 0.5, 1.0], [1.0, 1.0, 3.0, 0.0, -2.0], [0.0, 0.0, 1.0, 1.0, 1.0]])
EXACT_MSIGN = np.array([[.187644, .793499, -.042616], [.140124, .347996, -.725211],
                        [.971029, -.225357, .079482], [.047520, .445503, .682595]])


def _expected(kind: str, g: np.ndarray, p: float | None = None) -> tuple[float, float, np.ndarray]:
    """(‖g‖, ‖g‖_†, LMO(g)) from the §6 table, with numpy's SVD."""
    m, n = g.shape
    U, S, Vt = np.linalg.svd(g, full_matrices=False)
    a, N = np.abs(g), g.size
    fro = math.sqrt(float(np.sum(g * g)))
    rows, cols = np.linalg.norm(g, axis=1), np.linalg.norm(g, axis=0)
    if kind == "l1":
        i = np.unravel_index(np.argmax(a), g.shape)
        e = np.zeros_like(g)
        e[i] = np.sign(g[i])
        return a.sum(), a.max(), e
    if kind in ("l2", "fro"):
        return fro, fro, g / fro
    if kind in ("linf", "max_abs"):
        return a.max(), a.sum(), np.sign(g)
    if kind == "rms":
        return fro / math.sqrt(N), math.sqrt(N) * fro, math.sqrt(N) * g / fro
    if kind == "spectral":
        return S[0], S.sum(), U @ Vt
    if kind == "nuclear":
        return S.sum(), S[0], np.outer(U[:, 0], Vt[0])
    if kind == "rms_rms":
        return math.sqrt(n / m) * S[0], math.sqrt(m / n) * S.sum(), math.sqrt(m / n) * U @ Vt
    if kind == "max_row_l2":
        return rows.max(), rows.sum(), g / rows[:, None]
    if kind == "max_col_l2":
        return cols.max(), cols.sum(), g / cols[None, :]
    if kind == "schatten":
        q = p / (p - 1)
        w = S ** (q - 1) / np.sum(S**q) ** ((q - 1) / q)
        return np.sum(S**p) ** (1 / p), np.sum(S**q) ** (1 / q), (U * w) @ Vt
    raise KeyError(kind)


KINDS = [("l1", None), ("l2", None), ("fro", None), ("linf", None), ("rms", None), ("spectral", None),
         ("nuclear", None), ("rms_rms", None), ("max_row_l2", None), ("max_col_l2", None), ("max_abs", None),
         ("schatten", 3.0), ("schatten", 1.5)]


def test_the_oracle_matrix():
    S = np.linalg.svd(G, compute_uv=False)
    np.testing.assert_allclose(S, [3.697603, 2.300207, 1.018224], atol=1e-6)
    U, _, Vt = np.linalg.svd(G, full_matrices=False)
    np.testing.assert_allclose(U @ Vt, EXACT_MSIGN, atol=1e-6)


@pytest.mark.parametrize("g", [G, WIDE], ids=["tall4x3", "wide3x5"])
@pytest.mark.parametrize("kind,p", KINDS, ids=[k + (f"_p{p:g}" if p else "") for k, p in KINDS])
def test_table_row(kind, p, g):
    kw = {"p": p} if p else {}
    size, dual, direction = _expected(kind, g, p)
    assert float(np.sum(g * direction)) == pytest.approx(dual, rel=1e-12)     # the table is self-consistent
    gt = T(g)
    assert float(ref["norm"](gt, kind=kind, **kw)) == pytest.approx(size, rel=1e-12)
    assert float(ref["dual_norm"](gt, kind=kind, **kw)) == pytest.approx(dual, rel=1e-12)
    np.testing.assert_allclose(ref["lmo"](gt, kind=kind, **kw).numpy(), direction, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ref["lmo"](gt, 0.5, kind=kind, **kw).numpy(), 0.5 * direction, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ref["sharp"](gt, kind=kind, **kw).numpy(), dual * direction, rtol=1e-10, atol=1e-12)
    zero = ref["lmo"](torch.zeros_like(gt), kind=kind, **kw)
    assert torch.isfinite(zero).all() and not zero.any()


def test_spectral_lmo_is_the_published_msign_and_norm_values_are_0d():
    out = ref["lmo"](T(G), kind="spectral")
    np.testing.assert_allclose(out.numpy(), EXACT_MSIGN, atol=1e-6)
    assert ref["norm"](T(G), kind="spectral").shape == ()
    assert float(ref["norm"](T(G), kind="fro")) == pytest.approx(math.sqrt(20), rel=1e-15)


def test_l1_lmo_picks_a_single_largest_entry():
    g = T([[1.0, -3.0], [3.0, 0.0]])            # a tie: the first largest |entry| (row-major) wins
    np.testing.assert_array_equal(ref["lmo"](g, kind="l1").numpy(), [[0.0, -1.0], [0.0, 0.0]])
    assert float(ref["dual_norm"](g, kind="l1")) == 3.0


def test_zero_rows_and_columns_stay_zero():
    g = T([[0.0, 0.0, 0.0], [3.0, 0.0, 4.0]])
    np.testing.assert_allclose(ref["lmo"](g, kind="max_row_l2").numpy(), [[0, 0, 0], [0.6, 0, 0.8]])
    np.testing.assert_allclose(ref["lmo"](g, kind="max_col_l2").numpy(), [[0, 0, 0], [1, 0, 1]])


def test_matrix_kinds_are_per_matrix_on_a_batch_and_entrywise_kinds_are_global():
    batch = torch.stack([T(G), 2 * T(G)])
    spectral = ref["norm"](batch, kind="spectral")
    assert spectral.shape == (2, 1, 1)
    np.testing.assert_allclose(spectral.flatten().numpy(), [3.697603, 2 * 3.697603], atol=1e-5)
    np.testing.assert_allclose(ref["lmo"](batch, kind="spectral")[1].numpy(), EXACT_MSIGN, atol=1e-6)
    assert float(ref["norm"](batch, kind="l2")) == pytest.approx(math.sqrt(5 * 20), rel=1e-14)


def test_float32_and_bfloat16_keep_their_dtype():
    for dtype in (torch.float32, torch.bfloat16):
        g = T(G).to(dtype)
        for kind, p in KINDS:
            kw = {"p": p} if p else {}
            assert ref["lmo"](g, kind=kind, **kw).dtype == dtype
            assert ref["norm"](g, kind=kind, **kw).dtype == dtype


def test_tiny_float32_gradients_still_give_a_unit_lmo():
    g = torch.full((3, 4), 1e-30, dtype=torch.float32)          # squares underflow in float32
    for kind in ("l2", "fro", "rms", "max_row_l2", "max_col_l2"):
        size = float(ref["norm"](ref["lmo"](g, kind=kind), kind=kind))
        assert size == pytest.approx(1.0, rel=1e-6), kind


@pytest.mark.parametrize("shape", [(4, 3), (3, 5), (6, 6)])
def test_scale_factors(shape):
    m, n = shape
    x = torch.zeros(shape)
    want = {"muon": math.sqrt(max(1, m / n)), "moonlight": 0.2 * math.sqrt(max(m, n)), "modula": math.sqrt(m / n),
            "spectral_mup": math.sqrt(m / n), "scion_colnorm": math.sqrt(m), "scion_rownorm": 1 / math.sqrt(n),
            "scion_sign": 1 / n}
    for kind, value in want.items():
        assert ref["scale_factor"](x, kind=kind) == pytest.approx(value, rel=1e-15), kind


# ---- inside specs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_spectral_lmo_step_in_a_spec(backend):
    Opt = geo.compile('optimizer x(lr = 0.1):\n    for matrix W:\n        W = W - lr * lmo(grad, "spectral")\n',
                      backend=backend)
    W = torch.nn.Parameter(torch.zeros(4, 3, dtype=torch.float64))
    opt = Opt([W], lr=0.1)
    W.grad = T(G)
    opt.step()
    np.testing.assert_allclose(W.detach().numpy(), -0.1 * EXACT_MSIGN, atol=1e-7)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_hypentropy_step_in_a_spec(backend):
    spec = 'optimizer h(lr = 0.1, beta = 0.1):\n    for vector w:\n' \
           '        w = mirror_step(w, grad, lr, "hypentropy", beta = beta)\n'
    w = torch.nn.Parameter(T(X))
    opt = geo.compile(spec, backend=backend)([w])
    w.grad = T(D)
    opt.step()
    np.testing.assert_allclose(w.detach().numpy(), X_PLUS, atol=1e-6)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_moonlight_scale_matches_torch_muon(backend):
    """ema, nesterov and scale_factor reproduce torch.optim.Muon(adjust_lr_fn="match_rms_adamw") bit for bit."""
    spec = '''optimizer m(lr = 0.1, momentum = 0.95):
    for matrix W:
        state buf = zeros_like(W)
        buf = ema(buf, grad, momentum)
        W = W - lr * scale_factor(W, "moonlight") * msign(nesterov(grad, buf, momentum), dtype = "bf16")
'''
    g = T(G).float()
    ours = torch.nn.Parameter(torch.zeros(4, 3))
    theirs = torch.nn.Parameter(torch.zeros(4, 3))
    opt = geo.compile(spec, backend=backend)([ours])
    muon = torch.optim.Muon([theirs], lr=0.1, weight_decay=0.0, momentum=0.95, adjust_lr_fn="match_rms_adamw")
    for _ in range(3):
        ours.grad, theirs.grad = g.clone(), g.clone()
        opt.step()
        muon.step()
        assert torch.equal(ours, theirs)


def test_matrix_norms_reject_vectors():
    spec = 'optimizer x(lr = 0.1):\n    for vector b:\n        b = b - lr * lmo(grad, "spectral")\n'
    with pytest.raises(geo.GeoError) as err:
        geo.compile(spec)
    assert [d.code for d in err.value.diagnostics] == ["GEO0203"]


# ---- rewrites: the helpers lower to existing operators, a map and its inverse cancel ------------------------
def _optimized_ops(body: str, header: str = "lr = 0.1, beta = 0.5, momentum = 0.9") -> list[str]:
    from geo.compiler.pipeline import front, specialize
    from geo.dsl.loader import source_for
    _, checked = front(source_for(f"optimizer r({header}):\n    for matrix W:\n" + body))
    rule = checked.optimizers["r"].rules[0]
    statics = rule.statics()
    return [n.op for n in specialize(checked, rule, statics, rule.rank()).nodes()]


def test_mirror_map_and_inverse_cancel_for_the_same_kind_and_beta():
    ops = _optimized_ops('        W = mirror_inverse(mirror_map(W, "hypentropy", beta = beta), "hypentropy", beta = beta)'
                         ' - lr * mirror_map(mirror_inverse(grad, "pnorm", p = 3), "pnorm", p = 3)\n')
    assert "mirror_map" not in ops and "mirror_inverse" not in ops
    kept = _optimized_ops('        W = mirror_inverse(mirror_map(W, "hypentropy", beta = 0.1), "hypentropy", beta = beta)\n')
    assert "mirror_map" in kept and "mirror_inverse" in kept        # a different β: no cancellation


def test_moment_helpers_lower_to_existing_operators():
    ops = _optimized_ops('        state buf = zeros_like(W)\n'
                         '        buf = ema(buf, grad, momentum)\n'
                         '        W = W - lr * nesterov(grad, buf, momentum) / bias_correction(momentum, t)'
                         ' / sqrt(row_mean_sq(grad) + 1)\n')
    assert not {"ema", "nesterov", "bias_correction", "row_mean_sq"} & set(ops)
    assert ops.count("lerp") == 2 and "pow" in ops and "mean" in ops
