"""geo: a small language for optimizer steps built from geometric operators, and its compiler.

    import geo
    Muon = geo.compile("muon")                # a stdlib name, a path, or spec text
    opt = Muon(model.parameters(), lr=0.02)   # a real torch.optim.Optimizer

`geo.compile`, `geo.roles` and the runtime's exceptions and warnings are imported on first use: the command line (`geo --help`, `geo check`)
and the compiler's front end never import torch, which takes seconds to load.
"""
# Absolute imports: pytest's set-up of the checkout's root package imports this file by its path, under the
# checkout folder's name (or, where that is not an identifier, as a lone module); it must still find geo.
from geo.dsl.diagnostics import GeoError, InternalError  # noqa: E402
from geo.version import __version__  # noqa: E402

__all__ = ["compile", "roles", "GeoError", "InternalError", "CheckpointError", "RoutingWarning", "__version__"]

_RUNTIME = ("compile", "roles", "CheckpointError", "RoutingWarning")


def __getattr__(name: str):
    if name in _RUNTIME:
        from geo.runtime import api
        value = getattr(api, name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'geo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_RUNTIME))
