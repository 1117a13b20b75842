"""Norms, dual norms, LMOs and sharp operators: steepest descent under a chosen norm.

For a norm ‖·‖ on the update, the dual norm is ‖g‖_† = max_{‖t‖ ≤ 1} ⟨g, t⟩, the LMO (a "dualizer") is the
maximizer LMO(g) = argmax_{‖t‖ ≤ 1} ⟨g, t⟩, and the sharp operator g♯ = ‖g‖_†·LMO(g) = argmax_t ⟨g, t⟩ − ½‖t‖²
solves the steepest-descent step argmin_Δ ⟨g, Δ⟩ + (λ/2)‖Δ‖² = −g♯/λ. Normalized methods (Muon, Scion,
signSGD) step along −lr·LMO(g); Frank–Wolfe over a ball of radius ρ uses −ρ·LMO(g).
Sources: Bernstein & Newhouse, "Old optimizer, new norm" (arXiv 2409.20325); the Modula docs
(modula-systems/modula); Pethick et al., "Training deep learning models with norm-constrained LMOs" (Scion,
arXiv 2502.07529; LIONS-EPFL/scion). Table: references/algorithms.md §6.

Two families of kinds (a static string argument):

    entrywise  "l1", "l2", "linf", "rms"      the whole tensor is one vector (any rank; a batch of
                                              matrices counts as one vector too); result 0-d
    matrix     "fro", "spectral", "nuclear",  per matrix (the last two dims, batched over leading dims);
               "rms_rms", "max_row_l2",       they need a matrix (GEO0203 otherwise); result 0-d, or
               "max_col_l2", "max_abs",       (…, 1, 1) for a batch of matrices (`as heads(h)`)
               "schatten" (static p ≥ 1)

The table of kinds (norm, LMO, dual norm) is `norm`'s doc (`geo doc norm`).

(m, n) = (rows, cols) of a matrix (nn.Linear: d_out, d_in). Nothing is ever divided by zero: a zero row,
column, tensor or singular value gives a zero LMO there (LMO(0) = 0, sharp(0) = 0). Singular values are
computed by SVD in float64; the entrywise kinds compute in the input's dtype (bf16/fp16 in float32), and
every result is returned in the input's dtype.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ...dsl.diagnostics import did_you_mean
from ..types import SCALAR, Scalar, ShapeError, Static, Tensor
from . import _linalg, sampling
from ._calling import values_first
from .matrix import msign_svd
from .registry import MATRIX, SHAPE, SHAPE_OF, WHOLE, Domain, Law, StaticArg, op
from ._lazy import lazy_torch

torch = lazy_torch(globals())

Fn = Callable[["torch.Tensor", float], "torch.Tensor"]


# ---- building blocks -----------------------------------------------------------------------------------
def _work(x: torch.Tensor) -> torch.Tensor:
    """The dtype the entrywise formulas compute in: the input's, but at least float32."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def _safe_div(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """x / n where n > 0; where n = 0 the numerator is 0 too (n is a norm of x), and so is the result."""
    return x / torch.where(n > 0, n, torch.ones_like(n))


def _svdvals(x: torch.Tensor) -> torch.Tensor:
    return _linalg.svdvals(x.to(torch.float64))


def _mat(v: torch.Tensor) -> torch.Tensor:
    """A per-matrix value of shape (…) as (…, 1, 1), so it broadcasts against the matrices."""
    return v.unsqueeze(-1).unsqueeze(-1)


def _rows_cols(x: torch.Tensor) -> tuple[int, int]:
    return x.shape[-2], x.shape[-1]


def _l1_lmo(g: torch.Tensor, p: float) -> torch.Tensor:
    """One vertex of the ℓ1 ball: sign(g_{i*})·e_{i*} at the first i* with the largest |gᵢ| (no host sync)."""
    flat = g.reshape(-1)
    i = flat.abs().argmax().reshape(1)
    return torch.zeros_like(flat).scatter(0, i, flat.sign().gather(0, i)).reshape(g.shape)


