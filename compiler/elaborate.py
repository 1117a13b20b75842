"""Elaboration: one rule of the spec model → a typed IR `Program`.

`elaborate(checked, rule, statics, rank)` builds the program of one rule for the static values and parameter
rank the runtime meets; it reports errors as `check` does, collecting all of them.

Elaboration is symbolic evaluation: runtime values become IR nodes, static values are folded to constants,
`if` on a static condition picks its branch (the other branches are still checked), `repeat` unrolls, and
user functions are inlined. Steps composed with `∘` run in order, each with its own state namespace; a step
that assigns `grad` hands the later steps that direction (a chain of transforms). A `when`/`every` block whose
condition is known only on the host becomes a guard: the program is specialized per outcome (`firing`), and the
full program records the guards that choose. An `across` block is elaborated like a rule over the vector of the
layers; its top-level values are `input` nodes of the rules. A random operator gets the step's key (`input`
"rng") and its call site.

It is over 800 lines because it is one recursive evaluator: statements, expressions, calls and inlining share
one scope model, one diagnostic policy (poison, check-only branches) and one graph, and splitting it would pass
all of that through every call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from ..dsl import ast
from ..dsl.diagnostics import DiagnosticBag, InternalError, Label, did_you_mean
from ..dsl.source import Span
from .binding import rule_type
from .fold import FOLD_BUDGET, MAX_STATIC_SIZE, FoldBudget, has_complex, sequence_size, too_large_power
from .ir import SOURCE_OPS, Constraint, Graph, Node, Program, StateSlot
from .ops import registry
from .ops.registry import OpDef
from .spec import ACROSS, BUILTINS, RESERVED_STATES, STATE_DTYPES, Checked, RuleInfo
from .types import KEY, SCALAR, Scalar, ShapeError, Static, Tensor, TupleT, Type, broadcast

BINARY_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "@": "matmul", "^": "pow", "==": "eq",
              "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "and": "and", "or": "or"}
MAX_UNROLL = 1000
TYPE_CODES = {"GEO0202", "GEO0203", "GEO0204", "GEO0205", "GEO0206", "GEO0207"}
MAX_UNROLL_TOTAL = 10_000
MAX_INLINE_DEPTH = 32
MAX_INLINE_TOTAL = 10_000  # calls inlined in one rule: `def f(x): return g(x) + g(x)` chains grow exponentially


class Poison(Type):
    """The type of an expression that already produced an error (suppresses follow-on errors)."""

    def show(self) -> str:
        return "<error>"


POISON_T = Poison()


def elaborate(checked: Checked, rule: RuleInfo, statics: dict[str, Any], rank: int | None,
              active: tuple[int, ...] | None = None, firing: frozenset | None = None,
              dims: tuple[int, ...] | None = None) -> Program:
    """The program of `rule` for these static values and parameter rank, with only the `active` steps of its
    chain (None: all) and only the `when`/`every` blocks in `firing` (None: all of them, the full program whose
    `guards` decide the others); `dims`, the parameter's shape as the rule sees it, makes shape facts static (for
    a rule whose `per_shape` program says it needs them). Raises GeoError with every diagnostic found."""
    bag = DiagnosticBag()
    try:
        program = Elaborator(checked, rule, statics, rank, bag, active, firing, dims).run()
    except NeedsRank:
        raise InternalError("elaborate", f"rule `{rule.text}` decides static values by the parameter's rank: specialize "
                            "it for a rank (RuleInfo.variants lists them)", rule.span) from None
    bag.raise_if_errors()
    return program


class NeedsRank(Exception):
    """Raised when a rule of unknown rank needs its rank to decide something static (`if ndim(W) == 2:`): the
    checker then checks the rule once per rank (RuleInfo.rank_dependent), as the runtime specializes it."""


RANKS = (0, 1, 2, 3, 4)  # the ranks the selectors name: scalar, vector, matrix, stack, conv


def check_rule(checked: Checked, rule: RuleInfo, statics: dict[str, Any], bag: DiagnosticBag,
               budget: FoldBudget | None = None) -> None:
    """Elaborates every variant of a rule (RuleInfo.variants) into `bag`. A rule of unknown rank whose static
    choices depend on the rank is checked instead for each rank a parameter may have: a branch is then checked
    where it is taken, against the ranks that take it, and each diagnostic says for which rank it holds."""
    for rank, active in rule.variants():
        sub = DiagnosticBag()
        try:
            Elaborator(checked, rule, statics, rank, sub, active, budget=budget).run()
        except NeedsRank:
            rule.rank_dependent = True
            return check_rule(checked, rule, statics, bag, budget)
        for d in sub.items:
            if rule.rank_dependent and rule.rank() is None:
                d.notes = list(d.notes) + [f"found checking the rule for a parameter of rank {rank} (its static "
                                           "choices depend on the rank, so it is checked once per rank)"]
            bag.add(d)  # (the same error at several ranks is reported once)


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
                 bag: DiagnosticBag, active: tuple[int, ...] | None = None, firing: frozenset | None = None,
                 dims: tuple[int, ...] | None = None, budget: FoldBudget | None = None):
        self.checked, self.rule, self.statics, self.rank, self.bag = checked, rule, statics, rank, bag
        self.active = active
        self.budget = budget if budget is not None else FoldBudget()
        self.dims = dims                     # the parameter's shape as the rule sees it, for a per-shape program
        self.per_shape = False               # a static choice met a shape fact only a real shape decides
        self.firing = firing                 # the `when` blocks that run (None: all)
        self.guards: dict[tuple, Node] = {}  # site of each `when` met on the live path -> its host condition
        self.guard_parents: dict[tuple, tuple | None] = {}
        self._guard_stack: list[tuple] = []
        self._occurrences: dict[tuple, int] = {}  # how often each site was met (repeat, inlining): sites stay distinct
        self.checking_only = 0               # > 0 inside a branch that is checked but not taken
        self.graph = Graph()
        self.root = Scope()
        self.constraints: list[Constraint] = []
        self.states: list[StateSlot] = []
        self.call_stack: list[str] = []
        self.function_depth = 0
        self.callers: list[Scope] = []   # the scope of each inlined call's caller, innermost last
        self.in_init = False
        self.unrolled = 0  # repeat iterations unrolled so far, nested loops multiplied
        self.inlined = 0   # function calls inlined so far

    @classmethod
    def constant_evaluator(cls, bag: DiagnosticBag, budget: FoldBudget | None = None) -> "Elaborator":
        return cls(None, None, {}, None, bag, budget=budget)

    # -- the rule
    def param_type(self) -> Tensor:
        rule = self.rule
        if rule.is_across:
            return rule_type(1)  # the vector of the layers' indices, whatever the selector picks
        base = rule_type(self.rank)
        if rule.view is not None:
            try:
                base = rule.view.type(base, rule.view_args)
            except ValueError:
                return base
        if self.dims is not None and base.shape is not None:  # a per-shape specialization: the sizes are known
            sizes = self.dims[len(self.dims) - len(base.shape):]
            base = base.with_shape(tuple(sizes))
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
        across = self.checked.optimizers.get(rule.optimizer) if not rule.is_across else None
        for name in across.exports if across is not None else ():  # an `across` value: this parameter's entry
            hyper_scope.vars.setdefault(name, Var("across", g.node("input", (), {"name": f"{ACROSS}.{name}"},
                                                                    type=SCALAR, span=across.across.span),
                                                   across.across.span))
        current = param
        direction = grad  # what each step reads as `grad`: a step that assigns `grad` hands the next one its value
        outputs: dict[str, Node] = {}
        exports: dict[str, Node] = {}
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
                if (use.name == "" or var.kind == "across") and name not in scope.vars:
                    scope.vars[name] = var
            if not rule.is_across:  # the across block sees no gradient: it decides before any step
                scope.vars["grad"] = Var("grad", direction, rule.binder.name_span)
            scope.vars["t"] = Var("t", t, rule.span)
            scope.vars[use.binder.name] = Var("layers" if rule.is_across else "param", current, use.binder.name_span)
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
            if rule.is_across:
                exports = self._exports(body_scope, ptype)
            else:
                direction = scope.vars["grad"].node
        self._check_param(current, ptype)
        outputs = {"param": current, **{k: v for k, v in outputs.items() if not (v.op == "state" and v.attr("name") == k)}}
        return Program(rule.optimizer, rule.index, rule.text, rule.binder.name, ptype, dict(self.statics),
                       [k for k, h in rule.hypers.items() if not h.static], self.states, outputs, self.constraints,
                       rule.span, dict(self.guards), dict(self.guard_parents), exports, self.per_shape)

    def _exports(self, scope: Scope, ptype: Tensor) -> dict[str, Node]:
        """The values an `across` block gives the rules: each top-level `let` and `state`, a vector over the layers
        (each parameter reads its entry) or one number for all of them."""
        out = {}
        for name in self.checked.optimizers[self.rule.optimizer].exports:
            var = scope.vars.get(name)
            if var is None or isinstance(var.node.type, Poison):
                continue
            t = var.node.type
            ok = isinstance(t, Scalar) or (isinstance(t, Static) and t.kind in ("int", "float", "bool")) or (
                isinstance(t, Tensor) and not t.batched and t.shape in ((), ptype.shape, (1,)))
            if not ok:
                self.bag.error("GEO0205", f"the `across` value `{name}` is `{t.show()}`; each parameter reads one "
                               "number from it", var.span, help="make it a vector over the layers (shaped like "
                               f"`{self.rule.binder.name}`) or a single number")
                continue
            out[name] = var.node
        return out

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
            if s.name in BUILTINS or (scope.lookup(s.name) and scope.lookup(s.name).kind in ("param", "hyper", "static", "state",
                                                                                            "across", "layers")):
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
        elif isinstance(s, ast.When):
            self.when_stmt(s, scope)
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
        elif init.type == SCALAR:
            # A host number (`state m = lr`) is stored as a 0-d tensor too, as a static one is: state dicts hold
            # tensors (torch's loader and the checkpoint check expect them), and the state lives on the device.
            param = self.init_scope.lookup(self.param_name).node
            init = self.graph.node("scalar_like", (param, init), type=Tensor((), False, "param"), span=s.init.span)
            stype = init.type if dtype is None else Tensor((), False, dtype)
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
        if var.kind in ("hyper", "static", "t", "loop", "binding", "across", "layers"):
            self.bag.error("GEO0107", f"cannot assign to {_kind_word(var.kind)} `{s.name}`", s.span,
                           secondary=[Label(var.span, "declared here")] if var.span.source.text and var.kind != "t" else [],
                           help=f"introduce a new name: `let {s.name}_new = ...`")
            return
        if isinstance(node.type, Poison):
            scope.owner(s.name).vars[s.name] = Var(var.kind, node, var.span, var.slot)
            return
        if var.kind in ("param", "state", "grad"):  # `grad = ...` transforms the direction later steps read
            node = self._fit(node, var, s)
            if var.kind == "grad" and not isinstance(node.type, (Tensor, Poison)):  # `grad = 0`: a tensor of zeros
                like = self.graph.node("grad", type=self.param_type(), span=var.span)
                node = self.apply("full_like", [(like, s.span), (node, s.value.span)], {}, s.value.span)
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
        undecided = False
        for test, body in s.branches:
            node = self.expr(test, scope)
            value = self.static_value(node, test, "an `if` condition",
                                      "use `where(cond, a, b)` for an elementwise runtime choice")
            if value is _UNDECIDED:
                undecided = True  # a shape decides: every branch may run for some shape
            elif value is _NOT_STATIC:
                decided = True  # an error was reported; check the bodies without choosing
                chosen = None
            elif not decided and bool(value):
                chosen, decided = body, True
        if not decided:
            chosen = s.orelse
        for body in [b for _, b in s.branches] + ([s.orelse] if s.orelse else []):
            if undecided:
                self._check_all(body, scope)
            elif body is chosen:
                self.block(body, Scope(parent=scope))
            else:
                self._check_only(body, scope)

    def _check_all(self, body: ast.Block, scope: Scope) -> None:
        """Checks a branch that some shape takes (a per-shape choice, in the program of no shape): every error is
        reported, the effects are discarded (the program of each real shape is elaborated apart)."""
        saved = list(self.states)
        try:
            self.block(body, Scope(parent=scope.clone()))
        except _Return:
            pass
        finally:
            self.states = saved

    def _check_only(self, body: ast.Block, scope: Scope) -> None:
        """Checks a branch not taken, discarding its effects.

        Its names, arities and static arguments are checked; its shape and type errors are not reported,
        because a static branch often exists for another parameter rank (`if ndim(W) >= 2: ... msign ...`):
        those are checked in the specializations that take the branch."""
        saved_states, saved_bag = list(self.states), self.bag
        self.bag = DiagnosticBag()
        self.checking_only += 1
        try:
            self.block(body, Scope(parent=scope.clone()))
        except _Return:
            pass
        finally:
            self.checking_only -= 1
            self.states, branch_bag, self.bag = saved_states, self.bag, saved_bag
        self.bag.extend(d for d in branch_bag.items if d.code not in TYPE_CODES)

    def site(self, span: Span) -> tuple:
        """A stable name for a statement or call as elaboration meets it: (file, offset, occurrence). Every
        specialization meets the same sites in the same order (a branch not taken is still elaborated, in
        `_check_only`), so a site names the same thing in all of them: a `when` block, a random draw."""
        where = (span.source.name, span.start)
        count = self._occurrences.get(where, 0)
        self._occurrences[where] = count + 1
        return (*where, count)

    def when_stmt(self, s: ast.When, scope: Scope) -> None:
        """`when cond:` / `every k:`. The condition must be known on the host (a static value decides at compile
        time, like `if`); the rule is compiled once per outcome of its conditions, and each step runs the
        specialization its conditions choose (the runtime evaluates them from `t`, hyperparameters, shape facts
        and `across` values): skipped work costs nothing, and no value changes code."""
        key = self.site(s.span)
        cond = self.every_condition(s, scope) if s.period is not None else self.expr(s.test, scope)
        if isinstance(cond.type, Poison):
            return self._check_only(s.body, scope)
        if cond.is_const:
            if bool(cond.value):
                self.block(s.body, Scope(parent=scope))
            else:
                self._check_only(s.body, scope)
            return
        if not isinstance(cond.type, Scalar):
            self.bag.error("GEO0307", f"a `when` condition must be known on the host, found a `{cond.type.show()}`",
                           s.test.span, "a tensor, on the device",
                           notes=["the condition chooses which compiled step runs, before any kernel"],
                           help="build it from `t`, hyperparameters, shape facts and `across` values; for an "
                                "elementwise choice use `where(cond, a, b)`")
            return self._check_only(s.body, scope)
        if self.checking_only:  # inside a branch not taken: checked, never a guard of this program
            return self.block(s.body, Scope(parent=scope))
        self.guards[key] = cond
        self.guard_parents[key] = self._guard_stack[-1] if self._guard_stack else None
        if self.firing is None or key in self.firing:
            self._guard_stack.append(key)
            try:
                self.block(s.body, Scope(parent=scope))
            finally:
                self._guard_stack.pop()
        else:
            self._check_only(s.body, scope)

    def every_condition(self, s: ast.When, scope: Scope) -> Node:
        """`every k:` is `when mod(t - 1, k) == 0:` — steps 1, k + 1, 2k + 1, …; k a positive integer (a static
        one is checked here, a runtime one is the user's to keep integral)."""
        k = self.expr(s.period, scope)
        if isinstance(k.type, Poison):
            return k
        if k.is_const and (not isinstance(k.value, int) or isinstance(k.value, bool) or k.value < 1):
            self.bag.error("GEO0308", f"`every` takes a positive integer period, found {k.value!r}", s.period.span,
                           help="`every 10:` runs its block at steps 1, 11, 21, …")
            return self.poison(s.period.span)
        if not (k.is_const or isinstance(k.type, Scalar)):
            self.bag.error("GEO0307", f"an `every` period must be known on the host, found a `{k.type.show()}`",
                           s.period.span, "a tensor, on the device",
                           help="a static or runtime hyperparameter, or a literal")
            return self.poison(s.period.span)
        t = scope.lookup("t")
        if t is None or t.kind != "t":
            self.bag.error("GEO0307", "`every` counts the steps of a step body; a function has no step count `t`",
                           s.span.head(), help="move the `every` block into the step that calls the function")
            return self.poison(s.period.span)
        span = s.period.span
        one = self.graph.const(1, span)
        elapsed = self.apply("sub", [(t.node, span), (one, span)], {}, span, symbol="-")
        phase = self.apply("mod", [(elapsed, span), (k, span)], {}, span)
        return self.apply("eq", [(phase, span), (self.graph.const(0, span), span)], {}, span, symbol="==")

    def _check_only_expr(self, e: ast.Expr, scope: Scope) -> None:
        """The expression `_check_only` checks for a branch not taken (`a if cond else b` with a static cond)."""
        saved_bag = self.bag
        self.bag = DiagnosticBag()
        self.checking_only += 1
        try:
            self.expr(e, scope)
        finally:
            self.checking_only -= 1
            branch_bag, self.bag = self.bag, saved_bag
        self.bag.extend(d for d in branch_bag.items if d.code not in TYPE_CODES)

    def repeat(self, s: ast.Repeat, scope: Scope) -> None:
        node = self.expr(s.count, scope)
        value = self.static_value(node, s.count, "a `repeat` count")
        if value is _UNDECIDED:
            self._check_all(s.body, scope)
            return
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
        if self._shape_decides(node):
            self.per_shape = True
            return _UNDECIDED
        self.bag.error("GEO0301", f"{what} must be static, found a runtime `{node.type.show()}`", expr.span,
                       "known only at run time", secondary=self._runtime_origin(expr),
                       help=help or "make the value a static hyperparameter (`static NAME = ...`) or a literal")
        return _NOT_STATIC

    def _shape_decides(self, node: Node) -> bool:
        """Whether a value that is not static here is decided by the parameter's rank or sizes alone (`ndim(W)`,
        `rows(W) > 1024`, `cols(W) // 2`): it is static in every real specialization. A rule of unknown rank is
        then checked per rank (NeedsRank); a rule of known rank gets a program per parameter shape (`per_shape`,
        the runtime specializes it with `dims`), and returns True. Anything read at run time (a hyperparameter,
        `t`, a tensor's values) makes it False: then it is an error."""
        if self.rule is None or self.dims is not None:
            return False
        rank_needed = False
        stack, seen = [node], set()
        while stack:
            n = stack.pop()
            if n.id in seen or n.op == "const":
                continue
            seen.add(n.id)
            if n.op in ("ndim", "rows", "cols", "numel"):
                x = n.args[0].type
                rank_needed |= isinstance(x, Tensor) and x.shape is None
                continue
            if n.op in SOURCE_OPS or not isinstance(n.type, (Scalar, Static)):
                return False
            stack.extend(n.args)
        if rank_needed and self.rank is None and not self.rule.is_across:
            raise NeedsRank()
        return True

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
            if value is _NOT_STATIC or value is _UNDECIDED:  # both are checked in full
                then, _ = self.expr(e.then, scope), self.expr(e.orelse, scope)
                # (undecided: a per-shape program chooses; this one, for no shape, is never run)
                return self.poison(e.span) if value is _NOT_STATIC else then
            # As for `if`: the side not taken is checked for names and arities, not against a rank it cannot have.
            taken, other = (e.then, e.orelse) if value else (e.orelse, e.then)
            if value:
                node = self.expr(taken, scope)
                self._check_only_expr(other, scope)
            else:
                self._check_only_expr(other, scope)
                node = self.expr(taken, scope)
            return node
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
            if self.in_init and var.kind in ("state", "let", "grad", "t"):
                # A state is initialized when the optimizer first meets its parameter, from the parameter and the
                # hyperparameters alone: no gradient, step count, local or other state exists then.
                self.bag.error("GEO0114", f"a state's initial value cannot read `{e.id}`", e.span,
                               notes=["a state is built before the first step, when no gradient or step count "
                                      "exists"] if var.kind in ("grad", "t") else [],
                               help="initial values are built from the parameter and hyperparameters, e.g. `zeros_like(W)`")
                return self.poison(e.span)
            return var.node
        if self.checked is not None and e.id in self.checked.functions:
            self.bag.error("GEO0101", f"`{e.id}` is a function; call it", e.span, help=f"write `{e.id}(...)`")
        elif registry.get(e.id) is not None:
            self.bag.error("GEO0101", f"`{e.id}` is an operator; call it", e.span, help=f"write `{e.id}(...)`")
        elif self.function_depth and (e.id in BUILTINS or self.callers[-1].lookup(e.id) is not None):
            # Functions are pure: one definition serves every step and rank that calls it, so it reads only
            # what it is given (it is inlined, but it does not see its caller's names).
            caller = self.callers[-1].lookup(e.id)
            what = _kind_word(caller.kind if caller is not None else e.id)
            self.bag.error("GEO0101", f"unknown name `{e.id}`", e.span, "not a parameter of this function",
                           notes=[f"`{e.id}` is {what} in the step that calls `{self.call_stack[-1]}`; a function sees "
                                  "only its own parameters and `let`s"],
                           help=f"pass it in: add `{e.id}` to the parameters of `{self.call_stack[-1]}` and to the call")
        else:
            if self.function_depth:
                hint = did_you_mean(e.id, scope.names())
                notes = ["in a function: its parameters and `let`s"]
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
        if i is _NOT_STATIC or i is _UNDECIDED:
            return self.poison(e.span)
        if isinstance(base.type, TupleT) and base.op not in ("const", "hyper"):  # a factorization: `eigh(A)[1]`
            return self.apply("item", [(base, e.value.span)], {"index": (idx, e.index.span)}, e.span, symbol="[]")
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
        keywords = {}   # where each keyword is written: a diagnostic about the keyword points at it, not its value
        for kw in e.kwargs:
            keyword = Span(kw.span.source, kw.span.start, kw.span.start + len(kw.name))
            if kw.name in kwargs:
                self.bag.error("GEO0103", f"argument `{kw.name}` is given twice", keyword)
                continue
            kwargs[kw.name] = (self.expr(kw.value, scope), kw.value.span)
            keywords[kw.name] = keyword
        if self.checked is not None and name in self.checked.functions:
            return self.inline(self.checked.functions[name], args, kwargs, e, scope, keywords)
        if self.checked is not None and (name in self.checked.steps or name in self.checked.optimizers):
            self.bag.error("GEO0110", f"`{name}` is a step; steps are composed, not called", e.func.span,
                           help=f"compose it at rule level: `for W = {name} ∘ ...`")
            return self.poison(e.span)
        if registry.get(name) is None:
            candidates = registry.names() + (list(self.checked.functions) if self.checked else [])
            self.bag.error("GEO0102", f"unknown operator `{name}`", e.func.span, "not an operator or function",
                           help=did_you_mean(name, candidates) or "`geo doc` lists the operators")
            return self.poison(e.span)
        return self.apply(name, args, kwargs, e.span, name_span=e.func.span, keywords=keywords)

    def apply(self, name: str, args: list[tuple[Node, Span]], kwargs: dict[str, tuple[Node, Span]], span: Span,
              symbol: str | None = None, name_span: Span | None = None, keywords: dict[str, Span] | None = None
              ) -> Node:
        """Binds arguments to a registry operator, checks them with its type rule, folds static values."""
        opdef: OpDef = registry.get(name)
        shown = f"`{symbol}`" if symbol else f"`{name}`"
        bound = self.bind(opdef.user_params, args, kwargs, shown, opdef.signature(), name_span or span,
                          keywords=keywords)
        if bound is None:
            return self.poison(span)
        if opdef.kind == registry.RANDOM:
            if self.in_init:
                self.bag.error("GEO0114", f"a state's initial value cannot draw random numbers (`{name}`)", span,
                               notes=["a draw belongs to a step: it is keyed by the step count"],
                               help="initialize with `zeros_like(...)` and draw in an `every k:` block, which runs at "
                                    "the first step")
                return self.poison(span)
            if self.rule is not None:
                self.rule.randomized = True  # the optimizer keeps a generator seed in its state dict
            site = self.site(span)
            bound["key"] = (self.graph.node("input", (), {"name": "rng"}, type=KEY, span=span), span)
            bound["site"] = (self.graph.const(f"{PurePath(site[0]).stem}:{site[1]}:{site[2]}", span), span)
        if any(isinstance(n.type, Poison) for n, _ in bound.values()):
            return self.poison(span)
        runtime = any(not bound[p.name][0].is_const for p in opdef.value_params)
        for p in opdef.value_params if runtime else ():  # a runtime argument is a number or a tensor (static
            node, arg_span = bound[p.name]               # calls fold: `form == "code"` compares strings)
            factors = isinstance(node.type, TupleT) and all(isinstance(i, Tensor) for i in node.type.items)
            if (isinstance(node.type, TupleT) and not factors) or \
                    (isinstance(node.type, Static) and node.type.kind in ("str", "tuple")):
                self.bag.error("GEO0202", f"argument `{p.name}` of {shown} takes a number or a tensor, found "
                               f"`{node.type.show()}`", arg_span, notes=[f"signature: {opdef.signature()}"])
                return self.poison(span)
        attrs: dict[str, Any] = {}
        values: list[tuple[Node, Span]] = []
        static_failed = False
        for p in opdef.params:
            node, arg_span = bound[p.name]
            if p.static:
                if not node.is_const and self._shape_decides(node):  # a per-shape program decides it
                    self.per_shape = True
                    if p.required:
                        return self.poison(span)
                    attrs[p.name] = p.default  # checked with the default here; each shape's program has its own
                    continue
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
        on_these = f"{shown} cannot be evaluated on these static values: "
        if opdef.name == "pow" and too_large_power(raw):  # 2^2^2^2^2^2 would not finish
            return self._unfoldable(on_these + "the result is too large", span)
        size = sequence_size(opdef.name, raw)
        if size is not None and size > MAX_STATIC_SIZE:  # checked before Python builds it
            return self._unfoldable(on_these + f"the result would hold {size:,} "
                                    f"{'characters' if any(isinstance(r, str) for r in raw) else 'items'}", span,
                                    notes=[f"a static string or tuple holds at most {MAX_STATIC_SIZE:,}"])
        try:
            value = opdef.fold(*raw) if opdef.fold is not None else opdef.apply(raw, attrs, SCALAR)
        except TypeError:
            found = " and ".join(f"`{n.type.show()}`" for n in values)
            return self._unfoldable(f"{shown} cannot be applied to {found}", span)
        except OverflowError:
            return self._unfoldable(on_these + "the result is too large", span)
        except (ZeroDivisionError, ValueError) as err:
            return self._unfoldable(on_these + str(err), span)
        if isinstance(value, int) and value.bit_length() > 1000:
            return self._unfoldable(on_these + "the result is too large", span)
        if has_complex(value):  # (-1) ^ 0.5 in Python is 1j: geo's numbers are real
            return self._unfoldable(on_these + "the result is not a real number", span,
                                    notes=["a negative number to a fractional power, for instance"])
        if not self.budget.spend(value):
            return self._unfoldable(f"{shown} cannot be evaluated: static evaluation of this spec has computed more "
                                    f"than {FOLD_BUDGET:,} characters and items", span,
                                    help="fold fewer or smaller static strings and tuples")
        if isinstance(value, float) and value.is_integer() and all(isinstance(r, int) for r in raw) \
                and opdef.name in ("add", "sub", "mul", "neg", "max", "min", "pow", "abs") and not isinstance(value, bool):
            value = int(value)
        return self.graph.const(value, span)

    def _unfoldable(self, message: str, span: Span, **extra: Any) -> Node:
        self.bag.error("GEO0207", message, span, **extra)
        return self.poison(span)

    def bind(self, params, args, kwargs, shown: str, signature: str, span: Span,
             defaults: dict[str, tuple[Node, Span]] | None = None, keywords: dict[str, Span] | None = None
             ) -> dict[str, tuple[Node, Span]] | None:
        bound: dict[str, tuple[Node, Span]] = {}
        names = [p.name for p in params]
        keywords = keywords or {}
        if len(args) > len(params):
            self.bag.error("GEO0201", f"{shown} takes at most {len(params)} argument{'s' if len(params) != 1 else ''}, "
                           f"found {len(args)}", args[len(params)][1], "unexpected argument",
                           notes=[f"signature: {signature}"])
            return None
        for p, a in zip(params, args):
            bound[p.name] = a
        unknown = [k for k in kwargs if k not in names]
        # A required argument that nothing binds, when exactly one keyword is unknown, is what that keyword meant
        # (`lerp(a, b, weight = w)`): one error with the suggestion, not a second one for the missing argument.
        unbound = [p.name for p in params if p.required and p.name not in bound and p.name not in kwargs
                   and not (defaults and p.name in defaults)]
        meant = unbound[0] if len(unknown) == 1 and len(unbound) == 1 else None
        ok = True
        for k, v in kwargs.items():
            at = keywords.get(k, v[1])
            if k not in names:
                hint = did_you_mean(k, names) or (f"did you mean `{meant}`? ({shown} still needs it)" if meant else
                                                  f"signature: {signature}")
                self.bag.error("GEO0103", f"{shown} has no argument `{k}`", at, "unknown keyword", help=hint,
                               notes=[f"signature: {signature}"] if meant else [])
                ok = False
            elif k in bound:
                self.bag.error("GEO0103", f"argument `{k}` of {shown} is given twice", at)
                ok = False
            else:
                bound[k] = v
        missing = []
        for p in params:
            if p.name not in bound:
                if defaults and p.name in defaults:
                    bound[p.name] = defaults[p.name]
                elif p.required:
                    if p.name != meant:
                        missing.append(f"`{p.name}`")
                else:
                    bound[p.name] = (self.graph.const(p.default, span), span)
        if missing:
            listed = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
            self.bag.error("GEO0201", f"{shown} is missing the argument{'s' if len(missing) > 1 else ''} {listed}",
                           span, notes=[f"signature: {signature}"])
            ok = False
        return bound if ok else None

    def inline(self, fn: ast.FunctionDef, args, kwargs, call: ast.Call, caller: Scope,
               keywords: dict[str, Span] | None = None) -> Node:
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
                          call.func.span, defaults, keywords)
        if bound is None:
            return self.poison(call.span)
        scope = Scope()
        for p in fn.params:
            scope.vars[p.name] = Var("let", bound[p.name][0], p.span)
        self.call_stack.append(fn.name)
        self.callers.append(caller)
        self.function_depth += 1
        saved_init, self.in_init = self.in_init, False
        try:
            self.block(fn.body, Scope(parent=scope))
            self.bag.error("GEO0108", f"function `{fn.name}` ends without `return`", fn.span.head(),
                           help="end the function with `return EXPR`")
            result = self.poison(call.span)
        except _Return as ret:
            result = ret.node
        finally:
            self.call_stack.pop()
            self.callers.pop()
            self.function_depth -= 1
            self.in_init = saved_init
        return result


class _NotStatic:
    pass


_NOT_STATIC = _NotStatic()
_UNDECIDED = _NotStatic()  # static in every real specialization, decided by the parameter's shape


def _kind_word(kind: str) -> str:
    return {"hyper": "the runtime hyperparameter", "static": "the static hyperparameter", "grad": "the gradient",
            "t": "the step count", "loop": "the loop variable", "binding": "the bound hyperparameter",
            "param": "the parameter", "state": "the state", "let": "the local", "builtin": "the builtin",
            "across": "the `across` value", "layers": "the layer indices"}.get(kind, kind)


_PREDICATES = {"needs", "reduces", "expected", "expects", "takes", "has", "is", "cannot", "must", "does", "gives"}


def _op_message(shown: str, message: str) -> str:
    """`msign` needs a matrix ... (a type rule's predicate), or `msign`: unknown schedule ... (a sentence)."""
    if message.startswith(shown):
        return message
    return f"{shown} {message}" if message.split(" ", 1)[0] in _PREDICATES else f"{shown}: {message}"


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
