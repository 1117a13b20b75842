"""How rules meet real parameters: roles, selectors, views, and binding a parameter to its rule.

A rule `for hidden matrix W as heads(8):` selects parameters with the selector words `hidden` and `matrix`
(all must hold; `not bias` negates, `name "*.attn.*"` matches the parameter's name) and shows each one to the
body through the view `heads(8)`. Selectors and views are registries like the operators': the grammar knows
none of their names.

Roles (`choose_roles`), first that applies:
  1. the constructor's `roles=` ({tensor or name: role}); a role may end in `.T`: the parameter is stored
     transposed, (in, out) as HF GPT-2's `Conv1D`, and every rule sees its transpose (out, in), as an
     `nn.Linear` weight (`geo.roles(model)` finds Conv1D modules, embeddings and the output layer);
  2. the parameter's name (from `named_parameters()`): embedding (`embed`, `wte`, `wpe`, `tok_embeddings`),
     head (`lm_head`, `head`, `classifier`, `output`, unless inside a numbered block: BERT's
     `layer.3.output.dense` is a hidden layer), bias (1-D named `*bias`), norm (other 1-D and 0-D);
  3. the model's last layer, by position: when nothing marks a head, the last parameter of rank ≥ 2 among
     two or more given is the output layer (role head) if it is not inside a numbered block (`2.weight` of an
     `nn.Sequential`, `fc.weight` of a ResNet; not `h.11.mlp.c_proj.weight`, whose output head is tied to
     the embedding);
  4. otherwise hidden (rank ≥ 2) or norm; without a name this is the rank alone, and the runtime warns
     (`RoutingWarning`) when the spec's rules tell roles apart.
Names that look like HF GPT-2's transposed `Conv1D` storage (`c_attn.weight` of shape (d, 3d)) are reported
(`looks_transposed`), never guessed at.

Binding happens twice, and both times here: when the optimizer is built, each parameter goes to the first
rule whose selector holds and one of whose steps applies to the parameter as the view shows it
(`bind_rule`); once the rule's program is specialized to that rank, the parameter's real sizes must meet
the program's symbolic-dimension requirements (`misfit`: `W @ W` needs a square W). A rank-free rule
(`for tensor p`) is compiled once per rank it meets; a rank word in the selector fixes the rank at check
time (`selector_rank`).

This module knows the spec model (`compiler/spec.py`) only through the attributes it reads, so the model
can build on the vocabulary here without an import cycle.
"""
from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..dsl.diagnostics import Diagnostic, Label
from .types import Tensor
from .ops._lazy import lazy_torch

torch = lazy_torch(globals())

if TYPE_CHECKING:
    from ..dsl import ast
    from .ir import Program, StateSlot
    from .spec import OptimizerInfo, RuleInfo

ROLES = ("hidden", "embedding", "head", "bias", "norm")


@dataclass(frozen=True)
class ParamInfo:
    name: str
    shape: tuple[int, ...]
    role: str


_EMBED = re.compile(r"(^|[._])(embed\w*|wte|wpe|tok_embeddings|embeddings?)([._]|$)")
_HEAD = re.compile(r"(^|[._])(lm_head|head|classifier|output)([._]|$)")


def infer_role(name: str, shape: tuple[int, ...]) -> str:
    """The role a parameter's name and rank give it (rules 2 and 4 of `choose_roles`)."""
    return name_role(name, shape)[0]


def name_role(name: str, shape: tuple[int, ...]) -> tuple[str, str]:
    """(role, why) from a parameter's name and rank alone."""
    if len(shape) >= 2:
        found = _EMBED.search(name)
        if found:
            return "embedding", f"its name has `{found.group(2)}`"
        found = _HEAD.search(name)
        if found and not in_numbered_block(name[:found.start(2)]):
            return "head", f"its name has `{found.group(2)}`"
        return "hidden", "rank ≥ 2, and its name marks no other role"
    if name.endswith("bias"):
        return "bias", "1-D, named `*bias`"
    return "norm", f"{len(shape)}-D, not named `*bias`"


def in_numbered_block(path: str) -> bool:
    """A numbered component in a parameter's path: a layer of a repeated block (`h.3.`, `layer.11.`)."""
    return any(part.isdigit() for part in re.split(r"[._]", path))


class RoutingWarning(UserWarning):
    """A parameter was routed on a guess that may be wrong: by its rank alone (no name), or stored transposed."""


@dataclass(frozen=True)
class RoleChoice:
    """The role a parameter gets, whether it is stored transposed, and why (what `geo explain` prints)."""

    role: str
    why: str
    transposed: bool = False
    by_rank: bool = False    # no name and no `roles=`: the rank alone decided
    given: bool = False      # by `roles=`


TRANSPOSED = ".T"


