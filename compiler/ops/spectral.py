"""Spectral operators: the top singular pair by warm-started power iteration, spectral clipping through msign
identities, and the Lagrange multiplier of the Spectral Sphere Optimizer.

Power iteration (the triplet SSO needs for its retraction and its tangent constraint). The right vectors live
in a `state` as the rows of v ∈ R^{k×n} (a batch of matrices: (…, k, n)), so the estimate is warm-started from
the previous step, as the Megatron implementation of SSO caches it. k = 1 is sso.py's single vector; k > 1 runs
orthogonal (subspace) iteration with Rayleigh–Ritz, whose first row stays accurate when σ₁ ≈ σ₂:

    state v = right_init(W, rank = 8)          # 1ᵀ/√n (sso.py's start vector), then the DCT-II basis
    v = power_iter(W, v, steps = 5)            # k = 1: u ← Wvᵀ/‖Wvᵀ‖, v ← uᵀW/‖uᵀW‖ (repeated)
    let sigma = top_sv(W, v)                   # σ₁ ≈ ‖W v₀ᵀ‖
    let theta = top_left(W, v) @ top_right(v)  # Θ = u₁v₁ᵀ, the gradient of ‖W‖₂ (for a simple σ₁)

Spectral clipping without an SVD (Cesista, "Fast, numerically stable, and auto-differentiable spectral
clipping via Newton–Schulz iteration", leloykun.github.io/ponder/spectral-clipping; algorithms.md §4.2). With
O = msign(W) and the scalar identity clip_[α,β](x) = ½(α + β + |α − x| − |β − x|), |y| = y·sign(y):

    spectral_clip_[α,β](W) = ½[(α+β)·O + (αO − W)·msign(αO − W)ᵀ·O − (βO − W)·msign(βO − W)ᵀ·O]
    spectral_hardcap_β(W)  = ½[β·O + W − (βO − W)·msign(βO − W)ᵀ·O]         (= U min(Σ, β) Vᵀ)

Both are evaluated on the wide orientation (rows ≤ cols), where the products are min(m, n)² Grams.

The SSO multiplier (Xie et al., "Controlled LLM Training on Spectral Sphere", arXiv 2601.08393; code
github.com/Unakar/Spectral-Sphere-Optimizer, sso.py; algorithms.md §4.1): the steepest unit direction Φ for the
momentum M̂ that keeps ‖W‖₂ fixed to first order solves max ⟨M̂, Φ⟩ s.t. ‖Φ‖₂ ≤ 1, ⟨Θ, Φ⟩ = 0; its Lagrangian
gives Φ(λ) = msign(M̂ + λΘ) with λ* the root of the monotone h(λ) = ⟨Θ, msign(M̂ + λΘ)⟩.
"""
from __future__ import annotations

import math

from ..types import ShapeError, Tensor
from . import _linalg, sampling
from ._rules import check_msign_attrs, check_steps, number
from .matrix import msign, msign_svd
from .registry import INIT, MATRIX, SHAPE, WHOLE, Domain, Law, StaticArg, op
from ._lazy import lazy_torch

torch = lazy_torch(globals())


# ---- helpers -------------------------------------------------------------------------------------------
def _work(x: torch.Tensor) -> torch.Tensor:
    """float64 stays float64; everything else computes in float32 (sso.py runs its power iteration in fp32)."""
    return x.to(torch.float64) if x.dtype == torch.float64 else x.to(torch.float32)


def _norm_last(x: torch.Tensor) -> torch.Tensor:
    """‖x‖₂ along the last dim, kept as size 1."""
    return torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """x/‖x‖ along the last dim; a zero row stays zero (no division by zero, no NaN)."""
    n = _norm_last(x)
    return x / torch.where(n > 0, n, torch.ones_like(n))


