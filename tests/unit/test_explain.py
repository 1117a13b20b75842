"""`geo explain`: per-parameter rule, state bytes, kernels, bytes moved and FLOPs (the plan's cost summary)."""
from __future__ import annotations

import contextlib
import io

from geo.cli import main


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args))
        except SystemExit as exit_:
            rc = exit_.code
    return rc, out.getvalue(), err.getvalue()


def test_adamw_is_one_kernel_that_moves_the_minimum():
    """AdamW fuses into one kernel per parameter that reads param, grad and both moments once and writes the
    parameter and both moments once: 4 reads and 3 writes of 4-byte elements."""
    rc, out, _ = run("explain", "adamw", "--param", "fc.weight=300x200")
    assert rc == 0
    numel = 300 * 200
    assert f"reads {4 * numel * 4 / 1e6:.2f} MB, writes {3 * numel * 4 / 1e6:.2f} MB" in out
    assert "step: 1 kernel, 0 ops" in out
    assert "exp_avg 0.24 MB, exp_avg_sq 0.24 MB" in out


def test_muon_counts_newton_schulz_flops():
    rc, out, _ = run("explain", "muon", "--param", "h.0.weight=256x64")
    assert rc == 0
    m, n, steps = 64, 256, 5  # rows ≤ cols orientation
    flops = steps * (4 * m * m * n + 2 * m ** 3)
    assert f"op msign" in out and f"{flops / 1e6:.2f} MFLOP" in out
    assert "step: 2 kernels, 1 op" in out


def test_bf16_state_is_counted_at_two_bytes():
    rc, out, _ = run("explain", "adamw", "--param", "w=1000", "--dtype", "bf16")
    assert rc == 0 and "exp_avg 2000 B" in out


def test_bad_param_is_a_usage_error():
    rc, _, err = run("explain", "adamw", "--param", "w=12xfoo")
    assert rc == 2 and "not sizes joined by x" in err


def test_a_parameter_no_rule_selects_is_a_diagnostic():
    rc, _, err = run("explain", "muon", "--param", "b=10")
    assert rc == 1 and "GEO0401" in err and "matches no rule" in err


def test_world_size_counts_owner_compute_traffic_by_hand():
    """muon on two row-split matrices over 2 ranks. Only msign needs the whole matrix: the momentum update runs on
    the rows, the owner gathers msign's input and returns its output's rows, and each rank updates its rows of W.
    (5, 4) has more FLOPs: owner rank 0 (rows 3 | 2); (3, 4) goes to the less loaded rank 1 (rows 2 | 1). Each
    matrix: the non-owner's 2 rows × 4 cols × 4 B = 32 B there, 32 B back: 64 B each, 128 B in all; one all_to_all
    each way (one dtype), one all-reduce of 2 flags."""
    rc, out, _ = run("explain", "muon", "--param", "h.0.weight=5x4", "--param", "h.1.weight=3x4", "--world-size", "2")
    assert rc == 0, out
    assert "h.0.weight  (5, 4)         split  owner rank 0               64 B" in out
    assert "h.1.weight  (3, 4)         split  owner rank 1               64 B" in out
    assert "per step: 2 all_to_all (128 B over all ranks), 1 all_reduce (8 B of non-finite flags)" in out


def test_world_size_elementwise_specs_do_not_communicate_beyond_the_flags():
    rc, out, _ = run("explain", "adamw", "--model", "gpt2-small", "--world-size", "8")
    assert rc == 0
    assert "per step: 0 all_to_all (0 B over all ranks), 1 all_reduce (592 B of non-finite flags); 148 parameters " \
           "local, 0 owner-computed" in out


def test_world_size_must_be_positive():
    rc, _, err = run("explain", "muon", "--world-size", "0")
    assert rc == 2 and "--world-size must be at least 1" in err


def test_world_size_counts_partial_reductions_by_hand():
    """auon's cosh brake reads two whole-tensor reductions, one after the other: the Frobenius norm (`sum(x * x)`,
    partials summed) and then `mean(square(cosh(γ·X)))` (count-weighted partials). On a row split each is one
    float64 scalar per rank, at its own depth: 2 × 8 B per rank, 2 all-reduces besides the flags', no all_to_all."""
    rc, out, _ = run("explain", "auon", "--param", "h.0.weight=6x4", "--world-size", "2")
    assert rc == 0, out
    assert "h.0.weight  (6, 4)         reduce 2 all-reduced partials       16 B" in out
    assert ("per step: 0 all_to_all (0 B over all ranks), 3 all_reduce (4 B of non-finite flags, 16 B of partial "
            "reductions per rank); 0 parameters local, 1 reduced across ranks, 0 owner-computed") in out
