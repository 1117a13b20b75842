"""Constraint sets and manifolds: projections, retractions and tangent projections.

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

The steepest step under the spectral norm inside a tangent cone (dual ascent, §4.2) is dual_ascent.py's; it
builds on these sets (their points, their tangent maps) and on the cones below.

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

from ...dsl.diagnostics import did_you_mean
from ..types import ShapeError, Tensor
from . import _linalg, sampling
from ._calling import values_first
from ._linalg import f64, inner, map_sv, nonzero_or_one, number_like, proj_psd, svd_f64, sv_bound, sym
from ._rules import check_msign_attrs, number, same_shape
from .matrix import msign
from .registry import MATRIX, WHOLE, Domain, Law, StaticArg, op
from .spectral import spectral_clip, spectral_hardcap
from ._lazy import lazy_torch

torch = lazy_torch(globals())


# ---- the sets ------------------------------------------------------------------------------------------
def _l2_project(x, r, lo):
    n = torch.linalg.vector_norm(x)
    r = number_like(r, x)
    return x * torch.where(n > r, r / nonzero_or_one(n), torch.ones_like(n))


def _sphere_project(x, r, lo):
    n = torch.linalg.vector_norm(x)
    r = number_like(r, x)
    fallback = torch.full_like(x, 1.0 / math.sqrt(max(x.numel(), 1)))  # 0 has no nearest point: pick 1/√N
    return torch.where(n > 0, x * (r / nonzero_or_one(n)), r * fallback)


def _linf_project(x, r, lo):
    r = number_like(r, x)
    return torch.minimum(torch.maximum(x, -r), r)


def _linf_sphere_project(x, r, lo):
    """Outside the cube: clamp. Inside: the nearest face is the one of the largest |xᵢ|, pushed to ±r."""
    r = number_like(r, x)
    clamped = torch.minimum(torch.maximum(x, -r), r)
    flat = clamped.reshape(-1)
    top = flat.abs().argmax()
    pushed = flat.clone()
    pushed[top] = torch.where(flat[top] < 0, -r, r)
    inside = flat.abs().max() < r
    return torch.where(inside, pushed, flat).reshape(x.shape)


def _ball_project(x, r, lo):
    b = sv_bound(r, f64(x))
    return map_sv(x, lambda s: torch.minimum(s, b))


def _spectral_sphere_project(x, r, lo):
    """σᵢ ← min(σᵢ, r) for i > 1 and σ₁ ← r: the nearest matrix with σ_max = r (von Neumann)."""
    b = sv_bound(r, f64(x))

    def fn(s):
        capped = torch.minimum(s, b)
        return torch.cat([b * torch.ones_like(s[..., :1]), capped[..., 1:]], dim=-1)
    return map_sv(x, fn)


def _band_project(x, r, lo):
    X = f64(x)
    a, b = sv_bound(lo, X), sv_bound(r, X)
    return map_sv(x, lambda s: torch.minimum(torch.maximum(s, a), b))


def _stiefel_project(x, r, lo):
    """r·U Vᵀ from the reduced SVD (zero singular values included, so the result is always semi-orthogonal)."""
    U, _, Vh = svd_f64(x)
    return (number_like(r, f64(x)) * (U @ Vh)).to(x.dtype)


def _oblique_project(x, r, lo):
    n = torch.linalg.vector_norm(x, dim=-2, keepdim=True)            # (…, 1, n) column norms
    fallback = torch.full_like(x, 1.0 / math.sqrt(x.size(-2)))
    return number_like(r, x) * torch.where(n > 0, x / nonzero_or_one(n), fallback)


def _sphere_retract_spectral(x, r, lo, method, steps, coeffs, dtype):
    """SSO's hard retraction (r/σ₁)·x (radial, keeps the singular vectors and the ratios of the σᵢ)."""
    sigma = torch.linalg.matrix_norm(f64(x), ord=2, keepdim=True)
    if bool((sigma == 0).any()):                                      # 0 cannot be scaled onto the sphere
        return torch.where(sigma == 0, _spectral_sphere_project(x, r, lo).to(torch.float64),
                           f64(x) * (number_like(r, f64(x)) / nonzero_or_one(sigma))).to(x.dtype)
    return (f64(x) * (number_like(r, f64(x)) / sigma)).to(x.dtype)


