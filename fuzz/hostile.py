"""The hostile cases of the robustness campaign (issue 16): files, links, names, the kernel cache, values and
failures the API meets. `robustness_input` makes every `--hostile-every`-th input one of them (the classes in
turn, `specgen.HOSTILE_CLASSES`); `check_hostile` runs one and says what happened, or raises
`RobustnessFailure` when geo did what it must not (crashed, showed a file that is not a spec, wrote half a step).
"""
from __future__ import annotations

import json
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Callable

from ..compiler.pipeline import front
from ..dsl.diagnostics import GeoError
from ..dsl.loader import read_file
from ..dsl.source import SourceFile
from .robustness import RobustnessFailure, check_input


SECRET = "root:x:0:0:geo-fuzz-secret:/root:/bin/bash\n"  # a file that is not a spec: no diagnostic may show it
_SPEC = "optimizer o(lr = 0.1):\n    for tensor W:\n        W = W - lr * grad\n"


def check_hostile(case: dict, folder: Path, index: int = 0) -> str:
    """Runs hostile case `case` (specgen.hostile_case) in `folder`, an empty folder of its own. Returns "ok",
    "diagnostic" or "refused" (the API raised the ValueError/TypeError it must); raises RobustnessFailure when
    anything else comes out, a planted kernel runs, a refusal changed something, or a non-spec file is shown."""
    data = json.dumps(case, sort_keys=True, ensure_ascii=True).encode()
    origin = f"hostile-{case['class']}"
    try:
        return _HOSTILE_CHECKS[case["class"]](case, folder, index)
    except AssertionError as err:
        raise RobustnessFailure(f"{case['class']}: {err}", data, origin) from None
    except BaseException as err:  # noqa: BLE001 - anything else is a finding
        if isinstance(err, KeyboardInterrupt):
            raise
        raise RobustnessFailure(f"{case['class']}: {type(err).__name__}: {str(err)[:300]}", data, origin,
                                "".join(traceback.format_exception(err)[-8:])) from None


def _diagnosed(fn: Callable[[], object], codes: set[str] | None = None, secret: str | None = SECRET) -> str:
    """Runs fn: "ok", or "diagnostic" when it raised GeoError whose diagnostics all render to UTF-8, show no
    secret, and (with `codes`) carry only those codes."""
    try:
        fn()
        return "ok"
    except GeoError as err:
        for d in err.diagnostics:
            shown = d.render()
            shown.encode("utf-8")  # renders on any stream: no lone surrogate left
            assert not secret or secret.strip() not in shown, f"a diagnostic shows a file that is not a spec: {shown[:200]}"
            assert codes is None or d.code in codes, f"{d.code} where {sorted(codes)} was expected: {d.message}"
        return "diagnostic"


def _expect(outcome: str, want: str, what: str) -> str:
    assert outcome == want, f"{what}: {outcome}, expected {want}"
    return outcome


def _front_file(path: str | Path) -> None:
    front(read_file(str(path)))


# -- resource bombs: small specs asking for unbounded memory or time
def _resource_bomb(case: dict, folder: Path, index: int) -> str:
    """Checked through the whole pipeline; the process's peak memory may not grow by more than 256 MB (the peak
    resident size, not tracemalloc: tracing every allocation made a 1 MB spec take 10 s)."""
    import resource
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if "use_chain" in case:
        n = case["use_chain"]
        for i in range(n):
            (folder / f"m{i}.geo").write_text((f"use m{i + 1}\n" if i < n - 1 else "") + _SPEC.replace(" o(", f" o{i}("))
        outcome = _diagnosed(lambda: _front_file(folder / "m0.geo"), {"GEO0503"})
        _expect(outcome, "ok" if n <= 64 else "diagnostic", f"a chain of {n} `use`s")
    elif "optimizer_chain" in case:
        n = case["optimizer_chain"]
        text = "".join(f"optimizer a{i}(lr = 0.1) = a{i - 1}\n" for i in range(n, 0, -1)) + _SPEC.replace(" o(", " a0(")
        (folder / "chain.geo").write_text(text)
        outcome = _diagnosed(lambda: _front_file(folder / "chain.geo"), {"GEO0109"})
    elif "oversized" in case:
        from ..dsl.source import MAX_SPEC_BYTES
        size = MAX_SPEC_BYTES - 64 + case["extra"]
        text = _SPEC + "#" * (size - len(_SPEC) - 1) + "\n"
        if case["oversized"] == "file":
            (folder / "big.geo").write_text(text)
            outcome = _diagnosed(lambda: _front_file(folder / "big.geo"), {"GEO0601"})
        else:
            outcome = _diagnosed(lambda: front(SourceFile("<spec>", text)), {"GEO0601"})
        _expect(outcome, "ok" if size <= MAX_SPEC_BYTES else "diagnostic", f"a spec of {size} bytes")
    else:
        path = folder / "bomb.geo"
        outcome = check_input(case["text"].encode(), path, "hostile-resource-bomb")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start  # kB on Linux
    assert grown < 256 << 10, f"checking it raised the process's peak memory by {grown >> 10} MB"
    return outcome


