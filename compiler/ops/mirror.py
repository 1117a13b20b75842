"""Mirror maps: mirror descent in the geometry of a strictly convex potential φ.

A mirror step maps the point to the dual space, steps there, and maps back (Nemirovski & Yudin 1983; Beck &
Teboulle, "Mirror descent and nonlinear projected subgradient methods", 2003):

    x⁺ = (∇φ)⁻¹(∇φ(x) − lr·d),          D_φ(x, z) = φ(x) − φ(z) − ⟨∇φ(z), x − z⟩ ≥ 0

    kind          φ(x)                              ∇φ(x)                          (∇φ)⁻¹(y)
    "euclidean"   ½‖x‖₂²                            x                              y            (gradient descent)
    "entropy"     Σ xᵢ log xᵢ − xᵢ   (x > 0)        log x                          eʸ           (exponentiated grad.)
    "hypentropy"  Σ xᵢ asinh(xᵢ/β) − √(xᵢ² + β²)    asinh(x/β)                     β·sinh(y)
    "pnorm"       ½‖x‖_p²            (p > 1)        sign(x)|x|^{p−1}/‖x‖_p^{p−2}   the same with q = p/(p − 1)

Hypentropy (Ghai, Hazan & Singer, "Exponentiated gradient meets gradient descent", ALT 2020; algorithms.md
§2.3) interpolates between gradient descent (|x| ≪ β: metric ≈ flat, x⁺ ≈ x − lr·β·d) and exponentiated
gradient (|x| ≫ β: x⁺ ≈ x·exp(−lr·d·sign x), HAM's multiplicative step, Jacobs, Jain & Burkholz,
arXiv 2506.02630); its step has the closed form x·cosh(lr·d) − √(x² + β²)·sinh(lr·d), computed in the stable
form of `mirror_step`'s docstring. The p-norm potential
(Gentile, "The robustness of the p-norm algorithms", 2003) with p = 1 + 1/ln N gives ℓ1-like geometry.

`kind` (and the p-norm's `p`) are static; hypentropy's `beta` is a runtime value (a hyperparameter or a
constant): β > 0 is checked when it reaches the reference as a number (constants at the first step: a type
rule sees types, not values). "entropy" is defined for x > 0 only. "pnorm" normalizes by ‖x‖_p of the whole
tensor, so these operators are registered as reductions (the other kinds are elementwise). bf16 and fp16
inputs are computed in float32 and returned in their own dtype by the references. `mirror_step` of the
elementwise kinds is rewritten into elementwise operators (see its docstring), which compute as every fused
region does: Inductor and Triton in float32 registers, the torch path and the reference backend op by op in
the tensor's dtype (bf16: up to ~5·2⁻⁸·√(x⁺² + β²) measured, against 2⁻⁹ through float32).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ...dsl.diagnostics import did_you_mean
from ..types import Scalar, ShapeError, Static, Tensor, broadcast
from . import registry, sampling
from ._calling import values_first
from .registry import LOCAL, REDUCTION, WHOLE, Law, Sharding, Rewrite, StaticArg, op, reduction
from ._lazy import lazy_torch

torch = lazy_torch(globals())

KINDS = ("euclidean", "entropy", "hypentropy", "pnorm")


# ---- the potentials ------------------------------------------------------------------------------------
def _beta(beta: Any) -> Any:
    if beta is None:
        raise ValueError("the hypentropy mirror map needs beta > 0")
    if isinstance(beta, (int, float)) and not beta > 0:
        raise ValueError(f"the hypentropy mirror map needs beta > 0, found {beta!r}")
    return beta


def _work(x: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 compute in float32 (an 8-bit mantissa's rounding per operation adds up); results return in the
    input's dtype."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def _hypot(x: torch.Tensor, beta: Any) -> torch.Tensor:
    """√(x² + β²) without overflow."""
    return torch.hypot(x, torch.as_tensor(beta, dtype=x.dtype, device=x.device))


def _pnorm_grad(x: torch.Tensor, p: float) -> torch.Tensor:
    """∇(½‖x‖_p²) = sign(x)|x|^{p−1}/‖x‖_p^{p−2}, computed on u = x/max|x| (= a·sign(u)|u|^{p−1}/‖u‖_p^{p−2}),
    so no power overflows; ∇φ(0) = 0."""
    a = x.abs().amax()
    a = torch.where(a > 0, a, torch.ones_like(a))
    u = x / a
    norm = u.abs().pow(p).sum().pow(1.0 / p)
    scale = torch.where(norm > 0, norm, torch.ones_like(norm)).pow(p - 2)
    return a * torch.sign(u) * u.abs().pow(p - 1) / scale


def _pnorm_sq(x: torch.Tensor, p: float) -> torch.Tensor:
    a = x.abs().amax()
    a = torch.where(a > 0, a, torch.ones_like(a))
    return 0.5 * (a * (x / a).abs().pow(p).sum().pow(1.0 / p)) ** 2


def _conjugate(p: float) -> float:
    return p / (p - 1)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum()


def _hypentropy_terms(f, x, s, beta):
    """x⁺ = β·sinh(asinh(x/β) − s) in the stable form of `mirror_step`'s docstring, as the two terms of x⁺ = lhs −
    rhs. `f` names the operations: torch's for the reference (`_TorchOps`), registry operators for the rewrite
    (`_expand_step`), so the two compute the same arithmetic in the same order, written once."""
    t = f.mul(s, 0.5)
    em = f.expm1(f.abs(t))
    up = f.add(em, 1)                                               # e^{|s|/2}
    down = f.div(1, up)                                             # e^{−|s|/2}
    below = f.lt(t, 0)
    # σ = −1 where x < 0, or where x = 0 and s < 0 (then e^{−σs} ≤ 1: 0·e^{|s|} never meets an infinite factor)
    negative = f.lt(f.where(f.eq(x, 0), s, x), 0)
    e = f.where(f.ne(negative, below), up, down)                    # e^{−σs/2}
    half = f.mul(f.mul(em, f.add(down, 1)), 0.5)                    # sinh(|s|/2), no cancellation near 0
    sh = f.where(below, f.neg(half), half)
    ax = f.abs(x)
    m = f.max(ax, beta)
    a, b = f.div(ax, m), f.div(beta, m)                             # ≤ 1, one of them 1: no overflow below
    # (√(x² + β²) − |x|)·2cosh(s/2) = ((up + down)·b)·β/(a + √(a² + b²)), multiplied in this order: β·b alone
    # underflows (β²/|x|) where the product with cosh is still a normal number
    root = f.add(a, f.sqrt(f.add(f.mul(a, a), f.mul(b, b))))
    shrink = f.div(f.mul(f.mul(f.add(up, down), b), beta), root)
    return f.mul(f.mul(x, e), e), f.mul(sh, shrink)


class _TorchOps:
    """`_hypentropy_terms`' operations on tensors (Python numbers as torch broadcasts them; torch is looked up at
    the call: this module is imported without it, compiler/ops/_lazy.py)."""
    add, mul, div = staticmethod(lambda a, b: a + b), staticmethod(lambda a, b: a * b), staticmethod(lambda a, b: a / b)
    lt, eq, ne = staticmethod(lambda a, b: a < b), staticmethod(lambda a, b: a == b), staticmethod(lambda a, b: a != b)
    neg, abs = staticmethod(lambda a: -a), staticmethod(lambda a: torch.abs(a))
    sqrt, expm1 = staticmethod(lambda a: torch.sqrt(a)), staticmethod(lambda a: torch.expm1(a))
    where = staticmethod(lambda c, a, b: torch.where(c, a, b))

    @staticmethod
    def max(a, b):
        return torch.maximum(a, torch.as_tensor(b, dtype=a.dtype, device=a.device))


def _hypentropy_step(x: torch.Tensor, s: Any, beta: Any) -> torch.Tensor:
    """x⁺ = β·sinh(asinh(x/β) − s), stably (`_hypentropy_terms`)."""
    lhs, rhs = _hypentropy_terms(_TorchOps, x, torch.as_tensor(s, dtype=x.dtype, device=x.device), beta)
    return lhs - rhs


@dataclass(frozen=True)
class Potential:
    """One mirror map: φ, ∇φ, (∇φ)⁻¹, the step and the Bregman divergence, each taking (…, beta, p)."""

    name: str
    potential: Callable[..., torch.Tensor]
    grad: Callable[..., torch.Tensor]
    inverse: Callable[..., torch.Tensor]
    step: Callable[..., torch.Tensor]
    bregman: Callable[..., torch.Tensor]


def _pnorm_bregman(x, z, beta, p):
    return _pnorm_sq(x, p) - _pnorm_sq(z, p) - _dot(_pnorm_grad(z, p), x - z)


POTENTIALS: dict[str, Potential] = {k.name: k for k in [
    Potential("euclidean",
              lambda x, beta, p: 0.5 * _dot(x, x),
              lambda x, beta, p: x,
              lambda y, beta, p: y,
              lambda x, d, lr, beta, p: x - lr * d,
              lambda x, z, beta, p: 0.5 * _dot(x - z, x - z)),
    Potential("entropy",
              lambda x, beta, p: (torch.xlogy(x, x) - x).sum(),
              lambda x, beta, p: torch.log(x),
              lambda y, beta, p: torch.exp(y),
              lambda x, d, lr, beta, p: x * torch.exp(-(lr * d)),
              lambda x, z, beta, p: (torch.xlogy(x, x) - torch.xlogy(x, z) - x + z).sum()),
    Potential("hypentropy",
              lambda x, beta, p: (x * torch.asinh(x / _beta(beta)) - _hypot(x, beta)).sum(),
              lambda x, beta, p: torch.asinh(x / _beta(beta)),
              lambda y, beta, p: _beta(beta) * torch.sinh(y),
              lambda x, d, lr, beta, p: _hypentropy_step(x, lr * d, _beta(beta)),
              lambda x, z, beta, p: (x * (torch.asinh(x / _beta(beta)) - torch.asinh(z / beta))
                                     - _hypot(x, beta) + _hypot(z, beta)).sum()),
    Potential("pnorm",
              lambda x, beta, p: _pnorm_sq(x, p),
              lambda x, beta, p: _pnorm_grad(x, p),
              lambda y, beta, p: _pnorm_grad(y, _conjugate(p)),
              lambda x, d, lr, beta, p: _pnorm_grad(_pnorm_grad(x, p) - lr * d, _conjugate(p)),
              _pnorm_bregman),
]}


def _resolve(kind: str, p: Any) -> tuple[Potential, float]:
    if kind not in POTENTIALS:
        raise ValueError(f"unknown mirror map {kind!r}; one of {', '.join(KINDS)}")
    if kind == "pnorm" and (p is None or not float(p) > 1):
        raise ValueError(f"the p-norm mirror map needs a static p > 1, found {p!r}")
    return POTENTIALS[kind], float(p) if kind == "pnorm" else 0.0


# ---- type rules ----------------------------------------------------------------------------------------
def _check_attrs(attrs: dict, beta: Any, beta_index: int) -> None:
    kind, p = attrs.get("kind"), attrs.get("p")
    if not isinstance(kind, str) or kind not in POTENTIALS:
        hint = did_you_mean(kind, KINDS) if isinstance(kind, str) else None
        raise ShapeError(f"has no mirror map {kind!r}".replace("'", '"'), code="GEO0206",
                         help=(hint.replace("`", '"') + " " if hint else "")
                         + "kinds: " + ", ".join(f'"{k}"' for k in KINDS))
    if kind == "pnorm":
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (p > 1 and math.isfinite(p)):
            raise ShapeError(f'of kind "pnorm" needs a static exponent 1 < p < ∞, found {p!r}', code="GEO0206",
                             help='write e.g. `p = 3` after the kind; p = 2 is "euclidean"')
    elif p is not None:
        raise ShapeError(f'takes the exponent `p` only with kind "pnorm", not "{kind}"', code="GEO0206")
    given = not (isinstance(beta, Static) and beta.kind == "none")
    if kind == "hypentropy":
        if not given:
            raise ShapeError('of kind "hypentropy" needs `beta` > 0', code="GEO0201",
                             help='write e.g. `beta = 0.1` after the kind (a constant or a hyperparameter)')
        if not (isinstance(beta, Scalar) or (isinstance(beta, Static) and beta.kind in ("int", "float"))):
            raise ShapeError(f"needs a number for `beta`, found `{beta.show()}`", arg=beta_index, code="GEO0202")
    elif given:
        raise ShapeError(f'takes `beta` only with kind "hypentropy", not "{kind}"', arg=beta_index, code="GEO0206")


def _tensor(t, i: int) -> Tensor:
    if not isinstance(t, Tensor):
        raise ShapeError(f"needs a tensor, found `{t.show()}`", arg=i, code="GEO0202")
    return t


def _map_rule(args, attrs, constraints):
    """mirror_map(x, β), mirror_inverse(y, β): the argument's type."""
    _check_attrs(attrs, args[1], 1)
    return _tensor(args[0], 0)


