"""Linear algebra on small matrices: identity, trace, inverse and solve, the symmetric eigendecomposition, QR,
the SVD, and inverse p-th roots — what Kronecker-factored and rotated optimizers (Shampoo, FISMO, ARO, MKOR)
build their preconditioners from.

Factorizations return tuples, read by index (`let d = eigh(A)` then `d[0]`, `d[1]`): one decomposition serves
both factors (the IR interns the call once). Every factorization computes in float64 (LAPACK through torch) and
returns the input's dtype; a matrix holding NaN or ±Inf gives NaN factors instead of raising (a step never dies
in `optimizer.step()`), as `_linalg` does for the spectral operators; so does a singular matrix for `inv` and
`solve`. Shapes stay those of the input's dims so that the checker can type them: a rectangular factor of a wide
matrix is padded with zero columns (see `qr`, `svd`). These are O(n³) and meant for the matrices of a layer's
Kronecker factors (n up to a few thousand), not for anything larger.

Inverse p-th roots (Shampoo: Gupta, Koren, Singer, arXiv 1802.09568; Anil et al., "Scalable Second Order
Optimization for Deep Learning", arXiv 2002.09018): (A + εI)^(−1/p) of a symmetric PSD A, by eigendecomposition
(exact, the reference) or by the coupled Newton iteration of Anil et al. (matrix products only).
"""
from __future__ import annotations

import math


from ..types import ShapeError, Tensor, TupleT
from . import _linalg, sampling
from ._rules import check_steps, number
from .registry import INIT, MATRIX, REDUCTION, WHOLE, Domain, Law, StaticArg, op
from ._lazy import lazy_torch

torch = lazy_torch(globals())


# ---- type rules ----------------------------------------------------------------------------------------
def _matrix(t, i: int = 0) -> Tensor:
    if not (isinstance(t, Tensor) and t.is_matrix):
        raise ShapeError(f"needs a matrix, found `{t.show()}`", arg=i, code="GEO0203",
                         help="restrict this rule to matrix parameters (`for matrix W`), view them as matrices "
                              "(`as matrix`), or build a Gram matrix (`W @ W.T`)")
    return t


def _square(t, constraints, i: int = 0) -> Tensor:
    """A square matrix: equal dims, or a bind-time requirement where they are symbols (`W @ W.T` is square by
    construction: its dims are both `m`)."""
    x = _matrix(t, i)
    m, n = x.shape[-2:]
    if m != n:
        if isinstance(m, int) and isinstance(n, int):
            raise ShapeError(f"needs a square matrix, found `{x.show()}`", arg=i, code="GEO0204",
                             help="a Gram matrix `W @ W.T` (m × m) or `W.T @ W` (n × n) is square")
        constraints.append((m, n))
    return x


def _per_matrix(x: Tensor) -> Tensor:
    """A value per matrix: 0-d, or (…, 1, 1) for a batch (as the reductions with axis = None)."""
    return Tensor((1, 1), True, x.dtype) if x.batched else Tensor((), False, x.dtype)


def _row(x: Tensor, n) -> Tensor:
    """A row of n values per matrix, (…, 1, n): it broadcasts against the columns of an n-column matrix."""
    return Tensor(x.shape[:-2] + (1, n), x.batched, x.dtype)


def _eye_rule(args, attrs, constraints):
    return _matrix(args[0])


def _trace_rule(args, attrs, constraints):
    return _per_matrix(_square(args[0], constraints))


def _inv_rule(args, attrs, constraints):
    return _square(args[0], constraints)


def _solve_rule(args, attrs, constraints):
    a = _square(args[0], constraints)
    b = _matrix(args[1], 1)
    if a.batched != b.batched:
        raise ShapeError(f"needs A and B both batched or neither, found `{a.show()}` and `{b.show()}`", arg=1,
                         code="GEO0204")
    if a.shape[-1] != b.shape[-2]:
        if isinstance(a.shape[-1], int) and isinstance(b.shape[-2], int):
            raise ShapeError(f"needs B with as many rows as A has columns: `{a.show()}` and `{b.show()}`", arg=1,
                             code="GEO0204")
        constraints.append((a.shape[-1], b.shape[-2]))
    return Tensor(b.shape, b.batched, b.dtype if a.dtype == b.dtype else "param")