def _top_pair(x: torch.Tensor, p: float) -> torch.Tensor:
    """u₁v₁ᵀ, the nuclear-ball LMO (0 for a zero matrix)."""
    X = x.to(torch.float64)
    U, S, Vh = _linalg.svd(X, full_matrices=False)
    out = U[..., :, :1] @ Vh[..., :1, :]
    return (out * _mat((S[..., 0] > 0).to(X.dtype))).to(x.dtype)


def _schatten_norm(x: torch.Tensor, p: float) -> torch.Tensor:
    s = _svdvals(x)
    if math.isinf(p):
        return _mat(s.amax(-1))
    top = s.amax(-1, keepdim=True)
    scaled = s / torch.where(top > 0, top, torch.ones_like(top))  # ‖σ‖_p = σ_max·‖σ/σ_max‖_p: no overflow
    return _mat(top.squeeze(-1) * scaled.pow(p).sum(-1).pow(1.0 / p))


def _conjugate(p: float) -> float:
    return math.inf if p == 1 else 1.0 if math.isinf(p) else p / (p - 1)


def _schatten_lmo(x: torch.Tensor, p: float) -> torch.Tensor:
    if p == 1:
        return _top_pair(x, p)
    if math.isinf(p):
        return msign_svd(x).to(x.dtype)
    q = _conjugate(p)
    X = x.to(torch.float64)
    U, S, Vh = _linalg.svd(X, full_matrices=False)
    top = S.amax(-1, keepdim=True)
    s = S / torch.where(top > 0, top, torch.ones_like(top))
    w = s.pow(q - 1)
    norm_q = s.pow(q).sum(-1, keepdim=True).pow((q - 1) / q)  # ‖s‖_q^{q−1}
    w = w / torch.where(norm_q > 0, norm_q, torch.ones_like(norm_q))
    return ((U * w.unsqueeze(-2)) @ Vh).to(x.dtype)


# ---- the table -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NormKind:
    """One row of the table: the norm, its dual norm and its unit-ball LMO, each a function (x, p) → tensor.

    Entrywise kinds return 0-d values; matrix kinds return (…, 1, 1) values (reshaped to 0-d for a single
    matrix by the ops)."""

    name: str
    matrix: bool
    norm: Fn
    dual: Fn
    lmo: Fn
    needs_p: bool = False


def _entrywise(name: str, norm: Fn, dual: Fn, lmo: Fn) -> NormKind:
    return NormKind(name, False, norm, dual, lmo)


def _euclid(x: torch.Tensor, dim=None) -> torch.Tensor:
    """‖x‖₂ over `dim` (all dims if None; kept as size 1 otherwise), computed as a·‖x/a‖₂ with a = max|x|
    so that squares neither underflow nor overflow (tiny fp32 gradients keep an exact unit LMO)."""
    x = _work(x)
    a = x.abs().amax() if dim is None else x.abs().amax(dim, keepdim=True)
    a = torch.where(a > 0, a, torch.ones_like(a))
    if dim is None:
        return a * torch.linalg.vector_norm(x / a)
    return a * torch.linalg.vector_norm(x / a, dim=dim, keepdim=True)


def _l2(x: torch.Tensor, p: float) -> torch.Tensor:
    return _euclid(x)


def _fro(x: torch.Tensor, p: float) -> torch.Tensor:
    return _euclid(x, (-2, -1))


def _row_norms(x: torch.Tensor) -> torch.Tensor:
    return _euclid(x, -1)    # (…, m, 1)


def _col_norms(x: torch.Tensor) -> torch.Tensor:
    return _euclid(x, -2)    # (…, 1, n)


def _rms_rms_ratio(x: torch.Tensor) -> float:
    m, n = _rows_cols(x)
    return math.sqrt(n / m)