# -- files that are not regular: refused before a byte is read
def _non_regular_file(case: dict, folder: Path, index: int) -> str:
    import socket
    target, via = case["target"], case["via"]
    path = folder / "x.geo"
    sock = None
    if target == "fifo":
        os.mkfifo(path)
    elif target == "directory":
        path.mkdir()
    elif target.startswith("/dev/"):
        os.symlink(target, path) if via == "use" else None
    elif target == "link to /dev/zero":
        os.symlink("/dev/zero", path)
    elif target == "sparse 2 MiB":
        with open(path, "wb") as f:
            f.truncate(2 << 20)
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
    try:
        if via == "use":
            (folder / "main.geo").write_text("use x\n\noptimizer o = x_step\n")
            outcome = _diagnosed(lambda: _front_file(folder / "main.geo"), {"GEO0601"})
        else:
            where = target if target.startswith("/dev/") else path
            outcome = _diagnosed(lambda: _front_file(where), {"GEO0601"})
    finally:
        if sock is not None:
            sock.close()
    return _expect(outcome, "diagnostic", f"{target} via {via}")


# -- lone surrogates in every text the API takes
def _surrogate(case: dict, folder: Path, index: int) -> str:
    ch, where = case["char"], case["where"]
    if where == "file name":
        name = os.fsencode(str(folder)) + b"/x" + (bytes([ord(ch) - 0xDC00]) if "\udc80" <= ch <= "\udcff" else b"") + b".geo"
        with open(name, "wb") as f:
            f.write(_SPEC.encode())
        shown = os.fsdecode(name) if "\udc80" <= ch <= "\udcff" else str(folder / f"x{ch}.geo")
        return _diagnosed(lambda: _front_file(shown), {"GEO0601"})
    if where == "spec escape":  # an escape in a string of a file: the file is UTF-8, the string would not be
        (folder / "s.geo").write_text(_SPEC.replace("lr = 0.1", f'lr = 0.1, static s = "\\u{ord(ch):04x}"'))
        return _expect(_diagnosed(lambda: _front_file(folder / "s.geo"), {"GEO0002"}), "diagnostic", where)
    if where in ("spec raw", "used name"):  # raw, only spec text given inline can hold one (a file is UTF-8)
        text = _SPEC.replace("o(", f"o{ch}(") if where == "spec raw" else f"use a{ch}\n\n" + _SPEC
        return _expect(_diagnosed(lambda: front(SourceFile("<spec>", text)), {"GEO0002"}), "diagnostic", where)
    if where == "optimizer name":
        (folder / "s.geo").write_text(_SPEC)
        checked = front(read_file(str(folder / "s.geo")))[1]
        return _expect(_diagnosed(lambda: checked.select("s.geo", f"o{ch}"), {"GEO0115"}), "diagnostic", where)
    import torch
    p = torch.zeros(4, 3, requires_grad=True)
    if where == "param name":
        cls = _stdlib_class("muon")
        outcome = _diagnosed(lambda: cls([(f"bias{ch}", torch.zeros(3, requires_grad=True))]), {"GEO0401"})
        return _expect(outcome, "diagnostic", where)
    cls = _stdlib_class("adamw" if where == "keyword" else "muon_adamw")
    name = f"l{ch}r" if where == "keyword" else f"mu{ch}on"
    try:
        cls([("h.0.w", p)], **{name: 0.1 if where == "keyword" else {"lr": 0.1}})
    except TypeError:
        return "refused"
    raise AssertionError(f"an unknown {where} `{name!r}` was accepted")


