"""Random well-typed operator expressions (`geo fuzz --operators`), typed by the registry's own type rules and
fed from the operators' declared domains.

An expression is generated for a wanted kind of value: "T" (the parameter's type), "S" (a host scalar) or
"Z" (a 0-d tensor, a reduction's result). For each operator the generator asks its type rule which argument
kinds give the wanted kind, so whatever it writes should check; an argument outside an operator's domain
(`log`'s x ≥ 1e-6, `lerp`'s weight in [0, 1]) is wrapped into it (`abs(e) + 1e-6`, `clamp`). Each expression
becomes the update of a rule; the checker must accept it, the backend must agree with the reference, and on
smooth operators the optimization passes must not change the float64 result.
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch

from ..compiler import binding as P
from ..compiler.ir import geo_literal
from ..compiler.ops import registry
from ..compiler.pipeline import front, specialize
from ..compiler.types import SCALAR, Scalar, Tensor
from ..dsl.diagnostics import GeoError
from ..dsl.source import SourceFile
from ..compiler.binding import bind_rule
from .cases import Case, Mismatch, Subject, Target, draw_case, optimizer_class, run_case
from .draw import Draw, Skip, hypothesis_run
from .properties import PROPERTIES
from .report import Failure, Outcome, exception_text, python_snippet, spec_failure
from .tensors import difference, summarize


PARAM_FORMS = {
    "matrix": ("for matrix W", Tensor(("m", "n"))),
    "vector": ("for vector W", Tensor(("n",))),
    "tensor": ("for tensor W", Tensor(None)),
    "stack": ("for stack W as batch", Tensor(("m", "n"), batched=True)),
}
_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "^", "and": "and", "or": "or", "eq": "==",
          "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_KEYWORD_OPS = {"and", "or", "not"}
SMOOTH_OPS = {"add", "sub", "mul", "div", "neg", "sqrt", "rsqrt", "exp", "log", "sinh", "cosh", "asinh", "tanh",
              "square", "lerp", "ema", "nesterov", "bias_correction", "sum", "mean", "rms", "dot", "transpose",
              "matmul", "pow", "axpy", "addcmul", "row_mean_sq", "zeros_like", "ones_like"}


def _kind_of(t: Any, ptype: Tensor) -> str | None:
    """"T": the parameter's type; "S": a host scalar; "Z": a 0-d tensor (a reduction's result)."""
    if isinstance(t, Scalar):
        return "S"
    if isinstance(t, Tensor) and t.shape == () and not t.batched:
        return "Z"
    if isinstance(t, Tensor) and t == Tensor(ptype.shape, ptype.batched, t.dtype) and t.dtype == "param":
        return "T"
    return None


def _number_text(x: float) -> str:
    text = repr(float(x))
    return f"({text})" if text.startswith("-") else text


KIND_TYPES = {"S": SCALAR, "Z": Tensor(())}


class ExpressionGenerator:
    """Random expressions of a wanted kind over the registry: "T" (the parameter's type), "S" (a host scalar)
    or "Z" (a 0-d tensor)."""

    def __init__(self, draw: Draw, ptype: Tensor, smooth: bool = False, max_depth: int = 3):
        self.draw, self.ptype, self.smooth, self.max_depth = draw, ptype, smooth, max_depth
        self.ops = [o for o in registry.all_ops() if o.kind != registry.INIT or o.name in ("zeros_like", "ones_like")]
        if smooth:
            self.ops = [o for o in self.ops if o.name in SMOOTH_OPS]
        self.used: set[str] = set()
        self.tensor_heavy = False

    def leaf(self, kind: str) -> str:
        d = self.draw
        if kind == "T":
            return d.choice(("grad", "W", "m", "grad", "m"))
        if kind == "Z":
            return d.choice(("mean(grad)", "sum(m)", "rms(W)"))
        return d.choice(("lr", "beta", "t", _number_text(d.choice((0.5, 2.0, 1e-3, 3.0, 0.9))), "lr"))

    def literal(self, dom: registry.Domain) -> str:
        lo = max(dom.low, -10.0)
        hi = min(dom.high, 10.0)
        if lo > hi:
            lo = hi = dom.low if math.isfinite(dom.low) else dom.high
        value = min(max(round(self.draw.float(lo, hi), 4), lo), hi) if hi > lo else lo
        return _number_text(value)

    def fit(self, text: str, kind: str, dom: registry.Domain) -> str:
        lo, hi = dom.low, dom.high
        if lo == -math.inf and hi == math.inf:
            return text
        if kind == "S" and self.draw.bool(0.7):
            return self.literal(dom)
        if kind == "Z" and math.isfinite(lo) and math.isfinite(hi):
            return f"clamp({text}, {_number_text(lo)}, {_number_text(hi)})"
        if math.isfinite(lo) and math.isfinite(hi):
            return f"clamp({text}, {_number_text(lo)}, {_number_text(hi)})"
        if math.isfinite(lo):
            return f"(abs({text}) + {_number_text(lo)})"
        return f"({_number_text(hi)} - abs({text}))"

    def expr(self, kind: str, depth: int = 0) -> str:
        d = self.draw
        if depth >= self.max_depth or d.bool(0.25 + 0.15 * depth):
            return self.leaf(kind)
        for _ in range(8):
            opdef = d.choice(self.ops)
            call = self.call(opdef, kind, depth)
            if call is not None:
                return call
        return self.leaf(kind)

    def call(self, opdef: registry.OpDef, kind: str, depth: int) -> str | None:
        d = self.draw
        attrs: dict[str, Any] = {}
        written: dict[str, str] = {}
        for p in opdef.static_params:
            dom = opdef.domain_of(p.name)
            if p.required:
                if not dom.choices:
                    return None
                attrs[p.name] = d.choice(dom.choices)
                written[p.name] = geo_literal(attrs[p.name])
            elif dom.choices and d.bool(0.3):
                attrs[p.name] = d.choice(dom.choices)
                written[p.name] = geo_literal(attrs[p.name])
            else:
                attrs[p.name] = p.default
        values = [p for p in opdef.value_params if p.required]
        patterns = []
        for code in range(3 ** len(values)):
            kinds = ["TSZ"[code // 3 ** i % 3] for i in range(len(values))]
            types = [self.ptype if k == "T" else KIND_TYPES[k] for k in kinds]
            constraints: list = []
            try:
                result = opdef.type_rule(types, dict(attrs), constraints)
            except Exception:  # noqa: BLE001 - a type rule rejecting this pattern (ShapeError, or a bad probe)
                continue
            if not constraints and _kind_of(result, self.ptype) == kind:
                patterns.append(kinds)
        if not patterns:
            return None
        if self.tensor_heavy:  # as many tensor arguments as the op takes
            most = max(k.count("T") for k in patterns)
            patterns = [k for k in patterns if k.count("T") == most]
        kinds = d.choice(patterns)
        args = [self.fit(self.expr(k, depth + 1), k, opdef.domain_of(p.name)) for p, k in zip(values, kinds)]
        self.used.add(opdef.name)
        name = opdef.name
        if name in _INFIX and len(args) == 2 and not written and (name in _KEYWORD_OPS or d.bool(0.6)):
            return f"({args[0]} {_INFIX[name]} {args[1]})"
        if name == "not":
            return f"(not {args[0]})"
        if name == "neg":
            return f"(-{args[0]})"
        if name == "transpose" and d.bool():
            return f"{args[0]}.T" if args[0].isidentifier() or args[0].endswith(")") else f"({args[0]}).T"
        parts = args + [f"{k} = {v}" for k, v in written.items()]
        return f"{name}({', '.join(parts)})"


def expression_spec(draw: Draw, form: str | None = None, smooth: bool = False) -> tuple[str, str, set[str]]:
    """(spec text, the parameter form, the operators used): a rule whose update is a random expression."""
    form = form or draw.choice(tuple(PARAM_FORMS))
    binder, ptype = PARAM_FORMS[form]
    gen = ExpressionGenerator(draw, ptype, smooth)
    update = gen.expr("T")
    scale = gen.expr("S", 1) if draw.bool(0.3) else "lr"
    text = (f"optimizer geo_fuzz_expression(lr = 0.01, beta = 0.9):\n"
            f"    {binder}:\n"
            f"        state m = zeros_like(W)\n"
            f"        m = lerp(m, grad, 1 - beta)\n"
            f"        let u = {update}\n"
            f"        W = W - {scale} * u\n")
    return text, form, gen.used


class AliasGenerator(ExpressionGenerator):
    """Expressions over one square value `s` and views of it (`s.T`): the arguments of an op share memory, and a
    backend that writes an op's first argument in place while another reads it (`s + s.T`) computes garbage or
    raises ("some elements … refer to a single memory location", issue 14)."""

    def __init__(self, draw: Draw, ptype: Tensor, smooth: bool = False):
        super().__init__(draw, ptype, smooth, max_depth=2)
        # elementwise ops: the ones a backend runs in place (a matrix op makes a fresh value)
        self.ops = [o for o in self.ops if o.kind == registry.ELEMENTWISE] or self.ops
        self.binary = [o for o in self.ops if len([p for p in o.value_params if p.required]) >= 2]
        self.pinned: list[str] = []   # the leaves the next tensor arguments take, in order

    def leaf(self, kind: str) -> str:
        if kind == "T":
            if self.pinned:
                return self.pinned.pop(0)
            return self.draw.choice(("s", "s.T", "transpose(s)", "s", "s.T"))
        return super().leaf(kind)

    def expr(self, kind: str, depth: int = 0) -> str:
        if depth == 0 and kind == "T" and self.binary and self.draw.bool(0.6):
            # the shape of the bug: an op whose first argument is `s` and another a view of it
            max_depth, self.max_depth, self.tensor_heavy = self.max_depth, 1, True   # arguments are leaves
            try:
                for _ in range(8):
                    self.pinned = ["s"] + [self.draw.choice(("s.T", "transpose(s)")) for _ in range(3)]
                    call = self.call(self.draw.choice(self.binary), kind, depth)
                    if call is not None:
                        return call
            finally:
                self.max_depth, self.tensor_heavy, self.pinned = max_depth, False, []
        return super().expr(kind, depth)


def alias_spec(draw: Draw) -> tuple[str, str, set[str]]:
    """(spec text, "matrix", the operators used): a matrix rule whose update is a random expression over a square
    intermediate and its transposes."""
    gen = AliasGenerator(draw, Tensor(("m", "m")), smooth=draw.bool(0.3))
    square = draw.choice(("grad @ grad.T", "W @ W.T", "m @ grad.T", "grad @ W.T"))
    update = gen.expr("T")
    text = (f"optimizer geo_fuzz_expression(lr = 0.01, beta = 0.9):\n"
            f"    for matrix W:\n"
            f"        state m = zeros_like(W)\n"
            f"        m = lerp(m, grad, 1 - beta)\n"
            f"        let s = {square}\n"
            f"        let u = {update}\n"
            f"        W = W - lr * (u @ W)\n")
    return text, "matrix", gen.used


FORM_TARGETS = {"matrix": Target(0, "layer.weight", "hidden", 2), "vector": Target(0, "norm.weight", "norm", 1),
                "tensor": Target(0, "layer.weight", "hidden", 2), "stack": Target(0, "experts.weight", "hidden", 3)}


def _reference_programs(subject: Subject, case: Case, optimize: bool):
    from ..compiler.backends.reference import ReferenceStep
    rule = subject.info.rules[0]
    statics = rule.statics()
    binding = bind_rule(subject.cls._geo.info, P.ParamInfo(case.target.name, case.shape, case.target.role))
    return ReferenceStep(specialize(subject.checked, rule, statics, binding[1], binding[2], optimize=optimize))


def _passes_preserve(subject: Subject, case: Case) -> None:
    """The optimization passes do not change what a program computes (fp64, finite results, smooth ops)."""
    hypers = {"lr": 0.01, "beta": 0.9}
    outs = []
    # The tolerance scales with the largest parameter value on either trajectory: a contracted `W - lr·u` rounds
    # once where the plain one rounds twice, so a final value that cancels huge terms differs by a rounding at
    # their size, not at its own (sinh(80)·lr twice over, cancelling to 0).
    scale = 1.0
    for optimize in (False, True):
        step = _reference_programs(subject, case, optimize)
        param = case.init.build(case.shape, "fp64")
        state = step.init(param, hypers)
        for i, g in enumerate(case.grads):
            param, new = step.step(param, g.build(case.shape, "fp64"), state, hypers, float(i + 1))
            state.update(new)
            if param.isfinite().all() and param.numel():
                scale = max(scale, float(param.abs().max()))
        outs.append(param)
    a, b = outs
    if not (a.isfinite().all() and b.isfinite().all()):
        return
    if not torch.allclose(a, b, rtol=1e-7, atol=1e-9 * scale):
        raise Mismatch("the optimization passes changed what the program computes (reference backend, fp64)",
                       f"unoptimized: {summarize(a)}", f"optimized: {summarize(b)}", difference(a, b))


def fuzz_operators(*, examples: int = 100, seed: int = 0, backend: str = "torch") -> Outcome:
    """Random well-typed operator expressions: the checker accepts what the type rules accept, the backend agrees
    with the reference bit for bit on adversarial inputs, nothing crashes, and on smooth expressions the
    optimization passes preserve the result. A quarter of them share memory between an op's arguments (a value
    and its transposes, `AliasGenerator`)."""
    out = Outcome("<operator compositions>")
    backend = "torch" if backend == "auto" else backend

    def body(draw: Draw, ctx: dict) -> None:
        aliased = draw.bool(0.25)
        smooth = draw.bool(0.3) and not aliased
        text, form, used = alias_spec(draw) if aliased else expression_spec(draw, smooth=smooth)
        ctx["text"], ctx["used"] = text, used
        try:
            _, checked = front(SourceFile("<composition>", text))
        except GeoError as err:
            raise Mismatch("the checker rejects an expression the operators' type rules accept", "it checks",
                           err.render()) from None
        subject = Subject("<composition>", SourceFile("<composition>", text), checked, "geo_fuzz_expression",
                          optimizer_class(checked, "geo_fuzz_expression"), text)
        ctx["subject"] = subject
        # an in-place decision is made on the first step and used from the second on
        case = draw_case(draw, subject.cls, FORM_TARGETS[form], steps=(2, 3) if aliased else (1, 2),
                         flip_statics=False)
        if case is None:
            raise Skip("shape")
        ctx["case"] = case
        if backend != "reference":
            PROPERTIES["agree"].check(subject, case, backend, draw)
        else:
            run_case(subject.cls, case, backend)
        if smooth and all(g.finite for g in case.grads):
            _passes_preserve(subject, case)

    start = time.perf_counter()
    n, failed = hypothesis_run(body, examples, seed)
    out.checks.append(("operator compositions", "agree", n, time.perf_counter() - start))
    if failed is not None:
        err = failed["error"]
        case, subject = failed.get("case"), failed.get("subject")
        text = failed.get("text", "")
        if subject is not None and case is not None:
            f = spec_failure(subject, "operators", case, err, backend)
            f.geo = text.rstrip()
            f.python = python_snippet(subject, case, "agree", backend)
        else:
            f = Failure("<operator compositions>", "operators", "a generated expression",
                        err.title if isinstance(err, Mismatch) else f"crashed: {type(err).__name__}",
                        [], getattr(err, "expected", "no exception"),
                        getattr(err, "got", "") or exception_text(err), getattr(err, "detail", ""), text.rstrip(),
                        f"import geo\ngeo.compile({text!r})")
        f.inputs.insert(0, "operators: " + ", ".join(sorted(failed.get("used", ()))))
        out.failures.append(f)
    return out
