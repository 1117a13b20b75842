"""The kernel cache: a learning-rate change never regenerates or recompiles, entries are found again on disk,
and a corrupt entry is rebuilt rather than fatal."""
from __future__ import annotations

import os

import torch

import geo
from geo.compiler.backends.triton import cache as triton_cache


def _fresh(folder, monkeypatch):
    """A new, empty cache folder and no kernel loaded in this process."""
    monkeypatch.setenv("GEO_CACHE_DIR", str(folder))
    triton_cache.clear_memory()


def _train(spec="adamw", steps=2, lrs=None, **kw):
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=g).requires_grad_() for s in [(7, 5), (7, 5), (3, 9)]]
    opt = geo.compile(spec, backend="triton")(params, **kw)
    for k in range(steps):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[k]
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    return params, opt


def _runners(opt):
    return list(opt._geo._runners.values())


def test_a_learning_rate_schedule_never_regenerates_or_recompiles(tmp_path, monkeypatch):
    _fresh(tmp_path, monkeypatch)
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(7, 5, generator=g).requires_grad_() for _ in range(2)]
    opt = geo.compile("muon", backend="triton")(params, lr=0.02)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (1 + k))
    p_ref = [p.detach().clone().requires_grad_() for p in params]
    ref = geo.compile("muon", backend="reference")(p_ref, lr=0.02)
    ref_sched = torch.optim.lr_scheduler.LambdaLR(ref, lambda k: 1.0 / (1 + k))
    generated, launches = None, None
    for k in range(4):
        g = torch.Generator().manual_seed(k)
        for p, q in zip(params, p_ref):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        opt.step()
        ref.step()
        sched.step()
        ref_sched.step()
        if k == 0:
            generated, launches = triton_cache.STATS["generated"], {len(r.launches) for r in _runners(opt)}
    assert triton_cache.STATS["generated"] == generated  # nothing generated after the first step
    assert {len(r.launches) for r in _runners(opt)} == launches  # no new (kernel, launch) specialization
    for p, q in zip(params, p_ref):  # and the new learning rates did take effect (Newton–Schulz runs in bf16)
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5)


def test_a_second_process_finds_the_kernels_on_disk(tmp_path, monkeypatch):
    _fresh(tmp_path, monkeypatch)
    before = dict(triton_cache.STATS)
    first, _ = _train()
    made = triton_cache.STATS["generated"] - before["generated"]
    assert made >= 1 and len(list((tmp_path / "triton").glob("*.py"))) == made
    triton_cache.clear_memory()  # as a new process would start
    hits = triton_cache.STATS["disk_hits"]
    second, _ = _train()
    assert triton_cache.STATS["generated"] - before["generated"] == made
    assert triton_cache.STATS["disk_hits"] - hits == made
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_a_corrupt_entry_is_rebuilt(tmp_path, monkeypatch):
    _fresh(tmp_path, monkeypatch)
    want, _ = _train()
    entries = sorted((tmp_path / "triton").glob("*.py"))
    assert entries
    path = entries[0]
    intact = path.read_text()
    damages = {"empty": b"", "binary junk": b"garbage \x00\xff not python",
               "torn": intact.encode()[: len(intact) // 2],
               "edited": intact.replace("tl.store", "tl.store  # edited", 1).encode()}
    for what, bad in damages.items():
        path.write_bytes(bad)
        triton_cache.clear_memory()
        rebuilt = triton_cache.STATS["rebuilt"]
        got, _ = _train()
        assert triton_cache.STATS["rebuilt"] == rebuilt + 1, what
        for a, b in zip(got, want):
            assert torch.equal(a, b), what
        assert path.read_text() == intact, what
    assert not [p for p in (tmp_path / "triton").iterdir() if p.suffix == ".tmp"]  # no temporary file left behind


def test_an_entry_that_verifies_but_does_not_import_is_rebuilt(tmp_path, monkeypatch):
    """A valid header over a module that fails to import (a kernel file of another geo version, say)."""
    _fresh(tmp_path, monkeypatch)
    calls = []

    def generate_bad_then_good():
        calls.append(1)
        return "raise ImportError('stale')\n" if len(calls) == 1 else "VALUE = 7\n"

    module = triton_cache.load(("probe",), generate_bad_then_good, {"ctx": 1})
    assert module.VALUE == 7 and len(calls) == 2


def test_the_cache_folder_follows_geo_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GEO_CACHE_DIR", str(tmp_path / "here"))
    assert triton_cache.cache_dir() == tmp_path / "here" / "triton"
    monkeypatch.delenv("GEO_CACHE_DIR")
    assert triton_cache.cache_dir() == type(tmp_path)(os.path.expanduser("~")) / ".cache" / "geo" / "triton"
