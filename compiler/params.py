"""How rules meet real parameters: roles, selectors and matrix views.

A rule `for hidden matrix W as heads(8):` selects parameters with the selector words `hidden` and `matrix`
(all must hold; `not bias` negates, `name "*.attn.*"` matches the parameter's name) and shows each one to the
body through the view `heads(8)`. Selectors and views are registries like the operators': the grammar knows
none of their names.

Roles come from the parameter's name (from `named_parameters()`), unless the constructor's `roles=` says
otherwise: embedding (`embed`, `wte`, `wpe`, `tok_embeddings`), head (`lm_head`, `head`, `classifier`,
`output`), bias (1-D named `*bias`), norm (other 1-D and 0-D), hidden (everything else of rank ≥ 2).
"""
from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .types import Tensor

ROLES = ("hidden", "embedding", "head", "bias", "norm")


@dataclass(frozen=True)
class ParamInfo:
    name: str
    shape: tuple[int, ...]
    role: str


_EMBED = re.compile(r"(^|[._])(embed\w*|wte|wpe|tok_embeddings|embeddings?)([._]|$)")
_HEAD = re.compile(r"(^|[._])(lm_head|head|classifier|output)([._]|$)")


def infer_role(name: str, shape: tuple[int, ...]) -> str:
    if len(shape) >= 2:
        if _EMBED.search(name):
            return "embedding"
        if _HEAD.search(name):
            return "head"
        return "hidden"
    return "bias" if name.endswith("bias") else "norm"


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