def _eigh_rule(args, attrs, constraints):
    a = _square(args[0], constraints)
    n = a.shape[-1]
    return TupleT((_row(a, n), a))


def _qr_rule(args, attrs, constraints):
    a = _matrix(args[0])
    n = a.shape[-1]
    return TupleT((a, Tensor(a.shape[:-2] + (n, n), a.batched, a.dtype)))


def _svd_rule(args, attrs, constraints):
    a = _matrix(args[0])
    n = a.shape[-1]
    return TupleT((a, _row(a, n), Tensor(a.shape[:-2] + (n, n), a.batched, a.dtype)))


def _inv_root_rule(args, attrs, constraints):
    a = _square(args[0], constraints)
    number(args[1], 1, "eps")
    p = attrs.get("p")
    if not isinstance(p, int) or isinstance(p, bool) or not 1 <= p <= 16:
        raise ShapeError(f"`p` must be a static integer in [1, 16], found {p!r}", code="GEO0206")
    if attrs.get("method") not in ("eigh", "newton"):
        raise ShapeError(f"`method` must be \"eigh\" or \"newton\", found {attrs.get('method')!r}", code="GEO0206")
    check_steps(attrs.get("steps"), "steps", 200)
    return a


# ---- helpers -------------------------------------------------------------------------------------------
def _f64(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float64)


def _eye(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device)


def _sym(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x + x.mT)


def _nan_where(bad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x with the matrices that `bad` (…,) marks filled with NaN."""
    return torch.where(bad[..., None, None], torch.full((), math.nan, dtype=x.dtype, device=x.device), x)


def _clean(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a (…,) mask of the matrices with a non-finite entry, x with those matrices replaced by the identity-like
    zero matrix): LAPACK would raise on them."""
    bad = ~torch.isfinite(x).all(dim=-1).all(dim=-1)
    return bad, torch.where(bad[..., None, None], torch.zeros((), dtype=x.dtype, device=x.device), x)


def _pad_cols(x: torch.Tensor, n: int) -> torch.Tensor:
    """x (…, r, k) padded with zero columns to (…, r, n)."""
    k = x.size(-1)
    if k == n:
        return x
    return torch.cat([x, x.new_zeros(*x.shape[:-1], n - k)], dim=-1)


def _pad_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """x (…, k, c) padded with zero rows to (…, n, c)."""
    k = x.size(-2)
    if k == n:
        return x
    return torch.cat([x, x.new_zeros(*x.shape[:-2], n - k, x.size(-1))], dim=-2)


# ---- identity and trace --------------------------------------------------------------------------------
def _eye_law(f, x):
    y = f(x)
    m, n = x.shape[-2:]
    assert torch.equal(y, torch.eye(m, n, dtype=x.dtype)), "eye(x) is not the m × n identity"
    sq = x[: min(m, n), : min(m, n)]
    assert torch.equal(f(sq) @ sq, sq), "eye(A) @ A ≠ A"


@op(INIT, _eye_rule, laws=[Law("eye(x) is the m × n identity, and eye(A) @ A = A", lambda: sampling.gaussian_matrices(6),
                               _eye_law)], sharding=WHOLE)
def eye(x):
    """I shaped like the matrix x: ones on the main diagonal, zeros elsewhere (rectangular for a rectangular x;
    one per matrix of a batch). `eye(W @ W.T)` is the m × m identity, `eye(W.T @ W)` the n × n one — the damping
    of a Kronecker factor (`state L = 1e-6 * eye(W @ W.T)`)."""
    m, n = x.shape[-2:]
    return torch.eye(m, n, dtype=x.dtype, device=x.device).expand(x.shape).clone()


def _trace_laws():
    def pairs():
        st = sampling._st()

        def build(args):
            (m, n), seed = args
            g = torch.Generator().manual_seed(seed)
            return torch.randn(m, n, generator=g, dtype=torch.float64), torch.randn(n, m, generator=g, dtype=torch.float64)
        return st.tuples(sampling.matrix_shapes(6), st.integers(0, 2**31 - 1)).map(build)

    def cyclic(f, ab):
        a, b = ab
        x, y = float(f(a @ b)), float(f(b @ a))
        assert abs(x - y) <= 1e-9 * max(1.0, abs(x)), f"tr(AB) = {x} ≠ tr(BA) = {y}"

    def linear(f, ab):
        a, b = ab
        s = a @ b
        assert abs(float(f(2 * s + s.mT)) - 3 * float(f(s))) <= 1e-9 * max(1.0, abs(float(f(s)))), "tr is not linear"

    return [Law("tr(AB) = tr(BA)", pairs, cyclic), Law("tr(2A + Aᵀ) = 3·tr(A)", pairs, linear)]


@op(REDUCTION, _trace_rule, laws=_trace_laws(), cost=lambda shapes, attrs: float(shapes[0][-1]), sharding=WHOLE)
def trace(x):
    """tr(A) = Σᵢ Aᵢᵢ of a square matrix: a 0-d tensor (…, 1, 1 per matrix of a batch), on the device."""
    d = torch.diagonal(x, dim1=-2, dim2=-1).sum(-1)
    return d[..., None, None] if x.dim() > 2 else d


# ---- inverse and solve ---------------------------------------------------------------------------------
def _well_conditioned():
    """Square matrices n·I + G (G Gaussian): condition numbers of a few units."""
    st = sampling._st()

    def build(args):
        n, k, seed = args
        g = torch.Generator().manual_seed(seed)
        a = torch.randn(n, n, generator=g, dtype=torch.float64) + 2 * n * torch.eye(n, dtype=torch.float64)
        return a, torch.randn(n, k, generator=g, dtype=torch.float64)
    return st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**31 - 1)).map(build)


