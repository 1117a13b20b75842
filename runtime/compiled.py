"""A compiled optimizer: one optimizer of a checked spec, and the programs specialized from it so far.

A rule compiles to one program per (static hyperparameter values, parameter rank, active steps): static values
select the code, and a rank-free rule is specialized to each rank it meets. Every backend lowers the same
program, so programs are cached once and the backends' runners on top of them, by backend. Specializing is
the expensive part of binding (elaboration and the passes), and a model has many parameters of few shapes:
the cache makes that cost per distinct key rather than per parameter.
"""
from __future__ import annotations

import uuid
from typing import Any

from ..compiler import backends
from ..compiler.backends.reference import evaluate
from ..compiler.ir import reachable
from ..compiler.pipeline import specialize
from ..compiler.binding import viewed_shape
from ..compiler.spec import Checked, OptimizerInfo, RuleInfo
from ..dsl.diagnostics import InternalError

BACKENDS = (backends.AUTO, *backends.BACKENDS)


class CompiledSpec:
    """One optimizer of a checked spec, with the programs specialized so far (by rule, statics, rank)."""

    def __init__(self, checked: Checked, info: OptimizerInfo, backend: str):
        self.checked, self.info, self.backend = checked, info, backend
        self.token = uuid.uuid4().hex  # this class, in this process (pickling: runtime/api.py's `restore`)
        self._programs: dict[tuple, Any] = {}
        self._runners: dict[tuple, Any] = {}
        self._guard_nodes: dict[int, list] = {}  # id(full program) -> what its guards need, in order

    @property
    def rules(self) -> list[RuleInfo]:
        return self.info.rules

    def ref(self) -> tuple[str, str, str, str, str]:
        """What rebuilds this optimizer in another process (pickling): the text and name of the spec file that
        defines it (its `use`s are found from that name again), its name, the backend, and the fingerprint of
        every module involved, to refuse a spec that changed since."""
        source = self.info.span.source
        return source.name, source.text, self.info.name, self.backend, self.info.fingerprint

    def program(self, rule: RuleInfo, statics: dict[str, Any], rank: int | None, active: tuple[int, ...],
                firing: frozenset | None = None, shape: tuple[int, ...] | None = None):
        """The rule specialized to these static values and rank (every backend runs the same program); with
        `firing`, the specialization that runs only those `when` blocks (None: all, the full program). A rule
        whose static choices read the parameter's sizes (`per_shape`) is specialized to `shape` too (the
        parameter's own shape; without one, the program for no shape: it has the states, but does not run)."""
        key = (rule.index, _statics_key(statics), rank, active, firing)
        found = self._programs.get(key)
        if found is None:
            found = self._programs[key] = specialize(self.checked, rule, statics, rank, active, firing=firing)
        if found.per_shape and shape is not None:
            dims = viewed_shape(rule, tuple(shape)) if rule.index >= 0 else tuple(shape)
            key = key + (dims,)
            found = self._programs.get(key)
            if found is None:
                found = self._programs[key] = specialize(self.checked, rule, statics, rank, active, firing=firing,
                                                         dims=dims)
        return found

    def runner(self, rule: RuleInfo, statics: dict[str, Any], rank: int | None, active: tuple[int, ...],
               backend: str, firing: frozenset | None = None, shape: tuple[int, ...] | None = None) -> Any:
        """The program lowered by a backend ("torch", "triton" or "reference"; resolve "auto" first)."""
        program = self.program(rule, statics, rank, active, firing, shape)
        if program.per_shape:
            raise InternalError("runtime", f"rule `{rule.text}` is compiled per parameter shape, and no shape was "
                                "given", None, "")
        key = (rule.index, _statics_key(statics), rank, active, backend, firing, program.param_type)
        found = self._runners.get(key)
        if found is None:
            found = self._runners[key] = backends.backend(backend)(program)
        return found

    def firing(self, program, param: Any, grad: Any, hypers: dict[str, Any], t: float,
               inputs: dict[str, Any] | None = None) -> frozenset | None:
        """Which `when`/`every` blocks of a full program run at this step of this parameter: its guards evaluated
        on the host (from `t`, hyperparameters, shape facts and per-parameter inputs; no device work)."""
        if not program.guards:
            return None
        nodes = self._guard_nodes.get(id(program))
        if nodes is None:
            nodes = self._guard_nodes[id(program)] = reachable(list(program.guards.values()))
        values = evaluate(nodes, {"param": param, "grad": grad, "hypers": hypers, "t": t, "state": {},
                                  "inputs": inputs or {}})
        return program.firing(values)


def _statics_key(statics: dict[str, Any]) -> tuple:
    # repr, as the IR's interning does: 1, 1.0 and True are equal (and hash alike) in Python, but not as static values.
    return tuple(sorted((k, repr(v)) for k, v in statics.items()))