def _stiefel_retract(x, r, lo, method, steps, coeffs, dtype):
    if method == "ns":
        return (number_like(r, x) * msign.reference(x, 1e-7, steps=steps, coeffs=coeffs, dtype=dtype, method="ns")).to(x.dtype)
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
    on = n >= number_like(r, x) * (1 - tol)
    push = torch.clamp((g * x).sum(), min=0) / nonzero_or_one(n * n)
    return torch.where(on, g - push * x, g)


def _sphere_tangent(g, x, r, lo, tol):
    n = torch.linalg.vector_norm(x)
    return g - ((g * x).sum() / nonzero_or_one(n * n)) * x


def _linf_tangent(g, x, r, lo, tol):
    edge = number_like(r, x) * (1 - tol)
    out = torch.where(x >= edge, torch.clamp(g, max=0), g)
    return torch.where(x <= -edge, torch.clamp(g, min=0), out)


def _linf_sphere_tangent(g, x, r, lo, tol):
    """The ball's cone at the active faces (|xᵢ| = r: no outward component), and one active coordinate held
    at 0 so that max|x| stays r to first order: the one whose clamped value is smallest (the nearest of the
    convex cones whose union is the tangent cone)."""
    edge = number_like(r, x) * (1 - tol)
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
    B = sym(Um.mT @ G @ Vm)
    P = proj_psd(B) if psd else -proj_psd(-B)
    return G - Um @ P @ Vm.mT


def _ball_tangent(g, x, r, lo, tol):
    U, S, Vh = svd_f64(x)
    G = f64(g)
    hi = (S >= sv_bound(r, f64(x)) * (1 - tol)).to(G.dtype)
    return _remove_cone(G, U, Vh, hi, psd=True).to(g.dtype)


def _band_tangent(g, x, r, lo, tol):
    U, S, Vh = svd_f64(x)
    G = f64(g)
    a, b = sv_bound(lo, f64(x)), sv_bound(r, f64(x))
    hi = S >= b * (1 - tol)
    low = (S <= a * (1 + tol)) & ~hi & (a > 0)       # σ ≥ 0 is no constraint: only a positive lower edge binds
    G = _remove_cone(G, U, Vh, hi.to(G.dtype), psd=True)
    return _remove_cone(G, U, Vh, low.to(G.dtype), psd=False).to(g.dtype)


def _spectral_sphere_tangent(g, x, r, lo, tol):
    U, S, Vh = svd_f64(x)
    theta = (U[..., :, :1] @ Vh[..., :1, :]) * (S[..., :1] > 0).unsqueeze(-1).to(U.dtype)
    G = f64(g)
    return (G - (theta * G).sum((-2, -1), keepdim=True) * theta).to(g.dtype)


def _stiefel_tangent(g, x, r, lo, tol):
    r2 = number_like(r, f64(x)) ** 2
    G, X = f64(g), f64(x)
    if x.size(-2) >= x.size(-1):
        out = G - X @ sym(X.mT @ G) / r2
    else:
        out = G - sym(G @ X.mT) @ X / r2
    return out.to(g.dtype)


def _oblique_tangent(g, x, r, lo, tol):
    n2 = (x * x).sum(-2, keepdim=True)
    return g - x * ((g * x).sum(-2, keepdim=True) / nonzero_or_one(n2))


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
            number(args[i], i, name)
    return args[0]


def _retract_rule(args, attrs, constraints):
    out = _project_rule(args, attrs, constraints)
    check_msign_attrs(attrs, ("ns", "polar", "svd"))
    return out


def _tangent_rule(args, attrs, constraints):
    g = args[0]
    if not isinstance(g, Tensor):
        raise ShapeError(f"needs a tensor, found `{g.show()}`", arg=0, code="GEO0202")
    _set_of(attrs, args[1], 1)
    same_shape(g, args[1], constraints, 1)
    for i, name in ((2, "radius"), (3, "lo")):
        if i < len(args):
            number(args[i], i, name)
    tol = attrs.get("tol")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:
        raise ShapeError(f"`tol` must be a static number in [0, 1), found {tol!r}", code="GEO0206")
    return g


