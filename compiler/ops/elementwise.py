"""Elementwise operators: arithmetic, comparisons, logic, interpolation and the scalar functions.

All broadcast numpy-style; a Python float argument stays a "wrapped number" in torch and never changes the
tensor's dtype (a bf16 state times a float stays bf16, as in torch.optim). Arithmetic on static values is
folded by the checker with the `fold` facet.
"""
from __future__ import annotations

import math
import operator

from . import _foreach, _inductor, _triton, sampling
from ..types import Scalar, ShapeError, Static
from ..types import Tensor as TensorT
from .registry import ELEMENTWISE, Domain, Law, Rewrite, elementwise_rule, host_scalar, op
from ._lazy import lazy_torch

torch = lazy_torch(globals())


def _tensor_like(x, like):
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=like.dtype, device=like.device)


def _close(a, b, tol=1e-9):
    assert torch.allclose(a, b, rtol=tol, atol=tol), f"max |difference| = {(a - b).abs().max().item():.3g}"


# ---- rewrites shared by the arithmetic ops (identities on constants) -----------------------------------
def _is(n, value) -> bool:
    return n.op == "const" and not isinstance(n.value, (bool, str, tuple)) and n.value == value


def _drop_identity(unit, side="right"):
    def fn(node, graph):
        a, b = node.args
        if _is(b, unit) and node.type == a.type:
            return a
        if side == "both" and _is(a, unit) and node.type == b.type:
            return b
        return None
    return fn


def _commutes(name: str) -> Law:
    return Law(f"{name} is commutative",
               lambda: sampling.tensors(sampling.shapes(1, 1)).flatmap(
                   lambda x: sampling.tensors(sampling._st().just(tuple(x.shape))).map(lambda y: (x, y))),
               lambda f, xy: _close(f(xy[0], xy[1]), f(xy[1], xy[0])))


def _tensor_first(node, graph):
    """s ∘ x → x ∘ s for a commutative ∘, a host scalar s and a tensor x: the same IEEE result, and the tensor
    first is the buffer a multi-tensor backend can overwrite in place (`μ·buf + g` updates buf's memory)."""
    a, b = node.args
    if not isinstance(a.type, TensorT) and isinstance(b.type, TensorT):
        return graph.node(node.op, (b, a), dict(node.attrs), type=node.type, span=node.span)
    return None


# ---- contraction: a multiply folded into the following add, as torch's fused kernels compute ---------------
def _scaled(n):
    """(s, y) if n = s·y with s a host scalar and y a tensor, else None."""
    if n.op != "mul":
        return None
    a, b = n.args
    if isinstance(a.type, Scalar) and isinstance(b.type, TensorT):
        return a, b
    if isinstance(b.type, Scalar) and isinstance(a.type, TensorT):
        return b, a
    return None


def _contract(negate: bool):
    def fn(node, graph):
        x, rhs = node.args
        if not isinstance(x.type, TensorT) or node.type != x.type:
            return None
        if rhs.op == "div":
            return _contract_quotient(node, graph, x, rhs, negate)
        if rhs.op != "mul":
            return None
        if not negate:
            for first, second in (rhs.args, rhs.args[::-1]):
                inner = _scaled(first)
                if inner is not None and isinstance(second.type, TensorT):
                    s, a = inner
                    return graph.node("addcmul", (x, a, second, s), type=node.type, span=node.span)
        scaled = _scaled(rhs)
        if scaled is None:
            return None
        s, y = scaled
        if negate:
            s = graph.node("neg", (s,), type=s.type, span=s.span)
        return graph.node("axpy", (x, y, s), type=node.type, span=node.span)
    return fn


def _contract_quotient(node, graph, x, rhs, negate: bool):
    """x ± (s·a)/b → addcdiv(x, a, b, ±s): torch's addcdiv computes x + (s·a)/b in that order (negation is exact),
    so this is the same arithmetic in one kernel, writing x in place (Adam's update). Only for operands of one
    dtype: mixed ones would skip the rounding of s·a to the narrower dtype."""
    numerator, b = rhs.args
    scaled = _scaled(numerator)
    if scaled is None or not isinstance(b.type, TensorT):
        return None
    s, a = scaled
    if not (x.type.dtype == a.type.dtype == b.type.dtype == numerator.type.dtype):
        return None
    if negate:
        s = graph.node("neg", (s,), type=s.type, span=s.span)
    return graph.node("addcdiv", (x, a, b, s), type=node.type, span=node.span)


