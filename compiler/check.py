"""The checker: AST → typed IR.

`check(loaded)` resolves every name (definitions, `use`d specs, the operator registry), assembles each
optimizer's rules and hyperparameters, and elaborates every rule once with its default static values,
collecting *all* errors of the file. `elaborate(rule, statics, rank)` later builds the `Program` of one rule
for the static values and parameter rank the runtime meets; it reports errors the same way.

Elaboration is symbolic evaluation: runtime values become IR nodes, static values are folded to constants,
`if` on a static condition picks its branch (the other branches are still checked), `repeat` unrolls, and
user functions are inlined. Steps composed with `∘` run in order on the same gradient, each with its own
state namespace.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from ..dsl import ast
from ..dsl.diagnostics import Diagnostic, DiagnosticBag, GeoError, InternalError, Label, did_you_mean
from ..dsl.loader import Loaded
from ..dsl.build_ast import code_end
from ..dsl.source import Span
from . import params as P
from .ir import Constraint, Graph, Node, Program, StateSlot
from .ops import registry
from .ops.registry import OpDef
from .types import SCALAR, ShapeError, Static, Tensor, TupleT, Type, broadcast, static_kind

BINARY_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "@": "matmul", "^": "pow", "==": "eq",
              "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "and": "and", "or": "or"}
STATE_DTYPES = ("bf16", "fp16", "fp32", "fp64")
BUILTINS = ("grad", "t")
# Names the compiled optimizer already gives a meaning: its constructor's keywords, the param-group keys geo and
# torch.optim write or read (a hyperparameter lives in the param group under its own name).
# State names the compiled program and optimizer keep for themselves (a state is saved under its own name).
RESERVED_STATES = {"param": "the compiled step returns the parameter's new value under that name",
                   "step": "the optimizer keeps the step count under that name, as torch.optim does"}
RESERVED_HYPERS = ("params", "param_names", "geo_rule", "initial_lr", "roles", "backend", "nonfinite", "foreach",
                   "fused", "capturable", "differentiable", "maximize")
MAX_UNROLL = 1000
TYPE_CODES = {"GEO0202", "GEO0203", "GEO0204", "GEO0205", "GEO0206", "GEO0207"}
MAX_UNROLL_TOTAL = 10_000
MAX_INLINE_DEPTH = 32
MAX_INLINE_TOTAL = 10_000  # calls inlined in one rule: `def f(x): return g(x) + g(x)` chains grow exponentially
REQUIRED = registry.REQUIRED


class Poison(Type):
    """The type of an expression that already produced an error (suppresses follow-on errors)."""

    def show(self) -> str:
        return "<error>"


POISON_T = Poison()


# ---- what the checker knows about a spec ---------------------------------------------------------------
@dataclass
class HyperInfo:
    name: str
    static: bool
    default: Any            # a Python value, or REQUIRED
    span: Span
    choices: tuple[Any, ...] = ()  # a static's declared values (`one_of(...)`); empty: any value of its kind

    @property
    def type(self) -> Type:
        if self.static:
            return Static(static_kind(self.default))
        if isinstance(self.default, tuple):
            return TupleT(tuple(SCALAR for _ in self.default))
        return SCALAR


@dataclass
class StepUse:
    """One step of a rule's chain, in execution order."""

    name: str                           # the step's name ("" for a rule's inline body)
    binder: ast.Binder
    body: ast.Block
    hypers: dict[str, HyperInfo]        # the hyperparameters this step declares (inline body: the header's)
    bindings: dict[str, ast.Expr]       # hyperparameters bound to expressions over the rule's hypers
    prefix: str = ""                    # state namespace


@dataclass
class RuleInfo:
    optimizer: str
    index: int
    binder: ast.Binder
    chain: list[StepUse]
    hypers: dict[str, HyperInfo]        # the rule's exposed hyperparameters, declaration order
    route: str
    span: Span
    view: P.ViewDef | None = None
    view_args: tuple[Any, ...] = ()

    @property
    def terms(self) -> list[tuple[str, str | None, bool]]:
        return [(t.word, t.pattern, t.negated) for t in self.binder.selector]

    @property
    def text(self) -> str:
        written = self.binder.span.text.strip()
        implicit = not self.binder.selector and written != self.binder.name and self.binder.view is None
        return ("= " if implicit else "for ") + written

    def rank(self) -> int | None:
        ranks = {P.SELECTORS[t.word].rank for t in self.binder.selector
                 if t.pattern is None and not t.negated and t.word in P.SELECTORS} - {None}
        return ranks.pop() if len(ranks) == 1 else None

    def step_rank(self, i: int) -> int | None:
        ranks = {P.SELECTORS[t.word].rank for t in self.chain[i].binder.selector
                 if t.pattern is None and not t.negated and t.word in P.SELECTORS} - {None}
        return ranks.pop() if len(ranks) == 1 else None

    def active_steps(self, info: P.ParamInfo) -> tuple[int, ...]:
        """The steps of the chain whose own selectors match this parameter (the others are skipped)."""
        return tuple(i for i, s in enumerate(self.chain)
                     if P.selector_matches([(t.word, t.pattern, t.negated) for t in s.binder.selector], info))


@dataclass
class OptimizerInfo:
    name: str
    doc: str | None
    span: Span
    rules: list[RuleInfo]
    fingerprint: str                    # hash of the spec text of every module it came from

    @property
    def hypers(self) -> dict[str, HyperInfo]:
        out: dict[str, HyperInfo] = {}
        for r in self.rules:
            for k, h in r.hypers.items():
                out.setdefault(k, h)
        return out


@dataclass
class Checked:
    optimizers: dict[str, OptimizerInfo]
    root_optimizers: list[str]
    functions: dict[str, ast.FunctionDef]
    steps: dict[str, ast.StepDef]
    doc: str | None = None
    standalone: list[RuleInfo] = field(default_factory=list)  # steps no optimizer uses, checked on their own


# ---- entry points --------------------------------------------------------------------------------------
def check(loaded: Loaded) -> Checked:
    """Resolves and checks a loaded spec; raises GeoError with every diagnostic found."""
    bag = DiagnosticBag()
    checker = _Assembler(loaded, bag)
    checked = checker.run()
    bag.raise_if_errors()
    for rule in [r for opt in checked.optimizers.values() for r in opt.rules] + checked.standalone:
        statics = {k: h.default for k, h in rule.hypers.items() if h.static}
        # A rule of unknown rank is checked once for each rank its steps ask for (a `matrix` step in a
        # chain that also serves vectors), and once generically for the steps that ask for none.
        step_ranks = [rule.step_rank(i) for i in range(len(rule.chain))]
        ranks = [rule.rank()] if rule.rank() is not None else list(dict.fromkeys([None] + step_ranks))
        for rank in ranks:
            active = tuple(i for i, r in enumerate(step_ranks) if r is None or r == rank or rule.rank() is not None)
            if active:
                Elaborator(checked, rule, statics, rank, bag, active).run()
    bag.raise_if_errors()
    return checked


def elaborate(checked: Checked, rule: RuleInfo, statics: dict[str, Any], rank: int | None,
              active: tuple[int, ...] | None = None) -> Program:
    bag = DiagnosticBag()
    program = Elaborator(checked, rule, statics, rank, bag, active).run()
    bag.raise_if_errors()
    return program


