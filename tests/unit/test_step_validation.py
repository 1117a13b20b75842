"""Hyperparameters in their declared ranges everywhere they enter, an atomic step, duplicates as torch.optim.

Before issue 16: `lr=tensor(nan)`, `lr=-1`, `betas=(0.9, -1)`, `eps=-1` and checkpoints with `step=nan`,
`step=-5` or `lr=-1` in a group were accepted and silently corrupted the parameters (torch.optim.AdamW raises
ValueError for each); a step that raised in a later group had already updated the earlier groups and
incremented step counts, so a retry applied their update twice; a parameter listed twice was updated once
(SGD: 0.9 where torch gives 0.8).
"""
from __future__ import annotations

import copy
import math

import pytest
import torch

import geo
from geo.compiler.backends.torch_path import TorchPathStep
from geo.dsl.loader import stdlib_optimizers
from geo.runtime.checkpoint import CheckpointError

ADAMW_INVALID = [dict(lr=-1.0), dict(lr=math.nan), dict(lr=torch.tensor(math.nan)), dict(lr=torch.tensor(-1.0)),
                 dict(eps=-1.0), dict(betas=(0.9, -1.0)), dict(betas=(-0.1, 0.9)), dict(betas=(1.0, 0.9)),
                 dict(betas=(0.9, 1.0)), dict(weight_decay=-1e-9)]
SGD_INVALID = [dict(lr=-1.0), dict(momentum=-0.1), dict(weight_decay=-1.0)]
MUON_INVALID = [dict(lr=-1.0), dict(momentum=-1.0), dict(weight_decay=-1.0)]
TORCH = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD, "muon": torch.optim.Muon}


def _params(shape=(4, 3), n=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g).requires_grad_() for _ in range(n)]


@pytest.mark.parametrize("spec, kw", [("adamw", kw) for kw in ADAMW_INVALID] + [("sgd", kw) for kw in SGD_INVALID]
                         + [("muon", kw) for kw in MUON_INVALID], ids=repr)
def test_the_constructor_refuses_what_torch_refuses(spec, kw):
    with pytest.raises(ValueError):
        TORCH[spec](_params(), **kw)
    with pytest.raises(ValueError, match="must be (in|finite)"):
        geo.compile(spec)(_params(), **kw)


@pytest.mark.parametrize("spec, kw", [("adamw", dict(lr=0.0, eps=0.0, betas=(0.0, 0.0), weight_decay=0.0)),
                                      ("adamw", dict(lr=torch.tensor(0.01), betas=(0.999, 0.5))),
                                      ("sgd", dict(lr=0.0, momentum=0.0, weight_decay=0.0, dampening=-1.0)),
                                      ("sgd", dict(momentum=5.0)), ("muon", dict(lr=0.0, momentum=0.0))], ids=repr)
def test_the_constructor_accepts_the_edges_torch_accepts(spec, kw):
    """(geo refuses one value torch.optim.SGD takes: lr=nan, as `lr < 0` is false for it; and lr=inf.)"""
    TORCH[spec](_params(), **kw)
    geo.compile(spec)(_params(), **kw)


@pytest.mark.parametrize("spec", ["sgd", "adamw"])
@pytest.mark.parametrize("lr", [math.nan, math.inf, torch.tensor(math.inf)], ids=repr)
def test_non_finite_values_are_refused(spec, lr):
    with pytest.raises(ValueError, match="must be finite"):
        geo.compile(spec)(_params(), lr=lr)


# Runtime numbers a stdlib spec leaves without a range, each with why: torch.optim checks nothing there either.
UNRANGED = {("sgd", "dampening"): "torch.optim.SGD accepts any dampening (the edge test above passes -1)"}