NORMS: dict[str, NormKind] = {k.name: k for k in [
    _entrywise("l1", lambda x, p: _work(x).abs().sum(), lambda g, p: _work(g).abs().amax(), _l1_lmo),
    _entrywise("l2", _l2, _l2, lambda g, p: _safe_div(_work(g), _l2(g, p))),
    _entrywise("linf", lambda x, p: _work(x).abs().amax(), lambda g, p: _work(g).abs().sum(),
               lambda g, p: torch.sign(g)),
    _entrywise("rms", lambda x, p: _l2(x, p) / math.sqrt(x.numel()), lambda g, p: _l2(g, p) * math.sqrt(g.numel()),
               lambda g, p: _safe_div(_work(g), _l2(g, p)) * math.sqrt(g.numel())),
    NormKind("fro", True, _fro, _fro, lambda g, p: _safe_div(_work(g), _fro(g, p))),
    NormKind("spectral", True, lambda x, p: _mat(_svdvals(x).amax(-1)), lambda g, p: _mat(_svdvals(g).sum(-1)),
             lambda g, p: msign_svd(g)),
    NormKind("nuclear", True, lambda x, p: _mat(_svdvals(x).sum(-1)), lambda g, p: _mat(_svdvals(g).amax(-1)),
             _top_pair),
    NormKind("rms_rms", True, lambda x, p: _mat(_svdvals(x).amax(-1)) * _rms_rms_ratio(x),
             lambda g, p: _mat(_svdvals(g).sum(-1)) / _rms_rms_ratio(g), lambda g, p: msign_svd(g) / _rms_rms_ratio(g)),
    NormKind("max_row_l2", True, lambda x, p: _row_norms(x).amax(-2, keepdim=True),
             lambda g, p: _row_norms(g).sum(-2, keepdim=True), lambda g, p: _safe_div(_work(g), _row_norms(g))),
    NormKind("max_col_l2", True, lambda x, p: _col_norms(x).amax(-1, keepdim=True),
             lambda g, p: _col_norms(g).sum(-1, keepdim=True), lambda g, p: _safe_div(_work(g), _col_norms(g))),
    NormKind("max_abs", True, lambda x, p: _work(x).abs().amax((-2, -1), keepdim=True),
             lambda g, p: _work(g).abs().sum((-2, -1), keepdim=True), lambda g, p: torch.sign(g)),
    NormKind("schatten", True, _schatten_norm, lambda g, p: _schatten_norm(g, _conjugate(p)), _schatten_lmo, True),
]}


def _finish(value: torch.Tensor, x: torch.Tensor, kind: NormKind) -> torch.Tensor:
    """A per-matrix value of a single matrix becomes 0-d; every value comes back in x's dtype."""
    if kind.matrix and x.dim() == 2:
        value = value.reshape(())
    return value.to(x.dtype)


def _p_value(kind: NormKind, p) -> float:
    return float(p) if kind.needs_p else 0.0


def _resolve(kind: str, p) -> NormKind:
    """The row of the table for a reference call (the type rule has already validated a spec's call)."""
    if kind not in NORMS:
        raise ValueError(f"unknown norm kind {kind!r}; one of {', '.join(NORMS)}")
    k = NORMS[kind]
    if k.needs_p and (p is None or float(p) < 1):
        raise ValueError(f"the Schatten norm needs a static p ≥ 1, found {p!r}")
    return k


# ---- type rules ----------------------------------------------------------------------------------------
_ENTRYWISE_HELP = 'for vectors use an entrywise kind ("l2", "linf", "l1", "rms"), or restrict this rule to matrix ' \
                  "parameters (`for matrix W`)"


def _show(value) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _choices(kind, table) -> str:
    hint = did_you_mean(kind, table) if isinstance(kind, str) else None
    return (hint.replace("`", '"') + " " if hint else "") + "kinds: " + ", ".join(f'"{k}"' for k in table)


def _check_kind(attrs) -> NormKind:
    kind, p = attrs.get("kind"), attrs.get("p")
    if not isinstance(kind, str) or kind not in NORMS:
        raise ShapeError(f"has no norm kind {_show(kind)}", code="GEO0206", help=_choices(kind, NORMS))
    k = NORMS[kind]
    if k.needs_p:
        if p is None:
            raise ShapeError('of kind "schatten" needs the static exponent `p`', code="GEO0206",
                             help='write e.g. `norm(x, "schatten", p = 3)`')
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not p >= 1:
            raise ShapeError(f"needs a static exponent p ≥ 1, found {p!r}", code="GEO0206",
                             help='p = 1 is "nuclear", p = 2 is "fro"; the spectral norm is "spectral"')
    elif p is not None:
        raise ShapeError(f'takes the exponent `p` only with kind "schatten", not "{kind}"', code="GEO0206")
    return k


