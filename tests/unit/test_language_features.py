"""The language features of the second wave (issue 12), each against an independent computation: chains of stateful
direction transforms, `when`/`every` blocks, random operators and their keys, the `across` block, static choices
decided by rank or by shape, factorizations read by index, dtype promotion in matrix products."""
from __future__ import annotations

import io

import pytest
import torch

import geo
from geo.compiler.ops.randomness import RandomKey


def _steps(Opt, params, grads, **kwargs):
    opt = Opt(params, **kwargs)
    for g in grads:
        for p, gi in zip(params if isinstance(params[0], torch.Tensor) else [p for _, p in params], g):
            p.grad = gi.clone()
        opt.step()
    return opt


# ---- chains: a step may transform `grad` for the steps after it --------------------------------------------
CHAIN = """
step ema(W; beta = 0.95):
    state m = zeros_like(W)
    m = lerp(m, grad, 1 - beta)
    grad = m
step orthogonalize(matrix W; static ns_steps = 5):
    grad = msign(grad, steps = ns_steps, dtype = "bf16")
step descend(W; lr = 0.02):
    W = W - lr * grad
optimizer chain = descend ∘ orthogonalize ∘ ema
"""


def test_a_chain_of_direction_transforms_is_muon():
    """ema → orthogonalize → descend, three steps with their own state, is torch.optim.Muon without Nesterov."""
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(6, 8, generator=g)
    grads = [[torch.randn(6, 8, generator=g)] for _ in range(5)]
    a = torch.nn.Parameter(w0.clone())
    opt = _steps(geo.compile(CHAIN), [a], grads)
    b = torch.nn.Parameter(w0.clone())
    ref = torch.optim.Muon([b], lr=0.02, momentum=0.95, nesterov=False, weight_decay=0.0)
    for (gi,) in grads:
        b.grad = gi.clone()
        ref.step()
    torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-6, atol=1e-7)
    assert set(opt.state[a]) == {"step", "ema.m"}


def test_a_chain_step_for_matrices_only_is_skipped_for_vectors():
    v = torch.nn.Parameter(torch.ones(4))
    _steps(geo.compile(CHAIN), [v], [[torch.full((4,), 2.0)]])
    torch.testing.assert_close(v.detach(), torch.ones(4) - 0.02 * 0.05 * 2.0)  # ema then descend: no msign


# ---- when / every ------------------------------------------------------------------------------------------
EVERY = """
optimizer refresh(lr = 0.1, static k = 3):
    for matrix W:
        state count = 0.0
        state Q = eye(W.T @ W)
        every k:
            count = count + 1
            Q = eigh(grad.T @ grad)[1]
        when lr > 0.5:
            W = 0 * W
        W = W - lr * grad @ Q @ Q.T
"""


def test_every_runs_its_block_at_steps_1_k_plus_1_and_compiles_once_per_outcome():
    Opt = geo.compile(EVERY)
    w = torch.nn.Parameter(torch.zeros(4, 3))
    g = torch.Generator().manual_seed(0)
    opt = Opt([w])
    counts, Qs = [], []
    for _ in range(7):
        w.grad = torch.randn(4, 3, generator=g)
        opt.step()
        counts.append(int(opt.state[w]["count"]))
        Qs.append(opt.state[w]["Q"].clone())
    assert counts == [1, 1, 1, 2, 2, 2, 3]
    assert torch.equal(Qs[0], Qs[2]) and not torch.equal(Qs[2], Qs[3])
    firings = {key[4] for key in Opt._geo._programs}  # (rule, statics, rank, active, firing)
    # the full program (None, for the state initializers), the every block alone (steps 1, 4, 7), neither
    assert len(firings) == 3 and frozenset() in firings and None in firings, firings
    opt.param_groups[0]["lr"] = 1.0  # a runtime hyperparameter decides `when`, without a new compile of its own kind
    w.grad = torch.randn(4, 3, generator=g)
    opt.step()
    torch.testing.assert_close(w.detach(), -1.0 * w.grad @ opt.state[w]["Q"] @ opt.state[w]["Q"].T)


def test_a_when_condition_must_be_known_on_the_host():
    with pytest.raises(geo.GeoError, match="GEO0307"):
        geo.compile("optimizer o(lr = 0.1):\n    for tensor W:\n        when sum(grad) > 0:\n            W = W - lr * grad\n")


