"""The inductor backend's own promises (compiler/backends/inductor.py): hyperparameters are data (a schedule never
recompiles), the gradient check and the skip live in the kernels, matrix ops stay batched ATen calls between the
regions, nothing compiles before the first step, awkward layouts and dtypes agree with the reference backend.

Each test compiles few regions (a few seconds each on two cores, shared with the other tests of the process).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

import geo
from geo.compiler import backends
from geo.compiler.backends import batching, inductor
from geo.compiler.ops.registry import OpDef
from geo.runtime.optimizer import GeoOptimizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_inductor_agreement import assert_close  # noqa: E402


def runners(opt):
    return list(opt._geo._runners.values())


def params_like(shapes, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64).to(dtype)) for s in shapes]


def grads_for(params, seed):
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)


def test_a_schedule_never_recompiles_over_100_steps():
    """lr on a cosine schedule, betas and weight decay changed at step 50, the step count in both bias
    corrections: all data. After the first step (its compilations) Dynamo compiles nothing more, and the
    trajectory is the reference's."""
    from torch._dynamo.utils import counters

    out = {}
    for backend in ("inductor", "reference"):
        ps = params_like([(6, 4), (6,)])
        opt = geo.compile("adamw", backend=backend)(ps, lr=0.01, weight_decay=0.1)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
        for k in range(100):
            grads_for(ps, k)
            opt.step()
            sched.step()
            if k == 0:
                graphs, frames = counters["stats"]["unique_graphs"], counters["frames"]["total"]
                regions = len(inductor._REGIONS)
            if k == 50:
                opt.param_groups[0]["betas"] = (0.8, 0.99)
                opt.param_groups[0]["weight_decay"] = 0.0
        if backend == "inductor":
            assert counters["stats"]["unique_graphs"] == graphs, "a hyperparameter change recompiled a region"
            assert counters["frames"]["total"] == frames and len(inductor._REGIONS) == regions
        out[backend] = [p.detach().clone() for p in ps]
    for a, b in zip(out["inductor"], out["reference"]):
        assert_close(a, b, "after 100 scheduled steps")


def test_the_gradient_check_and_the_skip_run_inside_the_kernels(monkeypatch):
    """AdamW is one region: its compiled function computes all(isfinite(grad)) and stores where(ok, new, old),
    so the runtime's own pass over the gradients never runs; once compiled, a step makes no eager isfinite or
    reduction call at all. A NaN or an infinity skips that tensor, keeps its state and step count, and counts."""
    checked = []
    monkeypatch.setattr(GeoOptimizer, "_finite_only",
                        lambda self, todo, skipped: checked.append(sum(len(ps) for _, ps in todo)) or todo)
    w, v = params_like([(5, 3), (4,)])
    opt = geo.compile("adamw", backend="inductor")([("w", w), ("v", v)], lr=0.1)
    grads_for([w, v], 0)
    opt.step()
    (runner,) = {r for r in runners(opt) if r.program.param_type.show().startswith("matrix")} or runners(opt)[:1]
    assert len(runner.plan.kernels()) == 1
    source = next(iter(runner.sources.values()))
    assert "torch.isfinite(" in source and ".copy_(torch.where(ok, " in source
    assert set(checked) <= {0}  # the runtime checked nothing itself

    for bad in (float("nan"), float("inf"), -float("inf")):
        before = (w.detach().clone(), {k: t.clone() for k, t in opt.state[w].items()})
        grads_for([w, v], 1)
        w.grad[1, 2] = bad
        v_before = v.detach().clone()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            opt.step()
        eager = {e.name for e in prof.events()} & {"aten::isfinite", "aten::all", "aten::sum", "aten::abs",
                                                    "aten::eq", "aten::ne", "aten::norm", "aten::_foreach_norm"}
        assert not eager, f"an eager pass over the gradients: {eager}"
        assert torch.equal(w.detach(), before[0]), bad
        assert all(torch.equal(opt.state[w][k], t) for k, t in before[1].items()), bad
        assert not torch.equal(v.detach(), v_before)  # the finite one still stepped
    assert opt.nonfinite_skips == {"w": 3} and float(opt.state[w]["step"]) == 1.0
    assert float(opt.state[v]["step"]) == 4.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_a_first_step_skipped_leaves_no_state_and_huge_finite_values_pass(dtype):
    """As the runtime's check: a tensor skipped on its first step has no state afterwards; 3e38 (or the dtype's
    largest value) is finite and steps (isfinite is exact: no sum that could overflow)."""
    w = torch.nn.Parameter(torch.ones(4, dtype=dtype))
    opt = geo.compile("sgd", backend="inductor")([("w", w)], lr=0.1)
    w.grad = torch.tensor([float("inf"), -float("inf"), 1.0, 2.0], dtype=dtype)
    opt.step()
    assert w not in opt.state and opt.nonfinite_skips == {"w": 1}
    assert torch.equal(w.detach(), torch.ones(4, dtype=dtype))
    big = torch.finfo(dtype).max
    w.grad = torch.tensor([big, big, -big, 1.0], dtype=dtype)
    opt.step()
    assert opt.nonfinite_skips == {"w": 1} and not torch.equal(w.detach(), torch.ones(4, dtype=dtype))