# -- symbolic links that `use` meets
def _symlink(case: dict, folder: Path, index: int) -> str:
    here, elsewhere = folder / "here", folder / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    (elsewhere / "secret").write_text(SECRET)
    (elsewhere / "spec.geo").write_text("step x_step(W; lr = 0.1):\n    W = W - lr * grad\n")
    (here / "real.geo").write_text("step x_step(W; lr = 0.1):\n    W = W - lr * grad\n")
    (here / "secret").write_text(SECRET)
    link = here / "x.geo"
    kind = case["link"]
    target, fine = {"secret outside": (elsewhere / "secret", False), "spec outside": (elsewhere / "spec.geo", False),
                    "spec beside": (here / "real.geo", True), "dangling": (here / "missing.geo", False),
                    "to a folder": (here / "sub.geo", False), "link to a link beside": (here / "y.geo", True),
                    "link to a link outside": (here / "z.geo", False),
                    "secret beside without .geo": (here / "secret", False)}[kind]
    if kind == "to a folder":
        target.mkdir()
    if kind == "link to a link beside":
        os.symlink(here / "real.geo", here / "y.geo")
    if kind == "link to a link outside":
        os.symlink(elsewhere / "secret", here / "z.geo")
    os.symlink(target, link)
    (here / "main.geo").write_text("use x\n\noptimizer o = x_step\n")
    outcome = _diagnosed(lambda: _front_file(here / "main.geo"), {"GEO0601"})
    return _expect(outcome, "ok" if fine else "diagnostic", f"`use` of {kind}")


# -- the Triton kernel cache in hostile states (its module alone: no Triton needed)
def _hostile_cache(case: dict, folder: Path, index: int) -> str:
    import builtins
    import hashlib
    import inspect
    import warnings
    from ..compiler.backends.triton import cache as kc
    root = folder / "cache"
    root.mkdir()
    kind = case["folder"]
    if kind == "uncreatable":
        (root / "file").write_text("")
        root = root / "file" / "below"
    tri = root / "triton"
    if kind == "triton is a file":
        tri.write_text("not a folder")
    elif kind != "uncreatable":
        tri.mkdir(mode=0o700)
        if kind in ("world-writable", "group-writable"):
            os.chmod(tri, 0o777 if kind == "world-writable" else 0o770)
    usable = kind in ("sound", "another user's", "world-writable", "group-writable")
    key = None
    keyfile = tri / kc.KEY_FILE
    if usable and case["key"] != "none":
        key_state = case["key"]
        if key_state == "directory":
            keyfile.mkdir()
        elif key_state == "fifo":
            os.mkfifo(keyfile)
        elif key_state == "symlink":
            (folder / "theirs").write_bytes(b"k" * kc.KEY_BYTES)
            os.symlink(folder / "theirs", keyfile)
        else:
            key = os.urandom(kc.KEY_BYTES) if key_state != "short" else b"short"
            keyfile.write_bytes(key)
            os.chmod(keyfile, 0o640 if key_state == "group-readable" else 0o600)
    token = 1000 + index
    key_parts = ("geo-fuzz-probe", index, json.dumps(case, sort_keys=True))
    context = {"probe": index}
    body = f"VALUE = {token}\n\n\ndef probe():\n    return VALUE\n"
    name = "k" + kc.digest(key_parts)[:40]
    marker = f"__geo_fuzz_planted_{index}__"
    plant = f"import builtins as _b\nsetattr(_b, {marker!r}, True)\nVALUE = -1\n\n\ndef probe():\n    return VALUE\n"
    trusted = kind == "sound" and case["key"] == "sound"
    entry = tri / f"{name}.py"
    state = case["entry"]
    if usable:
        if state == "sound" or (state == "keyed plant" and trusted):
            entry.write_text(f"{kc._PREFIX}{kc._seal(key, body, context) if key else 'x'}\n{body}")
        elif state in ("unkeyed plant", "keyed plant", "group-writable"):
            if state == "unkeyed plant" or key is None:
                seal = hashlib.sha256(json.dumps([plant, context], sort_keys=True, default=repr).encode()).hexdigest()
            else:
                seal = kc._seal(key, plant, context)
            entry.write_text(f"{kc._PREFIX}{seal}\n{plant}")
            os.chmod(entry, 0o660 if state == "group-writable" else 0o600)
        elif state == "directory":
            entry.mkdir()
        elif state == "fifo":
            os.mkfifo(entry)
        elif state == "symlink":
            (folder / "planted.py").write_text(f"{kc._PREFIX}{kc._seal(key, plant, context) if key else 'x'}\n{plant}")
            os.symlink(folder / "planted.py", entry)
        elif state == "garbage":
            entry.write_bytes(b"\xff\x00 not python \x80")
        elif state == "huge":
            with open(entry, "wb") as f:
                f.truncate(kc.MAX_ENTRY_BYTES + 1)
        elif state == "truncated":
            entry.write_text(f"{kc._PREFIX}{kc._seal(key, body, context) if key else 'x'}\n{body}"[:30])
    before = os.environ.get("GEO_CACHE_DIR")
    real_uid = kc._uid
    os.environ["GEO_CACHE_DIR"] = str(root)
    if kind == "another user's":
        kc._uid = lambda: os.getuid() + 1
    try:
        for attempt in range(2):  # a fresh process (memory cleared) twice: the second meets what the first left
            kc._LOADED.pop(name, None)
            kc._KEYS.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = kc.load(key_parts, lambda: body, context)
            if case["damage_after_load"] and tri.is_dir():
                for p in tri.glob("k*.py"):
                    if p.is_file() and not p.is_symlink():
                        p.write_text("VALUE = -2\n")
            assert not getattr(builtins, marker, False), f"a planted kernel ran ({kind} folder, {state} entry)"
            assert module.VALUE == token and module.probe() == token, f"the kernel's value is {module.VALUE}"
            assert "return VALUE" in inspect.getsource(module.probe), "the kernel's source is not the verified text"
    finally:
        kc._uid = real_uid
        kc._LOADED.pop(name, None)
        kc._KEYS.clear()
        if hasattr(builtins, marker):
            delattr(builtins, marker)
        if before is None:
            os.environ.pop("GEO_CACHE_DIR", None)
        else:
            os.environ["GEO_CACHE_DIR"] = before
    return "ok"