def _step_rule(args, attrs, constraints):
    """mirror_step(x, d, lr, β): x and d broadcast; lr is a number."""
    x, d, lr, beta = args
    _check_attrs(attrs, beta, 3)
    _tensor(x, 0)
    if not (isinstance(d, (Tensor, Scalar)) or (isinstance(d, Static) and d.kind in ("int", "float"))):
        raise ShapeError(f"needs a tensor or a number for the direction, found `{d.show()}`", arg=1, code="GEO0202")
    if not (isinstance(lr, Scalar) or (isinstance(lr, Static) and lr.kind in ("int", "float"))):
        raise ShapeError(f"needs a number for `lr`, found `{lr.show()}`", arg=2, code="GEO0202")
    return broadcast(x, d, constraints)


def _scalar_rule(beta_index: int):
    """bregman(x, z, β), mirror_potential(x, β): a 0-d tensor (over the whole tensor, as "pnorm" needs)."""
    def rule(args, attrs, constraints):
        _check_attrs(attrs, args[beta_index], beta_index)
        tensors = [_tensor(a, i) for i, a in enumerate(args[:beta_index])]
        out = tensors[0]
        for t in tensors[1:]:
            out = broadcast(out, t, constraints)
        return Tensor((), False, out.dtype)
    return rule


