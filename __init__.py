"""geo: a small language for optimizer steps built from geometric operators, and its compiler.

    import geo
    Muon = geo.compile("muon")                # a stdlib name, a path, or spec text
    opt = Muon(model.parameters(), lr=0.02)   # a real torch.optim.Optimizer
"""
__version__ = "0.1.0"

from .dsl.diagnostics import GeoError, InternalError  # noqa: E402
from .runtime.api import compile, CheckpointError  # noqa: E402,A004

__all__ = ["compile", "GeoError", "InternalError", "CheckpointError", "__version__"]