# ---- assembling optimizers from declarations -----------------------------------------------------------
class _Assembler:
    def __init__(self, loaded: Loaded, bag: DiagnosticBag):
        self.loaded, self.bag = loaded, bag
        self.functions: dict[str, ast.FunctionDef] = {}
        self.steps: dict[str, ast.StepDef] = {}
        self.optimizer_defs: dict[str, ast.OptimizerDef] = {}
        self.defined_at: dict[str, Span] = {}
        self.module_of: dict[str, str] = {}
        self.optimizers: dict[str, OptimizerInfo] = {}
        self._building: list[str] = []
        self.used_steps: set[str] = set()

    def run(self) -> Checked:
        for mod_name in self.loaded.order:
            module = self.loaded.modules[mod_name]
            for item in module.items:
                if isinstance(item, ast.Use):
                    continue
                if item.name in self.defined_at:
                    first = self.defined_at[item.name]
                    if first.source is item.span.source or mod_name == self.loaded.order[-1]:
                        self.bag.error("GEO0104", f"`{item.name}` is defined twice", _head(item), "defined again here",
                                       secondary=[Label(_head_of(first), "first defined here")],
                                       help="rename one of them")
                    continue
                if registry.get(item.name) is not None and isinstance(item, ast.FunctionDef):
                    self.bag.error("GEO0104", f"`{item.name}` is an operator; a function cannot take its name",
                                   _head(item), help=f"rename the function, e.g. `my_{item.name}`")
                    continue
                self.defined_at[item.name] = item.span
                self.module_of[item.name] = mod_name
                if isinstance(item, ast.FunctionDef):
                    self.functions[item.name] = item
                elif isinstance(item, ast.StepDef):
                    self.steps[item.name] = item
                    self._binder(item.binder)  # a step's selector words, like a rule's, must be known
                else:
                    self.optimizer_defs[item.name] = item
        for name in self.optimizer_defs:
            self._optimizer(name)
        roots = [i.name for i in self.loaded.root.items if isinstance(i, ast.OptimizerDef) and i.name in self.optimizers]
        checked = Checked(self.optimizers, roots, self.functions, self.steps, self.loaded.root.doc)
        root_steps = [i for i in self.loaded.root.items if isinstance(i, ast.StepDef)]
        for d in root_steps:
            if d.name not in self.used_steps:
                # A step no optimizer uses yet is still checked, as a rule of its own.
                use = StepUse(d.name, d.binder, d.body, self.hypers(d.hypers), {})
                checked.standalone.append(RuleInfo(f"step {d.name}", 0, d.binder, [use], use.hypers, d.name, d.span))
        return checked

    # -- hyperparameters
    def hypers(self, decls: tuple[ast.Hyper, ...]) -> dict[str, HyperInfo]:
        out: dict[str, HyperInfo] = {}
        for h in decls:
            if h.name in out:
                self.bag.error("GEO0104", f"hyperparameter `{h.name}` is declared twice", h.span,
                               secondary=[Label(out[h.name].span, "first declared here")])
                continue
            if h.name in BUILTINS:
                self.bag.error("GEO0104", f"`{h.name}` is a builtin and cannot be a hyperparameter", h.span,
                               help=f"rename it, e.g. `{h.name}_`")
                continue
            if h.name in RESERVED_HYPERS:
                self.bag.error("GEO0104", f"`{h.name}` is reserved by the compiled optimizer and cannot be a "
                               "hyperparameter", h.span, notes=["hyperparameters live in the param groups, where "
                                                                f"`{h.name}` already has a meaning"],
                               help=f"rename it, e.g. `{h.name}_`")
                continue
            default, choices = REQUIRED, ()
            if _is_one_of(h.default):
                choices = self._choices(h)
                if not choices:
                    continue
                default = choices[0]
            elif h.default is not None:
                default = self.constant(h.default, f"the default of `{h.name}`")
                if default is None:
                    continue
            if h.static and default is REQUIRED:
                self.bag.error("GEO0303", f"static hyperparameter `{h.name}` needs a default value", h.span,
                               help=f"write `static {h.name} = ...`")
                continue
            if not h.static and default is not REQUIRED:
                bad = isinstance(default, (bool, str)) or (isinstance(default, tuple) and not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in default))
                if bad:
                    self.bag.error("GEO0302", f"hyperparameter `{h.name}` has a {static_kind(default)} default but is not "
                                   "static", h.span, "runtime hyperparameters are numbers",
                                   help=f"write `static {h.name} = ...`: it then selects the compiled code")
                    continue
                if isinstance(default, (int, float)):
                    default = float(default) if not isinstance(default, bool) else default
                else:
                    default = tuple(float(v) for v in default)
                if not _finite(default):
                    self.bag.error("GEO0302", f"the default of `{h.name}` is not a finite number: {_show(default)}",
                                   h.span, help="a runtime hyperparameter takes finite numbers (`1e999` is inf)")
                    continue
            out[h.name] = HyperInfo(h.name, h.static, default, h.span, choices)
        return out

    def _choices(self, h: ast.Hyper) -> tuple[Any, ...]:
        """`static name = one_of(a, b, ...)`: the values a static may take, the first its default."""
        call = h.default
        if not h.static:
            self.bag.error("GEO0304", f"`one_of` lists the values of a static hyperparameter; `{h.name}` is not "
                           "static", call.span, help=f"write `static {h.name} = one_of(...)`")
            return ()
        if call.kwargs:
            self.bag.error("GEO0304", "`one_of` takes the values only, no keywords", call.kwargs[0].span)
            return ()
        values = []
        for arg in call.args:
            v = self.constant(arg, f"a value of `{h.name}`")
            if v is None:
                return ()
            if isinstance(v, tuple):
                self.bag.error("GEO0304", "`one_of` lists single values (strings, numbers, booleans)", arg.span)
                return ()
            values.append((v, arg.span))
        if len(values) < 2:
            self.bag.error("GEO0304", f"`one_of` needs at least two values, found {len(values)}", call.span,
                           help=f"a single value is a plain default: `static {h.name} = ...`")
            return ()
        kinds = {"number" if static_kind(v) in ("int", "float") else static_kind(v) for v, _ in values}
        if len(kinds) > 1:
            self.bag.error("GEO0304", f"the values of `{h.name}` are of different kinds", call.span,
                           notes=[", ".join(f"{_show(v)}: {static_kind(v)}" for v, _ in values)])
            return ()
        seen: dict[Any, Span] = {}
        for v, span in values:
            key = repr(v)
            if key in seen:
                self.bag.error("GEO0304", f"`{_show(v)}` is listed twice", span,
                               secondary=[Label(seen[key], "first listed here")])
                return ()
            seen[key] = span
        return tuple(v for v, _ in values)

    def constant(self, expr: ast.Expr, what: str) -> Any:
        """Evaluates a constant expression (literals, tuples, arithmetic on them); None after an error.

        With no runtime value in scope every expression folds to a constant or reports its own error
        (an unknown name is GEO0101), so anything else is a bug in geo."""
        el = Elaborator.constant_evaluator(self.bag)
        node = el.expr(expr, el.root)
        if isinstance(node.type, Poison):
            return None
        if not node.is_const:
            raise InternalError("check", f"{what} did not fold to a constant", expr.span)
        return node.value

    # -- optimizers and their rules
    def _optimizer(self, name: str) -> OptimizerInfo | None:
        if name in self.optimizers:
            return self.optimizers[name]
        if name in self._building:
            d = self.optimizer_defs[name]
            self.bag.error("GEO0109", f"optimizer `{name}` refers to itself", _head(d))
            return None
        d = self.optimizer_defs[name]
        self._building.append(name)
        header = self.hypers(d.hypers)
        rules: list[RuleInfo] = []
        if d.step is not None:
            implicit = ast.Binder(d.step.span, (), "W", d.step.span, None)
            rules.append(self._rule(name, 0, implicit, None, d.step, header, d.span))
        for i, r in enumerate(d.rules):
            rules.append(self._rule(name, i, r.binder, r.body, r.step, header, r.span))
        self._building.pop()
        texts = sorted({self.loaded.modules[m].span.source.text for m in self.loaded.modules})
        fingerprint = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
        info = OptimizerInfo(name, d.doc, d.span, [r for r in rules if r is not None], fingerprint)
        self.optimizers[name] = info
        return info

    def _rule(self, opt: str, index: int, binder: ast.Binder, body: ast.Block | None, step: ast.StepExpr | None,
              header: dict[str, HyperInfo], span: Span) -> RuleInfo | None:
        self._binder(binder)
        view, view_args = self._view(binder)
        if body is not None:
            # The rule's own selector already chose the parameter; its body applies to whatever it chose.
            inline = ast.Binder(binder.span, (), binder.name, binder.name_span, None)
            chain = [StepUse("", inline, body, dict(header), {})]
            route = f"rule{index}"
        else:
            chain = self._chain(step)
            if chain is None:
                return None
            route = step.name if isinstance(step, ast.StepRef) else f"rule{index}"
            names = [u.name for u in chain]
            for u in chain:
                u.prefix = f"{u.name}." if len(chain) > 1 else ""
                if names.count(u.name) > 1:
                    u.prefix = f"{u.name}{chain.index(u)}."
        hypers = self._rule_hypers(chain, header, body is None)
        return RuleInfo(opt, index, binder, chain, hypers, route, span, view, view_args)

    def _binder(self, binder: ast.Binder) -> None:
        for term in binder.selector:
            if term.pattern is not None:
                if term.word != "name":
                    self.bag.error("GEO0112", f"only `name` takes a pattern, found `{term.word}`", term.span,
                                   help='write `name "*.weight"`')
                continue
            if term.word not in P.SELECTORS:
                self.bag.error("GEO0112", f"unknown parameter selector `{term.word}`", term.span,
                               help=did_you_mean(term.word, P.SELECTORS) or "selectors: " + ", ".join(P.SELECTORS),
                               notes=["a rule reads `for [selector words] NAME:`, e.g. `for hidden matrix W:`"])
        ranks = {P.SELECTORS[t.word].rank for t in binder.selector
                 if t.pattern is None and not t.negated and t.word in P.SELECTORS} - {None}
        if len(ranks) > 1:
            self.bag.error("GEO0112", "this selector asks for two different ranks at once", binder.span,
                           help="a parameter has one rank: keep one of " + ", ".join(
                               t.word for t in binder.selector if t.word in P.SELECTORS and P.SELECTORS[t.word].rank is not None))

    def _view(self, binder: ast.Binder) -> tuple[P.ViewDef | None, tuple]:
        v = binder.view
        if v is None:
            return None, ()
        view = P.VIEWS.get(v.name)
        if view is None:
            self.bag.error("GEO0113", f"unknown view `{v.name}`", v.span,
                           help=did_you_mean(v.name, P.VIEWS) or "views: " + ", ".join(P.VIEWS))
            return None, ()
        if v.kwargs or len(v.args) != view.arity:
            self.bag.error("GEO0201", f"view `{v.name}` takes {view.arity} argument{'s' if view.arity != 1 else ''}",
                           v.span)
            return None, ()
        args = tuple(self.constant(a, f"the argument of `{v.name}`") for a in v.args)
        if any(a is None for a in args):
            return None, ()
        rank = {P.SELECTORS[t.word].rank for t in binder.selector if t.word in P.SELECTORS and not t.negated} - {None}
        try:
            view.type(P.rule_type(rank.pop() if len(rank) == 1 else None), args)
        except ValueError as err:
            self.bag.error("GEO0113", str(err), v.span)
            return None, ()
        return view, args

    def _chain(self, expr: ast.StepExpr) -> list[StepUse] | None:
        if isinstance(expr, ast.Compose):
            inner, outer = self._chain(expr.inner), self._chain(expr.outer)
            return None if inner is None or outer is None else inner + outer
        ref = expr
        if ref.name in self.steps:
            self.used_steps.add(ref.name)
            d = self.steps[ref.name]
            hypers = self.hypers(d.hypers)
            uses = [StepUse(d.name, d.binder, d.body, hypers, {})]
        elif ref.name in self.optimizer_defs:
            info = self._optimizer(ref.name)
            if info is None:
                return None
            if len(info.rules) != 1 or info.rules[0].view is not None:
                self.bag.error("GEO0110", f"`{ref.name}` routes parameters with several rules; it cannot be used as a step",
                               ref.span, help="compose steps, or route to an optimizer with a single rule")
                return None
            src = info.rules[0]
            uses = [StepUse(u.name or ref.name, _merge_binders(src.binder, u.binder), u.body,
                            {k: src.hypers.get(k, h) for k, h in u.hypers.items()}, dict(u.bindings)) for u in src.chain]
        else:
            hint = did_you_mean(ref.name, list(self.steps) + list(self.optimizer_defs))
            what = "an operator, not a step" if registry.get(ref.name) else None
            self.bag.error("GEO0101", f"unknown step `{ref.name}`" if what is None else f"`{ref.name}` is {what}",
                           ref.span, help=hint or "define it with `step NAME(W; hypers):` or `use` the spec that does")
            return None
        declared = {k for u in uses for k in u.hypers}
        order = list(dict.fromkeys(k for u in uses for k in u.hypers))
        if len(ref.args) > len(order):
            self.bag.error("GEO0201", f"`{ref.name}` has {len(order)} hyperparameters, found {len(ref.args)} arguments",
                           ref.span)
            return None
        given = dict(zip(order, ref.args))
        for kw in ref.kwargs:
            if kw.name not in declared:
                self.bag.error("GEO0103", f"`{ref.name}` has no hyperparameter `{kw.name}`", kw.span,
                               help=did_you_mean(kw.name, declared) or "hyperparameters: " + ", ".join(order))
                continue
            if kw.name in given:
                self.bag.error("GEO0103", f"hyperparameter `{kw.name}` is given twice", kw.span)
                continue
            given[kw.name] = kw.value
        for name, value in given.items():
            for u in uses:
                if name not in u.hypers or name in u.bindings:
                    continue
                literal = _literal(value)
                if literal is not None:
                    # A literal sets a new default: the hyperparameter stays tunable (schedulers, kwargs).
                    old = u.hypers[name]
                    u.hypers[name] = HyperInfo(name, old.static, self._coerce(old, literal, value), value.span,
                                               old.choices)
                else:
                    u.bindings[name] = value
        return uses

    def _coerce(self, old: HyperInfo, value: Any, expr: ast.Expr) -> Any:
        if old.choices and repr(value) not in {repr(c) for c in old.choices}:
            shown = [_show(c) for c in old.choices]
            self.bag.error("GEO0304", f"`{old.name}` is one of {', '.join(shown)}; found {_show(value)}", expr.span,
                           secondary=[Label(old.span, "declared here")],
                           help=did_you_mean(_show(value), shown) if isinstance(value, str) else None)
            return old.default
        if not old.static and isinstance(value, (int, float, tuple)) and not isinstance(value, bool) \
                and not _finite(value):
            self.bag.error("GEO0302", f"`{old.name}` takes finite numbers, found {_show(value)}", expr.span,
                           secondary=[Label(old.span, "declared here")])
            return old.default
        if not old.static and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if not old.static and isinstance(value, tuple):
            return tuple(float(v) for v in value)
        if not old.static:
            self.bag.error("GEO0302", f"`{old.name}` is a runtime hyperparameter; it takes a number, found "
                           f"{static_kind(value)}", expr.span, secondary=[Label(old.span, "declared here")])
        return value

    def _rule_hypers(self, chain: list[StepUse], header: dict[str, HyperInfo], from_steps: bool) -> dict[str, HyperInfo]:
        out: dict[str, HyperInfo] = {}
        for u in chain:
            for name, h in u.hypers.items():
                if name in u.bindings:
                    continue
                if name in header and from_steps:
                    h = header[name]
                if name in out and out[name] is not h:
                    prev = out[name]
                    if prev.static != h.static:
                        self.bag.error("GEO0111", f"hyperparameter `{name}` is static in one step and runtime in another",
                                       h.span, secondary=[Label(prev.span, "declared here too")])
                    elif prev.default != h.default and name not in header:
                        self.bag.error("GEO0111", f"composed steps give `{name}` different defaults "
                                       f"({_show(prev.default)} and {_show(h.default)})", h.span,
                                       secondary=[Label(prev.span, "the other default")],
                                       help=f"declare `{name}` in the optimizer's header to choose one")
                    continue
                out[name] = h
        for name, h in header.items():
            out.setdefault(name, h)
        return out


