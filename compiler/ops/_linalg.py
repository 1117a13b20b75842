"""LAPACK-backed decompositions that propagate NaN instead of raising (private module: not an op family).

torch.linalg.svd / svdvals / eigh raise `_LinAlgError` on a matrix holding NaN or ±Inf. A step then dies in the
middle of `optimizer.step()` with a traceback, while the `nonfinite="propagate"` policy promises NaN flowing
into the parameter, as torch.optim does. These wrappers decompose a zero matrix in place of each non-finite one
(batched, no host sync) and return NaN for it; finite matrices get exactly torch's results.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


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
