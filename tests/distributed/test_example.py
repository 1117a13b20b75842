"""examples/train_distributed.py under torchrun (2 CPU ranks, gloo): it trains, checkpoints with DCP, resumes, and
the resumed run ends on the same loss bit for bit."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_train_distributed_runs_under_torchrun():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(ROOT / "examples" / "train_distributed.py")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    final = re.search(r"final loss ([0-9.]+); resumed run ([0-9.]+) \(identical\); first loss ([0-9.]+)", out.stdout)
    assert final, out.stdout
    assert float(final.group(1)) < 0.1 * float(final.group(3))  # it learns
