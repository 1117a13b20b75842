"""The kernel cache's trust model (docs/triton.md): an entry is code that runs in the process, so only entries
that nobody but the user could have written run, and only as the bytes that were verified.

Before issue 16 an entry's seal was an unkeyed sha256 of its text and predictable values, and nothing checked
who owned the folder or the files: another local user who could write to a shared `GEO_CACHE_DIR` planted a
kernel that ran in the victim's process. And the verified file was read again when Triton first launched it,
so deleting or truncating entries during steps gave errors or a step that silently did nothing. Hostile
states of the folder (a file where the folder should be, a folder that cannot be created) or of an entry (a
directory, a FIFO, a link) must make geo generate the kernel again, never fail or block a step.
"""
from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import signal
import stat
import warnings

import pytest
import torch

import geo
from geo.compiler.backends.triton import cache as triton_cache

MARK = "__geo_planted__"
PLANT = f"import builtins as _b\nsetattr(_b, {MARK!r}, True)\n"


@contextlib.contextmanager
def _deadline(seconds: int = 120):
    """A step that blocks (a FIFO opened for reading) fails the test instead of hanging it."""
    def timeout(signum, frame):
        raise TimeoutError(f"no result after {seconds}s: the cache blocked")
    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _fresh(folder, monkeypatch):
    monkeypatch.setenv("GEO_CACHE_DIR", str(folder))
    triton_cache.clear_memory()


def _train(steps: int = 2):
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=g).requires_grad_() for s in [(7, 5), (3, 9)]]
    opt = geo.compile("adamw", backend="triton")(params, lr=0.01)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    return [p.detach().clone() for p in params]


@pytest.fixture
def reference(tmp_path_factory, monkeypatch):
    """What a clean cache computes (memory and disk emptied first)."""
    _fresh(tmp_path_factory.mktemp("clean"), monkeypatch)
    want = _train()
    triton_cache.clear_memory()
    return want


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _entries(folder):
    return sorted((folder / "triton").glob("k*.py"))


def _planted(text: str, key: bytes | None) -> str:
    """An entry's text with code added at the top of its body, sealed with `key` (None: the old, unkeyed seal,
    sha256 of the body and predictable values, which anyone can compute)."""
    header, _, body = text.partition("\n")
    body = PLANT + body
    context = _context()
    if key is None:
        seal = hashlib.sha256(json.dumps([body, context], sort_keys=True, default=repr).encode()).hexdigest()
    else:
        seal = triton_cache._seal(key, body, context)
    return f"{triton_cache._PREFIX}{seal}\n{body}"


def _context():
    from geo.compiler.backends.triton import step as triton_step
    return {"BLOCK": triton_step.BLOCK, "device": "interpreter", "versions": triton_cache.versions()}


@pytest.fixture(autouse=True)
def _no_plant():
    if hasattr(builtins, MARK):
        delattr(builtins, MARK)
    yield
    planted = hasattr(builtins, MARK)
    if planted:
        delattr(builtins, MARK)
    assert not planted, "a planted kernel ran"


def test_a_planted_entry_with_a_computable_seal_never_runs(tmp_path, monkeypatch, reference):
    """The attack of issue 16: entries rewritten with code and the old, unkeyed seal. They are rebuilt, and the
    numbers are a clean cache's."""
    _fresh(tmp_path, monkeypatch)
    _train()
    for path in _entries(tmp_path):
        path.write_text(_planted(path.read_text(), None))
    triton_cache.clear_memory()
    rebuilt = triton_cache.STATS["rebuilt"]
    assert _same(_train(), reference)
    assert triton_cache.STATS["rebuilt"] - rebuilt == len(_entries(tmp_path))
    assert not any(MARK in p.read_text() for p in _entries(tmp_path))  # and they were replaced


def test_entries_others_can_write_never_run(tmp_path, monkeypatch, reference):
    """Even with a valid keyed seal: an entry writable by the group (or, as root, owned by another user) is not
    trusted."""
    _fresh(tmp_path, monkeypatch)
    _train()
    key = (tmp_path / "triton" / triton_cache.KEY_FILE).read_bytes()
    for i, path in enumerate(_entries(tmp_path)):
        path.write_text(_planted(path.read_text(), key))
        if i % 2 == 0 or os.geteuid() != 0:
            os.chmod(path, 0o660)
        else:
            os.chown(path, 54321, -1)
    triton_cache.clear_memory()
    assert _same(_train(), reference)