# ---- rewrites ------------------------------------------------------------------------------------------
def _sharding(reduces: bool):
    """The sharding facet of a mirror operator: "pnorm" normalizes by ‖x‖_p of the whole tensor (whole); the other
    potentials act per element, so their maps run on a shard and their potentials and divergences are sums."""
    def facet(attrs: dict) -> Sharding:
        if attrs.get("kind") == "pnorm":
            return WHOLE
        return reduction("all", "sum") if reduces else LOCAL
    facet.__doc__ = ("whole for \"pnorm\" (it normalizes by the whole tensor's ‖x‖_p); for the other kinds "
                     + ("a reduction over every element, partials summed" if reduces else "local (per element)"))
    return facet


def _cancel(inner_op: str):
    """mirror_inverse(mirror_map(x)) → x and mirror_map(mirror_inverse(y)) → y, for the same kind, p and β
    (the same node: arguments are interned). For "entropy" this assumes x > 0, the map's domain."""
    def fn(node, graph):
        y, beta = node.args
        if y.op != inner_op or y.args[1] is not beta:
            return None
        if y.attr("kind") != node.attr("kind") or y.attr("p") != node.attr("p"):
            return None
        x = y.args[0]
        return x if x.type == node.type else None
    return fn


def _expand_step(node, graph):
    """mirror_step → elementwise registry operators for "euclidean", "entropy" and "hypentropy", so the planner
    fuses the step into the elementwise region around it (one kernel, no tensor-sized temporaries). The
    arithmetic is the reference's, operation by operation (`_hypentropy_step`). "pnorm" needs a norm of the
    whole tensor and stays one operator; so does a constant β ≤ 0, which the reference rejects at the first step."""
    kind = node.attr("kind")
    if kind not in ("euclidean", "entropy", "hypentropy"):
        return None
    x, d, lr, beta = node.args
    if kind == "hypentropy" and beta.op == "const" and not (
            isinstance(beta.value, (int, float)) and not isinstance(beta.value, bool) and beta.value > 0):
        return None

    def emit(name, *args, type=None):
        values = [a.value for a in args if a.op == "const"]
        opdef = registry.get(name)
        if len(values) == len(args) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) \
                and opdef.fold is not None:
            try:
                return graph.const(opdef.fold(*values), node.span)
            except (ArithmeticError, ValueError):
                pass  # exp(1e3): left to the host at run time, as the checker leaves it
        t = type if type is not None else registry.elementwise_rule([a.type for a in args], {}, [])
        return graph.node(name, args, type=t, span=node.span)

    def const(v):
        return graph.const(v, node.span)

    is_one = lr.op == "const" and not isinstance(lr.value, bool) and lr.value == 1
    s = d if is_one else emit("mul", lr, d)
    if kind == "euclidean":
        return emit("sub", x, s, type=node.type)
    if kind == "entropy":
        return emit("mul", x, emit("exp", emit("neg", s)), type=node.type)
    class ops:  # _hypentropy_terms' operations as registry operators (a Python number: a constant node)
        def __getattr__(self, name):
            return lambda *args: emit(name, *(const(a) if isinstance(a, (int, float)) else a for a in args))
    lhs, rhs = _hypentropy_terms(ops(), x, s, beta)
    return emit("sub", lhs, rhs, type=node.type)


