"""The fuzzing engine itself: it finds planted bugs, shrinks them, and prints reports that reproduce them."""
from __future__ import annotations

import contextlib
import io
import math

import pytest
import torch

from geo import cli
from geo.compiler.ops import registry
from geo.fuzz.cases import load_subjects, targets
from geo.fuzz.explorer import explore
from geo.fuzz.expressions import fuzz_operators
from geo.fuzz.orders import composable, fuzz_step_orders
from geo.fuzz.spec import fuzz_laws, fuzz_spec
from geo.fuzz.tensors import GRAD_KINDS, difference, make_tensor, same, summarize
from geo.runtime.optimizer import GeoOptimizer

NORMSGD = '''"""Normalized SGD without an epsilon: a zero gradient makes NaN."""
optimizer normsgd(lr = 0.1):
    for tensor W:
        W = W - lr * grad / sqrt(sum(grad * grad))
'''


@pytest.fixture
def normsgd(tmp_path):
    path = tmp_path / "normsgd.geo"
    path.write_text(NORMSGD)
    return path


def test_a_nan_from_finite_inputs_is_found_shrunk_and_reproduced(normsgd):
    out = fuzz_spec(str(normsgd), examples=40, properties=("finite",), compositions=False)
    assert len(out.failures) == 1
    failure = out.failures[0]
    text = failure.render()
    for part in ("FAILED [finite]", "optimizer `normsgd`, rule 0 `for tensor W`", "zeros", "NaN",
                 "reproduce (.geo):", "W = W - lr * grad / sqrt(sum(grad * grad))", "reproduce (Python):"):
        assert part in text, part
    assert "shape ()" in text  # shrunk to the simplest parameter: a scalar
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(failure.python, "<snippet>", "exec"), {})  # the snippet reproduces the failure
    assert "NaN in parameter: True" in printed.getvalue()


def test_a_backend_that_disagrees_is_found(monkeypatch):
    from geo.compiler.backends.torch_path import TorchPathStep
    original = TorchPathStep.step_group

    def off_by_a_bit(self, params, grads, states, hypers, ts):
        original(self, params, grads, states, hypers, ts)
        for p, g in zip(params, grads):
            p.add_((g == 0).to(p.dtype) * 1e-3)  # wrong only where the gradient is exactly 0

    monkeypatch.setattr(TorchPathStep, "step_group", off_by_a_bit)
    out = fuzz_spec("sgd", examples=40, properties=("agree",), compositions=False)
    assert out.failures and "disagrees with the reference" in out.failures[0].title
    assert "reference:" in out.failures[0].expected and "entries differ" in out.failures[0].detail


def test_a_checkpoint_that_loses_state_is_found(monkeypatch):
    original = GeoOptimizer.load_state_dict

    def lossy(self, state_dict, **kw):
        original(self, state_dict, **kw)
        for s in self.state.values():
            if "exp_avg" in s:
                s["exp_avg"] = torch.zeros_like(s["exp_avg"])

    monkeypatch.setattr(GeoOptimizer, "load_state_dict", lossy)
    out = fuzz_spec("adamw", examples=30, properties=("checkpoint",), compositions=False)
    assert out.failures and out.failures[0].prop == "checkpoint"
    assert "exp_avg" in out.failures[0].detail + out.failures[0].title


def test_a_group_hyperparameter_that_is_ignored_is_found(monkeypatch):
    original = GeoOptimizer.step

    def first_group_wins(self, closure=None):
        saved = [g["lr"] for g in self.param_groups]
        for g in self.param_groups:
            g["lr"] = saved[0]
        try:
            return original(self, closure)
        finally:
            for g, lr in zip(self.param_groups, saved):
                g["lr"] = lr

    monkeypatch.setattr(GeoOptimizer, "step", first_group_wins)
    out = fuzz_spec("sgd", examples=20, properties=("groups",), compositions=False)
    assert out.failures and "group 1's own `lr` is not respected" in out.failures[0].title


def test_hidden_state_between_runs_is_found(monkeypatch):
    from geo.compiler.backends import epilogue
    calls = [0]
    original = epilogue.store

    def drifting(value, like, dtype):
        calls[0] += 1
        out = original(value, like, dtype)
        return out * (1 + 1e-3 * (calls[0] % 7 == 3)) if isinstance(out, torch.Tensor) else out

    monkeypatch.setattr(epilogue, "store", drifting)  # every backend stores new values through it
    out = fuzz_spec("lion", examples=20, properties=("deterministic",), compositions=False)
    assert out.failures and "two seeded runs differ" in out.failures[0].title


def test_a_nonfinite_policy_that_does_not_skip_is_found(monkeypatch):
    monkeypatch.setattr(GeoOptimizer, "nonfinite", property(lambda self: "propagate", lambda self, value: None),
                        raising=False)
    out = fuzz_spec("signum", examples=20, properties=("nonfinite",), compositions=False)
    assert out.failures and 'nonfinite="skip"' in out.failures[0].title


def test_a_broken_law_is_found(monkeypatch):
    law = registry.Law("twice is identity (false)", lambda: fuzz_strategies().floats(-5, 5, allow_nan=False),
                       lambda f, x: _assert_close(f(torch.tensor(x)), torch.tensor(x)))
    bad = registry.OpDef("geo_test_double", "doubles", registry.ELEMENTWISE, (registry.Param("x", False),),
                         registry.elementwise_rule, lambda x: 2 * x, laws=(law,))
    monkeypatch.setitem(registry._REGISTRY, "geo_test_double", bad)
    n, failures = fuzz_laws(["geo_test_double"], examples=20, seed=0)
    assert failures and "twice is identity" in failures[0].title
    assert "example = " in failures[0].python