def _fused_rule(args, attrs, constraints):
    """axpy(x, y, s), addcmul(x, a, b, s) and addcdiv(x, a, b, s): tensors, then a host scalar `s` (what torch's
    alpha/value take)."""
    *tensors, s = args
    for i, t in enumerate(tensors):
        if not isinstance(t, TensorT):
            raise ShapeError(f"needs a tensor, found `{t.show()}`", arg=i, code="GEO0202")
    if not (isinstance(s, Scalar) or (isinstance(s, Static) and s.kind in ("int", "float"))):
        raise ShapeError(f"needs a scalar for `s`, found `{s.show()}`", arg=len(tensors), code="GEO0202",
                         help="write the product out (`x + s * y`): the compiler fuses it where it can")
    return elementwise_rule(args, attrs, constraints)


@op(ELEMENTWISE, _fused_rule, foreach=_foreach.axpy, triton=_triton.template("G.axpy({0}, {1}, {2})"),
    inductor=_inductor.axpy)
def axpy(x, y, s):
    """x + s·y with a single rounding of the sum (torch.add(x, y, alpha=s), as torch.optim's `add_(…, alpha=)`),
    and exactly x where s = 0: torch.optim skips a zero weight decay (`grad + weight_decay * W`), while
    x + 0·y would turn −0 into +0 and an infinite y into NaN.

    Produced by the `contract` pass from `x + s*y` and `x - s*y` (s a host scalar)."""
    if float(s) == 0.0:
        return x
    return torch.add(x, y, alpha=host_scalar(float(s), x))


@op(ELEMENTWISE, _fused_rule, foreach=_foreach.addcmul, triton=_triton.template("({0} + {3} * {1} * {2})"),
    inductor=_inductor.addcmul)
def addcmul(x, a, b, s):
    """x + s·a·b with a single rounding of the sum (torch.addcmul, as Adam's second moment update).

    Produced by the `contract` pass from `x + s*a*b` (s a host scalar)."""
    return torch.addcmul(x, a, b, value=host_scalar(float(s), x))


@op(ELEMENTWISE, _fused_rule, foreach=_foreach.addcdiv, triton=_triton.template("({0} + G.div({3} * {1}, {2}))"),
    inductor=_inductor.addcdiv)
def addcdiv(x, a, b, s):
    """x + (s·a)/b in one kernel (torch.addcdiv, as Adam's parameter update: x − (lr/bc₁)·m/denom).

    Produced by the `contract` pass from `x + (s*a)/b` and `x - (s*a)/b` (s a host scalar, operands of one
    dtype): torch's kernel rounds s·a, then the quotient, then the sum, exactly as the unfused expression."""
    return torch.addcdiv(x, a, b, value=host_scalar(float(s), x))


# ---- arithmetic ----------------------------------------------------------------------------------------
@op(ELEMENTWISE, elementwise_rule, fold=operator.add, laws=[_commutes("add")], foreach=_foreach.binary("add", True),
    triton=_triton.template("({0} + {1})"),
    rewrites=[Rewrite("x + 0 -> x", _drop_identity(0, "both")), Rewrite("s + x -> x + s", _tensor_first),
              Rewrite("x + s·y -> axpy(x, y, s); x + s·a·b -> addcmul(x, a, b, s); x + (s·a)/b -> addcdiv(x, a, b, s)",
                      _contract(False), "contract")])
def add(a, b):
    """a + b."""
    return a + b


@op(ELEMENTWISE, elementwise_rule, fold=operator.sub, foreach=_foreach.binary("sub", False), triton=_triton.template("({0} - {1})"),
    rewrites=[Rewrite("x - 0 -> x", _drop_identity(0)),
              Rewrite("x - s·y -> axpy(x, y, -s); x - (s·a)/b -> addcdiv(x, a, b, -s)", _contract(True), "contract")])
def sub(a, b):
    """a − b."""
    return a - b


@op(ELEMENTWISE, elementwise_rule, fold=operator.mul, laws=[_commutes("mul")], foreach=_foreach.binary("mul", True),
    triton=_triton.template("({0} * {1})"),
    rewrites=[Rewrite("x * 1 -> x", _drop_identity(1, "both")), Rewrite("s * x -> x * s", _tensor_first)])