def _runtime_numbers(name):
    """(hyperparameter, its declaration) for every runtime number of every rule of stdlib optimizer `name`."""
    info = geo.compile(name)._geo.info
    rules = info.rules + ([info.across] if info.across is not None else [])
    return [(h.name, h) for r in rules for h in r.hypers.values()
            if not h.static and isinstance(h.default, (int, float, tuple)) and not isinstance(h.default, bool)]


def _outside(h):
    """A finite value just outside `h`'s declared range (below its low end if it has one, else above its high end),
    in the shape of its default (a tuple's first number moved out)."""
    r = h.range
    bad = r.lo - 1.0 if math.isfinite(r.lo) else r.hi + 1.0
    return (bad, *h.default[1:]) if isinstance(h.default, tuple) else bad


@pytest.mark.parametrize("name", sorted(stdlib_optimizers()))
def test_every_stdlib_optimizer_declares_and_enforces_its_ranges(name):
    """Every numeric runtime hyperparameter of every stdlib optimizer declares a range (issue 16 gave the first wave
    torch.optim's checks; the second wave, issue 12, had none, so `namo(lr=-1)` or `fismo(momentum=1.5)` trained on
    silently), and the constructor refuses a value outside it with ValueError, as torch.optim.AdamW does lr=-1."""
    numbers = _runtime_numbers(name)
    missing = sorted({n for n, h in numbers if h.range is None and (name, n) not in UNRANGED})
    assert not missing, f"{name}: runtime hyperparameters without a declared range: {missing}"
    with pytest.raises(ValueError, match=r"`lr` must be in \[0, inf\), got -1.0"):
        geo.compile(name)(_params(), lr=-1.0)
    for n, h in numbers:
        if h.range is None:
            continue
        with pytest.raises(ValueError, match=f"`{n}(\\[0\\])?` must be in"):
            geo.compile(name)(_params(), **{n: _outside(h)})


@pytest.mark.parametrize("kw", [dict(betas=(-1.0, 0.9)), dict(adamw={"eps": -1.0}), dict(muon={"momentum": -1.0})],
                         ids=repr)
def test_a_keyword_for_a_route_without_parameters_is_checked_at_construction(kw):
    """muon_adamw given only hidden matrices: no parameter reaches its AdamW route, and its values were checked
    only when a group of that route was built (never, or at a later add_param_group), so `betas=(-1, 0.9)` was
    accepted. torch.optim checks its arguments at construction; so does geo now, for every rule that declares them."""
    with pytest.raises(ValueError, match="must be in"):
        geo.compile("muon_adamw")(_params(), **kw)


@pytest.mark.parametrize("name, kw", [("namo", dict(momentum=1.5)), ("namo_d", dict(col_clamp=1.5)),
                                      ("root", dict(outlier_quantile=1.5)), ("fismo", dict(gamma=-0.1)),
                                      ("drop_muon", dict(keep=1.01)), ("frugal", dict(betas=(0.9, 1.0))),
                                      ("sage", dict(betas=(0.9, 1.0))), ("mkor", dict(clip=-1.0)),
                                      ("adaptive_memory", dict(lam=-0.5)), ("hypersphere", dict(eps=-1e-9)),
                                      ("aro", dict(rotate_every=0)), ("frugal_columns", dict(density=1.5))], ids=repr)
def test_the_second_wave_refuses_what_its_math_cannot_take(name, kw):
    """Upper ends and statics: a momentum above 1, a β₂ of 1 where the step divides by 1 − β₂ᵗ, a fraction above
    1, a period of 0 (a ValueError here, where `every 0` was GEO0308 when the kernel was specialized)."""
    with pytest.raises(ValueError, match="must be in"):
        geo.compile(name)(_params(), **kw)