# ---- laws ----------------------------------------------------------------------------------------------
LAW_KINDS: list[tuple[str, dict]] = [("euclidean", {}), ("entropy", {}), ("hypentropy", {}), ("pnorm", {"p": 1.5}),
                                     ("pnorm", {"p": 3})]


def _label(kind: str, kw: dict) -> str:
    return kind + "".join(f"(p={v})" for v in kw.values())


def _points(kind: str, count: int, shape=None):
    """`count` tensors of one shape in the map's domain (x > 0 for entropy), and a β for hypentropy."""
    st = sampling._st()
    shape = shape if shape is not None else sampling.shapes(1, 2, 5)
    if kind == "entropy":
        def one(s):
            return st.one_of(sampling.tensors(st.just(s), low=1e-3, high=1e3),
                             sampling.gaussian_tensors(st.just(s), scales=(1.0,)).map(torch.exp))
    else:
        def one(s):
            return st.one_of(sampling.gaussian_tensors(st.just(s)), sampling.tensors(st.just(s)))
    beta = sampling.positive(1e-3, 1e2) if kind == "hypentropy" else st.none()
    return st.tuples(shape.flatmap(lambda s: st.tuples(*[one(s) for _ in range(count)])), beta)


def _close(a: torch.Tensor, b: torch.Tensor, tol, what: str) -> None:
    bad = (a - b).abs() > tol
    assert not bad.any(), f"{what}: max |difference| = {(a - b).abs().max().item():.3g}"


