"""Declaration resolution: a loaded spec's AST → the spec model (`compiler/spec.py`).

`check(loaded)` resolves every name (definitions, `use`d specs, the operator registry), assembles each
optimizer's rules and hyperparameters, and elaborates every rule once with its default static values,
collecting *all* errors of the file.

Assembling a rule resolves its step expression (`adamw ∘ cautious`) into a chain of steps in execution order,
each with its own state namespace (`adamw.`, `cautious.`) when there are several; arguments given to a step
either set a new default (a literal: the hyperparameter stays tunable) or bind it to an expression over the
rule's own hyperparameters. The rule exposes the union of its steps' hyperparameters, and the optimizer's
header decides between steps that disagree on a default.
"""
from __future__ import annotations

import difflib
import hashlib
import math
from dataclasses import replace
from typing import Any

from ..dsl import ast
from ..dsl.diagnostics import DiagnosticBag, InternalError, Label, did_you_mean
from ..dsl.loader import Loaded, stdlib_definitions
from ..dsl.source import Span
from .binding import SELECTORS, VIEWS, ViewDef, implied_ranks, rule_type, selector_rank
from .elaborate import Elaborator, Poison, Var, check_rule
from .fold import FoldBudget
from .ops import registry
from .spec import (ACROSS, BUILTINS, REQUIRED, RESERVED_HYPERS, Checked, HyperInfo, Interval, OptimizerInfo, RuleInfo,
                   StepUse)
from .types import static_kind


# How deep optimizers may be made of optimizers (`optimizer b = a`, `optimizer c = b`, ...): each level recurses.
MAX_OPTIMIZER_DEPTH = 64


