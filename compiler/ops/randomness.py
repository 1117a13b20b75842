"""Random operators: uniform and normal noise, Bernoulli masks, a random subset of k out of n.

Every draw comes from the optimizer's generator, as a counter-based stream (Salmon et al., "Parallel random
numbers: as easy as 1, 2, 3", SC'11): the draw of one call is a pure function of

    (the optimizer's seed, the parameter's stream, the step count t, the call's site)

— the seed is the constructor's `seed=` (saved in the state dict), the stream is the parameter's name (its
place in the optimizer when it has none), and the site names the call in the spec (its offset, and how many
times elaboration met it: a call in a `repeat` draws anew each time). Nothing depends on the order in which
parameters, groups or backends run, so every backend draws the same numbers, and a run resumed from a checkpoint
draws what the uninterrupted run would have. The numbers are made by torch's CPU generator (Philox-free Mersenne
twister, seeded per draw) and moved to the parameter's device: identical on CPU and GPU, at the cost of a host
draw and a copy (fine for masks and projections; noise on every entry of a large GPU model pays a transfer).

A random operator's reference takes `key` (a `RandomKey`) and `site` last; the checker supplies both, so a spec
writes `uniform(W)`, `subset(W, k, axis = -1)`. A state's initial value cannot draw (it has no step): draw in an
`every k:` block, which runs at the first step.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from ..types import KEY, Key, Scalar, ShapeError, Static, Tensor
from . import sampling
from .registry import RANDOM, WHOLE, Domain, Law, StaticArg, op
from ._lazy import lazy_torch

torch = lazy_torch(globals())


@dataclass(frozen=True)
class RandomKey:
    """The key of one parameter's step: a draw at `site` uses a generator seeded by a hash of all four."""

    seed: int
    stream: str
    step: int

    def generator(self, site: str) -> torch.Generator:
        text = f"{self.seed}\x00{self.stream}\x00{self.step}\x00{site}".encode()
        seed = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & (2**63 - 1)
        return torch.Generator().manual_seed(seed)


def _key(args, i: int) -> None:
    if not isinstance(args[i], Key):
        raise ShapeError(f"draws from the step's random key, found `{args[i].show()}`", arg=i, code="GEO0202")


def _tensor(t, i: int = 0) -> Tensor:
    if not isinstance(t, Tensor):
        raise ShapeError(f"needs a tensor to take the shape of, found `{t.show()}`", arg=i, code="GEO0202",
                         help="draw like the parameter: `uniform(W)`")
    return t


def _host_number(t, i: int, what: str) -> None:
    if not (isinstance(t, Scalar) or (isinstance(t, Static) and t.kind in ("int", "float"))):
        raise ShapeError(f"needs a number known on the host for `{what}`, found `{t.show()}`", arg=i, code="GEO0202",
                         help="a hyperparameter, a literal, or arithmetic on them")


def _like_rule(args, attrs, constraints):
    _key(args, 1)
    return _tensor(args[0])


def _bernoulli_rule(args, attrs, constraints):
    _key(args, 2)
    x = _tensor(args[0])
    p = args[1]
    if not (isinstance(p, Scalar) or (isinstance(p, Static) and p.kind in ("int", "float"))
            or (isinstance(p, Tensor) and p.shape == ())):
        raise ShapeError(f"needs a probability for `p`, found `{p.show()}`", arg=1, code="GEO0202")
    return x


def _subset_rule(args, attrs, constraints):
    _key(args, 2)
    x = _tensor(args[0])
    _host_number(args[1], 1, "k")
    axis = attrs.get("axis")
    if axis is None:
        return x
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise ShapeError(f"`axis` must be a static integer, found {axis!r}", code="GEO0206")
    if x.shape is None:
        raise ShapeError("a subset along an axis needs a tensor of known rank", arg=0, code="GEO0204",
                         help="select parameters of one rank (`matrix`, `vector`) for this rule")
    if not -len(x.shape) <= axis < len(x.shape):
        raise ShapeError(f"axis {axis} is out of range for `{x.show()}`", code="GEO0206")
    if x.batched and axis >= 0:
        raise ShapeError("a subset of a batch of matrices counts its axis from the end", code="GEO0206",
                         help="`axis = -1` (columns) or `axis = -2` (rows): one mask for every matrix of the batch")
    dims = [1] * len(x.shape)
    dims[axis] = x.shape[axis]
    return Tensor(tuple(dims), False, x.dtype)


def _draw_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


# ---- laws ----------------------------------------------------------------------------------------------
def _keys():
    st = sampling._st()
    return st.tuples(sampling.tensors(sampling.shapes(1, 3, 7)), st.integers(0, 2**31 - 1),
                     st.text("abc.", min_size=1, max_size=4), st.integers(1, 10))


def _reproducible(extra=()):
    def check(f, sample):
        x, seed, stream, t = sample
        key = RandomKey(seed, stream, t)
        a, b = f(x, *extra, key, "s:1:0"), f(x, *extra, key, "s:1:0")
        assert torch.equal(a, b), "the same key and site drew different numbers"
        assert a.shape == x.shape and a.dtype == x.dtype
        if x.numel() >= 8:
            others = [f(x, *extra, k, s) for k, s in ((key, "s:1:1"), (RandomKey(seed, stream, t + 1), "s:1:0"),
                                                     (RandomKey(seed + 1, stream, t), "s:1:0"))]
            assert all(not torch.equal(a, o) for o in others), "another site, step or seed drew the same numbers"
    return check