def _wide(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The rows ≤ cols orientation of x, and whether it was transposed."""
    tall = x.size(-2) > x.size(-1)
    return (x.mT if tall else x), tall


# ---- type rules ----------------------------------------------------------------------------------------
def _matrix(t, i: int, what: str = "") -> Tensor:
    if not (isinstance(t, Tensor) and t.is_matrix):
        raise ShapeError(f"needs a matrix{what}, found `{t.show()}`", arg=i, code="GEO0203",
                         help="restrict this rule to matrix parameters (`for matrix W`) or view them as matrices "
                              "(`as matrix`)")
    return t


def _rows_type(w: Tensor, k, dtype: str | None = None) -> Tensor:
    """The type of a block of k right vectors of w: (…, k, n)."""
    return Tensor(w.shape[:-2] + (k, w.shape[-1]), w.batched, w.dtype if dtype is None else dtype)


def _per_matrix(w: Tensor) -> Tensor:
    """A value per matrix: 0-d, or (…, 1, 1) for a batch (as reductions with axis = None)."""
    return Tensor((1, 1), True, w.dtype) if w.batched else Tensor((), False, w.dtype)


def _right_vector(args, i: int, constraints) -> Tensor:
    w, v = args[0], args[i]
    if not (isinstance(v, Tensor) and v.shape is not None and len(v.shape) >= 2 and v.batched == w.batched):
        raise ShapeError(f"needs right vectors as the rows of a [k, n] matrix (a `state v = right_init(W)`), found "
                         f"`{v.show()}`", arg=i, code="GEO0204")
    if v.shape[-1] != w.shape[-1]:
        if isinstance(v.shape[-1], int) and isinstance(w.shape[-1], int):
            raise ShapeError(f"needs v with as many entries as W has columns: `{w.show()}` and `{v.show()}`",
                             arg=i, code="GEO0204")
        constraints.append((v.shape[-1], w.shape[-1]))
    return v


def _right_init_rule(args, attrs, constraints):
    w = _matrix(args[0], 0)
    rank = attrs.get("rank")
    if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= 65536:
        raise ShapeError(f"`rank` must be a static integer in [1, 65536], found {rank!r}", code="GEO0206")
    if attrs.get("method") not in ("ones", "svd"):
        raise ShapeError(f"`method` must be \"ones\" or \"svd\", found {attrs.get('method')!r}", code="GEO0206")
    known = [d for d in w.shape[-2:] if isinstance(d, int)]
    return _rows_type(w, min([rank, *known]))


def _power_iter_rule(args, attrs, constraints):
    w = _matrix(args[0], 0)
    v = _right_vector(args, 1, constraints)
    check_steps(attrs.get("steps"), "steps")
    return _rows_type(w, v.shape[-2], v.dtype)


def _top_right_rule(args, attrs, constraints):
    v = args[0]
    if not (isinstance(v, Tensor) and v.is_matrix):
        raise ShapeError(f"needs right vectors as the rows of a [k, n] matrix, found `{v.show()}`", arg=0,
                         code="GEO0204")
    return Tensor(v.shape[:-2] + (1, v.shape[-1]), v.batched, v.dtype)


def _top_sv_rule(args, attrs, constraints):
    w = _matrix(args[0], 0)
    _right_vector(args, 1, constraints)
    return _per_matrix(w)


def _top_left_rule(args, attrs, constraints):
    w = _matrix(args[0], 0)
    _right_vector(args, 1, constraints)
    return Tensor(w.shape[:-1] + (1,), w.batched, w.dtype)


def _clip_rule(args, attrs, constraints):
    w = _matrix(args[0], 0)
    for i, name in ((1, "lo"), (2, "hi")) if len(args) == 3 else ((1, "beta"),):
        number(args[i], i, name)
    check_msign_attrs(attrs, ("ns", "polar", "svd"))
    return w


# ---- power iteration -----------------------------------------------------------------------------------
def _dct_rows(k: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """k orthonormal rows of length n: the DCT-II basis, whose first row is 1ᵀ/√n (sso.py's start vector)."""
    i = torch.arange(n, dtype=torch.float64, device=like.device)
    j = torch.arange(k, dtype=torch.float64, device=like.device).unsqueeze(-1)
    rows = torch.cos(math.pi * j * (i + 0.5) / n)
    return (rows / torch.linalg.vector_norm(rows, dim=-1, keepdim=True)).to(like.dtype)


def _start_vector(W: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """A usable single start vector, without a host sync: the given v if it is finite, nonzero and not in W's
    null space; else 1ᵀ/√n; and if W maps that to 0 too, W's longest row (W·rowᵢᵀ has entry ‖rowᵢ‖² ≠ 0)."""
    n = W.size(-1)
    ones = torch.full_like(V, 1.0 / math.sqrt(n))
    ok = torch.isfinite(V).all(dim=-1, keepdim=True) & (_norm_last(V) > 0)
    V = torch.where(ok, V, ones)
    row_norms = _norm_last(W)                                         # (…, m, 1)
    longest = torch.gather(W, -2, row_norms.argmax(dim=-2, keepdim=True).expand(*W.shape[:-2], 1, n))
    for candidate in (ones, _normalize(longest)):
        dead = _norm_last(V @ W.mT) <= 0                              # v ∈ null(W)
        V = torch.where(dead & (_norm_last(candidate @ W.mT) > 0), candidate, V)
    return _normalize(V)


def _orthonormalize(Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal rows spanning Y's rows (float64, symmetric orthogonalization through a k×k eigh — LAPACK's
    QR is needlessly slow on tiny matrices), ordered by how much of Y they carry; rows beyond Y's numerical rank
    are zero. Returns (rows, good): good marks the nonzero rows, which come first."""
    lam, Z = _linalg.eigh(Y @ Y.mT)
    lam, Z = lam.flip(-1), Z.flip(-1)                                 # descending
    good = lam > lam[..., :1].clamp(min=0) * 1e-12
    scale = torch.where(good, lam, torch.ones_like(lam)).rsqrt() * good
    return (Z.mT @ Y) * scale.unsqueeze(-1), good


def _complete(V: torch.Tensor, good: torch.Tensor) -> torch.Tensor:
    """Fills the zero rows of V (orthonormal rows first, `good`) with orthonormal vectors of the complement of its
    span, taken from the DCT-II basis, so that a rank-deficient W never shrinks the block for the next step."""
    k, n = V.shape[-2:]
    D = _dct_rows(k, n, V).expand_as(V)
    E, _ = _orthonormalize(D - (D @ V.mT) @ V)
    shift = (torch.arange(k, device=V.device) - good.sum(-1, keepdim=True)).clamp(min=0)
    fill = E.gather(-2, shift.unsqueeze(-1).expand(*V.shape))
    return torch.where(good.unsqueeze(-1), V, fill)


def _ritz(W: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Rayleigh–Ritz on the row space of V (orthonormal rows): the rows rotated to the Ritz vectors of WᵀW,
    largest Ritz value first (a k×k eigh)."""
    B = V @ W.mT                                                      # (…, k, m)
    _, Z = _linalg.eigh(B @ B.mT)                                # ascending
    return Z.flip(-1).mT @ V


def _power_laws() -> list[Law]:
    def spectrum_sample():
        st = sampling._st()

        def build(args):
            (m, n), seed, scale, rank = args
            g = torch.Generator().manual_seed(seed)
            k = min(m, n)
            U, _ = torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64))
            V, _ = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))
            s = torch.rand(k, generator=g, dtype=torch.float64).sort(descending=True).values * 0.5
            s[0] = 1.0                                                # σ₂/σ₁ ≤ 0.5: a clear gap
            return scale * (U * s) @ V.T, scale, rank
        return st.tuples(sampling.matrix_shapes(7), st.integers(0, 2**31 - 1), st.sampled_from([1e-3, 1.0, 1e3]),
                         st.integers(1, 3)).map(build)

    def converges(f, sample):
        W, scale, rank = sample
        v = f(W, right_init.reference(W, rank=rank), steps=60)
        sigma = float(top_sv.reference(W, v))
        assert abs(sigma - scale) <= 1e-9 * scale, f"σ₁ = {scale!r}, power iteration (rank {rank}) gives {sigma!r}"
        Vh = _linalg.svd(W).Vh
        assert abs(abs(float((v[0] * Vh[0]).sum())) - 1) <= 1e-9, "v is not ±v₁"

    def unit_and_bounded(f, sample):
        W, rank = sample
        k = min(rank, *W.shape)
        for start in (right_init.reference(W, rank=rank), torch.zeros(k, W.size(-1), dtype=W.dtype)):
            v = f(W, start, steps=3)
            gram = v @ v.mT
            assert torch.isfinite(v).all() and torch.allclose(gram, torch.eye(k, dtype=W.dtype), atol=1e-12), \
                f"the rows of v are not orthonormal: {gram}"
            sigma, top = float(top_sv.reference(W, v)), float(torch.linalg.matrix_norm(W, 2))
            assert sigma <= top * (1 + 1e-12), f"‖Wv₀ᵀ‖ = {sigma!r} exceeds σ₁ = {top!r}"
            if k > 1:  # Rayleigh–Ritz: the first row carries the largest Ritz value
                ritz = torch.linalg.vector_norm(v @ W.mT, dim=-1)
                assert float(ritz[0]) >= float(ritz.max()) * (1 - 1e-12), f"rows not ordered by Ritz value: {ritz}"
        z = f(torch.zeros_like(W), right_init.reference(W, rank=rank), steps=3)
        assert torch.isfinite(z).all() and abs(float(z[0].norm()) - 1) <= 1e-12, "power_iter(0, v) is not unit"

    def ranks():
        return sampling._st().tuples(sampling.gaussian_matrices(7), sampling._st().integers(1, 3))

    return [Law("power iteration (rank 1–3) recovers σ₁ and ±v₁ on a matrix with a spectral gap", spectrum_sample,
                converges),
            Law("power_iter returns finite orthonormal rows, Ritz-ordered (also for zero matrices and zero starts), "
                "and top_sv(W, v) ≤ σ₁", ranks, unit_and_bounded)]


