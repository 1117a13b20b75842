"""How the Triton backend launches: one launch per kernel for a whole group, one batched Newton–Schulz for
same-shape matrices, states in their storage dtype, stacked matrices, in-place writes, the pointer table."""
from __future__ import annotations

import pytest
import torch

import geo
from geo.compiler.backends.triton.step import TritonStep, _access, _strides
from geo.compiler.ops import matrix, registry

ADAM16 = '''
optimizer adam16(lr = 1e-2, betas = (0.9, 0.999), eps = 1e-8, weight_decay = 0.01):
    for tensor W:
        state m: bf16 = zeros_like(W)
        state v: bf16 = zeros_like(W)
        W = W * (1 - lr * weight_decay)
        m = lerp(m, grad, 1 - betas[0])
        v = v * betas[1] + (1 - betas[1]) * grad * grad
        W = W - lr / (1 - betas[0] ^ t) * m / (sqrt(v) / sqrt(1 - betas[1] ^ t) + eps)
'''

EXPERTS = '''
use muon
optimizer experts_muon:
    for stack W as batch = muon(lr = 0.05)
    for matrix W as heads(2) = muon(lr = 0.05)
'''


def _grads(params, seed):
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)


def _pair(spec, shapes, steps=3, dtype=torch.float32, **kw):
    """The same parameters stepped by the triton and the reference backend."""
    out = []
    for backend in ("triton", "reference"):
        g = torch.Generator().manual_seed(0)
        params = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype).requires_grad_() for s in shapes]
        opt = geo.compile(spec, backend=backend)(params, **kw)
        for k in range(steps):
            _grads(params, k)
            opt.step()
        out.append((params, opt))
    return out


def test_one_launch_per_kernel_for_the_whole_group(monkeypatch):
    """AdamW is one fused kernel: the matrices of a group step in ONE launch whose pointer table has a row per
    tensor, the vectors (another program: rules specialize by rank) in another."""
    launches = []
    original = TritonStep._launch

    def spy(self, k, launch, device, rows, hosts):
        launches.append((k.index, len(rows)))
        return original(self, k, launch, device, rows, hosts)

    monkeypatch.setattr(TritonStep, "_launch", spy)
    shapes = [(7, 5), (7, 5), (1, 9), (9, 1), (13,), (2049,)]  # 2049: three blocks of 1024, a 1-element tail
    (got, _), (want, _) = _pair("adamw", shapes, steps=2)
    assert launches == [(0, 4), (0, 2)] * 2
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_same_shape_matrices_share_one_newton_schulz(monkeypatch):
    """Muon on three 7×5 matrices and one 9×3: two Newton–Schulz calls per step, one of them on a batch of 3."""
    calls = []
    original = matrix.newton_schulz

    def spy(x, *args, **kw):
        calls.append(tuple(x.shape))
        return original(x, *args, **kw)

    monkeypatch.setattr(matrix, "newton_schulz", spy)
    Opt = geo.compile("muon", backend="triton")
    params = [torch.randn(s).requires_grad_() for s in [(7, 5), (9, 3), (7, 5), (7, 5)]]
    opt = Opt(params)
    _grads(params, 0)
    opt.step()
    assert sorted(calls) == [(3, 7, 5), (9, 3)]


