"""torch, imported when first used: the compiler's front end (`geo check`, `geo compile --emit ir`, `geo --help`)
runs without it, and importing torch costs 2–7 s on a loaded machine.

A module that needs torch only inside its functions writes `torch = lazy_torch(globals())`. Until torch is
loaded that name is a stand-in; its first attribute lookup imports torch and puts the real module in that
module's globals, so every later lookup is an ordinary global one (no cost on the step's hot path). Module-level
code of such a module must not touch torch (annotations are strings under `from __future__ import annotations`;
defaults that would name a torch dtype are None and resolved inside). tests/unit/test_cold_start.py checks
that `geo check` of every stdlib spec leaves torch unimported.
"""
from __future__ import annotations

import sys
from typing import Any


class _LazyTorch:
    __slots__ = ("_namespace",)

    def __init__(self, namespace: dict[str, Any]):
        object.__setattr__(self, "_namespace", namespace)

    def __getattr__(self, name: str) -> Any:
        import torch
        self._namespace["torch"] = torch
        return getattr(torch, name)

    def __repr__(self) -> str:
        return "<torch, imported on first use>"


def lazy_torch(namespace: dict[str, Any]) -> Any:
    """`torch = lazy_torch(globals())`: the torch module if it is loaded already, else a stand-in that loads it on
    first use and then replaces itself in `namespace`."""
    return sys.modules.get("torch") or _LazyTorch(namespace)