def _init_laws() -> list[Law]:
    def rows(f, sample):
        W, rank = sample
        for method in ("ones", "svd"):
            v = f(W, rank=rank, method=method)
            k = min(rank, *W.shape)
            assert v.shape == (k, W.size(-1)), f"{method}: shape {tuple(v.shape)}"
            assert torch.allclose(v @ v.mT, torch.eye(k, dtype=W.dtype), atol=1e-12), f"{method}: rows not orthonormal"
        top = f(W, method="svd")
        sigma = float(torch.linalg.matrix_norm(W, 2))
        assert abs(float((top @ W.mT).norm()) - sigma) <= 1e-12 * sigma, "method svd: the row is not v₁"

    return [Law("right_init gives min(rank, n) orthonormal rows; method \"svd\" gives v₁ exactly",
                lambda: sampling._st().tuples(sampling.gaussian_matrices(6), sampling._st().integers(1, 4)), rows)]


@op(INIT, _right_init_rule, laws=_init_laws(), sharding=WHOLE)
def right_init(w, rank: StaticArg = 1, method: StaticArg = "ones"):
    """The start of a warm-started power iteration: min(rank, m, n) orthonormal right vectors as the rows of a
    [rank, n] matrix (…, rank, n for a batch), in W's dtype — the initial value of `state v = right_init(W)`.

    method "ones": the first row is 1ᵀ/√n, sso.py's start vector (github.com/Unakar/Spectral-Sphere-Optimizer
    starts every power iteration from ones(n, 1)); further rows continue the DCT-II basis. method "svd": the top
    `rank` right singular vectors by float64 SVD, once, at initialization (a warm start that is already
    converged; sign fixed so that each row sums to ≥ 0). Holding v in a state warm-starts each step from the last
    estimate, as SSO's Megatron implementation caches u, v.
    """
    n = w.size(-1)
    k = min(int(rank), *w.shape[-2:])
    if method == "svd":
        X = w.to(torch.float64)
        _, S, Vh = _linalg.svd(X, full_matrices=False)
        top = Vh[..., :k, :]
        top = top * torch.where(top.sum(-1, keepdim=True) < 0, -1.0, 1.0)
        fallback = _dct_rows(k, n, X).expand_as(top)
        return torch.where((S[..., :1] > 0).unsqueeze(-1), top, fallback).to(w.dtype)
    return _dct_rows(k, n, w).expand(*w.shape[:-2], k, n).clone()


