"""A calling-convention adapter for references whose static arguments come before value arguments.

The checker binds a call's arguments in the order of the reference's signature, so a spec can read
`lmo(g, "spectral", radius = 0.5)`: `kind` (static) sits between `g` and `radius` (values). `OpDef.apply`
then calls `reference(*values, **statics)`, which for such a signature would hand `radius` to `kind`.
`values_first` keeps the declared signature (what the checker and `geo doc` see, via `__wrapped__`) and
accepts the registry's convention by binding the values by name. (Private module: not an op family.)
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable


def values_first(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps `fn` so that positional arguments fill its value (non-`StaticArg`) parameters in order."""
    value_names = [p.name for p in inspect.signature(fn).parameters.values()
                   if p.annotation not in ("StaticArg",) and getattr(p.annotation, "__name__", "") != "StaticArg"]

    @functools.wraps(fn)
    def reference(*values: Any, **statics: Any) -> Any:
        if len(values) > len(value_names):
            raise TypeError(f"{fn.__name__} takes {len(value_names)} value arguments, got {len(values)}")
        return fn(**dict(zip(value_names, values)), **statics)

    return reference