def _merge_binders(outer: ast.Binder, inner: ast.Binder) -> ast.Binder:
    return ast.Binder(inner.span, outer.selector + inner.selector, inner.name, inner.name_span, inner.view)


def _literal(expr: ast.Expr) -> Any:
    if isinstance(expr, (ast.Number, ast.String, ast.Bool)):
        return expr.value
    if isinstance(expr, ast.Unary) and expr.op == "-" and isinstance(expr.operand, ast.Number):
        return -expr.operand.value
    if isinstance(expr, ast.TupleExpr):
        items = [_literal(i) for i in expr.items]
        return None if any(i is None for i in items) else tuple(items)
    return None


def _is_one_of(expr: ast.Expr | None) -> bool:
    return isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "one_of"


def _finite(v: Any) -> bool:
    if isinstance(v, tuple):
        return all(_finite(x) for x in v)
    return not isinstance(v, float) or math.isfinite(v)


def _show(v: Any) -> str:
    return "none" if v is REQUIRED else repr(v)


def _head(item) -> Span:
    return _head_of(item.span)


def _head_of(span: Span) -> Span:
    """The first line of a declaration, for labels."""
    text = span.text
    end = text.find("\n")
    end = span.start + (end if end >= 0 else len(text))
    return Span(span.source, span.start, code_end(span.source.text, span.start, end))  # without a comment


