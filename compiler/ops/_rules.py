"""Checks that the type rules of several operator families share (private module: not an op family).

A type rule (`OpDef.type_rule`) sees argument types and static attributes, never values; it raises ShapeError,
which the checker reports at the call. These are the checks more than one family makes, so that an argument
means, and is refused with, the same words wherever it appears: a runtime number, a static step count, the
msign settings (method, steps, coeffs, dtype) of every operator that orthogonalizes, and two tensors of one
shape.
"""
from __future__ import annotations

from ..types import DTYPES, Scalar, ShapeError, Static, Tensor


def number(t, i: int, what: str) -> None:
    """A runtime or static number, or a 0-d tensor (a norm, a state like `prev_lambda`)."""
    ok = isinstance(t, Scalar) or (isinstance(t, Static) and t.kind in ("int", "float")) or \
        (isinstance(t, Tensor) and t.shape is not None and all(d == 1 for d in t.shape))
    if not ok:
        raise ShapeError(f"needs a number for `{what}`, found `{t.show()}`", arg=i, code="GEO0202")


def require_matrices(args, indices=(0, 1)) -> None:
    """The arguments at `indices` are matrices (or batches of matrices)."""
    for i in indices:
        t = args[i]
        if not (isinstance(t, Tensor) and t.is_matrix):
            raise ShapeError(f"needs a matrix, found `{t.show()}`", arg=i, code="GEO0203",
                             help="restrict this rule to matrix parameters (`for matrix W`)")


def check_steps(value, what: str, high: int = 1000) -> None:
    """A static iteration count in [0, high]."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        raise ShapeError(f"`{what}` must be a static integer in [0, {high}], found {value!r}", code="GEO0206")


def check_msign_attrs(attrs, methods=("ns", "svd")) -> None:
    """The msign settings shared by the ops that call msign: method, steps, coeffs, dtype."""
    method = attrs.get("method")
    if method not in methods:
        raise ShapeError(f"`method` must be one of {', '.join(repr(m) for m in methods)}, found {method!r}".replace(
            "'", '"'), code="GEO0206")
    check_steps(attrs.get("steps"), "steps", 99)
    from .matrix import SCHEDULES  # here: matrix.py's own rule uses this module's checks
    coeffs = attrs.get("coeffs")
    if isinstance(coeffs, str):
        if coeffs not in SCHEDULES:
            raise ShapeError(f"unknown coefficient schedule {coeffs!r}", code="GEO0206",
                             help="one of " + ", ".join(f'"{k}"' for k in SCHEDULES))
    elif not (isinstance(coeffs, tuple) and coeffs and all(isinstance(t, tuple) and len(t) == 3 for t in coeffs)):
        raise ShapeError("`coeffs` must name a schedule or be a tuple of (a, b, c) tuples", code="GEO0206")
    check_compute_dtype(attrs.get("dtype"))


def check_compute_dtype(dtype) -> None:
    """A matrix op's compute dtype: a name of the dtype table, or "param" (the parameter's own)."""
    if dtype not in DTYPES and dtype != "param":
        raise ShapeError(f"unknown dtype {dtype!r}", code="GEO0206",
                         help="one of " + ", ".join(f'"{k}"' for k in (*DTYPES, "param")))


def same_shape(a: Tensor, b: Tensor, constraints, i: int) -> None:
    """g and x of one shape (a gradient and the point it moves): equal dims, or a bind-time constraint where a
    symbolic dim meets another."""
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