# -- hyperparameter values outside their declared ranges, wherever they enter
def _stdlib_class(name: str):
    cls = _CLASSES.get(name)
    if cls is None:
        from ..runtime.api import compile as geo_compile
        cls = _CLASSES[name] = geo_compile(name, backend="torch")
    return cls


_CLASSES: dict[str, type] = {}


def _value(text: str):
    import torch
    table = {"tensor nan": lambda: torch.tensor(math.nan), "tensor -1": lambda: torch.tensor(-1.0),
             "tensor 0.5": lambda: torch.tensor(0.5), "tensor 2 elements": lambda: torch.tensor([0.1, 0.2]),
             "string": lambda: "0.1", "bool": lambda: True, "none": lambda: None, "huge int": lambda: 10 ** 400,
             "pair": lambda: (0.5, 0.5), "pair with nan": lambda: (0.5, math.nan), "pair with 1": lambda: (0.9, 1.0),
             "pair too long": lambda: (0.1, 0.2, 0.3)}
    return table[text]() if text in table else float(text)


def _inside(r, v: float) -> bool:
    """Containment in a declared range, written again here (the oracle does not ask the Interval)."""
    if r is None:
        return True
    lo_ok = v > r.lo or (r.lo_closed and v == r.lo)
    hi_ok = v < r.hi or (r.hi_closed and v == r.hi)
    return lo_ok and hi_ok


def _acceptable(h, value) -> bool:
    """Whether a runtime hyperparameter may take `value`: finite real numbers in its range (each of a tuple), a
    number given as a 1-element tensor."""
    import torch

    def number(v):
        if isinstance(v, torch.Tensor):
            if v.numel() != 1 or v.dtype == torch.bool or v.is_complex():
                return None
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        try:
            v = float(v)
        except OverflowError:
            return None
        return v if math.isfinite(v) else None
    if isinstance(h.default, tuple):
        if not isinstance(value, (tuple, list)) or len(value) != len(h.default):
            return False
        items = [number(v) for v in value]
    else:
        if isinstance(value, (tuple, list)):
            return False
        items = [number(value)]
    return all(v is not None and _inside(h.range, v) for v in items)


