"""The torch path (multi-tensor, in place) against the reference backend, on whole groups of parameters.

The fuzzer's `agree` property compares one parameter at a time; here every stdlib optimizer steps a group of
parameters of equal and different shapes (and dtypes) at once, which is where multi-tensor calls, per-shape
host scalars and buffer reuse could go wrong. On the CPU the two backends must agree bit for bit.
"""
from __future__ import annotations

import pytest
import torch

import geo
from geo.dsl.loader import stdlib_names
from geo.compiler.pipeline import front
from geo.dsl.loader import source_for

OPTIMIZERS = [(spec, name) for spec in stdlib_names() for name in front(source_for(spec))[1].root_optimizers]


def model_params(dtype=torch.float32, mixed=False):
    g = torch.Generator().manual_seed(0)
    shapes = {"hidden.0.weight": (6, 4), "hidden.1.weight": (6, 4), "hidden.2.weight": (4, 6), "tall.weight": (9, 3),
              "row.weight": (1, 5), "col.weight": (5, 1), "hidden.0.bias": (6,), "hidden.1.bias": (4,),
              "conv.weight": (3, 2, 3, 3), "norm.weight": (5,)}
    out = []
    for i, (name, shape) in enumerate(shapes.items()):
        dt = torch.bfloat16 if mixed and i % 3 == 1 else dtype
        out.append((name, torch.randn(shape, generator=g, dtype=torch.float64).mul(0.5).to(dt).requires_grad_()))
    return out


def run(spec, name, backend, steps=3, **kw):
    Opt = geo.compile(spec, name=name, backend=backend)
    params = model_params(**kw)
    try:
        opt = Opt(params)
    except geo.GeoError:  # a spec for matrices only: give it the matrices
        params = [(n, p) for n, p in params if p.ndim == 2]
        opt = Opt(params)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for _, p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
        opt.step()
    return params, opt


@pytest.mark.parametrize("spec,name", OPTIMIZERS)
@pytest.mark.parametrize("mixed", [False, True], ids=["fp32", "fp32+bf16"])
def test_a_group_steps_as_the_reference_bit_for_bit(spec, name, mixed):
    got, opt_t = run(spec, name, "torch", mixed=mixed)
    want, opt_r = run(spec, name, "reference", mixed=mixed)
    for (pname, a), (_, b) in zip(got, want):
        assert torch.equal(a, b) or (a.isnan() == b.isnan()).all() and torch.equal(a.nan_to_num(), b.nan_to_num()), \
            f"{pname}: max |diff| {(a.double() - b.double()).abs().max().item():.3g}"
    for (_, a), (_, b) in zip(got, want):
        sa, sb = opt_t.state[a], opt_r.state[b]
        assert sa.keys() == sb.keys()
        for k in sa:
            if isinstance(sa[k], torch.Tensor):
                assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k].nan_to_num(), sb[k].nan_to_num()), k


def test_state_is_updated_in_place_after_the_first_step():
    """After the first step of a group layout (which records what may be overwritten), AdamW's moments and the
    parameter keep their buffers, as torch.optim's foreach AdamW does."""
    params, opt = run("adamw", None, "torch", steps=1)
    before = {n: {k: v.data_ptr() for k, v in opt.state[p].items()} for n, p in params}
    g = torch.Generator().manual_seed(2)
    for _ in range(2):
        for _, p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    for n, p in params:
        for k in ("exp_avg", "exp_avg_sq"):
            assert opt.state[p][k].data_ptr() == before[n][k], (n, k)


def test_states_initialized_from_one_value_do_not_share_memory():
    """`zeros_like(W)` initializes both of AdamW's moments from one node: they must still be two buffers."""
    params, opt = run("adamw", None, "torch", steps=1)
    for _, p in params:
        s = opt.state[p]
        assert s["exp_avg"].data_ptr() != s["exp_avg_sq"].data_ptr()
        assert not torch.equal(s["exp_avg"], s["exp_avg_sq"])


@pytest.mark.parametrize("shape", [(2, 1), (1, 4), (5, 3)])
def test_in_place_keeps_the_reference_s_memory_layout(shape):
    """Found by `geo fuzz stdlib/*.geo` (step orders): `spectral_ball >> spectral_ball` on a 2×1 weight drifted
    from the reference from its second step. An axpy written in place into the first retraction's result (an SVD
    product with strides (1, 2)) kept that layout, and the second retraction's matmuls rounded differently on
    it. In-place writes now require row-major buffers, which is what the reference's new tensors are."""
    Opt = geo.compile("use spectral_ball\n\noptimizer twice = spectral_ball >> spectral_ball\n", name="twice")
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(shape, generator=g) * 1e-3
    grads = [torch.zeros(shape), torch.zeros(shape), torch.randn(shape, generator=g), torch.zeros(shape)]
    out = []
    for backend in ("torch", "reference"):
        p = torch.nn.Parameter(w0.clone())
        opt = Opt([p], backend=backend, nesterov=False)
        for grad in grads:
            p.grad = grad.clone()
            opt.step()
        out.append(p.detach())
    assert torch.equal(*out), f"max |diff| {(out[0] - out[1]).abs().max().item():.3g}"