def _inv_law(f, ab):
    a, _ = ab
    eye_ = torch.eye(a.size(-1), dtype=a.dtype)
    assert torch.allclose(a @ f(a), eye_, atol=1e-10) and torch.allclose(f(a) @ a, eye_, atol=1e-10), "A·inv(A) ≠ I"
    bad = f(torch.zeros_like(a))
    assert torch.isnan(bad).all(), "the inverse of a singular matrix is not NaN"


def _inverse(a: torch.Tensor) -> torch.Tensor:
    bad, clean = _clean(_f64(a))
    inv, info = torch.linalg.inv_ex(clean)
    return _nan_where(bad | (info != 0) | ~torch.isfinite(inv).all(-1).all(-1), inv).to(a.dtype)


@op(MATRIX, _inv_rule, laws=[Law("A·inv(A) = inv(A)·A = I; a singular A gives NaN", _well_conditioned, _inv_law)],
    cost=lambda shapes, attrs: 2.0 * shapes[0][-1] ** 3 * math.prod(shapes[0][:-2]), sharding=WHOLE)
def inv(a):
    """A⁻¹ of a square matrix (float64 LU, returned in A's dtype); NaN for a singular or non-finite A. Prefer
    `solve(A, B)` for A⁻¹B (one factorization, better rounding), and `inv_root` for the roots of a PSD factor."""
    return _inverse(a)


def _solve_law(f, ab):
    a, b = ab
    assert torch.allclose(a @ f(a, b), b, atol=1e-10), "A·solve(A, B) ≠ B"


@op(MATRIX, _solve_rule, laws=[Law("A·solve(A, B) = B", _well_conditioned, _solve_law)],
    cost=lambda shapes, attrs: (2.0 * shapes[0][-1] ** 3 / 3 + 2.0 * shapes[0][-1] ** 2 * shapes[1][-1])
    * math.prod(shapes[0][:-2]), sharding=WHOLE)
def solve(a, b):
    """X = A⁻¹B for a square A (float64 LU with partial pivoting, returned in the wider of A's and B's dtypes); NaN
    for a singular or non-finite A."""
    bad, clean = _clean(_f64(a))
    x, info = torch.linalg.solve_ex(clean, _f64(b))
    bad = bad | (info != 0) | ~torch.isfinite(x).all(-1).all(-1)
    return _nan_where(bad, x).to(torch.promote_types(a.dtype, b.dtype))