def fuzz_strategies():
    from hypothesis import strategies as st
    return st


def _assert_close(a, b):
    assert torch.allclose(a, b), f"{a} != {b}"


def test_operator_compositions_hold():
    out = fuzz_operators(examples=150, seed=0)
    assert out.ok, "\n".join(f.render() for f in out.failures)
    assert out.examples >= 100


def test_the_operator_fuzzer_finds_in_place_writes_over_shared_memory(monkeypatch):
    """With the torch path's aliasing guard switched off (every value its own memory), the operator fuzzer's
    aliased expressions (`s + s.T`, `lerp(s, transpose(s), w)`) find the crash of issue 14 by themselves."""
    from geo.compiler.backends import torch_path
    monkeypatch.setattr(torch_path, "_shares", lambda out, inputs: False)
    out = fuzz_operators(examples=300, seed=1)
    assert not out.ok
    assert any("refer to a single memory location" in f.got or "disagrees" in f.title for f in out.failures)


def test_step_orders_of_horst():
    subject = load_subjects("horst")[0]
    n, failures, _ = fuzz_step_orders(subject, examples=4, seed=0)
    assert n > 0 and not failures, "\n".join(f.render() for f in failures)
    assert set(composable(subject)) >= {"hyperbolic", "ham_step", "adam_in_hypentropy"}


def test_every_rule_of_a_routed_spec_gets_parameters():
    reach = targets(load_subjects("scion")[0].cls)
    assert all(reach[i] for i in range(4))
    roles = {t.role for t in reach[0]} | {t.role for t in reach[1]}
    assert roles == {"embedding", "head"}


@pytest.mark.parametrize("kind", GRAD_KINDS)
@pytest.mark.parametrize("shape", [(), (5,), (1, 4), (4, 1), (3, 5), (2, 3, 4)])
def test_adversarial_tensors(kind, shape):
    x = make_tensor(kind, shape, "fp64", seed=3, scale=1.0)
    assert x.shape == shape and x.dtype == torch.float64
    assert torch.equal(x.nan_to_num(), make_tensor(kind, shape, "fp64", seed=3, scale=1.0).nan_to_num())
    assert bool(x.isfinite().all()) == (kind not in ("nan", "inf") or x.numel() == 0)
    if kind == "rank1" and len(shape) >= 2:
        assert int(torch.linalg.matrix_rank(x.reshape(-1, *shape[-2:])[0])) == 1
    if kind == "illcond" and len(shape) >= 2 and min(shape[-2:]) >= 3:
        s = torch.linalg.svdvals(x.reshape(-1, *shape[-2:])[0])
        assert s[0] / s[-1] > 1e10
    if kind == "huge" and x.numel():
        assert x.abs().max() > 1e29
    if kind == "tiny" and x.numel():
        assert 0 < x.abs().max() < 1e-29


def test_explorer_says_whether_steps_commute():
    e = explore(["hyperbolic", "adamw_step"], examples=10)
    assert not e.pairs[0].commute and e.pairs[0].max_rel > 1e-3
    assert "adamw_step ∘ hyperbolic" in e.render()
    e = explore(["sign", "transpose"], examples=20)  # transpose applies to square matrices only
    assert e.pairs[0].commute and e.pairs[0].samples > 0


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_cli_ok_failure_and_usage_exit_codes(normsgd):
    code, out, _ = _cli("fuzz", "sgd", "--examples", "4")
    assert code == 0 and out.startswith("sgd: ok")
    code, out, _ = _cli("fuzz", str(normsgd), "--examples", "30", "--property", "finite")
    assert code == 1 and "FAILED [finite]" in out and "reproduce (Python):" in out
    assert _cli("fuzz")[0] == 2
    assert _cli("fuzz", "sgd", "--property", "speed")[0] == 2
    assert _cli("fuzz", "sgd", "--examples", "0")[0] == 2
    assert _cli("fuzz", "--compose", "sgd")[0] == 2
    code, _, err = _cli("fuzz", "no_such_spec")
    assert code == 1 and "GEO0501" in err


def test_cli_compose(tmp_path):
    code, out, _ = _cli("fuzz", "horst", "--compose", "hyperbolic", "adamw_step", "--examples", "8")
    assert code == 0 and "do not commute" in out
    code, _, err = _cli("fuzz", "--compose", "sgd", "no_such_step")
    assert code == 1 and "unknown step or operator `no_such_step`" in err


def test_cli_operators_and_robustness():
    code, out, _ = _cli("fuzz", "--operators", "--examples", "20")
    assert code == 0 and "ok" in out
    code, out, _ = _cli("fuzz", "--robustness", "40", "--workers", "1")
    assert code == 0 and "40 inputs" in out


def test_summaries_and_equality():
    assert same(torch.tensor([math.nan, 1.0]), torch.tensor([math.nan, 1.0]))
    assert not same(torch.tensor([1.0]), torch.tensor([1.0], dtype=torch.float64))
    assert "1 NaN" in summarize(torch.tensor([math.nan, 1.0]))
    assert "first at (1,)" in difference(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 3.0]))
