"""The spec model: what the checker knows about a spec once its names are resolved.

A spec is a set of optimizers; an optimizer is an ordered list of rules (the first rule whose selector holds
takes a parameter); a rule is a chain of steps run in order on the same gradient (`adamw ∘ cautious`), each
with its own state namespace, and exposes the union of its steps' hyperparameters. A hyperparameter is
either static (it selects the compiled code: one program per value) or runtime (a number in the param group,
read at every step: schedulers change it without recompiling).

`compiler/resolve.py` builds this model from the AST (`check`), `compiler/elaborate.py` lowers one rule of it
to IR, and the runtime binds real parameters to its rules (`compiler/binding.py`).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Mapping

from ..dsl import ast
from ..dsl.diagnostics import Diagnostic, GeoError, Label
from ..dsl.source import Span, builtin_span, escaped
from .binding import ParamInfo, ViewDef, selector_matches, selector_rank
from .ops.registry import REQUIRED
from .types import DTYPES, SCALAR, Static, TupleT, Type, static_kind

# The storage dtypes a state may declare (`state m: bf16 = ...`).
STATE_DTYPES = tuple(DTYPES)
# Names every step body has without declaring them: the gradient and the step count.
BUILTINS = ("grad", "t")
# The route of an optimizer's `across` block (its RuleInfo); the prefix of its values as per-parameter inputs.
ACROSS = "across"
# State names the compiled program and optimizer keep for themselves (a state is saved under its own name).
RESERVED_STATES = {"param": "the compiled step returns the parameter's new value under that name",
                   "step": "the optimizer keeps the step count under that name, as torch.optim does"}
# Names the compiled optimizer already gives a meaning: its constructor's keywords, the param-group keys geo and
# torch.optim write or read (a hyperparameter lives in the param group under its own name).
RESERVED_HYPERS = ("params", "param_names", "geo_rule", "initial_lr", "roles", "backend", "nonfinite", "foreach",
                   "fused", "capturable", "differentiable", "maximize", "seed")

__all__ = ["STATE_DTYPES", "BUILTINS", "ACROSS", "RESERVED_STATES", "RESERVED_HYPERS", "REQUIRED", "Interval", "HyperInfo",
           "StepUse", "RuleInfo", "OptimizerInfo", "Checked"]


@dataclass(frozen=True)
class Interval:
    """The values a numeric hyperparameter may take (`lr = 1e-3 in [0, inf)`): from `lo` to `hi`, each end
    closed (included) or open. A tuple hyperparameter's range holds for each of its numbers."""

    lo: float
    hi: float
    lo_closed: bool = True
    hi_closed: bool = True

    def __contains__(self, value: float) -> bool:
        if value != value:  # NaN is in no range
            return False
        above = value >= self.lo if self.lo_closed else value > self.lo
        below = value <= self.hi if self.hi_closed else value < self.hi
        return above and below

    def empty(self) -> bool:
        return not (self.lo < self.hi or (self.lo == self.hi and self.lo_closed and self.hi_closed))

    def intersect(self, other: "Interval") -> "Interval":
        """The values in both: the higher low end (closed only where both that are that high are closed), and the
        lower high end likewise."""
        if self.lo != other.lo:
            lo, lo_closed = max((self.lo, self.lo_closed), (other.lo, other.lo_closed), key=lambda e: e[0])
        else:
            lo, lo_closed = self.lo, self.lo_closed and other.lo_closed
        if self.hi != other.hi:
            hi, hi_closed = min((self.hi, self.hi_closed), (other.hi, other.hi_closed), key=lambda e: e[0])
        else:
            hi, hi_closed = self.hi, self.hi_closed and other.hi_closed
        return Interval(lo, hi, lo_closed, hi_closed)

    def show(self) -> str:
        return (f"{'[' if self.lo_closed else '('}{_end(self.lo)}, {_end(self.hi)}{']' if self.hi_closed else ')'}")


def _end(v: float) -> str:
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    return repr(int(v)) if float(v).is_integer() and abs(v) < 1e16 else repr(float(v))


