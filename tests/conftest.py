"""Shared fixtures; `pytest --update-goldens` rewrites golden files from the current output."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true", help="rewrite golden files instead of comparing")


@pytest.fixture
def golden(request):
    """golden(path, text): compares text with the file (or writes it with --update-goldens)."""
    update = request.config.getoption("--update-goldens")

    def check(path: Path, text: str) -> None:
        if update or not path.exists():
            if not update:
                pytest.fail(f"golden file {path} is missing; run pytest --update-goldens to create it")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        expected = path.read_text()
        assert text == expected, f"{path} differs from the current output; run pytest --update-goldens if intended"

    return check


@pytest.fixture
def single_blas_thread():
    """One BLAS thread for small-matrix tests: on a loaded 2-core machine two threads only add contention."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