def _uniform_range(f, sample):
    x, seed, stream, t = sample
    u = f(x, RandomKey(seed, stream, t), "u")
    assert ((u >= 0) & (u < 1)).all(), "uniform draw outside [0, 1)"
    big = f(torch.zeros(4000, dtype=torch.float64), RandomKey(seed, stream, t), "u")
    assert abs(float(big.mean()) - 0.5) < 0.03 and abs(float(big.var()) - 1 / 12) < 0.01, "not U[0, 1)"


def _normal_moments(f, sample):
    x, seed, stream, t = sample
    z = f(torch.zeros(4000, dtype=torch.float64), RandomKey(seed, stream, t), "n")
    assert abs(float(z.mean())) < 0.1 and abs(float(z.std()) - 1) < 0.1, "not N(0, 1)"


@op(RANDOM, _like_rule, laws=[Law("the same (seed, stream, t, site) draws the same numbers, any other draws others",
                                  _keys, _reproducible()),
                              Law("values in [0, 1), mean 1/2 and variance 1/12", _keys, _uniform_range)], sharding=WHOLE)
def uniform(x, key, site: StaticArg = ""):
    """U[0, 1) noise shaped like x, in x's dtype (drawn in float32, float64 for a float64 x)."""
    g = key.generator(site)
    return torch.rand(x.shape, generator=g, dtype=_draw_dtype(x)).to(device=x.device, dtype=x.dtype)


@op(RANDOM, _like_rule, laws=[Law("the same (seed, stream, t, site) draws the same numbers, any other draws others",
                                  _keys, _reproducible()),
                              Law("mean 0 and standard deviation 1", _keys, _normal_moments)], sharding=WHOLE)
def normal(x, key, site: StaticArg = ""):
    """N(0, 1) noise shaped like x, in x's dtype (a Gaussian random projection: `normal(P)`)."""
    g = key.generator(site)
    return torch.randn(x.shape, generator=g, dtype=_draw_dtype(x)).to(device=x.device, dtype=x.dtype)


def _bernoulli_ends(f, sample):
    x, seed, stream, t = sample
    key = RandomKey(seed, stream, t)
    assert torch.equal(f(x, 0.0, key, "b"), torch.zeros_like(x)) and torch.equal(f(x, 1.0, key, "b"), torch.ones_like(x))
    m = f(x, 0.3, key, "b")
    assert ((m == 0) | (m == 1)).all(), "a Bernoulli mask holds something other than 0 and 1"


@op(RANDOM, _bernoulli_rule, domain={"p": Domain(0.0, 1.0)},
    laws=[Law("the same (seed, stream, t, site) draws the same numbers, any other draws others", _keys,
              _reproducible((0.5,))),
          Law("a 0/1 mask: p = 0 gives zeros, p = 1 ones", _keys, _bernoulli_ends)], sharding=WHOLE)
def bernoulli(x, p, key, site: StaticArg = ""):
    """A 0/1 mask shaped like x, each entry 1 with probability p (u < p for u ~ U[0, 1)), in x's dtype."""
    g = key.generator(site)
    u = torch.rand(x.shape, generator=g, dtype=torch.float64)
    prob = p.detach().to("cpu", torch.float64) if isinstance(p, torch.Tensor) else float(p)
    return (u < prob).to(device=x.device, dtype=x.dtype)


def _subset_law(f, sample):
    x, seed, stream, t = sample
    key = RandomKey(seed, stream, t)
    n = x.numel()
    for k in (0, 1, n // 2, n, n + 3, 2.4):
        m = f(x, k, key, "k", axis=None)
        assert m.shape == x.shape and int(m.sum()) == min(max(round(k), 0), n), f"k = {k}: {int(m.sum())} ones"
    last = f(x, 1, key, "k", axis=-1)
    assert last.shape[-1] == x.shape[-1] and all(d == 1 for d in last.shape[:-1]) and int(last.sum()) == 1


@op(RANDOM, _subset_rule, laws=[Law("exactly round(k) ones (clamped to [0, n]), shaped like x or along `axis`", _keys,
                                    _subset_law)], sharding=WHOLE)
def subset(x, k, key, site: StaticArg = "", axis: StaticArg = None):
    """A random subset of k out of n as a 0/1 mask, every k-subset equally likely (the first k of a random
    permutation). axis None: k of x's numel entries, shaped like x; an integer axis: k of the n indices along it,
    shaped (1, …, n, …, 1) to broadcast against x — `subset(W, r, axis = -1)` picks r columns. k is a host number,
    rounded and clamped to [0, n]. Drop-Muon's random layers: `subset(layers, k)` in an `across` block."""
    axis_ = None if axis is None else axis % x.dim()
    n = x.numel() if axis_ is None else x.shape[axis_]
    count = min(max(int(round(float(k))), 0), n) if math.isfinite(float(k)) else 0
    g = key.generator(site)
    chosen = torch.randperm(n, generator=g)[:count]
    mask = torch.zeros(n, dtype=torch.float64)
    mask[chosen] = 1.0
    shape = x.shape if axis_ is None else tuple(n if i == axis_ else 1 for i in range(x.dim()))
    return mask.reshape(shape).to(device=x.device, dtype=x.dtype)


__all__ = ["RandomKey", "KEY", "uniform", "normal", "bernoulli", "subset"]