def test_raise_and_propagate_behave_as_on_the_other_backends():
    w = torch.nn.Parameter(torch.ones(3, 2))
    w.grad = torch.tensor([[1.0, float("nan")], [0.0, 1.0], [1.0, 1.0]])
    strict = geo.compile("adamw", backend="inductor")([w], nonfinite="raise")
    with pytest.raises(FloatingPointError, match="not finite"):
        strict.step()
    assert w not in strict.state and torch.equal(w.detach(), torch.ones(3, 2))
    loose = geo.compile("adamw", backend="inductor")([w], nonfinite="propagate")
    loose.step()
    assert not torch.isfinite(w.detach()).all()


def msign_calls(monkeypatch) -> list[tuple[int, ...]]:
    """The shape of msign's first argument at each call, from now on (a stack: (count, m, n))."""
    calls = []
    apply = OpDef.apply

    def record(self, values, attrs, result):
        if self.name == "msign":
            calls.append(tuple(values[0].shape))
        return apply(self, values, attrs, result)
    monkeypatch.setattr(OpDef, "apply", record)
    return calls


def test_same_shape_matrices_share_one_batched_newton_schulz(monkeypatch):
    """Matrix ops stay torch (ATen) calls between the regions: three 7×5 matrices go into msign as one (3, 7, 5)
    stack (a bmm per Newton–Schulz iteration), the 9×3 one alone."""
    calls = msign_calls(monkeypatch)
    ps = params_like([(7, 5), (7, 5), (9, 3), (7, 5)])
    opt = geo.compile("muon", backend="inductor")(ps)
    grads_for(ps, 0)
    opt.step()
    assert sorted(calls) == [(3, 7, 5), (9, 3)]
    want = params_like([(7, 5), (7, 5), (9, 3), (7, 5)])
    ref = geo.compile("muon", backend="reference")(want)
    grads_for(want, 0)
    ref.step()
    for a, b in zip(ps, want):
        assert_close(a.detach(), b.detach(), "muon")


def test_on_the_cpu_a_stack_stays_within_the_size_malloc_recycles(monkeypatch):
    """On the CPU a batch holds at most CPU_BATCH_BYTES of each input (glibc unmaps larger blocks when they are
    freed, and the next step faults them in again): with a budget of two 7×5 fp32 matrices, five go into msign
    as stacks of 2, 2 and 1, and the step is the same as the reference's."""
    calls = msign_calls(monkeypatch)
    monkeypatch.setattr(batching, "CPU_BATCH_BYTES", 2 * 7 * 5 * 4)
    shapes = [(7, 5)] * 5
    ps = params_like(shapes)
    opt = geo.compile("muon", backend="inductor")(ps)
    grads_for(ps, 0)
    opt.step()
    assert calls == [(2, 7, 5), (2, 7, 5), (7, 5)]
    want = params_like(shapes)
    ref = geo.compile("muon", backend="reference")(want)
    grads_for(want, 0)
    ref.step()
    for a, b in zip(ps, want):
        assert_close(a.detach(), b.detach(), "muon")


