"""Every optimizer of every stdlib spec compiles, trains a small model, and lowers the loss.

Driven by the stdlib folder: a new spec is covered without editing this file. Optimizers whose rules select
only some parameters are given only those (the rest stay frozen), as a user would route them.
"""
from __future__ import annotations

import math

import pytest
import torch

import geo
from geo.compiler.binding import ParamInfo, bind_rule, infer_role
from geo.compiler.pipeline import front
from geo.dsl.diagnostics import Diagnostic
from geo.dsl.loader import source_for, stdlib_names

# Learning rates for a 30-step smoke run; defaults elsewhere (lion's and signum's are tuned for long runs).
LR = {"lion": 3e-3, "signum": 1e-2, "sgd": 0.1, "adamw": 1e-2, "scion": 0.02, "muon_moonlight": 2e-2,
      "root": 1e-2, "frugal": 1e-2, "hypersphere": 1e-2, "hyperball": 3e-2, "adaptive_memory": 0.1}


def _optimizers():
    out = []
    for spec in stdlib_names():
        _, checked = front(source_for(spec))
        out += [(spec, name) for name in checked.root_optimizers]
    return out


def _model():
    torch.manual_seed(0)
    return torch.nn.ModuleDict({"embed": torch.nn.Linear(8, 16), "hidden": torch.nn.Linear(16, 16),
                                "head": torch.nn.Linear(16, 4)})


def _forward(m, x):
    return m["head"](torch.tanh(m["hidden"](torch.tanh(m["embed"](x)))))


@pytest.mark.parametrize("spec,name", _optimizers(), ids=lambda v: v)
def test_trains(spec, name):
    Opt = geo.compile(spec, name=name)
    model = _model()
    selected = []
    for pname, p in model.named_parameters():
        info = ParamInfo(pname, tuple(p.shape), infer_role(pname, tuple(p.shape)))
        if not isinstance(bind_rule(Opt._geo.info, info), Diagnostic):
            selected.append((pname, p))
    assert selected, f"{name} selects no parameter of the test model"
    kwargs = {"lr": LR[name]} if name in LR else {}
    opt = Opt(selected, **kwargs)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 8, generator=g), torch.randn(64, 4, generator=g)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ((_forward(model, x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.9 * losses[0], f"{name}: {losses[0]:.4f} -> {losses[-1]:.4f}"