def _optimizer_state(opt, params) -> tuple:
    import copy
    return [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict()), dict(opt.nonfinite_skips)


def _same(a, b) -> bool:
    """Equal values as a snapshot compares them: tensors by their bits, NaN equal to NaN, containers item by item."""
    import torch
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and \
            torch.equal(torch.nan_to_num(a, nan=0.5), torch.nan_to_num(b, nan=0.5)) and \
            torch.equal(a.isnan(), b.isnan())
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b


def _assert_unchanged(before: tuple, opt, params, what: str) -> None:
    values, sd, skips = before
    now = opt.state_dict()
    assert all(_same(a, b.detach()) for a, b in zip(values, params)), f"{what}: a parameter changed"
    assert _same(now["state"], sd["state"]), f"{what}: a state changed, was created or dropped"
    assert _same(now["param_groups"], sd["param_groups"]), f"{what}: a param group changed"
    assert opt.nonfinite_skips == skips, f"{what}: nonfinite_skips changed"


def _grads(params, seed: int) -> None:
    import torch
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)


def _range_violation(case: dict, folder: Path, index: int) -> str:
    import copy

    import torch
    from ..runtime.checkpoint import CheckpointError
    if case["where"] == "spec":
        lo, hi = (float(case[k]) for k in ("lo", "hi"))  # "inf" and "-inf" read as floats
        default = float(case["default"])
        empty = not (lo < hi or (lo == hi and case["lo_closed"] and case["hi_closed"]))
        bounds = type("R", (), {"lo": lo, "hi": hi, "lo_closed": case["lo_closed"], "hi_closed": case["hi_closed"]})
        good = not empty and _inside(bounds, default)
        text = (f"optimizer o(lr = {case['default']} in {'[' if case['lo_closed'] else '('}{case['lo']}, {case['hi']}"
                f"{']' if case['hi_closed'] else ')'}):\n    for tensor W:\n        W = W - lr * grad\n")
        (folder / "r.geo").write_text(text)
        outcome = _diagnosed(lambda: _front_file(folder / "r.geo"), {"GEO0306"})
        return _expect(outcome, "ok" if good else "diagnostic", text.splitlines()[0])
    cls = _stdlib_class(case["spec"])
    rule = cls._geo.rules[0]
    runtime = [k for k, h in rule.hypers.items() if not h.static]
    name = runtime[case["pick"] % len(runtime)]
    h = rule.hypers[name]
    value = _value(case["value"])
    good = _acceptable(h, value)
    g = torch.Generator().manual_seed(index)
    params = [torch.randn(4, 3, generator=g).requires_grad_() for _ in range(2)]
    if case["where"] == "constructor":
        try:
            opt = cls(params, **{name: value})
        except (ValueError, TypeError):
            assert not good, f"{case['spec']}: {name}={value!r} refused: {sys.exc_info()[1]}"
            return "refused"
        assert good, f"{case['spec']}: {name}={value!r} accepted"
        _grads(params, 1)
        opt.step()
        return "ok"
    opt = cls(params)
    _grads(params, 1)
    opt.step()
    if case["where"] == "group":
        opt.param_groups[0][name] = value
        _grads(params, 2)
        before = _optimizer_state(opt, params)
        try:
            opt.step()
        except (ValueError, TypeError):
            assert not good, f"{case['spec']}: a group's {name}={value!r} refused"
            _assert_unchanged(before, opt, params, "group")
            return "refused"
        assert good, f"{case['spec']}: a group's {name}={value!r} accepted by the step"
        return "ok"
    sd = copy.deepcopy(opt.state_dict())
    sd["param_groups"][0][name] = value
    step = case["step"]
    if step != "keep":
        sd["state"][sd["param_groups"][0]["params"][0]]["step"] = torch.tensor(float(step))
    good = good and (step == "keep" or (math.isfinite(float(step)) and float(step) >= 0 and float(step).is_integer()))
    fresh = [p.detach().clone().requires_grad_() for p in params]
    other = cls(fresh)
    _grads(fresh, 1)
    other.step()
    before = _optimizer_state(other, fresh)
    try:
        other.load_state_dict(sd)
    except CheckpointError:
        assert not good, f"{case['spec']}: a checkpoint with {name}={value!r}, step {step} refused"
        _assert_unchanged(before, other, fresh, "checkpoint")
        return "refused"
    assert good, f"{case['spec']}: a checkpoint with {name}={value!r}, step {step} loaded"
    return "ok"