def _inverse_laws(kind: str, kw: dict) -> list[Law]:
    label = _label(kind, kw)

    def roundtrip(f, sample):
        (x,), beta = sample
        back = f(mirror_map.reference(x, beta, kind=kind, **kw), beta, kind=kind, **kw)
        _close(back, x, 1e-9 * (x.abs() + x.abs().max()) + 1e-300, f"{label}: mirror_inverse(mirror_map(x)) ≠ x")

    return [Law(f"{label}: the mirror map inverts, mirror_inverse(mirror_map(x)) = x", lambda: _points(kind, 1),
                roundtrip)]


def _map_laws(kind: str, kw: dict) -> list[Law]:
    label = _label(kind, kw)

    def monotone(f, sample):
        (x, z), beta = sample
        gap = float(_dot(f(x, beta, kind=kind, **kw) - f(z, beta, kind=kind, **kw), x - z))
        assert gap >= -1e-9 * float((x - z).abs().sum() * (f(x, beta, kind=kind, **kw).abs().max() + 1)), \
            f"{label}: ⟨∇φ(x) − ∇φ(z), x − z⟩ = {gap!r} < 0"

    return [Law(f"{label}: the mirror map is monotone, ⟨∇φ(x) − ∇φ(z), x − z⟩ ≥ 0", lambda: _points(kind, 2), monotone)]


def _step_sample(kind: str):
    st = sampling._st()
    return _points(kind, 1).flatmap(lambda xb: st.tuples(
        st.just(xb), sampling.tensors(st.just(tuple(xb[0][0].shape))), st.floats(0.0, 1.0)))


def _hyp_tol(x: torch.Tensor, d: torch.Tensor, lr: float, beta: float) -> torch.Tensor:
    """Rounding bound for the hypentropy step: the terms are of size (|x| + β)·cosh(lr·d)."""
    return 1e-9 * (x.abs() + beta) * torch.cosh(lr * d.abs()) + 1e-300


