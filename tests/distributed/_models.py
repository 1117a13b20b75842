"""The small model and the deterministic gradients the distributed tests share (uneven shards on 2, 3 and 4 ranks)."""
from __future__ import annotations

import warnings

import torch

import geo


class Net(torch.nn.Module):
    """Rows 11, 9, 6 and 1-D parameters: 11 and 9 rows split unevenly on 2 ranks, 6 rows on 4 ranks leave the last
    rank none."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(11, 6)
        self.h = torch.nn.ModuleList([torch.nn.Linear(6, 9), torch.nn.Linear(9, 6)])
        self.norm = torch.nn.LayerNorm(6)
        self.head = torch.nn.Linear(6, 11, bias=False)


def model(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


def params_for(name: str, net: torch.nn.Module):
    """Every named parameter, or the matrices alone for an optimizer of matrices (as tests/stdlib/test_dropin.py)."""
    every = list(net.named_parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", geo.RoutingWarning)
        try:
            geo.compile(name)([(n, p.detach().clone()) for n, p in every])
        except geo.GeoError:
            every = [(n, p) for n, p in every if p.dim() == 2]
    return every


def grad(name: str, shape, t: int, bad: bool = False) -> torch.Tensor:
    """The gradient of parameter `name` at step t: the same on every rank and in the unsharded run."""
    g = torch.Generator().manual_seed(_stable(name) * 1000 + t)
    out = torch.randn(shape, generator=g)
    if bad:
        out.view(-1)[-1] = float("nan")  # in the last rank's rows
    return out


def _stable(text: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(text))
