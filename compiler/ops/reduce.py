"""Reductions: sum, mean, amax, amin, rms, dot, quantile.

`axis = None` reduces a whole tensor (a batch of matrices too) to a 0-d tensor that stays on the device (no
host sync); per-matrix norms of a batch are `norm(x, "fro")` and its kin. An integer axis keeps that dim with
size 1, so the result broadcasts back against its input (`x / rms(x, axis = -1)`).
"""
from __future__ import annotations

import math

from ..types import Scalar, ShapeError, Static, Tensor
from . import sampling
from .registry import REDUCTION, WHOLE, Domain, Law, StaticArg, op, reduction
from ._lazy import lazy_torch

torch = lazy_torch(globals())


def reduce_rule(args, attrs, constraints):
    x = args[0]
    axis = attrs.get("axis")
    if axis is not None and not isinstance(axis, int):
        raise ShapeError(f"`axis` must be a static integer, found `{axis!r}`", code="GEO0206")
    if not isinstance(x, Tensor):
        raise ShapeError(f"reduces a tensor, found `{x.show()}`", arg=0, code="GEO0202")
    for other in args[1:]:
        if isinstance(other, Tensor) and other.shape is not None and x.shape is not None and other.shape != x.shape:
            constraints.extend(zip(x.shape, other.shape))
    if axis is None:
        return Tensor((), False, x.dtype)
    if x.shape is None:
        raise ShapeError("a reduction along an axis needs a tensor of known rank", arg=0,
                         help="select parameters of one rank (`matrix`, `vector`) for this rule")
    rank = len(x.shape)
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for `{x.show()}`", code="GEO0206")
    dims = list(x.shape)
    dims[axis] = 1
    return Tensor(tuple(dims), x.batched, x.dtype)


def _sum_law():
    return Law("sum is linear: sum(2x) = 2·sum(x)", lambda: sampling.tensors(),
               lambda f, x: _check(f(2 * x), 2 * f(x)))


def _check(a, b):
    assert torch.allclose(a, b, rtol=1e-9, atol=1e-9), f"{a} != {b}"


@op(REDUCTION, reduce_rule, laws=[_sum_law()], sharding=reduction("axis", "sum"))
def sum(x, axis: StaticArg = None):  # noqa: A001
    """Σᵢ xᵢ (over everything, or along `axis` keeping it as size 1)."""
    return x.sum() if axis is None else x.sum(dim=axis, keepdim=True)


@op(REDUCTION, reduce_rule, sharding=reduction("axis", "mean"))
def mean(x, axis: StaticArg = None):
    """(1/N) Σᵢ xᵢ."""
    return x.mean() if axis is None else x.mean(dim=axis, keepdim=True)


@op(REDUCTION, reduce_rule, sharding=reduction("axis", "max"))
def amax(x, axis: StaticArg = None):
    """maxᵢ xᵢ."""
    return x.amax() if axis is None else x.amax(dim=axis, keepdim=True)


@op(REDUCTION, reduce_rule, sharding=reduction("axis", "min"))
def amin(x, axis: StaticArg = None):
    """minᵢ xᵢ."""
    return x.amin() if axis is None else x.amin(dim=axis, keepdim=True)


@op(REDUCTION, reduce_rule,
    laws=[Law("rms(c) = |c| for a constant tensor", lambda: sampling.scalars(),
              lambda f, c: _check(f(torch.full((3, 4), c, dtype=torch.float64)), torch.tensor(abs(c), dtype=torch.float64)))], sharding=reduction("axis", "rms"))
def rms(x, axis: StaticArg = None):
    """RMS(x) = sqrt(mean(x²)) = ‖x‖₂/√N."""
    sq = x.square()
    return (sq.mean() if axis is None else sq.mean(dim=axis, keepdim=True)).sqrt()


@op(REDUCTION, reduce_rule, sharding=reduction("axis", "sum"))
def dot(a, b, axis: StaticArg = None):
    """⟨a, b⟩ = Σᵢ aᵢbᵢ (the Frobenius inner product for matrices)."""
    p = a * b
    return p.sum() if axis is None else p.sum(dim=axis, keepdim=True)



def _quantile_rule(args, attrs, constraints):
    x, q = args
    if not isinstance(x, Tensor):
        raise ShapeError(f"reduces a tensor, found `{x.show()}`", arg=0, code="GEO0202")
    if not (isinstance(q, Scalar) or (isinstance(q, Static) and q.kind in ("int", "float"))):
        raise ShapeError(f"needs a number known on the host for `q`, found `{q.show()}`", arg=1, code="GEO0202")
    return Tensor((), False, x.dtype)


def _quantile_laws():
    def ends(f, x):
        _check(f(x, 0.0), x.min())
        _check(f(x, 1.0), x.max())
        for q in (0.1, 0.5, 0.9):
            _check(f(x, q), torch.quantile(x.flatten(), q))
    return [Law("quantile(x, 0) = min, quantile(x, 1) = max, and torch.quantile's linear interpolation between",
                lambda: sampling.tensors(sampling.shapes(1, 2, 7)), ends)]


@op(REDUCTION, _quantile_rule, laws=_quantile_laws(), domain={"q": Domain(0.0, 1.0)}, sharding=WHOLE)
def quantile(x, q):
    """The q-quantile of all entries of x (q in [0, 1], clamped), by linear interpolation between the two order
    statistics around position q·(N − 1) — torch.quantile's default, computed with `kthvalue` so that it has no
    size limit (ROOT's outlier threshold: `quantile(abs(m), 0.9)`). A 0-d tensor; NaN entries make it NaN."""
    flat = x.reshape(-1)
    n = flat.numel()
    if n == 0:
        return torch.full((), math.nan, dtype=x.dtype, device=x.device)
    pos = min(max(float(q), 0.0), 1.0) * (n - 1) if math.isfinite(float(q)) else 0.0
    lo, hi = int(math.floor(pos)), int(math.ceil(pos))
    a = flat.kthvalue(lo + 1).values
    value = a if hi == lo else torch.lerp(a, flat.kthvalue(hi + 1).values, pos - lo)
    return torch.where(flat.isnan().any(), torch.full_like(value, math.nan), value)  # (no host sync)
