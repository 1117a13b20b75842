"""The compiled optimizer is a real torch.optim.Optimizer: groups, schedulers, hooks, closure, checkpoints."""
from __future__ import annotations

import copy

import pytest
import torch

import geo
from geo import CheckpointError


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def _batch(i):
    g = torch.Generator().manual_seed(100 + i)
    return torch.randn(16, 6, generator=g), torch.randn(16, 3, generator=g)


def _loss(model, i):
    x, y = _batch(i)
    return ((model(x) - y) ** 2).mean()


def _train(model, opt, steps, start=0):
    for i in range(start, start + steps):
        opt.zero_grad()
        _loss(model, i).backward()
        opt.step()


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("spec,kwargs", [("adamw", {"lr": 1e-2}), ("sgd", {"lr": 0.1, "momentum": 0.9})])
def test_resume_after_state_dict_equals_uninterrupted_run(spec, kwargs):
    Opt = geo.compile(spec)
    straight = _model()
    opt = Opt(straight.parameters(), **kwargs)
    _train(straight, opt, 10)

    first = _model()
    opt1 = Opt(first.parameters(), **kwargs)
    _train(first, opt1, 4)
    saved_model, saved_opt = copy.deepcopy(first.state_dict()), copy.deepcopy(opt1.state_dict())
    resumed = _model()
    resumed.load_state_dict(saved_model)
    opt2 = Opt(resumed.parameters(), **kwargs)
    opt2.load_state_dict(saved_opt)
    _train(resumed, opt2, 6, start=4)
    assert torch.equal(_params(straight), _params(resumed))


def test_per_group_hyperparameters_and_skipped_params():
    model = _model()
    frozen = torch.nn.Parameter(torch.ones(3))
    opt = geo.compile("sgd")([{"params": list(model[0].parameters()), "lr": 0.0},
                              {"params": list(model[2].parameters()) + [frozen]}], lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    _loss(model, 0).backward()
    opt.step()
    after = list(model.parameters())
    assert torch.equal(before[0], after[0].detach()) and torch.equal(before[1], after[1].detach())  # lr = 0
    assert not torch.equal(before[2], after[2].detach())
    assert torch.equal(frozen.detach(), torch.ones(3)) and frozen not in opt.state  # no grad: skipped


def test_lr_scheduler_changes_lr_without_recompiling():
    model = _model()
    opt = geo.compile("adamw")(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _train(model, opt, 1)
    compiled = dict(opt._geo._runners)
    lrs = []
    for i in range(3):
        _train(model, opt, 1, start=i + 1)
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == [0.05, 0.025, 0.0125]
    assert opt._geo._runners == compiled  # the same programs: lr is a runtime argument


def test_changing_a_static_hyperparameter_specializes_again():
    w = torch.nn.Parameter(torch.randn(4, 3))
    opt = geo.compile("muon")([w])
    w.grad = torch.randn(4, 3)
    opt.step()
    opt.param_groups[0]["nesterov"] = False
    opt.step()
    assert len(opt._geo._runners) == 2


def test_closure_hooks_and_zero_grad():
    model = _model()
    opt = geo.compile("adamw")(model.parameters())
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))

    def closure():
        opt.zero_grad()
        loss = _loss(model, 0)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and calls == ["pre", "post"]
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_grad_scaler_on_cpu():
    model = _model()
    opt = geo.compile("adamw")(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    before = _params(model)
    scaler.scale(_loss(model, 0)).backward()
    scaler.step(opt)
    scaler.update()
    reference = _model()
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=1e-2)
    _loss(reference, 0).backward()
    ref_opt.step()
    assert not torch.equal(before, _params(model))
    assert torch.allclose(_params(model), _params(reference), atol=1e-6)


def test_routed_optimizer_one_state_dict_one_scheduler():
    model = torch.nn.ModuleDict({"embed": torch.nn.Embedding(10, 8), "hidden": torch.nn.Linear(8, 8),
                                 "lm_head": torch.nn.Linear(8, 10)})
    opt = geo.compile("muon_adamw")(model.named_parameters())
    routes = {n: g["geo_rule"] for g in opt.param_groups for n in g["param_names"]}
    assert routes == {"hidden.weight": 0, "embed.weight": 1, "hidden.bias": 1, "lm_head.weight": 1, "lm_head.bias": 1}
    assert [g["lr"] for g in opt.param_groups] == [0.02, 3e-4]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.1)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.002, 3e-5])
    x = torch.randint(0, 10, (4,))
    model["lm_head"](model["hidden"](model["embed"](x))).sum().backward()
    opt.step()
    sched.step()
    sd = opt.state_dict()
    assert sd["geo"]["optimizer"] == "muon_adamw"
    assert set(sd["state"][0]) == {"step", "buf"}            # hidden.weight: muon
    assert set(sd["state"][1]) == {"step", "exp_avg", "exp_avg_sq"}  # embed.weight: adamw
    # Route-specific overrides: muon=dict(...) touches only the Muon route.
    opt2 = geo.compile("muon_adamw")(model.named_parameters(), muon={"lr": 0.05})
    assert [g["lr"] for g in opt2.param_groups] == [0.05, 3e-4]