@pytest.mark.parametrize("name, kw", [("namo", dict(momentum=1.0, mu2=0.0, eps=0.0, scale_coeff=0.0)),
                                      ("namo_d", dict(col_clamp=0.0)), ("namo_d", dict(col_clamp=1.0)),
                                      ("root", dict(outlier_quantile=1.0, momentum=0.0)), ("fismo", dict(gamma=1.0)),
                                      ("drop_muon", dict(keep=0.0)), ("frugal", dict(betas=(0.0, 0.0), density=1.0)),
                                      ("mkor", dict(momentum=1.0, reset_threshold=0.0, clip=0.0)),
                                      ("adaptive_memory", dict(lam=0.0)), ("aro", dict(rotate_every=1))], ids=repr)
def test_the_second_wave_accepts_the_edges_of_its_ranges(name, kw):
    """The closed ends are legitimate values: col_clamp = 0 turns NAMO-D's clamp off, momentum 1 and γ = 1 are the
    no-forgetting limits, a zero threshold resets MKOR's factors at every refresh."""
    geo.compile(name)(_params(), **kw)


def test_a_spec_declares_its_ranges():
    opt = geo.compile("optimizer o(lr = 0.1 in (0, 1], static k = 2 in [1, 4]):\n    for tensor W:\n"
                      "        repeat k:\n            W = W - lr * grad\n")
    for kw in (dict(lr=0.0), dict(lr=1.5), dict(k=5), dict(k=0)):
        with pytest.raises(ValueError, match="must be in"):
            opt(_params(), **kw)
    opt(_params(), lr=1.0, k=4)


def _two_groups(spec="adamw", **kw):
    params = _params(n=2)
    opt = geo.compile(spec)([{"params": [params[0]]}, {"params": [params[1]]}], **kw)
    return params, opt


def _grads(params, seed):
    g = torch.Generator().manual_seed(100 + seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)


def _snapshot(opt, params):
    return [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict()), dict(opt.nonfinite_skips)


def _unchanged(before, opt, params):
    values, sd, skips = before
    now = opt.state_dict()
    assert all(torch.equal(a, b) for a, b in zip(values, params)), "a parameter changed"
    assert now["state"].keys() == sd["state"].keys(), "states were created or dropped"
    for k, entry in sd["state"].items():
        for slot, v in entry.items():
            assert torch.equal(now["state"][k][slot], v), f"state {slot} of {k} changed"
    assert opt.nonfinite_skips == skips


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, torch.tensor(math.nan), "0.1", None])
def test_param_group_changes_the_step_sees_are_checked_before_any_write(bad):
    params, opt = _two_groups()
    _grads(params, 0)
    opt.step()
    _grads(params, 1)
    before = _snapshot(opt, params)
    opt.param_groups[1]["lr"] = bad  # the later group: the earlier one would have been stepped already
    with pytest.raises((ValueError, TypeError)):
        opt.step()
    _unchanged(before, opt, params)
    opt.param_groups[1]["lr"] = 1e-3  # fixed: the step runs once, as if the failed one had never been tried
    opt.step()
    ref = [q.detach().clone().requires_grad_() for q in _params(n=2)]
    torch_opt = torch.optim.AdamW([{"params": [ref[0]]}, {"params": [ref[1]]}])
    for k in range(2):
        _grads(ref, k)
        torch_opt.step()
    assert all(torch.equal(a, b) for a, b in zip(params, ref))


def test_a_tuple_hyperparameter_out_of_range_in_a_group():
    params, opt = _two_groups()
    _grads(params, 0)
    before = _snapshot(opt, params)
    opt.param_groups[1]["betas"] = (0.9, 1.5)
    with pytest.raises(ValueError, match=r"`betas\[1\]` must be in \[0, 1\), got 1.5"):
        opt.step()
    _unchanged(before, opt, params)


