"""The mirror step as elementwise operators (compiler/ops/mirror.py, `_expand_step`): exact against an oracle,
fused into one region of HORST's plan, and HORST's steps against a float64 oracle on the torch path and Inductor.

The oracle is mpmath at 50 digits: x⁺ = β·sinh(asinh(x/β) − s), from the values the tested dtype holds. The
tolerance is the problem's own conditioning (mirror_step's docstring): an ulp of x moves x⁺ by up to an ulp of
√(x⁺² + β²), and s enters multiplied by β·cosh(u − s), so per element

    |got − want| ≤ 8·eps·(1 + |s|)·√(want² + β²)          (eps of the dtype)

and where |want| exceeds the dtype's range, got is the infinity of want's sign. The closed form
x·cosh s − √(x² + β²)·sinh s that the operator used before fails it (`test_the_closed_form_fails_the_oracle`).
"""
from __future__ import annotations

import math

import mpmath
import pytest
import torch

import geo
from geo.compiler.ops import registry
from geo.compiler.pipeline import front, specialize
from geo.compiler.plan import OpCall, plan
from geo.dsl.loader import source_for
from geo.dsl.source import SourceFile

mpmath.mp.dps = 50

BETAS = (1e-9, 5e-3, 1.0, 1e3)
XS = [0.0, -0.0] + [sgn * m for m in (1e-30, 1e-6, 3e-3, 0.5, 2.0, 1e3, 1e8, 1e20, 1e30) for sgn in (1, -1)]
SS = [0.0] + [sgn * m for m in (1e-8, 1e-3, 0.3, 1.0, 5.0, 30.0, 80.0, 150.0) for sgn in (1, -1)]


def grid(dtype):
    x = torch.tensor([a for a in XS for _ in SS], dtype=dtype)
    s = torch.tensor([b for _ in XS for b in SS], dtype=dtype)
    return x, s


def oracle(x: torch.Tensor, s: torch.Tensor, beta: float) -> list[float]:
    """β·sinh(asinh(x/β) − s) in 50 digits, as Python floats (±inf beyond float64)."""
    b = mpmath.mpf(beta)
    out = []
    for xv, sv in zip(x.double().tolist(), s.double().tolist()):
        v = b * mpmath.sinh(mpmath.asinh(mpmath.mpf(xv) / b) - mpmath.mpf(sv))
        out.append(float(v) if abs(v) < mpmath.mpf("1e308") else math.copysign(math.inf, float(mpmath.sign(v))))
    return out


def check(got: torch.Tensor, x: torch.Tensor, s: torch.Tensor, beta: float, what: str) -> None:
    info = torch.finfo(got.dtype)
    want = oracle(x, s, beta)
    beta = float(torch.tensor(beta, dtype=got.dtype))  # the β the kernel computes with
    for g, w, xv, sv in zip(got.double().tolist(), want, x.tolist(), s.tolist()):
        where = f"{what}: x = {xv!r}, s = {sv!r}, β = {beta!r}: got {g!r}, want {w!r}"
        if abs(w) > info.max:
            assert g == math.copysign(math.inf, w), where
            continue
        tol = 8 * info.eps * (1 + abs(sv)) * math.hypot(w, beta)
        assert math.isfinite(g) and abs(g - w) <= tol, where


STEP = """optimizer m(beta = 1.0):
    for tensor W:
        W = mirror_step(W, grad, 1, "{kind}", beta)
"""


def fused_step(kind: str, x: torch.Tensor, s: torch.Tensor, beta: float | None = None,
               backend: str = "torch") -> torch.Tensor:
    """One step of `mirror_step(W, grad, 1, kind, beta)` as geo compiles it (the rewritten form): W = x, grad = s."""
    spec = STEP.format(kind=kind) if kind == "hypentropy" else \
        STEP.format(kind=kind).replace("(beta = 1.0)", "").replace(", beta)", ")")
    w = torch.nn.Parameter(x.clone())
    opt = geo.compile(spec, backend=backend)([("w", w)], **({"beta": beta} if beta is not None else {}))
    w.grad = s.clone()
    opt.step()
    return w.detach()