# ---- random operators ----------------------------------------------------------------------------------------
NOISY = """
optimizer noisy(lr = 0.1, p = 0.5):
    for tensor W:
        W = W - lr * (grad * bernoulli(W, p) + 0.01 * normal(W) + 0.001 * uniform(W))
"""


def _noisy_run(backend, seed=3, steps=4, split=None):
    Opt = geo.compile(NOISY)
    ws = [("a.weight", torch.nn.Parameter(torch.ones(3, 4))), ("b.weight", torch.nn.Parameter(torch.ones(3, 4)))]
    opt = Opt(ws, seed=seed, backend=backend)
    g = torch.Generator().manual_seed(1)
    out = []
    for t in range(steps):
        for _, w in ws:
            w.grad = torch.randn(3, 4, generator=g)
        opt.step()
        out.append([w.detach().clone() for _, w in ws])
        if split == t + 1:
            return out, opt.state_dict(), ws, g
    return out, opt.state_dict(), ws, g


def test_random_draws_are_identical_on_every_backend_and_per_parameter_stream():
    ref, _, _, _ = _noisy_run("reference")
    got, _, _, _ = _noisy_run("torch")
    for a, b in zip(ref, got):
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    assert not torch.equal(ref[0][0], ref[0][1])  # two parameters, same shape and step: their own streams
    other, _, _, _ = _noisy_run("torch", seed=4)
    assert not torch.equal(other[0][0], ref[0][0])


def test_random_draws_resume_bit_exact_with_the_checkpoints_seed():
    straight, _, _, _ = _noisy_run("torch", steps=4)
    first, sd, ws, g = _noisy_run("torch", split=2)
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    assert sd["geo_global"]["seed"] == 3
    opt = geo.compile(NOISY)(ws, seed=999)
    opt.load_state_dict(torch.load(buf, weights_only=True))
    for t in range(2, 4):
        for _, w in ws:
            w.grad = torch.randn(3, 4, generator=g)
        opt.step()
        for (_, w), want in zip(ws, straight[t]):
            assert torch.equal(w.detach(), want)


def test_a_random_key_is_a_function_of_seed_stream_step_and_site():
    a = RandomKey(1, "w", 2).generator("s:1:0").initial_seed()
    assert a == RandomKey(1, "w", 2).generator("s:1:0").initial_seed()
    assert len({a, RandomKey(2, "w", 2).generator("s:1:0").initial_seed(),
                RandomKey(1, "v", 2).generator("s:1:0").initial_seed(),
                RandomKey(1, "w", 3).generator("s:1:0").initial_seed(),
                RandomKey(1, "w", 2).generator("s:1:1").initial_seed()}) == 5


def test_a_state_cannot_be_initialized_by_a_draw():
    with pytest.raises(geo.GeoError, match="GEO0114"):
        geo.compile("optimizer o(lr = 0.1):\n    for tensor W:\n        state z = normal(W)\n        W = W - lr * z\n")


# ---- across ----------------------------------------------------------------------------------------------------
ACROSS = """
optimizer pick(lr = 0.1, k = 2.0):
    across matrix layers:
        state picked = zeros_like(layers)
        let update = subset(layers, k)
        let total = sum(update)
        picked = picked + update
    for matrix W:
        when update > 0:
            W = W - lr * total * grad
"""


def test_an_across_block_decides_for_all_layers_and_keeps_its_state_in_the_state_dict():
    Opt = geo.compile(ACROSS)
    ws = [(f"l{i}.weight", torch.nn.Parameter(torch.zeros(2, 2))) for i in range(5)]
    opt = Opt(ws, seed=0)
    for step in range(6):
        for _, w in ws:
            w.grad = torch.ones(2, 2)
        before = [w.detach().clone() for _, w in ws]
        opt.step()
        moved = [not torch.equal(w.detach(), b) for (_, w), b in zip(ws, before)]
        assert sum(moved) == 2  # exactly k of the 5 layers
        for (_, w), b, m in zip(ws, before, moved):
            if m:
                torch.testing.assert_close(w.detach(), b - 0.1 * 2.0 * torch.ones(2, 2))  # `total` is 2 for all
    sd = opt.state_dict()
    assert sd["geo_global"]["step"] == 6 and sd["geo_global"]["state"]["picked"].sum() == 12
    assert sd["geo_global"]["state"]["picked"].shape == (5,)


