"""Reproducible adversarial tensors, and how fuzz reports compare and describe values.

The gradient kinds are where optimizer arithmetic breaks: zeros (a division by a norm), tiny ~1e-30 (a norm
that underflows), huge ~1e30 (a square that overflows fp32), rank-1 and ill-conditioned matrices (SVDs and
Newton–Schulz at their worst), NaN and Inf (the `nonfinite` policy). Every input a fuzz run draws is a
`Recipe` (kind, seed, scale), not a tensor, so a report prints one Python line that rebuilds it exactly
(`make_tensor`). Comparisons are bit for bit (`same`), NaN equal to NaN: a backend must reproduce the
reference's NaNs as well as its numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..compiler.types import torch_dtype

FINITE_KINDS = ("gaussian", "zeros", "tiny", "huge", "rank1", "illcond")
NONFINITE_KINDS = ("nan", "inf")
GRAD_KINDS = FINITE_KINDS + NONFINITE_KINDS
SCALES = (1e-3, 1.0, 1e3)


def make_tensor(kind: str, shape: Sequence[int], dtype: str = "fp32", seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """A reproducible tensor of one of GRAD_KINDS (fuzz reports' Python snippets call this).

    gaussian: N(0, 1)·scale; zeros; tiny: N(0, 1)·1e-30; huge: N(0, 1)·1e30; rank1: u·vᵀ·scale per matrix (a
    constant for vectors); illcond: U·diag(1 … 1e-12)·Vᵀ·scale per matrix (log-spaced magnitudes for vectors);
    nan / inf: gaussian with one entry NaN / ±Inf."""
    shape = tuple(int(d) for d in shape)
    g = torch.Generator().manual_seed(int(seed))
    base = torch.randn(shape, generator=g, dtype=torch.float64)
    if kind == "gaussian":
        x = base * scale
    elif kind == "zeros":
        x = torch.zeros(shape, dtype=torch.float64)
    elif kind == "tiny":
        x = base * 1e-30
    elif kind == "huge":
        x = base * 1e30
    elif kind == "rank1":
        if len(shape) >= 2:
            u = torch.randn(shape[:-1] + (1,), generator=g, dtype=torch.float64)
            v = torch.randn(shape[:-2] + (1, shape[-1]), generator=g, dtype=torch.float64)
            x = u @ v * scale
        else:
            x = torch.full(shape, scale, dtype=torch.float64)
    elif kind == "illcond":
        if len(shape) >= 2:
            m, n = shape[-2], shape[-1]
            k = min(m, n)
            qa, _ = torch.linalg.qr(torch.randn(shape[:-2] + (m, k), generator=g, dtype=torch.float64))
            qb, _ = torch.linalg.qr(torch.randn(shape[:-2] + (n, k), generator=g, dtype=torch.float64))
            s = torch.logspace(0, -12, k, dtype=torch.float64) if k > 1 else torch.ones(1, dtype=torch.float64)
            x = (qa * s) @ qb.mT * scale
        else:
            n = max(1, math.prod(shape))
            mags = torch.logspace(0, -12, n, dtype=torch.float64) if n > 1 else torch.ones(1, dtype=torch.float64)
            x = (mags * torch.sign(base.reshape(-1) + 1e-300)).reshape(shape) * scale
    elif kind in ("nan", "inf"):
        x = (base * scale).reshape(-1).clone()
        if x.numel():
            i = int(torch.randint(x.numel(), (1,), generator=g))
            x[i] = float("nan") if kind == "nan" else (float("inf") if seed % 2 == 0 else -float("inf"))
        x = x.reshape(shape)
    else:
        raise ValueError(f"unknown tensor kind {kind!r}; one of {', '.join(GRAD_KINDS)}")
    return x.to(torch_dtype(dtype))


@dataclass(frozen=True)
class Recipe:
    """How to rebuild one input tensor: `make_tensor(kind, shape, dtype, seed, scale)`."""

    kind: str
    seed: int = 0
    scale: float = 1.0

    def build(self, shape, dtype: str) -> torch.Tensor:
        return make_tensor(self.kind, shape, dtype, self.seed, self.scale)

    @property
    def finite(self) -> bool:
        return self.kind not in NONFINITE_KINDS

    def show(self) -> str:
        scale = f", scale={self.scale:g}" if self.kind in ("gaussian", "rank1", "illcond", "nan", "inf") else ""
        return f"{self.kind}(seed={self.seed}{scale})"

    def python(self, shape, dtype: str) -> str:
        return f"make_tensor({self.kind!r}, {tuple(shape)!r}, {dtype!r}, seed={self.seed}, scale={self.scale!r})"


def summarize(x: Any) -> str:
    """A one-line summary of a value: shape, dtype, range, norm, and how many entries are NaN/Inf."""
    if not isinstance(x, torch.Tensor):
        return repr(x)
    if x.numel() == 0:
        return f"empty {tuple(x.shape)} {x.dtype}"
    f = x.detach().to(torch.float64)
    nan, inf = int(f.isnan().sum()), int(f.isinf().sum())
    finite = f[f.isfinite()]
    parts = [f"shape {tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"]
    if x.numel() <= 6:
        parts.append("values " + ", ".join(f"{v:.6g}" for v in f.reshape(-1).tolist()))
    elif finite.numel():
        parts.append(f"min {finite.min().item():.4g} max {finite.max().item():.4g} ‖·‖ {finite.norm().item():.4g}")
    if nan or inf:
        parts.append(f"{nan} NaN, {inf} Inf")
    return "; ".join(parts)


def same(a: Any, b: Any) -> bool:
    """Bit-for-bit equality of two values (NaN equals NaN; dtypes and shapes must match)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return bool(((a == b) | (a.isnan() & b.isnan())).all()) if a.is_floating_point() else torch.equal(a, b)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return a == b


def difference(a: Any, b: Any) -> str:
    """Where two values differ first and by how much (for reports)."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return f"{a!r} vs {b!r}"
    if a.dtype != b.dtype or a.shape != b.shape:
        return f"{tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}"
    fa, fb = a.to(torch.float64), b.to(torch.float64)
    bad = ~((fa == fb) | (fa.isnan() & fb.isnan()))
    if not bad.any():
        return "equal"
    idx = tuple(int(i) for i in bad.nonzero()[0])
    diff = (fa - fb).abs()
    diff = diff[diff.isfinite()]
    worst = f"; max |difference| {diff.max().item():.3g}" if diff.numel() else ""
    return f"{int(bad.sum())} of {a.numel()} entries differ; first at {idx}: {fa[idx].item():.9g} vs {fb[idx].item():.9g}{worst}"
