"""Momentum and moment helpers that read like the papers: `ema(m, grad, beta)` rather than
`lerp(m, grad, 1 - beta)`.

Each is sugar for existing operators and is rewritten to them by `canonicalize`, so a spec that writes the
arithmetic out and one that uses the helper compile to the same IR (and the torch backend's arithmetic is
exactly torch.optim's, e.g. `buf.lerp_(grad, 1 - momentum)` in torch.optim.Muon):

    ema(m, x, β)               → lerp(m, x, 1 − β)                  = β·m + (1 − β)·x
    nesterov(g, buf, μ)        → lerp(g, buf, μ)                    = (1 − μ)·g + μ·buf
    bias_correction(β, t)      → 1 − β ^ t
    row_mean_sq(x)             → mean(square(x), axis = -1)         one second moment per row
    tensor_mean_sq(x)          → mean(square(x))                    one second moment per tensor
    heavy_ball(buf, g, μ)      → μ·buf + g                          Polyak's momentum
"""
from __future__ import annotations

from ..types import SCALAR, Tensor
from . import _inductor, _triton, sampling
from .reduce import reduce_rule, rms
from .registry import ELEMENTWISE, REDUCTION, Domain, Law, Rewrite, elementwise_rule, host_scalar, op, reduction
from ._lazy import lazy_torch

torch = lazy_torch(globals())


def _lerp(a, b, w):
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape:
        return torch.lerp(a, b, host_scalar(w, a))
    return a + w * (b - a)


def _close(a, b, tol=1e-9):
    assert torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                          rtol=tol, atol=tol), f"{a} != {b}"


def _numeric_const(n) -> bool:
    return n.op == "const" and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)


def _scalar_type(*nodes):
    """The type of an elementwise combination of scalars and at most one tensor-typed node."""
    return next((n.type for n in nodes if isinstance(n.type, Tensor)), SCALAR)


# ---- rewrites to existing operators --------------------------------------------------------------------
def _ema_to_lerp(node, graph):
    m, x, beta = node.args
    if _numeric_const(beta):
        w = graph.const(1 - beta.value, node.span)  # folded exactly as the checker folds `1 - 0.9`
    else:
        w = graph.node("sub", (graph.const(1, node.span), beta), type=_scalar_type(beta), span=node.span)
    return graph.node("lerp", (m, x, w), type=node.type, span=node.span)


def _nesterov_to_lerp(node, graph):
    g, buf, mu = node.args
    return graph.node("lerp", (g, buf, mu), type=node.type, span=node.span)


def _bias_correction_to_pow(node, graph):
    beta, t = node.args
    power = graph.node("pow", (beta, t), type=node.type, span=node.span)
    return graph.node("sub", (graph.const(1, node.span), power), type=node.type, span=node.span)


def _row_mean_sq_to_mean(node, graph):
    (x,) = node.args
    sq = graph.node("square", (x,), type=x.type, span=node.span)
    return graph.node("mean", (sq,), {"axis": -1}, type=node.type, span=node.span)


# ---- laws ----------------------------------------------------------------------------------------------
def _pair_with(scalar_strategy):
    st = sampling._st()
    return sampling.tensors(sampling.shapes(1, 2)).flatmap(
        lambda x: st.tuples(st.just(x), sampling.tensors(st.just(tuple(x.shape))), scalar_strategy))


def _ema_law(f, sample):
    m, x, beta = sample
    _close(f(m, x, beta), beta * m + (1 - beta) * x)


def _debias_law(f, sample):
    c, beta, t = sample
    m = 0.0
    for _ in range(t):
        m = beta * m + (1 - beta) * c
    _close(m / f(beta, float(t)), c)


def _nesterov_law(f, sample):
    g, b, mu = sample
    _close(f(g, (1 - mu) * b, mu), (1 - mu) * (g + mu * b))


def _row_law(f, x):
    _close(f(x), rms.reference(x, axis=-1).square())


# ---- the operators -------------------------------------------------------------------------------------
@op(ELEMENTWISE, elementwise_rule, rewrites=[Rewrite("ema(m, x, β) -> lerp(m, x, 1 - β)", _ema_to_lerp)],
    laws=[Law("ema(m, x, β) = β·m + (1 − β)·x", lambda: _pair_with(sampling.scalars(0.0, 1.0)), _ema_law)],
    domain={"beta": Domain(0.0, 1.0)}, triton=_triton.template("G.lerp({0}, {1}, 1.0 - {2})"),
    inductor=lambda m, x, beta: _inductor.lerp(m, x, 1 - beta))
def ema(m, x, beta):
    """ema(m, x, β) = β·m + (1 − β)·x = lerp(m, x, 1 − β), the exponential moving average.

    What momentum buffers and Adam's moments keep (m ← ema(m, grad, β₁)). torch.optim.Muon/Adam compute it as
    `m.lerp_(x, 1 − β)`; so does this (Kingma & Ba, "Adam", arXiv 1412.6980; algorithms.md §0)."""
    return _lerp(m, x, 1 - beta)


@op(ELEMENTWISE, elementwise_rule, rewrites=[Rewrite("nesterov(g, buf, μ) -> lerp(g, buf, μ)", _nesterov_to_lerp)],
    laws=[Law("nesterov(g, (1 − μ)·b, μ) = (1 − μ)·(g + μ·b): torch.optim.SGD's Nesterov up to (1 − μ)",
              lambda: _pair_with(sampling.scalars(0.0, 0.99)), _nesterov_law)],
    domain={"momentum": Domain(0.0, 1.0)}, triton=_triton.template("G.lerp({0}, {1}, {2})"),
    inductor=lambda g, buf, momentum: _inductor.lerp(g, buf, momentum))
