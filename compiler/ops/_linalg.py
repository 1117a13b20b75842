"""LAPACK-backed decompositions that propagate NaN instead of raising, and the matrix helpers that the
references of several families (spectral, manifold, dual ascent) build on them (private module: not an op
family).

torch.linalg.svd / svdvals / eigh raise `_LinAlgError` on a matrix holding NaN or ±Inf. A step then dies in the
middle of `optimizer.step()` with a traceback, while the `nonfinite="propagate"` policy promises NaN flowing
into the parameter, as torch.optim does. These wrappers decompose a zero matrix in place of each non-finite one
(batched, no host sync) and return NaN for it; finite matrices get exactly torch's results.

The exact spectral maps decompose in float64 and return the input's dtype: `map_sv` is U fn(Σ) Vᵀ over every
min(m, n) singular value (zeros included), `sv_bound` shapes a runtime bound to broadcast against Σ.
"""
from __future__ import annotations

from typing import NamedTuple

from ._lazy import lazy_torch

torch = lazy_torch(globals())


class SVD(NamedTuple):
    U: torch.Tensor
    S: torch.Tensor
    Vh: torch.Tensor


class Eigh(NamedTuple):
    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor


def _split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a (…, 1, 1) mask of the matrices with a non-finite entry, x with those matrices zeroed)."""
    bad = ~torch.isfinite(x).all(dim=-1, keepdim=True).all(dim=-2, keepdim=True)
    return bad, torch.where(bad, torch.zeros((), dtype=x.dtype, device=x.device), x)


def svd(x: torch.Tensor, full_matrices: bool = True) -> SVD:
    bad, clean = _split(x)
    U, S, Vh = torch.linalg.svd(clean, full_matrices=full_matrices)
    nan = float("nan")
    return SVD(U.masked_fill(bad, nan), S.masked_fill(bad[..., 0], nan), Vh.masked_fill(bad, nan))


def svdvals(x: torch.Tensor) -> torch.Tensor:
    bad, clean = _split(x)
    return torch.linalg.svdvals(clean).masked_fill(bad[..., 0], float("nan"))


def eigh(x: torch.Tensor) -> Eigh:
    bad, clean = _split(x)
    lam, V = torch.linalg.eigh(clean)
    nan = float("nan")
    return Eigh(lam.masked_fill(bad[..., 0], nan), V.masked_fill(bad, nan))


# ---- helpers of the references ----------------------------------------------------------------------
def f64(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float64)


def number_like(v, like: torch.Tensor) -> torch.Tensor:
    """A runtime number (a Python float or a 0-d / (…, 1, 1) tensor) as a tensor in like's dtype and device."""
    return torch.as_tensor(v, dtype=like.dtype, device=like.device)


def nonzero_or_one(n: torch.Tensor) -> torch.Tensor:
    """n where it is positive, else 1: a divisor that leaves a zero numerator zero (no 0/0)."""
    return torch.where(n > 0, n, torch.ones_like(n))


def sym(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x + x.mT)


def proj_psd(b: torch.Tensor) -> torch.Tensor:
    """proj_PSD of a symmetric matrix: V max(Λ, 0) Vᵀ (eigh)."""
    lam, V = eigh(b)
    return (V * lam.clamp(min=0).unsqueeze(-2)) @ V.mT


def svd_f64(x: torch.Tensor) -> SVD:
    """The reduced SVD of x in float64."""
    return svd(f64(x), full_matrices=False)


def map_sv(x: torch.Tensor, fn) -> torch.Tensor:
    """U fn(Σ) Vᵀ by float64 SVD (all min(m, n) singular values, zeros included), in x's dtype."""
    U, S, Vh = svd_f64(x)
    return ((U * fn(S).unsqueeze(-2)) @ Vh).to(x.dtype)


def sv_bound(v, X: torch.Tensor) -> torch.Tensor:
    """A bound on singular values (a number, 0-d, or (…, 1, 1) per matrix) shaped to broadcast against Σ (…, k)."""
    t = number_like(v, X)
    return t.reshape(t.shape[:-1]) if t.dim() >= 2 else t


def inner(a: torch.Tensor, b: torch.Tensor) -> float:
    """⟨a, b⟩ in float64, a Python float (the laws compare it against tolerances)."""
    return float((f64(a) * f64(b)).sum())