def parse_role(text: str) -> tuple[str, bool]:
    """`"hidden"` → ("hidden", False); `"hidden.T"` → ("hidden", True); ValueError for anything else."""
    role, transposed = (text[:-len(TRANSPOSED)], True) if isinstance(text, str) and text.endswith(TRANSPOSED) \
        else (text, False)
    if role not in ROLES:
        raise ValueError(f"unknown role {text!r}; roles are {', '.join(ROLES)}, each optionally with "
                         f"`{TRANSPOSED}` for a weight stored transposed, (in, out) as HF's Conv1D")
    return role, transposed


def choose_roles(params: list[tuple[str | None, tuple[int, ...]]], given: list[str | None]) -> list[RoleChoice]:
    """The role of each parameter (name or None, stored shape), in the order given; `given[i]` is its `roles=`
    entry, if any (`role` or `role.T`). The rules, in order, are in this module's docstring."""
    out: list[RoleChoice | None] = []
    for (name, shape), role in zip(params, given):
        if role is not None:
            role, transposed = parse_role(role)
            out.append(RoleChoice(role, "given by roles=" + (" (stored transposed)" if transposed else ""), transposed,
                                  given=True))
        elif name is None:
            role, _ = name_role("", shape)
            out.append(RoleChoice(role, "no name: by its rank alone", by_rank=True))
        else:
            out.append(None)
    named = [(i, name, shape) for i, ((name, shape), c) in enumerate(zip(params, out)) if c is None]
    decided = {i: RoleChoice(*name_role(name, shape)) for i, name, shape in named}
    matrices = [(i, name) for i, name, shape in named if len(shape) >= 2]
    heads = [c for c in [*out, *decided.values()] if c is not None and c.role == "head"]
    if len(matrices) >= 2 and not heads:  # a lone matrix is no model with a last layer
        i, name = matrices[-1]
        if decided[i].role == "hidden" and not in_numbered_block(name.rpartition(".")[0].rpartition(".")[0]):
            decided[i] = RoleChoice("head", "the model's last layer: the last parameter of rank ≥ 2, outside any "
                                            "numbered block, and no name marks a head")
    return [c if c is not None else decided[i] for i, c in enumerate(out)]


def looks_transposed(name: str, shape: tuple[int, ...]) -> str | None:
    """Why a named matrix looks stored (in, out), as HF GPT-2's `Conv1D` keeps `c_attn`, `c_fc` and `c_proj`
    (nn.Linear keeps (out, in)); None when it does not. Only GPT-2's names with their telltale aspect ratios."""
    if len(shape) != 2:
        return None
    rows, cols = shape
    if name.endswith("c_attn.weight") and cols == 3 * rows:
        return f"a fused QKV stored (in, out) = ({rows}, 3·{rows})"
    if name.endswith("c_fc.weight") and cols == 4 * rows:
        return f"an MLP input stored (in, out) = ({rows}, 4·{rows})"
    if name.endswith("mlp.c_proj.weight") and rows == 4 * cols:
        return f"an MLP output stored (in, out) = (4·{cols}, {cols})"
    return None


# The inverse of `infer_role`, for tools that need a parameter of a given role and rank (the fuzzer): a name
# that `infer_role` gives each role, and the roles a parameter of each rank can have (in the order tried).
ROLE_EXAMPLES: dict[str, str] = {"hidden": "layer.weight", "embedding": "embed.weight", "head": "lm_head.weight",
                                 "bias": "layer.bias", "norm": "norm.weight"}
RANK_ROLES: dict[int, tuple[str, ...]] = {0: ("norm", "bias"), 1: ("norm", "bias"),
                                          2: ("hidden", "embedding", "head"), 3: ("hidden", "embedding", "head"),
                                          4: ("hidden", "embedding", "head")}


# ---- selectors -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SelectorDef:
    name: str
    doc: str
    rank: int | None                  # the rank the word implies for the body's type, if any
    test: Callable[[ParamInfo], bool]


SELECTORS: dict[str, SelectorDef] = {s.name: s for s in [
    SelectorDef("tensor", "any parameter", None, lambda p: True),
    SelectorDef("scalar", "0-D parameters", 0, lambda p: len(p.shape) == 0),
    SelectorDef("vector", "1-D parameters (biases, norm gains)", 1, lambda p: len(p.shape) == 1),
    SelectorDef("matrix", "2-D parameters", 2, lambda p: len(p.shape) == 2),
    SelectorDef("conv", "4-D parameters (conv kernels; view them `as matrix`)", 4, lambda p: len(p.shape) == 4),
    SelectorDef("stack", "3-D parameters (stacked experts; view them `as batch`)", 3, lambda p: len(p.shape) == 3),
] + [SelectorDef(role, f"parameters whose role is {role}", None, (lambda r: lambda p: p.role == r)(role))
     for role in ROLES]}