@dataclass
class HyperInfo:
    name: str
    static: bool
    default: Any            # a Python value, or REQUIRED
    span: Span
    choices: tuple[Any, ...] = ()  # a static's declared values (`one_of(...)`); empty: any value of its kind
    range: Interval | None = None  # the numbers it may take (`in [0, inf)`), each number of a tuple; None: any

    def out_of_range(self, value: Any) -> tuple[str, Any] | None:
        """The first number of `value` (a number, or a tuple of numbers) outside the declared range, with how to
        name it (`betas[1]`); None when all are inside, or there is no range."""
        if self.range is None:
            return None
        items = list(enumerate(value)) if isinstance(value, tuple) else [(None, value)]
        for i, v in items:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v not in self.range:
                return (self.name if i is None else f"{self.name}[{i}]"), v
        return None

    def range_error(self, opt: str, value: Any) -> str | None:
        """The message of the ValueError for a value outside the range (None: inside), as torch.optim raises one
        for `lr=-1`: `adamw: `lr` must be in [0, inf), got -1.0`."""
        outside = self.out_of_range(value)
        if outside is None:
            return None
        return f"{opt}: `{outside[0]}` must be in {self.range.show()}, got {outside[1]!r}"

    @property
    def type(self) -> Type:
        if self.static:
            return Static(static_kind(self.default))
        if isinstance(self.default, tuple):
            return TupleT(tuple(SCALAR for _ in self.default))
        return SCALAR

    def check_static(self, opt: str, value: Any) -> Any:
        """A value for this static hyperparameter of optimizer `opt`, as the constructor, a param group and
        `geo compile --static` take it: of the default's kind (an int where a float is declared becomes one)
        and among the declared choices; TypeError or ValueError naming `opt` otherwise."""
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not kind:
            article = "an" if kind.__name__[0] in "aeiou" else "a"
            raise TypeError(f"{opt}: static hyperparameter `{self.name}` takes {article} {kind.__name__}, got {value!r}")
        if self.choices and value not in self.choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1)
            raise ValueError(f"{opt}: static hyperparameter `{self.name}` is one of "
                             f"{', '.join(repr(c) for c in self.choices)}; got {value!r}"
                             + (f" (did you mean {close[0]!r}?)" if close else ""))
        problem = self.range_error(opt, value)
        if problem is not None:
            raise ValueError(problem)
        return value


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
    view: ViewDef | None = None
    view_args: tuple[Any, ...] = ()
    randomized: bool = False            # some step draws random numbers (set when the checker meets a draw)
    rank_dependent: bool = False        # of unknown rank, with static choices the rank decides (set by the checker)

    @property
    def is_across(self) -> bool:
        """The optimizer's `across` block (route "across"): its parameter is the vector of the layers' indices."""
        return self.route == ACROSS

    @property
    def terms(self) -> list[tuple[str, str | None, bool]]:
        return [(t.word, t.pattern, t.negated) for t in self.binder.selector]

    @property
    def text(self) -> str:
        if self.is_across:
            return "across " + escaped(self.binder.span.text.strip())
        written = escaped(self.binder.span.text.strip())  # printed by every stage: never a raw control character
        implicit = not self.binder.selector and written != self.binder.name and self.binder.view is None
        return ("= " if implicit else "for ") + written

    def rank(self) -> int | None:
        """The rank the rule's own selector fixes (None: the rule is compiled per rank it meets)."""
        return selector_rank(self.binder.selector)

    def step_rank(self, i: int) -> int | None:
        """The rank step `i`'s own selector fixes (a `matrix` step in a chain that also serves vectors)."""
        return selector_rank(self.chain[i].binder.selector)

    def variants(self) -> list[tuple[int | None, tuple[int, ...]]]:
        """The (rank, active steps) this rule is checked and printed for, the one list every front door uses.

        A rule whose selector fixes a rank is one variant with every step. A rule of unknown rank gets one
        variant per rank its steps ask for (a `matrix` step in a chain that also serves vectors runs only for
        matrices), and one generic variant (rank None) for the steps that ask for none; a variant with no
        active step is dropped (`optimizer x = s` with `step s(matrix W; …)` is a matrix rule)."""
        if self.is_across:  # its selector picks the layers; its body sees one vector over them
            return [(1, (0,))]
        step_ranks = [self.step_rank(i) for i in range(len(self.chain))]
        if self.rank() is not None:
            return [(self.rank(), tuple(range(len(self.chain))))]
        out = []
        # A rank-dependent rule (`if ndim(W) == 2:`) is checked and printed for each rank a parameter may have.
        ranks = (0, 1, 2, 3, 4) if self.rank_dependent else [None] + step_ranks
        for rank in dict.fromkeys(ranks):
            active = tuple(i for i, r in enumerate(step_ranks) if r is None or r == rank)
            if active:
                out.append((rank, active))
        return out

    def active_steps(self, info: ParamInfo) -> tuple[int, ...]:
        """The steps of the chain whose own selectors match this parameter (the others are skipped)."""
        return tuple(i for i, s in enumerate(self.chain)
                     if selector_matches([(t.word, t.pattern, t.negated) for t in s.binder.selector], info))

    def statics(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The rule's static hyperparameter values, by name: from `values` (a param group, overrides) where it
        has them, else the declared defaults. They choose the program the rule compiles to."""
        given = values if values is not None else {}
        return {k: given.get(k, h.default) for k, h in self.hypers.items() if h.static}


@dataclass
class OptimizerInfo:
    name: str
    doc: str | None
    span: Span
    rules: list[RuleInfo]
    fingerprint: str                    # hash of the spec text of every module it came from
    across: RuleInfo | None = None      # the `across` block, run once per step before the rules
    exports: tuple[str, ...] = ()       # the names its top-level `let`s and `state`s give every rule

    @property
    def uses_global(self) -> bool:
        """The optimizer keeps optimizer-level state in its state dict (`geo_global`): a generator seed for
        random draws, the `across` block's step count and states."""
        return self.across is not None or any(r.randomized for r in self.rules)

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

    def select(self, source_name: str, name: str | None = None) -> OptimizerInfo:
        """The optimizer a front door means: `name`, else the spec's only root optimizer, else the one named
        like the file (`muon.geo` → `muon`); GEO0115 otherwise."""
        roots = self.root_optimizers
        stem = PurePath(source_name).stem
        if name is not None:
            if name in self.optimizers:
                return self.optimizers[name]
            problem = f"the spec defines no optimizer `{name}`"
        elif len(roots) == 1:
            return self.optimizers[roots[0]]
        elif stem in roots:
            return self.optimizers[stem]
        elif not roots:
            problem = "the spec defines no optimizer"
        else:
            problem = f"the spec defines {len(roots)} optimizers; choose one with name="
        raise GeoError([Diagnostic("GEO0115", problem, Label(builtin_span(source_name)),
                                   notes=[f"optimizers: {', '.join(roots) or 'none'}"])])