@op(MATRIX, _power_iter_rule, laws=_power_laws(), batches=True,
    cost=lambda shapes, attrs: 4.0 * math.prod(shapes[0]) * shapes[1][-2] * int(attrs.get("steps", 5)), sharding=WHOLE)
def power_iter(w, v, steps: StaticArg = 5):
    """`steps` rounds of power iteration on WᵀW from the right vectors v (a warm start), returning the new v.

    One row (v of shape [1, n], sso.py's algorithm): u ← W vᵀ/‖W vᵀ‖, v ← uᵀW/‖uᵀW‖; the error in v decays like
    (σ₂/σ₁)^(2·steps). k rows (orthogonal iteration with Rayleigh–Ritz; Golub & Van Loan, Matrix Computations,
    §8.2): V ← orth(V WᵀW) each step, then the rows are rotated to the Ritz vectors of WᵀW on their span,
    largest first; the first row then converges like (σ_{k+1}/σ₁)^(2·steps), so σ₁ stays accurate when σ₁ ≈ σ₂ —
    where a single vector stalls between v₁ and v₂ and underestimates σ₁ (SSO's sphere then drifts outwards).
    `top_sv` and `top_left` read the first row. Computes in float32 (float64 for float64 input) as sso.py does;
    batched. Never NaN: a zero, non-finite or null-space start restarts from 1ᵀ/√n (or W's longest row); for a
    zero matrix the start comes back unit. Sources: Xie et al., arXiv 2601.08393, Algorithm 1 and sso.py
    (`power_iter_steps = 5`); algorithms.md §4.1.
    """
    W = _work(w)
    n = W.size(-1)
    V = v.to(W.dtype).expand(*W.shape[:-2], *v.shape[-2:])
    if V.size(-2) == 1:
        V = _start_vector(W, V)
        for _ in range(steps):
            u = _normalize(V @ W.mT)                                  # (…, 1, m): uᵀ
            nxt = u @ W                                               # (…, 1, n): uᵀW
            V = torch.where(_norm_last(nxt) > 0, _normalize(nxt), V)
        return V.to(v.dtype)
    k = V.size(-2)
    finite = torch.isfinite(V).all(dim=-1, keepdim=True).all(dim=-2, keepdim=True)
    V = _complete(*_orthonormalize(torch.where(finite, V, _dct_rows(k, n, W)).to(torch.float64)))
    good = torch.ones(V.shape[:-1], dtype=torch.bool, device=V.device)
    for _ in range(steps):
        V, good = _orthonormalize(((V.to(W.dtype) @ W.mT) @ W).to(torch.float64))
    return _ritz(W.to(torch.float64), _complete(V, good)).to(v.dtype)


@op(MATRIX, _top_sv_rule,
    laws=[Law("top_sv(W, v₁) = σ₁ (exact singular vector) and top_sv(0, v) = 0",
              lambda: sampling.gaussian_matrices(7), lambda f, W: _exact_top(f, W))], sharding=WHOLE)
def top_sv(w, v):
    """σ₁ ≈ ‖W v₀ᵀ‖/‖v₀‖, the top singular value estimated from the first row v₀ of v (shape [k, n]), e.g. the
    output of `power_iter`: a lower bound on ‖W‖₂, equal to it when v₀ = v₁ (with k > 1 rows, the largest Ritz
    value). A 0-d tensor (…, 1, 1 per matrix of a batch); 0 for a zero matrix or a zero v₀.

    sso.py reports σ = uᵀWv with the last u; with v = Wᵀu/‖Wᵀu‖ that is ‖Wᵀu‖ ≤ ‖Wv‖ (Cauchy–Schwarz), so this
    estimate is never worse. Used for SSO's hard retraction W ← (R/σ)·W (Xie et al., arXiv 2601.08393).
    """
    W = _work(w)
    V = v[..., :1, :].to(W.dtype)
    nv = _norm_last(V)
    out = _norm_last(V @ W.mT) / torch.where(nv > 0, nv, torch.ones_like(nv))     # (…, 1, 1)
    return (out.reshape(()) if w.dim() == 2 else out).to(w.dtype)


