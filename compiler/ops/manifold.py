"""Constraint sets and manifolds: projections, retractions, tangent projections, and constrained steepest
descent by dual ascent (the spectral ball, band and sphere, and the (scaled) Stiefel manifold).

    set               points                                     kind
    "l2_ball"         ‖x‖₂ ≤ r            (the whole tensor)     entrywise (any tensor)
    "l2_sphere"       ‖x‖₂ = r
    "linf_ball"       max|xᵢ| ≤ r
    "linf_sphere"     max|xᵢ| = r
    "spectral_ball"   ‖W‖₂ = σ_max ≤ r                            per matrix (batched over leading dims)
    "spectral_sphere" ‖W‖₂ = r
    "spectral_band"   lo ≤ σᵢ ≤ r for all min(m, n) singular values
    "stiefel"         WᵀW = r²I (m ≥ n) or WWᵀ = r²I (m < n): all singular values equal r (scaled Stiefel;
                      Cesista uses r = √(m/n), the RMS→RMS-unit semi-orthogonal matrices)
    "oblique"         every column has ‖W_{:j}‖₂ = r

Three maps per set (`radius` is r; `lo` is the band's lower edge):

    project(x, set, radius, lo)      the Euclidean (Frobenius) nearest point of the set, exact (float64 SVD for the
                                     spectral sets): feasible, idempotent, and no feasible point is closer
    retract(x, set, radius, lo, …)   the map an optimizer uses to land back on the set, GPU-friendly where the
                                     literature gives one: spectral ball → spectral_hardcap, band → spectral_clip
                                     (msign identities, Newton–Schulz), Stiefel → r·msign(x), spectral sphere → the
                                     radial (r/σ₁)·x of SSO; the others are the projection
    tangent(g, x, set, radius, lo)   the Euclidean projection of g onto the tangent space (manifolds) or the tangent
                                     cone (balls, band) of the set at x ∈ set

and the steepest step under the spectral norm inside a tangent cone, by dual ascent (§4.2):

    constrained_direction(g, w, set, radius, lo, eta, …)   A ≈ argmin ⟨G, A⟩, ‖A‖₂ ≤ η, A ∈ T, for "spectral_ball",
                                     "spectral_band", "spectral_sphere" (SSO's λ as a 1-D dual) and "stiefel"
    stiefel_direction(g, w, radius, …)                     manifold Muon's unit Φ (fixed iterations, or the
                                                           alternating-projection heuristic)

Tangent cones (Cesista, "Steepest descent on Finsler geometries via dual ascent", leloykun.github.io/ponder,
2025-10-29; algorithms.md §4.2) are T = {A : L(A) ∈ −K} with LL* = I, whose projection is X − L*·proj_{K*}(L X):
spectral ball at the singular pairs (U_r, V_r) with σ = r: L(A) = sym(U_rᵀ A V_r), K = PSD; the band adds the
pairs at σ = lo with K = NSD; Stiefel: L(A) = sym(WᵀA)/r, K = {0}; the spheres L(A) = ⟨N, A⟩ with N the unit normal
(x/‖x‖ for the ℓ2 sphere, Θ = u₁v₁ᵀ for the spectral sphere, the columns for the oblique manifold).
A point counts as on the boundary when it is within a relative `tol` of it.

Sources: algorithms.md §4.1–4.2 and §6; Cesista's posts "spectral clipping", "rethinking µP: spectral ball",
"steepest descent on the Stiefel manifold" (2025-07-18) and the dual-ascent post above; Modula's hypersphere
(`w ← (w − η·a)/√(1 + η²)`); Xie et al., arXiv 2601.08393 (SSO's radial retraction).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ...dsl.diagnostics import did_you_mean
from ..types import ShapeError, Tensor
from . import _linalg, sampling
from ._calling import values_first
from .matrix import msign
from .registry import MATRIX, Domain, Law, StaticArg, op
from .spectral import _check_msign_attrs, _number, _sv_bound, spectral_clip, spectral_hardcap


# ---- helpers -------------------------------------------------------------------------------------------
def _f64(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float64)


def _num(v, like: torch.Tensor) -> torch.Tensor:
    """A runtime number (float, 0-d or (…, 1, 1) tensor) as a tensor in like's dtype, broadcastable to it."""
    return torch.as_tensor(v, dtype=like.dtype, device=like.device)


def _nonzero(n: torch.Tensor) -> torch.Tensor:
    return torch.where(n > 0, n, torch.ones_like(n))


def _sym(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x + x.mT)


def _psd(b: torch.Tensor) -> torch.Tensor:
    """proj_PSD of a symmetric matrix: V max(Λ, 0) Vᵀ (eigh)."""
    lam, V = _linalg.eigh(b)
    return (V * lam.clamp(min=0).unsqueeze(-2)) @ V.mT


def _svd(x: torch.Tensor):
    return _linalg.svd(_f64(x), full_matrices=False)


def _with_sv(x: torch.Tensor, fn) -> torch.Tensor:
    """U fn(Σ) Vᵀ (float64 SVD, every min(m, n) singular value, zeros included), in x's dtype."""
    U, S, Vh = _svd(x)
    return ((U * fn(S).unsqueeze(-2)) @ Vh).to(x.dtype)


# ---- the sets ------------------------------------------------------------------------------------------
def _l2_project(x, r, lo):
    n = torch.linalg.vector_norm(x)
    r = _num(r, x)
    return x * torch.where(n > r, r / _nonzero(n), torch.ones_like(n))


def _sphere_project(x, r, lo):
    n = torch.linalg.vector_norm(x)
    r = _num(r, x)
    fallback = torch.full_like(x, 1.0 / math.sqrt(max(x.numel(), 1)))  # 0 has no nearest point: pick 1/√N
    return torch.where(n > 0, x * (r / _nonzero(n)), r * fallback)


def _linf_project(x, r, lo):
    r = _num(r, x)
    return torch.minimum(torch.maximum(x, -r), r)


def _linf_sphere_project(x, r, lo):
    """Outside the cube: clamp. Inside: the nearest face is the one of the largest |xᵢ|, pushed to ±r."""
    r = _num(r, x)
    clamped = torch.minimum(torch.maximum(x, -r), r)
    flat = clamped.reshape(-1)
    top = flat.abs().argmax()
    pushed = flat.clone()
    pushed[top] = torch.where(flat[top] < 0, -r, r)
    inside = flat.abs().max() < r
    return torch.where(inside, pushed, flat).reshape(x.shape)


def _ball_project(x, r, lo):
    b = _sv_bound(r, _f64(x))
    return _with_sv(x, lambda s: torch.minimum(s, b))


def _spectral_sphere_project(x, r, lo):
    """σᵢ ← min(σᵢ, r) for i > 1 and σ₁ ← r: the nearest matrix with σ_max = r (von Neumann)."""
    b = _sv_bound(r, _f64(x))

    def fn(s):
        capped = torch.minimum(s, b)
        return torch.cat([b * torch.ones_like(s[..., :1]), capped[..., 1:]], dim=-1)
    return _with_sv(x, fn)


def _band_project(x, r, lo):
    X = _f64(x)
    a, b = _sv_bound(lo, X), _sv_bound(r, X)
    return _with_sv(x, lambda s: torch.minimum(torch.maximum(s, a), b))


def _stiefel_project(x, r, lo):
    """r·U Vᵀ from the reduced SVD (zero singular values included, so the result is always semi-orthogonal)."""
    U, _, Vh = _svd(x)
    return (_num(r, _f64(x)) * (U @ Vh)).to(x.dtype)