def _operand(args, attrs) -> tuple[NormKind, Tensor]:
    k = _check_kind(attrs)
    x = args[0]
    if not isinstance(x, Tensor):
        raise ShapeError(f"needs a tensor, found `{x.show()}`", arg=0, code="GEO0202")
    if k.matrix and not x.is_matrix:
        raise ShapeError(f'of kind "{k.name}" needs a matrix, found `{x.show()}`', arg=0, code="GEO0203",
                         help=_ENTRYWISE_HELP, note=f'"{k.name}" is a matrix norm; it is defined per matrix')
    return k, x


def _number(t, i: int, what: str) -> None:
    ok = isinstance(t, Scalar) or (isinstance(t, Static) and t.kind in ("int", "float"))
    if not ok:
        raise ShapeError(f"needs a number for `{what}`, found `{t.show()}`", arg=i, code="GEO0202")


def _value_rule(args, attrs, constraints):
    """norm, dual_norm: 0-d, or (…, 1, 1) per matrix of a batch (as reductions with axis = None)."""
    k, x = _operand(args, attrs)
    if k.matrix and x.batched:
        return Tensor((1, 1), True, x.dtype)
    return Tensor((), False, x.dtype)


def _direction_rule(args, attrs, constraints):
    """lmo, sharp: the argument's type."""
    _, x = _operand(args, attrs)
    if len(args) > 1:
        _number(args[1], 1, "radius")
    return x


# ---- laws ----------------------------------------------------------------------------------------------
LAW_KINDS: list[tuple[str, dict]] = [(k, {}) for k in NORMS if k != "schatten"] + \
    [("schatten", {"p": 1.5}), ("schatten", {"p": 3})]
FUZZ_KINDS = tuple(k for k in NORMS if k != "schatten")  # the kinds that need no `p` (a domain has no relations)


def _label(kind: str, kw: dict) -> str:
    return kind + "".join(f"(p={v})" for v in kw.values())


def _samples(kind: str, count: int):
    """`count` tensors of one shape: matrices for matrix kinds, rank 1–3 tensors otherwise; Gaussian at three
    scales, or drawn entry by entry by hypothesis (zeros, ties, zero rows and columns, tiny values)."""
    st = sampling._st()
    shape = sampling.matrix_shapes(6) if NORMS[kind].matrix else sampling.shapes(1, 3, 5)

    def one(s):
        return st.one_of(sampling.gaussian_tensors(st.just(s)), sampling.tensors(st.just(s)))

    return shape.flatmap(lambda s: st.tuples(*[one(s) for _ in range(count)]))


def _tol(*tensors: torch.Tensor) -> float:
    """An absolute tolerance proportional to the size of the entries involved."""
    scale = max(float(t.abs().max()) * t.numel() for t in tensors) if tensors else 1.0
    return 1e-9 * scale + 1e-300


def _inner(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.to(torch.float64) * b.to(torch.float64)).sum())


def _norm_laws(kind: str, kw: dict) -> list[Law]:
    label = _label(kind, kw)

    def homogeneous(f, sample):
        (x,), c = sample
        a, b = float(f(c * x, kind=kind, **kw)), abs(c) * float(f(x, kind=kind, **kw))
        assert abs(a - b) <= _tol(c * x), f"{label}: ‖c·x‖ = {a!r} but |c|·‖x‖ = {b!r} (c = {c})"

    def triangle(f, sample):
        x, y = sample
        lhs, rhs = float(f(x + y, kind=kind, **kw)), float(f(x, kind=kind, **kw)) + float(f(y, kind=kind, **kw))
        assert lhs <= rhs + _tol(x, y), f"{label}: ‖x + y‖ = {lhs!r} > ‖x‖ + ‖y‖ = {rhs!r}"

    return [Law(f"{label}: absolutely homogeneous, ‖c·x‖ = |c|·‖x‖",
                lambda: sampling._st().tuples(_samples(kind, 1), sampling.scalars(-1e3, 1e3)), homogeneous),
            Law(f"{label}: triangle inequality ‖x + y‖ ≤ ‖x‖ + ‖y‖", lambda: _samples(kind, 2), triangle)]


