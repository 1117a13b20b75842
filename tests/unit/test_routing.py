"""No silent misrouting (issue 15): roles from names, from the model's last layer, from the modules
(`geo.roles`), HF GPT-2's transposed Conv1D storage, and a RoutingWarning wherever a role is a guess.

Oracles: where a rule sees a Conv1D weight through `.T`, its trajectory is that of the same weight stored as an
nn.Linear's (out, in), bit for bit; `split(3)` of a fused QKV is three separate Q, K, V matrices.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import pytest
import torch

import geo
from geo.cli import main
from geo.compiler.binding import RoutingWarning, choose_roles


def _routes(opt):
    return {name: g["geo_rule"] for g in opt.param_groups for name in g.get("param_names", [])}


def _no_warning(make):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RoutingWarning)
        return make()


# ---- names and positions --------------------------------------------------------------------------------
def test_the_last_layer_of_a_sequential_is_its_head():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(),
                                torch.nn.Linear(8, 3))
    opt = _no_warning(lambda: geo.compile("muon_adamw")(model.named_parameters()))
    muon, adamw = 0, 1
    assert _routes(opt) == {"0.weight": muon, "2.weight": muon, "4.weight": adamw, "0.bias": adamw, "2.bias": adamw,
                            "4.bias": adamw}


@pytest.mark.parametrize("names,head", [
    (["wte.weight", "h.0.attn.weight", "h.1.mlp.c_proj.weight"], None),  # GPT-2 with a tied head: none by position
    (["fc1.weight", "fc2.weight"], "fc2.weight"),                         # a plain MLP's output layer
    (["net.0.weight", "net.2.weight"], "net.2.weight"),                   # a Sequential inside a module
    (["encoder.layer.0.output.dense.weight", "encoder.layer.0.attention.self.query.weight", "classifier.weight"],
     "classifier.weight"),                                                # BERT: `output` in a block is hidden
    (["w"], None),                                                        # a lone matrix is no model
])
def test_head_by_name_and_by_position(names, head):
    choices = choose_roles([(n, (4, 4)) for n in names], [None] * len(names))
    assert [n for n, c in zip(names, choices) if c.role == "head"] == ([head] if head else [])
    assert all(c.role in ("hidden", "embedding", "head") and c.why for c in choices)


def test_unnamed_parameters_routed_by_rank_alone_warn_once_naming_shapes_and_the_fix():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 10))
    with pytest.warns(RoutingWarning) as caught:
        geo.compile("muon_adamw")(model.parameters())
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "3 parameters have no names" in message and "(10, 8), (8, 8), (10, 8) as hidden" in message
    assert "named_parameters()" in message and "roles=" in message and "muon" in message
    assert caught[0].filename == __file__  # it points at the constructor call
    _no_warning(lambda: geo.compile("adamw")(model.parameters()))  # one rule for all: roles do not matter
    _no_warning(lambda: geo.compile("muon_adamw")(model.parameters(), roles={p: "hidden" for p in
                                                                             model.parameters()}))


def test_roles_from_the_modules_route_an_embedding_in_a_sequential():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 10))
    roles = geo.roles(model)
    assert [roles.get(p) for p in model.parameters()] == ["embedding", "hidden", "bias", "head", "bias"]
    opt = _no_warning(lambda: geo.compile("muon_adamw")(model.parameters(), roles=roles))
    assert [g["geo_rule"] for g in opt.param_groups] == [0, 1] and len(opt.param_groups[0]["params"]) == 1


def test_explain_prints_the_routing_table_with_the_reasons():
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["explain", "muon_adamw", "--param", "0.weight=8x4", "--param", "0.bias=8", "--param",
                   "2.weight=3x8", "--param", "q.weight=8x24:hidden.T"])
    assert rc == 0, err.getvalue()
    table = {line.split()[0]: line for line in out.getvalue().splitlines() if "-> rule" in line and ":" in line}
    assert "head" in table["2.weight"] and "rule 1 (adamw)" in table["2.weight"] and "last layer" in table["2.weight"]
    assert "hidden" in table["0.weight"] and "rule 0 (muon)" in table["0.weight"]
    assert "hidden.T" in table["q.weight"] and "given by roles=" in table["q.weight"]
    assert "q.weight [8, 24] (role hidden) -> rule 0 `for hidden matrix W`, seen as [24, 8]" in out.getvalue()


def test_bad_roles_are_clear_errors():
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match=r"unknown role 'hiddn'.*\.T"):
        geo.compile("adamw")([p], roles={p: "hiddn"})
    with pytest.raises(ValueError, match="is for a matrix stored transposed"):
        geo.compile("adamw")([("b", p)], roles={"b": "bias.T"})


# ---- HF GPT-2's Conv1D: stored (in, out) ------------------------------------------------------------------
class Conv1D(torch.nn.Module):
    """HF transformers' Conv1D as GPT-2 uses it (y = x @ W + b, W stored (in, out)), for tests without
    transformers; `geo.roles` recognises it by class name and `nf`, as it does the real one."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = torch.nn.Parameter(torch.randn(nx, nf))
        self.bias = torch.nn.Parameter(torch.zeros(nf))


