"""geo under FSDP2 (issue 11): DTensor parameters split by rows (`fully_shard`, uneven shards), spawned gloo ranks.

The oracle is the same optimizer in one process on plain tensors, fed the same gradients (drawn per parameter and
step, identical on every rank): 20 sharded steps equal 20 unsharded ones — to 1e-6 relative for specs that run on
the local rows in fp32 (torch's vectorized kernels round a tail differently on a shorter row block, and partial
sums add in another order: a few ulps), and to the bf16 tolerance of tests/differential (1e-2) for owner-computed specs (which in fact agree bit for bit:
the owner runs the very program on the whole tensors). The traffic each rank counts equals what `geo explain
--world-size` predicts. Spawning costs seconds, so each test runs many specs in one process group.
"""
from __future__ import annotations

import pytest

import geo
from geo.dsl.loader import stdlib_optimizers
from geo.runtime.explain import communication

import _workers
from _spawn import run_ranks

STEPS = 20
ELEMENTWISE_TOL, NEWTON_SCHULZ_TOL = 1e-6, 1e-2
QUICK = ["adamw", "muon_adamw", "auon", "frugal"]  # local rows; msign by its owner; partials; the whole step


def _check(results, ranks):
    """Every rank saw the same parameters (full_tensor gathers them) and within tolerance of the unsharded run."""
    by_spec = {}
    for name, (worst, worst_state, modes) in results[0].items():
        tol = ELEMENTWISE_TOL if set(modes.values()) <= {"local", "reduce"} else NEWTON_SCHULZ_TOL
        assert worst <= tol, f"{name} on {ranks} ranks: parameters differ by {worst:.3g} (rel) from the unsharded run"
        assert worst_state <= max(tol, 1e-5), f"{name}: states differ by {worst_state:.3g}"
        by_spec[name] = (worst, modes)
    return by_spec


def test_quick_specs_two_ranks_match_one_process_and_explain():
    """The default tier's distributed test: three specs, one of each kind, 20 steps on 2 ranks, uneven shards; and
    the traffic each rank sent in the last step is what `geo explain --world-size 2` predicts."""
    results = run_ranks(_workers.traffic, 2, QUICK, STEPS)
    for name in QUICK:
        worst, _, shapes = results[0][name]
        assert worst <= (ELEMENTWISE_TOL if name in ("adamw", "auon") else NEWTON_SCHULZ_TOL), (name, worst)
        predicted = communication(geo.compile(name), shapes, 2)
        sent = sum(r[name][1]["bytes"] for r in results)
        assert sent == predicted["all_to_all_bytes"], (name, sent, predicted["all_to_all_bytes"])
        assert all(r[name][1]["reduce_bytes"] == predicted["reduce_bytes"] for r in results), name
        assert all(r[name][1]["all_to_all"] == predicted["all_to_all"] for r in results), name
        assert all(r[name][1]["all_reduce"] == predicted["all_reduce"] for r in results), name
    assert results[0]["adamw"][1]["bytes"] == 0 and results[0]["adamw"][1]["all_to_all"] == 0
    assert results[0]["auon"][1]["reduce_bytes"] > 0 and results[0]["auon"][1]["all_to_all"] == 0


@pytest.mark.slow
def test_every_stdlib_spec_two_ranks_uneven_shards():
    names = sorted(stdlib_optimizers())
    by_spec = _check(run_ranks(_workers.equivalence, 2, names, STEPS, timeout=900), 2)
    assert set(by_spec) == set(names)


@pytest.mark.slow
def test_four_ranks_elementwise_reduction_and_whole():
    """4 ranks, one spec per mode: the 6-row matrices leave the last rank no rows at all."""
    names = ["adamw", "auon", "muon", "spectral_sphere"]
    by_spec = _check(run_ranks(_workers.equivalence, 4, names, STEPS, timeout=600), 4)
    assert set(by_spec["adamw"][1].values()) == {"local"} and set(by_spec["auon"][1].values()) == {"reduce"}
    assert set(by_spec["muon"][1].values()) == {"split"}  # msign on the owner, the momentum on the rows
    assert set(by_spec["spectral_sphere"][1].values()) == {"owner"}  # a random initial state: the whole step


def test_a_weight_stored_transposed_steps_as_its_transpose():
    """A `.T` role (a weight stored (in, out), as HF's Conv1D): the owner steps the transpose the rules see, as the
    unsharded optimizer does (Muon's shape scale and NorMuon's row statistics both tell W from Wᵀ)."""
    _check(run_ranks(_workers.equivalence, 2, ["muon", "normuon"], 6, {"h.0.weight": "hidden.T"}), 2)


def test_a_column_split_is_refused_clearly():
    messages = run_ranks(_workers.refusals, 2)
    assert messages[0] == messages[1] and "Shard(0)" in messages[0] and "Shard(dim=1)" in messages[0], messages


def test_a_nan_on_one_rank_skips_on_every_rank():
    """A NaN in one gradient's rows on rank 1 only (steps 2 and 5): every rank skips that parameter at those steps,
    as the unsharded run that sees the NaN does; the skip is counted once per step."""
    results = run_ranks(_workers.nonfinite, 2, ["adamw", "muon", "muon_adamw"], 8, 1)
    for name, (skips, worst, steps) in results[0].items():
        assert skips == {"embed.weight": 2} or skips == {"h.0.weight": 2}, (name, skips)
        assert worst <= NEWTON_SCHULZ_TOL, (name, worst)
        victim = next(iter(skips))
        assert steps[victim] == 6.0 and all(v == 8.0 for k, v in steps.items() if k != victim), (name, steps)
    assert results[0] == results[1]