def mul(a, b):
    """a · b (elementwise; `@` is the matrix product)."""
    return a * b


def _fold_div(a, b):
    return a / b


@op(ELEMENTWISE, elementwise_rule, fold=_fold_div, foreach=_foreach.binary("div", False), triton=_triton.template("G.div({0}, {1})"), rewrites=[Rewrite("x / 1 -> x", _drop_identity(1))],
    domain={"b": Domain(low=1e-3)})
def div(a, b):
    """a / b (true division; b = 0 follows IEEE: ±inf or nan)."""
    return a / b


def _fold_pow(a, b):
    return a ** b


@op(ELEMENTWISE, elementwise_rule, fold=_fold_pow, triton=_triton.template("G.pow({0}, {1})"), rewrites=[Rewrite("x ^ 1 -> x", _drop_identity(1))],
    domain={"a": Domain(low=1e-3), "b": Domain(-4.0, 4.0)})
def pow(a, b):  # noqa: A001 - the operator's name
    """a ^ b (also written a ** b). With a runtime scalar base, e.g. `beta1 ^ t`, computed in double
    precision as torch.optim computes its bias corrections."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.pow(a, b)
    return a ** b


def _fold_mod(a, b):
    return a % b


def _mod_law(f, ab):
    a, b = ab
    r = f(a, b)
    assert ((r >= 0) & (r <= b)).all(), "mod(a, b) is outside [0, b] for b > 0"  # −1e-20 mod 1 rounds to 1
    _close(a, b * torch.floor(a / b) + r, 1e-9)


def _mod_sample():
    st = sampling._st()
    return sampling.tensors(sampling.shapes(1, 2), -50.0, 50.0).flatmap(
        lambda a: st.floats(0.5, 10.0).map(lambda b: (a, torch.full_like(a, b))))


@op(ELEMENTWISE, elementwise_rule, fold=_fold_mod, triton=_triton.template("G.mod({0}, {1})"),
    laws=[Law("a = b·floor(a/b) + mod(a, b) with 0 ≤ mod(a, b) ≤ b (b > 0; = b only by rounding)", _mod_sample, _mod_law)],
    domain={"b": Domain(low=1e-3)})
def mod(a, b):
    """a mod b, the remainder with the divisor's sign (Python's `%`, torch.remainder): a − b·floor(a/b).
    On the step count it schedules work: `mod(t - 1, k) == 0` holds at steps 1, k + 1, 2k + 1, … (`every k:` is
    that condition). b = 0 gives NaN."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.remainder(a, b)
    try:
        return a % b
    except ZeroDivisionError:
        return math.nan


def _neg_neg(node, graph):
    (a,) = node.args
    return a.args[0] if a.op == "neg" else None


@op(ELEMENTWISE, elementwise_rule, fold=operator.neg, foreach=_foreach.unary("neg"), triton=_triton.template("(-{0})"), rewrites=[Rewrite("-(-x) -> x", _neg_neg)])
def neg(a):
    """−a."""
    return -a


# ---- comparisons and logic (static conditions fold; runtime ones give 0/1 masks) -----------------------
def _compare(name: str, fn, doc: str, symbol: str):
    def reference(a, b):
        like = next((x for x in (a, b) if isinstance(x, torch.Tensor) and x.is_floating_point()), None)
        return fn(a, b).to(like.dtype if like is not None else torch.float32)
    reference.__doc__ = doc
    reference.__name__ = name
    return op(ELEMENTWISE, elementwise_rule, name=name, fold=fn,
              triton=_triton.template("G.mask({0} " + symbol + " {1}, {0})"))(reference)


eq = _compare("eq", operator.eq, "a == b: 1 where equal, else 0 (a static comparison, e.g. of strings, folds).", "==")
ne = _compare("ne", operator.ne, "a != b: 1 where different, else 0.", "!=")
lt = _compare("lt", operator.lt, "a < b as a 0/1 mask.", "<")
le = _compare("le", operator.le, "a <= b as a 0/1 mask.", "<=")
gt = _compare("gt", operator.gt, "a > b as a 0/1 mask.", ">")
ge = _compare("ge", operator.ge, "a >= b as a 0/1 mask.", ">=")