@op(MATRIX, _top_left_rule,
    laws=[Law("top_left is a unit [m, 1] vector with uᵀ W v₀ᵀ = top_sv(W, v) (0 for a zero matrix)",
              lambda: sampling.gaussian_matrices(7), lambda f, W: _left_consistent(f, W))], sharding=WHOLE)
def top_left(w, v):
    """u = W v₀ᵀ / ‖W v₀ᵀ‖, the left singular vector paired with the first row v₀ of v, as a column [m, 1]
    (…, m, 1 for a batch); 0 for a zero matrix. With v from `power_iter`, Θ = u·v₀ = `top_left(W, v) @ top_right(v)`
    is u₁v₁ᵀ, the gradient of ‖W‖₂ at a simple σ₁ — SSO's tangent constraint ⟨Θ, Φ⟩ = 0 (arXiv 2601.08393).
    """
    W = _work(w)
    u = _normalize(v[..., :1, :].to(W.dtype) @ W.mT)                 # (…, 1, m)
    return u.mT.to(w.dtype)


@op(SHAPE, _top_right_rule, sharding=WHOLE)
def top_right(v):
    """v₀, the first row of a block of right vectors (shape [1, n]): with `power_iter`'s Ritz ordering, the
    estimate of the top right singular vector v₁ᵀ. Θ = `top_left(W, v) @ top_right(v)` = u₁v₁ᵀ."""
    return v[..., :1, :]


def _assert(ok: bool, message: str) -> None:
    assert ok, message


def _exact_top(f, W):
    U, S, Vh = _linalg.svd(W, full_matrices=False)
    sigma = float(f(W, Vh[:1]))
    assert abs(sigma - float(S[0])) <= 1e-12 * max(float(S[0]), 1e-300) + 1e-300, f"top_sv(W, v₁) = {sigma!r} ≠ σ₁ = {float(S[0])!r}"
    assert float(f(torch.zeros_like(W), Vh[:1])) == 0.0, "top_sv(0, v) ≠ 0"


def _left_consistent(f, W):
    v = power_iter.reference(W, right_init.reference(W), steps=4)
    u = f(W, v)
    assert u.shape == (W.size(-2), 1), f"shape {tuple(u.shape)}"
    assert abs(float(u.norm()) - 1) <= 1e-12, f"‖u‖ = {float(u.norm())!r}"
    uWv, sigma = float(u.mT @ W @ v.mT), float(top_sv.reference(W, v))
    assert abs(uWv - sigma) <= 1e-12 * max(sigma, 1e-300) + 1e-300, f"uᵀWvᵀ = {uWv!r} but top_sv = {sigma!r}"
    z = f(torch.zeros_like(W), v)
    assert torch.isfinite(z).all() and not z.any(), "top_left(0, v) ≠ 0"

# ---- spectral clipping ---------------------------------------------------------------------------------
def _polar(x: torch.Tensor, method: str, steps: int, coeffs, dtype: str) -> torch.Tensor:
    """msign(x) in x's dtype: exact (float64 SVD) for "polar", Newton–Schulz for "ns"."""
    if method == "polar":
        return msign_svd(x).to(x.dtype)
    return msign.reference(x, 1e-7, steps=steps, coeffs=coeffs, dtype=dtype, method="ns").to(x.dtype)


def _abs_part(c: torch.Tensor, method, steps, coeffs, dtype) -> torch.Tensor:
    """|C| on the left: C·msign(C)ᵀ = U|Σ'|Uᵀ for C = U Σ' Vᵀ (a min(m, n)² Gram on the wide orientation)."""
    return c @ _polar(c, method, steps, coeffs, dtype).mT


def spectral_clip_svd(w: torch.Tensor, lo, hi) -> torch.Tensor:
    """U clip(Σ, lo, hi) Vᵀ by float64 SVD: the exact map (every singular value, zeros included)."""
    X = w.to(torch.float64)
    a, b = _linalg.sv_bound(lo, X), _linalg.sv_bound(hi, X)
    return _linalg.map_sv(w, lambda s: torch.minimum(torch.maximum(s, a), b))