def test_checkpoint_from_another_spec_is_a_clear_error_and_loads_nothing():
    model = _model()
    adam = geo.compile("adamw")(model.parameters())
    _train(model, adam, 1)
    sgd = geo.compile("sgd")(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(CheckpointError, match="belongs to the optimizer `adamw`, not `sgd`"):
        sgd.load_state_dict(adam.state_dict())
    assert len(sgd.state) == 0
    with pytest.raises(CheckpointError, match="not written by a geo optimizer"):
        geo.compile("lion")(model.parameters()).load_state_dict(torch.optim.SGD(model.parameters(), lr=0.1).state_dict())
    # the stdlib's sgd loads torch.optim.SGD's state dicts (tests/unit/test_torch_contract.py), not AdamW's
    with pytest.raises(CheckpointError, match="nor by torch.optim.SGD"):
        sgd.load_state_dict(torch.optim.AdamW(model.parameters()).state_dict())
    sd = adam.state_dict()
    del sd["state"][0]["exp_avg_sq"]
    fresh = geo.compile("adamw")(model.parameters())
    with pytest.raises(CheckpointError, match="missing \\['exp_avg_sq'\\]"):
        fresh.load_state_dict(sd)
    assert len(fresh.state) == 0


def test_checkpoint_from_another_version_of_the_spec():
    text = "optimizer plain(lr = 0.1):\n    for tensor W:\n        state m = zeros_like(W)\n        m = m + grad\n        W = W - lr * m\n"
    model = _model()
    a = geo.compile(text)(model.parameters())
    _train(model, a, 1)
    b = geo.compile(text.replace("m + grad", "0.9 * m + grad"))(model.parameters())
    with pytest.raises(CheckpointError, match="another version of the spec"):
        b.load_state_dict(a.state_dict())
    b.load_state_dict(a.state_dict(), allow_spec_change=True)
    assert len(b.state) == len(a.state)


def test_bf16_state_storage_survives_a_checkpoint():
    text = ("optimizer lowmem(lr = 0.1, beta = 0.9):\n    for tensor W:\n        state m: bf16 = zeros_like(W)\n"
            "        m = lerp(m, grad, 1 - beta)\n        W = W - lr * m\n")
    model = _model()
    opt = geo.compile(text)(model.parameters())
    _train(model, opt, 2)
    assert all(s["m"].dtype == torch.bfloat16 for s in opt.state.values())
    opt2 = geo.compile(text)(model.parameters())
    opt2.load_state_dict(opt.state_dict())
    assert all(s["m"].dtype == torch.bfloat16 for s in opt2.state.values())


def test_conv_weights_as_matrices_and_heads_view():
    conv = torch.nn.Conv2d(3, 4, 3)
    text = ("optimizer convmuon(lr = 0.1):\n    for conv W as matrix:\n"
            "        W = W - lr * msign(grad, dtype = \"fp64\", method = \"svd\")\n")
    opt = geo.compile(text)([conv.weight])
    w0 = conv.weight.detach().clone()
    conv.weight.grad = torch.randn_like(conv.weight)
    opt.step()
    flat = (w0 - conv.weight.detach()).reshape(4, -1) / 0.1
    assert torch.allclose(flat @ flat.T, torch.eye(4), atol=1e-5)  # an orthogonal (4, 27) update
    heads = ("optimizer headmuon(lr = 0.1):\n    for matrix W as heads(2):\n"
             "        W = W - lr * msign(grad, method = \"svd\")\n")
    w = torch.nn.Parameter(torch.zeros(6, 4))
    opt = geo.compile(heads)([w])
    w.grad = torch.randn(6, 4)
    opt.step()
    for block in (-w.detach() / 0.1).reshape(2, 3, 4):
        assert torch.allclose(block @ block.T, torch.eye(3), atol=1e-5)  # each head on its own
    with pytest.raises(geo.GeoError, match=r"parameter `param0` of shape \(5, 4\) does not fit"):
        geo.compile(heads)([torch.nn.Parameter(torch.zeros(5, 4))])


def test_unknown_hyperparameter_is_a_type_error():
    with pytest.raises(TypeError, match="did you mean `momentum`"):
        geo.compile("sgd")(_model().parameters(), momentom=0.9)
    with pytest.raises(TypeError, match="takes a bool"):
        geo.compile("muon")([torch.nn.Parameter(torch.zeros(2, 2))], nesterov="yes")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_gradient_policies(bad):
    w = torch.nn.Parameter(torch.ones(3, 2))
    v = torch.nn.Parameter(torch.ones(2))
    opt = geo.compile("adamw")([("w", w), ("v", v)], lr=0.1)
    w.grad = torch.tensor([[1.0, bad], [0.0, 1.0], [1.0, 1.0]])
    v.grad = torch.ones(2)
    opt.step()
    assert torch.equal(w.detach(), torch.ones(3, 2)) and w not in opt.state  # skipped, untouched
    assert opt.nonfinite_skips == {"w": 1}  # by name (issue 15)
    assert not torch.equal(v.detach(), torch.ones(2))  # the finite one still stepped

    strict = geo.compile("adamw")([w], nonfinite="raise")
    with pytest.raises(FloatingPointError, match="not finite"):
        strict.step()
    assert w not in strict.state

    loose = geo.compile("adamw")([w], nonfinite="propagate")
    loose.step()
    assert not torch.isfinite(w.detach()).all()  # as torch.optim does


def test_complex_and_integer_parameters_are_refused():
    """torch.optim.AdamW handles complex parameters as real pairs; geo's geometry is real, so it refuses them with
    a diagnostic naming the parameter instead of dropping the imaginary part."""
    Opt = geo.compile("adamw")
    for dtype in (torch.complex64, torch.int64):
        p = torch.zeros(4, dtype=dtype)
        with pytest.raises(geo.GeoError) as err:
            Opt([("z", p)])
        text = err.value.render()
        assert "GEO0403" in text and "parameter `z` has dtype" in text


@pytest.mark.parametrize("spec", ["muon", "normuon", "spectral_sphere", "scion", "adamw"])
def test_zero_size_parameters_step_as_no_ops(spec):
    """A 0×n matrix (an empty expert, a pruned layer) has nothing to update: its step is skipped, as
    torch.optim.Muon handles it, instead of failing inside a reduction."""
    Opt = geo.compile(spec)
    empty, full = torch.nn.Parameter(torch.zeros(0, 3)), torch.nn.Parameter(torch.ones(4, 3))
    opt = Opt([("h.0.weight", empty), ("h.1.weight", full)])
    empty.grad, full.grad = torch.zeros(0, 3), torch.full((4, 3), 0.5)
    opt.step()
    assert empty.shape == (0, 3) and not torch.equal(full, torch.ones(4, 3))


def test_a_static_outside_its_declared_choices_is_refused():
    """`static adjust_lr = one_of("original", "match_rms_adamw")`: a typo used to fall into the `else` branch
    (Moonlight's scaling) silently; now the constructor and param groups name the choices."""
    Muon = geo.compile("muon")
    w = torch.nn.Parameter(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"is one of 'original', 'match_rms_adamw'; got 'orignal' \(did you mean 'original'\?\)"):
        Muon([w], adjust_lr="orignal")
    with pytest.raises(ValueError, match="is one of"):
        Muon([{"params": [w], "adjust_lr": "moonlight"}])
    opt = Muon([w], adjust_lr="match_rms_adamw")  # every declared choice is accepted
    assert opt.param_groups[0]["adjust_lr"] == "match_rms_adamw"


@pytest.mark.parametrize("huge", [[1e30, -1e30, 1.0], [3e38, 3e38, 3e38]])
def test_huge_finite_gradients_are_not_mistaken_for_non_finite_ones(huge):
    """The gradient check reduces each tensor once (a 2-norm on CUDA, a sum on the CPU): 1e30² overflows fp32,
    and so does a sum of three 3e38, so a non-finite reduction is checked again exactly."""
    AdamW = geo.compile("adamw")
    w = torch.nn.Parameter(torch.ones(3))
    opt = AdamW([w])
    w.grad = torch.tensor(huge)
    opt.step()
    assert opt.nonfinite_skips == {} and not torch.equal(w.detach(), torch.ones(3))
    w.grad = torch.tensor([1e30, float("nan"), 1.0])
    before = w.detach().clone()
    opt.step()
    assert sum(opt.nonfinite_skips.values()) == 1 and torch.equal(w.detach(), before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("bad", [[float("inf"), -float("inf")], [float("nan"), 1.0], [-float("inf"), 1.0]])
def test_every_non_finite_gradient_is_caught_in_every_dtype(dtype, bad):
    """inf and −inf cancel to NaN in a sum, never to a finite number: the check still sees them."""
    w = torch.nn.Parameter(torch.ones(4, dtype=dtype))
    opt = geo.compile("sgd")([w], lr=0.1)
    w.grad = torch.tensor(bad + [1.0, 2.0], dtype=dtype)
    opt.step()
    assert sum(opt.nonfinite_skips.values()) == 1
    assert torch.equal(w.detach(), torch.ones(4, dtype=dtype))


def test_init_state_makes_the_first_steps_states_without_a_step():
    """`init_state()` (what a DCP load needs before the first step) makes the states the first step would, at step
    0, and changes nothing else: a run with it equals a run without, bit for bit."""
    for name in ("adamw", "muon", "normuon"):
        Opt = geo.compile(name)
        runs = []
        for init_first in (True, False):
            torch.manual_seed(0)
            w = torch.nn.Parameter(torch.randn(5, 3))
            opt = Opt([("h.0.weight", w)])
            if init_first:
                before = w.detach().clone()
                opt.init_state()
                state = opt.state_dict()["state"][0]
                assert float(state["step"]) == 0.0 and len(state) > 1
                assert torch.equal(w, before)
            for i in range(3):
                w.grad = torch.randn(5, 3, generator=torch.Generator().manual_seed(i))
                opt.step()
            runs.append(w.detach().clone())
        assert torch.equal(*runs), name
