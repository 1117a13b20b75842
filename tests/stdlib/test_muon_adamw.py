"""muon_adamw's defaults are the Muon reference recipe (KellerJordan/Muon, muon.py, MuonWithAuxAdam): the Muon
route as torch.optim.Muon(lr=0.02, weight_decay=0), the AdamW route as torch.optim.AdamW(lr=3e-4,
betas=(0.9, 0.95), eps=1e-10, weight_decay=0), both bit for bit on the CPU."""
from __future__ import annotations

import torch

import geo


def test_muon_adamw_defaults_are_the_reference_recipe():
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({"embed": torch.nn.Embedding(10, 8), "hidden": torch.nn.Linear(8, 8),
                                 "lm_head": torch.nn.Linear(8, 10)})
    reference = torch.nn.ModuleDict({"embed": torch.nn.Embedding(10, 8), "hidden": torch.nn.Linear(8, 8),
                                     "lm_head": torch.nn.Linear(8, 10)})
    reference.load_state_dict(model.state_dict())
    opt = geo.compile("muon_adamw")(model.named_parameters())
    adam_group = opt.param_groups[1]
    assert (adam_group["lr"], tuple(adam_group["betas"]), adam_group["eps"], adam_group["weight_decay"]) == \
        (3e-4, (0.9, 0.95), 1e-10, 0.0)
    hidden = [reference["hidden"].weight]
    rest = [p for n, p in reference.named_parameters() if n != "hidden.weight"]
    ref_muon = torch.optim.Muon(hidden, lr=0.02, weight_decay=0.0)
    ref_adam = torch.optim.AdamW(rest, lr=3e-4, betas=(0.9, 0.95), eps=1e-10, weight_decay=0.0, foreach=False)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        x = torch.randint(0, 10, (6,), generator=g)
        for m, opts in ((model, (opt,)), (reference, (ref_muon, ref_adam))):
            for o in opts:
                o.zero_grad()
            m["lm_head"](torch.tanh(m["hidden"](m["embed"](x)))).logsumexp(-1).sum().backward()
            for o in opts:
                o.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name
