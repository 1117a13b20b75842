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
from ..compiler.pipeline import specialize
from ..compiler.spec import Checked, OptimizerInfo, RuleInfo

BACKENDS = (backends.AUTO, *backends.BACKENDS)


class CompiledSpec:
    """One optimizer of a checked spec, with the programs specialized so far (by rule, statics, rank)."""

    def __init__(self, checked: Checked, info: OptimizerInfo, backend: str):
        self.checked, self.info, self.backend = checked, info, backend
        self.token = uuid.uuid4().hex  # this class, in this process (pickling: runtime/api.py's `restore`)
        self._programs: dict[tuple, Any] = {}
        self._runners: dict[tuple, Any] = {}

    @property
    def rules(self) -> list[RuleInfo]:
        return self.info.rules

    def ref(self) -> tuple[str, str, str, str, str]:
        """What rebuilds this optimizer in another process (pickling): the text and name of the spec file that
        defines it (its `use`s are found from that name again), its name, the backend, and the fingerprint of
        every module involved, to refuse a spec that changed since."""
        source = self.info.span.source
        return source.name, source.text, self.info.name, self.backend, self.info.fingerprint

    def program(self, rule: RuleInfo, statics: dict[str, Any], rank: int | None, active: tuple[int, ...]):
        """The rule specialized to these static values and rank (every backend runs the same program)."""
        key = (rule.index, _statics_key(statics), rank, active)
        found = self._programs.get(key)
        if found is None:
            found = self._programs[key] = specialize(self.checked, rule, statics, rank, active)
        return found

    def runner(self, rule: RuleInfo, statics: dict[str, Any], rank: int | None, active: tuple[int, ...],
               backend: str) -> Any:
        """The program lowered by a backend ("torch", "triton" or "reference"; resolve "auto" first)."""
        key = (rule.index, _statics_key(statics), rank, active, backend)
        found = self._runners.get(key)
        if found is None:
            program = self.program(rule, statics, rank, active)
            found = backends.backend(backend)(program)
            self._runners[key] = found
        return found


def _statics_key(statics: dict[str, Any]) -> tuple:
    # repr, as the IR's interning does: 1, 1.0 and True are equal (and hash alike) in Python, but not as static values.
    return tuple(sorted((k, repr(v)) for k, v in statics.items()))

