"""The operator registry: every operator is ONE record, `OpDef`, holding all of its facets.

    doc          the math and the source (paper, code), shown by `geo doc OP`
    signature    taken from the reference function: parameters annotated `Static` are compile-time values
                 (part of the kernel key), the others are runtime values (tensors or scalars)
    kind         elementwise | reduction | matrix | shape | init | random — what fusion and scheduling need to
                 know; a random operator draws from the optimizer's generator: its reference takes the step's
                 random key and the call's site, which the checker supplies (`user_params` hides them)
    type_rule    (arg types, static attrs, constraints) -> result type; raises ShapeError on misuse
    reference    the torch implementation, the oracle every faster backend is tested against
    fold         a pure-Python function used to fold the op on static values (optional)
    rewrites     canonicalization rules, applied by the generic `canonicalize` pass
    laws         mathematical properties, checked by the generic property tests (tests/properties)
    domain       the inputs the operator is meant for, per parameter (a real interval, or a static's
                 choices): what `geo fuzz` and the composition generators feed it
    foreach      the multi-tensor lowering of an elementwise op for the torch path: `fn(lists, attrs, inplace)`
                 over lists of tensors / per-tensor host scalars, calling `torch._foreach_*`; the same
                 arithmetic as the reference, so the torch path stays bit-exact with it
    triton       the Triton lowering of an elementwise op: `fn(arg expressions, attrs) -> expression`
    inductor     the elementwise op as traced by torch.compile for the inductor backend, where host scalars
                 arrive as 0-d float64 tensors (data, so a new learning rate never recompiles); same signature
                 as the reference. Only where the reference needs a Python number (`alpha=`, `value=`, a
                 test `s == 0`, lerp's weight of the tensor's dtype); the others trace their reference as is
    cost         FLOPs of one call, `fn(arg shapes, attrs) -> float`, for `geo explain` (elementwise: one per
                 output element unless given)
    batches      the reference treats leading dims as a batch, one result per matrix: backends may stack
                 same-shape matrices of a group into one call (one Newton–Schulz for all of them)
    sharding     how the operator runs when its tensor arguments are split by rows across ranks (FSDP2's
                 `Shard(0)`, runtime/distributed.py): `LOCAL` (elementwise: each rank on its own rows, no
                 communication), a `Reduction` (each rank reduces its rows, the small partial results combine:
                 which dims it reduces, and how partials combine), `SHAPE_OF` (reads only the argument's shape:
                 rows, cols; a shard is given the whole tensor's), or `WHOLE` (needs the whole tensor: msign,
                 power iteration, matmuls, decompositions, retractions, random draws). A
                 function of the static attributes where they decide it (mirror maps: "pnorm" is whole-tensor)

Family modules (elementwise.py, reduce.py, matrix.py, ...) declare their operators with the `@op` decorator;
generic passes and tests only ever ask the registry. The grammar knows none of these names.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..types import SCALAR, Dim, Scalar, ShapeError, Static, Tensor, TupleT, Type, broadcast
from ._lazy import lazy_torch

torch = lazy_torch(globals())

ELEMENTWISE, REDUCTION, MATRIX, SHAPE, INIT, RANDOM = "elementwise", "reduction", "matrix", "shape", "init", "random"
KINDS = (ELEMENTWISE, REDUCTION, MATRIX, SHAPE, INIT, RANDOM)
# The parameters of a random operator that the checker supplies, never the spec: the parameter's random key for
# this step (a value) and the call's site (a static name that keeps two draws of one step apart).
RANDOM_HIDDEN = ("key", "site")


class StaticArg:
    """Annotation marker: `def msign(x, steps: StaticArg = 5)` makes `steps` a compile-time argument."""


REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    name: str
    static: bool
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Rewrite:
    """A rewrite rule: `fn(node, graph)` returns a replacement node, or None if it does not apply.

    `stage` names the pass that applies it: "canonicalize" (algebraic identities, exact) or "contract"
    (fusing a multiply into an add, as torch's `add(alpha=)`/`addcmul` do: one rounding fewer)."""

    name: str
    fn: Callable[..., Any]
    stage: str = "canonicalize"


@dataclass(frozen=True)
class Law:
    """A property every correct implementation satisfies.

    `sample()` returns a hypothesis strategy (imported lazily: hypothesis is a test dependency);
    `check(op_fn, example)` raises AssertionError with a message when the law fails for one drawn example.
    """

    name: str
    sample: Callable[[], Any]
    check: Callable[..., None]


@dataclass(frozen=True)
class Domain:
    """The inputs an operator is meant for, for one parameter: a closed real interval [low, high] for a value
    (every element of a tensor), or the values a static argument may take (`choices`). An operator declares
    only what differs from "any finite number" and its static defaults; fuzzers draw from it."""

    low: float = -math.inf
    high: float = math.inf
    choices: tuple[Any, ...] = ()


ANY = Domain()


@dataclass(frozen=True)
class Sharding:
    """The `sharding` facet: what an operator needs when its tensor arguments are split by rows (dim 0) across
    ranks. `mode` is "local" (elementwise: the result's rows are the rows' results), "reduction", "shape" (reads only
    its argument's shape: on a shard it must be given the whole tensor's, which every rank knows) or "whole".

    A reduction says which dims it reduces (`over`): "all" (every element, a 0-d result), "axis" (its static
    `axis`, everything when None), "last" (the last dim: one result per row, so a row split needs nothing); and
    how partial results combine (`combine`): "sum", "max", "min", "mean" (weighted by the elements each part
    reduced) or "rms" (the root of the weighted mean of squares). tests/unit/test_sharding_facet.py checks each
    record against its reference: the rows' results concatenated (local) or combined (reduction) equal the
    whole's."""

    mode: str
    over: str = ""
    combine: str = ""

    def reduced_dims(self, attrs: dict[str, Any], ndim: int) -> tuple[int, ...]:
        """The dims this call reduces, for an argument of rank `ndim` (a reduction only)."""
        if self.over == "last":
            return (ndim - 1,) if ndim else ()
        axis = attrs.get("axis") if self.over == "axis" else None
        if axis is None:
            return tuple(range(ndim))
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        return tuple(sorted(a % ndim for a in axes)) if ndim else ()


    def describe(self) -> str:
        """The facet in words (the operator catalog, docs/operators.md)."""
        if self.mode == "local":
            return "local (runs on each rank's rows)"
        if self.mode == "whole":
            return "whole (needs the whole tensor: owner-compute)"
        if self.mode == "shape":
            return "the whole tensor's shape (every rank knows it)"
        over = {"all": "every element", "axis": "its `axis` (every element when none)", "last": "the last dim"}
        return f"reduction over {over[self.over]}, partials combined by {self.combine}"


LOCAL = Sharding("local")
WHOLE = Sharding("whole")
SHAPE_OF = Sharding("shape")  # reads only its argument's shape (rows, cols): the whole's, known on every rank


def reduction(over: str, combine: str) -> Sharding:
    return Sharding("reduction", over, combine)


@dataclass(frozen=True)
class OpDef:
    name: str
    doc: str
    kind: str
    params: tuple[Param, ...]
    type_rule: Callable[[list[Type], dict[str, Any], list[tuple[Dim, Dim]]], Type]
    reference: Callable[..., Any]
    fold: Callable[..., Any] | None = None
    rewrites: tuple[Rewrite, ...] = ()
    laws: tuple[Law, ...] = ()
    module: str = ""
    static_value: Callable[[list[Type]], Any] | None = None  # the value when the argument types decide it
    domain: tuple[tuple[str, Domain], ...] = ()
    foreach: Callable[..., Any] | None = None
    triton: Callable[..., str] | None = None
    cost: Callable[..., float] | None = None
    batches: bool = False
    inductor: Callable[..., Any] | None = None
    sharding: Sharding | Callable[[dict[str, Any]], Sharding] = WHOLE

    def sharding_for(self, attrs: dict[str, Any]) -> Sharding:
        """The sharding facet for a call with these static attributes."""
        return self.sharding if isinstance(self.sharding, Sharding) else self.sharding(attrs)

    def domain_of(self, param: str) -> Domain:
        """The declared domain of one parameter (ANY when the operator declares none)."""
        return next((d for name, d in self.domain if name == param), ANY)

    @property
    def value_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if not p.static)

    @property
    def static_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.static)

    @property
    def user_params(self) -> tuple[Param, ...]:
        """The parameters a spec writes (a random operator's key and site are the checker's)."""
        if self.kind != RANDOM:
            return self.params
        return tuple(p for p in self.params if p.name not in RANDOM_HIDDEN)

    def signature(self) -> str:
        parts = []
        for p in self.user_params:
            s = ("static " if p.static else "") + p.name
            if not p.required:
                s += f" = {p.default!r}"
            parts.append(s)
        return f"{self.name}({', '.join(parts)})"

    def summary(self) -> str:
        return (self.doc.strip().splitlines() or [""])[0]

    def apply(self, values: list[Any], attrs: dict[str, Any], result: Type) -> Any:
        """Runs the reference. Runtime scalars are Python floats (double precision, as torch.optim computes
        its scalar factors); an op whose result is a scalar computes on 0-d float64 tensors."""
        if isinstance(result, Scalar):
            if self.fold is not None and not attrs and all(isinstance(v, (int, float)) for v in values):
                try:
                    return float(self.fold(*values))  # IEEE double, exactly as torch.optim's Python scalars
                except (ArithmeticError, ValueError, TypeError):
                    pass  # 1/0, sqrt(-1), exp(1e3), (-8)^(1/3): IEEE inf/nan below, never a Python exception
            values = [torch.tensor(v, dtype=torch.float64) if isinstance(v, (int, float)) else v for v in values]
            return float(self.call(values, attrs))
        return self.call(values, attrs)

    def call(self, values: list[Any], attrs: dict[str, Any]) -> Any:
        """Calls the reference with every argument by name, so static and value parameters may interleave
        in its signature (`lmo(g, kind, radius)`)."""
        named = dict(zip((p.name for p in self.value_params), values))
        return self.reference(**named, **attrs)