def _dual_laws(kind: str, kw: dict) -> list[Law]:
    label = _label(kind, kw)

    def bounds(f, sample):
        (g, t), u = sample
        n = float(norm.reference(t, kind=kind, **kw))
        t = t * (u / n) if n > 0 else torch.zeros_like(t)
        dual = float(f(g, kind=kind, **kw))
        assert _inner(g, t) <= dual + _tol(g), f"{label}: ⟨g, t⟩ = {_inner(g, t)!r} > ‖g‖_† = {dual!r} with ‖t‖ = {u}"

    return [Law(f"{label}: ‖g‖_† ≥ ⟨g, t⟩ for every ‖t‖ ≤ 1",
                lambda: sampling._st().tuples(_samples(kind, 2), sampling._st().floats(0, 1)), bounds)]


def _lmo_laws(kind: str, kw: dict) -> list[Law]:
    label = _label(kind, kw)

    def radii():
        return sampling._st().tuples(_samples(kind, 1), sampling.positive(0.1, 10.0))

    def attains(f, sample):
        (g,), r = sample
        t = f(g, r, kind=kind, **kw)
        dual = float(dual_norm.reference(g, kind=kind, **kw))
        assert abs(_inner(g, t) - r * dual) <= r * _tol(g), \
            f"{label}: ⟨g, lmo(g)⟩ = {_inner(g, t)!r} but radius·‖g‖_† = {r * dual!r}"

    def on_ball(f, sample):
        (g,), r = sample
        if float(g.abs().max()) <= 1e-100:  # 0 maps to 0 (law below); skip underflowing magnitudes
            return
        size = float(norm.reference(f(g, r, kind=kind, **kw), kind=kind, **kw))
        assert abs(size - r) <= 1e-9 * r, f"{label}: ‖lmo(g)‖ = {size!r}, expected the radius {r!r}"

    def zero(f, sample):
        (g,) = sample
        t = f(torch.zeros_like(g), kind=kind, **kw)
        assert torch.isfinite(t).all() and not t.any(), f"{label}: lmo(0) = {t} ≠ 0"

    return [Law(f"{label}: the LMO attains the dual norm, ⟨g, lmo(g, r)⟩ = r·‖g‖_†", radii, attains),
            Law(f"{label}: the LMO lies on the sphere, ‖lmo(g, r)‖ = r for g ≠ 0", radii, on_ball),
            Law(f"{label}: lmo(0) = 0 (no division by zero)", lambda: _samples(kind, 1), zero)]


def _sharp_laws(kind: str, kw: dict) -> list[Law]:
    label = _label(kind, kw)

    def product(f, sample):
        (g,) = sample
        want = dual_norm.reference(g, kind=kind, **kw) * lmo.reference(g, kind=kind, **kw)
        got = f(g, kind=kind, **kw)
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-300), f"{label}: sharp(g) ≠ ‖g‖_†·lmo(g)"
        assert torch.isfinite(f(torch.zeros_like(g), kind=kind, **kw)).all()

    return [Law(f"{label}: sharp(g) = ‖g‖_†·lmo(g)", lambda: _samples(kind, 1), product)]


def _laws(make) -> list[Law]:
    return [law for kind, kw in LAW_KINDS for law in make(kind, kw)]


