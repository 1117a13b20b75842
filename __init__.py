"""geo: a small language for optimizer steps built from geometric operators, and its compiler.

    import geo
    Muon = geo.compile("muon")                # a stdlib name, a path, or spec text
    opt = Muon(model.parameters(), lr=0.02)   # a real torch.optim.Optimizer
"""
# Absolute imports: pytest's set-up of the checkout's root package imports this file by its path, under the
# checkout folder's name (or, where that is not an identifier, as a lone module); it must still find geo.
from geo.dsl.diagnostics import GeoError, InternalError  # noqa: E402
from geo.version import __version__  # noqa: E402
from geo.runtime.api import compile, CheckpointError  # noqa: E402,A004

__all__ = ["compile", "GeoError", "InternalError", "CheckpointError", "__version__"]