def selector_matches(terms: list[tuple[str, str | None, bool]], info: ParamInfo) -> bool:
    """terms: (word, pattern, negated); `name "glob"` matches the parameter's name."""
    for word, pattern, negated in terms:
        hit = fnmatch.fnmatchcase(info.name, pattern) if pattern is not None else SELECTORS[word].test(info)
        if hit == negated:
            return False
    return True


def implied_ranks(selector: Iterable[ast.SelectorTerm]) -> set[int]:
    """The ranks a selector's words ask for: `matrix` asks for 2; `not matrix`, `hidden` and `name` for none.

    A word is read as itself even with a (misplaced) pattern: `matrix "*.w"` is reported on its own, and the
    rule is then checked as the matrix rule it was meant to be."""
    return {SELECTORS[t.word].rank for t in selector if t.word in SELECTORS and not t.negated} - {None}


def selector_rank(selector: Iterable[ast.SelectorTerm]) -> int | None:
    """The one rank a selector fixes, or None (no rank word, or conflicting ones, which the checker reports)."""
    ranks = implied_ranks(selector)
    return ranks.pop() if len(ranks) == 1 else None


# ---- views ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ViewDef:
    """A matrix view: `type(param_type, args)` gives the body's type (or raises ValueError with a message);
    `check(shape, args)` says why a real shape does not fit (or None); `forward` and `backward` reshape."""

    name: str
    doc: str
    arity: int
    type: Callable[[Tensor, tuple[Any, ...]], Tensor]
    check: Callable[[tuple[int, ...], tuple[Any, ...]], str | None]
    forward: Callable[[torch.Tensor, tuple[Any, ...]], torch.Tensor]


def _matrix_type(t: Tensor, args) -> Tensor:
    if t.shape is not None and len(t.shape) < 2:
        raise ValueError(f"`as matrix` needs parameters of rank ≥ 2, and this rule selects `{t.show()}`")
    return Tensor(("m", "n"))


def _heads_type(t: Tensor, args) -> Tensor:
    (h,) = args
    if not isinstance(h, int) or isinstance(h, bool) or h < 1:
        raise ValueError(f"the number of heads must be a static positive integer, found {h!r}")
    if t.shape is None or len(t.shape) != 2:
        raise ValueError("`as heads(h)` views a matrix; select `matrix` parameters")
    return Tensor(("m", "n"), batched=True)


def _heads_check(shape, args) -> str | None:
    (h,) = args
    if len(shape) != 2:
        return f"`as heads({h})` needs a matrix"
    if shape[0] % h:
        return f"{shape[0]} rows do not split into {h} equal heads"
    return None


def _stack_type(t: Tensor, args) -> Tensor:
    if t.shape is not None and len(t.shape) < 3:
        raise ValueError("`as batch` views a stack of matrices (rank ≥ 3)")
    return Tensor(("m", "n"), batched=True)