def _oblique_project(x, r, lo):
    n = torch.linalg.vector_norm(x, dim=-2, keepdim=True)            # (…, 1, n) column norms
    fallback = torch.full_like(x, 1.0 / math.sqrt(x.size(-2)))
    return _num(r, x) * torch.where(n > 0, x / _nonzero(n), fallback)


def _sphere_retract_spectral(x, r, lo, method, steps, coeffs, dtype):
    """SSO's hard retraction (r/σ₁)·x (radial, keeps the singular vectors and the ratios of the σᵢ)."""
    sigma = torch.linalg.matrix_norm(_f64(x), ord=2, keepdim=True)
    if bool((sigma == 0).any()):                                      # 0 cannot be scaled onto the sphere
        return torch.where(sigma == 0, _spectral_sphere_project(x, r, lo).to(torch.float64),
                           _f64(x) * (_num(r, _f64(x)) / _nonzero(sigma))).to(x.dtype)
    return (_f64(x) * (_num(r, _f64(x)) / sigma)).to(x.dtype)


def _stiefel_retract(x, r, lo, method, steps, coeffs, dtype):
    if method == "ns":
        return (_num(r, x) * msign.reference(x, 1e-7, steps=steps, coeffs=coeffs, dtype=dtype, method="ns")).to(x.dtype)
    return _stiefel_project(x, r, lo)


def _ball_retract(x, r, lo, method, steps, coeffs, dtype):
    return spectral_hardcap.reference(x, r, method=method, steps=steps, coeffs=coeffs, dtype=dtype)


def _band_retract(x, r, lo, method, steps, coeffs, dtype):
    return spectral_clip.reference(x, lo, r, method=method, steps=steps, coeffs=coeffs, dtype=dtype)


def _projection_retract(project):
    return lambda x, r, lo, method, steps, coeffs, dtype: project(x, r, lo)


# tangent projections: (g, x, r, lo, tol) → the projection of g onto the tangent space/cone at x
def _l2_ball_tangent(g, x, r, lo, tol):
    n = torch.linalg.vector_norm(x)
    on = n >= _num(r, x) * (1 - tol)
    push = torch.clamp((g * x).sum(), min=0) / _nonzero(n * n)
    return torch.where(on, g - push * x, g)


def _sphere_tangent(g, x, r, lo, tol):
    n = torch.linalg.vector_norm(x)
    return g - ((g * x).sum() / _nonzero(n * n)) * x


def _linf_tangent(g, x, r, lo, tol):
    edge = _num(r, x) * (1 - tol)
    out = torch.where(x >= edge, torch.clamp(g, max=0), g)
    return torch.where(x <= -edge, torch.clamp(g, min=0), out)


def _linf_sphere_tangent(g, x, r, lo, tol):
    """The ball's cone at the active faces (|xᵢ| = r: no outward component), and one active coordinate held
    at 0 so that max|x| stays r to first order: the one whose clamped value is smallest (the nearest of the
    convex cones whose union is the tangent cone)."""
    edge = _num(r, x) * (1 - tol)
    d = _linf_tangent(g, x, r, lo, tol).reshape(-1)
    active = (x.abs() >= edge).reshape(-1)
    cost = torch.where(active, d.abs(), torch.full_like(d, float("inf")))
    held = cost.argmin()
    out = d.clone()
    out[held] = torch.where(active[held], torch.zeros_like(d[held]), d[held])
    return out.reshape(g.shape)


def _remove_cone(G, U, Vh, mask, psd: bool):
    """G − U_S proj_K(sym(U_Sᵀ G V_S)) V_Sᵀ over the singular pairs selected by mask (…, k); K = PSD or NSD."""
    Um = U * mask.unsqueeze(-2)
    Vm = Vh.mT * mask.unsqueeze(-2)
    B = _sym(Um.mT @ G @ Vm)
    P = _psd(B) if psd else -_psd(-B)
    return G - Um @ P @ Vm.mT


def _ball_tangent(g, x, r, lo, tol):
    U, S, Vh = _svd(x)
    G = _f64(g)
    hi = (S >= _sv_bound(r, _f64(x)) * (1 - tol)).to(G.dtype)
    return _remove_cone(G, U, Vh, hi, psd=True).to(g.dtype)


def _band_tangent(g, x, r, lo, tol):
    U, S, Vh = _svd(x)
    G = _f64(g)
    a, b = _sv_bound(lo, _f64(x)), _sv_bound(r, _f64(x))
    hi = S >= b * (1 - tol)
    low = (S <= a * (1 + tol)) & ~hi & (a > 0)       # σ ≥ 0 is no constraint: only a positive lower edge binds
    G = _remove_cone(G, U, Vh, hi.to(G.dtype), psd=True)
    return _remove_cone(G, U, Vh, low.to(G.dtype), psd=False).to(g.dtype)


def _spectral_sphere_tangent(g, x, r, lo, tol):
    U, S, Vh = _svd(x)
    theta = (U[..., :, :1] @ Vh[..., :1, :]) * (S[..., :1] > 0).unsqueeze(-1).to(U.dtype)
    G = _f64(g)
    return (G - (theta * G).sum((-2, -1), keepdim=True) * theta).to(g.dtype)


def _stiefel_tangent(g, x, r, lo, tol):
    r2 = _num(r, _f64(x)) ** 2
    G, X = _f64(g), _f64(x)
    if x.size(-2) >= x.size(-1):
        out = G - X @ _sym(X.mT @ G) / r2
    else:
        out = G - _sym(G @ X.mT) @ X / r2
    return out.to(g.dtype)


def _oblique_tangent(g, x, r, lo, tol):
    n2 = (x * x).sum(-2, keepdim=True)
    return g - x * ((g * x).sum(-2, keepdim=True) / _nonzero(n2))


@dataclass(frozen=True)
class ConstraintSet:
    name: str
    matrix: bool
    project: Callable
    retract: Callable
    tangent: Callable
    manifold: bool                       # a manifold (tangent space) rather than a set with a boundary (cone)
    summary: str


SETS: dict[str, ConstraintSet] = {s.name: s for s in [
    ConstraintSet("l2_ball", False, _l2_project, _projection_retract(_l2_project), _l2_ball_tangent, False,
                  "‖x‖₂ ≤ r"),
    ConstraintSet("l2_sphere", False, _sphere_project, _projection_retract(_sphere_project), _sphere_tangent, True,
                  "‖x‖₂ = r"),
    ConstraintSet("linf_ball", False, _linf_project, _projection_retract(_linf_project), _linf_tangent, False,
                  "max|xᵢ| ≤ r"),
    ConstraintSet("linf_sphere", False, _linf_sphere_project, _projection_retract(_linf_sphere_project),
                  _linf_sphere_tangent, False, "max|xᵢ| = r"),
    ConstraintSet("spectral_ball", True, _ball_project, _ball_retract, _ball_tangent, False, "‖W‖₂ ≤ r"),
    ConstraintSet("spectral_sphere", True, _spectral_sphere_project, _sphere_retract_spectral,
                  _spectral_sphere_tangent, True, "‖W‖₂ = r"),
    ConstraintSet("spectral_band", True, _band_project, _band_retract, _band_tangent, False, "lo ≤ σᵢ(W) ≤ r"),
    ConstraintSet("stiefel", True, _stiefel_project, _stiefel_retract, _stiefel_tangent, True,
                  "WᵀW = r²I (m ≥ n), WWᵀ = r²I (m < n)"),
    ConstraintSet("oblique", True, _oblique_project, _projection_retract(_oblique_project), _oblique_tangent, True,
                  "‖W_{:j}‖₂ = r for every column j"),
]}