@op(ELEMENTWISE, elementwise_rule, name="and", fold=lambda a, b: bool(a) and bool(b),
    triton=_triton.template("({0} * {1})"))
def and_(a, b):
    """a and b (static booleans, or 0/1 masks multiplied)."""
    return a * b


@op(ELEMENTWISE, elementwise_rule, name="or", fold=lambda a, b: bool(a) or bool(b),
    triton=_triton.template("G.maximum({0}, {1})"))
def or_(a, b):
    """a or b (static booleans, or 0/1 masks: max)."""
    like = a if isinstance(a, torch.Tensor) else b
    return torch.maximum(_tensor_like(a, like), _tensor_like(b, like))


@op(ELEMENTWISE, elementwise_rule, name="not", fold=operator.not_, triton=_triton.template("(1.0 - {0})"))
def not_(a):
    """not a (static booleans, or 1 − mask)."""
    return 1 - a


@op(ELEMENTWISE, elementwise_rule, foreach=_foreach.where, triton=_triton.template("tl.where({0} != 0, {1}, {2})"))
def where(cond, a, b):
    """where(cond, a, b): a where cond ≠ 0, else b, elementwise."""
    like = next((x for x in (a, b, cond) if isinstance(x, torch.Tensor)), None)
    return torch.where(_tensor_like(cond, like) != 0, _tensor_like(a, like), _tensor_like(b, like))


# ---- interpolation -------------------------------------------------------------------------------------
def _lerp_ends(f, xyw):
    x, y, _ = xyw
    _close(f(x, y, 0.0), x)
    _close(f(x, y, 1.0), y)


def _lerp_sample():
    st = sampling._st()
    return sampling.tensors(sampling.shapes(1, 2)).flatmap(
        lambda x: sampling.tensors(st.just(tuple(x.shape))).map(lambda y: (x, y, 0.5)))


@op(ELEMENTWISE, elementwise_rule, laws=[Law("lerp(x, y, 0) = x and lerp(x, y, 1) = y", _lerp_sample, _lerp_ends)],
    foreach=_foreach.lerp, triton=_triton.template("G.lerp({0}, {1}, {2})"), inductor=_inductor.lerp,
    domain={"w": Domain(0.0, 1.0)})
