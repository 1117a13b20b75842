"""DDP and ZeRO-1 with every stdlib optimizer (issue 11), on the CPU with gloo, 2 spawned ranks (4 in the slow tier).

Oracles: one process, stepping the same optimizer on the same gradients (for DDP, the average of the ranks'
gradients, computed rank by rank; for ZeRO, every rank's gradient, equal since their data are). Every spec runs
inside one spawned group per test: starting the processes (torch and geo imported twice) is most of the cost.
`run_ranks` (tests/distributed/_spawn.py) spawns the ranks.
"""
from __future__ import annotations

import copy
import re
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel

import geo
from geo.dsl.loader import stdlib_optimizers

from _spawn import run_ranks

SPECS = sorted(stdlib_optimizers())
STDLIB = Path(geo.__file__).parent / "stdlib"


# ---- the model, the data, the optimizers -----------------------------------------------------------------------
STEPS = 4
NS_TOL = 1e-2  # Newton–Schulz specs: bf16 rounding, tests/differential's bar
FP32_TOL = 1e-6


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh(),
                               torch.nn.Linear(8, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _batch(step, rank=0):
    g = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randn(5, 6, generator=g), torch.randn(5, 3, generator=g)


def _named(Opt, model):
    """What a user passes: every parameter, or the matrices alone for an optimizer of matrices (as for Muon)."""
    every = list(model.named_parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            Opt(every)
        except geo.GeoError:
            every = [(n, p) for n, p in every if p.dim() == 2]
    return every


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _rel(a, b):
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / scale if scale else (a - b).abs().max().item()


def _tolerance(name):
    """bf16 rounding for a spec whose text, or a spec it uses, runs msign (Newton–Schulz) or bf16; else fp32's."""
    text = geo.compile(name)._geo.ref()[1]
    for used in re.findall(r"^use (.+)$", text, re.M):
        text += "".join((STDLIB / f"{u.strip()}.geo").read_text() for u in used.split(","))
    return NS_TOL if re.search(r"msign|bf16", text) else FP32_TOL


def _quiet(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", geo.RoutingWarning)
        return make()


def _loss(model, x, y):
    return ((model(x) - y) ** 2).mean()


# ---- DDP ---------------------------------------------------------------------------------------------------------
def _ddp_ranks(rank, world_size, names, poison=None, zero=False):
    """Every spec under DDP, each rank its own data; per spec: this rank's parameters after STEPS steps, the
    largest relative difference from one process stepping the same optimizer on the average of the ranks'
    gradients, how far the parameters moved, and `nonfinite_skips`. poison=(step, i): at that step, rank 1's
    gradient of parameter i is NaN before DDP averages it (a tensor hook runs before DDP's reduction).
    zero: the optimizer is ZeRO's over Opt.route's groups (DDP and ZeRO together; `across` specs left out)."""
    out = {}
    for name in names:
        Opt = geo.compile(name)
        if zero and Opt._geo.info.across is not None:
            continue
        model = _model()
        # the poisoned run also has DDP's gradients as views into its buckets (p.grad shares one flat buffer)
        ddp = DistributedDataParallel(model, gradient_as_bucket_view=poison is not None)
        named = _named(Opt, model)
        seeded = unseeded = None
        if zero:
            opt = _quiet(lambda: ZeroRedundancyOptimizer(Opt.route(named), optimizer_class=Opt, seed=7))
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                opt = Opt(named, seed=7)
                seeded = any("seed=" in str(w.message) for w in caught)
                Opt(_named(Opt, _model()))  # no seed: torch.initial_seed() decides it
                unseeded = any("seed=" in str(w.message) for w in caught) and not seeded
        ref = _model()
        ref_named = _named(Opt, ref)
        ref_opt = _quiet(lambda: Opt(ref_named, seed=7))
        poisoned = {"now": False}
        if poison is not None and rank == 1:
            named[poison[1]][1].register_hook(lambda g: torch.full_like(g, float("nan")) if poisoned["now"] else g)
        held = None
        for step in range(STEPS):
            poisoned["now"] = poison is not None and step == poison[0]
            if poisoned["now"]:
                held = named[poison[1]][1].detach().clone()
            opt.zero_grad()
            _loss(ddp, *_batch(step, rank)).backward()
            opt.step()
            if poisoned["now"]:
                held = torch.equal(held, named[poison[1]][1])  # skipped: unchanged by this step
            grads = []
            for r in range(world_size):  # the reference: each rank's gradient, averaged as DDP does
                ref_opt.zero_grad()
                _loss(ref, *_batch(step, r)).backward()
                if poisoned["now"] and r == 1:
                    ref_named[poison[1]][1].grad.fill_(float("nan"))
                grads.append([p.grad.clone() for p in ref.parameters()])
            for p, *gs in zip(ref.parameters(), *grads):
                p.grad = sum(g / world_size for g in gs)
            ref_opt.step()
        apart = None
        if unseeded and poison is None:  # why it warns: ranks seeded apart (as for their data) draw apart
            seeded_apart = _model()
            ddp_apart = DistributedDataParallel(seeded_apart)
            torch.manual_seed(rank)
            opt_apart = _quiet(lambda: Opt(_named(Opt, seeded_apart)))
            for step in range(STEPS):
                opt_apart.zero_grad()
                _loss(ddp_apart, *_batch(step, rank)).backward()
                opt_apart.step()
            apart = _flat(seeded_apart)
        out[name] = dict(flat=_flat(model), rel=_rel(_flat(model), _flat(ref)),
                         moved=_rel(_flat(model), _flat(_model())),
                         skips=dict((opt.optim if zero else opt).nonfinite_skips),
                         ref_skips=dict(ref_opt.nonfinite_skips), held=held,
                         poisoned=named[poison[1]][0] if poison else None, warned=(seeded, unseeded), apart=apart)
    return out


def test_ddp_every_spec_identical_on_every_rank():
    """DDP all-reduces the gradients; each rank steps its own copy of the optimizer on them. Every rank must hold
    the same parameters bit for bit, equal to one process stepping on the averaged gradient."""
    ranks = run_ranks(_ddp_ranks, 2, SPECS)
    worst = {}
    for name in SPECS:
        a, b = ranks[0][name], ranks[1][name]
        assert torch.equal(a["flat"], b["flat"]), f"{name}: ranks differ by {(a['flat'] - b['flat']).abs().max()}"
        assert a["rel"] <= _tolerance(name), f"{name}: {a['rel']} from the single-process run on the averaged gradient"
        assert a["moved"] > 1e-4, f"{name}: the parameters did not move"
        assert not a["skips"]
        random = name in ("drop_muon", "frugal_columns")  # frugal draws only with projection="random"
        assert a["warned"] == (False, random), f"{name}: warned (seeded, unseeded) = {a['warned']}"
        if random:
            assert not torch.equal(a["apart"], b["apart"]), f"{name}: ranks seeded apart drew alike"
        worst[name] = a["rel"]
    print("DDP max rel vs single process:", max(worst.values()), worst)


# ---- ZeRO-1 ------------------------------------------------------------------------------------------------------
def _train(model, opt, start, steps):
    for step in range(start, start + steps):  # the same data on every rank: ZeRO shards the optimizer, not the data
        opt.zero_grad()
        _loss(model, *_batch(step)).backward()
        opt.step()


def _consolidated(zero, rank):
    """ZeRO's whole state dict, gathered on rank 0 and sent to every rank (load_state_dict runs on all of them)."""
    zero.consolidate_state_dict(0)
    box = [zero.state_dict() if rank == 0 else None]
    dist.broadcast_object_list(box, 0)
    return box[0]


def _same_state(ours, theirs):
    """Every parameter's state in ZeRO's consolidated dict equals the single-process optimizer's, bit for bit."""
    if set(ours["state"]) != set(theirs["state"]):
        return False
    return all(set(ours["state"][i]) == set(theirs["state"][i]) and all(
        torch.equal(torch.as_tensor(v), torch.as_tensor(theirs["state"][i][k])) for k, v in ours["state"][i].items())
        for i in theirs["state"])


def _zero_ranks(rank, world_size, names):
    """Every spec under ZeRO-1 (Opt.route's groups): per spec, the parameters after STEPS steps and their relative
    difference from one process; whether the consolidated state equals that process's; and, after a round trip
    through consolidate_state_dict/state_dict/load_state_dict into a fresh model and optimizer, whether STEPS more
    steps equal the uninterrupted run's. A spec with an `across` block: the error ZeRO's constructor raises."""
    out = {}
    for name in names:
        Opt = geo.compile(name)
        model, ref = _model(), _model()
        if Opt._geo.info.across is not None:
            try:
                _quiet(lambda: ZeroRedundancyOptimizer(Opt.route(_named(Opt, model)), optimizer_class=Opt))
                out[name] = ("accepted", None)
            except ValueError as e:
                out[name] = ("refused", str(e))
            continue
        # a keyword of ZeRO's reaches every group: route's groups hold no hyperparameter values that would shadow it
        kw = {"seed": 7}
        default_lr = _quiet(lambda: Opt(_named(Opt, _model()), seed=7)).defaults.get("lr")
        if default_lr:
            kw["lr"] = default_lr / 2
        zero = _quiet(lambda: ZeroRedundancyOptimizer(Opt.route(_named(Opt, model)), optimizer_class=Opt, **kw))
        single = _quiet(lambda: Opt(_named(Opt, ref), **kw))
        lrs = [g.get("lr") for g in zero.optim.param_groups] + [g.get("lr") for g in single.param_groups]
        owned = sum(len(g["params"]) for g in zero.optim.param_groups)
        _train(model, zero, 0, STEPS)
        _train(ref, single, 0, STEPS)
        rel = _rel(_flat(model), _flat(ref))
        sd = _consolidated(zero, rank)
        same_state = _same_state(sd, single.state_dict())
        resumed = _model()
        resumed.load_state_dict(model.state_dict())
        zero2 = _quiet(lambda: ZeroRedundancyOptimizer(Opt.route(_named(Opt, resumed)), optimizer_class=Opt, **kw))
        zero2.load_state_dict(copy.deepcopy(sd))
        _train(model, zero, STEPS, STEPS)
        _train(resumed, zero2, STEPS, STEPS)
        _train(ref, single, STEPS, STEPS)
        out[name] = ("ran", dict(flat=_flat(model), rel=rel, rel_after=_rel(_flat(model), _flat(ref)),
                                 same_state=same_state, resumed=torch.equal(_flat(model), _flat(resumed)),
                                 owned=owned, moved=_rel(_flat(model), _flat(_model())),
                                 lr=(kw.get("lr"), lrs)))
    return out


@pytest.mark.parametrize("world_size", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_zero1_every_spec_equals_one_process(world_size):
    ranks = run_ranks(_zero_ranks, world_size, SPECS)
    worst = {}
    for name in SPECS:
        (kind, a), others = ranks[0][name], [r[name][1] for r in ranks[1:]]
        if geo.compile(name)._geo.info.across is not None:
            assert kind == "refused" and "across" in a, (name, kind, a)
            assert all("across" in b for b in others)
            continue
        assert kind == "ran"
        tol = _tolerance(name)
        assert all(torch.equal(a["flat"], b["flat"]) for b in others), f"{name}: ranks differ after ZeRO's broadcast"
        assert a["rel"] <= tol and a["rel_after"] <= tol, (name, a["rel"], a["rel_after"])
        assert a["same_state"], f"{name}: the consolidated state differs from the single-process optimizer's"
        assert a["resumed"] and all(b["resumed"] for b in others), f"{name}: the resumed run differs"
        owned = [a["owned"]] + [b["owned"] for b in others]
        assert sum(owned) == len(_named(geo.compile(name), _model())), (name, owned)
        assert sum(1 for n in owned if n) >= 2, f"{name}: one rank owns everything: the sharding was not tested"
        assert a["moved"] > 1e-4
        lr, lrs = a["lr"]
        assert lr is None or all(x == lr for x in lrs), (name, lr, lrs)
        worst[name] = max(a["rel"], a["rel_after"])
    print("ZeRO max rel vs single process:", max(worst.values()), worst)


def _draws(Opt):
    """Whether the optimizer's programs compiled so far draw random numbers (a per-parameter stream)."""
    return any("rng" in prog.inputs for prog in Opt._geo._programs.values())


def _zero_plain_ranks(rank, world_size, names):
    """ZeRO given bare tensors, as torch's docs show it, in two groups, the second of one tensor (so one rank's
    local optimizer gets an empty group), with constructor keywords among ZeRO's (it copies them into its groups)
    and the parameters' data in ZeRO's buckets:
    a spec of one rule runs, equal to one process given the same groups; a routed spec or an `across` block is
    refused with the reason, on every rank, before any step."""
    out = {}
    for name in names:
        Opt = geo.compile(name)
        model, ref = _model(), _model()
        tensors = [p for _, p in _named(Opt, model)]
        groups = [{"params": tensors[:-1]}, {"params": tensors[-1:]}]
        ref_tensors = [p for _, p in _named(Opt, ref)]
        try:
            # parameters_as_bucket_view: ZeRO moves the parameters' data into flat buckets, which geo updates in place
            zero = _quiet(lambda: ZeroRedundancyOptimizer(groups, optimizer_class=Opt, seed=7, nonfinite="skip",
                                                          parameters_as_bucket_view=True))
        except ValueError as e:
            out[name] = ("refused", str(e))
            continue
        single = _quiet(lambda: Opt([{"params": ref_tensors[:-1]}, {"params": ref_tensors[-1:]}], seed=7))
        empty = sum(not g["params"] for g in zero.optim.param_groups)
        _train(model, zero, 0, STEPS)
        _train(ref, single, 0, STEPS)
        out[name] = ("ran", dict(flat=_flat(model), rel=_rel(_flat(model), _flat(ref)), empty=empty,
                                 draws=_draws(Opt), moved=_rel(_flat(model), _flat(_model()))))
    return out


GROWN = ("adamw", "muon_adamw", "scion")


def _zero_grown_ranks(rank, world_size):
    """ZeRO.add_param_group after some steps (fine-tuning unfreezes a layer): route's groups for the new parameters,
    one add_param_group each, against one process that adds the same groups; a group that was not routed is
    refused (a routed spec) on every rank."""
    out = {}
    for name in GROWN:
        Opt = geo.compile(name)
        model, ref = _model(), _model()
        first, rest = list(model.named_parameters())[:4], list(model.named_parameters())[4:]
        zero = _quiet(lambda: ZeroRedundancyOptimizer(Opt.route(first), optimizer_class=Opt, seed=7))
        single = _quiet(lambda: Opt(list(ref.named_parameters())[:4], seed=7))
        _train(model, zero, 0, 2)
        _train(ref, single, 0, 2)
        for group in Opt.route(rest):
            zero.add_param_group(group)
        single.add_param_group({"params": list(ref.named_parameters())[4:]})  # split by rule, as route splits it
        _train(model, zero, 2, STEPS)
        _train(ref, single, 2, STEPS)
        groups = (len(zero.optim.param_groups), len(zero.param_groups))
        refused = None  # ZeRO has added the group to its own list by then: a refused ZeRO is to be rebuilt
        try:
            zero.add_param_group({"params": [torch.nn.Parameter(torch.randn(4, 4))]})
        except ValueError as e:
            refused = str(e)
        out[name] = dict(flat=_flat(model), rel=_rel(_flat(model), _flat(ref)), refused=refused, groups=groups)
    return out


@pytest.mark.slow  # 15 s at load 7, beyond the default tier's share
def test_zero1_add_param_group():
    ranks = run_ranks(_zero_grown_ranks, 2)
    for name in GROWN:
        a, b = ranks[0][name], ranks[1][name]
        assert torch.equal(a["flat"], b["flat"]) and a["rel"] <= _tolerance(name), (name, a["rel"])
        assert a["groups"][0] == a["groups"][1] == b["groups"][0], (name, a["groups"], b["groups"])
        routed = len(geo.compile(name)._geo.rules) > 1
        assert (a["refused"] is not None) == (b["refused"] is not None) == routed, (name, a["refused"], b["refused"])


def test_zero1_bare_tensors_and_refusals():
    ranks = run_ranks(_zero_plain_ranks, 2, SPECS)
    for name in SPECS:
        (kind, a), (kind_b, b) = ranks[0][name], ranks[1][name]
        spec = geo.compile(name)._geo
        assert kind == kind_b, name
        if spec.info.across is not None:
            assert kind == "refused" and "across" in a, (name, a)
        elif len(spec.rules) > 1:
            assert kind == "refused" and f"{name}.route(" in a, (name, a)
        else:
            assert kind == "ran", (name, a)
            assert torch.equal(a["flat"], b["flat"]), name
            assert a["empty"] + b["empty"] == 1, f"{name}: no rank got an empty group"
            assert a["moved"] > 1e-4
            if not a["draws"]:  # a random spec numbers its streams by its own share here: other draws, same law
                assert a["rel"] <= _tolerance(name), (name, a["rel"])


def _ddp_poisoned(rank, world_size, names, poison):
    return {"ddp": _ddp_ranks(rank, world_size, names, poison),
            "ddp+zero": _ddp_ranks(rank, world_size, names, poison, zero=True)}


def test_ddp_nonfinite_gradient_on_one_rank_skipped_on_all():
    """A NaN gradient on rank 1 reaches every rank through DDP's all-reduce, so every rank skips that parameter at
    that step (geo's default nonfinite="skip") and the ranks stay identical; so does the single-process run on the
    averaged gradient, which skips the same parameter. With ZeRO's optimizer on top, the parameter's owner skips
    it and broadcasts it unchanged."""
    ranks = run_ranks(_ddp_poisoned, 2, SPECS, (1, 1))
    for kind in ("ddp", "ddp+zero"):
        assert set(ranks[0][kind]) == {n for n in SPECS if kind == "ddp" or geo.compile(n)._geo.info.across is None}
        for name in ranks[0][kind]:
            a, b = ranks[0][kind][name], ranks[1][kind][name]
            assert torch.equal(a["flat"], b["flat"]), f"{kind} {name}: ranks differ"
            want = {a["poisoned"]: 1}
            if kind == "ddp":
                assert a["skips"] == b["skips"] == a["ref_skips"] == want, (name, a["skips"], b["skips"])
            else:  # only the owner's local optimizer steps (and skips) the parameter
                assert {**a["skips"], **b["skips"]} == a["ref_skips"] == want and not (a["skips"] and b["skips"]), \
                    (name, a["skips"], b["skips"])
            assert a["held"] is True and b["held"] is True, f"{kind} {name}: the poisoned parameter changed"
            assert a["rel"] <= _tolerance(name) and a["moved"] > 1e-4, (kind, name, a["rel"], a["moved"])


# ---- in one process: what route gives, and what a local optimizer refuses --------------------------------------
def test_route_groups_and_their_checks():
    """route's groups: bare tensors split by rule, the user's own keys and `geo_rule`, no hyperparameter values;
    given back to the optimizer (bare, as ZeRO gives them) they bind as the named list does, head included."""
    Opt = geo.compile("muon_adamw")
    model = _model()
    named = list(model.named_parameters())
    groups = Opt.route([{"params": named[:4], "weight_decay": 0.01}, {"params": named[4:]}])
    direct = Opt([{"params": named[:4], "weight_decay": 0.01}, {"params": named[4:]}])
    assert [g["geo_rule"] for g in groups] == [g["geo_rule"] for g in direct.param_groups]
    assert all(isinstance(p, torch.Tensor) for g in groups for p in g["params"])
    assert [set(g) for g in groups] == [{"params", "geo_rule", "weight_decay"}] * 2 + [{"params", "geo_rule"}] * 2
    again = Opt(groups)
    assert [[id(p) for p in g["params"]] for g in again.param_groups] == \
        [[id(p) for p in g["params"]] for g in direct.param_groups]
    assert again._geo_params[model[6].weight].role == direct._geo_params[model[6].weight].role == "head"
    assert again._stream(again.param_groups[-1], model[6].weight) == "6.weight"

    bare = [p for _, p in named[4:]]  # torch: all groups named or none, and an empty group has no names
    empty = _quiet(lambda: Opt.route([{"params": [], "lr": 0.5}, {"params": bare, "weight_decay": 0.02}]))
    assert [(len(g["params"]), g.get("lr"), g.get("weight_decay")) for g in empty] == \
        [(0, 0.5, None), (1, None, 0.02), (3, None, 0.02)]  # the last matrix is the head, by position

    with pytest.raises(ValueError, match="geo_rule=0"):  # the head, in a group that says Muon
        Opt([{"params": [model[6].weight], "geo_rule": 0}], roles={model[6].weight: "head"})
    with pytest.raises(ValueError, match="not a rule of this optimizer"):
        Opt([{"params": [model[0].weight], "geo_rule": 5}])
    with pytest.raises(ValueError, match="set for the whole optimizer"):  # ZeRO copies it: equal only
        geo.compile("adamw")([{"params": [model[0].weight], "nonfinite": "raise"}])
    opt = geo.compile("adamw")([{"params": [model[0].weight], "nonfinite": "raise", "seed": 3}], nonfinite="raise",
                               seed=3)
    assert set(opt.param_groups[0]) >= {"lr", "geo_rule"} and "seed" not in opt.param_groups[0]
    assert len(geo.compile("adamw")([{"params": []}, {"params": [model[0].weight]}]).param_groups) == 2
    # the remembered streams travel with a deep copy: frugal_columns' copy draws the columns the original draws
    Cols = geo.compile("frugal_columns")
    cols_model = _model()
    cols = Cols(Cols.route([(n, p) for n, p in cols_model.named_parameters() if p.dim() == 2]), seed=3)
    twin_model, twin = copy.deepcopy((cols_model, cols))  # before the first step, where the columns are drawn
    _train(cols_model, cols, 0, 2)
    _train(twin_model, twin, 0, 2)
    assert torch.equal(_flat(cols_model), _flat(twin_model))
    assert cols._stream(cols.param_groups[0], cols_model[0].weight) == "0.weight"

    stored = Opt.route(named, roles={model[2].weight: "hidden.T"})  # a Conv1D-like weight: the rules see its .T
    assert model[2].weight in Opt([g for g in stored])._geo_transposed