# ---- elaboration ---------------------------------------------------------------------------------------
@dataclass
class Var:
    kind: str        # param | grad | t | hyper | static | state | let | loop | binding
    node: Node
    span: Span
    slot: str = ""   # state slot name


@dataclass
class Scope:
    vars: dict[str, Var] = field(default_factory=dict)
    parent: "Scope | None" = None

    def lookup(self, name: str) -> Var | None:
        s: Scope | None = self
        while s is not None:
            if name in s.vars:
                return s.vars[name]
            s = s.parent
        return None

    def owner(self, name: str) -> "Scope | None":
        s: Scope | None = self
        while s is not None:
            if name in s.vars:
                return s
            s = s.parent
        return None

    def names(self) -> list[str]:
        out, s = [], self
        while s is not None:
            out.extend(s.vars)
            s = s.parent
        return out

    def clone(self) -> "Scope":
        return Scope({k: Var(v.kind, v.node, v.span, v.slot) for k, v in self.vars.items()},
                     self.parent.clone() if self.parent else None)


class _Return(Exception):
    def __init__(self, node: Node):
        self.node = node


class Elaborator:
    def __init__(self, checked: Checked | None, rule: RuleInfo | None, statics: dict[str, Any], rank: int | None,
                 bag: DiagnosticBag, active: tuple[int, ...] | None = None):
        self.checked, self.rule, self.statics, self.rank, self.bag = checked, rule, statics, rank, bag
        self.active = active
        self.graph = Graph()
        self.root = Scope()
        self.constraints: list[Constraint] = []
        self.states: list[StateSlot] = []
        self.call_stack: list[str] = []
        self.function_depth = 0
        self.in_init = False
        self.unrolled = 0  # repeat iterations unrolled so far, nested loops multiplied
        self.inlined = 0   # function calls inlined so far

    @classmethod
    def constant_evaluator(cls, bag: DiagnosticBag) -> "Elaborator":
        return cls(None, None, {}, None, bag)

    # -- the rule
    def param_type(self) -> Tensor:
        rule = self.rule
        base = P.rule_type(self.rank)
        if rule.view is not None:
            try:
                return rule.view.type(base, rule.view_args)
            except ValueError:
                return base
        return base

    def run(self) -> Program:
        rule = self.rule
        ptype = self.param_type()
        g = self.graph
        param = g.node("param", type=ptype, span=rule.binder.name_span)
        grad = g.node("grad", type=ptype, span=rule.binder.name_span)
        t = g.node("t", type=SCALAR, span=rule.span)
        hyper_scope = Scope()
        for name, h in rule.hypers.items():
            if h.static:
                value = self.statics.get(name, h.default)
                hyper_scope.vars[name] = Var("static", g.const(value, h.span), h.span)
            else:
                hyper_scope.vars[name] = Var("hyper", g.node("hyper", (), {"name": name}, type=h.type, span=h.span), h.span)
        current = param
        outputs: dict[str, Node] = {}
        for i, use in enumerate(rule.chain):
            if self.active is not None and i not in self.active:
                continue
            scope = Scope(parent=None)
            for name, h in use.hypers.items():
                if name in use.bindings:
                    node = self.expr(use.bindings[name], hyper_scope)
                    scope.vars[name] = Var("binding", node, use.bindings[name].span)
                elif name in hyper_scope.vars:
                    scope.vars[name] = hyper_scope.vars[name]
            for name, var in hyper_scope.vars.items():
                if use.name == "" and name not in scope.vars:
                    scope.vars[name] = var
            scope.vars["grad"] = Var("grad", grad, rule.binder.name_span)
            scope.vars["t"] = Var("t", t, rule.span)
            scope.vars[use.binder.name] = Var("param", current, use.binder.name_span)
            self.init_scope = Scope(dict(scope.vars))
            self.init_scope.vars[use.binder.name] = Var("param", param, use.binder.name_span)
            self.prefix = use.prefix
            self.param_name = use.binder.name
            body_scope = Scope(parent=scope)
            self.block(use.body, body_scope, top=True)
            current = scope.lookup(use.binder.name).node if use.binder.name in scope.vars else current
            for slot in [s for s in self.states if s.name.startswith(use.prefix)]:
                var = body_scope.vars.get(slot.name[len(use.prefix):])
                if var is not None and var.kind == "state":
                    outputs[slot.name] = var.node
        self._check_param(current, ptype)
        outputs = {"param": current, **{k: v for k, v in outputs.items() if not (v.op == "state" and v.attr("name") == k)}}
        return Program(rule.optimizer, rule.index, rule.text, rule.binder.name, ptype, dict(self.statics),
                       [k for k, h in rule.hypers.items() if not h.static], self.states, outputs, self.constraints,
                       rule.span)

    def _check_param(self, node: Node, ptype: Tensor) -> None:
        if isinstance(node.type, Poison):
            return
        ok = isinstance(node.type, Tensor)
        if ok:
            try:
                merged = broadcast(ptype, node.type, self._constraints_for(node.span, "the new parameter value"))
                ok = merged.shape == ptype.shape or ptype.shape is None
            except ShapeError:
                ok = False
        if not ok:
            self.bag.error("GEO0205", f"the new value of `{self.rule.binder.name}` has type `{node.type.show()}`, but the "
                           f"parameter is `{ptype.show()}`", node.span, "computed here",
                           help="the step must produce a value of the parameter's shape")

    def _constraints_for(self, span: Span, what: str) -> list:
        outer = self

        class _Sink(list):
            def append(self, pair):  # type: ignore[override]
                a, b = pair
                outer.constraints.append(Constraint(a, b, span, what))
        return _Sink()

    # -- statements
    def block(self, block: ast.Block, scope: Scope, top: bool = False) -> None:
        for stmt in block.stmts:
            self.stmt(stmt, scope, top)

    def stmt(self, s: ast.Stmt, scope: Scope, top: bool) -> None:
        if isinstance(s, ast.StateDecl):
            self.state_decl(s, scope, top)
        elif isinstance(s, ast.Let):
            node = self.expr(s.value, scope)
            if s.name in scope.vars:
                self.bag.error("GEO0104", f"`{s.name}` is already defined in this block", s.span,
                               secondary=[Label(scope.vars[s.name].span, "defined here")],
                               help=f"assign with `{s.name} = ...`")
                return
            if s.name in BUILTINS or (scope.lookup(s.name) and scope.lookup(s.name).kind in ("param", "hyper", "static", "state")):
                what = scope.lookup(s.name).kind if scope.lookup(s.name) else "builtin"
                self.bag.error("GEO0104", f"`let {s.name}` would hide {_kind_word(what)} `{s.name}`", s.span,
                               help="choose another name")
                return
            scope.vars[s.name] = Var("let", node, s.span)
        elif isinstance(s, ast.Assign):
            self.assign(s, scope)
        elif isinstance(s, ast.If):
            self.if_stmt(s, scope)
        elif isinstance(s, ast.Repeat):
            self.repeat(s, scope)
        elif isinstance(s, ast.Return):
            if self.function_depth == 0:
                self.bag.error("GEO0108", "`return` outside a function", s.span,
                               help="a step's result is the value assigned to its parameter")
                self.expr(s.value, scope)  # still check the value: its errors are errors too
                return
            raise _Return(self.expr(s.value, scope))
        elif isinstance(s, ast.Pass):
            pass

    def state_decl(self, s: ast.StateDecl, scope: Scope, top: bool) -> None:
        if self.function_depth or not top or self.rule is None:
            self.bag.error("GEO0106", "`state` is declared only at the top level of a step", s.span,
                           help="move the declaration to the start of the rule or step body")
            return self._declare_poisoned(s, scope)
        if scope.lookup(s.name) is not None or s.name in BUILTINS:
            prev = scope.lookup(s.name)
            self.bag.error("GEO0104", f"`{s.name}` is already defined", s.span,
                           secondary=[Label(prev.span, "defined here")] if prev and prev.span.source.text else [])
            return
        if s.name in RESERVED_STATES:
            self.bag.error("GEO0104", f"`{s.name}` cannot name a state: {RESERVED_STATES[s.name]}", s.span,
                           help=f"rename it, e.g. `{s.name}_`")
            return self._declare_poisoned(s, scope)
        dtype = None
        if s.dtype is not None:
            if s.dtype.id not in STATE_DTYPES:
                self.bag.error("GEO0206", f"unknown storage dtype `{s.dtype.id}`", s.dtype.span,
                               help=did_you_mean(s.dtype.id, STATE_DTYPES) or "one of " + ", ".join(STATE_DTYPES))
            else:
                dtype = s.dtype.id
        self.in_init = True
        init = self.expr(s.init, Scope(dict(self.init_scope.vars), parent=scope))  # lets/states: GEO0114
        self.in_init = False
        if isinstance(init.type, Poison):
            return self._declare_poisoned(s, scope)
        if isinstance(init.type, Static):
            if init.type.kind not in ("int", "float", "bool"):
                self.bag.error("GEO0202", f"a state holds numbers or tensors, found `{init.type.show()}`", s.init.span)
                return self._declare_poisoned(s, scope)
            param = self.init_scope.lookup(self.param_name).node
            value = self.graph.const(float(init.value), s.init.span)
            init = self.graph.node("scalar_like", (param, value), type=Tensor((), False, "param"), span=s.init.span)
            stype: Type = init.type if dtype is None else Tensor((), False, dtype)
        elif isinstance(init.type, TupleT):
            self.bag.error("GEO0202", "a state holds a number or a tensor, not a tuple", s.init.span)
            return self._declare_poisoned(s, scope)
        else:
            stype = init.type if not isinstance(init.type, Tensor) or dtype is None else Tensor(
                init.type.shape, init.type.batched, dtype)
        slot = self.prefix + s.name
        self.states.append(StateSlot(slot, stype, dtype, init, s.span))
        node = self.graph.node("state", (), {"name": slot}, type=stype, span=s.span)
        scope.vars[s.name] = Var("state", node, s.span, slot)

    def _declare_poisoned(self, s: ast.StateDecl, scope: Scope) -> None:
        """A state whose declaration failed still names something: its uses are not reported again."""
        scope.vars.setdefault(s.name, Var("state", self.poison(s.span), s.span))

    def assign(self, s: ast.Assign, scope: Scope) -> None:
        var = scope.lookup(s.name)
        node = self.expr(s.value, scope)
        if var is None:
            self.bag.error("GEO0101", f"cannot assign to `{s.name}`: it is not defined", s.span.to(s.span),
                           help=did_you_mean(s.name, scope.names()) or f"declare it with `let {s.name} = ...` or "
                                                                        f"`state {s.name} = ...`")
            return
        if var.kind in ("hyper", "static", "grad", "t", "loop", "binding"):
            self.bag.error("GEO0107", f"cannot assign to {_kind_word(var.kind)} `{s.name}`", s.span,
                           secondary=[Label(var.span, "declared here")] if var.span.source.text and var.kind != "t" else [],
                           help=f"introduce a new name: `let {s.name}_new = ...`")
            return
        if isinstance(node.type, Poison):
            scope.owner(s.name).vars[s.name] = Var(var.kind, node, var.span, var.slot)
            return
        if var.kind in ("param", "state"):
            node = self._fit(node, var, s)
        owner = scope.owner(s.name)
        owner.vars[s.name] = Var(var.kind, node, var.span, var.slot)

    def _fit(self, node: Node, var: Var, s: ast.Assign) -> Node:
        """A new value for the parameter or a state must have its declared type."""
        want = var.node.type
        have = node.type
        if isinstance(want, Tensor) and isinstance(have, Static) and have.kind in ("int", "float", "bool"):
            return node  # a constant broadcasts to the whole tensor
        bad = False
        if isinstance(want, Tensor):
            if not isinstance(have, (Tensor, type(SCALAR))):
                bad = True
            elif isinstance(have, Tensor) and want.shape is not None:
                try:
                    merged = broadcast(want, have, self._constraints_for(s.span, f"the new value of `{s.name}`"))
                    bad = merged.shape != want.shape
                except ShapeError:
                    bad = True
        elif want == SCALAR and isinstance(have, Tensor):
            bad = True
        if bad:
            self.bag.error("GEO0205", f"`{s.name}` is `{want.show()}`, but the new value is `{have.show()}`", s.value.span,
                           "this value", secondary=[Label(var.span, "declared here")] if var.span.source.text else [])
            return self.poison(s.value.span)  # reported once: the end-of-step check must not repeat it
        return node

    def if_stmt(self, s: ast.If, scope: Scope) -> None:
        chosen: ast.Block | None = None
        decided = False
        for test, body in s.branches:
            node = self.expr(test, scope)
            value = self.static_value(node, test, "an `if` condition",
                                      "use `where(cond, a, b)` for an elementwise runtime choice")
            if value is _NOT_STATIC:
                decided = True  # an error was reported; check the bodies without choosing
                chosen = None
            elif not decided and bool(value):
                chosen, decided = body, True
        if not decided:
            chosen = s.orelse
        for body in [b for _, b in s.branches] + ([s.orelse] if s.orelse else []):
            if body is chosen:
                self.block(body, Scope(parent=scope))
            else:
                self._check_only(body, scope)

    def _check_only(self, body: ast.Block, scope: Scope) -> None:
        """Checks a branch not taken, discarding its effects.

        Its names, arities and static arguments are checked; its shape and type errors are not reported,
        because a static branch often exists for another parameter rank (`if ndim(W) >= 2: ... msign ...`):
        those are checked in the specializations that take the branch."""
        saved_states, saved_bag = list(self.states), self.bag
        self.bag = DiagnosticBag()
        try:
            self.block(body, Scope(parent=scope.clone()))
        except _Return:
            pass
        finally:
            self.states, branch_bag, self.bag = saved_states, self.bag, saved_bag
        self.bag.extend(d for d in branch_bag.items if d.code not in TYPE_CODES)

    def repeat(self, s: ast.Repeat, scope: Scope) -> None:
        node = self.expr(s.count, scope)
        value = self.static_value(node, s.count, "a `repeat` count")
        if value is _NOT_STATIC:
            self._check_only(s.body, scope)
            return
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_UNROLL:
            self.bag.error("GEO0305", f"a `repeat` count must be an integer in [0, {MAX_UNROLL}], found {value!r}",
                           s.count.span)
            return
        self.unrolled += value
        if self.unrolled > MAX_UNROLL_TOTAL:
            self.bag.error("GEO0305", f"unrolling these `repeat`s gives more than {MAX_UNROLL_TOTAL} iterations",
                           s.count.span, help="nested `repeat`s multiply; use fewer iterations")
            return
        if value == 0:
            self._check_only(s.body, scope)
        for i in range(value):
            inner = Scope(parent=scope)
            if s.var:
                inner.vars[s.var] = Var("loop", self.graph.const(i, s.span), s.span)
            self.block(s.body, inner)

    def static_value(self, node: Node, expr: ast.Expr, what: str, help: str | None = None) -> Any:
        if isinstance(node.type, Poison):
            return _NOT_STATIC
        if node.is_const:
            return node.value
        self.bag.error("GEO0301", f"{what} must be static, found a runtime `{node.type.show()}`", expr.span,
                       "known only at run time", secondary=self._runtime_origin(expr),
                       help=help or "make the value a static hyperparameter (`static NAME = ...`) or a literal")
        return _NOT_STATIC

    def _runtime_origin(self, expr: ast.Expr) -> list[Label]:
        if self.rule is None:
            return []
        labels = []
        for name in _names_in(expr):
            h = self.rule.hypers.get(name)
            if h is not None and not h.static:
                labels.append(Label(h.span, f"`{name}` is a runtime hyperparameter"))
        return labels

    # -- expressions
    def expr(self, e: ast.Expr, scope: Scope) -> Node:
        g = self.graph
        if isinstance(e, ast.Number):
            return g.const(e.value, e.span)
        if isinstance(e, ast.String):
            return g.const(e.value, e.span)
        if isinstance(e, ast.Bool):
            return g.const(e.value, e.span)
        if isinstance(e, ast.TupleExpr):
            items = [self.expr(i, scope) for i in e.items]
            if any(isinstance(i.type, Poison) for i in items):
                return self.poison(e.span)
            if all(i.is_const for i in items):
                return g.const(tuple(i.value for i in items), e.span)
            self.bag.error("GEO0301", "a tuple must be made of static values", e.span,
                           help="tuples give static arguments such as `coeffs`; runtime values stay separate")
            return self.poison(e.span)
        if isinstance(e, ast.Name):
            return self.name(e, scope)
        if isinstance(e, ast.Binary):
            left, right = self.expr(e.left, scope), self.expr(e.right, scope)
            return self.apply(BINARY_OPS[e.op], [(left, e.left.span), (right, e.right.span)], {}, e.span, symbol=e.op)
        if isinstance(e, ast.Unary):
            operand = self.expr(e.operand, scope)
            if e.op == "+":
                return operand
            return self.apply("neg" if e.op == "-" else "not", [(operand, e.operand.span)], {}, e.span, symbol=e.op)
        if isinstance(e, ast.Cond):
            test = self.expr(e.test, scope)
            value = self.static_value(test, e.test, "the condition of `a if cond else b`",
                                      "use `where(cond, a, b)` for an elementwise runtime choice")
            then, orelse = self.expr(e.then, scope), self.expr(e.orelse, scope)
            if value is _NOT_STATIC:
                return self.poison(e.span)
            return then if value else orelse
        if isinstance(e, ast.Attr):
            value = self.expr(e.value, scope)
            if e.name == "T":
                return self.apply("transpose", [(value, e.value.span)], {}, e.span, symbol=".T")
            self.bag.error("GEO0105", f"unknown attribute `.{e.name}`", e.span,
                           help="`.T` (transpose) is the only attribute; shape facts are `rows(x)`, `cols(x)`, "
                                "`numel(x)`, `ndim(x)`")
            return self.poison(e.span)
        if isinstance(e, ast.Index):
            return self.index(e, scope)
        if isinstance(e, ast.Call):
            return self.call(e, scope)
        raise AssertionError(f"unhandled expression {type(e).__name__}")

    def poison(self, span: Span) -> Node:
        return self.graph.node("error", (), {}, type=POISON_T, span=span)

    def name(self, e: ast.Name, scope: Scope) -> Node:
        var = scope.lookup(e.id)
        if var is not None:
            if self.in_init and var.kind in ("state", "let"):
                self.bag.error("GEO0114", f"a state's initial value cannot read `{e.id}`", e.span,
                               help="initial values are built from the parameter and hyperparameters, e.g. `zeros_like(W)`")
                return self.poison(e.span)
            return var.node
        if self.checked is not None and e.id in self.checked.functions:
            self.bag.error("GEO0101", f"`{e.id}` is a function; call it", e.span, help=f"write `{e.id}(...)`")
        elif registry.get(e.id) is not None:
            self.bag.error("GEO0101", f"`{e.id}` is an operator; call it", e.span, help=f"write `{e.id}(...)`")
        else:
            hint = did_you_mean(e.id, scope.names() + list(BUILTINS))
            notes = [] if self.rule is None else [
                "in a step: the parameter, `grad`, `t` (the step count), hyperparameters, states and `let`s"]
            if self.rule is None and e.id not in BUILTINS:
                notes = ["only literals are allowed here"]
            self.bag.error("GEO0101", f"unknown name `{e.id}`", e.span, "not found in this scope", help=hint, notes=notes)
        return self.poison(e.span)

    def index(self, e: ast.Index, scope: Scope) -> Node:
        base = self.expr(e.value, scope)
        idx = self.expr(e.index, scope)
        if isinstance(base.type, Poison) or isinstance(idx.type, Poison):
            return self.poison(e.span)
        i = self.static_value(idx, e.index, "an index")
        if i is _NOT_STATIC:
            return self.poison(e.span)
        size = len(base.value) if base.is_const and isinstance(base.value, tuple) else \
            len(base.type.items) if isinstance(base.type, TupleT) else None
        if size is None:
            self.bag.error("GEO0202", f"only tuples can be indexed, found `{base.type.show()}`", e.value.span)
            return self.poison(e.span)
        if not isinstance(i, int) or isinstance(i, bool) or not -size <= i < size:
            self.bag.error("GEO0206", f"index {i!r} is out of range for a tuple of {size}", e.index.span)
            return self.poison(e.span)
        if base.is_const:
            return self.graph.const(base.value[i], e.span)
        return self.graph.node("hyper", (), {"name": base.attr("name"), "index": i % size}, type=SCALAR, span=e.span)

    def call(self, e: ast.Call, scope: Scope) -> Node:
        name = e.func.id
        args = [(self.expr(a, scope), a.span) for a in e.args]
        kwargs = {}
        for kw in e.kwargs:
            if kw.name in kwargs:
                self.bag.error("GEO0103", f"argument `{kw.name}` is given twice", kw.span)
                continue
            kwargs[kw.name] = (self.expr(kw.value, scope), kw.value.span)
        if self.checked is not None and name in self.checked.functions:
            return self.inline(self.checked.functions[name], args, kwargs, e)
        if self.checked is not None and (name in self.checked.steps or name in self.checked.optimizers):
            self.bag.error("GEO0110", f"`{name}` is a step; steps are composed, not called", e.func.span,
                           help=f"compose it at rule level: `for W = {name} ∘ ...`")
            return self.poison(e.span)
        if registry.get(name) is None:
            candidates = registry.names() + (list(self.checked.functions) if self.checked else [])
            self.bag.error("GEO0102", f"unknown operator `{name}`", e.func.span, "not an operator or function",
                           help=did_you_mean(name, candidates) or "`geo doc` lists the operators")
            return self.poison(e.span)
        return self.apply(name, args, kwargs, e.span, name_span=e.func.span)

    def apply(self, name: str, args: list[tuple[Node, Span]], kwargs: dict[str, tuple[Node, Span]], span: Span,
              symbol: str | None = None, name_span: Span | None = None) -> Node:
        """Binds arguments to a registry operator, checks them with its type rule, folds static values."""
        opdef: OpDef = registry.get(name)
        shown = f"`{symbol}`" if symbol else f"`{name}`"
        bound = self.bind(opdef.params, args, kwargs, shown, opdef.signature(), name_span or span)
        if bound is None:
            return self.poison(span)
        if any(isinstance(n.type, Poison) for n, _ in bound.values()):
            return self.poison(span)
        runtime = any(not bound[p.name][0].is_const for p in opdef.value_params)
        for p in opdef.value_params if runtime else ():  # a runtime argument is a number or a tensor (static
            node, arg_span = bound[p.name]               # calls fold: `form == "code"` compares strings)
            if isinstance(node.type, TupleT) or (isinstance(node.type, Static) and node.type.kind in ("str", "tuple")):
                self.bag.error("GEO0202", f"argument `{p.name}` of {shown} takes a number or a tensor, found "
                               f"`{node.type.show()}`", arg_span, notes=[f"signature: {opdef.signature()}"])
                return self.poison(span)
        attrs: dict[str, Any] = {}
        values: list[tuple[Node, Span]] = []
        static_failed = False
        for p in opdef.params:
            node, arg_span = bound[p.name]
            if p.static:
                if not node.is_const:
                    self.bag.error("GEO0301", f"argument `{p.name}` of `{name}` must be static, found a runtime "
                                   f"`{node.type.show()}`", arg_span, "known only at run time",
                                   secondary=self._runtime_origin_span(arg_span),
                                   help="pass a literal or a `static` hyperparameter")
                    if p.required:
                        return self.poison(span)
                    static_failed = True  # keep checking the call with the default, to report its other errors
                    attrs[p.name] = p.default
                    continue
                attrs[p.name] = node.value
            else:
                values.append((node, arg_span))
        types = [n.type for n, _ in values]
        pending: list = []
        try:
            result = opdef.type_rule(types, attrs, pending)
        except ShapeError as err:
            where = values[err.arg][1] if err.arg is not None and err.arg < len(values) else span
            label = f"this has type `{types[err.arg].show()}`" if err.arg is not None and err.arg < len(types) else ""
            self.bag.error(err.code, _op_message(shown, err.message), where, label, help=err.help,
                           notes=[err.note] if err.note else [])
            return self.poison(span)
        if static_failed:
            return self.poison(span)
        for a, b in pending:
            self.constraints.append(Constraint(a, b, span, f"{shown} needs `{a}` == `{b}`"))
        if opdef.static_value is not None:
            known = opdef.static_value(types)
            if known is not None:
                return self.graph.const(known, span)
        if isinstance(result, Static):
            return self.fold(opdef, [n for n, _ in values], attrs, span, shown)
        # A static bool used as a runtime value is the number 0 or 1 (torch cannot compute `true - x`), and an
        # integer beyond int64 a float (torch cannot convert it).
        args = tuple(self.graph.const(float(n.value), n.span) if n.is_const and isinstance(n.value, int) and (
            isinstance(n.value, bool) or abs(n.value) >= 2 ** 63) else n for n, _ in values)
        return self.graph.node(name, args, attrs, type=result, span=span)

    def _runtime_origin_span(self, span: Span) -> list[Label]:
        if self.rule is None:
            return []
        h = self.rule.hypers.get(span.text.strip())
        return [Label(h.span, f"`{h.name}` is a runtime hyperparameter")] if h is not None and not h.static else []

    def fold(self, opdef: OpDef, values: list[Node], attrs: dict[str, Any], span: Span, shown: str) -> Node:
        raw = [n.value for n in values]
        if opdef.name == "pow" and _too_large_power(raw):  # 2^2^2^2^2^2 would not finish
            self.bag.error("GEO0207", f"{shown} cannot be evaluated on these static values: the result is too large", span)
            return self.poison(span)
        try:
            if opdef.fold is not None:
                value = opdef.fold(*raw)
            else:
                value = opdef.apply(raw, attrs, SCALAR)
        except TypeError:
            found = " and ".join(f"`{n.type.show()}`" for n in values)
            self.bag.error("GEO0207", f"{shown} cannot be applied to {found}", span)
            return self.poison(span)
        except OverflowError:
            self.bag.error("GEO0207", f"{shown} cannot be evaluated on these static values: the result is too large", span)
            return self.poison(span)
        except (ZeroDivisionError, ValueError) as err:
            self.bag.error("GEO0207", f"{shown} cannot be evaluated on these static values: {err}", span)
            return self.poison(span)
        if isinstance(value, int) and value.bit_length() > 1000:
            self.bag.error("GEO0207", f"{shown} cannot be evaluated on these static values: the result is too large", span)
            return self.poison(span)
        if isinstance(value, float) and value.is_integer() and all(isinstance(r, int) for r in raw) \
                and opdef.name in ("add", "sub", "mul", "neg", "max", "min", "pow", "abs") and not isinstance(value, bool):
            value = int(value)
        return self.graph.const(value, span)

    def bind(self, params, args, kwargs, shown: str, signature: str, span: Span,
             defaults: dict[str, tuple[Node, Span]] | None = None) -> dict[str, tuple[Node, Span]] | None:
        bound: dict[str, tuple[Node, Span]] = {}
        names = [p.name for p in params]
        if len(args) > len(params):
            self.bag.error("GEO0201", f"{shown} takes at most {len(params)} argument{'s' if len(params) != 1 else ''}, "
                           f"found {len(args)}", args[len(params)][1], "unexpected argument",
                           notes=[f"signature: {signature}"])
            return None
        for p, a in zip(params, args):
            bound[p.name] = a
        ok = True
        for k, v in kwargs.items():
            if k not in names:
                self.bag.error("GEO0103", f"{shown} has no argument `{k}`", v[1],
                               help=did_you_mean(k, names) or f"signature: {signature}")
                ok = False
            elif k in bound:
                self.bag.error("GEO0103", f"argument `{k}` of {shown} is given twice", v[1])
                ok = False
            else:
                bound[k] = v
        missing = []
        for p in params:
            if p.name not in bound:
                if defaults and p.name in defaults:
                    bound[p.name] = defaults[p.name]
                elif p.required:
                    missing.append(f"`{p.name}`")
                else:
                    bound[p.name] = (self.graph.const(p.default, span), span)
        if missing:
            listed = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
            self.bag.error("GEO0201", f"{shown} is missing the argument{'s' if len(missing) > 1 else ''} {listed}",
                           span, notes=[f"signature: {signature}"])
            ok = False
        return bound if ok else None

    def inline(self, fn: ast.FunctionDef, args, kwargs, call: ast.Call) -> Node:
        if fn.name in self.call_stack:
            self.bag.error("GEO0109", f"`{fn.name}` calls itself", call.span,
                           notes=["functions are inlined, so they cannot recurse"],
                           help="unroll with `repeat N:` instead")
            return self.poison(call.span)
        if len(self.call_stack) >= MAX_INLINE_DEPTH:
            self.bag.error("GEO0109", f"calling `{fn.name}` nests function calls more than {MAX_INLINE_DEPTH} deep",
                           call.span, notes=["functions are inlined; the chain of calls must stay short"])
            return self.poison(call.span)
        self.inlined += 1
        if self.inlined > MAX_INLINE_TOTAL + 1:
            return self.poison(call.span)  # reported once, below
        if self.inlined > MAX_INLINE_TOTAL:
            self.bag.error("GEO0109", f"inlining `{fn.name}` here gives more than {MAX_INLINE_TOTAL} function calls "
                           "in one rule", call.span, notes=["functions are inlined at every call: a function that "
                                                            "calls another twice doubles the work at each level"],
                           help="compute the value once with `let` and reuse it")
            return self.poison(call.span)
        params = [registry.Param(p.name, False) for p in fn.params]
        defaults = {p.name: (self.expr(p.default, Scope()), p.default.span) for p in fn.params if p.default is not None}
        bound = self.bind(params, args, kwargs, f"`{fn.name}`", f"{fn.name}({', '.join(p.name for p in fn.params)})",
                          call.func.span, defaults)
        if bound is None:
            return self.poison(call.span)
        scope = Scope()
        for p in fn.params:
            scope.vars[p.name] = Var("let", bound[p.name][0], p.span)
        self.call_stack.append(fn.name)
        self.function_depth += 1
        saved_init, self.in_init = self.in_init, False
        try:
            self.block(fn.body, Scope(parent=scope))
            self.bag.error("GEO0108", f"function `{fn.name}` ends without `return`", _head(fn),
                           help="end the function with `return EXPR`")
            result = self.poison(call.span)
        except _Return as ret:
            result = ret.node
        finally:
            self.call_stack.pop()
            self.function_depth -= 1
            self.in_init = saved_init
        return result