def test_on_the_cpu_a_group_steps_in_runs_of_same_shape_tensors(monkeypatch):
    """With matrix ops in the plan, the CPU steps a group in runs (batching.cpu_runs): same-shape tensors
    together, at most CPU_BATCH_BYTES of parameters each, so only one run's intermediates are alive at a time;
    the result is the reference's, and a non-finite gradient is still skipped by the right tensor."""
    assert batching.cpu_runs([torch.empty(7, 5), torch.empty(9, 3), torch.empty(7, 5), torch.empty(9, 3)]) \
        == [[0, 2, 1, 3]]
    monkeypatch.setattr(batching, "CPU_BATCH_BYTES", 2 * 7 * 5 * 4)
    assert batching.cpu_runs([torch.empty(7, 5), torch.empty(9, 3), torch.empty(7, 5), torch.empty(9, 3)]) \
        == [[0, 2], [1, 3]]
    runs = []
    step = inductor.InductorStep._step

    def record(self, params, *args):
        runs.append([tuple(p.shape) for p in params])
        return step(self, params, *args)
    monkeypatch.setattr(inductor.InductorStep, "_step", record)
    shapes = [(7, 5), (9, 3), (7, 5), (9, 3), (7, 5)]
    ps = params_like(shapes)
    opt = geo.compile("muon", backend="inductor")(ps)
    grads_for(ps, 0)
    ps[3].grad[0, 0] = float("nan")
    before = ps[3].detach().clone()
    opt.step()
    assert runs == [[(7, 5), (7, 5)], [(7, 5), (9, 3)], [(9, 3)]]  # 140 + 108 bytes fit in one run
    assert torch.equal(ps[3].detach(), before) and opt.nonfinite_skips
    want = params_like(shapes)
    ref = geo.compile("muon", backend="reference")(want)
    grads_for(want, 0)
    want[3].grad[0, 0] = float("nan")
    ref.step()
    for a, b in zip(ps, want):
        assert_close(a.detach(), b.detach(), "muon")


def test_nothing_compiles_before_the_first_step():
    """geo.compile and the constructor only specialize programs (milliseconds); TorchInductor runs at the first
    step, once per region variant."""
    text = "optimizer lazy(lr = 0.1):\n    for tensor W:\n        W = W - lr * (grad * 1.25 + 0.5)\n"
    before = len(inductor._REGIONS)
    Opt = geo.compile(text, backend="inductor")
    (w,) = params_like([(3, 2)])
    opt = Opt([w])
    assert len(inductor._REGIONS) == before
    w.grad = torch.ones(3, 2)
    opt.step()
    assert len(inductor._REGIONS) == before + 1
    assert torch.allclose(w.detach(), params_like([(3, 2)])[0].detach() - 0.175)


def test_a_long_compilation_says_so(monkeypatch, capsys):
    """A region never compiled in this process (a literal of its own: host arithmetic like `lr * 1.375` would fold
    into a scalar and share SGD's region) with the threshold at 0 s: both lines appear on stderr."""
    monkeypatch.setattr(inductor, "PROGRESS_SECONDS", 0.0)
    text = "optimizer talkative(lr = 0.1):\n    for tensor W:\n        W = W - lr * (grad * 1.375 + 0.5)\n"
    (w,) = params_like([(3, 2)])
    opt = geo.compile(text, backend="inductor")([w])
    w.grad = torch.ones(3, 2)
    opt.step()
    err = capsys.readouterr().err
    assert "geo: compiling talkative[0] with TorchInductor" in err and "geo: compiled talkative[0] in" in err


def test_equal_regions_of_different_specs_share_one_compilation():
    """The region's source numbers values within the region and keeps the spec's names and lines in comments
    only, so a copy of adamw under another name compiles nothing new."""
    text = (Path(geo.__file__).parent / "stdlib" / "adamw.geo").read_text().replace("adamw", "my_adamw")
    for spec in ("adamw", text):
        ps = params_like([(4, 3)])
        opt = geo.compile(spec, backend="inductor")(ps)
        grads_for(ps, 0)
        if spec == "adamw":
            opt.step()
            count = len(inductor._REGIONS)
        else:
            opt.step()
            assert len(inductor._REGIONS) == count