@pytest.mark.parametrize("backend", ["torch", "reference"])
def test_a_state_that_keeps_the_old_parameter(backend):
    """`prev = W; W = W - lr * grad`: the state holds the parameter before this step, on every backend (the
    reference used to copy the new parameter in before taking its copy of the old one)."""
    Opt = geo.compile("optimizer keep(lr = 0.5):\n    for tensor W:\n        state prev = zeros_like(W)\n"
                      "        prev = W\n        W = W - lr * grad\n", backend=backend)
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = Opt([w])
    for k in range(2):
        before = w.detach().clone()
        w.grad = torch.ones(2)
        opt.step()
        assert torch.equal(opt.state[w]["prev"], before) and torch.equal(w.detach(), before - 0.5)


def test_msign_of_an_empty_matrix_is_empty():
    from geo.compiler.ops import registry
    out = registry.get("msign").reference(torch.zeros(0, 3))
    assert out.shape == (0, 3)


@pytest.mark.parametrize("update", ["where(t == 1, a, b * 0.9)", "a"])
def test_a_state_taking_a_kept_state_s_value_gets_its_own_buffer(update):
    """`b = where(t == 1, a, …)` selects a's buffer (no copy on the torch path) and `b = a` is a itself, with a
    kept as it is: b must not share a's memory, or b's in-place update would change a as well. (The Triton
    backend's twin: tests/triton/test_triton_agreement.py.)"""
    text = ("optimizer o(lr = 0.1):\n    for tensor W:\n        state a = zeros_like(W) + 1\n"
            f"        state b = zeros_like(W)\n        b = {update}\n        b = b * 0.9\n"
            "        W = W - lr * (a + b)\n")
    out = {}
    for backend in ("torch", "reference"):
        w = torch.nn.Parameter(torch.ones(3, 2))
        opt = geo.compile(text, backend=backend)([w], nonfinite="propagate")
        for _ in range(4):
            w.grad = torch.ones(3, 2)
            opt.step()
        out[backend] = (w.detach().clone(), opt.state[w]["a"].clone(), opt.state[w]["b"].clone())
        assert opt.state[w]["a"].data_ptr() != opt.state[w]["b"].data_ptr(), backend
    assert torch.equal(out["torch"][1], torch.ones(3, 2))
    for a, b in zip(out["torch"], out["reference"]):
        assert torch.equal(a, b)


