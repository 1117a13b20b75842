"""geo optimizers inside torch's own training tools, each compared with torch.optim.AdamW in the same tool.

geo's `adamw` is torch.optim.AdamW bit for bit on the CPU (tests/differential), so wherever a tool drives the
optimizer the same way, the two trajectories must stay identical: LR schedulers (LambdaLR, StepLR, cosine,
OneCycleLR, SequentialLR, ReduceLROnPlateau), torch.amp autocast with GradScaler (unscale_, clipping, steps the
scaler skips on inf), torch.optim.swa_utils (AveragedModel, SWALR), and a torch.compile'd model.
"""
from __future__ import annotations

import pytest
import torch

import geo

AdamW = geo.compile("adamw")


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))


def _data(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(32, 8, generator=g), torch.randn(32, 4, generator=g)


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# ---- LR schedulers ----------------------------------------------------------------------------------------
SCHEDULERS = {
    "LambdaLR": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1 / (1 + s)),
    "StepLR": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
    "CosineAnnealingLR": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=12),
    # cycle_momentum=False: OneCycleLR's momentum cycling reads optimizer.defaults["betas"], which geo's
    # optimizers do not fill yet (issue 15); the LR cycle itself is what is checked here.
    "OneCycleLR": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=12,
                                                                cycle_momentum=False),
    "SequentialLR": lambda o: torch.optim.lr_scheduler.SequentialLR(
        o, [torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=4),
            torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=8)], milestones=[4]),
}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_schedulers_drive_geo_as_torch_optim(name):
    x, y = _data()
    runs = []
    for make in (AdamW, torch.optim.AdamW):
        model = _model()
        opt = make(model.parameters(), lr=0.01)
        sched = SCHEDULERS[name](opt)
        lrs = []
        for _ in range(12):
            opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        runs.append((lrs, _flat(model), sched.state_dict()))
    (lrs, ours, sd), (ref_lrs, ref, ref_sd) = runs
    assert lrs == ref_lrs and len(set(lrs)) > 1
    assert torch.equal(ours, ref)
    assert sd.keys() == ref_sd.keys()


def test_reduce_lr_on_plateau_and_a_routed_spec():
    """ReduceLROnPlateau scales every param group, so both routes of muon_adamw get the factor."""
    model = torch.nn.ModuleDict({"embed": torch.nn.Embedding(10, 8), "hidden": torch.nn.Linear(8, 8)})
    opt = geo.compile("muon_adamw")(model.named_parameters())
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    before = [g["lr"] for g in opt.param_groups]
    sched.step(1.0)
    sched.step(2.0)  # no improvement: every group's lr halves
    assert [g["lr"] for g in opt.param_groups] == [0.5 * lr for lr in before]


# ---- torch.amp: autocast + GradScaler -------------------------------------------------------------------
def _amp_run(make, init_scale, poison_step=None, steps=12):
    """bf16 autocast on the CPU, GradScaler with unscale_ and gradient clipping (the AMP recipe)."""
    x, y = _data()
    model = _model()
    opt = make(model.parameters(), lr=0.003)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=2)
    scales, changed = [], []
    for step in range(steps):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = ((model(x).float() - y) ** 2).sum()
        scaler.scale(loss).backward()
        if step == poison_step:
            model[0].weight.grad[0, 0] = float("inf")   # an overflow in one gradient
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        before = _flat(model)
        scaler.step(opt)                                 # skipped when unscale_ found an inf or NaN
        scaler.update()
        scales.append(scaler.get_scale())
        changed.append(not torch.equal(before, _flat(model)))
    return _flat(model), scales, changed, opt


@pytest.mark.parametrize("init_scale,poison_step", [(2.0 ** 16, None), (2.0 ** 16, 3), (1e38, None)])
def test_amp_gradscaler_skips_the_same_steps_as_with_torch_optim(init_scale, poison_step):
    """1e38: the scaled gradients overflow to inf at first, the scaler skips and backs off until they do
    not; a poisoned gradient at step 3 skips that step. geo sees only the steps the scaler takes, so its own
    non-finite policy never triggers (`nonfinite_skips` stays empty) and the trajectory equals AdamW's."""
    ours, scales, changed, opt = _amp_run(AdamW, init_scale, poison_step)
    ref, ref_scales, ref_changed, _ = _amp_run(torch.optim.AdamW, init_scale, poison_step)
    assert scales == ref_scales and changed == ref_changed
    assert torch.equal(ours, ref)
    assert opt.nonfinite_skips == {}
    if poison_step is not None:
        assert not changed[poison_step] and scales[poison_step] == scales[poison_step - 1] / 2
    if init_scale > 1e30:
        assert not changed[0] and any(changed)