def lerp(a, b, w):
    """lerp(a, b, w) = a + w·(b − a). The EMA of momentum methods: m ← lerp(m, g, 1 − β) = β·m + (1 − β)·g."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape:
        return torch.lerp(a, b, host_scalar(w, a))
    return a + w * (b - a)


@op(ELEMENTWISE, elementwise_rule, domain={"lo": Domain(high=0.0), "hi": Domain(low=0.0)},
    triton=_triton.template("G.clamp({0}, {1}, {2})"))
def clamp(x, lo, hi):
    """clamp(x, lo, hi) = min(max(x, lo), hi)."""
    if isinstance(x, torch.Tensor) and not isinstance(lo, torch.Tensor) and not isinstance(hi, torch.Tensor):
        return torch.clamp(x, host_scalar(lo, x), host_scalar(hi, x))
    like = next((v for v in (x, lo, hi) if isinstance(v, torch.Tensor)), None)
    if like is None:
        return min(max(x, lo), hi)
    return torch.minimum(torch.maximum(_tensor_like(x, like), _tensor_like(lo, like)), _tensor_like(hi, like))


@op(ELEMENTWISE, elementwise_rule, name="max", fold=max, triton=_triton.template("G.maximum({0}, {1})"))
def maximum(a, b):
    """max(a, b), elementwise (the reductions are `amax`, `sum`, `mean`, `rms`)."""
    like = a if isinstance(a, torch.Tensor) else b
    return torch.maximum(_tensor_like(a, like), _tensor_like(b, like))


@op(ELEMENTWISE, elementwise_rule, name="min", fold=min, triton=_triton.template("G.minimum({0}, {1})"))
def minimum(a, b):
    """min(a, b), elementwise."""
    like = a if isinstance(a, torch.Tensor) else b
    return torch.minimum(_tensor_like(a, like), _tensor_like(b, like))


# ---- unary functions -----------------------------------------------------------------------------------
def _unary(name: str, fn: str, fold, doc: str, laws=(), domain: Domain | None = None, foreach: bool = True,
           triton: str | None = None):
    """An elementwise operator whose reference is the torch function `fn` (a name: torch loads on first use)."""
    def reference(x):
        return getattr(torch, fn)(x)
    reference.__doc__ = doc
    reference.__name__ = name
    return op(ELEMENTWISE, elementwise_rule, name=name, fold=fold, laws=laws,
              domain={"x": domain} if domain is not None else None,
              foreach=_foreach.unary(name) if foreach else None,
              triton=_triton.template(triton or f"G.{name}({{0}})"))(reference)


def _inverse_law(name, f_name, g, low, high):
    return Law(f"{name}: {f_name} inverts it",
               lambda: sampling.tensors(low=low, high=high),
               lambda f, x: _close(g(f(x)), x, 1e-7))


def _floor_law(y, x):
    assert ((y <= x) & (x < y + 1)).all() and torch.equal(y, y.round()), "floor(x) is not the integer below x"


def _expm1_series(f, x):
    want = x * (1 + x / 2 * (1 + x / 3 * (1 + x / 4 * (1 + x / 5))))  # the next term, x⁶/720, is < 1e-26·|x| here
    err = (f(x) - want).abs()
    assert (err <= 4 * torch.finfo(x.dtype).eps * want.abs()).all(), f"max relative error {(err / want.abs()).max()}"


def _fold_sign(x):
    return float((x > 0) - (x < 0))


sqrt = _unary("sqrt", "sqrt", math.sqrt, "√x (nan for x < 0).",
              [_inverse_law("sqrt", "squaring", lambda y: y * y, 0.0, 1e3)], Domain(low=0.0))
rsqrt = _unary("rsqrt", "rsqrt", lambda x: 1 / math.sqrt(x), "1/√x.", domain=Domain(low=1e-6))
exp = _unary("exp", "exp", math.exp, "eˣ.", [_inverse_law("exp", "log", lambda y: torch.log(y), -20.0, 20.0)],
             Domain(high=80.0))  # fp32 overflows past 88.7
log = _unary("log", "log", math.log, "natural logarithm.", domain=Domain(low=1e-6))
expm1 = _unary("expm1", "expm1", math.expm1,
               "eˣ − 1, exact to the last digits near 0 where exp(x) − 1 cancels (C99 expm1). The hypentropy "
               "mirror step builds e^{±x} and sinh x from one expm1 (compiler/ops/mirror.py).",
               [_inverse_law("expm1", "log1p", lambda y: torch.log1p(y), -20.0, 20.0),
                Law("expm1(x) = x + x²/2 + x³/6 + x⁴/24 + x⁵/120 + O(x⁶) near 0, to a few ulp (exp(x) − 1: 10⁴ ulp off)",
                    lambda: sampling.tensors(low=-1e-4, high=1e-4), _expm1_series)],
               Domain(high=80.0))
abs_ = _unary("abs", "abs", abs, "|x|.", triton="tl.abs({0})")
sign = _unary("sign", "sign", _fold_sign, "sign(x) ∈ {−1, 0, 1}; sign(0) = 0 (Lion, signSGD: the ℓ∞ LMO).",
              [Law("sign(x)·|x| = x", lambda: sampling.tensors(), lambda f, x: _close(f(x) * x.abs(), x))])
sinh = _unary("sinh", "sinh", math.sinh, "sinh x = (eˣ − e⁻ˣ)/2.", domain=Domain(-80.0, 80.0))
cosh = _unary("cosh", "cosh", math.cosh, "cosh x = (eˣ + e⁻ˣ)/2.", domain=Domain(-80.0, 80.0))
asinh = _unary("asinh", "asinh", math.asinh, "arcsinh x = log(x + √(x² + 1)) (the hypentropy mirror map at β = 1).",
               [_inverse_law("asinh", "sinh", lambda y: torch.sinh(y), -1e3, 1e3)], foreach=False)
tanh = _unary("tanh", "tanh", math.tanh, "tanh x.")
square = _unary("square", "square", lambda x: x * x, "x².", foreach=False, triton="({0} * {0})")
floor = _unary("floor", "floor", math.floor,
               "⌊x⌋, the largest integer ≤ x (a static value folds to an int: `floor(density * cols(W))` is a rank).",
               [Law("floor(x) ≤ x < floor(x) + 1, an integer", lambda: sampling.tensors(),
                    lambda f, x: _floor_law(f(x), x))], triton="tl.floor({0})")