def _clip_laws(hardcap: bool) -> list[Law]:
    st = sampling._st

    def sample():
        return st().tuples(sampling.gaussian_matrices(6), st().floats(0.05, 1.0), st().floats(0.0, 1.0))

    def bounds(W, a, b):
        top = float(torch.linalg.matrix_norm(W, 2)) if W.numel() else 0.0
        hi = max(top, 1e-300) * a
        lo = 0.0 if hardcap else hi * b
        return lo, hi

    def call(f, W, lo, hi, **kw):
        return f(W, hi, **kw) if hardcap else f(W, lo, hi, **kw)

    def matches_svd(f, sample):
        W, a, b = sample
        lo, hi = bounds(W, a, b)
        want = spectral_clip_svd(W, 0.0, hi) if hardcap else spectral_clip_svd(W, lo, hi)
        if not hardcap:  # msign keeps exact null directions at 0: compare on W's row space only
            want = want @ _row_projector(W)
        got = call(f, W, lo, hi, method="polar")
        scale = max(float(W.abs().max()), hi)
        assert torch.allclose(got, want, atol=1e-9 * scale, rtol=0), \
            f"identity ≠ SVD reference: max |diff| = {float((got - want).abs().max()):.3g}"
        sv = _linalg.svdvals(call(f, W, lo, hi, method="svd"))
        clipped = _linalg.svdvals(W).clamp(lo, hi).sort(descending=True).values
        assert torch.allclose(sv, clipped, atol=1e-9 * scale, rtol=0), f"method svd: σ = {sv.tolist()}, expected {clipped.tolist()}"

    def ns_close(f, sample):
        (W, _), a, b = sample
        lo, hi = 0.0 if hardcap else 0.5 * a, a
        want = spectral_clip_svd(W, lo, hi)
        got = call(f, W, lo, hi, method="ns", steps=8, coeffs="sso8", dtype="fp64")
        assert torch.allclose(got, want, atol=2e-3, rtol=0), \
            f"Newton–Schulz identity vs SVD: max |diff| = {float((got - want).abs().max()):.3g}"

    laws = [Law(("spectral_hardcap" if hardcap else "spectral_clip") + ": the msign identity (exact polar factors) "
                "matches the SVD reference U clip(Σ) Vᵀ", sample, matches_svd),
            Law("the Newton–Schulz identity (sso8, fp64) matches the SVD reference to 2e-3 on a well-conditioned "
                "spectrum", lambda: st().tuples(_conditioned(), st().floats(0.2, 0.9), st().just(0.0)), ns_close)]
    if hardcap:
        def untouched(f, sample):
            W, a, _ = sample
            beta = float(torch.linalg.matrix_norm(W, 2)) * (1 + a)
            for method in ("polar", "svd"):
                got = f(W, beta, method=method)
                assert torch.allclose(got, W, atol=1e-12 * max(float(W.abs().max()), 1e-300), rtol=0), \
                    f"{method}: hardcap changed a matrix with σ ≤ β"
        laws.append(Law("spectral_hardcap leaves a matrix with σ_max ≤ β untouched", sample, untouched))
    return laws


def _row_projector(W: torch.Tensor) -> torch.Tensor:
    """V_r V_rᵀ, the projector onto W's row space (rank by a relative tolerance)."""
    X = W.to(torch.float64)
    _, S, Vh = _linalg.svd(X, full_matrices=False)
    tol = S.amax() * max(X.shape) * torch.finfo(torch.float64).eps if S.numel() else 0
    Vr = Vh[S > tol]
    return Vr.mT @ Vr


def _conditioned():
    """(W, σ) with W = U diag(σ) Vᵀ, σ ∈ [0.1, 1]: inputs for which 8 sso8 steps are accurate."""
    st = sampling._st()

    def build(args):
        (m, n), seed = args
        g = torch.Generator().manual_seed(seed)
        k = min(m, n)
        U, _ = torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64))
        V, _ = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))
        s = 0.1 + 0.9 * torch.rand(k, generator=g, dtype=torch.float64)
        return (U * s) @ V.T, s
    return st.tuples(sampling.matrix_shapes(6), st.integers(0, 2**31 - 1)).map(build)


def _clip_identity(W, lo, hi, method, steps, coeffs, dtype, lower: bool) -> torch.Tensor:
    X, tall = _wide(_work(W))
    O = _polar(X, method, steps, coeffs, dtype)
    b = _linalg.number_like(hi, X)
    upper = _abs_part(b * O - X, method, steps, coeffs, dtype) @ O
    if lower:
        a = _linalg.number_like(lo, X)
        out = 0.5 * ((a + b) * O + _abs_part(a * O - X, method, steps, coeffs, dtype) @ O - upper)
    else:
        out = 0.5 * (b * O + X - upper)
    return (out.mT if tall else out).to(W.dtype)


@op(MATRIX, _clip_rule, laws=_clip_laws(False), domain={"lo": Domain(0.0, 0.5), "hi": Domain(low=0.5)}, sharding=WHOLE)
def spectral_clip(w, lo, hi, method: StaticArg = "ns", steps: StaticArg = 8, coeffs: StaticArg = "sso8",
                  dtype: StaticArg = "fp32"):
    """U clip(Σ, lo, hi) Vᵀ: every singular value of W clipped into [lo, hi] (0 ≤ lo ≤ hi), singular vectors kept.

    method "ns" (default, matmuls only) and "polar" (the same identity with exact float64 polar factors) use
    Cesista's msign identity (leloykun.github.io/ponder/spectral-clipping; algorithms.md §4.2), with O = msign(W):

        spectral_clip_[α,β](W) = ½[(α+β)·O + (αO − W)·msign(αO − W)ᵀ·O − (βO − W)·msign(βO − W)ᵀ·O]

    on the rows ≤ cols orientation; Newton–Schulz with `steps`, `coeffs` (default "sso8") in `dtype`, the
    products in float32 (float64 for float64 input). method "svd": float64 SVD, the exact reference. The identity
    cannot lift directions W maps to zero (msign keeps them 0; "svd" lifts them to lo), and nested Newton–Schulz
    errors add up: use the "sso8" schedule or more steps. Spectral-band retraction (Cesista, "spectral band").
    """
    if method == "svd":
        return spectral_clip_svd(w, lo, hi)
    return _clip_identity(w, lo, hi, method, steps, coeffs, dtype, lower=True)