@pytest.mark.parametrize("what", ["world-writable", "group-writable", "another user's"])
def test_a_folder_others_can_write_is_not_used(tmp_path, monkeypatch, reference, what):
    _fresh(tmp_path, monkeypatch)
    _train()
    folder = tmp_path / "triton"
    key = (folder / triton_cache.KEY_FILE).read_bytes()
    for path in _entries(tmp_path):
        path.write_text(_planted(path.read_text(), key))  # a plant with a valid seal: the folder decides
    if what == "another user's":
        monkeypatch.setattr(triton_cache, "_uid", lambda: os.getuid() + 1)
    else:
        os.chmod(folder, 0o777 if what == "world-writable" else 0o770)
    triton_cache.clear_memory()
    untrusted, generated = triton_cache.STATS["untrusted"], triton_cache.STATS["generated"]
    with pytest.warns(RuntimeWarning, match="not using the Triton kernel cache"):
        assert _same(_train(), reference)
    assert triton_cache.STATS["untrusted"] > untrusted
    assert triton_cache.STATS["generated"] - generated == len(_entries(tmp_path))  # all in memory, none read


@pytest.mark.parametrize("what", ["triton is a file", "uncreatable"])
def test_an_unusable_folder_falls_back_to_memory(tmp_path, monkeypatch, reference, what):
    if what == "triton is a file":
        (tmp_path / "triton").write_text("not a folder")
        _fresh(tmp_path, monkeypatch)
    else:
        (tmp_path / "file").write_text("")
        _fresh(tmp_path / "file" / "below", monkeypatch)  # a folder cannot be made under a file
    with pytest.warns(RuntimeWarning, match="not using the Triton kernel cache"), _deadline():
        assert _same(_train(), reference)


@pytest.mark.parametrize("what", ["directory", "fifo", "symlink", "not utf-8", "huge"])
def test_a_hostile_entry_is_generated_again(tmp_path, monkeypatch, reference, what):
    _fresh(tmp_path, monkeypatch)
    _train()
    key = (tmp_path / "triton" / triton_cache.KEY_FILE).read_bytes()
    elsewhere = tmp_path / "elsewhere.py"
    for path in _entries(tmp_path):
        planted = _planted(path.read_text(), key)
        path.unlink()
        if what == "directory":
            path.mkdir()
        elif what == "fifo":
            os.mkfifo(path)
        elif what == "symlink":  # to a file of the user's with a valid seal: links are not followed
            elsewhere.write_text(planted)
            os.chmod(elsewhere, 0o600)
            path.symlink_to(elsewhere)
        elif what == "not utf-8":
            path.write_bytes(b"\xff\xfe" + planted.encode())
        else:
            with open(path, "wb") as f:
                f.truncate(triton_cache.MAX_ENTRY_BYTES + 1)
        if what in ("not utf-8", "huge"):
            os.chmod(path, 0o600)
    triton_cache.clear_memory()
    with _deadline():
        assert _same(_train(), reference)
    for path in _entries(tmp_path):  # replaced by a sound entry, except a directory, which cannot be
        assert path.is_dir() if what == "directory" else (path.is_file() and not path.is_symlink())


@pytest.mark.parametrize("what", ["directory", "group-readable", "short", "symlink"])
def test_a_hostile_key(tmp_path, monkeypatch, reference, what):
    """A key file that is not one is replaced (its entries are then rebuilt); one that cannot be replaced (a
    directory) leaves the cache unused for the process."""
    _fresh(tmp_path, monkeypatch)
    folder = tmp_path / "triton"
    folder.mkdir(mode=0o700)
    keyfile = folder / triton_cache.KEY_FILE
    if what == "directory":
        keyfile.mkdir()
    elif what == "group-readable":
        keyfile.write_bytes(b"k" * triton_cache.KEY_BYTES)
        os.chmod(keyfile, 0o640)
    elif what == "short":
        keyfile.write_bytes(b"k" * 5)
        os.chmod(keyfile, 0o600)
    else:
        (tmp_path / "theirs").write_bytes(b"k" * triton_cache.KEY_BYTES)
        keyfile.symlink_to(tmp_path / "theirs")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _deadline():
            assert _same(_train(), reference)
    if what == "directory":
        assert any("not using the Triton kernel cache" in str(w.message) for w in caught)
    else:
        assert keyfile.is_file() and not keyfile.is_symlink()
        assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600 and len(keyfile.read_bytes()) == triton_cache.KEY_BYTES
        assert keyfile.read_bytes() != b"k" * triton_cache.KEY_BYTES


