"""Every stdlib optimizer on the Triton backend agrees with the reference backend.

One group holds parameters of awkward shapes — 1×n, n×1, odd 7×5 (twice: equal shapes batch their matrix
ops), tall 9×3, wide 3×9, a conv kernel, vectors of 7 and of 1 — so every kernel launches over several tensors
at once, and inputs are read whole, broadcast ((m, 1) second moments) and as 0-d reduction results. Three
steps, fp32; then the same with a third of the parameters in bf16 (kernels round each node to the dtype torch
holds it in, so bf16 agrees to an ulp or two; a wrong operator, index or broadcast is off by far more).
"""
from __future__ import annotations

import os

import pytest
import torch

import geo
from geo.compiler.binding import ParamInfo, bind_rule, infer_role
from geo.compiler.pipeline import front
from geo.dsl.diagnostics import Diagnostic
from geo.dsl.loader import source_for, stdlib_names

DEVICE = torch.device(os.environ.get("GEO_TEST_DEVICE", "cpu"))  # cuda: compiled kernels (gpu_check.sh)
OPTIMIZERS = [(spec, name) for spec in stdlib_names() for name in front(source_for(spec))[1].root_optimizers]

SHAPES = {"hidden.0.weight": (7, 5), "hidden.1.weight": (7, 5), "tall.weight": (9, 3), "wide.weight": (3, 9),
          "row.weight": (1, 9), "col.weight": (9, 1), "conv.weight": (3, 2, 3, 3), "hidden.0.bias": (7,),
          "gain.weight": (1,)}


def model_params(Opt, mixed: bool) -> list[tuple[str, torch.Tensor]]:
    """The parameters some rule of the optimizer selects (a spec for matrices gets the matrices)."""
    g = torch.Generator().manual_seed(0)
    out = []
    for i, (name, shape) in enumerate(SHAPES.items()):
        info = ParamInfo(name, shape, infer_role(name, shape))
        if isinstance(bind_rule(Opt._geo.info, info), Diagnostic):
            continue
        dtype = torch.bfloat16 if mixed and i % 3 == 1 else torch.float32
        out.append((name, torch.randn(shape, generator=g, dtype=torch.float64).mul(0.5).to(DEVICE, dtype)
                    .requires_grad_()))
    return out


def run(spec: str, name: str, backend: str, mixed: bool, steps: int = 3):
    Opt = geo.compile(spec, name=name, backend=backend)
    params = model_params(Opt, mixed)
    opt = Opt(params)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for _, p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64).to(DEVICE, p.dtype)
        opt.step()
    return params, opt


def assert_close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype, got.shape, want.shape)
    a, b = got.double(), want.double()
    assert torch.equal(a.isnan(), b.isnan()), f"{what}: NaN in different places"
    a, b = a.nan_to_num(), b.nan_to_num()
    scale = b.abs().max().item() if b.numel() else 0.0
    if want.dtype == torch.bfloat16:
        # a few bf16 ulps: a last-bit difference before a Newton–Schulz can move its bf16 output by an ulp
        rtol, atol = 4 * 2.0 ** -8, 2.0 ** -8 * scale
    else:
        rtol, atol = 1e-5, 1e-5 * scale
    err = (a - b).abs()
    bad = err > atol + rtol * b.abs()
    assert not bad.any(), f"{what}: max |diff| {err.max().item():.3g} (max |value| {scale:.3g})"


def sign_free_slots(opt) -> set[str]:
    """States holding power-iteration vectors: each row is defined up to its sign (eigh picks one), and which one
    may flip with a last-bit difference in the matrix."""
    return {name for runner in opt._geo._runners.values() for name, n in runner.program.outputs.items()
            if n.op == "power_iter"}


@pytest.mark.parametrize("mixed", [False, True], ids=["fp32", "fp32+bf16"])
@pytest.mark.parametrize("spec,name", OPTIMIZERS)
def test_triton_agrees_with_the_reference(spec, name, mixed):
    got, opt_t = run(spec, name, "triton", mixed)
    want, opt_r = run(spec, name, "reference", mixed)
    free = sign_free_slots(opt_r)
    for (pname, a), (_, b) in zip(got, want):
        assert_close(a.detach(), b.detach(), pname)
        sa, sb = opt_t.state[a], opt_r.state[b]
        assert sa.keys() == sb.keys(), pname
        for k in sb:
            x, y = sa[k], sb[k]
            if not isinstance(y, torch.Tensor):
                assert x == pytest.approx(y, rel=1e-5), (pname, k)
                continue
            if k in free:
                flip = torch.where((x.double() * y.double()).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(x.dtype)
                x = x * flip
            assert_close(x, y, f"{pname} state {k}")


def test_every_stdlib_spec_runs_some_kernels_on_the_triton_backend():
    """The test above is only worth something if the triton runner is the one stepping."""
    _, opt = run("adamw", "adamw", "triton", False, steps=1)
    runners = list(opt._geo._runners.values())
    assert runners and all(r.name == "triton" for r in runners)
    assert all(r.launches for r in runners)


@pytest.mark.parametrize("update", ["where(t == 1, a, b * 0.9)", "a"])
def test_a_state_taking_a_kept_state_s_value_gets_its_own_buffer(update):
    """As tests/backends' test of the same name: b = (a selection of) a kept state a must not share a's memory."""
    text = ("optimizer o(lr = 0.1):\n    for tensor W:\n        state a = zeros_like(W) + 1\n"
            f"        state b = zeros_like(W)\n        b = {update}\n        b = b * 0.9\n"
            "        W = W - lr * (a + b)\n")
    out = {}
    for backend in ("triton", "reference"):
        w = torch.nn.Parameter(torch.ones(3, 2, device=DEVICE))
        opt = geo.compile(text, backend=backend)([w], nonfinite="propagate")
        for _ in range(4):
            w.grad = torch.ones(3, 2, device=DEVICE)
            opt.step()
        assert opt.state[w]["a"].data_ptr() != opt.state[w]["b"].data_ptr(), backend
        out[backend] = (w.detach(), opt.state[w]["a"], opt.state[w]["b"])
    assert torch.equal(out["triton"][1], torch.ones(3, 2, device=DEVICE))
    for a, b in zip(out["triton"], out["reference"]):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)


def test_sgd_without_weight_decay_leaves_signed_zeros_and_infinite_weights_alone():
    """The Triton twin of tests/differential's test of the same name: axpy(x, y, 0) is x in the kernels too."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "differential"))
    from test_torch_optim import sgd_on_signed_zeros_and_an_infinite_weight

    ours, ref = sgd_on_signed_zeros_and_an_infinite_weight("triton", str(DEVICE))
    assert torch.equal(ours.nan_to_num(), ref.nan_to_num()) and torch.equal(ours.isnan(), ref.isnan())
    assert torch.equal(ours.signbit(), ref.signbit())
