"""Common-subexpression and dead-code elimination: a rebuild into a fresh interning graph."""
from __future__ import annotations

from ..ir import Program
from . import rebuild


def cse_dce(program: Program) -> Program:
    return rebuild(program)