_REGISTRY: dict[str, OpDef] = {}


def op(kind: str, type_rule: Callable, *, name: str | None = None, fold: Callable | None = None,
       rewrites: Iterable[Rewrite] = (), laws: Iterable[Law] = (), static_value: Callable | None = None,
       domain: dict[str, Domain] | None = None, foreach: Callable | None = None, triton: Callable | None = None,
       cost: Callable | None = None, batches: bool = False, inductor: Callable | None = None,
       sharding: Sharding | Callable | None = None):
    """Declares an operator from its torch reference function (whose docstring is the op's doc). `sharding` is
    required but for elementwise operators (LOCAL by their kind): a distributed step must never guess whether an
    operator may run on a shard."""
    if kind not in KINDS:
        raise ValueError(f"unknown op kind {kind!r}")
    if kind == ELEMENTWISE:  # one result element per input element: a shard's rows are the whole's rows
        if sharding not in (None, LOCAL):
            raise ValueError(f"operator {name or '?'}: an elementwise operator runs on a shard (its facet is LOCAL)")
        sharding = LOCAL
    elif sharding is None:
        raise ValueError(f"operator {name or '?'}: give its `sharding` facet (LOCAL, reduction(...) or WHOLE)")

    def register(fn: Callable) -> OpDef:
        op_name = name or fn.__name__.rstrip("_")
        if op_name in _REGISTRY:
            raise ValueError(f"operator {op_name!r} registered twice")
        params = []
        for p in inspect.signature(fn).parameters.values():
            static = p.annotation in ("StaticArg", StaticArg)
            params.append(Param(p.name, static, p.default))
        if kind == RANDOM and [p.name for p in params if p.name in RANDOM_HIDDEN] != list(RANDOM_HIDDEN):
            raise ValueError(f"random operator {op_name!r} takes `key` (a value) and `site` (static), last")
        unknown = set(domain or {}) - {p.name for p in params}
        if unknown:
            raise ValueError(f"operator {op_name!r}: domain names unknown parameters {sorted(unknown)}")
        record = OpDef(op_name, inspect.getdoc(fn) or "", kind, tuple(params), type_rule, fn, fold,
                       tuple(rewrites), tuple(laws), fn.__module__, static_value, tuple((domain or {}).items()),
                       foreach, triton, cost, batches, inductor, sharding)
        _REGISTRY[op_name] = record
        return record

    return register