VIEWS: dict[str, ViewDef] = {v.name: v for v in [
    ViewDef("matrix", "flatten trailing dims: (out, in, kh, kw) → (out, in·kh·kw), as Muon does for conv kernels",
            0, _matrix_type, lambda s, a: None if len(s) >= 2 else "needs rank ≥ 2",
            lambda x, a: x.reshape(x.shape[0], math.prod(x.shape[1:]))),
    ViewDef("heads", "split the rows into h equal blocks, one matrix per attention head: (m, n) → (h, m/h, n)",
            1, _heads_type, _heads_check, lambda x, a: x.reshape(a[0], x.shape[0] // a[0], x.shape[1])),
    ViewDef("split", "split the rows into k equal blocks (fused QKV: split(3)): (m, n) → (k, m/k, n)",
            1, _heads_type, _heads_check, lambda x, a: x.reshape(a[0], x.shape[0] // a[0], x.shape[1])),
    ViewDef("batch", "a stack of matrices (MoE experts): leading dims are a batch, each matrix on its own",
            0, _stack_type, lambda s, a: None if len(s) >= 3 else "needs rank ≥ 3", lambda x, a: x),
]}


def rule_type(rank: int | None) -> Tensor:
    """The body's type of the parameter for a rule whose selector implies `rank`."""
    if rank is None:
        return Tensor(None)
    return Tensor({0: (), 1: ("n",), 2: ("m", "n"), 3: ("b", "m", "n"), 4: ("o", "i", "kh", "kw")}[rank])


def viewed_shape(rule: RuleInfo, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape the rule's body sees for a parameter of this shape: the view applied to a meta tensor, so the
    view's own reshape decides it and nothing is allocated."""
    if rule.view is None:
        return tuple(shape)
    return tuple(rule.view.forward(torch.empty(shape, device="meta"), rule.view_args).shape)


# ---- binding a parameter -------------------------------------------------------------------------------
def bind_rule(optimizer: OptimizerInfo, info: ParamInfo) -> tuple[int, int, tuple[int, ...]] | Diagnostic:
    """The first rule that selects a parameter: (rule index, rank, active steps), or why none can.

    A rule selects a parameter when its selector words hold and at least one step of its chain applies;
    steps are matched against the parameter as the rule's view shows it (a conv kernel `as matrix` is a
    matrix to the steps)."""
    shape = info.shape
    for rule in optimizer.rules:
        if not selector_matches(rule.terms, info):
            continue
        seen = info
        if rule.view is not None:
            why = rule.view.check(shape, rule.view_args)
            if why:
                return Diagnostic(
                    "GEO0402", f"parameter `{info.name}` of shape {show_shape(shape)} does not fit "
                    f"`{rule.binder.view.span.text}`", Label(rule.binder.view.span, why),
                    notes=[f"the rule `{rule.text}` selected it (role: {info.role})"],
                    help="select it with another rule, or choose a view that fits its shape")
            seen = ParamInfo(info.name, viewed_shape(rule, shape)[-2:], info.role)
        active = rule.active_steps(seen)
        if active:
            return rule.index, len(shape), active
    return Diagnostic(
        "GEO0401", f"parameter `{info.name}` of shape {show_shape(shape)} matches no rule of `{optimizer.name}`",
        Label(optimizer.span.head(), f"`{info.name}` (role: {info.role}) reaches none of these rules"),
        [Label(r.binder.span, "does not select it") for r in optimizer.rules],
        notes=[f"roles: {', '.join(ROLES)}; selectors: {', '.join(SELECTORS)}"],
        help="add a rule that selects it (e.g. `for tensor p = adamw`), or pass only the parameters this "
             "optimizer is meant for")


def misfit(program: Program, rule: RuleInfo, shape: tuple[int, ...], pname: str) -> Diagnostic | None:
    """The first shape requirement of a program (`require n == m`, from `W @ W` or `W + W.T`) that a parameter
    of this shape, seen through the rule's view, breaks; None when it fits."""
    dims = program.param_type.shape
    if not program.constraints or dims is None:
        return None
    seen = viewed_shape(rule, shape)
    seen = seen[len(seen) - len(dims):] if len(dims) <= len(seen) else ()
    sizes: dict[str, int] = {}
    for d, n in zip(dims, seen):
        if isinstance(d, str):
            sizes.setdefault(d, int(n))
    for c in program.constraints:
        a = c.left if isinstance(c.left, int) else sizes.get(c.left)
        b = c.right if isinstance(c.right, int) else sizes.get(c.right)
        if a is not None and b is not None and a != b:
            return Diagnostic(
                "GEO0402", f"parameter {pname} of shape {show_shape(shape)} does not fit `{rule.text}`: {c.what}",
                Label(c.span, f"needs `{c.left}` == `{c.right}`, here {a} and {b}"),
                notes=[f"the rule sees it as `{program.param_type.show()}` with "
                       + ", ".join(f"{k} = {v}" for k, v in sizes.items())],
                help="select it with another rule, or write the step so that it holds for this shape")
    return None


def slot_shape(slot: StateSlot, shape: tuple[int, ...], rule: RuleInfo) -> tuple[int, ...] | None:
    """The shape a state slot has for a parameter of this shape: the viewed shape for a tensor of the
    parameter's shape, ones kept where the slot keeps a dimension of 1 (a row norm), () for a scalar; None when
    the slot's shape is not known from the parameter's alone."""
    if not isinstance(slot.type, Tensor):
        return ()
    seen = viewed_shape(rule, shape)
    if slot.type.shape is None:
        return seen
    # The slot's dims are the body's dim names (`m`, `n`, ...) or sizes: a Gram factor `W @ W.T` is [m, m], a row
    # of column statistics [1, n], a per-shape program's slot is all sizes.
    body = rule_type(len(shape))
    if rule.view is not None:
        try:
            body = rule.view.type(body, rule.view_args)
        except ValueError:
            return None
    names = body.shape or ()
    lead = seen[:len(seen) - len(names)]
    sizes = {d: n for d, n in zip(names, seen[len(seen) - len(names):]) if isinstance(d, str)}
    dims = []
    for d in slot.type.shape:
        if d == 1:
            dims.append(1)
        elif isinstance(d, int):  # a size the type bounds rather than fixes (`right_init`'s min(rank, m, n))
            return None
        elif d in sizes:
            dims.append(sizes[d])
        else:
            return None
    if slot.type.batched:  # leading batch dims: the parameter's, as the view shows them
        return tuple(lead) + tuple(dims) if body.batched else None
    return tuple(dims)


def show_shape(shape: Iterable[int]) -> str:
    """A shape as Python writes a tuple: (768, 3072), (4,), ()."""
    shape = tuple(shape)
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
