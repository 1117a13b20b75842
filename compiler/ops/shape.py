"""Shape facts and state initializers.

`rows(W)`, `cols(W)`, `numel(W)` and `ndim(W)` are runtime scalars known on the host (no device sync); they
refer to the rule's view of the parameter (the last two dims of a matrix view). The initializers build the
initial value of a `state` slot from the parameter.
"""
from __future__ import annotations

import math

from ..types import DTYPES, SCALAR, ShapeError, Tensor, TupleT, torch_dtype
from . import sampling
from .registry import INIT, LOCAL, SHAPE, SHAPE_OF, WHOLE, Domain, Law, StaticArg, host_scalar, op
from ._lazy import lazy_torch

torch = lazy_torch(globals())


def _shape_rule(needs_matrix: bool):
    def rule(args, attrs, constraints):
        x = args[0]
        if not isinstance(x, Tensor):
            raise ShapeError(f"needs a tensor, found `{x.show()}`", arg=0, code="GEO0202")
        if needs_matrix and not x.is_matrix:
            raise ShapeError(f"needs a matrix, found `{x.show()}`", arg=0, code="GEO0203",
                             help="restrict this rule to matrix parameters (`for matrix W`)")
        return SCALAR
    return rule


def _known(fn):
    """A shape fact is static when the type already says it: a rule specialized to a rank knows ndim."""
    def static_value(types):
        x = types[0]
        if not isinstance(x, Tensor) or x.shape is None or x.batched:
            return None
        return fn(x.shape)
    return static_value


def _int_dim(i):
    return lambda shape: shape[i] if isinstance(shape[i], int) else None


def _product(shape):
    return math.prod(shape) if all(isinstance(d, int) for d in shape) else None


@op(SHAPE, _shape_rule(True), static_value=_known(_int_dim(-2)), sharding=SHAPE_OF)
def rows(x):
    """The number of rows m of a matrix (d_out of an nn.Linear weight)."""
    return x.shape[-2]


@op(SHAPE, _shape_rule(True), static_value=_known(_int_dim(-1)), sharding=SHAPE_OF)
def cols(x):
    """The number of columns n of a matrix (d_in of an nn.Linear weight)."""
    return x.shape[-1]


@op(SHAPE, _shape_rule(False), static_value=_known(_product), sharding=SHAPE_OF)
def numel(x):
    """The number of elements N."""
    return x.numel()


@op(SHAPE, _shape_rule(False), static_value=_known(len), sharding=SHAPE_OF)
def ndim(x):
    """The rank of the tensor (after the rule's view)."""
    return x.dim()


def _init_rule(args, attrs, constraints):
    x = args[0]
    if not isinstance(x, Tensor):
        raise ShapeError(f"needs a tensor to take the shape of, found `{x.show()}`", arg=0, code="GEO0202")
    return x


@op(INIT, _init_rule, sharding=LOCAL)
def zeros_like(x):
    """A tensor of zeros shaped like x."""
    return torch.zeros_like(x, memory_format=torch.preserve_format)


@op(INIT, _init_rule, sharding=LOCAL)
def ones_like(x):
    """A tensor of ones shaped like x."""
    return torch.ones_like(x, memory_format=torch.preserve_format)


@op(INIT, _init_rule, sharding=LOCAL)
def full_like(x, value):
    """A tensor shaped like x filled with `value`."""
    return torch.full_like(x, host_scalar(float(value), x), memory_format=torch.preserve_format)



def _scalar_init_rule(args, attrs, constraints):
    x = _init_rule(args[:1], attrs, constraints)
    return Tensor((), False, x.dtype)


@op(INIT, _scalar_init_rule, sharding=LOCAL)
def scalar_like(x, value):
    """A 0-d tensor holding `value`, on x's device and in x's dtype: the initial value of a numeric state
    (`state lam = 0.0`), which stays on the device like torch.optim's `step`."""
    return torch.full((), host_scalar(float(value), x), dtype=x.dtype, device=x.device)


def _item_rule(args, attrs, constraints):
    x, i = args[0], attrs.get("index")
    if not (isinstance(x, TupleT) and all(isinstance(t, Tensor) for t in x.items)):
        raise ShapeError(f"takes the result of a factorization (a tuple of tensors), found `{x.show()}`", arg=0,
                         code="GEO0202", help="index the factorization itself: `eigh(A)[1]`")
    if not isinstance(i, int) or isinstance(i, bool) or not -len(x.items) <= i < len(x.items):
        raise ShapeError(f"index {i!r} is out of range for a tuple of {len(x.items)}", code="GEO0206")
    return x.items[i]


@op(SHAPE, _item_rule, sharding=WHOLE)
def item(x, index: StaticArg = 0):
    """The `index`-th tensor of a factorization's result: `eigh(A)[1]` is written for `item(eigh(A), index = 1)`,
    so that one decomposition serves every factor read from it."""
    return x[index]


def _cast_rule(args, attrs, constraints):
    x = args[0]
    if not isinstance(x, Tensor):
        raise ShapeError(f"needs a tensor, found `{x.show()}`", arg=0, code="GEO0202")
    if attrs.get("dtype") not in DTYPES:
        raise ShapeError(f"unknown dtype {attrs.get('dtype')!r}", code="GEO0206",
                         help="one of " + ", ".join(f'"{k}"' for k in DTYPES))
    return Tensor(x.shape, x.batched, attrs["dtype"])


def _cast_round_trip(f, x):
    y = f(f(x.float(), dtype="fp64"), dtype="fp32")
    assert y.dtype == torch.float32 and torch.equal(y, x.float()), "fp32 → fp64 → fp32 is not the identity"


@op(SHAPE, _cast_rule, domain={"dtype": Domain(choices=tuple(DTYPES))},
    laws=[Law("cast to fp64 and back to fp32 is the identity on fp32 values", lambda: sampling.tensors(),
              _cast_round_trip)], sharding=LOCAL)
def cast(x, dtype: StaticArg = "fp32"):
    """x converted to a storage dtype ("bf16", "fp16", "fp32", "fp64"): statistics of a bf16 model computed in fp32
    (`cast(grad, "fp32") @ ...`), rounded once, where the value is made."""
    return x.to(torch_dtype(dtype))
