"""Canonicalization: applies every operator's own rewrite rules (from the registry) until nothing changes.

Names no operator (xDSL's canonicalize): an operator's rules live in its registry record.
"""
from __future__ import annotations

from ..ir import Graph, Node, Program
from ..ops import registry
from . import rebuild


def canonicalize(program: Program) -> Program:
    def replace(node: Node, graph: Graph) -> Node | None:
        opdef = registry.get(node.op)
        if opdef is None:
            return None
        for rule in opdef.rewrites:
            out = rule.fn(node, graph)
            if out is not None and out is not node:
                return out
        return None
    return rebuild(program, replace)
