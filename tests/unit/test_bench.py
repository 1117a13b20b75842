"""`geo bench` (benchmarks/bench_step.py) runs and reports what it says; no timing is asserted here."""
from __future__ import annotations

import json
import math

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


def test_bench_markdown_and_cold_compile(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = cli.main(["bench", "--preset", "tiny", "--steps", "1", "--warmup", "1", "--specs", "muon", "--markdown",
                   "--json", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert {r["label"] for r in result["measurements"]} == {"geo muon [auto]", "torch.optim.Muon"}
    assert all(r["subset"] == "hidden" for r in result["measurements"])  # the 2-D hidden matrices only
    (row,) = result["compile"]
    assert row["spec"] == "muon" and "error" not in row, row
    assert all(_finite_positive(row[k]) for k in ("compile_ms", "build_ms", "first_step_ms", "ready_ms", "again_ms"))
    text = capsys.readouterr().out
    assert "| geo muon [auto] | torch.optim.Muon (hidden) |" in text
    assert "| muon |" in text
    assert sum(line.startswith("|---") for line in text.splitlines()) == 3  # three tables


@pytest.mark.parametrize("argv", [["--preset", "huge"], ["--steps", "-1"], ["--specs", "nope"],
                                  ["--backend", "reference"]])
def test_bench_usage_errors_exit_2(argv, capsys):
    assert cli.main(["bench", *argv]) == 2


def test_bench_without_the_source_tree(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "cli.py"))
    assert cli.main(["bench", "--preset", "tiny"]) == 2
    assert "benchmarks" in capsys.readouterr().err
