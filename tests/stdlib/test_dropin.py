"""Drop-in means drop-in (issue 15): the script a torch.optim user writes runs unchanged on every stdlib optimizer.

Named and unnamed parameters, an LR scheduler that cycles momentum (OneCycleLR with its defaults), a closure,
`maximize=True`, pickling and deep copies, `torch.compile(opt.step)`, and, for the stdlib's adamw, sgd and muon,
a torch.optim checkpoint. Each phase has an oracle: maximizing −L is minimizing L bit for bit (negation is
exact); a pickled, deep-copied or torch.compile'd optimizer continues exactly as the original; a torch.optim
checkpoint continues exactly as torch.optim does. Small shapes, a few steps: all 24 optimizers in seconds.
"""
from __future__ import annotations

import copy
import pickle
import warnings

import pytest
import torch

import geo
from geo.dsl.loader import stdlib_optimizers

TWINS = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD, "muon": torch.optim.Muon}
STEPS = 3


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh(),
                               torch.nn.Linear(8, 3))


def _batch(i):
    g = torch.Generator().manual_seed(i)
    return torch.randn(6, 4, generator=g), torch.randn(6, 3, generator=g)


def _params(name, model, named=True):
    """What a user passes: everything, or the matrices alone for an optimizer of matrices (as for torch.optim.Muon)."""
    every = list(model.named_parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", geo.RoutingWarning)
        try:
            geo.compile(name)(every)
        except geo.GeoError:
            every = [(n, p) for n, p in every if p.dim() == 2]
    return every if named else [p for _, p in every]


def _train(model, opt, start, steps, sign=1.0, step=None, scheduler=None):
    for i in range(start, start + steps):
        x, y = _batch(i)

        def closure():
            opt.zero_grad()
            loss = sign * ((model(x) - y) ** 2).mean()
            loss.backward()
            return loss
        if step is None:
            opt.step(closure)
        else:  # the compiled step: the backward pass eagerly (compiled, its gradients would round differently)
            closure()
            step()
        if scheduler is not None:
            scheduler.step()


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("name", sorted(stdlib_optimizers()))
def test_a_torch_optim_script_runs_unchanged(name):
    Opt = geo.compile(name)
    routed = len(Opt._geo.rules) > 1

    # named and unnamed parameters; a RoutingWarning exactly where roles are a guess (no names, routed by role)
    for named in (True, False):
        model = _model()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", geo.RoutingWarning)
            opt = Opt(_params(name, model, named))
        warned = [w for w in caught if issubclass(w.category, geo.RoutingWarning)]
        role_routed = any(t.word in ("hidden", "embedding", "head", "bias", "norm")
                          for r in Opt._geo.rules for t in r.binder.selector)
        assert len(warned) == (0 if named or not role_routed else 1), [str(w.message) for w in warned]
        _train(model, opt, 0, 1)

    # OneCycleLR with its defaults (momentum or beta1 cycled), and a closure; maximize=True on −L is the same run
    ran = []
    for sign, maximize in ((1.0, False), (-1.0, True)):
        model = _model()
        opt = Opt(_params(name, model), maximize=maximize)
        if "momentum" in opt.defaults or "betas" in opt.defaults:
            scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                            total_steps=2 * STEPS)
        else:  # muon_adamw: Muon's `momentum` and AdamW's `betas`, no name torch could cycle in every group;
            # adaptive_memory: its momentum coefficient is chosen by the step itself, not a hyperparameter
            assert routed or not any(h in r.hypers for r in Opt._geo.rules for h in ("momentum", "betas"))
            with pytest.raises(ValueError, match="momentum or beta1"):
                torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=2 * STEPS)
            scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                            total_steps=2 * STEPS, cycle_momentum=False)
        _train(model, opt, 0, STEPS, sign=sign, scheduler=scheduler)
        ran.append((model, opt, scheduler))
    (model, opt, scheduler), (ascended, _, _) = ran
    assert _same(model, ascended)
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), _model().parameters()))

    # pickling and deep copies (with the scheduler) continue exactly as the original; so does torch.compile(opt.step)
    pickled_model, pickled_opt = pickle.loads(pickle.dumps((model, opt)))
    copied_model, copied_opt, copied_scheduler = copy.deepcopy((model, opt, scheduler))
    compiled_model, compiled_opt = copy.deepcopy((model, opt))
    _train(model, opt, STEPS, STEPS)
    _train(pickled_model, pickled_opt, STEPS, STEPS)
    _train(copied_model, copied_opt, STEPS, STEPS)
    _train(compiled_model, compiled_opt, STEPS, STEPS, step=torch.compile(compiled_opt.step))
    assert _same(model, pickled_model) and _same(model, copied_model) and _same(model, compiled_model)

    # a torch.optim checkpoint of the twin continues as torch.optim does
    if name in TWINS:
        theirs = _model()
        twin = TWINS[name]([p for _, p in _params(name, theirs)])
        _train(theirs, twin, 0, STEPS)
        ours = copy.deepcopy(theirs)
        opt = Opt(_params(name, ours))
        opt.load_state_dict(copy.deepcopy(twin.state_dict()))
        _train(theirs, twin, STEPS, STEPS)
        _train(ours, opt, STEPS, STEPS)
        assert _same(theirs, ours)