def test_an_across_block_grows_with_a_new_param_group():
    Opt = geo.compile(ACROSS)
    ws = [(f"l{i}.weight", torch.nn.Parameter(torch.zeros(2, 2))) for i in range(3)]
    opt = Opt(ws, seed=0)
    for _, w in ws:
        w.grad = torch.ones(2, 2)
    opt.step()
    kept = opt._geo_across_state["picked"].clone()
    extra = torch.nn.Parameter(torch.zeros(2, 2))
    opt.add_param_group({"params": [("l3.weight", extra)]})
    extra.grad = torch.ones(2, 2)
    opt.step()
    picked = opt._geo_across_state["picked"]
    assert picked.shape == (4,) and picked.sum() == 4 and torch.all(picked[:3] >= kept)


# ---- static choices decided by rank and by shape ---------------------------------------------------------------
def test_a_static_if_on_ndim_checks_each_branch_against_the_ranks_that_take_it():
    Opt = geo.compile("""
optimizer percol(lr = 0.1):
    for tensor W:
        let d = grad
        if ndim(W) == 2:
            d = grad / (mean(abs(grad), axis = -2) + 1e-8)
        W = W - lr * d
""")
    m, v = torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(2))
    gm, gv = torch.tensor([[1.0, 2.0], [3.0, 2.0], [2.0, 2.0]]), torch.tensor([1.0, -4.0])
    _steps(Opt, [m, v], [[gm, gv]])
    torch.testing.assert_close(m.detach(), -0.1 * gm / (gm.abs().mean(0, keepdim=True) + 1e-8))
    torch.testing.assert_close(v.detach(), -0.1 * gv)


def test_rows_and_cols_are_static_per_shape_where_a_static_value_needs_them():
    Opt = geo.compile("""
optimizer bysize(lr = 1.0):
    for matrix W:
        let k = 2 if rows(W) * cols(W) > 8 else 1
        repeat k:
            W = W - lr * grad
""")
    small, big = torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(3, 3))
    _steps(Opt, [small, big], [[torch.ones(2, 2), torch.ones(3, 3)]])
    assert torch.equal(small.detach(), -torch.ones(2, 2)) and torch.equal(big.detach(), -2 * torch.ones(3, 3))


def test_a_runtime_value_where_a_static_one_is_needed_is_still_an_error():
    with pytest.raises(geo.GeoError, match="GEO0301"):
        geo.compile("optimizer o(lr = 0.1):\n    for matrix W:\n        repeat lr:\n            W = W - grad\n")


# ---- factorizations, promotion, in place ------------------------------------------------------------------------
def test_factorizations_are_tuples_read_by_index_and_decomposed_once():
    Opt = geo.compile("""
optimizer eigen(lr = 0.1):
    for matrix W:
        let d = eigh(grad.T @ grad)
        W = W - lr * grad @ (d[1] * d[0]) @ d[1].T
""")
    rule = Opt._geo.rules[0]
    program = Opt._geo.program(rule, rule.statics(), 2, (0,))
    assert sum(n.op == "eigh" for n in program.nodes()) == 1
    w = torch.nn.Parameter(torch.zeros(4, 3, dtype=torch.float64))
    g = torch.randn(4, 3, dtype=torch.float64)
    _steps(Opt, [w], [[g]])
    torch.testing.assert_close(w.detach(), -0.1 * g @ (g.T @ g))


def test_a_matrix_product_promotes_mixed_dtypes():
    Opt = geo.compile("""
optimizer mixed(lr = 0.1):
    for matrix W:
        state F: fp32 = eye(W.T @ W)
        W = W - lr * grad @ F
""")
    w = torch.nn.Parameter(torch.zeros(3, 2, dtype=torch.bfloat16))
    _steps(Opt, [w], [[torch.ones(3, 2, dtype=torch.bfloat16)]])
    assert w.dtype == torch.bfloat16 and torch.equal(w.detach(), torch.full((3, 2), -0.1, dtype=torch.bfloat16))


def test_an_in_place_sum_never_reads_a_view_of_the_buffer_it_writes():
    """`x + x.T` on an intermediate x: the torch path may not overwrite x while its transpose is read."""
    Opt = geo.compile("""
optimizer symmetric(lr = 1.0):
    for matrix W:
        let x = grad * 2
        W = W - lr * (x + x.T)
""", backend="torch")
    w = torch.nn.Parameter(torch.zeros(3, 3))
    g = torch.arange(9.0).reshape(3, 3)
    _steps(Opt, [w], [[g]])
    torch.testing.assert_close(w.detach(), -(2 * g + 2 * g.T))