@pytest.mark.parametrize("op", [o.name for o in registry.all_ops() if o.batches])
def test_batched_operators_match_their_loop(op):
    """Stacking is only done for operators whose reference computes each matrix of a batch on its own (their
    registry record says `batches`)."""
    from geo.compiler.ops.spectral import right_init
    opdef = registry.get(op)
    g = torch.Generator().manual_seed(3)
    ws = [torch.randn(7, 5, generator=g, dtype=torch.float64) for _ in range(3)]
    if op == "matmul":
        cols = [(w, torch.randn(5, 4, generator=g, dtype=torch.float64)) for w in ws]
    elif op == "power_iter":
        cols = [(w, right_init.reference(w, rank=1)) for w in ws]
    elif op == "msign":
        cols = [(w, 1e-7) for w in ws]
    else:
        cols = [(w,) for w in ws]
    attrs = {"steps": 5} if op in ("power_iter", "msign") else {}
    if op == "msign":
        attrs.update(coeffs="keller", dtype="fp64", method="ns", safety=None)
    from geo.compiler.types import Tensor
    loop = [opdef.apply(list(c), attrs, Tensor(("m", "n"))) for c in cols]
    stacked = [torch.stack([c[j] for c in cols]) if isinstance(cols[0][j], torch.Tensor) else cols[0][j]
               for j in range(len(cols[0]))]
    batch = opdef.apply(stacked, attrs, Tensor(("m", "n"), batched=True))
    for a, b in zip(loop, batch.unbind(0)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_bf16_states_are_stored_in_bf16_in_place():
    (got, opt_t), (want, opt_r) = _pair(ADAM16, [(7, 5), (1, 9), (9, 1), (5,)])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        for k in ("m", "v"):
            x, y = opt_t.state[a][k], opt_r.state[b][k]
            assert x.dtype == torch.bfloat16
            torch.testing.assert_close(x.float(), y.float(), rtol=2 ** -7, atol=1e-6)
    ptrs = {(id(p), k): opt_t.state[p][k].data_ptr() for p in got for k in ("m", "v")}
    _grads(got, 9)
    opt_t.step()
    assert ptrs == {(id(p), k): opt_t.state[p][k].data_ptr() for p in got for k in ("m", "v")}


def test_bf16_parameters_round_to_nearest_even():
    """A bf16 parameter's update is computed in fp32 and rounded to nearest even (Triton's interpreter alone would
    truncate): SGD's step is bit for bit the reference's, torch.add(w, g, alpha=-lr) in bf16. (lr = 0.5: torch
    rounds `alpha` to bf16 first, the kernel keeps it in fp32; 0.5 is the same in both.)"""
    g = torch.Generator().manual_seed(4)
    w = torch.randn(4, 257, generator=g, dtype=torch.float64).to(torch.bfloat16)
    grad = torch.randn(4, 257, generator=g, dtype=torch.float64).to(torch.bfloat16)
    out = []
    for backend in ("triton", "reference"):
        p = w.clone().requires_grad_()
        opt = geo.compile("sgd", backend=backend)([p], lr=0.5)
        p.grad = grad.clone()
        opt.step()
        out.append(p.detach())
    assert torch.equal(out[0].view(torch.int16), out[1].view(torch.int16))
    truncated = (w.float() - 0.5 * grad.float()).view(torch.int32).bitwise_and(-65536).view(torch.float32)
    assert not torch.equal(out[0].float(), truncated)  # what a truncating cast would have given


def test_stacked_experts_and_heads_are_batches_of_matrices():
    """`as batch` (3-D expert stacks) and `as heads(2)`: the rule sees batched matrices; Newton–Schulz runs on
    them as a batch, the kernels over every element."""
    (got, _), (want, _) = _pair(EXPERTS, [(4, 6, 5), (4, 6, 5), (3, 4, 9), (8, 5)])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_parameters_and_states_are_updated_in_place():
    (got, opt), _ = _pair("adamw", [(7, 5), (3,)], steps=1)
    before = [(p.data_ptr(), {k: v.data_ptr() for k, v in opt.state[p].items()}) for p in got]
    _grads(got, 5)
    opt.step()
    assert before == [(p.data_ptr(), {k: v.data_ptr() for k, v in opt.state[p].items()}) for p in got]


def test_a_strided_parameter_is_written_through_its_view():
    """A non-contiguous parameter cannot be the kernel's output buffer: it is computed into a fresh buffer and
    copied in at the end of the step."""
    results = []
    for backend in ("triton", "reference"):
        base = torch.arange(35.0).reshape(5, 7).div(10)
        p = torch.nn.Parameter(base.t())  # (7, 5), strided
        assert not p.is_contiguous()
        opt = geo.compile("adamw", backend=backend)([p])
        for k in range(2):
            p.grad = torch.cos(torch.arange(35.0) + k).reshape(7, 5)
            opt.step()
        results.append(p.detach().clone())
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)


def test_an_output_that_is_the_old_parameter_is_copied_before_the_kernel_overwrites_it():
    spec = '''
optimizer keep_old(lr = 0.1):
    for tensor W:
        state prev = zeros_like(W)
        prev = W
        W = W - lr * grad
'''
    p = torch.nn.Parameter(torch.arange(12.0).reshape(3, 4))
    opt = geo.compile(spec, backend="triton")([p])
    for k in range(2):
        old = p.detach().clone()
        p.grad = torch.ones(3, 4)
        opt.step()
        assert torch.equal(opt.state[p]["prev"], old)
        torch.testing.assert_close(p.detach(), old - 0.1)
    assert opt.state[p]["prev"].data_ptr() != p.data_ptr()


def test_access_patterns_and_broadcast_strides():
    assert _access((7, 5), (7, 5)) == "full"
    assert _access((), (7, 5)) == "scalar"
    assert _access((1, 1), (7, 5)) == "scalar"
    assert _access((7, 1), (7, 5)) == "bcast"
    assert _strides((7, 1), (7, 5)) == [1, 0]
    assert _strides((1, 5), (7, 5)) == [0, 1]
    assert _strides((5,), (3, 7, 5)) == [0, 0, 1]
    assert _strides((3, 1, 5), (3, 7, 5)) == [5, 0, 1]
    with pytest.raises(ValueError, match="does not broadcast"):
        _access((6,), (7, 5))


def test_cpu_tensors_need_the_interpreter(monkeypatch):
    from geo.compiler.backends.triton import device
    monkeypatch.setattr(device, "INTERPRETED", False)
    p = torch.zeros(3, requires_grad=True)
    opt = geo.compile("sgd", backend="triton")([p])
    p.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="runs on CUDA tensors"):
        opt.step()


def test_the_per_parameter_step_leaves_its_inputs_alone():
    """`step(param, grad, state, hypers, t)`, the backends' per-parameter convention: new values, inputs intact."""
    Opt = geo.compile("adamw", backend="triton")
    p = torch.randn(7, 5)
    rule = Opt._geo.rules[0]
    runner = Opt._geo.runner(rule, {}, 2, (0,), "triton")
    hypers = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}
    state = {k: v.clone() for k, v in runner.init(p, hypers).items()}
    grad = torch.randn(7, 5)
    before = (p.clone(), {k: v.clone() for k, v in state.items()})
    new_p, new_state = runner.step(p, grad, state, hypers, 1.0)
    assert torch.equal(p, before[0]) and all(torch.equal(state[k], before[1][k]) for k in state)
    ref_p, ref_state = runner._reference.step(p, grad, state, hypers, 1.0)
    torch.testing.assert_close(new_p, ref_p)
    for k in ref_state:
        torch.testing.assert_close(new_state[k], ref_state[k])


def test_in_place_writes_are_visible_to_autograd():
    """A graph that saved the parameter before the step refuses to backpropagate after it, as with torch.optim."""
    w = torch.nn.Parameter(torch.randn(4, 3))
    opt = geo.compile("adamw", backend="triton")([w])
    w.grad = torch.ones(4, 3)
    loss = (w * w).sum()  # saves w
    version = w._version
    opt.step()
    assert w._version > version
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
