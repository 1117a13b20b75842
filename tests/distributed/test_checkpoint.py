"""torch.distributed.checkpoint of a sharded geo optimizer (issue 11): save on 2 ranks, resume on 2 (bit for bit)
and on 3 (DCP reshards the DTensor states), and a checkpoint of another spec refused before any state is read."""
from __future__ import annotations

import pytest
import torch

import _workers
from _spawn import run_ranks

NAMES = ["adamw", "auon", "muon", "normuon", "muon_adamw", "aro"]  # local, reduce, msign, row statistics, routed, across


@pytest.mark.slow
def test_dcp_resume_same_world_bit_exact_and_reshard_2_to_3(tmp_path):
    path = str(tmp_path)
    straight = run_ranks(_workers.dcp_roundtrip, 2, NAMES, path, "save", 3)[0]
    resumed = run_ranks(_workers.dcp_roundtrip, 2, NAMES, path, "resume", 3)[0]
    for name in NAMES:
        for p in straight[name]:
            assert torch.equal(straight[name][p], resumed[name][p]), (name, p)
    resharded = run_ranks(_workers.dcp_roundtrip, 3, NAMES, path, "resume", 3)[0]
    for name in NAMES:
        worst = max(_workers.rel(resharded[name][p], straight[name][p]) for p in straight[name])
        assert worst <= (1e-6 if name == "adamw" else 1e-2), (name, worst)
    errors = run_ranks(_workers.dcp_wrong_spec, 2, path, "adamw", "lion")
    assert errors[0] == errors[1] and errors[0].startswith("CheckpointError") and "`adamw`, not `lion`" in errors[0]
