"""Every stdlib optimizer on the inductor backend agrees with the reference backend.

One group per optimizer holds parameters of awkward shapes — 1×n, n×1, odd 7×5 (twice: equal shapes batch
their matrix ops), tall 9×3, wide 3×9, a conv kernel, a vector of 7 — every third one in bf16 (so a rule's
regions compile for fp32 and bf16 tensors, and bf16 parameters get bf16 states), and on the second of three
steps one element of one gradient is NaN: that tensor's step is skipped by the check fused into the kernels,
as the reference backend skips it through the runtime's own check.

Not bit for bit: Inductor fuses a region into one loop and rounds once where torch rounds per op (an FMA, a
lerp in fp32 for bf16 tensors), and a batched Newton–Schulz sums in another order. Tolerances, per element,
against the reference's value b:
    fp32    |a − b| ≤ 1e-5·|b| + 1e-5·max|b|
    bf16    |a − b| ≤ 4 ulp(b) + 1 ulp(max|b|)   (an ulp before a Newton–Schulz can move its bf16 output by one)
    solver  states a tolerance-driven root finder produces (SSO's λ, bisection on a monotone function): 5 % of
            max|b| for bf16 parameters, whose one-ulp input differences move the root that far
A wrong operator, input, broadcast or skip is off by far more.

With GEO_TEST_DEVICE=cuda (benchmarks/gpu_check.sh) the same runs on a GPU, where Inductor emits Triton kernels.

Compilation is the cost here (a few seconds per region variant on two cores); equal regions of different
optimizers share one compilation (compiler/backends/inductor.py), so the whole file is a few minutes cold and
seconds with Inductor's disk cache warm.
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

DEVICE = torch.device(os.environ.get("GEO_TEST_DEVICE", "cpu"))  # cuda: Inductor's Triton kernels (gpu_check.sh)
# adamw and muon (one region; regions around a batched Newton–Schulz) in every run, the rest in CI's slow part
OPTIMIZERS = [pytest.param(spec, name, marks=() if name in ("adamw", "muon") else pytest.mark.slow)
              for spec in stdlib_names() for name in front(source_for(spec))[1].root_optimizers]
SHAPES = {"hidden.0.weight": (7, 5), "hidden.1.weight": (7, 5), "tall.weight": (9, 3), "wide.weight": (3, 9),
          "row.weight": (1, 9), "col.weight": (9, 1), "conv.weight": (3, 2, 3, 3), "hidden.0.bias": (7,)}
BAD_STEP = 1  # the step (0-based) on which the first parameter's gradient holds a NaN
SOLVERS = ("sso_lambda",)  # operators whose result is a root found to a tolerance


def model_params(Opt) -> list[tuple[str, torch.Tensor]]:
    """The parameters some rule of the optimizer selects, every third one in bf16."""
    g = torch.Generator().manual_seed(0)
    out = []
    for i, (name, shape) in enumerate(SHAPES.items()):
        if isinstance(bind_rule(Opt._geo.info, ParamInfo(name, shape, infer_role(name, shape))), Diagnostic):
            continue
        dtype = torch.bfloat16 if i % 3 == 1 else torch.float32
        out.append((name, torch.randn(shape, generator=g, dtype=torch.float64).mul(0.5).to(DEVICE, dtype)
                    .requires_grad_()))
    return out


def run(spec: str, name: str, backend: str, steps: int = 3):
    Opt = geo.compile(spec, name=name, backend=backend)
    params = model_params(Opt)
    opt = Opt(params)
    g = torch.Generator().manual_seed(1)
    for k in range(steps):
        for _, p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64).to(DEVICE, p.dtype)
        if k == BAD_STEP:
            params[0][1].grad.view(-1)[0] = float("nan")
        opt.step()
    return params, opt


def assert_close(got: torch.Tensor, want: torch.Tensor, what: str, solver: bool = False) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype, got.shape, want.shape)
    a, b = got.double(), want.double()
    assert torch.equal(a.isnan(), b.isnan()), f"{what}: NaN in different places"
    a, b = a.nan_to_num(), b.nan_to_num()
    scale = b.abs().max().item() if b.numel() else 0.0
    if solver and want.dtype == torch.bfloat16:
        rtol, atol = 0.0, 0.05 * scale
    elif want.dtype == torch.bfloat16:
        rtol, atol = 4 * 2.0 ** -8, 2.0 ** -8 * scale
    else:
        rtol, atol = 1e-5, 1e-5 * scale
    err = (a - b).abs()
    bad = err > atol + rtol * b.abs()
    assert not bad.any(), f"{what}: max |diff| {err.max().item():.3g} (max |value| {scale:.3g})"


def slots_of(opt, ops: tuple[str, ...]) -> set[str]:
    return {name for runner in opt._geo._runners.values() for name, n in runner.program.outputs.items()
            if n.op in ops}


@pytest.mark.parametrize("spec,name", OPTIMIZERS)
def test_inductor_agrees_with_the_reference(spec, name):
    got, opt_i = run(spec, name, "inductor")
    want, opt_r = run(spec, name, "reference")
    assert {r.name for r in opt_i._geo._runners.values()} == {"inductor"}
    assert opt_i.nonfinite_skips == opt_r.nonfinite_skips == {got[0][0]: 1}
    free, solved = slots_of(opt_r, ("power_iter",)), slots_of(opt_r, SOLVERS)
    for (pname, a), (_, b) in zip(got, want):
        assert_close(a.detach(), b.detach(), pname)
        sa, sb = opt_i.state[a], opt_r.state[b]
        assert sa.keys() == sb.keys(), pname
        for k in sb:
            x, y = sa[k], sb[k]
            if not isinstance(y, torch.Tensor):
                assert x == pytest.approx(y, rel=1e-5), (pname, k)
                continue
            if k in free:  # power-iteration vectors: each row up to its sign (eigh picks one)
                flip = torch.where((x.double() * y.double()).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(x.dtype)
                x = x * flip
            assert_close(x, y, f"{pname} state {k}", solver=k in solved)