# ---- laws ----------------------------------------------------------------------------------------------
def set_samples(name: str):
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

    return [Law(f"{name}: project lands in the set and is idempotent", lambda: set_samples(name), feasible_idempotent),
            Law(f"{name}: no sampled feasible point is closer than project(z)", lambda: set_samples(name), nearest)]


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

    laws = [Law(f"{name}: retract lands on the set and fixes its points", lambda: set_samples(name), lands)]
    if name in ("spectral_ball", "spectral_band", "stiefel"):
        laws.append(Law(f"{name}: the Newton–Schulz retraction (sso8) of a point near the set lands on it to 2e-3",
                        lambda: set_samples(name), lands_ns))
    return laws


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
        assert abs(inner(g - t, t)) <= 1e-9 * scale * scale, \
            f"{name}: ⟨g − P(g), P(g)⟩ = {inner(g - t, t)!r} ≠ 0 (not an orthogonal projection onto a cone)"

    def normal(f, sample):
        z, g, r, lo = sample
        x = project.reference(z, r, lo, set=name)
        t = f(g, x, r, lo, set=name)
        scale = float(g.abs().max()) * g.numel() * max(r, 1.0)
        if name == "l2_sphere":
            bad = abs(inner(t, x))
        elif name == "spectral_sphere":
            U, _, Vh = _linalg.svd(x, full_matrices=False)
            bad = abs(inner(t, U[:, :1] @ Vh[:1]))
        elif name == "stiefel":
            sym_part = sym(x.mT @ t) if x.size(-2) >= x.size(-1) else sym(t @ x.mT)
            bad = float(sym_part.abs().max())
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
            assert not on or inner(t, x) <= 1e-9 * scale * r, f"points outwards: ⟨t, x⟩ = {inner(t, x)!r}"
        elif name in ("linf_ball", "linf_sphere"):
            edge = r * (1 - 1e-3)
            assert float(t[x >= edge].clamp(min=0).sum() - t[x <= -edge].clamp(max=0).sum()) <= 0, "points outwards"
            if name == "linf_sphere":
                active = x.abs() >= edge
                assert bool((t[active] == 0).any()), "no active face is held: max|x| leaves r to first order"
        else:
            U, S, Vh = _linalg.svd(x, full_matrices=False)
            hi = S >= r * (1 - 1e-3)
            B = sym(U[:, hi].mT @ t @ Vh[hi].mT)
            top = float(torch.linalg.eigvalsh(B).max()) if hi.any() else 0.0
            assert top <= 1e-9 * scale, f"{name}: sym(U_rᵀ t V_r) has an eigenvalue {top!r} > 0 (points outwards)"
            if name == "spectral_band":
                low = (S <= lo * (1 + 1e-3)) & ~hi
                B = sym(U[:, low].mT @ t @ Vh[low].mT)
                bottom = float(torch.linalg.eigvalsh(B).min()) if low.any() else 0.0
                assert bottom >= -1e-9 * scale, f"{name}: points below the band's lower edge ({bottom!r})"

    laws = [Law(f"{name}: tangent is idempotent and an orthogonal cone projection, ⟨g − P(g), P(g)⟩ = 0",
                lambda: set_samples(name), idempotent_moreau)]
    if s.manifold:
        laws.append(Law(f"{name}: the tangent vector is orthogonal to the normal space", lambda: set_samples(name),
                        normal))
    else:
        laws.append(Law(f"{name}: the tangent vector lies in the tangent cone (never points out of the set)",
                        lambda: set_samples(name), in_cone))
    return laws


def _laws(make) -> list[Law]:
    return [law for name in SETS for law in make(name)]


# ---- the operators -------------------------------------------------------------------------------------
@op(MATRIX, _project_rule, laws=_laws(_project_laws), domain={"set": Domain(choices=tuple(SETS)), "radius": Domain(low=1e-3)}, sharding=WHOLE)
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


@op(MATRIX, _retract_rule, laws=_laws(_retract_laws), domain={"set": Domain(choices=tuple(SETS)), "radius": Domain(low=1e-3)}, sharding=WHOLE)
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


@op(MATRIX, _tangent_rule, laws=_laws(_tangent_laws), domain={"set": Domain(choices=tuple(SETS)), "radius": Domain(low=1e-3)}, sharding=WHOLE)
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