@op(MATRIX, _clip_rule, laws=_clip_laws(True), domain={"beta": Domain(low=0.0)}, sharding=WHOLE)
def spectral_hardcap(w, beta, method: StaticArg = "ns", steps: StaticArg = 8, coeffs: StaticArg = "sso8",
                     dtype: StaticArg = "fp32"):
    """U min(Σ, β) Vᵀ: singular values above β capped at β, those ≤ β (zeros included) untouched.

    method "ns" / "polar" evaluate Cesista's identity with O = msign(W) (Newton–Schulz / exact polar factors):

        spectral_hardcap_β(W) = ½[β·O + W − (βO − W)·msign(βO − W)ᵀ·O]

    (leloykun.github.io/ponder/spectral-clipping; algorithms.md §4.2); method "svd": float64 SVD. The retraction
    onto the spectral ball ‖W‖₂ ≤ β (Cesista, "rethinking µP: the spectral ball"), and the core of spectrally
    clipped weight decay W ← (1 − λ)W + λ·hardcap_β(W).
    """
    if method == "svd":
        return spectral_clip_svd(w, 0.0, beta)
    return _clip_identity(w, 0.0, beta, method, steps, coeffs, dtype, lower=False)


# ---- the SSO multiplier --------------------------------------------------------------------------------
def _sso_rule(args, attrs, constraints):
    m = _matrix(args[0], 0, " for the momentum")
    theta = _matrix(args[1], 1, " for Θ")
    if theta.shape != m.shape:
        for a, b in zip(m.shape, theta.shape):
            if a != b:
                if isinstance(a, int) and isinstance(b, int):
                    raise ShapeError(f"needs Θ shaped like the momentum: `{m.show()}` and `{theta.show()}`", arg=1)
                constraints.append((a, b))
    for i, name in ((2, "lam0"), (3, "tol"), (4, "eps")):
        if i < len(args):
            number(args[i], i, name)
    check_steps(attrs.get("max_iter"), "max_iter")
    check_steps(attrs.get("max_expand"), "max_expand", 60)
    step0 = attrs.get("step0")
    if isinstance(step0, bool) or not isinstance(step0, (int, float)) or not step0 > 0:
        raise ShapeError(f"`step0` must be a static number > 0, found {step0!r}", code="GEO0206")
    check_msign_attrs(attrs)
    return _per_matrix(m)


def sso_h(m: torch.Tensor, theta: torch.Tensor, lam: float, eps: float = 1e-7, steps: int = 8, coeffs="sso8",
          dtype: str = "fp32", method: str = "ns") -> float:
    """h(λ) = ⟨Θ, msign(M + λΘ)⟩ for one matrix, as a host float (sso.py's `compute_h`, algorithms.md §4.1)."""
    phi = msign.reference(m + lam * theta, eps, steps=steps, coeffs=coeffs, dtype=dtype, method=method)
    return float((theta.to(torch.float64) * phi.to(torch.float64)).sum())


def _solve_one(m, theta, lam0: float, tol: float, eps: float, max_iter: int, max_expand: int, step0: float,
               kw: dict) -> float:
    """sso.py's solver for one matrix: bracket from the warm start by doubling steps, then bisect."""
    def h(lam):
        return sso_h(m, theta, lam, eps, **kw)

    lam, h0 = lam0, h(lam0)
    if not math.isfinite(h0) or abs(h0) <= tol:
        return lam
    best_lam, best_h = lam, abs(h0)
    direction = 1.0 if h0 < 0 else -1.0          # h is non-decreasing: a negative h means the root lies to the right
    a, ha, step = lam, h0, step0
    b = hb = None
    for _ in range(max_expand):
        b = a + direction * step
        hb = h(b)
        if abs(hb) < best_h:
            best_lam, best_h = b, abs(hb)
        if abs(hb) <= tol:
            return b
        if (hb > 0) != (ha > 0):
            break
        a, ha, step = b, hb, 2 * step
    else:
        return lam0                               # no sign change: keep the start value (sso.py)
    lo, hi = (a, b) if direction > 0 else (b, a)  # h(lo) < 0 < h(hi)
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        hm = h(mid)
        if abs(hm) < best_h:
            best_lam, best_h = mid, abs(hm)
        if abs(hm) <= tol:
            return mid
        if hm < 0:
            lo = mid
        else:
            hi = mid
    return best_lam