def get(name: str) -> OpDef | None:
    _load_families()
    return _REGISTRY.get(name)


def all_ops() -> list[OpDef]:
    _load_families()
    return sorted(_REGISTRY.values(), key=lambda o: o.name)


def names() -> list[str]:
    _load_families()
    return sorted(_REGISTRY)


_NOT_FAMILIES = {"registry", "sampling"}
_loaded = False


def _load_families() -> None:
    """Imports every family module of this package: adding an operator never edits this file."""
    global _loaded
    if not _loaded:
        _loaded = True
        import importlib
        import pkgutil
        from pathlib import Path
        for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
            if info.name not in _NOT_FAMILIES and not info.name.startswith("_"):
                importlib.import_module(f"{__package__}.{info.name}")


# ---- reusable type rules -------------------------------------------------------------------------------
def elementwise_rule(args: list[Type], attrs: dict[str, Any], constraints: list) -> Type:
    """Broadcast every value argument; statics-only arithmetic stays static (folded by the checker)."""
    if all(isinstance(a, Static) for a in args):
        return Static("any")  # folded by the checker, which gives the value its kind
    for i, a in enumerate(args):
        if isinstance(a, TupleT) or (isinstance(a, Static) and a.kind not in ("int", "float", "bool")):
            raise ShapeError(f"expected a number or a tensor, found `{a.show()}`", arg=i, code="GEO0202")
    out: Type = SCALAR
    for a in args:
        out = broadcast(out, a, constraints)
    return out