# ---- factorizations ------------------------------------------------------------------------------------
def _eigh_laws():
    def reconstructs(f, x):
        a = x @ x.mT
        lam, q = f(a)
        assert torch.allclose((q * lam) @ q.mT, a, atol=1e-9 * max(1.0, float(a.abs().max()))), "Q Λ Qᵀ ≠ A"
        assert torch.allclose(q.mT @ q, torch.eye(q.size(-1), dtype=q.dtype), atol=1e-10), "QᵀQ ≠ I"
        assert (lam[..., 1:] >= lam[..., :-1]).all(), "eigenvalues are not ascending"
        assert lam.shape == (1, a.size(-1)), f"eigenvalues have shape {tuple(lam.shape)}"

    def symmetrizes(f, x):
        a = x @ x.mT
        skew = x[:, :1] @ x[:, -1:].mT
        skew = skew - skew.mT                  # a skew-symmetric part, which eigh ignores: it reads sym(A)
        lam, q = f(a + skew)               # (eigenvectors of a repeated eigenvalue are any basis: compare Q Λ Qᵀ)
        tol = 1e-9 * max(1.0, float(a.abs().max()))
        assert torch.allclose(lam, f(a)[0], atol=tol) and torch.allclose((q * lam) @ q.mT, a, atol=tol), \
            "eigh does not read sym(A)"

    return [Law("Q Λ Qᵀ = A for a symmetric A, QᵀQ = I, Λ ascending (a row)", lambda: sampling.gaussian_matrices(6),
                reconstructs),
            Law("eigh reads the symmetric part of A", lambda: sampling.gaussian_matrices(6), symmetrizes)]


@op(MATRIX, _eigh_rule, laws=_eigh_laws(), cost=lambda shapes, attrs: 9.0 * shapes[0][-1] ** 3 * math.prod(shapes[0][:-2]), sharding=WHOLE)
def eigh(a):
    """(Λ, Q): the eigendecomposition sym(A) = Q diag(Λ) Qᵀ of the symmetric part of a square A, eigenvalues
    ascending as a row (…, 1, n) that broadcasts against Q's columns (`(Q * f(Λ)) @ Q.T` is f(A)), eigenvectors
    as the columns of Q (…, n, n). Float64 LAPACK (`torch.linalg.eigh`), returned in A's dtype; NaN for a
    non-finite A. The eigenvectors of a repeated eigenvalue are any orthonormal basis of its eigenspace."""
    lam, q = _linalg.eigh(_sym(_f64(a)))
    return lam.unsqueeze(-2).to(a.dtype), q.to(a.dtype)


def _qr_laws():
    def holds(f, x):
        q, r = f(x)
        m, n = x.shape[-2:]
        assert q.shape == x.shape and r.shape == (n, n), f"shapes {tuple(q.shape)}, {tuple(r.shape)}"
        assert torch.allclose(q @ r, x, atol=1e-9 * max(1.0, float(x.abs().max()))), "QR ≠ A"
        k = min(m, n)
        assert torch.allclose(q[:, :k].mT @ q[:, :k], torch.eye(k, dtype=x.dtype), atol=1e-10), "Q's columns are not orthonormal"
        assert (torch.diagonal(r) >= 0).all(), "diag(R) has a negative entry"
        assert torch.equal(r, torch.triu(r)), "R is not upper triangular"
    return [Law("QR = A, QᵀQ = I on the first min(m, n) columns, R upper triangular with diag(R) ≥ 0",
                lambda: sampling.gaussian_matrices(6), holds)]


@op(MATRIX, _qr_rule, laws=_qr_laws(), cost=lambda shapes, attrs: 4.0 * shapes[0][-2] * shapes[0][-1] ** 2
    * math.prod(shapes[0][:-2]), sharding=WHOLE)