def _resolve(name: str) -> ConstraintSet:
    if name not in SETS:
        raise ValueError(f"unknown set {name!r}; one of {', '.join(SETS)}")
    return SETS[name]


# ---- type rules ----------------------------------------------------------------------------------------
def _set_of(attrs, x, i: int = 0) -> ConstraintSet:
    name = attrs.get("set")
    if not isinstance(name, str) or name not in SETS:
        hint = did_you_mean(name, SETS) if isinstance(name, str) else None
        raise ShapeError(f"has no set {name!r}".replace("'", '"'), code="GEO0206",
                         help=(hint.replace("`", '"') + " " if hint else "") + "sets: " + ", ".join(f'"{k}"' for k in SETS))
    s = SETS[name]
    if not isinstance(x, Tensor):
        raise ShapeError(f"needs a tensor, found `{x.show()}`", arg=i, code="GEO0202")
    if s.matrix and not x.is_matrix:
        raise ShapeError(f'with set "{name}" needs a matrix, found `{x.show()}`', arg=i, code="GEO0203",
                         help='for vectors use "l2_ball", "l2_sphere", "linf_ball" or "linf_sphere", or restrict this rule to matrix '
                              "parameters (`for matrix W`)")
    return s


def _project_rule(args, attrs, constraints):
    _set_of(attrs, args[0])
    for i, name in ((1, "radius"), (2, "lo")):
        if i < len(args):
            _number(args[i], i, name)
    return args[0]


def _retract_rule(args, attrs, constraints):
    out = _project_rule(args, attrs, constraints)
    _check_msign_attrs(attrs, ("ns", "polar", "svd"))
    return out


def _same_shape(a: Tensor, b: Tensor, constraints, i: int) -> None:
    if a.shape is None or b.shape is None or a.shape == b.shape:
        return
    if len(a.shape) != len(b.shape):
        raise ShapeError(f"needs g and x of one shape, found `{a.show()}` and `{b.show()}`", arg=i, code="GEO0204")
    for p, q in zip(a.shape, b.shape):
        if p != q:
            if isinstance(p, int) and isinstance(q, int):
                raise ShapeError(f"needs g and x of one shape, found `{a.show()}` and `{b.show()}`", arg=i,
                                 code="GEO0204")
            constraints.append((p, q))


def _tangent_rule(args, attrs, constraints):
    g = args[0]
    if not isinstance(g, Tensor):
        raise ShapeError(f"needs a tensor, found `{g.show()}`", arg=0, code="GEO0202")
    _set_of(attrs, args[1], 1)
    _same_shape(g, args[1], constraints, 1)
    for i, name in ((2, "radius"), (3, "lo")):
        if i < len(args):
            _number(args[i], i, name)
    tol = attrs.get("tol")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:
        raise ShapeError(f"`tol` must be a static number in [0, 1), found {tol!r}", code="GEO0206")
    return g


# ---- laws ----------------------------------------------------------------------------------------------
def _set_samples(name: str):
    """(z, g, r, lo): two Gaussian tensors of one shape (at scales that land inside and outside the set), a
    radius and a band edge lo < r."""
    st = sampling._st()
    s = SETS[name]
    shapes = sampling.matrix_shapes(6) if s.matrix else sampling.shapes(1, 3, 5)

    def build(args):
        shape, seed, scale, r, frac = args
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(*shape, generator=gen, dtype=torch.float64) * scale
        g = torch.randn(*shape, generator=gen, dtype=torch.float64)
        return z, g, r, r * frac
    return st.tuples(shapes, st.integers(0, 2**31 - 1), st.sampled_from([0.05, 0.5, 1.0, 3.0]),
                     st.floats(0.5, 2.0), st.floats(0.1, 0.9)).map(build)


def _feasible(name: str, p: torch.Tensor, r: float, lo: float, rtol: float) -> str | None:
    """None if p lies in the set (to a relative tolerance), else what is wrong."""
    if name in ("l2_ball", "l2_sphere"):
        n = float(torch.linalg.vector_norm(p))
        bad = n > r * (1 + rtol) or (name == "l2_sphere" and abs(n - r) > r * rtol)
        return f"‖p‖ = {n!r}, r = {r!r}" if bad else None
    if name == "linf_ball":
        top = float(p.abs().max())
        return f"max|p| = {top!r} > r = {r!r}" if top > r * (1 + rtol) else None
    if name == "linf_sphere":
        top = float(p.abs().max())
        return f"max|p| = {top!r} ≠ r = {r!r}" if abs(top - r) > r * rtol else None
    s = _linalg.svdvals(p)
    if name == "spectral_ball":
        return f"σ_max = {float(s.max())!r} > r = {r!r}" if float(s.max()) > r * (1 + rtol) else None
    if name == "spectral_sphere":
        return f"σ_max = {float(s.max())!r} ≠ r = {r!r}" if abs(float(s.max()) - r) > r * rtol else None
    if name == "spectral_band":
        bad = float(s.max()) > r * (1 + rtol) or float(s.min()) < lo * (1 - rtol)
        return f"σ ∈ [{float(s.min())!r}, {float(s.max())!r}], band [{lo!r}, {r!r}]" if bad else None
    if name == "stiefel":
        bad = float((s - r).abs().max()) > r * rtol
        return f"σ = {s.tolist()} ≠ r = {r!r}" if bad else None
    if name == "oblique":
        cols = torch.linalg.vector_norm(p, dim=-2)
        bad = float((cols - r).abs().max()) > r * rtol
        return f"column norms {cols.tolist()} ≠ r = {r!r}" if bad else None
    raise AssertionError(name)


def _project_laws(name: str) -> list[Law]:
    def feasible_idempotent(f, sample):
        z, _, r, lo = sample
        p = f(z, r, lo, set=name)
        why = _feasible(name, p, r, lo, 1e-9)
        assert why is None, f"{name}: project(z) is not in the set: {why}"
        q = f(p, r, lo, set=name)
        assert torch.allclose(q, p, atol=1e-9 * max(r, float(p.abs().max())), rtol=0), \
            f"{name}: project is not idempotent (max |diff| = {float((q - p).abs().max()):.3g})"

    def nearest(f, sample):
        z, g, r, lo = sample
        p = f(z, r, lo, set=name)
        best = float(torch.linalg.vector_norm(z - p))
        for y in (f(g, r, lo, set=name), f(z + 0.1 * g, r, lo, set=name), f(-z, r, lo, set=name)):
            other = float(torch.linalg.vector_norm(z - y))
            assert best <= other + 1e-9 * (1 + other), \
                f"{name}: a feasible point is closer to z ({other!r}) than project(z) ({best!r})"

    return [Law(f"{name}: project lands in the set and is idempotent", lambda: _set_samples(name), feasible_idempotent),
            Law(f"{name}: no sampled feasible point is closer than project(z)", lambda: _set_samples(name), nearest)]


def _retract_laws(name: str) -> list[Law]:
    def lands(f, sample):
        z, g, r, lo = sample
        for method in ("svd",):
            p = f(z, r, lo, set=name, method=method)
            why = _feasible(name, p, r, lo, 1e-9)
            assert why is None, f"{name}: retract(z, method={method!r}) is not in the set: {why}"
            on = project.reference(z, r, lo, set=name)
            q = f(on, r, lo, set=name, method=method)
            assert torch.allclose(q, on, atol=1e-9 * max(r, float(on.abs().max())), rtol=0), \
                f"{name}: retract moves a point of the set"

    def lands_ns(f, sample):
        # the optimizer's use: a point of the set moved by a small step, then retracted with Newton–Schulz
        z, g, r, lo = sample
        on = project.reference(z, r, lo, set=name)
        step = 0.05 * r * g / max(float(torch.linalg.matrix_norm(g, 2)), 1e-300) if SETS[name].matrix else 0.05 * g
        p = f(on + step, r, lo, set=name, method="ns", steps=8, coeffs="sso8", dtype="fp64")
        why = _feasible(name, p, r, lo, 2e-3)
        assert why is None, f"{name}: the Newton–Schulz retraction misses the set: {why}"

    laws = [Law(f"{name}: retract lands on the set and fixes its points", lambda: _set_samples(name), lands)]
    if name in ("spectral_ball", "spectral_band", "stiefel"):
        laws.append(Law(f"{name}: the Newton–Schulz retraction (sso8) of a point near the set lands on it to 2e-3",
                        lambda: _set_samples(name), lands_ns))
    return laws


