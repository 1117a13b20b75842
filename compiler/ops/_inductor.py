"""Lowerings for the elementwise operators' `inductor` facets (compiler/backends/inductor.py).

The inductor backend traces each fused region of a plan with torch.compile. Host scalars (hyperparameters,
bias corrections, shape facts) enter a region as 0-d float64 tensors: they are data, so a learning-rate
schedule or a new step count never recompiles (a Python float would be a constant Dynamo guards on, one
recompile per new value). Most references trace as they are with such a scalar — torch's type promotion keeps
a 0-d tensor from widening the result, exactly as it does for a Python number. A facet exists only where the
reference needs a Python number:

    axpy       `torch.add(alpha=s)` takes a number, and `s == 0` (skip a zero weight decay) is a branch
    addcmul    `value=s` takes a number
    addcdiv    `value=s` takes a number
    lerp       `torch.lerp` wants its tensor weight in the tensor's dtype

Each computes what torch's fused kernel computes, in its opmath dtype (fp32 for 16-bit tensors, the scalar
rounded to it as torch rounds a Python scalar), then rounds once to the result dtype. A finite numeric constant
of the program is a Python float literal in the traced code (part of the compiled graph): then the facet is
the reference itself.
"""
from __future__ import annotations

import functools
from typing import Any

from ._lazy import lazy_torch

torch = lazy_torch(globals())


def _result(*values: Any) -> torch.dtype:
    """The dtype torch gives a result of these tensors (host scalars never widen it)."""
    dtypes = [v.dtype for v in values if isinstance(v, torch.Tensor) and not _scalar(v)]
    return functools.reduce(torch.promote_types, dtypes)


def _scalar(v: Any) -> bool:
    """A host scalar as the backend passes it: a 0-d float64 tensor (a Python float when it is a constant)."""
    return not isinstance(v, torch.Tensor) or (v.dim() == 0 and v.dtype == torch.float64)


def _opmath(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def _wide(v: Any, dtype: torch.dtype) -> Any:
    return v.to(dtype) if isinstance(v, torch.Tensor) else v


def axpy(x, y, s):
    """x + s·y with one rounding, and exactly x where s = 0 (torch.optim skips a zero weight decay): a select
    on the scalar, since the scalar is data."""
    out = _result(x, y)
    w = _opmath(out)
    value = (_wide(x, w) + _wide(s, w) * _wide(y, w)).to(out)
    if not isinstance(s, torch.Tensor):
        return x if float(s) == 0.0 else value
    return torch.where(s == 0, x.to(out), value)


def addcmul(x, a, b, s):
    """x + s·a·b in the opmath dtype, rounded once (torch.addcmul: `self + value * t1 * t2`)."""
    out = _result(x, a, b)
    w = _opmath(out)
    return (_wide(x, w) + _wide(s, w) * _wide(a, w) * _wide(b, w)).to(out)


def addcdiv(x, a, b, s):
    """x + (s·a)/b in the opmath dtype, rounded once (torch.addcdiv: `self + value * t1 / t2`)."""
    out = _result(x, a, b)
    w = _opmath(out)
    return (_wide(x, w) + _wide(s, w) * _wide(a, w) / _wide(b, w)).to(out)


def lerp(a, b, w):
    """torch.lerp in the opmath dtype (torch's kernel: a + w·(b − a) for |w| < 0.5, else b − (b − a)·(1 − w)),
    the weight rounded to it as torch rounds a Python weight; a tensor weight or mixed operands: a + w·(b − a),
    as the reference."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape \
            and _scalar(w):
        op = _opmath(a.dtype)
        return torch.lerp(a.to(op), b.to(op), _wide(w, op)).to(a.dtype)
    return a + w * (b - a)