def _sso_laws() -> list[Law]:
    st = sampling._st

    def sample():
        def build(args):
            (m, n), seed = args
            g = torch.Generator().manual_seed(seed)
            W = torch.randn(m, n, generator=g, dtype=torch.float64)
            M = torch.randn(m, n, generator=g, dtype=torch.float64)
            U, _, Vh = _linalg.svd(W, full_matrices=False)
            return M / M.norm(), U[:, :1] @ Vh[:1], float(torch.randn(1, generator=g)) * 0.3
        return st().tuples(st().tuples(st().integers(2, 6), st().integers(2, 6)), st().integers(0, 2**31 - 1)).map(build)

    exact = dict(method="svd", max_iter=80, max_expand=30)

    def root(f, sample):
        M, theta, lam0 = sample
        lam = float(f(M, theta, lam0, 1e-10, **exact))
        hl = sso_h(M, theta, lam, method="svd")
        if abs(hl) <= 1e-10:
            return
        # h may jump where M + λΘ loses rank: then λ must sit at the jump, with h changing sign across it
        d = 1e-9 * max(1.0, abs(lam))
        lo, hi = sso_h(M, theta, lam - d, method="svd"), sso_h(M, theta, lam + d, method="svd")
        assert lo <= 1e-10 and hi >= -1e-10, f"λ = {lam!r}: h = {hl!r}, and h does not change sign around it"

    def bounded_and_tangent(f, sample):
        M, theta, lam0 = sample
        lam = float(f(M, theta, lam0, 1e-12, **exact))
        nuclear = float(_linalg.svdvals(M).sum())
        assert abs(lam) <= 2 * nuclear + 1e-9, f"|λ*| = {abs(lam)!r} > 2‖M‖_* = {2 * nuclear!r}"
        phi = msign_svd(M + lam * theta)
        assert float((M * phi).sum()) <= nuclear + 1e-9, "⟨M, Φ⟩ exceeds ‖M‖_*"

    def monotone(f, sample):
        M, theta, _ = sample
        hs = [sso_h(M, theta, lam, method="svd") for lam in (-3.0, -1.0, -0.3, -0.1, 0.0, 0.1, 0.3, 1.0, 3.0)]
        assert all(a <= b + 1e-12 for a, b in zip(hs, hs[1:])) and all(abs(h) <= 1 + 1e-12 for h in hs), \
            f"h(λ) = ⟨Θ, msign(M + λΘ)⟩ is not non-decreasing in [−1, 1]: {hs}"

    return [Law("sso_lambda returns a root of h (exact msign), or the jump of h where M + λΘ loses rank", sample, root),
            Law("|λ*| ≤ 2‖M‖_* and ⟨M, Φ(λ*)⟩ ≤ ‖M‖_*", sample, bounded_and_tangent),
            Law("h(λ) is non-decreasing with |h| ≤ 1 (what the bracket search relies on)", sample, monotone)]


@op(MATRIX, _sso_rule, laws=_sso_laws(), sharding=WHOLE)
def sso_lambda(m, theta, lam0, tol=1e-6, eps=1e-7, max_iter: StaticArg = 20, max_expand: StaticArg = 10,
               step0: StaticArg = 1e-3, steps: StaticArg = 8, coeffs: StaticArg = "sso8", dtype: StaticArg = "fp32",
               method: StaticArg = "ns"):
    """λ*, the multiplier of the Spectral Sphere Optimizer: a root of

        h(λ) = ⟨Θ, msign(M̂ + λΘ)⟩,      Φ = msign(M̂ + λ*Θ)   then satisfies ⟨Θ, Φ⟩ = 0

    for the normalized momentum M̂ and Θ = u₁v₁ᵀ (Xie et al., "Controlled LLM Training on Spectral Sphere",
    arXiv 2601.08393: h is non-decreasing, |h| ≤ 1, h(±∞) = ±1, |λ*| ≤ 2‖M̂‖_*). Solver of sso.py
    (github.com/Unakar/Spectral-Sphere-Optimizer), warm-started from `lam0` (the previous step's λ, a state
    `prev_lambda = 0.0`): return lam0 if |h(lam0)| ≤ tol; else step from it towards the root by step0 = 1e-3,
    doubling the step up to `max_expand` times until h changes sign (no sign change: return lam0); then bisect
    at most `max_iter` times, returning the first midpoint with |h| ≤ tol, else the point of smallest |h| seen.
    msign as the `msign` op: method "ns" (schedule `coeffs`, `steps`, `dtype`; sso.py uses "sso8", 8 steps,
    bf16) or "svd" (exact). Returns a 0-d tensor in M's dtype (…, 1, 1 per matrix of a batch).

    Data-dependent control flow: like sso.py, every h evaluation syncs with the host (a `.item()`).
    """
    kw = dict(steps=steps, coeffs=coeffs, dtype=dtype, method=method)
    tol_f, eps_f = float(tol), float(eps)
    lead = m.shape[:-2]
    M = m.reshape(-1, *m.shape[-2:])
    T = theta.to(m.dtype).expand(m.shape).reshape(-1, *m.shape[-2:])
    L0 = torch.as_tensor(lam0, dtype=torch.float64).expand(*lead, 1, 1).reshape(-1) if lead else \
        torch.as_tensor(lam0, dtype=torch.float64).reshape(1)
    out = [_solve_one(M[i], T[i], float(L0[i]), tol_f, eps_f, max_iter, max_expand, float(step0), kw)
           for i in range(M.size(0))]
    result = torch.tensor(out, dtype=m.dtype, device=m.device)
    return result.reshape(()) if not lead else result.reshape(*lead, 1, 1)