def _step_laws(kind: str, kw: dict) -> list[Law]:
    label = _label(kind, kw)

    def composed(f, sample):
        ((x,), beta), d, lr = sample
        got = f(x, d, lr, beta, kind=kind, **kw)
        via = mirror_inverse.reference(mirror_map.reference(x, beta, kind=kind, **kw) - lr * d, beta, kind=kind, **kw)
        scale = _hyp_tol(x, d, lr, beta) if kind == "hypentropy" else \
            1e-9 * (got.abs() + via.abs() + x.abs().max() + lr * d.abs().max()) + 1e-300
        _close(got, via, scale, f"{label}: mirror_step ≠ mirror_inverse(mirror_map(x) − lr·d)")

    what = "the stable form x·e^{−σs} − (√(x² + β²) − |x|)·sinh s, s = lr·d, equals β·sinh(asinh(x/β) − s)" \
        if kind == "hypentropy" else "mirror_step(x, d, lr) = mirror_inverse(mirror_map(x) − lr·d)"
    laws = [Law(f"{label}: {what}", lambda: _step_sample(kind), composed)]
    if kind != "hypentropy":
        return laws

    def small_beta(f, sample):
        ((x,), _), d, lr = sample
        beta = 1e-9
        got = f(x, d, lr, beta, kind=kind)
        eg = x * torch.exp(-lr * d * torch.sign(x))
        # exact bound: |x⁺ − x·e^{−lr·d·sign x}| = (√(x² + β²) − |x|)·|sinh(lr·d)| ≤ β·sinh(lr·|d|)
        _close(got, eg, beta * torch.sinh(lr * d.abs()) + _hyp_tol(x, d, lr, beta), f"{label}: β → 0 is not EG")

    def large_beta(f, sample):
        ((x,), _), d, kappa = sample
        for beta in (1e4, 1e6):
            got = f(x, d, kappa / beta, beta, kind=kind)
            gd = x - kappa * d
            # x⁺ = x − κd + O((|x| + κ|d| + 1)³/β²) with lr = κ/β
            _close(got, gd, (x.abs() + kappa * d.abs() + 1) ** 3 / beta**2, f"{label}: β → ∞ (lr = κ/β) is not GD")

    def bounded():  # |x|, |d| ≤ 10, κ ≤ 1: the O(1/β²) remainder stays small
        st = sampling._st()
        return sampling.tensors(sampling.shapes(1, 2, 5)).flatmap(lambda x: st.tuples(
            st.just(((x,), None)), sampling.tensors(st.just(tuple(x.shape))), st.floats(0.0, 1.0)))

    return laws + [
        Law(f"{label}: β → 0 gives exponentiated gradient, x⁺ → x·exp(−lr·d·sign x)", lambda: _step_sample(kind),
            small_beta),
        Law(f"{label}: β → ∞ with lr = κ/β gives gradient descent, x⁺ → x − κ·d", bounded, large_beta)]


def _bregman_laws(kind: str, kw: dict) -> list[Law]:
    label = _label(kind, kw)

    def nonnegative(f, sample):
        (x, z), beta = sample
        d, zero = float(f(x, z, beta, kind=kind, **kw)), float(f(x, x, beta, kind=kind, **kw))
        size = float(mirror_potential.reference(x, beta, kind=kind, **kw).abs()
                     + mirror_potential.reference(z, beta, kind=kind, **kw).abs()) + 1.0
        assert d >= -1e-9 * size, f"{label}: D(x, z) = {d!r} < 0"
        assert abs(zero) <= 1e-9 * size, f"{label}: D(x, x) = {zero!r} ≠ 0"

    def definition(f, sample):
        (x, z), beta = sample
        phi = mirror_potential.reference
        want = phi(x, beta, kind=kind, **kw) - phi(z, beta, kind=kind, **kw) \
            - _dot(mirror_map.reference(z, beta, kind=kind, **kw), x - z)
        got = f(x, z, beta, kind=kind, **kw)
        size = float(phi(x, beta, kind=kind, **kw).abs() + phi(z, beta, kind=kind, **kw).abs()
                     + _dot(mirror_map.reference(z, beta, kind=kind, **kw).abs(), (x - z).abs())) + 1e-300
        assert abs(float(got - want)) <= 1e-9 * size, \
            f"{label}: D(x, z) = {float(got)!r} ≠ φ(x) − φ(z) − ⟨∇φ(z), x − z⟩ = {float(want)!r}"

    return [Law(f"{label}: D(x, z) ≥ 0 and D(x, x) = 0", lambda: _points(kind, 2), nonnegative),
            Law(f"{label}: D(x, z) = φ(x) − φ(z) − ⟨∇φ(z), x − z⟩", lambda: _points(kind, 2), definition)]


