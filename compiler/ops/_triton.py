"""Triton lowerings for the elementwise operators' `triton` facets (compiler/backends/triton/codegen.py).

A facet is `fn(args, attrs) -> str`: the Triton expression of the operator applied to argument expressions
(`args`, strings naming Triton tensors — blocks or 0-d values — all in the kernel's compute dtype, fp32 or
fp64) and the node's static attributes. The result must be in that dtype too. `G.` names the device library
compiler/backends/triton/device.py (IEEE division and square root, NaN-propagating max/min, torch's lerp, the
transcendental functions). The generated code is reviewed in tests/golden/*.triton.
"""
from __future__ import annotations

from typing import Callable


def template(text: str) -> Callable[[list[str], dict], str]:
    """A lowering from a format string over the arguments: `template("({0} + {1})")`."""
    def lower(args: list[str], attrs: dict) -> str:
        return text.format(*args)
    lower.__doc__ = f"Triton: {text}"
    return lower