def same_as_first(args: list[Type], attrs: dict[str, Any], constraints: list) -> Type:
    return elementwise_rule(args[:1], attrs, constraints)


def matrix_rule(args: list[Type], attrs: dict[str, Any], constraints: list) -> Type:
    """A matrix (or a batch of matrices) in, the same type out."""
    x = args[0]
    if not (isinstance(x, Tensor) and x.is_matrix):
        raise ShapeError(f"needs a matrix, found `{x.show()}`", arg=0, code="GEO0203",
                         help="restrict this rule to matrix parameters (`for matrix W`) or view them as matrices "
                              "(`as matrix`)")
    return x


def host_scalar(value: Any, like: torch.Tensor) -> Any:
    """A host number for a torch argument typed `Scalar` (lerp's weight, add's alpha, clamp's bounds, a fill
    value). torch refuses one beyond the tensor dtype's range ("cannot be converted ... without overflow");
    the IEEE result of the cast is ±inf, so that is what it gets. Anything else passes through unchanged."""
    if isinstance(value, float) and math.isfinite(value) and like.is_floating_point() \
            and abs(value) > torch.finfo(like.dtype).max:
        return math.copysign(math.inf, value)
    return value


def tensor_rule(args: list[Type], attrs: dict[str, Any], constraints: list) -> Type:
    x = args[0]
    if not isinstance(x, Tensor):
        raise ShapeError(f"needs a tensor, found `{x.show()}`", arg=0, code="GEO0202")
    return x