def _inner(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((_f64(a) * _f64(b)).sum())


def _tangent_laws(name: str) -> list[Law]:
    s = SETS[name]

    def idempotent_moreau(f, sample):
        z, g, r, lo = sample
        x = project.reference(z, r, lo, set=name)
        t = f(g, x, r, lo, set=name)
        tt = f(t, x, r, lo, set=name)
        scale = float(g.abs().max()) * g.numel()
        assert torch.allclose(tt, t, atol=1e-9 * scale, rtol=0), \
            f"{name}: tangent is not idempotent (max |diff| = {float((tt - t).abs().max()):.3g})"
        assert abs(_inner(g - t, t)) <= 1e-9 * scale * scale, \
            f"{name}: ⟨g − P(g), P(g)⟩ = {_inner(g - t, t)!r} ≠ 0 (not an orthogonal projection onto a cone)"

    def normal(f, sample):
        z, g, r, lo = sample
        x = project.reference(z, r, lo, set=name)
        t = f(g, x, r, lo, set=name)
        scale = float(g.abs().max()) * g.numel() * max(r, 1.0)
        if name == "l2_sphere":
            bad = abs(_inner(t, x))
        elif name == "spectral_sphere":
            U, _, Vh = _linalg.svd(x, full_matrices=False)
            bad = abs(_inner(t, U[:, :1] @ Vh[:1]))
        elif name == "stiefel":
            sym = _sym(x.mT @ t) if x.size(-2) >= x.size(-1) else _sym(t @ x.mT)
            bad = float(sym.abs().max())
        else:  # oblique
            bad = float((t * x).sum(-2).abs().max())
        assert bad <= 1e-9 * scale, f"{name}: the tangent vector has a normal component {bad!r}"

    def in_cone(f, sample):
        z, g, r, lo = sample
        x = project.reference(z, r, lo, set=name)
        t = f(g, x, r, lo, set=name)
        scale = float(g.abs().max()) * g.numel()
        if name == "l2_ball":
            on = float(torch.linalg.vector_norm(x)) >= r * (1 - 1e-3)
            assert not on or _inner(t, x) <= 1e-9 * scale * r, f"points outwards: ⟨t, x⟩ = {_inner(t, x)!r}"
        elif name in ("linf_ball", "linf_sphere"):
            edge = r * (1 - 1e-3)
            assert float(t[x >= edge].clamp(min=0).sum() - t[x <= -edge].clamp(max=0).sum()) <= 0, "points outwards"
            if name == "linf_sphere":
                active = x.abs() >= edge
                assert bool((t[active] == 0).any()), "no active face is held: max|x| leaves r to first order"
        else:
            U, S, Vh = _linalg.svd(x, full_matrices=False)
            hi = S >= r * (1 - 1e-3)
            B = _sym(U[:, hi].mT @ t @ Vh[hi].mT)
            top = float(torch.linalg.eigvalsh(B).max()) if hi.any() else 0.0
            assert top <= 1e-9 * scale, f"{name}: sym(U_rᵀ t V_r) has an eigenvalue {top!r} > 0 (points outwards)"
            if name == "spectral_band":
                low = (S <= lo * (1 + 1e-3)) & ~hi
                B = _sym(U[:, low].mT @ t @ Vh[low].mT)
                bottom = float(torch.linalg.eigvalsh(B).min()) if low.any() else 0.0
                assert bottom >= -1e-9 * scale, f"{name}: points below the band's lower edge ({bottom!r})"

    laws = [Law(f"{name}: tangent is idempotent and an orthogonal cone projection, ⟨g − P(g), P(g)⟩ = 0",
                lambda: _set_samples(name), idempotent_moreau)]
    if s.manifold:
        laws.append(Law(f"{name}: the tangent vector is orthogonal to the normal space", lambda: _set_samples(name),
                        normal))
    else:
        laws.append(Law(f"{name}: the tangent vector lies in the tangent cone (never points out of the set)",
                        lambda: _set_samples(name), in_cone))
    return laws


def _laws(make) -> list[Law]:
    return [law for name in SETS for law in make(name)]


# ---- the operators -------------------------------------------------------------------------------------
@op(MATRIX, _project_rule, laws=_laws(_project_laws), domain={"set": Domain(choices=tuple(SETS)), "radius": Domain(low=1e-3)})
@values_first
def project(x, set: StaticArg, radius=1.0, lo=0.0):  # noqa: A002 - the DSL's argument name
    """The Euclidean (Frobenius) projection of x onto `set`: argmin_{p ∈ set} ‖x − p‖.

        "l2_ball"           x·min(1, r/‖x‖₂)                    "l2_sphere"  r·x/‖x‖₂ (x = 0 ↦ r·1/√N)
        "linf_ball"         clamp(x, −r, r)
        "linf_sphere"       clamp(x, −r, r); inside the cube the largest |xᵢ| pushed to ±r
        "spectral_ball"     U min(Σ, r) Vᵀ                       (Cesista: spectral hardcap)
        "spectral_sphere"   U diag(r, min(σ₂, r), …) Vᵀ          (the nearest matrix with σ_max = r)
        "spectral_band"     U clip(Σ, lo, r) Vᵀ                  (all min(m, n) singular values, zeros lifted to lo)
        "stiefel"           r·U Vᵀ                               (polar factor; zero σ kept as directions)
        "oblique"           r·W_{:j}/‖W_{:j}‖₂ per column       (zero column ↦ r·1/√m)

    Exact: float64 SVD for the spectral sets (von Neumann: the nearest point shares the singular vectors), the
    result in x's dtype; the ℓ sets act on the whole tensor, the matrix sets per matrix of a batch. `radius` and
    `lo` are runtime numbers (0 ≤ lo ≤ radius). Sources: algorithms.md §4.2, §6; Cesista, leloykun.github.io/ponder.
    """
    return _resolve(set).project(x, radius, lo)


@op(MATRIX, _retract_rule, laws=_laws(_retract_laws), domain={"set": Domain(choices=tuple(SETS)), "radius": Domain(low=1e-3)})
@values_first
def retract(x, set: StaticArg, radius=1.0, lo=0.0, method: StaticArg = "ns", steps: StaticArg = 8,
            coeffs: StaticArg = "sso8", dtype: StaticArg = "fp32"):  # noqa: A002
    """Brings x (typically W − lr·update) back onto `set`, as constrained optimizers do after a step:

        "spectral_ball"     spectral_hardcap(x, r)      msign identity (Cesista, "spectral ball")
        "spectral_band"     spectral_clip(x, lo, r)     msign identity (Cesista, "spectral band")
        "stiefel"           r·msign(x)                  (Cesista, "steepest descent on the Stiefel manifold")
        "spectral_sphere"   (r/σ₁)·x                    SSO's hard retraction (Xie et al., arXiv 2601.08393);
                                                        σ₁ by float64 SVD here (SSO's spec uses power iteration)
        "l2_ball", "l2_sphere", "linf_ball", "linf_sphere", "oblique"   = project(x, set, r)

    `method` "ns" runs Newton–Schulz (schedule `coeffs`, `steps`, in `dtype`) for the msign-based sets; "polar"
    the same identities with exact polar factors; "svd" the exact float64 map (then the projection for the ball,
    band and Stiefel). A Newton–Schulz retraction lands on the set only as accurately as msign: with "sso8" a
    point near the set lands within ~1e-4 relative. Sources: algorithms.md §4.2.
    """
    return _resolve(set).retract(x, radius, lo, method, steps, coeffs, dtype)


@op(MATRIX, _tangent_rule, laws=_laws(_tangent_laws), domain={"set": Domain(choices=tuple(SETS)), "radius": Domain(low=1e-3)})
@values_first
def tangent(g, x, set: StaticArg, radius=1.0, lo=0.0, tol: StaticArg = 1e-3):  # noqa: A002
    """The Euclidean projection of g onto the tangent space (manifolds) or tangent cone (sets with a boundary)
    of `set` at the point x ∈ set:

        "l2_sphere"         g − ⟨g, x⟩x/‖x‖²
        "l2_ball"           on the boundary: g − max(⟨g, x⟩, 0)·x/‖x‖²; inside: g
        "linf_ball"         entries at +r: min(g, 0); at −r: max(g, 0); inside: g
        "linf_sphere"       as linf_ball, and the active entry whose value is smallest held at 0 (max|x| stays r)
        "spectral_sphere"   g − ⟨Θ, g⟩Θ,  Θ = u₁v₁ᵀ (SSO's tangent condition ⟨Θ, Φ⟩ = 0; σ₁ assumed simple)
        "spectral_ball"     g − U_r proj_PSD(sym(U_rᵀ g V_r)) V_rᵀ over the pairs with σ = r
        "spectral_band"     the same at σ = r, and g − U_lo proj_NSD(sym(U_loᵀ g V_lo)) V_loᵀ at σ = lo > 0
        "stiefel"           g − x·sym(xᵀg)/r² (m ≥ n), g − sym(g xᵀ)·x/r² (m < n)
        "oblique"           per column g_j − x_j⟨x_j, g_j⟩/‖x_j‖²

    A singular value (entry, norm) within a relative `tol` (static) of an edge counts as on it. Each map is
    X − L*·proj_{K*}(L X) for a linear L with LL* = I, hence the exact projection (Cesista, "Steepest descent on
    Finsler geometries via dual ascent", 2025-10-29; algorithms.md §4.2). g is a direction of motion: the one-step
    dual-ascent heuristic for a gradient G is the step η·msign(tangent(−G, …)), the LMO of the projected descent
    direction (−η·msign(tangent(G, …)) only for the manifolds; on a cone it keeps the outward part); the full
    dual ascent is `constrained_direction`. float64 SVD for the spectral sets.
    """
    return _resolve(set).tangent(g, x, radius, lo, float(tol))


# ---- steepest descent on the Stiefel manifold ------------------------------------------------------------
def _stiefel_rule(args, attrs, constraints):
    g, w = args[0], args[1]
    for i, t in ((0, g), (1, w)):
        if not (isinstance(t, Tensor) and t.is_matrix):
            raise ShapeError(f"needs a matrix, found `{t.show()}`", arg=i, code="GEO0203",
                             help="restrict this rule to matrix parameters (`for matrix W`)")
    _same_shape(g, w, constraints, 1)
    for i, name in ((2, "radius"), (3, "sigma0")):
        if i < len(args):
            _number(args[i], i, name)
    iters = attrs.get("iters")
    if not isinstance(iters, int) or isinstance(iters, bool) or not 1 <= iters <= 1000:
        raise ShapeError(f"`iters` must be a static integer in [1, 1000], found {iters!r}", code="GEO0206")
    if attrs.get("method") not in ("dual_ascent", "alternating"):
        raise ShapeError(f"`method` must be \"dual_ascent\" or \"alternating\", found {attrs.get('method')!r}",
                         code="GEO0206")
    _check_msign_attrs({"method": attrs.get("msign_method"), "steps": attrs.get("ns_steps"),
                        "coeffs": attrs.get("coeffs"), "dtype": attrs.get("dtype")})
    return g


def _stiefel_laws() -> list[Law]:
    st = sampling._st

    def sample():
        def build(args):
            (m, n), seed = args
            gen = torch.Generator().manual_seed(seed)
            Q, _ = torch.linalg.qr(torch.randn(max(m, n), min(m, n), generator=gen, dtype=torch.float64))
            W = Q if m >= n else Q.mT
            return W, torch.randn(m, n, generator=gen, dtype=torch.float64)
        return st().tuples(sampling.matrix_shapes(6), st().integers(0, 2**31 - 1)).map(build)

    exact = dict(msign_method="svd")

    def unit(f, sample):
        W, G = sample
        for method in ("dual_ascent", "alternating"):
            phi = f(G, W, 1.0, 0.5, method=method, iters=6, **exact)
            top = float(torch.linalg.matrix_norm(phi, 2))
            assert top <= 1 + 1e-9, f"{method}: ‖Φ‖₂ = {top!r} > 1"
            z = f(torch.zeros_like(G), W, 1.0, 0.5, method=method, iters=3, **exact)
            assert torch.isfinite(z).all() and not z.any(), f"{method}: the direction of a zero gradient is not 0"

    def square(f, sample):
        W, G = sample
        # even n: a skew matrix of odd size is singular, and msign's rank decision at a ~1e-17 singular value
        # is a coin toss; for even n skew(WᵀG) is invertible almost surely
        n = 2 * (min(W.shape) // 2)
        if n == 0:
            return
        Q, _ = torch.linalg.qr(W[:n, :n] + 3 * torch.eye(n, dtype=W.dtype))  # an orthogonal n×n matrix
        Gs = G[:n, :n]
        want = Q @ msign.reference(0.5 * (Q.mT @ Gs - Gs.mT @ Q), method="svd")
        for method in ("dual_ascent", "alternating"):
            got = f(Gs, Q, 1.0, 0.5, method=method, iters=4, **exact)
            assert torch.allclose(got, want, atol=1e-9), \
                f"{method}: on O(n), Φ ≠ W·msign(skew(WᵀG)) (max |diff| {float((got - want).abs().max()):.3g})"

    def no_worse(f, sample):
        W, G = sample
        first = f(G, W, 1.0, 0.5, method="dual_ascent", iters=1, **exact)
        best = f(G, W, 1.0, 0.5, method="dual_ascent", iters=8, **exact)

        def violation(phi):
            return float(torch.linalg.matrix_norm(_sym(W.mT @ phi) if W.size(0) >= W.size(1) else _sym(phi @ W.mT)))
        assert violation(best) <= violation(first) + 1e-12, "dual ascent returned a less tangent direction than its start"

    return [Law("stiefel_direction has ‖Φ‖₂ ≤ 1 and maps a zero gradient to 0", sample, unit),
            Law("on the orthogonal group Φ = W·msign(skew(WᵀG)), the exact steepest direction", sample, square),
            Law("dual ascent never returns a direction less tangent than the heuristic it starts from", sample, no_worse)]


@op(MATRIX, _stiefel_rule, laws=_stiefel_laws())
@values_first
def stiefel_direction(g, w, radius=1.0, sigma0=0.5, iters: StaticArg = 10, method: StaticArg = "dual_ascent",
                      msign_method: StaticArg = "ns", ns_steps: StaticArg = 8, coeffs: StaticArg = "sso8",
                      dtype: StaticArg = "fp32"):
    """Φ ≈ argmax ⟨G, Φ⟩ s.t. ‖Φ‖₂ ≤ 1 and Φ tangent to the scaled Stiefel manifold at W (WᵀW = r²I for m ≥ n,
    computed on the transpose for m < n): the steepest unit direction of manifold Muon. With W̃ = W/r the tangent
    condition is L(Φ) = sym(W̃ᵀΦ) = 0 (LL* = I), and the Lagrangian gives Φ(Λ) = msign(G + W̃Λ), Λ symmetric.

    method "dual_ascent" (Cesista, "Steepest descent on Finsler geometries via dual ascent", 2025-10-29; the
    Stiefel instance of algorithms.md §4.2): subgradient descent on the dual ‖G + W̃Λ‖_*, whose gradient is
    sym(W̃ᵀΦ):

        Λ₀ = −sym(W̃ᵀG)          (so Φ₀ = msign(G − W̃ sym(W̃ᵀG)) = msign(proj_T G), the one-step heuristic)
        Φⱼ = msign(G + W̃Λⱼ);   Λⱼ₊₁ = Λⱼ − σⱼ·sym(W̃ᵀΦⱼ),   σⱼ = sigma0·‖G‖_F/√(n·(j+1))

    for `iters` iterates, returning the one with the smallest ‖sym(W̃ᵀΦⱼ)‖_F (chosen on the device, no host sync):
    never less tangent than the heuristic. Departures: a fixed iteration count instead of a tolerance, and the
    step scaled by the RMS singular value ‖G‖_F/√n so that sigma0 is dimensionless.
    method "alternating" (Cesista, "steepest descent on the Stiefel manifold", 2025-07-18): A ← msign(A − W̃
    sym(W̃ᵀA)) `iters` times from A = G. On the orthogonal group (m = n) both give the exact W̃·msign(skew(W̃ᵀG)).
    msign: `msign_method` "ns" (Newton–Schulz, `coeffs`, `ns_steps`, `dtype`) or "svd". Update with
    `W ← retract(W − lr·r·Φ, "stiefel", r)`.
    """
    G, W = g, w.to(g.dtype)
    tall = G.size(-2) >= G.size(-1)
    if not tall:
        G, W = G.mT, W.mT
    n = G.size(-1)
    Wt = W / _num(radius, W)

    def polar(x):
        if msign_method == "svd":
            return msign.reference(x, method="svd")
        return msign.reference(x, 1e-7, steps=ns_steps, coeffs=coeffs, dtype=dtype, method="ns")

    if method == "alternating":
        A = G
        for _ in range(iters):
            A = polar(A - Wt @ _sym(Wt.mT @ A))
        out = A
    else:
        Lam = -_sym(Wt.mT @ G)
        scale = _num(sigma0, G) * torch.linalg.vector_norm(G, dim=(-2, -1), keepdim=True) / math.sqrt(n)
        out, best = None, None
        for j in range(iters):
            phi = polar(G + Wt @ Lam)
            resid = _sym(Wt.mT @ phi)
            size = torch.linalg.vector_norm(resid, dim=(-2, -1), keepdim=True)
            if out is None:
                out, best = phi, size
            else:
                better = size < best
                out, best = torch.where(better, phi, out), torch.where(better, size, best)
            Lam = Lam - scale / math.sqrt(j + 1) * resid
    return (out if tall else out.mT).to(g.dtype)


# ---- constrained steepest descent by dual ascent (§4.2) ----------------------------------------------------
DUAL_SETS = ("spectral_ball", "spectral_band", "spectral_sphere", "stiefel")


@dataclass(frozen=True)
class _Cone:
    """One block of the tangent condition L(A) ∈ −K: `lin` is A ↦ L(A), `adj` is Y ↦ L*(Y), `dual` is proj_{K*}."""
    lin: Callable
    adj: Callable
    dual: Callable


def _identity(y: torch.Tensor) -> torch.Tensor:
    return y


def _nsd(b: torch.Tensor) -> torch.Tensor:
    return -_psd(-b)


def _spectral_block(U, V, mask, dual) -> _Cone:
    """L(A) = sym(U_Sᵀ A V_S) over the singular pairs selected by mask (…, k): a k×k matrix, zero outside S×S."""
    Um, Vm = U * mask.unsqueeze(-2), V * mask.unsqueeze(-2)
    return _Cone(lambda A: _sym(Um.mT @ A @ Vm), lambda Y: Um @ Y @ Vm.mT, dual)


def _dual_cones(name: str, W: torch.Tensor, r, lo, tol: float) -> list[_Cone]:
    """The tangent cone of `name` at W as blocks of L(A) ∈ −K with LL* = I (float64; W need not lie on the set)."""
    if name == "stiefel":
        Wt = W / _num(r, W)
        if W.size(-2) >= W.size(-1):
            return [_Cone(lambda A: _sym(Wt.mT @ A), lambda Y: Wt @ Y, _identity)]
        return [_Cone(lambda A: _sym(A @ Wt.mT), lambda Y: Y @ Wt, _identity)]
    U, S, Vh = _svd(W)
    V = Vh.mT
    if name == "spectral_sphere":
        theta = (U[..., :, :1] @ Vh[..., :1, :]) * (S[..., :1] > 0).unsqueeze(-1).to(U.dtype)
        return [_Cone(lambda A: (theta * A).sum((-2, -1), keepdim=True), lambda y: y * theta, _identity)]
    b = _sv_bound(r, W)
    hi = S >= b * (1 - tol)
    cones = [_spectral_block(U, V, hi.to(W.dtype), _psd)]
    if name == "spectral_band":
        a = _sv_bound(lo, W)
        low = (S <= a * (1 + tol)) & ~hi & (a > 0)
        cones.append(_spectral_block(U, V, low.to(W.dtype), _nsd))
    return cones


def _block_norm(blocks: list[torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(sum((y * y).sum((-2, -1), keepdim=True) for y in blocks))


def _infeasibility(cones: list[_Cone], A: torch.Tensor) -> torch.Tensor:
    """dist(L(A), −K) = ‖proj_{K*}(L(A))‖_F per matrix (…, 1, 1): 0 exactly when A is in the tangent cone."""
    return _block_norm([c.dual(c.lin(A)) for c in cones])


def _dual_ascent(G, cones: list[_Cone], lmo, sigma0: float, atol: float, rtol: float, max_steps: int):
    """§4.2's dual ascent for the unit problem min ⟨G, A⟩ s.t. ‖A‖₂ ≤ 1, L(A) ∈ −K, on float64 G (…, m, n).

    Returns (A, Y, converged (…, 1, 1), the last j). A matrix stops at the first j whose projected dual step
    r_j = ‖proj_{K*}(Y_j + σ_j L(A_j)) − Y_j‖/σ_j (= ‖L(A_j)‖ for K = {0}) is ≤ max(atol, rtol·‖Y_j‖), keeping
    A_j and Y_j. r_j bounds the infeasibility: ‖proj_{K*}(L(A_j))‖ = dist(L(A_j), −K) ≤ r_j (Moreau). A matrix
    that never stops gets the best ⟨G, A⟩ among A_J (J = max_steps), the mean of A_0 … A_J and A_0, counting only
    those whose infeasibility is within max(atol, the least of the three)."""
    Y = [c.dual(c.lin(-G)) for c in cones]
    done = torch.zeros(G.shape[:-2] + (1, 1), dtype=torch.bool, device=G.device)
    out = first = None
    total, j = torch.zeros_like(G), 0
    for j in range(max_steps + 1):
        A = -lmo(G + sum(c.adj(y) for c, y in zip(cones, Y)))
        sigma = sigma0 / math.sqrt(j + 1)
        Y_next = [c.dual(y + sigma * c.lin(A)) for c, y in zip(cones, Y)]
        resid = _block_norm([p - q for p, q in zip(Y_next, Y)]) / sigma
        stop = (resid <= torch.clamp(rtol * _block_norm(Y), min=atol)) | ~torch.isfinite(resid)
        first = A if first is None else first
        out = A if out is None else torch.where(done, out, A)
        total = total + A
        done = done | stop
        if j == max_steps or bool(done.all()):
            break
        Y = [torch.where(done, y, yn) for y, yn in zip(Y, Y_next)]
    if not bool(done.all()):
        candidates = (out, total / (j + 1), first)
        infeasible = [_infeasibility(cones, c) for c in candidates]
        admissible = torch.clamp(torch.minimum(torch.minimum(*infeasible[:2]), infeasible[2]), min=atol)
        best, best_value = None, None
        for c, bad in zip(candidates, infeasible):
            value = torch.where(bad <= admissible, (G * c).sum((-2, -1), keepdim=True), torch.full_like(bad, math.inf))
            if best is None:
                best, best_value = c, value
            else:
                better = value < best_value
                best, best_value = torch.where(better, c, best), torch.where(better, value, best_value)
        out = torch.where(done, out, best)
    return out, Y, done, j


def _constrained_rule(args, attrs, constraints):
    g, w = args[0], args[1]
    for i, t in ((0, g), (1, w)):
        if not (isinstance(t, Tensor) and t.is_matrix):
            raise ShapeError(f"needs a matrix, found `{t.show()}`", arg=i, code="GEO0203",
                             help="restrict this rule to matrix parameters (`for matrix W`)")
    name = attrs.get("set")
    if name not in DUAL_SETS:
        hint = did_you_mean(name, DUAL_SETS) if isinstance(name, str) else None
        raise ShapeError(f"has no dual ascent for the set {name!r}".replace("'", '"'), code="GEO0206",
                         help=(hint.replace("`", '"') + " " if hint else "") + "sets: " +
                         ", ".join(f'"{k}"' for k in DUAL_SETS))
    _same_shape(g, w, constraints, 1)
    for i, what in enumerate(("radius", "lo", "eta", "sigma0", "atol", "rtol"), start=2):
        if i < len(args):
            _number(args[i], i, what)
    steps = attrs.get("max_steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or not 0 <= steps <= 1000:
        raise ShapeError(f"`max_steps` must be a static integer in [0, 1000], found {steps!r}", code="GEO0206")
    tol = attrs.get("tol")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:
        raise ShapeError(f"`tol` must be a static number in [0, 1), found {tol!r}", code="GEO0206")
    _check_msign_attrs({"method": attrs.get("msign_method"), "steps": attrs.get("ns_steps"),
                        "coeffs": attrs.get("coeffs"), "dtype": attrs.get("dtype")})
    return g


def _constrained_laws(name: str) -> list[Law]:
    """The laws of constrained_direction on one set, at points of the set from `_set_samples` (scales 0.05 … 3:
    interior points, a few capped singular values, every one capped)."""
    exact = dict(set=name, msign_method="svd")

    def infeasibility(W, A, r, lo):
        """dist(L(A), −K), computed here from the definition of the tangent cone (not by the operator's code)."""
        if name == "stiefel":
            Wt = W / r
            return float(torch.linalg.matrix_norm(_sym(Wt.mT @ A) if W.size(-2) >= W.size(-1) else _sym(A @ Wt.mT)))
        U, S, Vh = _linalg.svd(W, full_matrices=False)
        if name == "spectral_sphere":
            return abs(_inner(U[:, :1] @ Vh[:1], A)) if float(S[0]) > 0 else 0.0
        hi = S >= r * (1 - 1e-3)
        up = torch.linalg.eigvalsh(_sym(U[:, hi].mT @ A @ Vh[hi].mT)).clamp(min=0) if hi.any() else S[:0]
        bad = float((up * up).sum())
        if name == "spectral_band":
            low = (S <= lo * (1 + 1e-3)) & ~hi
            down = torch.linalg.eigvalsh(_sym(U[:, low].mT @ A @ Vh[low].mT)).clamp(max=0) if low.any() else S[:0]
            bad += float((down * down).sum())
        return math.sqrt(bad)

    def coin_toss(W, g, r, lo):
        """proj_T(−G) numerically rank-deficient (a skew matrix of odd size, a trivial tangent space): msign's rank
        decision at a rounding-level singular value is arbitrary, in the operator and in the heuristic alike."""
        sv = _linalg.svdvals(tangent.reference(-g, W, r, lo, set=name))
        return float(sv.max()) <= 1e-9 * float(g.norm()) or float(sv.min()) <= 1e-9 * float(sv.max())

    def heuristic(W, G, r, lo, eta):
        return eta * msign.reference(tangent.reference(-G, W, r, lo, set=name), method="svd")

    def bounded(f, sample):
        z, g, r, lo = sample
        W = project.reference(z, r, lo, set=name)
        eta = 0.3
        for kw, bound in ((exact, 1e-9), (dict(set=name, dtype="fp64"), 2e-4)):
            A = f(g, W, r, lo, eta, max_steps=16, **kw)
            top = float(torch.linalg.matrix_norm(A, 2))
            assert top <= eta * (1 + bound), f"{name}, {kw}: ‖A‖₂ = {top!r} > η = {eta!r}"
        zero = f(torch.zeros_like(g), W, r, lo, max_steps=4, **exact)
        assert torch.isfinite(zero).all() and not zero.any(), f"{name}: a zero gradient gives {zero}"
        nan = f(torch.full_like(g, math.nan), W, r, lo, max_steps=4, **exact)
        assert torch.isnan(nan).all(), f"{name}: a NaN gradient gives a finite direction"

    def one_step(f, sample):
        z, g, r, lo = sample
        W = project.reference(z, r, lo, set=name)
        if coin_toss(W, g, r, lo):
            return
        got, want = f(g, W, r, lo, 0.5, max_steps=0, **exact), heuristic(W, g, r, lo, 0.5)
        assert torch.allclose(got, want, atol=1e-10, rtol=0), \
            f"{name}: max_steps = 0 is not η·msign(tangent(−G, W)) (max |diff| {float((got - want).abs().max()):.3g})"

    def feasible(f, sample):
        z, g, r, lo = sample
        W = project.reference(z, r, lo, set=name)
        atol = 1e-7
        if coin_toss(W, g, r, lo):
            return  # the operator's A₀ and the heuristic below may make different rank decisions
        A = f(g, W, r, lo, 0.5, 1.0, atol, 0.0, max_steps=64, **exact)
        bad, start = infeasibility(W, A, r, lo) / 0.5, infeasibility(W, heuristic(W, g, r, lo, 0.5), r, lo) / 0.5
        assert bad <= max(start, atol) + 1e-12, \
            f"{name}: infeasibility {bad!r} exceeds both atol and the heuristic's {start!r}"

    def optimal(f, sample):
        z, g, r, lo = sample
        W = project.reference(z, r, lo, set=name)
        atol, eta = 1e-7, 0.5
        h = heuristic(W, g, r, lo, eta)
        if infeasibility(W, h, r, lo) > atol * eta or coin_toss(W, g, r, lo):
            return  # an infeasible heuristic may have the lower ⟨G, A⟩: nothing to compare
        A = f(g, W, r, lo, eta, 1.0, atol, 0.0, max_steps=64, **exact)
        slack = 1e-6 * eta * float(_linalg.svdvals(g).sum())
        assert _inner(g, A) <= _inner(g, h) + slack, \
            f"{name}: ⟨G, A⟩ = {_inner(g, A)!r} > ⟨G, A_heuristic⟩ = {_inner(g, h)!r} for a feasible heuristic"

    def interior(f, sample):
        z, g, r, lo = sample
        U, S, Vh = _linalg.svd(z, full_matrices=False)
        inner = torch.full_like(S, 0.5 * r if name == "spectral_ball" else 0.5 * (lo + r))
        W = (U * inner.unsqueeze(-2)) @ Vh
        got, want = f(g, W, r, lo, 0.5, **exact), -0.5 * msign.reference(g, method="svd")
        assert torch.allclose(got, want, atol=1e-12, rtol=0), f"{name}: at an interior point A ≠ −η·msign(G)"

    laws = [Law(f"{name}: ‖A‖₂ ≤ η (Newton–Schulz: within sso8's band), a zero gradient gives 0, NaN gives NaN",
                lambda: _set_samples(name), bounded),
            Law(f"{name}: max_steps = 0 is the one-step heuristic η·msign(tangent(−G, W)) (§4.2)",
                lambda: _set_samples(name), one_step),
            Law(f"{name}: the infeasibility dist(L(A), −K) is within atol (rtol = 0) or no worse than the heuristic's",
                lambda: _set_samples(name), feasible),
            Law(f"{name}: where the heuristic is feasible, ⟨G, A⟩ ≤ ⟨G, A_heuristic⟩ + 1e-6·η‖G‖_* (no worse; an "
                "infeasible heuristic may have the lower ⟨G, A⟩)",
                lambda: _set_samples(name), optimal)]
    if not SETS[name].manifold:
        laws.append(Law(f"{name}: at an interior point A = −η·msign(G), the plain LMO", lambda: _set_samples(name),
                        interior))
    return laws


@op(MATRIX, _constrained_rule, laws=[law for name in DUAL_SETS for law in _constrained_laws(name)],
    domain={"set": Domain(choices=DUAL_SETS), "radius": Domain(low=1e-3), "lo": Domain(0.0, 0.5),
            "eta": Domain(low=0.0), "sigma0": Domain(1e-2, 10.0), "atol": Domain(0.0, 1e-2), "rtol": Domain(0.0, 0.1),
            "max_steps": Domain(choices=(0, 1, 8, 32))})
@values_first
def constrained_direction(g, w, set: StaticArg, radius=1.0, lo=0.0, eta=1.0, sigma0=1.0, atol=1e-6,  # noqa: A002
                          rtol=1e-3, max_steps: StaticArg = 128, tol: StaticArg = 1e-3,
                          msign_method: StaticArg = "ns", ns_steps: StaticArg = 8, coeffs: StaticArg = "sso8",
                          dtype: StaticArg = "fp32"):
    """A ≈ argmin ⟨G, A⟩ s.t. ‖A‖₂ ≤ η and A in the tangent cone T = {A : L(A) ∈ −K} of `set` at W: constrained
    steepest descent under the spectral norm, by dual ascent (Cesista, "Steepest descent on Finsler geometries
    via dual ascent", leloykun.github.io/ponder, 2025-10-29; algorithms.md §4.2). Returns the step A itself, not
    a unit ascent direction (stiefel_direction's Φ = −A/η): update with `W ← retract(W + A, set, r)`, η = lr·r.

        "spectral_ball"     L(A) = sym(U_rᵀ A V_r) over the pairs with σ ≥ r(1 − tol), K = PSD (Y ⪰ 0, proj_psd);
                            no such pair (an interior point): L = 0 and A = −η·msign(G), the plain LMO
        "spectral_band"     the ball's block, and L(A) = sym(U_loᵀ A V_lo) at σ ≤ lo(1 + tol), lo > 0, K = NSD
        "spectral_sphere"   L(A) = ⟨Θ, A⟩, Θ = u₁v₁ᵀ, K = {0}: the 1-D dual y is SSO's λ (sso_lambda), up to
                            the scale of G (λ = y/√min(m, n) for SSO's M̂ = G/‖G‖_F)
        "stiefel"           L(A) = sym(W̃ᵀA), W̃ = W/r (m ≥ n; sym(A W̃ᵀ) for m < n), K = {0}

    LL* = I for each, and the dual of the problem is max_{Y ∈ K*} −η‖G + L*(Y)‖_*. With Ĝ = G/ρ, ρ = ‖G‖_F/√k
    (k = min(m, n): RMS singular value 1, so that σ₀ is dimensionless; the solution scales out exactly):

        Y₀ = proj_{K*}(L(−Ĝ))
        A_j = −msign(Ĝ + L*(Y_j));   Y_{j+1} = proj_{K*}(Y_j + σ_j·L(A_j)),   σ_j = sigma0/√(j + 1)

    stopping at the first j with ‖Y_{j+1} − Y_j‖/σ_j ≤ max(atol, rtol·‖Y_j‖) (the projected dual step: ‖L(A_j)‖
    for K = {0}, as §4.2 states it; for a cone it vanishes exactly at a KKT point, where a feasible A_j with
    inactive constraints stops at once), and returning η·A_j. j = 0 is the one-step heuristic: A₀ =
    −msign(Ĝ + L*proj_{K*}(−LĜ)) = msign(proj_T(−G)) = msign(tangent(−G, W, set)), the LMO of the projected
    descent direction (§4.2's "one step from Y = 0, A = −G, σ = 1"; LMO(proj_T(G)) only where K = {0}).
    Departures: the scaling by ρ; and primal recovery where the stopping rule never fires within `max_steps`:
    then A is, of the last iterate, the average of all iterates and the heuristic A₀, the one with the best
    ⟨G, A⟩ among those whose infeasibility ‖proj_{K*}(L(A))‖_F is within max(atol, the least of the three).
    The dual is non-smooth where Ĝ + L*(Y*) loses rank (typical for square matrices with several capped
    singular values, where the optimal A has singular values below η): there the iterates A_j oscillate with
    an infeasibility of 0.1–0.5, while their average converges to the solution (measured on 8×8 … 32×32 with
    every σ capped: infeasibility 0.02–0.05 after 16 steps, ≈ 0.005 after 128; the primal recovery of Nedić &
    Ozdaglar, "Approximate primal solutions and rate analysis for dual subgradient methods", SIAM J. Optim. 2009).

    A singular value within a relative `tol` (static) of an edge counts as on it. msign by `msign_method` "ns"
    (Newton–Schulz with `coeffs`, `ns_steps`, in `dtype`) or "svd"; everything else in float64 (SVD of W for the
    spectral sets), the result in g's dtype, batched over leading dims. A zero gradient gives 0; NaN gives NaN.
    Data-dependent stopping: one host sync per iteration (as sso_lambda).
    """
    G, W = _f64(g), _f64(w)
    k = min(G.shape[-2:])
    rho = torch.linalg.vector_norm(G, dim=(-2, -1), keepdim=True) / math.sqrt(k)
    cones = _dual_cones(set, W, radius, lo, float(tol))

    def lmo(x):
        if msign_method == "svd":
            return msign.reference(x, method="svd")
        return msign.reference(x, 1e-7, steps=ns_steps, coeffs=coeffs, dtype=dtype, method="ns")

    A, _, _, _ = _dual_ascent(G / _nonzero(rho), cones, lmo, float(sigma0), float(atol), float(rtol), max_steps)
    return (_num(eta, A) * A + 0.0).to(g.dtype)                   # + 0.0: a zero gradient gives +0, not −0
