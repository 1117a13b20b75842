"""The geo AST: frozen dataclasses, each carrying the `Span` of the text it came from.

The whole surface language in one page (CPython's ASDL habit): expressions, statements, and the four
top-level declarations (`use`, `def`, `step`, `optimizer`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from .source import Span


@dataclass(frozen=True)
class Node:
    span: Span


# ---- expressions ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Number(Node):
    value: float | int


@dataclass(frozen=True)
class String(Node):
    value: str


@dataclass(frozen=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class TupleExpr(Node):
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Keyword(Node):
    name: str
    value: "Expr"


@dataclass(frozen=True)
class Call(Node):
    func: Name
    args: tuple["Expr", ...]
    kwargs: tuple[Keyword, ...]


@dataclass(frozen=True)
class Binary(Node):
    op: str  # + - * / @ ^ == != < <= > >= and or
    left: "Expr"
    right: "Expr"
    op_span: Span


@dataclass(frozen=True)
class Unary(Node):
    op: str  # - + not
    operand: "Expr"


@dataclass(frozen=True)
class Cond(Node):
    """`then if test else orelse`; the test must be static."""

    test: "Expr"
    then: "Expr"
    orelse: "Expr"


@dataclass(frozen=True)
class Attr(Node):
    value: "Expr"
    name: str


@dataclass(frozen=True)
class Index(Node):
    value: "Expr"
    index: "Expr"


Expr = Number | String | Bool | Name | TupleExpr | Call | Binary | Unary | Cond | Attr | Index


# ---- statements ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StateDecl(Node):
    name: str
    dtype: Name | None
    init: Expr


@dataclass(frozen=True)
class Let(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Assign(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Block(Node):
    doc: str | None
    stmts: tuple["Stmt", ...]


@dataclass(frozen=True)
class If(Node):
    branches: tuple[tuple[Expr, Block], ...]
    orelse: Block | None


@dataclass(frozen=True)
class Repeat(Node):
    count: Expr
    var: str | None
    body: Block


@dataclass(frozen=True)
class When(Node):
    """`when cond:` (a condition known on the host) or `every k:` (`period`: the block runs at steps 1, k + 1,
    2k + 1, …); exactly one of `test` and `period` is set. Decided at each step, compiled once per outcome."""

    test: Expr | None
    period: Expr | None
    body: Block


@dataclass(frozen=True)
class Return(Node):
    value: Expr


@dataclass(frozen=True)
class Pass(Node):
    pass


Stmt = StateDecl | Let | Assign | If | Repeat | When | Return | Pass


# ---- declarations --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SelectorTerm(Node):
    """One word of a parameter selector: `matrix`, `not bias`, `name "*.weight"`."""

    word: str
    pattern: str | None = None
    negated: bool = False


@dataclass(frozen=True)
class View(Node):
    """`as matrix`, `as heads(8)`: how a parameter is seen by the rule body."""

    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]


@dataclass(frozen=True)
class Binder(Node):
    selector: tuple[SelectorTerm, ...]
    name: str
    name_span: Span
    view: View | None


@dataclass(frozen=True)
class Range(Node):
    """`in [lo, hi)`: the values a hyperparameter may take; `[`/`]` close an end, `(`/`)` open it."""

    lo: Expr
    hi: Expr
    lo_closed: bool
    hi_closed: bool


@dataclass(frozen=True)
class Hyper(Node):
    name: str
    static: bool
    default: Expr | None
    range: Range | None = None


@dataclass(frozen=True)
class Use(Node):
    names: tuple[Name, ...]


@dataclass(frozen=True)
class FunctionDef(Node):
    name: str
    params: tuple[Hyper, ...]  # a function parameter is a name with an optional default
    body: Block


@dataclass(frozen=True)
class StepDef(Node):
    name: str
    binder: Binder
    hypers: tuple[Hyper, ...]
    body: Block


@dataclass(frozen=True)
class StepRef(Node):
    """A reference to a step or optimizer, with hyperparameter bindings: `adamw(weight_decay = 0.1)`."""

    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]


@dataclass(frozen=True)
class Compose(Node):
    """`outer ∘ inner` (or `inner >> outer`): run `inner`, then `outer`, each with its own state."""

    outer: "StepExpr"
    inner: "StepExpr"


StepExpr = StepRef | Compose


@dataclass(frozen=True)
class Rule(Node):
    binder: Binder
    body: Block | None
    step: StepExpr | None


@dataclass(frozen=True)
class Across(Node):
    """`across [selector] NAME:` an optimizer-level block run once per step, before the rules, over the parameters
    its selector picks: NAME is the vector of their indices; its top-level `let`s and `state`s are read by every
    rule as this parameter's entry."""

    binder: Binder
    body: Block


@dataclass(frozen=True)
class OptimizerDef(Node):
    name: str
    hypers: tuple[Hyper, ...]
    doc: str | None
    rules: tuple[Rule | Across, ...]
    step: StepExpr | None  # `optimizer x = a ∘ b`: one rule for every tensor


@dataclass(frozen=True)
class Module(Node):
    doc: str | None
    items: tuple[Use | FunctionDef | StepDef | OptimizerDef, ...]


# ---- printer (--emit ast) ------------------------------------------------------------------------------
def dump(node: object, indent: int = 0) -> str:
    """A stable, indented text form of an AST (golden-tested); each node shows its line:col."""
    pad = "  " * indent
    if isinstance(node, Node):
        line, col = node.span.source.line_col(node.span.start)
        head = f"{pad}{type(node).__name__} @{line}:{col}"
        scalars, children = [], []
        for f in fields(node):
            if f.name in ("span", "op_span", "name_span"):
                continue
            value = getattr(node, f.name)
            if isinstance(value, (Node, tuple)) and value != ():
                children.append((f.name, value))
            elif value is not None and value != ():
                if f.name == "doc":  # the first line is enough to recognise a docstring
                    value = value.splitlines()[0] if value else value
                scalars.append(f"{f.name}={value!r}")
        lines = [head + (" " + " ".join(scalars) if scalars else "")]
        for name, value in children:
            lines.append(f"{pad}  .{name}")
            lines.append(dump(value, indent + 2))
        return "\n".join(lines)
    if isinstance(node, tuple):
        return "\n".join(dump(item, indent) for item in node)
    return f"{pad}{node!r}"
