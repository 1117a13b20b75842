"""The Triton backend's tests run its kernels in Triton's interpreter, on CPU tensors and small shapes
(with GEO_TEST_DEVICE=cuda, tests/triton/test_triton_agreement.py runs them compiled, on a GPU).

TRITON_INTERPRET must be set before Triton is imported (its `jit` decides then); the kernel cache goes to a
temporary folder, never to the user's ~/.cache/geo. Without Triton installed these tests are not collected.
"""
from __future__ import annotations

import os

# GEO_TEST_DEVICE=cuda runs the agreement tests on a GPU with compiled kernels (benchmarks/gpu_check.sh).
if os.environ.get("GEO_TEST_DEVICE", "cpu") == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402

try:
    import triton  # noqa: F401,E402
except ImportError:  # the optional dependency (pip install geo[triton])
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(autouse=True, scope="session")
def _kernel_cache(tmp_path_factory):
    """One kernel cache for the session, in a temporary folder."""
    folder = tmp_path_factory.mktemp("geo-cache")
    before = os.environ.get("GEO_CACHE_DIR")
    os.environ["GEO_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("GEO_CACHE_DIR", None)
    else:
        os.environ["GEO_CACHE_DIR"] = before
