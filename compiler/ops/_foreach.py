"""Multi-tensor lowerings for the elementwise operators' `foreach` facets (the torch path).

A facet is `fn(args, attrs, inplace) -> list of tensors | None`. Each argument is a list of tensors (one per
parameter of the group), a float shared by all of them, or `Scalars` (one host float per parameter).
`inplace` asks the facet to overwrite the first list. A facet returns None where torch has no multi-tensor
form for these arguments (a number first, a per-parameter scalar torch takes only once); the executor then
runs the reference per tensor. Every call is the reference's own torch function, tensor by tensor, so the
results are the reference's bit for bit.
"""
from __future__ import annotations

from typing import Any, Callable

from .registry import host_scalar
from ._lazy import lazy_torch

torch = lazy_torch(globals())


class Scalars(tuple):
    """One host float per tensor of the group."""


def _is_tensors(a: Any) -> bool:
    return isinstance(a, list)


def _scalar(value: Any, like: list[torch.Tensor]) -> Any:
    """A host float as torch's multi-tensor ops take it (finite values beyond the dtype's range as ±inf, as the
    reference's casts give)."""
    if isinstance(value, Scalars):
        return [host_scalar(float(v), t) for v, t in zip(value, like)]
    return host_scalar(float(value), like[0]) if like else float(value)


def _run(name: str, first: list[torch.Tensor], rest: list[Any], inplace: bool, **kw: Any) -> list[torch.Tensor]:
    if inplace:
        getattr(torch, f"_foreach_{name}_")(first, *rest, **kw)
        return first
    return list(getattr(torch, f"_foreach_{name}")(first, *rest, **kw))


def _named(call: str) -> Callable[[Callable], Callable]:
    """Records the torch call a facet makes, for `geo compile --emit torch`."""
    def mark(fn: Callable) -> Callable:
        fn.call = call
        return fn
    return mark


def binary(name: str, commutes: bool) -> Callable:
    """a ∘ b for tensors or host numbers on either side (a number first only where ∘ commutes)."""
    @_named(f"torch._foreach_{name}")
    def lower(args, attrs, inplace):
        a, b = args
        if not _is_tensors(a):
            if not commutes or not _is_tensors(b):
                return None
            a, b, inplace = b, a, False
        if _is_tensors(b):
            return _run(name, a, [b], inplace)
        if name == "mul" and _single(b) and float(b) == 1.0:
            return a  # x·1 = x exactly (−0, ±inf and NaN included): AdamW's and Muon's 1 − lr·wd when wd = 0
        if inplace and name == "mul" and not all(t.dtype in (torch.float32, torch.float64) for t in a):
            inplace = False  # torch 2.13's _foreach_mul_ rounds the scalar to bf16/fp16 first; `t * s` does not
        return _run(name, a, [_scalar(b, a)], inplace)
    return lower


def unary(name: str) -> Callable:
    @_named(f"torch._foreach_{name}")
    def lower(args, attrs, inplace):
        (x,) = args
        return _run(name, x, [], inplace) if _is_tensors(x) else None
    return lower


def _single(value: Any) -> bool:
    return not isinstance(value, Scalars)


@_named("torch._foreach_lerp")
def lerp(args, attrs, inplace):
    """torch.lerp where both ends are tensors of one dtype and shape (the reference's condition), else None."""
    a, b, w = args
    if not (_is_tensors(a) and _is_tensors(b) and not _is_tensors(w) and _single(w)):
        return None
    if not all(x.dtype == y.dtype and x.shape == y.shape for x, y in zip(a, b)):
        return None
    return _run("lerp", a, [b, _scalar(w, a)], inplace)


@_named("selects a list by a host condition (no copy; a tensor condition: per tensor)")
def where(args, attrs, inplace):
    """where(c, a, b) for a host condition c: the chosen side itself, where it is a tensor and the result would
    have its dtype and shape (the other side a number, or tensors of the same dtype and shape), else None. The
    result aliases its source; the executor never overwrites such a value in place."""
    c, a, b = args
    if _is_tensors(c):
        return None
    picks = [bool(v) for v in c] if isinstance(c, Scalars) else None
    count = len(a) if _is_tensors(a) else len(b) if _is_tensors(b) else 0
    if count == 0:
        return None
    out = []
    for i in range(count):
        chosen, other = (a, b) if (picks[i] if picks is not None else bool(c)) else (b, a)
        if not _is_tensors(chosen):
            return None
        if _is_tensors(other) and (other[i].dtype != chosen[i].dtype or other[i].shape != chosen[i].shape):
            return None
        out.append(chosen[i])
    return out


@_named("torch._foreach_add(alpha=s)")
def axpy(args, attrs, inplace):
    """x + s·y as torch.add(x, y, alpha=s): one foreach call per distinct s; x itself where s = 0 (as the
    reference)."""
    x, y, s = args
    if not (_is_tensors(x) and _is_tensors(y)):
        return None
    return _per_value(s, len(x), lambda idx, v: _pick(x, idx) if float(v) == 0.0 else
                      _run("add", _pick(x, idx), [_pick(y, idx)], inplace, alpha=_scalar(v, _pick(x, idx))))


def _scaled_pair(name: str) -> Callable:
    """x + s·(a ∘ b) as torch's addcmul/addcdiv(x, a, b, value=s), for three lists of tensors."""
    @_named(f"torch._foreach_{name}")
    def lower(args, attrs, inplace):
        x, a, b, s = args
        if not (_is_tensors(x) and _is_tensors(a) and _is_tensors(b)):
            return None
        return _run(name, x, [a, b, _scalar(s, x)], inplace)
    return lower


addcmul = _scaled_pair("addcmul")
addcdiv = _scaled_pair("addcdiv")


def _pick(items: list[Any], idx: list[int]) -> list[Any]:
    return items if len(idx) == len(items) else [items[i] for i in idx]


def _per_value(s: Any, count: int, call: Callable[[list[int], float], list[torch.Tensor]]) -> list[torch.Tensor]:
    """Calls `call(indices, value)` once per distinct host value of `s` and reassembles the results in order."""
    if _single(s):
        return call(list(range(count)), s)
    groups: dict[Any, list[int]] = {}
    for i, v in enumerate(s):
        groups.setdefault(repr(v), []).append(i)
    out: list[Any] = [None] * count
    for idx in groups.values():
        for i, r in zip(idx, call(idx, s[idx[0]])):
            out[i] = r
    return out