def test_without_a_scaler_geo_skips_the_nonfinite_tensor_itself():
    """The same poisoned gradient without GradScaler: geo's default policy skips that tensor's step (the
    others step) and counts it; torch.optim.AdamW writes the NaN into the weight."""
    x, y = _data()
    results = []
    for make in (AdamW, torch.optim.AdamW):
        model = _model()
        opt = make(model.named_parameters(), lr=0.01)
        ((model(x) - y) ** 2).mean().backward()
        model[0].weight.grad[0, 0] = float("inf")
        w0, b0 = model[0].weight.detach().clone(), model[0].bias.detach().clone()
        opt.step()
        results.append((model, opt, w0, b0))
    (ours, opt, w0, b0), (ref, _, _, _) = results
    assert torch.equal(ours[0].weight, w0) and not torch.equal(ours[0].bias, b0)
    assert opt.nonfinite_skips == {"0.weight": 1}  # keys are the parameters' names
    assert not torch.isfinite(ref[0].weight).all()


# ---- torch.optim.swa_utils -------------------------------------------------------------------------------
def test_swa_averaged_model_and_swalr():
    x, y = _data()
    runs = []
    for make in (AdamW, torch.optim.AdamW):
        model = _model()
        opt = make(model.parameters(), lr=0.01)
        swa_model = torch.optim.swa_utils.AveragedModel(model)
        swa_sched = torch.optim.swa_utils.SWALR(opt, swa_lr=0.002, anneal_epochs=3)
        lrs = []
        for step in range(10):
            opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            opt.step()
            if step >= 4:
                swa_model.update_parameters(model)
                swa_sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        runs.append((lrs, _flat(swa_model.module), _flat(model)))
    (lrs, avg, last), (ref_lrs, ref_avg, ref_last) = runs
    assert lrs == ref_lrs and lrs[-1] == pytest.approx(0.002)
    assert torch.equal(last, ref_last) and torch.equal(avg, ref_avg)
    assert not torch.equal(avg, last)


# ---- torch.compile'd models ------------------------------------------------------------------------------
@pytest.mark.usefixtures("single_blas_thread")
def test_a_compiled_model_trains_with_a_routed_spec():
    """torch.compile wraps the module (names get an `_orig_mod.` prefix, roles still come from the rest):
    muon_adamw routes the same parameters, and the compiled model trains like the eager one (TorchInductor's
    fused kernels round differently, so to 1e-4, not bit for bit)."""
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(16, 8)
            self.hidden = torch.nn.Linear(8, 8)
            self.lm_head = torch.nn.Linear(8, 16)

        def forward(self, idx):
            return self.lm_head(torch.tanh(self.hidden(self.embed(idx))))

    g = torch.Generator().manual_seed(0)
    idx, target = torch.randint(0, 16, (32,), generator=g), torch.randint(0, 16, (32,), generator=g)
    runs = []
    for compiled in (True, False):
        torch.manual_seed(0)
        net = Net()
        model = torch.compile(net) if compiled else net
        opt = geo.compile("muon_adamw")(model.named_parameters(), muon={"lr": 0.05}, adamw={"lr": 1e-2})
        routes = sorted((n.removeprefix("_orig_mod."), g["geo_rule"])
                        for g in opt.param_groups for n in g["param_names"])
        losses = []
        for _ in range(6):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(idx), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        runs.append((routes, losses, _flat(net)))
    (routes, losses, params), (eager_routes, eager_losses, eager_params) = runs
    assert routes == eager_routes and ("hidden.weight", 0) in routes
    assert losses[-1] < losses[0]
    assert losses == pytest.approx(eager_losses, abs=1e-4)
    assert torch.allclose(params, eager_params, atol=1e-4)