def test_awkward_layouts_agree_with_the_reference():
    """A transposed (non-contiguous) parameter is written through the end of the step, a one-element one
    (Dynamo specializes size 1) and a 0×… one sit in the same group; AdamW with bf16 states declared for fp32
    parameters rounds every state store to bf16 as the reference's storage cast does."""
    text = ("optimizer mixed(lr = 0.01, beta = 0.9):\n    for tensor W:\n        state m: bf16 = zeros_like(W)\n"
            "        m = lerp(m, grad, 1 - beta)\n        W = W - lr * sign(m) - lr * 0.1 * m\n")
    for spec in ("adamw", text):
        out = {}
        for backend in ("inductor", "reference"):
            base = params_like([(5, 7), (1,), (4, 6)])
            ps = [torch.nn.Parameter(base[0].detach().t()), base[1], base[2]]  # the first one is (7, 5), strided
            assert not ps[0].is_contiguous()
            opt = geo.compile(spec, backend=backend)(ps)
            for k in range(3):
                grads_for(ps, k)
                opt.step()
            out[backend] = (ps, opt)
        for a, b in zip(out["inductor"][0], out["reference"][0]):
            assert_close(a.detach(), b.detach(), spec)
            for k, y in out["reference"][1].state[b].items():
                x = out["inductor"][1].state[a][k]
                assert x.dtype == y.dtype
                assert_close(x, y, f"{spec} state {k}")


def test_a_snapshot_of_a_slot_and_a_kept_state_keep_their_own_buffers():
    """`prev = W` keeps the old W although the region overwrites W in place; `b = a` must not share a's buffer."""
    text = ("optimizer snap(lr = 0.1):\n    for tensor W:\n        state prev = zeros_like(W)\n"
            "        state a = zeros_like(W) + 1\n        state b = zeros_like(W)\n        prev = W\n"
            "        b = a\n        W = W - lr * (grad + a)\n")
    out = {}
    for backend in ("inductor", "reference"):
        (w,) = params_like([(3, 2)])
        start = w.detach().clone()
        opt = geo.compile(text, backend=backend)([w])
        for k in range(2):
            grads_for([w], k)
            opt.step()
        s = opt.state[w]
        if backend == "inductor":  # (the reference interprets one tensor at a time and may share a kept buffer)
            assert len({s["prev"].data_ptr(), s["a"].data_ptr(), s["b"].data_ptr(), w.data_ptr()}) == 4
        out[backend] = (w.detach().clone(), s["prev"].clone(), start)
    assert_close(out["inductor"][0], out["reference"][0], "W")
    assert_close(out["inductor"][1], out["reference"][1], "prev")


def test_sgd_without_weight_decay_leaves_signed_zeros_and_infinite_weights_alone():
    """axpy(x, y, 0) is x exactly here too (a select on the weight decay, which is data)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "differential"))
    from test_torch_optim import sgd_on_signed_zeros_and_an_infinite_weight

    ours, ref = sgd_on_signed_zeros_and_an_infinite_weight("inductor")
    assert torch.equal(ours.nan_to_num(), ref.nan_to_num()) and torch.equal(ours.isnan(), ref.isnan())
    assert torch.equal(ours.signbit(), ref.signbit())


def test_a_compiler_failure_names_the_way_out(monkeypatch):
    """A region that cannot be compiled (here: torch.compile's result raises, as a missing C++ compiler does)
    stops the step with the backend that runs without one."""
    def broken(fn, **kwargs):
        def run(*args):
            raise OSError("no C++ compiler")
        return run
    monkeypatch.setattr(torch, "compile", broken)
    text = "optimizer broken(lr = 0.1):\n    for tensor W:\n        W = W - lr * (grad * 1.4375 + 0.5)\n"
    (w,) = params_like([(3, 2)])
    opt = geo.compile(text, backend="inductor")([w])
    w.grad = torch.ones(3, 2)
    with pytest.raises(RuntimeError, match=r"could not compile region k0 of broken\[0\].*backend='torch'"):
        opt.step()


def test_auto_picks_inductor_for_large_cpu_tensors_only():
    """The measured choice (docs/design.md): the torch path's multi-tensor calls for small tensors (no
    compilation, one call for all of them), Inductor's fused kernels from AUTO_INDUCTOR_NUMEL elements on, when a
    C++ compiler is there; Triton on CUDA."""
    big = backends.AUTO_INDUCTOR_NUMEL
    assert backends.resolve("auto", False, big - 1) == "torch"
    assert backends.resolve("auto", False, big) == ("inductor" if backends.has_cpp_compiler() else "torch")
    assert backends.resolve("inductor", False, 1) == "inductor"
    assert math.log2(big).is_integer()