def test_schedulers_keep_working():
    """OneCycleLR changes lr every step (down to 4e-8 at the end), a momentum schedule changes beta1 (as
    `cycle_momentum` does: it needs `optimizer.defaults`, issue 15), and an lr tensor is updated in place; the
    values stay in range and the steps are torch.optim's bit for bit."""
    mine, theirs = _params(n=2), _params(n=2)
    opt = geo.compile("adamw")([{"params": [mine[0]]}, {"params": [mine[1]], "lr": torch.tensor(1e-3)}])
    ref = torch.optim.AdamW([{"params": [theirs[0]]}, {"params": [theirs[1]], "lr": torch.tensor(1e-3)}])
    scheds = [torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.01, total_steps=6, cycle_momentum=False)
              for o in (opt, ref)]
    for k in range(6):
        _grads(mine, k)
        _grads(theirs, k)
        opt.step()
        ref.step()
        for s in scheds:
            s.step()
        for o in (opt, ref):
            for group in o.param_groups:
                group["betas"] = (0.85 + 0.02 * k, 0.999)
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs))


def test_a_failing_init_in_a_later_group_changes_nothing(monkeypatch):
    """The first step builds each parameter's state; when that fails for the second group, the first group is
    neither stepped nor given a state."""
    params = _params(n=1) + _params(shape=(5,), n=1, seed=1)
    opt = geo.compile("adamw")([{"params": [params[0]]}, {"params": [params[1]]}], backend="torch")
    real = TorchPathStep.init

    def failing(self, param, hypers):
        if tuple(param.shape) == (5,):
            raise RuntimeError("injected: no memory for the state")
        return real(self, param, hypers)
    monkeypatch.setattr(TorchPathStep, "init", failing)
    _grads(params, 0)
    before = _snapshot(opt, params)
    with pytest.raises(RuntimeError, match="injected"):
        opt.step()
    _unchanged(before, opt, params)
    assert len(opt.state) == 0


def test_a_failing_specialization_in_a_later_group_changes_nothing():
    """A static changed in the later group compiles a new program, which fails (an unrolled count over 1000):
    nothing of the step happened, the earlier group included."""
    spec = geo.compile("optimizer o(lr = 0.1, static k = 2):\n    for tensor W:\n        state m = zeros_like(W)\n"
                       "        m = m + grad\n        repeat k:\n            W = W - lr * m\n")
    params = _params(n=2)
    opt = spec([{"params": [params[0]]}, {"params": [params[1]]}])
    _grads(params, 0)
    opt.step()
    before = _snapshot(opt, params)
    opt.param_groups[1]["k"] = 2000
    with pytest.raises(geo.GeoError):
        opt.step()
    _unchanged(before, opt, params)
    opt.param_groups[1]["k"] = "two"
    with pytest.raises(TypeError):
        opt.step()
    _unchanged(before, opt, params)


def test_a_non_finite_gradient_raises_before_any_write():
    params, opt = _two_groups(nonfinite="raise")
    _grads(params, 0)
    params[1].grad[0, 0] = math.nan
    before = _snapshot(opt, params)
    with pytest.raises(FloatingPointError):
        opt.step()
    _unchanged(before, opt, params)


def test_a_failure_inside_a_kernel_keeps_each_parameter_consistent(monkeypatch):
    """The documented limit: a failure after every check (inside the second group's kernels) cannot undo the
    first group's update without a copy of everything; the first group's step count advances with its update,
    the second group has neither, and a fresh parameter of the failed group gets no state."""
    params = _params(n=1) + _params(shape=(5,), n=1, seed=1)
    opt = geo.compile("adamw")([{"params": [params[0]]}, {"params": [params[1]]}], backend="torch")
    real = TorchPathStep.step_group

    def failing(self, ps, grads, states, hypers, ts):
        if tuple(ps[0].shape) == (5,):
            raise RuntimeError("injected: the device failed")
        return real(self, ps, grads, states, hypers, ts)
    monkeypatch.setattr(TorchPathStep, "step_group", failing)
    _grads(params, 0)
    second = params[1].detach().clone()
    with pytest.raises(RuntimeError, match="injected"):
        opt.step()
    assert float(opt.state[params[0]]["step"]) == 1.0
    assert params[1] not in opt.state and torch.equal(params[1], second)