class _NotStatic:
    pass


_NOT_STATIC = _NotStatic()


def _kind_word(kind: str) -> str:
    return {"hyper": "the runtime hyperparameter", "static": "the static hyperparameter", "grad": "the gradient",
            "t": "the step count", "loop": "the loop variable", "binding": "the bound hyperparameter",
            "param": "the parameter", "state": "the state", "let": "the local", "builtin": "the builtin"}.get(kind, kind)


_PREDICATES = {"needs", "reduces", "expected", "expects", "takes", "has", "is", "cannot", "must", "does", "gives"}


def _op_message(shown: str, message: str) -> str:
    """`msign` needs a matrix ... (a type rule's predicate), or `msign`: unknown schedule ... (a sentence)."""
    if message.startswith(shown):
        return message
    return f"{shown} {message}" if message.split(" ", 1)[0] in _PREDICATES else f"{shown}: {message}"


def _too_large_power(raw: list[Any]) -> bool:
    """Whether base ^ exponent of static numbers has more than 1000 bits (checked before computing it)."""
    if len(raw) != 2 or not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in raw):
        return False
    base, exponent = raw
    return abs(base) > 1 and exponent > 0 and exponent * math.log2(abs(base)) > 1000


def _names_in(expr: ast.Expr) -> list[str]:
    out = []
    stack: list[Any] = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, ast.Name):
            out.append(e.id)
        elif isinstance(e, ast.Node):
            for v in vars(e).values():
                if isinstance(v, ast.Node):
                    stack.append(v)
                elif isinstance(v, tuple):
                    stack.extend(x for x in v if isinstance(x, ast.Node))
    return out


__all__ = ["check", "elaborate", "Checked", "OptimizerInfo", "RuleInfo", "HyperInfo", "GeoError", "Diagnostic"]