@pytest.mark.parametrize("damage", ["stores removed", "delete", "truncate"])
def test_entries_damaged_after_the_check_change_nothing(tmp_path, monkeypatch, reference, damage):
    """Check-then-use: every entry rewritten without its stores (a step that silently does nothing), deleted or
    truncated right after it was verified and loaded, before the kernel's first launch (when Triton's
    interpreter reads its source again; before issue 16 it ran the rewritten text). The step still computes
    what a clean cache does: the source is the verified bytes, held in memory."""
    _fresh(tmp_path, monkeypatch)
    _train()  # the entries exist: the next run reads them from the disk
    triton_cache.clear_memory()
    real = triton_cache.load

    def then_damage(*args, **kwargs):
        module = real(*args, **kwargs)
        for path in _entries(tmp_path):
            if damage == "delete":
                path.unlink()
            elif damage == "truncate":
                path.write_text(path.read_text()[:40])
            else:
                lines = path.read_text().splitlines(keepends=True)
                path.write_text("".join(line[:len(line) - len(line.lstrip())] + "pass\n" if "tl.store(" in line
                                        else line for line in lines))
        return module
    monkeypatch.setattr(triton_cache, "load", then_damage)
    hits = triton_cache.STATS["disk_hits"]
    assert _same(_train(), reference)
    assert triton_cache.STATS["disk_hits"] > hits


def test_the_key_and_entries_are_private(tmp_path, monkeypatch):
    _fresh(tmp_path, monkeypatch)
    _train(steps=1)
    folder = tmp_path / "triton"
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE((folder / triton_cache.KEY_FILE).stat().st_mode) == 0o600
    for path in _entries(tmp_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


REAL_JIT = '''
import os, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from geo.compiler.backends.triton import cache
from geo.compiler.backends.triton.codegen import default_launch, kernel_source, module_source
from geo.compiler.pipeline import front, specialize
from geo.compiler.plan import plan
from geo.dsl.loader import source_for
_, checked = front(source_for("adamw"))
rule = checked.optimizers["adamw"].rules[0]
program = specialize(checked, rule, rule.statics(), 2)
p = plan(program)
k = p.kernels()[0]
launch = default_launch(program, p, k)
for attempt in ("generated", "read from the disk"):
    cache.clear_memory()
    module = cache.load(("real-jit", k.index), lambda: module_source([kernel_source(program, k, launch)]), {})
    fn = getattr(module, f"k{k.index}")
    assert type(fn).__name__ == "JITFunction", type(fn)
    src = ASTSource(fn, signature={"META": "*i64", "BLOCKS": "*i32", "BLOCK": "constexpr"}, constexprs={"BLOCK": 1024})
    assert triton.compile(src, target=GPUTarget("cuda", 90, 32)).asm["cubin"], attempt
assert cache.STATS["generated"] == 1 and cache.STATS["disk_hits"] == 1, cache.STATS
print("ok")
'''


def test_a_cached_kernel_compiles_with_tritons_real_jit(tmp_path):
    """The kernels run from the verified text (its lines in `linecache` under `<geo-triton k…>`): Triton's real
    JIT (not the interpreter) reads that source and compiles it for sm_90, generated and read from the disk."""
    import subprocess
    import sys
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(GEO_CACHE_DIR=str(tmp_path / "geo"), TRITON_CACHE_DIR=str(tmp_path / "triton-binaries"),
               TRITON_DEFAULT_FP_FUSION="1")
    done = subprocess.run([sys.executable, "-c", REAL_JIT], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]