CHECKPOINT_DAMAGE = {
    "step nan": lambda sd, pid: sd["state"][pid].__setitem__("step", torch.tensor(math.nan)),
    "step -5": lambda sd, pid: sd["state"][pid].__setitem__("step", torch.tensor(-5.0)),
    "step inf": lambda sd, pid: sd["state"][pid].__setitem__("step", math.inf),
    "step 1.5": lambda sd, pid: sd["state"][pid].__setitem__("step", torch.tensor(1.5)),
    "lr -1": lambda sd, pid: sd["param_groups"][0].__setitem__("lr", -1.0),
    "lr nan tensor": lambda sd, pid: sd["param_groups"][0].__setitem__("lr", torch.tensor(math.nan)),
    "beta 1": lambda sd, pid: sd["param_groups"][0].__setitem__("betas", (0.9, 1.0)),
    "eps -1": lambda sd, pid: sd["param_groups"][0].__setitem__("eps", -1.0),
}


@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGE))
def test_a_checkpoint_out_of_range_is_refused_and_changes_nothing(damage):
    params, opt = _two_groups()
    _grads(params, 0)
    opt.step()
    sd = copy.deepcopy(opt.state_dict())
    CHECKPOINT_DAMAGE[damage](sd, sd["param_groups"][0]["params"][0])
    before = _snapshot(opt, params)
    with pytest.raises(CheckpointError):
        opt.load_state_dict(sd)
    _unchanged(before, opt, params)
    assert opt.param_groups[0]["lr"] == 1e-3


@pytest.mark.parametrize("spec, torch_cls, kw", [("sgd", torch.optim.SGD, dict(lr=0.1)),
                                                 ("adamw", torch.optim.AdamW, dict(lr=0.1)),
                                                 ("adamw", torch.optim.AdamW, dict(lr=0.1, weight_decay=0.0))])
def test_a_parameter_listed_twice_is_stepped_twice_as_torch_does(spec, torch_cls, kw):
    p, q = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        opt = geo.compile(spec)([p, p], **kw)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        ref = torch_cls([q, q], **kw)
    for k in range(3):
        p.grad = torch.full((3,), 1.0 + k)
        q.grad = p.grad.clone()
        opt.step()
        ref.step()
        assert torch.equal(p, q), (k, p, q)
    if spec == "sgd":
        assert torch.allclose(p, torch.full((3,), 1 - 0.2 * (1 + 2 + 3)))  # 0.8 after the first step, as torch
    else:
        assert float(opt.state[p]["step"]) == float(ref.state[q]["step"]) == 6.0


def test_a_parameter_in_two_groups_is_refused_as_torch_does():
    p = torch.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match="more than one parameter group"):
        torch.optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        geo.compile("sgd")([{"params": [p]}, {"params": [p]}], lr=0.1)


def test_a_state_initialized_from_a_hyperparameter_is_a_tensor_and_loads():
    """`state m = lr` was kept as a Python float, and the optimizer's own state_dict then failed to load."""
    spec = geo.compile("optimizer o(lr = 0.1, beta = 0.5):\n    for tensor W:\n        state m = lr\n"
                       "        m = m * beta + lr\n        W = W - m * grad\n")
    for backend in ("torch", "reference"):
        p = torch.ones(3, requires_grad=True)
        opt = spec([p], backend=backend)
        p.grad = torch.ones(3)
        opt.step()
        assert isinstance(opt.state[p]["m"], torch.Tensor) and opt.state[p]["m"].shape == ()
        q = p.detach().clone().requires_grad_()
        other = spec([q], backend=backend)
        other.load_state_dict(copy.deepcopy(opt.state_dict()))
        p.grad, q.grad = torch.ones(3), torch.ones(3)
        opt.step()
        other.step()
        assert torch.equal(p, q) and torch.allclose(p, torch.full((3,), 1 - 0.15 - 0.175))
