"""Loading a state_dict that is not this optimizer's is a clear error naming what differs, and loads nothing."""
from __future__ import annotations

import copy

import pytest
import torch

import geo
from geo import CheckpointError


def _trained(spec="adamw", **kw):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    opt = geo.compile(spec)(model.named_parameters(), **kw)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(5, 4)).square().sum().backward()
        opt.step()
    return model, opt


def _fresh(model, spec="adamw", **kw):
    opt = geo.compile(spec)(model.named_parameters(), **kw)
    opt.zero_grad()
    model(torch.randn(5, 4)).square().sum().backward()
    opt.step()  # some state of its own, which a failed load must leave alone
    return opt


def _snapshot(opt):
    return copy.deepcopy(opt.state_dict())


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b) and a.dtype == b.dtype
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _corrupt(sd, how):
    sd = copy.deepcopy(sd)
    how(sd)
    return sd


CORRUPTIONS = {
    "no geo entry": (lambda sd: sd.pop("geo"), "not written by a geo optimizer"),
    "another optimizer": (lambda sd: sd["geo"].update(optimizer="sgd"), "belongs to the optimizer `sgd`, not `adamw`"),
    "another spec version": (lambda sd: sd["geo"].update(fingerprint="0" * 16), "another version of the spec `adamw`"),
    "a group too many": (lambda sd: sd["param_groups"].append(copy.deepcopy(sd["param_groups"][0])),
                         "has 2 param groups, this optimizer has 1"),
    "a group that is not one": (lambda sd: sd["param_groups"].__setitem__(0, "lr=0.1"), "param group 0 of the state_dict is not"),
    "another rule": (lambda sd: sd["param_groups"][0].update(geo_rule=3), "bound to rule 3 in the checkpoint"),
    "a parameter too many": (lambda sd: sd["param_groups"][0]["params"].append(99), "has 5 parameters in the checkpoint and 4 now"),
    "no state entry": (lambda sd: sd.pop("state"), "has no 'state' entry"),
    "stray state": (lambda sd: sd["state"].__setitem__(42, {"step": torch.tensor(1.0)}), "state for parameter id 42"),
    "missing hyperparameter": (lambda sd: sd["param_groups"][0].pop("betas"), "has no hyperparameter `betas`"),
    "hyperparameter of the wrong type": (lambda sd: sd["param_groups"][0].update(lr="fast"), "`lr` takes a number, got 'fast'"),
    "non-finite hyperparameter": (lambda sd: sd["param_groups"][0].update(eps=float("nan")), "`eps` must be finite"),
    "missing slot": (lambda sd: sd["state"][0].pop("exp_avg_sq"), "missing ['exp_avg_sq']"),
    "extra slot": (lambda sd: sd["state"][0].__setitem__("momentum_buffer", torch.zeros(3, 4)), "unexpected ['momentum_buffer']"),
    "missing step": (lambda sd: sd["state"][1].pop("step"), "missing ['step']"),
    "step of the wrong kind": (lambda sd: sd["state"][1].__setitem__("step", "two"), "is not a step count"),
    "slot of the wrong shape": (lambda sd: sd["state"][0].__setitem__("exp_avg", torch.zeros(4, 3)),
                                "has shape (4, 3) in the checkpoint, expected (3, 4)"),
    "slot that is not a tensor": (lambda sd: sd["state"][0].__setitem__("exp_avg", 0.5), "is a float in the state_dict"),
    "slot of integers": (lambda sd: sd["state"][0].__setitem__("exp_avg", torch.zeros(3, 4, dtype=torch.int64)),
                         "is a torch.int64 in the state_dict"),
    "state that is not a dict": (lambda sd: sd["state"].__setitem__(0, torch.zeros(3)), "is a Tensor, not a dict of slots"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_mismatched_checkpoint_is_refused_and_nothing_is_loaded(name):
    model, trained = _trained()
    how, message = CORRUPTIONS[name]
    bad = _corrupt(trained.state_dict(), how)
    opt = _fresh(model)
    before = _snapshot(opt)
    with pytest.raises(CheckpointError, match=pytest.importorskip("re").escape(message)):
        opt.load_state_dict(bad)
    assert _same(_snapshot(opt), before)  # nothing half-loaded: state and groups as they were
    opt.load_state_dict(trained.state_dict())  # and the intact checkpoint still loads
    assert _same(_snapshot(opt), _snapshot(trained))


def test_a_routed_checkpoint_names_the_parameter():
    # an output head of its own: otherwise `hidden` would be the model's last layer, routed as a head (issue 15)
    model = torch.nn.ModuleDict({"embed": torch.nn.Embedding(6, 4), "hidden": torch.nn.Linear(4, 4),
                                 "lm_head": torch.nn.Linear(4, 6)})
    opt = geo.compile("muon_adamw")(model.named_parameters())
    model["hidden"](model["embed"](torch.tensor([1, 2]))).sum().backward()
    opt.step()
    sd = opt.state_dict()
    sd["state"][0]["buf"] = torch.zeros(2, 2)
    with pytest.raises(CheckpointError, match=r"state `buf` of parameter `hidden.weight` has shape \(2, 2\)"):
        geo.compile("muon_adamw")(model.named_parameters()).load_state_dict(sd)


def test_another_spec_version_loads_when_asked_and_keeps_storage_dtypes():
    text = ("optimizer lowmem(lr = 0.1, beta = 0.9):\n    for tensor W:\n        state m: bf16 = zeros_like(W)\n"
            "        m = lerp(m, grad, 1 - beta)\n        W = W - lr * m\n")
    w = torch.nn.Parameter(torch.ones(3))
    a = geo.compile(text)([w])
    w.grad = torch.ones(3)
    a.step()
    b = geo.compile(text.replace("lr * m", "lr * m * 1"))([w])
    with pytest.raises(CheckpointError, match="another version of the spec"):
        b.load_state_dict(a.state_dict())
    b.load_state_dict(a.state_dict(), allow_spec_change=True)
    assert b.state[w]["m"].dtype == torch.bfloat16