def rule_plans(spec_source: SourceFile, name: str | None = None, rank: int = 2):
    """(variant rank, program, plan) of every variant of every rule, as `geo compile --emit plan` prints them."""
    _, checked = front(spec_source)
    info = checked.select(spec_source.name, name if name is not None else spec_source.entry)
    out = []
    for rule in info.rules:
        for variant_rank, active in rule.variants():
            program = specialize(checked, rule, rule.statics(), variant_rank if variant_rank is not None else rank,
                                 active)
            out.append((variant_rank, program, plan(program)))
    return out


# ---- the arithmetic --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("beta", BETAS)
def test_the_reference_meets_the_oracle(dtype, beta):
    x, s = grid(dtype)
    got = registry.get("mirror_step").reference(x, s, 1, beta, kind="hypentropy")
    check(got, x, s, beta, f"reference {dtype}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("beta", BETAS)
def test_the_rewritten_step_meets_the_oracle(dtype, beta):
    x, s = grid(dtype)
    check(fused_step("hypentropy", x, s, beta), x, s, beta, f"rewritten {dtype}")


@pytest.mark.parametrize("beta", BETAS)
def test_the_rewritten_step_equals_the_closed_form_where_it_is_exact(beta):
    """|s| ≤ 3 and |x| ≤ 10³·β in float64: the old closed form loses at most e^{2|s|} ulp, so both agree."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(4000, generator=g, dtype=torch.float64) * 2 - 1) * 1e3 * beta
    x[:7] = torch.tensor([0.0, -0.0, beta, -beta, 1e-3 * beta, 5e-324, -1e3 * beta], dtype=torch.float64)
    s = (torch.rand(4000, generator=g, dtype=torch.float64) * 2 - 1) * 3
    old = x * torch.cosh(s) - torch.hypot(x, torch.tensor(beta, dtype=torch.float64)) * torch.sinh(s)
    got = fused_step("hypentropy", x, s, beta)
    tol = 1e-15 * (x.abs() + beta) * torch.cosh(s) * torch.exp(2 * s.abs())
    assert ((got - old).abs() <= tol).all(), (got - old).abs().max().item()


def test_the_closed_form_fails_the_oracle():
    """The tests can fail: the closed form the operator had, in float32 at x = 1, β = 10⁻³, s = 10, cancels."""
    x, s, beta = torch.tensor([1.0]), torch.tensor([10.0]), 1e-3
    old = x * torch.cosh(s) - torch.hypot(x, torch.tensor(beta)) * torch.sinh(s)
    with pytest.raises(AssertionError):
        check(old, x, s, beta, "closed form")
    check(fused_step("hypentropy", x, s, beta), x, s, beta, "rewritten")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_euclidean_and_entropy_rewrite_to_their_definitions(dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(257, generator=g, dtype=torch.float64)
    s = torch.randn(257, generator=g, dtype=torch.float64) * 3
    xd, sd = x.to(dtype), s.to(dtype)
    eps = torch.finfo(dtype).eps
    gd = fused_step("euclidean", xd, sd).double()
    want = xd.double() - sd.double()
    assert ((gd - want).abs() <= eps * (want.abs() + 1e-300)).all()
    pos = xd.abs() + 1e-3
    ge = fused_step("entropy", pos, sd).double()
    want = pos.double() * torch.exp(-sd.double())
    assert ((ge - want).abs() <= 4 * eps * want.abs()).all()


# ---- the plan ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["horst", "horst_r2", "horst_r3"])
def test_horst_s_matrix_step_is_one_fused_region(name):
    plans = [(prog, p) for rank, prog, p in rule_plans(source_for("horst"), name) if rank == 2]  # the matrix rules
    assert plans
    for program, p in plans:
        assert [ph for ph in p.phases if isinstance(ph, OpCall)] == [], p.show()
        kernels = p.kernels()
        assert len(kernels) == 1, p.show()
        ops = {n.op for n in kernels[0].nodes}
        assert {"expm1", "sqrt"} <= ops and "mirror_step" not in ops, ops
        assert program.outputs["param"] in kernels[0].outputs and "param" in p.in_place, p.show()


def test_the_other_kinds_stay_one_operator():
    pnorm = 'optimizer m:\n    for tensor W:\n        W = mirror_step(W, grad, 0.1, "pnorm", p = 3)\n'
    bad_beta = 'optimizer m:\n    for tensor W:\n        W = mirror_step(W, grad, 0.1, "hypentropy", -1.0)\n'
    for spec in (pnorm, bad_beta):
        ((_, _, p),) = rule_plans(SourceFile("m.geo", spec), rank=1)
        assert [ph.node.op for ph in p.phases if isinstance(ph, OpCall)] == ["mirror_step"], p.show()
    w = torch.nn.Parameter(torch.ones(3))  # the reference still refuses β ≤ 0
    opt = geo.compile(bad_beta)([("w", w)])
    w.grad = torch.ones(3)
    with pytest.raises(Exception, match="beta > 0"):
        opt.step()


# ---- HORST against a float64 oracle -----------------------------------------------------------------------------
def horst_oracle(params, grads, steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, wd=1e-2, alpha=200.0, l1=1e-3,
                 beta=5e-3):
    """R1 = H ∘ A in float64: torch.optim.AdamW, then W ← β·sinh(asinh(W/β) − clamp(lr·(α·g + λ₁·sign W), ±5))
    on matrices (mpmath-free: |s| ≤ 5 and |W|/β ≤ 10³ here, where float64 sinh/asinh are exact to 1e-13)."""
    ws = [torch.nn.Parameter(p.detach().double().clone()) for p in params]
    opt = torch.optim.AdamW(ws, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    for k in range(steps):
        for w, g in zip(ws, grads[k]):
            w.grad = g.double()
        opt.step()
        with torch.no_grad():
            for w, g in zip(ws, grads[k]):
                if w.ndim == 2:
                    s = (lr * (alpha * g.double() + l1 * torch.sign(w))).clamp(-5, 5)
                    w.copy_(beta * torch.sinh(torch.asinh(w / beta) - s))
    return [w.detach() for w in ws]


def horst_run(backend: str, dtype=torch.float32, steps: int = 3):
    g = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (9, 3), (1, 9), (7,)]
    params = [torch.randn(sh, generator=g, dtype=torch.float64).mul(0.02).to(dtype) for sh in shapes]
    grads = [[torch.randn(sh, generator=g, dtype=torch.float64).to(dtype) for sh in shapes] for _ in range(steps)]
    ws = [torch.nn.Parameter(p.clone()) for p in params]
    opt = geo.compile("horst", backend=backend)([(f"l{i}.weight" if p.ndim == 2 else "l.bias", w)
                                                 for i, (p, w) in enumerate(zip(params, ws))])
    for k in range(steps):
        for w, gr in zip(ws, grads[k]):
            w.grad = gr.clone()
        opt.step()
    return [w.detach() for w in ws], horst_oracle(params, grads, steps)


def assert_horst_close(got, want, what):
    """fp32 against float64: 1e-5·|b| + 1e-5·max|b| per element (tests/inductor's fp32 tolerance)."""
    for a, b in zip(got, want):
        err = (a.double() - b).abs()
        tol = 1e-5 * b.abs() + 1e-5 * b.abs().max()
        assert (err <= tol).all(), f"{what} {tuple(a.shape)}: max error {err.max().item():.3g}"


def test_horst_on_the_torch_path_meets_the_float64_oracle():
    got, want = horst_run("torch")
    assert_horst_close(got, want, "torch path")


@pytest.mark.slow
def test_horst_on_inductor_meets_the_float64_oracle():
    got, want = horst_run("inductor")
    assert_horst_close(got, want, "inductor")