# ---- the operators -------------------------------------------------------------------------------------
@op(MATRIX, _value_rule, laws=_laws(_norm_laws), domain={"kind": Domain(choices=FUZZ_KINDS)}, sharding=WHOLE)
def norm(x, kind: StaticArg, p: StaticArg = None):
    """‖x‖, the norm `kind` of x: entrywise over the whole tensor, or per matrix.

    "l1", "l2", "linf", "rms" are entrywise (any tensor); "fro", "spectral", "nuclear", "rms_rms" (RMS→RMS),
    "max_row_l2" (ℓ2→ℓ∞), "max_col_l2" (ℓ1→ℓ2), "max_abs" (ℓ1→ℓ∞) and "schatten" (static p ≥ 1) are per
    matrix. A 0-d tensor (it stays on the device), or (…, 1, 1) per matrix of a batch. For g = grad:

    kind        ‖x‖                          LMO(g) (unit ball)                    ‖g‖_†
    l1          Σ|xᵢ|                        sign(g_{i*})·e_{i*}, i* = argmax|gᵢ|   max|gᵢ|
    l2, fro     ‖x‖₂                         g/‖g‖₂                                ‖g‖₂
    linf        max|xᵢ|                      sign(g)                               Σ|gᵢ|
    rms         ‖x‖₂/√N                      √N·g/‖g‖₂                             √N·‖g‖₂
    spectral    σ_max                        U Vᵀ                                  Σσᵢ
    nuclear     Σσᵢ                          u₁v₁ᵀ                                  σ_max
    rms_rms     √(n/m)·σ_max (RMS→RMS)       √(m/n)·U Vᵀ                            √(m/n)·Σσᵢ
    max_row_l2  maxᵢ ‖x_{i:}‖₂ (ℓ2→ℓ∞)        each row g_{i:}/‖g_{i:}‖₂              Σᵢ ‖g_{i:}‖₂
    max_col_l2  maxⱼ ‖x_{:j}‖₂ (ℓ1→ℓ2)        each column g_{:j}/‖g_{:j}‖₂           Σⱼ ‖g_{:j}‖₂
    max_abs     max|xᵢⱼ| (ℓ1→ℓ∞)             sign(g)                               Σ|gᵢⱼ|
    schatten p  ‖σ‖_p                        U diag(σ^{q−1}/‖σ‖_q^{q−1}) Vᵀ         ‖σ‖_q,  1/p + 1/q = 1

    (m, n) = (rows, cols). Bernstein & Newhouse, "Old optimizer, new norm" (arXiv 2409.20325);
    Pethick et al., Scion (arXiv 2502.07529); algorithms.md §6.
    """
    k = _resolve(kind, p)
    return _finish(k.norm(x, _p_value(k, p)), x, k)


@op(MATRIX, _value_rule, laws=_laws(_dual_laws), domain={"kind": Domain(choices=FUZZ_KINDS)}, sharding=WHOLE)
def dual_norm(g, kind: StaticArg, p: StaticArg = None):
    """‖g‖_† = max_{‖t‖ ≤ 1} ⟨g, t⟩, the dual of the norm `kind`.

    Kinds as for `norm`: ℓ1 ↔ ℓ∞, ℓ2 ↔ ℓ2, RMS ↔ √N·ℓ2, spectral ↔ nuclear, RMS→RMS ↔ √(m/n)·nuclear,
    max row ℓ2 ↔ Σ row ℓ2, max column ℓ2 ↔ Σ column ℓ2, max |entry| ↔ Σ|entries|, Schatten-p ↔ Schatten-q
    (1/p + 1/q = 1).

    The size of a steepest-descent step: g♯ = ‖g‖_†·LMO(g) (Bernstein & Newhouse, arXiv 2409.20325, §2).
    """
    k = _resolve(kind, p)
    return _finish(k.dual(g, _p_value(k, p)), g, k)


@op(MATRIX, _direction_rule, laws=_laws(_lmo_laws),
    domain={"kind": Domain(choices=FUZZ_KINDS), "radius": Domain(low=0.0)}, sharding=WHOLE)
