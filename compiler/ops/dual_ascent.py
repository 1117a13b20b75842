"""Constrained steepest descent under the spectral norm, by dual ascent (algorithms.md §4.2): the step that
decreases the loss fastest among those of spectral norm at most η that stay, to first order, in a set
(manifold.py's sets: their tangent cones, their points).

    constrained_direction(g, w, set, radius, lo, eta, …)   A ≈ argmin ⟨G, A⟩, ‖A‖₂ ≤ η, A ∈ T, for "spectral_ball",
                                     "spectral_band", "spectral_sphere" (SSO's λ as a 1-D dual) and "stiefel"
    stiefel_direction(g, w, radius, …)                     manifold Muon's unit Φ (fixed iterations, or the
                                                           alternating-projection heuristic)

A tangent cone is T = {A : L(A) ∈ −K} for a linear L with LL* = I (manifold.py's docstring lists L and K per set);
the Lagrangian of min ⟨G, A⟩ s.t. ‖A‖₂ ≤ 1, L(A) ∈ −K gives A(Y) = −msign(G + L*(Y)), Y ∈ K*, and dual ascent
moves Y along L(A(Y)), projected onto K*. msign is the LMO of the spectral norm, so every iterate costs one
orthogonalization (Newton–Schulz, or an exact SVD).

Sources: Cesista, "Steepest descent on Finsler geometries via dual ascent" (leloykun.github.io/ponder,
2025-10-29) and "steepest descent on the Stiefel manifold" (2025-07-18); algorithms.md §4.2; Nedić & Ozdaglar,
SIAM J. Optim. 2009 (primal recovery by averaging).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ...dsl.diagnostics import did_you_mean
from ..types import ShapeError
from . import _linalg, sampling
from ._calling import values_first
from ._linalg import f64, inner, nonzero_or_one, number_like, proj_psd, svd_f64, sv_bound, sym
from ._rules import check_msign_attrs, number, require_matrices, same_shape
from .manifold import SETS, project, set_samples, tangent
from .matrix import msign
from .registry import MATRIX, WHOLE, Domain, Law, StaticArg, op
from ._lazy import lazy_torch

torch = lazy_torch(globals())


# ---- steepest descent on the Stiefel manifold ------------------------------------------------------------
def _stiefel_rule(args, attrs, constraints):
    g, w = args[0], args[1]
    require_matrices(args)
    same_shape(g, w, constraints, 1)
    for i, name in ((2, "radius"), (3, "sigma0")):
        if i < len(args):
            number(args[i], i, name)
    iters = attrs.get("iters")
    if not isinstance(iters, int) or isinstance(iters, bool) or not 1 <= iters <= 1000:
        raise ShapeError(f"`iters` must be a static integer in [1, 1000], found {iters!r}", code="GEO0206")
    if attrs.get("method") not in ("dual_ascent", "alternating"):
        raise ShapeError(f"`method` must be \"dual_ascent\" or \"alternating\", found {attrs.get('method')!r}",
                         code="GEO0206")
    check_msign_attrs({"method": attrs.get("msign_method"), "steps": attrs.get("ns_steps"),
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
            return float(torch.linalg.matrix_norm(sym(W.mT @ phi) if W.size(0) >= W.size(1) else sym(phi @ W.mT)))
        assert violation(best) <= violation(first) + 1e-12, "dual ascent returned a less tangent direction than its start"

    return [Law("stiefel_direction has ‖Φ‖₂ ≤ 1 and maps a zero gradient to 0", sample, unit),
            Law("on the orthogonal group Φ = W·msign(skew(WᵀG)), the exact steepest direction", sample, square),
            Law("dual ascent never returns a direction less tangent than the heuristic it starts from", sample, no_worse)]


@op(MATRIX, _stiefel_rule, laws=_stiefel_laws(), sharding=WHOLE)
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
    Wt = W / number_like(radius, W)

    def polar(x):
        if msign_method == "svd":
            return msign.reference(x, method="svd")
        return msign.reference(x, 1e-7, steps=ns_steps, coeffs=coeffs, dtype=dtype, method="ns")

    if method == "alternating":
        A = G
        for _ in range(iters):
            A = polar(A - Wt @ sym(Wt.mT @ A))
        out = A
    else:
        Lam = -sym(Wt.mT @ G)
        scale = number_like(sigma0, G) * torch.linalg.vector_norm(G, dim=(-2, -1), keepdim=True) / math.sqrt(n)
        out, best = None, None
        for j in range(iters):
            phi = polar(G + Wt @ Lam)
            resid = sym(Wt.mT @ phi)
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
    return -proj_psd(-b)


def _spectral_block(U, V, mask, dual) -> _Cone:
    """L(A) = sym(U_Sᵀ A V_S) over the singular pairs selected by mask (…, k): a k×k matrix, zero outside S×S."""
    Um, Vm = U * mask.unsqueeze(-2), V * mask.unsqueeze(-2)
    return _Cone(lambda A: sym(Um.mT @ A @ Vm), lambda Y: Um @ Y @ Vm.mT, dual)


def _dual_cones(name: str, W: torch.Tensor, r, lo, tol: float) -> list[_Cone]:
    """The tangent cone of `name` at W as blocks of L(A) ∈ −K with LL* = I (float64; W need not lie on the set)."""
    if name == "stiefel":
        Wt = W / number_like(r, W)
        if W.size(-2) >= W.size(-1):
            return [_Cone(lambda A: sym(Wt.mT @ A), lambda Y: Wt @ Y, _identity)]
        return [_Cone(lambda A: sym(A @ Wt.mT), lambda Y: Y @ Wt, _identity)]
    U, S, Vh = svd_f64(W)
    V = Vh.mT
    if name == "spectral_sphere":
        theta = (U[..., :, :1] @ Vh[..., :1, :]) * (S[..., :1] > 0).unsqueeze(-1).to(U.dtype)
        return [_Cone(lambda A: (theta * A).sum((-2, -1), keepdim=True), lambda y: y * theta, _identity)]
    b = sv_bound(r, W)
    hi = S >= b * (1 - tol)
    cones = [_spectral_block(U, V, hi.to(W.dtype), proj_psd)]
    if name == "spectral_band":
        a = sv_bound(lo, W)
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
    require_matrices(args)
    name = attrs.get("set")
    if name not in DUAL_SETS:
        hint = did_you_mean(name, DUAL_SETS) if isinstance(name, str) else None
        raise ShapeError(f"has no dual ascent for the set {name!r}".replace("'", '"'), code="GEO0206",
                         help=(hint.replace("`", '"') + " " if hint else "") + "sets: " +
                         ", ".join(f'"{k}"' for k in DUAL_SETS))
    same_shape(g, w, constraints, 1)
    for i, what in enumerate(("radius", "lo", "eta", "sigma0", "atol", "rtol"), start=2):
        if i < len(args):
            number(args[i], i, what)
    steps = attrs.get("max_steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or not 0 <= steps <= 1000:
        raise ShapeError(f"`max_steps` must be a static integer in [0, 1000], found {steps!r}", code="GEO0206")
    tol = attrs.get("tol")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:
        raise ShapeError(f"`tol` must be a static number in [0, 1), found {tol!r}", code="GEO0206")
    check_msign_attrs({"method": attrs.get("msign_method"), "steps": attrs.get("ns_steps"),
                        "coeffs": attrs.get("coeffs"), "dtype": attrs.get("dtype")})
    return g


def _constrained_laws(name: str) -> list[Law]:
    """The laws of constrained_direction on one set, at points of the set from `set_samples` (scales 0.05 … 3:
    interior points, a few capped singular values, every one capped)."""
    exact = dict(set=name, msign_method="svd")

    def infeasibility(W, A, r, lo):
        """dist(L(A), −K), computed here from the definition of the tangent cone (not by the operator's code)."""
        if name == "stiefel":
            Wt = W / r
            return float(torch.linalg.matrix_norm(sym(Wt.mT @ A) if W.size(-2) >= W.size(-1) else sym(A @ Wt.mT)))
        U, S, Vh = _linalg.svd(W, full_matrices=False)
        if name == "spectral_sphere":
            return abs(inner(U[:, :1] @ Vh[:1], A)) if float(S[0]) > 0 else 0.0
        hi = S >= r * (1 - 1e-3)
        up = torch.linalg.eigvalsh(sym(U[:, hi].mT @ A @ Vh[hi].mT)).clamp(min=0) if hi.any() else S[:0]
        bad = float((up * up).sum())
        if name == "spectral_band":
            low = (S <= lo * (1 + 1e-3)) & ~hi
            down = torch.linalg.eigvalsh(sym(U[:, low].mT @ A @ Vh[low].mT)).clamp(max=0) if low.any() else S[:0]
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
        assert inner(g, A) <= inner(g, h) + slack, \
            f"{name}: ⟨G, A⟩ = {inner(g, A)!r} > ⟨G, A_heuristic⟩ = {inner(g, h)!r} for a feasible heuristic"

    def interior(f, sample):
        z, g, r, lo = sample
        U, S, Vh = _linalg.svd(z, full_matrices=False)
        middle = torch.full_like(S, 0.5 * r if name == "spectral_ball" else 0.5 * (lo + r))
        W = (U * middle.unsqueeze(-2)) @ Vh
        got, want = f(g, W, r, lo, 0.5, **exact), -0.5 * msign.reference(g, method="svd")
        assert torch.allclose(got, want, atol=1e-12, rtol=0), f"{name}: at an interior point A ≠ −η·msign(G)"

    laws = [Law(f"{name}: ‖A‖₂ ≤ η (Newton–Schulz: within sso8's band), a zero gradient gives 0, NaN gives NaN",
                lambda: set_samples(name), bounded),
            Law(f"{name}: max_steps = 0 is the one-step heuristic η·msign(tangent(−G, W)) (§4.2)",
                lambda: set_samples(name), one_step),
            Law(f"{name}: the infeasibility dist(L(A), −K) is within atol (rtol = 0) or no worse than the heuristic's",
                lambda: set_samples(name), feasible),
            Law(f"{name}: where the heuristic is feasible, ⟨G, A⟩ ≤ ⟨G, A_heuristic⟩ + 1e-6·η‖G‖_* (no worse; an "
                "infeasible heuristic may have the lower ⟨G, A⟩)",
                lambda: set_samples(name), optimal)]
    if not SETS[name].manifold:
        laws.append(Law(f"{name}: at an interior point A = −η·msign(G), the plain LMO", lambda: set_samples(name),
                        interior))
    return laws


@op(MATRIX, _constrained_rule, laws=[law for name in DUAL_SETS for law in _constrained_laws(name)],
    domain={"set": Domain(choices=DUAL_SETS), "radius": Domain(low=1e-3), "lo": Domain(0.0, 0.5),
            "eta": Domain(low=0.0), "sigma0": Domain(1e-2, 10.0), "atol": Domain(0.0, 1e-2), "rtol": Domain(0.0, 0.1),
            "max_steps": Domain(choices=(0, 1, 8, 32))}, sharding=WHOLE)
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
    G, W = f64(g), f64(w)
    k = min(G.shape[-2:])
    rho = torch.linalg.vector_norm(G, dim=(-2, -1), keepdim=True) / math.sqrt(k)
    cones = _dual_cones(set, W, radius, lo, float(tol))

    def lmo(x):
        if msign_method == "svd":
            return msign.reference(x, method="svd")
        return msign.reference(x, 1e-7, steps=ns_steps, coeffs=coeffs, dtype=dtype, method="ns")

    A, _, _, _ = _dual_ascent(G / nonzero_or_one(rho), cones, lmo, float(sigma0), float(atol), float(rtol), max_steps)
    return (number_like(eta, A) * A + 0.0).to(g.dtype)                   # + 0.0: a zero gradient gives +0, not −0
