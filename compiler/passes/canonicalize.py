"""Rewrite passes driven by the registry: every operator's own rules, applied until nothing changes.

Names no operator (xDSL's canonicalize): an operator's rules live in its registry record.
"""
from __future__ import annotations

from ..ir import Graph, Node, Program
from ..ops import registry
from . import rebuild


def apply_rewrites(program: Program, stage: str) -> Program:
    """Rebuilds the program, offering each node to its operator's rewrite rules of `stage`."""
    def replace(node: Node, graph: Graph) -> Node | None:
        opdef = registry.get(node.op)
        if opdef is None:
            return None
        for rule in opdef.rewrites:
            if rule.stage != stage:
                continue
            out = rule.fn(node, graph)
            if out is not None and out is not node:
                return out
        return None
    return rebuild(program, replace)


def canonicalize(program: Program) -> Program:
    return apply_rewrites(program, "canonicalize")


def contract(program: Program) -> Program:
    """Fuses `x + s·y` into axpy and `x + s·a·b` into addcmul (one rounding, as torch.optim computes)."""
    return apply_rewrites(program, "contract")