@values_first
def lmo(g, kind: StaticArg, radius=1.0, p: StaticArg = None):
    """radius·LMO(g), LMO(g) = argmax_{‖t‖ ≤ 1} ⟨g, t⟩: the steepest unit direction of the norm `kind`.


    l2/fro g/‖g‖₂; rms √N·g/‖g‖₂; linf and max_abs sign(g) (signSGD, Lion); l1 sign(g_{i*})·e_{i*} at the
    first largest |gᵢ| (greedy coordinate descent); spectral U Vᵀ = msign(g) by float64 SVD (Muon's target);
    nuclear u₁v₁ᵀ; rms_rms √(m/n)·U Vᵀ (Modula, Scion "Spectral"); max_row_l2 / max_col_l2 each row / column
    normalized (Scion "RowNorm" / "ColNorm" up to `scale_factor`); schatten U diag(σ^{q−1}/‖σ‖_q^{q−1}) Vᵀ.
    lmo(0) = 0, and a zero row, column or singular value stays zero. `radius` is a runtime value: Scion's ρ,
    the Frank–Wolfe step is −ρ·lmo(g) (algorithms.md §6; Pethick et al., arXiv 2502.07529).
    """
    k = _resolve(kind, p)
    return k.lmo(g, _p_value(k, p)).to(g.dtype) * radius


@op(MATRIX, _direction_rule, laws=_laws(_sharp_laws), domain={"kind": Domain(choices=FUZZ_KINDS)}, sharding=WHOLE)
def sharp(g, kind: StaticArg, p: StaticArg = None):
    """g♯ = ‖g‖_†·LMO(g) = argmax_t ⟨g, t⟩ − ½‖t‖², the unnormalized steepest-descent direction.

    For the norm `kind` (argmin_Δ ⟨g, Δ⟩ + (λ/2)‖Δ‖² = −g♯/λ). For "l2" it is g itself; for "spectral" it is
    (Σσᵢ)·U Vᵀ; for "linf" ‖g‖₁·sign(g) (Bernstein & Newhouse, arXiv 2409.20325; Modula's `dualize`).
    sharp(0) = 0.
    """
    k = _resolve(kind, p)
    pv = _p_value(k, p)
    return _finish(k.dual(g, pv), g, k) * k.lmo(g, pv).to(g.dtype)


# ---- shape scale factors -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScaleFactor:
    name: str
    formula: str
    fn: Callable[[int, int], float]
    source: str


SCALE_FACTORS: dict[str, ScaleFactor] = {s.name: s for s in [
    ScaleFactor("muon", "√max(1, m/n)", lambda m, n: math.sqrt(max(1.0, m / n)),
                "Keller Jordan's Muon; torch.optim.Muon adjust_lr_fn=\"original\"; SSO \"shape_scaling\""),
    ScaleFactor("moonlight", "0.2·√max(m, n)", lambda m, n: 0.2 * math.sqrt(max(m, n)),
                "Moonlight (Liu et al., arXiv 2502.16982); torch.optim.Muon \"match_rms_adamw\"; "
                "SSO \"align_adamw_rms\""),
    ScaleFactor("modula", "√(m/n)", lambda m, n: math.sqrt(m / n),
                "Modula Linear.dualize √(fan_out/fan_in); Scion \"Spectral\" (normalized)"),
    ScaleFactor("spectral_mup", "√(m/n)", lambda m, n: math.sqrt(m / n),
                "SSO radius / lr mode \"spectral_mup\" (Xie et al., arXiv 2601.08393)"),
    ScaleFactor("scion_colnorm", "√m", lambda m, n: math.sqrt(m),
                "Scion \"ColNorm\": √d_out times lmo(g, \"max_col_l2\") (unit column RMS)"),
    ScaleFactor("scion_rownorm", "1/√n", lambda m, n: 1.0 / math.sqrt(n),
                "Scion \"RowNorm\": lmo(g, \"max_row_l2\")/√d_in (the ‖·‖_{RMS→∞} LMO)"),
    ScaleFactor("scion_sign", "1/n", lambda m, n: 1.0 / n,
                "Scion \"Sign\" (normalized): sign(g)/d_in"),
]}


def _scale_rule(args, attrs, constraints):
    kind = attrs.get("kind")
    if not isinstance(kind, str) or kind not in SCALE_FACTORS:
        raise ShapeError(f"has no scale factor {_show(kind)}", code="GEO0206", help=_choices(kind, SCALE_FACTORS))
    x = args[0]
    if not (isinstance(x, Tensor) and x.is_matrix):
        raise ShapeError(f"needs a matrix, found `{x.show()}`", arg=0, code="GEO0203",
                         help="the scale factors depend on the shape (m, n) of a matrix; restrict this rule to "
                              "matrix parameters (`for matrix W`)")
    return SCALAR