def qr(a):
    """(Q, R): the reduced QR factorization A = QR of an m × n A, float64 Householder (`torch.linalg.qr`), with
    signs fixed so that diag(R) ≥ 0 (then it is unique for a full-rank A). Q has A's shape and R is n × n: for a
    tall A (m ≥ n) Q's columns are orthonormal; for a wide A the columns of Q beyond the m-th and the rows of R
    beyond the m-th are zero (QR = A still). `qr(A)[0]` orthonormalizes the columns of a random projection."""
    m, n = a.shape[-2:]
    bad, clean = _clean(_f64(a))
    q, r = torch.linalg.qr(clean, mode="reduced")
    s = torch.where(torch.diagonal(r, dim1=-2, dim2=-1) < 0, -1.0, 1.0).to(q.dtype)
    q, r = q * s.unsqueeze(-2), r * s.unsqueeze(-1)
    q, r = _pad_cols(q, n), _pad_rows(r, n)
    return _nan_where(bad, q).to(a.dtype), _nan_where(bad, r).to(a.dtype)


def _svd_laws():
    def holds(f, x):
        u, s, vh = f(x)
        m, n = x.shape[-2:]
        assert u.shape == x.shape and s.shape == (1, n) and vh.shape == (n, n)
        assert torch.allclose((u * s) @ vh, x, atol=1e-9 * max(1.0, float(x.abs().max()))), "U Σ Vᵀ ≠ A"
        k = min(m, n)
        assert torch.allclose(s[0, :k], torch.linalg.svdvals(x), atol=1e-10 * max(1.0, float(x.abs().max()))), \
            "Σ is not the singular values, descending"
        assert (s[0, k:] == 0).all(), "padding singular values are not zero"
        assert torch.allclose(u[:, :k].mT @ u[:, :k], torch.eye(k, dtype=x.dtype), atol=1e-10), "UᵀU ≠ I"
    return [Law("U Σ Vᵀ = A with Σ the singular values descending (zero-padded to n), UᵀU = I",
                lambda: sampling.gaussian_matrices(6), holds)]


@op(MATRIX, _svd_rule, laws=_svd_laws(), cost=lambda shapes, attrs: 12.0 * shapes[0][-2] * shapes[0][-1] ** 2
    * math.prod(shapes[0][:-2]), sharding=WHOLE)
def svd(a):
    """(U, Σ, Vᵀ): the reduced SVD A = U diag(Σ) Vᵀ of an m × n A, float64 LAPACK, for small matrices. U has A's
    shape, Σ is a row (…, 1, n) of singular values in descending order (so `(U * Σ) @ Vh` is A), Vᵀ is n × n; for
    a wide A (m < n), k = m singular values are real and U's columns, Σ's entries and Vᵀ's rows beyond k are
    zero. NaN for a non-finite A. The singular vectors of a repeated singular value are any orthonormal basis."""
    m, n = a.shape[-2:]
    u, s, vh = _linalg.svd(_f64(a), full_matrices=False)
    return (_pad_cols(u, n).to(a.dtype), _pad_cols(s.unsqueeze(-2), n).to(a.dtype), _pad_rows(vh, n).to(a.dtype))


# ---- inverse p-th roots --------------------------------------------------------------------------------
def _inv_root_eigh(a: torch.Tensor, p: int, eps) -> torch.Tensor:
    """(sym(A) + εI)^(−1/p) through the eigendecomposition; negative eigenvalues (rounding) are taken as 0."""
    lam, q = _linalg.eigh(_sym(a))
    root = (lam.clamp(min=0) + eps).pow(-1.0 / p)
    return (q * root.unsqueeze(-2)) @ q.mT