def test_a_host_condition_selects_without_copying():
    """SGD's `where(momentum == 0, g, direction)` picks one list of tensors (no `torch.where` per tensor)."""
    from torch.profiler import ProfilerActivity, profile

    params, opt = run("sgd", None, "torch", steps=1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        opt.step()
    assert not [e for e in prof.events() if e.name == "aten::where"]


def test_a_program_with_per_tensor_ops_steps_one_tensor_at_a_time_on_the_cpu():
    """Muon's Newton–Schulz runs per tensor: its multi-tensor calls then take one big tensor at a time (small
    ones together, up to 4 MiB), so that the Nesterov blend is never alive for the whole group at once (the
    peak of a step's temporaries is about one tensor's, as in torch.optim.Muon's loop). Elementwise programs
    stay whole-group calls."""
    from geo.compiler.backends.torch_path import TorchPathStep

    for spec, per_tensor in (("muon", True), ("adamw", False), ("sgd", False), ("lion", False)):
        _, opt = run(spec, None, "torch", steps=1)
        runners = [r for r in type(opt)._geo._runners.values() if isinstance(r, TorchPathStep)]
        assert runners and all(r.per_tensor_on_cpu == per_tensor for r in runners), spec
    from geo.compiler.backends.torch_path import _chunks
    mb = [torch.empty(n // 4) for n in (3 << 20, 2 << 20, 1 << 20, 9 << 20, 1 << 18, 1 << 18)]
    assert _chunks(mb, 4 << 20) == [(0, 1), (1, 3), (3, 4), (4, 6)]


@pytest.mark.parametrize("weight_decay,passes", [(0.0, 0), (0.1, 1)])
def test_a_multiplication_by_one_makes_no_pass(weight_decay, passes):
    """Muon's W·(1 − lr·wd) is W itself at wd = 0 (x·1 = x exactly): no call reads and writes the parameters."""
    from torch.profiler import ProfilerActivity, profile

    ws = [torch.nn.Parameter(torch.randn(6, 4)) for _ in range(2)]
    opt = geo.compile("muon", backend="torch")(ws, weight_decay=weight_decay)
    for _ in range(2):
        for w in ws:
            w.grad = torch.randn(6, 4)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            opt.step()
    assert sum(e.name == "aten::_foreach_mul_" for e in prof.events()) == passes  # both small matrices in one call


# Programs whose meta probe declines: a result with a size-1 dim (row norms kept as (m, 1), scalars) in
# every layout, or an op that reads values on the host (a solver's iteration).
META_DECLINES = {"normuon", "spectral_sphere",
                 # row or column statistics kept as (m, 1) / (1, n): ARO's and FRUGAL's SinkGD and rank-r sizes,
                 # nGPT's row norms, MKOR's rank-1 vectors, NAMO-D's and SAGE's column statistics
                 "aro", "frugal", "hypersphere", "mkor", "namo", "sage"}


@pytest.mark.parametrize("spec,name", OPTIMIZERS)
@pytest.mark.parametrize("mixed", [False, True], ids=["fp32", "fp32+bf16"])
@pytest.mark.parametrize("size_one", [True, False], ids=["with-1xn", "no-1xn"])
def test_the_meta_probe_decides_as_a_real_first_step(spec, name, mixed, size_one, monkeypatch):
    """The in-place decisions taken on meta tensors equal those of an out-of-place first step on the real ones,
    for every stdlib optimizer and group layout; with 1×n and n×1 weights in the group it declines."""
    from geo.compiler.backends import torch_path

    monkeypatch.setattr(torch_path, "META_PROBE_BYTES", 0)  # these groups are small: probe on meta anyway
    decided = []
    meta_probe = torch_path.TorchPathStep._meta_probe

    def spy(self, *args):
        found = meta_probe(self, *args)
        decided.append(found is not None)
        return found

    monkeypatch.setattr(torch_path.TorchPathStep, "_meta_probe", spy)
    Opt = geo.compile(spec, name=name, backend="torch")

    def first_step():
        # A fresh optimizer each time: its first step runs the same specializations (`when`/`every` blocks fire
        # by the step count) on the compiled spec's shared runners.
        params = [(n, p) for n, p in model_params(mixed=mixed) if size_one or 1 not in p.shape]
        try:
            opt = Opt(params, seed=0)
        except geo.GeoError:
            params = [(n, p) for n, p in params if p.ndim == 2]
            opt = Opt(params, seed=0)
        g = torch.Generator().manual_seed(5)
        for _, p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
        opt.step()

    first_step()
    runners = [r for r in Opt._geo._runners.values() if isinstance(r, torch_path.TorchPathStep)]
    by_meta = [dict(r._inplace) for r in runners]
    monkeypatch.setattr(torch_path.TorchPathStep, "_meta_probe", lambda self, *args: None)
    for r in runners:
        r._inplace.clear()
    first_step()
    for r, meta in zip(runners, by_meta):
        assert meta == r._inplace, r.program.rule_text
    if not size_one and spec not in META_DECLINES:
        assert decided and all(decided), decided


ALIASED = """optimizer aliased(lr = 0.01):
    for matrix W:
        let s = grad @ grad.T
        let u = {expr}
        W = W - lr * (u @ W)
"""


@pytest.mark.parametrize("expr", ["s + s.T", "s - transpose(s)", "lerp(s, s.T, 0.5)", "s * s.T",
                                  "addcmul(s, s.T, s, 0.5)", "max(s, s.T) + min(s.T, s)",
                                  "(abs(s) + 0.001) ^ clamp(s.T, -4.0, 4.0)", "exp(-abs(s)) * transpose(s)"])
@pytest.mark.parametrize("named", [True, False], ids=["named", "unnamed"])
def test_arguments_that_share_memory_are_never_written_in_place(expr, named):
    """An op whose first argument is dead but shares memory with another argument (`s + s.T`) or with a view
    read later (`abs(s) ^ s.T`: `abs` may not overwrite s while s.T is still to be read) cannot run in place:
    torch refuses ("some elements … refer to a single memory location"), or the later read sees overwritten
    values (issue 14; the second found by `geo fuzz --operators`). The torch path equals the reference."""
    spec = ALIASED.format(expr=expr)
    results = {}
    for backend in ("torch", "reference"):
        Opt = geo.compile(spec, backend=backend)
        params = [(n, p) for n, p in model_params() if p.ndim == 2]
        opt = Opt(params if named else [p for _, p in params])
        g = torch.Generator().manual_seed(1)
        for _ in range(3):  # the in-place decisions are made on the first step and used from the second
            for _, p in params:
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        results[backend] = [p.detach().clone() for _, p in params]
    for a, b in zip(results["torch"], results["reference"]):
        assert torch.equal(a, b)