def check(loaded: Loaded) -> Checked:
    """Resolves and checks a loaded spec; raises GeoError with every diagnostic found."""
    bag = DiagnosticBag()
    checker = _Assembler(loaded, bag)
    checked = checker.run()
    bag.raise_if_errors()
    acrosses = [opt.across for opt in checked.optimizers.values() if opt.across is not None]
    for rule in acrosses + [r for opt in checked.optimizers.values() for r in opt.rules] + checked.standalone:
        check_rule(checked, rule, rule.statics(), bag, checker.budget)
    bag.raise_if_errors()
    return checked



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
        self.budget = FoldBudget()  # one for everything the check folds: defaults, ranges, every rule

    def run(self) -> Checked:
        for mod_name in self.loaded.order:
            module = self.loaded.modules[mod_name]
            for item in module.items:
                if isinstance(item, ast.Use):
                    continue
                if item.name in self.defined_at:
                    first = self.defined_at[item.name]
                    if first.source is item.span.source or mod_name == self.loaded.order[-1]:
                        self.bag.error("GEO0104", f"`{item.name}` is defined twice", item.span.head(), "defined again here",
                                       secondary=[Label(first.head(), "first defined here")],
                                       help="rename one of them")
                    continue
                if registry.get(item.name) is not None and isinstance(item, ast.FunctionDef):
                    self.bag.error("GEO0104", f"`{item.name}` is an operator; a function cannot take its name",
                                   item.span.head(), help=f"rename the function, e.g. `my_{item.name}`")
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
            bounds = None
            if h.range is not None:
                bounds = self._range(h, default, choices)
                if bounds is None:
                    continue
            out[h.name] = HyperInfo(h.name, h.static, default, h.span, choices, bounds)
        return out

    def _range(self, h: ast.Hyper, default: Any, choices: tuple[Any, ...]) -> Interval | None:
        """`name = default in [lo, hi)`: the declared range, after checking that it is one (numeric ends, not
        empty), that the hyperparameter is a number (or a tuple of them), and that its default and choices lie
        in it; None after an error. `inf` names infinity in the ends."""
        r = h.range
        kinds = [default] if default is not REQUIRED else []
        kinds += list(choices)
        if any(isinstance(v, (bool, str)) or (isinstance(v, tuple) and not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)) for v in kinds):
            self.bag.error("GEO0306", f"a range bounds a number; `{h.name}` is a {static_kind(kinds[0])}", r.span,
                           help="declare the values a string or bool may take with `one_of(...)`")
            return None
        ends = []
        for expr in (r.lo, r.hi):
            el = Elaborator.constant_evaluator(self.bag, self.budget)
            el.root.vars["inf"] = Var("static", el.graph.const(math.inf, expr.span), expr.span)
            node = el.expr(expr, el.root)
            if isinstance(node.type, Poison):
                return None
            if not node.is_const:
                raise InternalError("check", "a range's end did not fold to a constant", expr.span)
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                self.bag.error("GEO0306", f"the ends of a range are numbers, found {_show(v)}", expr.span)
                return None
            ends.append(float(v))
        bounds = Interval(ends[0], ends[1], r.lo_closed, r.hi_closed)
        if bounds.empty():
            self.bag.error("GEO0306", f"the range {bounds.show()} of `{h.name}` holds no value", r.span,
                           help="write the low end first; `[a, a]` holds a alone")
            return None
        for v in kinds:
            outside = HyperInfo(h.name, h.static, v, h.span, range=bounds).out_of_range(v)
            if outside is not None:
                what = "default" if v is default else "choice"
                self.bag.error("GEO0306", f"the {what} of `{outside[0]}`, {outside[1]!r}, is outside its range "
                               f"{bounds.show()}", h.default.span if h.default is not None else h.span,
                               secondary=[Label(r.span, "the range")])
                return None
        return bounds

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
        el = Elaborator.constant_evaluator(self.bag, self.budget)
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
            self.bag.error("GEO0109", f"optimizer `{name}` refers to itself", d.span.head())
            return None
        if len(self._building) >= MAX_OPTIMIZER_DEPTH:  # building one recurses into the optimizers it is made of
            d = self.optimizer_defs[name]
            self.bag.error("GEO0109", f"optimizer `{name}` is built from optimizers nested more than "
                           f"{MAX_OPTIMIZER_DEPTH} deep", d.span.head(),
                           notes=[f"the chain: {' <- '.join(self._building[:3])} <- ... <- {self._building[-1]} "
                                  f"<- {name}"], help="compose the steps themselves instead of optimizers of optimizers")
            return None
        d = self.optimizer_defs[name]
        self._building.append(name)
        header = self.hypers(d.hypers)
        rules: list[RuleInfo] = []
        if d.step is not None:
            implicit = ast.Binder(d.step.span, (), "W", d.step.span, None)
            rules.append(self._rule(name, 0, implicit, None, d.step, header, d.span))
        for i, r in enumerate(r for r in d.rules if isinstance(r, ast.Rule)):
            rules.append(self._rule(name, i, r.binder, r.body, r.step, header, r.span))
        across, exports = self._across(name, [r for r in d.rules if isinstance(r, ast.Across)], header)
        self._building.pop()
        texts = sorted({self.loaded.modules[m].span.source.text for m in self.loaded.modules})
        fingerprint = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
        info = OptimizerInfo(name, d.doc, d.span, [r for r in rules if r is not None], fingerprint, across, exports)
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

    def _across(self, opt: str, blocks: list[ast.Across], header: dict[str, HyperInfo]
                ) -> tuple[RuleInfo | None, tuple[str, ...]]:
        """The optimizer's `across` block (at most one) as a rule of its own, and the names it gives the rules:
        its top-level `let`s and `state`s."""
        if not blocks:
            return None, ()
        for extra in blocks[1:]:
            self.bag.error("GEO0104", "an optimizer has one `across` block", extra.span.head(),
                           secondary=[Label(blocks[0].span.head(), "the first one")],
                           help="compute every optimizer-level value in one block")
        block = blocks[0]
        self._binder(block.binder)
        if block.binder.view is not None:
            self.bag.error("GEO0113", "an `across` block takes no view: its parameter is the vector of the layers",
                           block.binder.view.span)
        exports: list[str] = []
        for stmt in block.body.stmts:
            if isinstance(stmt, (ast.Let, ast.StateDecl)) and stmt.name not in exports:
                if stmt.name in header:
                    self.bag.error("GEO0104", f"`{stmt.name}` names a hyperparameter of `{opt}` and an `across` value",
                                   stmt.span, secondary=[Label(header[stmt.name].span, "the hyperparameter")],
                                   help="rename the value: every rule reads both by name")
                    continue
                exports.append(stmt.name)
        binder = ast.Binder(block.binder.span, (), block.binder.name, block.binder.name_span, None)
        use = StepUse("", binder, block.body, dict(header), {})
        return RuleInfo(opt, -1, block.binder, [use], dict(header), ACROSS, block.span), tuple(exports)

    def _binder(self, binder: ast.Binder) -> None:
        for term in binder.selector:
            if term.pattern is not None:
                if term.word != "name":
                    self.bag.error("GEO0112", f"only `name` takes a pattern, found `{term.word}`", term.span,
                                   help='write `name "*.weight"`')
                continue
            if term.word not in SELECTORS:
                self.bag.error("GEO0112", f"unknown parameter selector `{term.word}`", term.span,
                               help=did_you_mean(term.word, SELECTORS) or "selectors: " + ", ".join(SELECTORS),
                               notes=["a rule reads `for [selector words] NAME:`, e.g. `for hidden matrix W:`"])
        if len(implied_ranks(binder.selector)) > 1:
            self.bag.error("GEO0112", "this selector asks for two different ranks at once", binder.span,
                           help="a parameter has one rank: keep one of " + ", ".join(
                               t.word for t in binder.selector if t.word in SELECTORS and SELECTORS[t.word].rank is not None))

    def _view(self, binder: ast.Binder) -> tuple[ViewDef | None, tuple]:
        v = binder.view
        if v is None:
            return None, ()
        view = VIEWS.get(v.name)
        if view is None:
            self.bag.error("GEO0113", f"unknown view `{v.name}`", v.span,
                           help=did_you_mean(v.name, VIEWS) or "views: " + ", ".join(VIEWS))
            return None, ()
        if v.kwargs or len(v.args) != view.arity:
            self.bag.error("GEO0201", f"view `{v.name}` takes {view.arity} argument{'s' if view.arity != 1 else ''}",
                           v.span)
            return None, ()
        args = tuple(self.constant(a, f"the argument of `{v.name}`") for a in v.args)
        if any(a is None for a in args):
            return None, ()
        try:
            view.type(rule_type(selector_rank(binder.selector)), args)
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
            if info is None or not info.rules:  # its own errors are reported already
                return None
            if len(info.rules) != 1 or info.rules[0].view is not None:
                self.bag.error("GEO0110", f"`{ref.name}` routes parameters with several rules; it cannot be used as a step",
                               ref.span, help="compose steps, or route to an optimizer with a single rule")
                return None
            if info.across is not None:
                self.bag.error("GEO0110", f"`{ref.name}` decides across parameters (an `across` block); it cannot be "
                               "used as a step", ref.span,
                               notes=["its rules read values that only its own `across` block computes"],
                               help=f"use `{ref.name}` as an optimizer of its own, or copy its `across` block")
                return None
            src = info.rules[0]
            uses = [StepUse(u.name or ref.name, _merge_binders(src.binder, u.binder), u.body,
                            {k: src.hypers.get(k, h) for k, h in u.hypers.items()}, dict(u.bindings)) for u in src.chain]
        else:
            hint = did_you_mean(ref.name, list(self.steps) + list(self.optimizer_defs)) or _stdlib_hint(ref.name)
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
                self.bag.error("GEO0103", f"`{ref.name}` has no hyperparameter `{kw.name}`",
                               Span(kw.span.source, kw.span.start, kw.span.start + len(kw.name)),
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
                                               old.choices, old.range)
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
        outside = old.out_of_range(value) if isinstance(value, (int, float, tuple)) else None
        if outside is not None:
            self.bag.error("GEO0306", f"`{outside[0]}` takes values in {old.range.show()}; found {outside[1]!r}",
                           expr.span, secondary=[Label(old.span, "declared here")])
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
        return self._merged_ranges(chain, header, out)

    def _merged_ranges(self, chain: list[StepUse], header: dict[str, HyperInfo],
                       out: dict[str, HyperInfo]) -> dict[str, HyperInfo]:
        """Every range declared for a hyperparameter of the rule holds: a step's `lr in [0, inf)` still binds
        when the optimizer's header declares `lr` again without one. The rule's range is their intersection,
        and the rule's default must lie in it."""
        for name, h in list(out.items()):
            declared = [u.hypers[name] for u in chain if name in u.hypers and name not in u.bindings]
            declared += [header[name]] if name in header else []
            ranges = [d.range for d in declared if d.range is not None]
            if not ranges:
                continue
            merged = ranges[0]
            for r in ranges[1:]:
                merged = merged.intersect(r)
            if merged == h.range:
                continue
            if merged.empty():
                self.bag.error("GEO0306", f"the ranges declared for `{name}` have no value in common", h.span,
                               notes=["declared: " + ", ".join(r.show() for r in ranges)])
                continue
            out[name] = replace(h, range=merged)
            outside = out[name].out_of_range(h.default) if h.default is not REQUIRED else None
            if outside is not None:
                self.bag.error("GEO0306", f"the default of `{outside[0]}`, {outside[1]!r}, is outside its range "
                               f"{merged.show()}", h.span,
                               notes=["a composed step declares the range; every range declared for a "
                                      "hyperparameter holds"])
        return out


def _stdlib_hint(name: str) -> str | None:
    """`use` for a step or optimizer the stdlib defines under this name or one close to it (`muonn` → muon)."""
    defined = stdlib_definitions()
    close = [name] if name in defined else difflib.get_close_matches(name, list(defined), n=1, cutoff=0.75)
    if not close:
        return None
    found, module = close[0], defined[close[0]]
    return (f"`{found}` is defined in the stdlib: add `use {module}`" if found == name else
            f"did you mean `{found}`? it is defined in the stdlib: add `use {module}`")


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
