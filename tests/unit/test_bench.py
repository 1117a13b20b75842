"""`geo bench` (benchmarks/bench_step.py) runs and reports what it says; no timing is asserted here."""
from __future__ import annotations

import json
import math
import os
import platform

import pytest

import geo.cli as cli


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_bench_tiny_through_the_cli(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = cli.main(["bench", "--preset", "tiny", "--steps", "1", "--warmup", "1", "--specs", "adamw", "sgd", "lion",
                   "--no-compile-time", "--json", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    labels = {r["label"] for r in result["measurements"]}
    assert {"geo adamw [auto]", "geo sgd [auto]", "geo lion [auto]", "torch.optim.AdamW foreach=False",
            "torch.optim.AdamW foreach=True", "torch.optim.SGD foreach=True momentum=0.9"} <= labels
    for r in result["measurements"]:
        assert r["tensors"] > 0 and r["params"] > 0 and r["step_bytes"] > 0
        assert all(_finite_positive(r[k]) for k in ("median_ms", "min_ms", "first_ms", "gbps"))
        assert r["peak_fraction"] is None  # CPU: GB/s only
    by_key = {r["key"]: r for r in result["measurements"]}
    pairs = {(by_key[c["geo"]]["label"], by_key[c["baseline"]]["label"]) for c in result["comparisons"]}
    assert ("geo adamw [auto]", "torch.optim.AdamW foreach=True") in pairs
    assert ("geo lion [auto]", "torch.optim.SGD foreach=True momentum=0.9") in pairs
    assert all(_finite_positive(c["ratio"]) for c in result["comparisons"])
    # AdamW moves param, grad, exp_avg, exp_avg_sq: 7 float32 passes (plus the step counters)
    adamw = next(r for r in result["measurements"] if r["label"] == "geo adamw [auto]")
    assert 7 * 4 * adamw["params"] <= adamw["step_bytes"] < 7 * 4 * adamw["params"] + 1024
    text = capsys.readouterr().out
    assert "geo adamw [auto]" in text and "baseline/geo" in text
    assert result["env"]["preset"] == "tiny" and result["env"]["torch"]
    assert result["env"]["malloc"] in ("default",) or result["env"]["malloc"].startswith("GLIBC_TUNABLES=")
    assert all(isinstance(r["faults_per_step"], (int, float)) and r["faults_per_step"] >= 0
               for r in result["measurements"])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="GLIBC_TUNABLES is glibc's")
def test_steady_malloc_runs_the_benchmark_again_with_glibc_s_thresholds_fixed(tmp_path):
    """`--steady-malloc` reruns the benchmark in a child process with GLIBC_TUNABLES set (glibc reads it at
    start), and the result says so; this process's environment stays as it was."""
    out = tmp_path / "bench.json"
    before = os.environ.get("GLIBC_TUNABLES")
    rc = cli.main(["bench", "--preset", "tiny", "--steps", "2", "--warmup", "1", "--specs", "sgd",
                   "--no-compile-time", "--steady-malloc", "--json", str(out)])
    assert rc == 0
    env = json.loads(out.read_text())["env"]
    assert env["malloc"].startswith("GLIBC_TUNABLES=glibc.malloc.mmap_threshold=")
    assert os.environ.get("GLIBC_TUNABLES") == before