def _laws(make) -> list[Law]:
    return [law for kind, kw in LAW_KINDS for law in make(kind, kw)]


# ---- the operators -------------------------------------------------------------------------------------
@op(REDUCTION, _map_rule, laws=_laws(_map_laws),
    rewrites=[Rewrite("mirror_map(mirror_inverse(y)) -> y", _cancel("mirror_inverse"))], sharding=_sharding(reduces=False))
@values_first
def mirror_map(x, kind: StaticArg, beta=None, p: StaticArg = None):
    """∇φ(x), the mirror map of the potential `kind`, into the dual space.

    "euclidean" x; "entropy" log x (x > 0); "hypentropy" asinh(x/β) (Ghai, Hazan & Singer, ALT 2020);
    "pnorm" sign(x)|x|^{p−1}/‖x‖_p^{p−2} (Gentile 2003). Mirror descent takes its gradient step in the dual
    space (algorithms.md §2.3).
    """
    k, pv = _resolve(kind, p)
    return k.grad(_work(x), beta, pv).to(x.dtype)


@op(REDUCTION, _map_rule, laws=_laws(_inverse_laws),
    rewrites=[Rewrite("mirror_inverse(mirror_map(x)) -> x", _cancel("mirror_map"))], sharding=_sharding(reduces=False))
@values_first
def mirror_inverse(y, kind: StaticArg, beta=None, p: StaticArg = None):
    """(∇φ)⁻¹(y) = ∇φ*(y), the inverse mirror map: back from the dual space.

    "euclidean" y; "entropy" eʸ; "hypentropy" β·sinh(y);
    "pnorm" sign(y)|y|^{q−1}/‖y‖_q^{q−2} with q = p/(p − 1) (the conjugate potential ½‖·‖_q²).

    Sources as `mirror_map` (Ghai, Hazan & Singer; Gentile; algorithms.md §2.3).
    """
    k, pv = _resolve(kind, p)
    return k.inverse(_work(y), beta, pv).to(y.dtype)


@op(REDUCTION, _step_rule, laws=_laws(_step_laws), sharding=_sharding(reduces=False),
    rewrites=[Rewrite('mirror_step(x, d, lr, "euclidean" | "entropy" | "hypentropy") -> elementwise operators', _expand_step)])