# -- a step that fails in a later group changes nothing (and, fixed, runs as if it had never failed)
def _failing_mid_step(case: dict, folder: Path, index: int) -> str:
    import torch
    from ..compiler.backends.torch_path import TorchPathStep
    cls = _stdlib_class(case["spec"])
    n = case["groups"]

    def build(nonfinite="skip"):
        g = torch.Generator().manual_seed(index)
        ps = [torch.randn(4, 3, generator=g).requires_grad_() for _ in range(n)]
        return ps, cls([{"params": [p]} for p in ps], nonfinite=nonfinite)
    fail = case["fail"]
    params, opt = build("raise" if fail == "nonfinite" else "skip")
    ref_params, ref = build()
    if case["warm"]:
        for ps, o in ((params, opt), (ref_params, ref)):
            _grads(ps, 1)
            o.step()
    statics = [k for k, h in opt._geo.rules[0].hypers.items() if h.static]
    if fail == "static" and not statics:
        fail = "hyper"
    if fail == "init":  # a parameter the optimizer meets for the first time, in a new, last group
        for ps, o in ((params, opt), (ref_params, ref)):
            ps.append(torch.full((5, 3), 0.5).requires_grad_())
            o.add_param_group({"params": [ps[-1]]})
    last = opt.param_groups[-1]
    _grads(params, 2)
    _grads(ref_params, 2)
    before = _optimizer_state(opt, params)
    undo: Callable[[], None]
    if fail == "hyper":
        saved = last["lr"]
        last["lr"] = _value({"string": "string", "tensor nan": "tensor nan"}.get(case["value"], case["value"]))
        undo = lambda: last.__setitem__("lr", saved)  # noqa: E731
    elif fail == "static":
        saved = last[statics[0]]
        last[statics[0]] = "not a value of any static"
        undo = lambda: last.__setitem__(statics[0], saved)  # noqa: E731
    elif fail == "nonfinite":
        params[-1].grad[0, 0] = math.nan
        undo = lambda: params[-1].grad.__setitem__((0, 0), ref_params[-1].grad[0, 0])  # noqa: E731
    else:
        real = TorchPathStep.init if fail == "init" else TorchPathStep.step_group
        target = params[-1]

        def failing(self, *args):
            first = args[0][0] if fail == "kernel" else args[0]
            if first.shape == target.shape and (fail == "init" or first.data_ptr() == target.data_ptr()):
                raise RuntimeError("injected by geo fuzz")
            return real(self, *args)
        setattr(TorchPathStep, "init" if fail == "init" else "step_group", failing)
        undo = lambda: setattr(TorchPathStep, "init" if fail == "init" else "step_group", real)  # noqa: E731
    try:
        try:
            opt.step()
        except (ValueError, TypeError, FloatingPointError, RuntimeError, GeoError):
            pass
        else:
            raise AssertionError(f"the injected failure ({fail}) did not stop the step")
    finally:
        undo()
    if fail == "kernel":  # the documented limit: earlier groups ran; each parameter stays consistent
        assert torch.equal(params[-1], before[0][-1]), "the failed group's parameter changed"
        key = [k for k in before[1]["state"]][-1] if case["warm"] else None
        if key is None:
            assert params[-1] not in opt.state, "a fresh parameter of the failed group kept a state"
        return "refused"
    _assert_unchanged(before, opt, params, f"a step failing in its last group ({fail})")
    opt.step()
    ref.step()
    assert all(torch.equal(a, b) for a, b in zip(params, ref_params)), "the retried step differs from a clean one"
    return "refused"


_HOSTILE_CHECKS: dict[str, Callable[[dict, Path, int], str]] = {
    "resource-bomb": _resource_bomb, "non-regular-file": _non_regular_file, "surrogate": _surrogate,
    "symlink": _symlink, "kernel-cache": _hostile_cache, "range-violation": _range_violation,
    "failing-mid-step": _failing_mid_step}