def _inv_root_newton(a: torch.Tensor, p: int, eps, steps: int) -> torch.Tensor:
    """The coupled Newton iteration for (sym(A) + εI)^(−1/p) (Anil et al., arXiv 2002.09018, §3.1; Guo & Higham):
    with z = (p + 1)/(2‖A‖_F), X₀ = z^(1/p)·I and M₀ = z·A,
        Tₖ = ((p + 1)I − Mₖ)/p,  Xₖ₊₁ = Xₖ Tₖ,  Mₖ₊₁ = Tₖᵖ Mₖ,
    and Mₖ → I, Xₖ → A^(−1/p) (‖A‖_F ≥ λ_max keeps the eigenvalues of M₀ in (0, (p + 1)/2]). Matrix products only."""
    n = a.size(-1)
    eye_ = _eye(n, a)
    a = _sym(a) + eps * eye_
    norm = torch.linalg.matrix_norm(a, "fro", keepdim=True)
    z = (p + 1) / (2 * torch.where(norm > 0, norm, torch.ones_like(norm)))
    x = z.pow(1.0 / p) * eye_
    m = z * a
    for _ in range(steps):
        t = ((p + 1) * eye_ - m) / p
        x = x @ t
        m = torch.linalg.matrix_power(t, p) @ m
    return x


def _inv_root_laws():
    def spd():
        st = sampling._st()

        def build(args):
            n, seed, scale, p = args
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(n, n + 2, generator=g, dtype=torch.float64)
            return scale * (x @ x.mT / (n + 2) + 0.5 * torch.eye(n, dtype=torch.float64)), p
        return st.tuples(st.integers(1, 6), st.integers(0, 2**31 - 1), st.sampled_from([1e-2, 1.0, 1e2]),
                         st.sampled_from([1, 2, 4])).map(build)

    def inverts(f, sample):
        a, p = sample
        eye_ = torch.eye(a.size(-1), dtype=a.dtype)
        for method, steps in (("eigh", 0), ("newton", 60)):
            x = f(a, 1e-3 * float(a.diagonal().mean()), p=p, method=method, steps=steps)
            damped = a + 1e-3 * float(a.diagonal().mean()) * eye_
            assert torch.allclose(torch.linalg.matrix_power(x, p) @ damped, eye_, atol=1e-8), \
                f"{method}: X^p (A + εI) ≠ I"
            assert torch.allclose(x, x.mT, atol=1e-10), f"{method}: X is not symmetric"

    def zero(f, sample):
        a, p = sample
        x = f(torch.zeros_like(a), 1e-2, p=p)
        assert torch.allclose(x, 1e-2 ** (-1.0 / p) * torch.eye(a.size(-1), dtype=a.dtype)), "(0 + εI)^(−1/p) ≠ ε^(−1/p) I"

    return [Law("X = inv_root(A, ε, p) satisfies Xᵖ(A + εI) = I (eigh and newton), X symmetric", spd, inverts),
            Law("inv_root(0, ε, p) = ε^(−1/p)·I", spd, zero)]


@op(MATRIX, _inv_root_rule, laws=_inv_root_laws(), domain={"eps": Domain(1e-12, 1.0), "method": Domain(choices=("eigh", "newton"))},
    cost=lambda shapes, attrs: (9.0 if attrs.get("method") == "eigh" else 2.0 * (1 + attrs.get("p", 2)) * attrs.get("steps", 25))
    * shapes[0][-1] ** 3 * math.prod(shapes[0][:-2]), sharding=WHOLE)
def inv_root(a, eps=1e-12, p: StaticArg = 2, method: StaticArg = "eigh", steps: StaticArg = 25):
    """(sym(A) + εI)^(−1/p), the damped inverse p-th root of a symmetric PSD matrix (Shampoo's L^(−1/4) with p = 4,
    K-FAC's damped inverse with p = 1). method "eigh": Q diag((max(λ, 0) + ε)^(−1/p)) Qᵀ by a float64
    eigendecomposition (exact; the reference). method "newton": `steps` rounds of the coupled Newton iteration of
    Anil et al. (arXiv 2002.09018), in float64, matrix products only (its error falls quadratically once the
    spectrum of M is near 1; an ill-conditioned A needs more steps). Returned in A's dtype; NaN for a non-finite A.
    """
    bad, clean = _clean(_f64(a))
    if method == "eigh":
        out = _inv_root_eigh(clean, p, _linalg.sv_bound(eps, clean))       # ε against the eigenvalues (…, n)
    else:
        out = _inv_root_newton(clean, p, _linalg.number_like(eps, clean), steps)  # ε·I: a 0-d or (…, 1, 1) ε
    return _nan_where(bad, out).to(a.dtype)
