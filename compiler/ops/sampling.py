"""Hypothesis strategies for operator laws (imported lazily: hypothesis is a test-time dependency)."""
from __future__ import annotations

from ._lazy import lazy_torch

torch = lazy_torch(globals())


def _st():
    from hypothesis import strategies as st
    return st


def shapes(min_rank: int = 1, max_rank: int = 2, max_side: int = 6):
    """Awkward shapes: 1×n, n×1, odd sizes, tall and wide."""
    st = _st()
    return st.lists(st.integers(1, max_side), min_size=min_rank, max_size=max_rank).map(tuple)


def matrix_shapes(max_side: int = 8):
    st = _st()
    return st.tuples(st.integers(1, max_side), st.integers(1, max_side))


def tensors(shape_strategy=None, low: float = -10.0, high: float = 10.0, dtype=None):
    """Tensors with elements drawn by hypothesis (shrinkable), float64 by default."""
    dtype = torch.float64 if dtype is None else dtype  # float64 by default
    st = _st()
    shape_strategy = shape_strategy if shape_strategy is not None else shapes()

    def build(shape):
        n = 1
        for d in shape:
            n *= d
        elems = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
        return st.lists(elems, min_size=n, max_size=n).map(lambda xs: torch.tensor(xs, dtype=dtype).reshape(shape))

    return shape_strategy.flatmap(build)


def gaussian_matrices(max_side: int = 8, dtype=None):
    """Seeded Gaussian matrices: fast to draw at any size, shrink by shape and seed."""
    dtype = torch.float64 if dtype is None else dtype  # float64 by default
    st = _st()

    def build(args):
        (m, n), seed, scale = args
        g = torch.Generator().manual_seed(seed)
        return torch.randn(m, n, generator=g, dtype=dtype) * scale

    return st.tuples(matrix_shapes(max_side), st.integers(0, 2**31 - 1),
                     st.sampled_from([1e-3, 1.0, 1e3])).map(build)


def scalars(low: float = -10.0, high: float = 10.0):
    return _st().floats(low, high, allow_nan=False, allow_infinity=False)


def positive(low: float = 1e-3, high: float = 1e3):
    return _st().floats(low, high, allow_nan=False, allow_infinity=False)


def gaussian_tensors(shape_strategy=None, scales=(1e-3, 1.0, 1e3), dtype=None):
    """Seeded Gaussian tensors of any shape (default: rank 1–3), times a scale drawn from `scales`."""
    dtype = torch.float64 if dtype is None else dtype  # float64 by default
    st = _st()
    shape_strategy = shape_strategy if shape_strategy is not None else shapes(1, 3)

    def build(args):
        shape, seed, scale = args
        g = torch.Generator().manual_seed(seed)
        return torch.randn(*shape, generator=g, dtype=dtype) * scale

    return st.tuples(shape_strategy, st.integers(0, 2**31 - 1), st.sampled_from(list(scales))).map(build)
