"""The typed IR: a dataflow graph of interned nodes, one `Program` per (rule, static values).

A node is `op(args; attrs) : type`, with the span of the `.geo` text it came from. Nodes are interned per
graph (tinygrad's habit): building the same op on the same arguments twice returns the same node, so common
subexpressions are shared by construction. The span is not part of a node's identity.

Source ops read the rule's inputs: `param` (the parameter, through its view), `grad`, `t` (the step count,
incremented before the step), `hyper` (a runtime hyperparameter), `state` (a state slot as it was before
this step), `const` (a static value). Every other op is a registry operator.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from ..dsl.diagnostics import InternalError
from ..dsl.source import Span, builtin_span, escaped
from .types import Dim, Static, Tensor, Type, static_kind

SOURCE_OPS = ("param", "grad", "t", "hyper", "state", "const", "input")


class Node:
    __slots__ = ("op", "args", "attrs", "type", "span", "id")

    def __init__(self, op: str, args: tuple["Node", ...], attrs: tuple[tuple[str, Any], ...], type: Type,
                 span: Span, id: int):
        self.op, self.args, self.attrs, self.type, self.span, self.id = op, args, attrs, type, span, id

    def attr(self, name: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == name:
                return v
        return default

    @property
    def is_const(self) -> bool:
        return self.op == "const"

    @property
    def value(self) -> Any:
        """The value of a `const` node."""
        return self.attr("value")

    def __repr__(self) -> str:
        return f"%{self.id}={self.op}"


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, float) and value != value:  # NaN: make it equal to itself for interning
        return ("nan",)
    return value


class Graph:
    """An interning node factory."""

    def __init__(self) -> None:
        self._table: dict[tuple, Node] = {}
        self._count = 0

    def node(self, op: str, args: tuple[Node, ...] = (), attrs: dict[str, Any] | None = None, *,
             type: Type, span: Span | None = None) -> Node:
        frozen = tuple(sorted((k, _freeze(v)) for k, v in (attrs or {}).items()))
        # repr keeps 1, 1.0 and True apart, which plain equality would merge.
        key = (op, tuple(a.id for a in args), tuple((k, repr(v)) for k, v in frozen), type)
        found = self._table.get(key)
        if found is not None:
            return found
        n = Node(op, tuple(args), tuple((k, v) for k, v in (attrs or {}).items()), type, span or builtin_span(), self._count)
        self._count += 1
        self._table[key] = n
        return n

    def const(self, value: Any, span: Span | None = None) -> Node:
        return self.node("const", (), {"value": value}, type=Static(static_kind(value)), span=span)


@dataclass
class StateSlot:
    name: str          # unique within the rule; composed steps prefix their own: "adamw.exp_avg"
    type: Type
    dtype: str | None  # storage dtype, or None for the parameter's dtype
    init: Node         # built over `param` only
    span: Span


@dataclass
class Constraint:
    """A symbolic dim equality checked when a real parameter is bound: `left == right`."""

    left: Dim
    right: Dim
    span: Span
    what: str


@dataclass
class Program:
    """One rule of an optimizer, specialized to its static hyperparameter values."""

    optimizer: str
    rule_index: int
    rule_text: str            # the binder as written, for messages: `for matrix W`
    param_name: str
    param_type: Tensor
    statics: dict[str, Any]
    hypers: list[str]         # runtime hyperparameters, in declaration order
    states: list[StateSlot]
    outputs: dict[str, Node]  # "param" → the new parameter value; state name → its new value
    constraints: list[Constraint] = field(default_factory=list)
    span: Span = field(default_factory=builtin_span)
    # `when`/`every` blocks met on the live path: site -> the host condition that runs the block, and the block
    # that encloses it (None: top level). A specialization runs the blocks of its `firing` set.
    guards: dict[tuple, Node] = field(default_factory=dict)
    guard_parents: dict[tuple, tuple | None] = field(default_factory=dict)
    # an `across` block's program: the values it gives the rules, by name (a vector over the layers or a number)
    exports: dict[str, Node] = field(default_factory=dict)
    # a static choice depends on the parameter's sizes (`rows(W) > 1024`): this program, for no shape in particular,
    # only checks; the runtime specializes the rule per parameter shape (elaborate's `dims`)
    per_shape: bool = False

    def roots(self) -> list[Node]:
        return (list(self.outputs.values()) + [s.init for s in self.states] + list(self.guards.values())
                + list(self.exports.values()))

    def firing(self, values: dict[int, Any]) -> frozenset | None:
        """The blocks that run, given the guards' values (by node id): those whose condition holds and whose
        enclosing block runs; None when every block runs (the program itself)."""
        fired: set[tuple] = set()
        for key, node in self.guards.items():  # in elaboration order: an enclosing block comes first
            parent = self.guard_parents.get(key)
            if (parent is None or parent in fired) and bool(values[node.id]):
                fired.add(key)
        return None if len(fired) == len(self.guards) else frozenset(fired)

    @functools.cached_property
    def inputs(self) -> tuple[str, ...]:
        """The per-parameter inputs the step or its guards read (`input` nodes): the random key "rng", `across`
        values. (Passes build a new Program, so the cache never outlives the nodes it describes.)"""
        return tuple(sorted({n.attr("name") for n in self.nodes() if n.op == "input"}))

    def nodes(self) -> list[Node]:
        """Every node reachable from the outputs and state inits, in a topological order (by id)."""
        return reachable(self.roots())

    def step_nodes(self) -> list[Node]:
        """Nodes needed by the step itself (not the state initializers)."""
        return reachable(list(self.outputs.values()))


def reachable(roots: list[Node]) -> list[Node]:
    """The nodes `roots` depend on, in a topological order (ids grow with construction)."""
    seen: dict[int, Node] = {}
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n.id not in seen:
            seen[n.id] = n
            stack.extend(n.args)
    return [seen[i] for i in sorted(seen)]


# ---- printer (--emit ir / opt) -------------------------------------------------------------------------
def geo_literal(v: Any) -> str:
    """A static value as geo source text: `true`, `"keller"` (escaped: quotes, backslashes and every unprintable
    character, so a printed stage never holds a raw control character from a spec's string), `(1, 2)`, `0.5`."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + escaped(v.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    if isinstance(v, tuple):
        return "(" + ", ".join(geo_literal(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v)


def print_program(p: Program, numbering: dict[int, int] | None = None) -> str:
    """A stable text form: nodes renumbered densely in topological order, each with type and location."""
    nodes = p.nodes()
    num = numbering or {n.id: i for i, n in enumerate(nodes)}
    statics = " ".join(f"{k}={geo_literal(v)}" for k, v in sorted(p.statics.items()))
    index = "across" if p.rule_index < 0 else p.rule_index
    lines = [f"rule {p.optimizer}[{index}] {p.rule_text}: {p.param_type.show()}" + (f"  # {statics}" if statics else "")]
    if p.per_shape:
        lines.append("  # compiled per parameter shape: its static choices read rows/cols; shown here for no shape in "
                     "particular (shape-dependent arguments at their defaults, shape-dependent branches left out)")
    for s in p.states:
        dt = f" ({s.dtype})" if s.dtype else ""
        lines.append(f"  state {s.name}: {s.type.show()}{dt} = %{num[s.init.id]}")
    for n in nodes:
        args = ", ".join(f"%{num[a.id]}" for a in n.args)
        attrs = " ".join(f"{k}={geo_literal(v)}" for k, v in n.attrs)
        body = " ".join(x for x in (n.op, args, attrs and "{" + attrs + "}") if x)
        loc = ""
        if n.span.source.text:
            line, col = n.span.source.line_col(n.span.start)
            # Nodes from another spec (`use`d steps) name their file: line numbers alone would be ambiguous.
            where = "" if n.span.source is p.span.source else f"{escaped(n.span.source.name)}:"
            loc = f"  @{where}{line}:{col}"
        lines.append(f"  %{num[n.id]} = {body} : {n.type.show()}{loc}")
    for name, n in p.outputs.items():
        lines.append(f"  write {name} <- %{num[n.id]}")
    for name, n in p.exports.items():
        lines.append(f"  export {name} <- %{num[n.id]}")
    for c in p.constraints:
        lines.append(f"  require {c.left} == {c.right}  # {c.what}")
    for key, n in p.guards.items():
        where = ""
        if n.span.source.text:
            line, col = n.span.source.line_col(key[1])
            where = f" @{line}:{col}"
        lines.append(f"  when %{num[n.id]}: the block{where} runs (a specialization per outcome)")
    return "\n".join(lines)


def fail(stage: str, message: str, node: Node | None = None, program: Program | None = None) -> InternalError:
    dump = print_program(program) if program is not None else ""
    return InternalError(stage, message + (f" (at %{node.id} = {node.op})" if node is not None else ""),
                         node.span if node is not None else None, dump)