def _rms(x: torch.Tensor) -> float:
    return float(x.square().mean().sqrt())


def _scale_laws() -> list[Law]:
    def full_rank():
        return sampling.gaussian_matrices(8)

    def moonlight(f, g):
        got = _rms(f(g, kind="moonlight") * msign_svd(g))
        assert abs(got - 0.2) <= 1e-9, f"RMS(0.2·√max(m, n)·msign(g)) = {got!r}, expected 0.2"

    def muon(f, g):
        got, want = _rms(f(g, kind="muon") * msign_svd(g)), 1 / math.sqrt(g.shape[-1])
        assert abs(got - want) <= 1e-9, f"RMS(√max(1, m/n)·msign(g)) = {got!r}, expected 1/√n = {want!r}"

    def modula(f, g):
        want = lmo.reference(g, kind="rms_rms")
        for kind in ("modula", "spectral_mup"):
            assert torch.allclose(f(g, kind=kind) * msign_svd(g), want, atol=1e-12), f"{kind}: ≠ lmo(g, \"rms_rms\")"

    def colnorm(f, g):
        cols = f(g, kind="scion_colnorm") * lmo.reference(g, kind="max_col_l2")
        col_rms = cols.square().mean(-2).sqrt()
        assert torch.allclose(col_rms, torch.ones_like(col_rms)), f"column RMS {col_rms.tolist()} ≠ 1"

    def rownorm(f, g):
        rows = f(g, kind="scion_rownorm") * lmo.reference(g, kind="max_row_l2")
        size = math.sqrt(g.shape[-1]) * float(norm.reference(rows, kind="max_row_l2"))  # ‖·‖_{RMS→∞}
        assert abs(size - 1) <= 1e-9, f"‖rownorm(g)‖_(RMS→∞) = {size!r}, expected 1"

    return [Law("moonlight: RMS(scale·msign(g)) = 0.2 (matches AdamW's update RMS)", full_rank, moonlight),
            Law("muon: RMS(scale·msign(g)) = 1/√n", full_rank, muon),
            Law("modula, spectral_mup: scale·msign(g) = lmo(g, \"rms_rms\")", full_rank, modula),
            Law("scion_colnorm: scale·lmo(g, \"max_col_l2\") has unit column RMS", full_rank, colnorm),
            Law("scion_rownorm: scale·lmo(g, \"max_row_l2\") has unit RMS→ℓ∞ norm", full_rank, rownorm)]


@op(SHAPE, _scale_rule, laws=_scale_laws(), domain={"kind": Domain(choices=tuple(SCALE_FACTORS))}, sharding=SHAPE_OF)
def scale_factor(x, kind: StaticArg):
    """s(m, n), the shape factor that multiplies a unit-norm direction (Muon, Moonlight, Modula, Scion).

    For a matrix of m rows (d_out) and n columns (d_in); a host scalar:

        "muon"           √max(1, m/n)     Keller Jordan's Muon; torch.optim.Muon "original"
        "moonlight"      0.2·√max(m, n)   Moonlight / torch.optim.Muon "match_rms_adamw": update RMS 0.2
        "modula"         √(m/n)           Modula Linear.dualize; Scion "Spectral": the RMS→RMS LMO
        "spectral_mup"   √(m/n)           SSO's spectral µP radius (Xie et al., arXiv 2601.08393)
        "scion_colnorm"  √m               Scion "ColNorm" on lmo(g, "max_col_l2")
        "scion_rownorm"  1/√n             Scion "RowNorm" on lmo(g, "max_row_l2")
        "scion_sign"     1/n              Scion "Sign" on sign(g)

    e.g. Muon: `W = W - lr * scale_factor(W, "muon") * msign(buf)` (algorithms.md §1.2, §1.5, §6;
    Pethick et al., arXiv 2502.07529; LIONS-EPFL/scion scion.py).
    """
    m, n = x.shape[-2], x.shape[-1]
    return SCALE_FACTORS[kind].fn(m, n)
