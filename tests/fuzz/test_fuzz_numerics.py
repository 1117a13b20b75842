"""The numerics policy: non-finite gradients follow `nonfinite=` for every stdlib optimizer and every rule;
normalizations never divide by zero; huge, tiny and zero inputs stay finite; host arithmetic is IEEE."""
from __future__ import annotations

import pytest
import torch

import geo
from geo.compiler.ops import registry
from geo.dsl.loader import stdlib_names
from geo.fuzz import cases

SHAPES = {0: (), 1: (5,), 2: (4, 3), 3: (2, 4, 3), 4: (4, 2, 3, 3)}


def _one_param_per_rule(spec):
    for subject in cases.load_subjects(spec):
        for rule, targets in cases.targets(subject.cls).items():
            if targets:
                t = targets[0]
                shape = SHAPES[t.rank] if t.rows_multiple == 1 else (2 * t.rows_multiple, 3)
                yield subject, t, shape


CASES = [(spec, subject.name, t, shape) for spec in stdlib_names() for subject, t, shape in _one_param_per_rule(spec)]


def _ids():
    return [f"{name}-rule{t.rule}-{t.rank}d" for _, name, t, _ in CASES]


@pytest.mark.parametrize(("spec", "name", "target", "shape"), CASES, ids=_ids())
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_gradient_policies(spec, name, target, shape, bad):
    Opt = geo.compile(spec, name=name)
    grad = torch.randn(shape)
    grad.view(-1)[0] = bad
    start = torch.randn(shape)
    # skip: that parameter's step is skipped whole, and counted
    p = torch.nn.Parameter(start.clone())
    opt = Opt([(target.name, p)], roles={target.name: target.role})
    p.grad = grad
    opt.step()
    assert torch.equal(p.detach(), start) and p not in opt.state and opt.nonfinite_skips == {target.name: 1}
    # raise: FloatingPointError, nothing applied
    opt = Opt([(target.name, p)], roles={target.name: target.role}, nonfinite="raise")
    with pytest.raises(FloatingPointError, match=target.name):
        opt.step()
    assert torch.equal(p.detach(), start) and p not in opt.state
    # propagate: no exception (SVD- and eigh-based operators too), as torch.optim
    for backend in ("torch", "reference"):
        q = torch.nn.Parameter(start.clone())
        opt = Opt([(target.name, q)], roles={target.name: target.role}, nonfinite="propagate", backend=backend)
        q.grad = grad
        opt.step()


def _msign(x, **kw):
    return registry.get("msign").reference(x, **kw)


@pytest.mark.parametrize("coeffs", ["keller", "polar_express", "tuned6", "sso8"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp64", "param"])
def test_msign_of_zero_tiny_and_huge(coeffs, dtype):
    for shape in [(1, 1), (3, 5), (5, 3), (2, 3, 4)]:
        zero = torch.zeros(shape)
        assert torch.equal(_msign(zero, coeffs=coeffs, dtype=dtype), zero)  # no 0/0
        g = torch.randn(shape)
        for scale in (1e-30, 1e30):
            out = _msign(g * scale, coeffs=coeffs, dtype=dtype)
            assert out.isfinite().all()
        if dtype in ("fp32", "fp64", "param"):  # a huge gradient is orthogonalized as a normal one (no 1/inf = 0)
            assert torch.allclose(_msign(g * 1e30, coeffs=coeffs, dtype=dtype), _msign(g, coeffs=coeffs, dtype=dtype),
                                  atol=1e-3)
    assert torch.equal(_msign(torch.zeros(3, 4), method="svd"), torch.zeros(3, 4))


@pytest.mark.parametrize("kind", registry.get("lmo").domain_of("kind").choices)
def test_norms_and_lmos_of_zero_are_zero(kind):
    from geo.compiler.ops.norms import NORMS
    for shape in [(4, 3), (1, 5), (5, 1), (2, 3, 3)] + ([] if NORMS[kind].matrix else [(5,), ()]):
        zero = torch.zeros(shape, dtype=torch.float64)
        for op in ("lmo", "sharp"):
            out = registry.get(op).reference(zero, kind=kind)
            assert torch.equal(out, torch.zeros_like(out)), (op, kind, shape)
        for op in ("norm", "dual_norm"):
            assert bool((registry.get(op).reference(zero, kind=kind) == 0).all())  # per matrix for a batch


def test_projections_of_zero_are_finite():
    for s in registry.get("project").domain_of("set").choices:
        x = torch.zeros(4, 3, dtype=torch.float64)
        for op in ("project", "retract"):
            out = registry.get(op).reference(x, set=s, radius=1.0)
            assert out.isfinite().all(), (op, s)
        assert registry.get("tangent").reference(x, x, set=s, radius=1.0).isfinite().all(), s


@pytest.mark.parametrize("backend", ["torch", "reference"])
def test_host_arithmetic_is_ieee(backend):
    """1/0, sqrt(-1) and 10^400 on hyperparameters give inf/NaN as tensors would, not a Python exception; a
    finite hyperparameter beyond float32's range is inf in a float32 step."""
    text = ("optimizer o(lr = 0.1, beta = 0.9):\n    for tensor W:\n        state m = zeros_like(W)\n"
            "        m = lerp(m, grad, 1 - beta)\n        W = W - lr / (1 - beta) * m + 0 * sqrt(beta - 2) + 0 * 10 ^ (400 * beta)\n")
    Opt = geo.compile(text, backend=backend)
    for beta in (1.0, 1e300):
        w = torch.nn.Parameter(torch.ones(3))
        opt = Opt([w], beta=beta)
        w.grad = torch.ones(3)
        opt.step()
        assert not w.detach().isfinite().any()