class TinyGPT2Block(torch.nn.Module):
    def __init__(self, d=8):
        super().__init__()
        self.c_attn, self.c_fc, self.c_proj = Conv1D(3 * d, d), Conv1D(4 * d, d), Conv1D(d, 4 * d)


def _grads(p, steps):
    g = torch.Generator().manual_seed(7)
    return [torch.randn(p.shape, generator=g) for _ in range(steps)]


def test_conv1d_storage_is_reported_and_geo_roles_transposes_it():
    torch.manual_seed(0)
    block = torch.nn.ModuleDict({"h": torch.nn.ModuleList([TinyGPT2Block()])})
    named = list(block.named_parameters())
    # c_attn (d, 3d) and c_fc (d, 4d) give themselves away; this c_proj is not named `mlp.c_proj`
    with pytest.warns(RoutingWarning, match=r"2 parameters look like HF GPT-2's Conv1D storage.*geo\.roles"):
        geo.compile("muon_adamw")(named)
    roles = geo.roles(block)
    assert {n: roles[p] for n, p in named if p.dim() == 2} == {
        "h.0.c_attn.weight": "hidden.T", "h.0.c_fc.weight": "hidden.T", "h.0.c_proj.weight": "hidden.T"}
    _no_warning(lambda: geo.compile("muon_adamw")(named, roles=roles))


def test_a_transposed_weight_steps_as_its_linear_twin_bit_for_bit():
    torch.manual_seed(0)
    conv = torch.nn.Parameter(torch.randn(8, 32))           # c_fc stored (in, out)
    linear = torch.nn.Parameter(conv.detach().T.contiguous())  # nn.Linear's (out, in)
    a = geo.compile("muon")([("c_fc.weight", conv)], roles={"c_fc.weight": "hidden.T"})
    b = geo.compile("muon")([("c_fc.weight", linear)])
    for g in _grads(conv, 3):
        conv.grad, linear.grad = g, g.T.contiguous()
        a.step()
        b.step()
    assert torch.equal(conv.detach().T, linear.detach())
    loaded = geo.compile("muon")([("c_fc.weight", conv)], roles={"c_fc.weight": "hidden.T"})
    loaded.load_state_dict(a.state_dict())  # the state has the rules' (out, in) shape: (32, 8)
    assert loaded.state[conv]["buf"].shape == (32, 8)


def test_split3_of_a_transposed_fused_qkv_is_q_k_and_v():
    torch.manual_seed(0)
    d = 8
    qkv = torch.nn.Parameter(torch.randn(d, 3 * d))  # c_attn stored (in, out)
    parts = [torch.nn.Parameter(qkv.detach().T[i * d:(i + 1) * d].contiguous()) for i in range(3)]
    spec = 'use muon\noptimizer qkv_muon:\n    for name "*c_attn.weight" matrix W as split(3) = muon\n'
    a = geo.compile(spec)([("attn.c_attn.weight", qkv)], roles={"attn.c_attn.weight": "hidden.T"})
    b = geo.compile("muon")(parts)
    for g in _grads(qkv, 3):
        qkv.grad = g
        for i, p in enumerate(parts):
            p.grad = g.T[i * d:(i + 1) * d].contiguous()
        a.step()
        b.step()
    assert all(torch.equal(qkv.detach().T[i * d:(i + 1) * d], parts[i].detach()) for i in range(3))


def test_hf_gpt2_when_transformers_is_installed():
    transformers = pytest.importorskip("transformers", reason="transformers is optional: the Conv1D stand-in above "
                                                              "covers the same layout")
    config = transformers.GPT2Config(n_layer=2, n_embd=8, n_head=2, vocab_size=16, n_positions=8,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    roles = geo.roles(model)
    by_name = {n: roles.get(p) for n, p in model.named_parameters()}
    assert by_name["transformer.wte.weight"] == "embedding"  # the tied lm_head stays the embedding
    assert by_name["transformer.h.1.attn.c_attn.weight"] == "hidden.T"
    with pytest.warns(RoutingWarning, match="Conv1D"):
        geo.compile("muon_adamw")(model.named_parameters())
    opt = _no_warning(lambda: geo.compile("muon_adamw")(model.named_parameters(), roles=roles))
    x = torch.randint(0, 16, (2, 8))
    loss0 = model(x, labels=x).loss.item()
    for _ in range(3):
        opt.zero_grad()
        model(x, labels=x).loss.backward()
        opt.step()
    assert model(x, labels=x).loss.item() < loss0