def nesterov(g, buf, momentum):
    """nesterov(g, buf, μ) = lerp(g, buf, μ) = (1 − μ)·g + μ·buf, Nesterov's look-ahead.

    For an EMA buffer buf = ema(buf, g, μ), as Keller Jordan's Muon and torch.optim.Muon compute it
    (algorithms.md §1.1–1.2). With torch.optim.SGD's classical buffer b = Σ μᵏ g (= buf/(1 − μ)) it is
    (1 − μ)·(g + μ·b), SGD's Nesterov direction times 1 − μ (Sutskever et al., ICML 2013)."""
    return _lerp(g, buf, momentum)


def _fold_bias_correction(beta, t):
    return 1 - beta ** t


@op(ELEMENTWISE, elementwise_rule, fold=_fold_bias_correction, triton=_triton.template("(1.0 - G.pow({0}, {1}))"),
    rewrites=[Rewrite("bias_correction(β, t) -> 1 - β ^ t", _bias_correction_to_pow)],
    laws=[Law("ema from 0 of a constant c, divided by bias_correction(β, t), is c",
              lambda: sampling._st().tuples(sampling.scalars(), sampling.scalars(0.0, 0.999),
                                            sampling._st().integers(1, 50)),
              _debias_law)],
    domain={"beta": Domain(0.0, 0.999), "t": Domain(low=1.0)})
def bias_correction(beta, t):
    """bias_correction(β, t) = 1 − βᵗ, the total weight of an EMA started at 0 after t steps.

    m/(1 − βᵗ) is unbiased (Kingma & Ba, "Adam", arXiv 1412.6980, §3). With runtime scalars (β a
    hyperparameter, t the step count, incremented before the step) it is computed on the host in double
    precision, as torch.optim does."""
    if isinstance(beta, torch.Tensor) or isinstance(t, torch.Tensor):
        return 1 - torch.pow(beta, t)
    return 1 - beta ** t


def _row_rule(args, attrs, constraints):
    return reduce_rule(args, {"axis": -1}, constraints)


@op(REDUCTION, _row_rule, rewrites=[Rewrite("row_mean_sq(x) -> mean(square(x), axis = -1)", _row_mean_sq_to_mean)],
    laws=[Law("row_mean_sq(x) = rms(x, axis = -1)²", lambda: sampling.tensors(sampling.shapes(1, 3)), _row_law)], sharding=reduction("last", "mean"))
def row_mean_sq(x):
    """row_mean_sq(x) = mean(x², axis = -1), one second moment per row (the axis kept as size 1).

    For a matrix: one per output neuron, shape (m, 1). NorMuon's s_i = mean_j O_ij² (Li et al., arXiv
    2510.05491; algorithms.md §5.4); Adafactor's row statistic (Shazeer & Stern, arXiv 1804.04235)."""
    return x.square().mean(dim=-1, keepdim=True)


def _heavy_ball_to_arith(node, graph):
    buf, g, mu = node.args
    if _numeric_const(mu) and _numeric_const(buf):
        scaled = graph.const(mu.value * buf.value, node.span)
    else:  # μ·buf has the type of their broadcast, not buf's (a scalar buf times a tensor μ is a tensor)
        scaled = graph.node("mul", (mu, buf), type=elementwise_rule([mu.type, buf.type], {}, []), span=node.span)
    return graph.node("add", (scaled, g), type=node.type, span=node.span)


def _heavy_ball_law(f, sample):
    b, g, mu = sample
    _close(f(b, g, mu), mu * b + g)
    _close(f(torch.zeros_like(g), g, mu), g)  # a buffer started at 0 takes the first gradient whole


@op(ELEMENTWISE, elementwise_rule, rewrites=[Rewrite("heavy_ball(buf, g, μ) -> μ·buf + g", _heavy_ball_to_arith)],
    laws=[Law("heavy_ball(b, g, μ) = μ·b + g", lambda: _pair_with(sampling.scalars(0.0, 0.99)), _heavy_ball_law)],
    domain={"momentum": Domain(0.0, 1.0)}, triton=_triton.template("({2} * {0} + {1})"))
def heavy_ball(buf, g, momentum):
    """heavy_ball(buf, g, μ) = μ·buf + g, Polyak's heavy-ball momentum (Polyak 1964; torch.optim.SGD's buffer
    with dampening 0). Unlike the EMA it sums gradients: its scale grows to 1/(1 − μ)."""
    return momentum * buf + g


def _tensor_mean_sq_to_mean(node, graph):
    (x,) = node.args
    sq = graph.node("square", (x,), type=x.type, span=node.span)
    return graph.node("mean", (sq,), {"axis": None}, type=node.type, span=node.span)


def _tensor_law(f, x):
    _close(f(x), x.square().mean())


@op(REDUCTION, reduce_rule, rewrites=[Rewrite("tensor_mean_sq(x) -> mean(square(x))", _tensor_mean_sq_to_mean)],
    laws=[Law("tensor_mean_sq(x) = rms(x)²", lambda: sampling.tensors(sampling.shapes(1, 3)), _tensor_law)], sharding=reduction("all", "mean"))
def tensor_mean_sq(x):
    """tensor_mean_sq(x) = mean(x²) over the whole tensor, a 0-d tensor: one second moment per tensor, as NAMO
    keeps (v ← μ₂·v + (1 − μ₂)·‖G‖²_F up to the constant N; Zhang, Liu, Schaeffer, arXiv 2602.17080;
    algorithms.md §5.6) and Adam-mini per block."""
    return x.square().mean()