@values_first
def mirror_step(x, d, lr, kind: StaticArg, beta=None, p: StaticArg = None):
    """x⁺ = (∇φ)⁻¹(∇φ(x) − lr·d): one mirror-descent step along the direction d.

    d is a gradient, or any update; s = lr·d. "euclidean": x − s (gradient descent). "entropy": x·exp(−s)
    (exponentiated gradient, Kivinen & Warmuth 1997). "hypentropy": β·sinh(asinh(x/β) − s) (Ghai, Hazan &
    Singer, ALT 2020; algorithms.md §2.3); β → 0 gives HAM's multiplicative step x·exp(−s·sign x) (Jacobs,
    Jain & Burkholz, arXiv 2506.02630), β → ∞ with lr·β fixed gives gradient descent with step lr·β.
    "pnorm": through the dual space (Gentile 2003).

    The hypentropy step in a stable form. With u = asinh(x/β), sinh(u − s) = sinh u·cosh s − cosh u·sinh s
    gives the closed form x⁺ = x·cosh s − √(x² + β²)·sinh s, whose two terms, each of size (|x| + β)·e^|s|/2,
    cancel: for |x| ≫ β the result is x·e^{−s·sign x}, a factor e^{2|s|} smaller than the terms (fp32 loses
    all digits by s ≈ 8), and cosh s overflows past |s| ≈ 89 (fp32) where x⁺ may be finite. Take σ ∈ {−1, 1}
    with σx = |x| (σ = sign x; at x = 0 either, here sign s). Then cosh s = e^{−σs} + σ·sinh s, so
    x·cosh s = x·e^{−σs} + |x|·sinh s and

        x⁺ = x·e^{−σs} − (√(x² + β²) − |x|)·sinh s,      √(x² + β²) − |x| = β/(a + √(a² + 1)),  a = |x|/β

    (the difference of square roots rationalized: no cancellation, it is β²/(|x| + √(x² + β²)) ∈ (0, β]).
    At x = 0 it is −β·sinh s. Evaluated without overflow of any intermediate where x⁺ is finite, and with
    one transcendental function: from em = expm1(|s|/2), e^{|s|/2} = em + 1 and e^{−|s|/2} = 1/(em + 1);
    e = e^{−σs/2} is one of them, x·e^{−σs} = (x·e)·e, sinh(|s|/2) = em·(1 + e^{−|s|/2})/2 (exact near 0,
    where (e^{|s|/2} − e^{−|s|/2})/2 cancels) and sinh s = sinh(s/2)·(e^{|s|/2} + e^{−|s|/2}); so |s| up to
    2·ln(max float) (fp32 177, fp64 1419) stays finite; σ = sign s at x = 0 keeps e ≤ 1 there (0·∞ never
    occurs); and with
    m = max(|x|, β), p = |x|/m, q = β/m (both ≤ 1, one of them 1): β/(a + √(a² + 1)) = β·q/(p + √(p² + q²)),
    evaluated as ((e^{|s|/2} + e^{−|s|/2})·q)·β/(p + √(p² + q²)) so that β·q = β²/|x| never underflows alone (|x|/β beyond
    the dtype's range) where its product with cosh(s/2) is a normal number.
    Where both terms have opposite signs (x > 0, s > 0 or x < 0, s < 0) they are each at most
    max(|x|e^{−|s|}, β·|sinh s|/(a + √(a² + 1))) ≤ |x⁺| + β: the rounding error is a few ulp of |x⁺| + β,
    the conditioning of β·sinh(u − s) itself (an ulp of x moves x⁺ by up to an ulp of √(x⁺² + β²)).

    The canonicalize pass rewrites this operator for "euclidean", "entropy" and "hypentropy" into elementwise
    operators in the same order (this reference computes the same arithmetic), so the step fuses with the
    elementwise work around it: one kernel, no tensor-sized temporaries (HORST's matrix step, stdlib/horst.geo,
    our reconstruction of an unpublished algorithm, algorithms.md §2.4). "pnorm" stays one operator.
    """
    k, pv = _resolve(kind, p)
    if not isinstance(d, torch.Tensor):
        d = torch.as_tensor(d, dtype=x.dtype, device=x.device)
    return k.step(_work(x), _work(d), lr, beta, pv).to(torch.promote_types(x.dtype, d.dtype))


@op(REDUCTION, _scalar_rule(2), laws=_laws(_bregman_laws), sharding=_sharding(reduces=True))
@values_first
def bregman(x, z, kind: StaticArg, beta=None, p: StaticArg = None):
    """D_φ(x, z) = φ(x) − φ(z) − ⟨∇φ(z), x − z⟩ ≥ 0, the Bregman divergence (a 0-d tensor).

    Over the whole tensor, for the potential `kind`: "euclidean" ½‖x − z‖²; "entropy" Σ x log(x/z) − x + z
    (generalized KL);
    "hypentropy" Σ x(asinh(x/β) − asinh(z/β)) − √(x² + β²) + √(z² + β²) (algorithms.md §2.3); "pnorm"
    from the definition. Bregman, USSR Comput. Math. 1967; Beck & Teboulle 2003.
    """
    k, pv = _resolve(kind, p)
    return k.bregman(_work(x), _work(z), beta, pv).to(torch.promote_types(x.dtype, z.dtype))


@op(REDUCTION, _scalar_rule(1), sharding=_sharding(reduces=True))
@values_first
def mirror_potential(x, kind: StaticArg, beta=None, p: StaticArg = None):
    """φ(x), the potential (distance-generating function) of the mirror map `kind`, a 0-d tensor.

    "euclidean" ½‖x‖²; "entropy" Σ x log x − x; "hypentropy" Σ x·asinh(x/β) − √(x² + β²)
    (Ghai, Hazan & Singer, ALT 2020; algorithms.md §2.3); "pnorm" ½‖x‖_p².
    """
    k, pv = _resolve(kind, p)
    return k.potential(_work(x), beta, pv).to(x.dtype)
