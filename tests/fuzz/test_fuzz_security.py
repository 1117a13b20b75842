"""A `.geo` file is data: hostile names and strings never reach generated source, never run code, never open files.

Names that are Python keywords, dunders, builtins or generated code's own names (`K`, `F`, `store`, `v0`),
and strings holding code or paths, are used in every position a spec has: optimizer, step, function, parameter,
hyperparameter, state and local names, selector patterns and static strings. The torch path generates no
source at all (it calls the operators' torch functions from the plan); the Triton kernels' source is checked
token by token in tests/triton/test_triton_security.py.
"""
from __future__ import annotations

import io
import keyword
import re
import sys
import tokenize

import pytest
import torch

import geo
from geo.compiler.backends.torch_path import TorchPathStep
from geo.compiler.spec import RESERVED_HYPERS, RESERVED_STATES
from geo.compiler.pipeline import front, specialize
from geo.dsl.source import SourceFile

HOSTILE = ["class", "lambda", "import", "None", "True", "__import__", "__builtins__", "__class__", "__init__", "exec",
           "eval", "open", "os", "sys", "globals", "K", "F", "store", "param", "hypers", "v0", "v12", "float", "init",
           "print", "yield", "self", "del", "return_", "x" * 300]
# The text between a geo string's quotes (geo escapes `\"` and `\\`): code, paths, format strings.
STRINGS = ['\\"); __import__(\\"os\\").system(\\"touch /tmp/geo-pwned\\") #', "/etc/passwd", "../../../etc/shadow",
           "{0.__class__.__mro__}", "%s%n", "\\x00\\n\\r", "keller\\\"; import os"]


def _text(role: dict[str, str], string: str, pattern: str) -> str:
    return f'''"""{string}"""
def {role["fn"]}({role["arg"]}):
    return {role["arg"]} * 0.5

step {role["step"]}({role["param"]}; {role["hyper"]} = 0.1, static {role["flag"]} = "{string}"):
    state {role["state"]} = zeros_like({role["param"]})
    let {role["local"]} = {role["fn"]}(grad)
    {role["state"]} = lerp({role["state"]}, {role["local"]}, 0.1)
    {role["param"]} = {role["param"]} - {role["hyper"]} * {role["state"]}

optimizer {role["opt"]}:
    for name "{pattern}" tensor p = {role["step"]}
    for tensor p = {role["step"]}
'''


def _spec(i: int) -> tuple[str, dict[str, str]]:
    """A spec whose every identifier is hostile (a different one per role), and a copy with plain names."""
    n = len(HOSTILE)
    role = {k: HOSTILE[(i + j) % n] for j, k in enumerate(("opt", "hyper", "state", "local", "fn", "arg", "param",
                                                              "step", "flag"))}
    if role["hyper"] in RESERVED_HYPERS:  # refused with a diagnostic (test below)
        role["hyper"] = "hyper_"
    if role["state"] in RESERVED_STATES:
        role["state"] = "state_"
    plain = dict(opt="plain_opt", hyper="lr", state="buf", local="u", fn="half", arg="z", param="W", step="plain_step",
                 flag="flag")
    string, pattern = STRINGS[i % len(STRINGS)], STRINGS[(i + 1) % len(STRINGS)]
    text = _text(role, string, pattern)
    return text, {"text": text, "clean": _text(plain, string, pattern), "opt": role["opt"]}


@pytest.mark.parametrize("i", range(len(HOSTILE)))
def test_hostile_names_and_strings_are_inert(i):
    text, info = _spec(i)
    _, checked = front(SourceFile("<spec>", text))
    opt = checked.optimizers[info["opt"]]
    for rule in opt.rules:
        statics = rule.statics()
        program = specialize(checked, rule, statics, 2, (0,))
        _COMPILED.clear()
        _RECORD[0] = True
        try:
            TorchPathStep(program)  # the torch path lowers the plan to torch calls: no Python source is compiled
        finally:
            _RECORD[0] = False
        assert not _COMPILED, _COMPILED
    results = []
    for spec_text, name in ((info["text"], info["opt"]), (info["clean"], "plain_opt")):
        for backend in ("torch", "reference"):
            w = torch.nn.Parameter(torch.linspace(-1, 1, 12).reshape(3, 4))
            o = geo.compile(spec_text, backend=backend, name=name)([("layer.weight", w)])
            for k in range(2):
                w.grad = torch.cos(torch.arange(12.0) + k).reshape(3, 4)
                o.step()
            results.append(w.detach().clone())
    assert all(torch.equal(results[0], r) for r in results[1:])  # hostile names change nothing


@pytest.mark.parametrize("name", RESERVED_HYPERS)
def test_hyperparameters_cannot_take_the_runtime_s_names(name):
    text = f"optimizer o(lr = 0.1, {name} = 0.5):\n    for tensor W:\n        W = W - lr * grad\n"
    with pytest.raises(geo.GeoError, match=rf"`{name}` is reserved by the compiled optimizer"):
        geo.compile(text)


_OPENED: list[str] = []
_COMPILED: list[str] = []
_RECORD = [False]


def _audit(event, args):
    if not _RECORD[0]:
        return
    if event in ("compile", "exec"):  # the builtins compile() and exec(): generated Python source
        _COMPILED.append(event)
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        _OPENED.append(args[0] if isinstance(args[0], str) else args[0].decode(errors="replace"))
    elif event in ("os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.remove", "os.rename",
                   "shutil.rmtree", "socket.connect"):
        _OPENED.append(f"<{event}>")


sys.addaudithook(_audit)


def _not_code(path: str) -> bool:
    return not re.search(r"\.(py|pyc|so|pth|json)$", path) and "__pycache__" not in path


def test_a_spec_never_opens_files_nor_runs_commands(tmp_path):
    """Compiling and stepping hostile specs opens no file but the spec itself and the stdlib specs it uses, and
    runs no command. (Python's audit hooks see every open, from Python or C.)"""
    spec = tmp_path / "hostile.geo"
    texts = [_spec(i)[0] for i in range(len(HOSTILE))]
    texts.append('use adamw\noptimizer o = adamw_step(weight_decay = 0.0)\n')
    # What a process reads once, before any spec: geo's grammar, lark's and torch's plugin lists (the first
    # Optimizer imports torch._dynamo, which scans installed packages' entry points).
    warm = torch.nn.Parameter(torch.ones(2))
    warm_opt = geo.compile("sgd")([warm])
    warm.grad = torch.ones(2)
    warm_opt.step()
    warm_opt.load_state_dict(warm_opt.state_dict())
    _OPENED.clear()
    _RECORD[0] = True
    try:
        for i, text in enumerate(texts):
            spec.write_text(text)
            _OPENED.clear()
            checked_opt = geo.compile(spec, name=None if i == len(texts) - 1 else _spec(i)[1]["opt"])
            w = torch.nn.Parameter(torch.ones(3, 4))
            o = checked_opt([("layer.weight", w)])
            w.grad = torch.ones(3, 4)
            o.step()
            o.load_state_dict(o.state_dict())
            opened = [p for p in _OPENED if _not_code(p)]
            allowed = {str(spec)} | {str(p) for p in (geo.dsl.loader.STDLIB).glob("*.geo")}
            assert all(p in allowed for p in opened), opened
    finally:
        _RECORD[0] = False
    assert not (tmp_path / "geo-pwned").exists()


@pytest.mark.parametrize("use", ["use ../../etc/passwd", "use /etc/passwd", 'use "adamw.geo"', "use adamw.geo",
                                 "use os.path"])
def test_use_takes_names_not_paths(use):
    with pytest.raises(geo.GeoError, match=r"GEO000[1-4]"):
        geo.compile(use + "\noptimizer o = adamw_step\n")


def test_use_of_a_missing_name_looks_only_for_a_geo_file(tmp_path):
    (tmp_path / "passwd").write_text("not a spec")
    spec = tmp_path / "main.geo"
    spec.write_text("use passwd\noptimizer o = adamw_step\n")
    with pytest.raises(geo.GeoError, match=r"cannot find the spec `passwd`"):
        geo.compile(spec)


def test_python_keywords_are_plain_names_in_geo():
    """Every Python keyword the grammar accepts as a name works as a hyperparameter, state and local name."""
    geo_keywords = {"use", "def", "step", "optimizer", "for", "state", "let", "if", "elif", "else", "repeat",
                    "return", "pass", "static", "as", "not", "and", "or"}
    names = [k for k in keyword.kwlist if k not in geo_keywords]
    body = "\n".join(f"        let {k} = grad * {i + 1}" for i, k in enumerate(names))
    total = " + ".join(names)
    text = f"optimizer kw(lr = 0.01):\n    for tensor W:\n{body}\n        W = W - lr * ({total})\n"
    w = torch.nn.Parameter(torch.zeros(3))
    o = geo.compile(text)([w])
    w.grad = torch.ones(3)
    o.step()
    n = len(names)
    assert torch.allclose(w.detach(), torch.full((3,), -0.01 * n * (n + 1) / 2))


@pytest.mark.parametrize("name", ["param", "step"])
def test_state_names_the_runtime_keeps_are_refused(name):
    """`state param` overwrote the step's new parameter value in the IR's outputs, and `state step` the
    optimizer's step count: both are refused by the checker now."""
    text = f"optimizer o(lr = 0.1):\n    for tensor W:\n        state {name} = zeros_like(W)\n        W = W - lr * grad\n"
    with pytest.raises(geo.GeoError, match=rf"`{name}` cannot name a state"):
        geo.compile(text)


def test_no_spec_text_reaches_emitted_text_unescaped():
    """Every character class the lexer refuses raw, and code payloads, spelled as escapes in every string
    position (glob, static default, compared string, three docstrings, the file name), through every `--emit`
    stage: no raw control character comes out, and importing the emitted Triton module does nothing (issue 14)."""
    from geo.fuzz.emitted import cases, fuzz_emitted
    out = fuzz_emitted()
    assert out.ok, "\n".join(f.render() for f in out.failures)
    assert out.examples == len(cases()) * 6 >= 80 * 6


def test_the_sandbox_sees_what_a_planted_payload_does():
    """The check can fail: a payload after a raw CR (the original injection), a socket, a file written."""
    from geo.fuzz.emitted import run_sandboxed
    events = run_sandboxed(["# header\rimport os; os.system('true')\n", "import socket\nsocket.socket()\n",
                            "open('planted.txt', 'w').close()\n", "x = 1\n"])
    assert events[0] == ["os.system"] and events[1] and events[2] and events[3] == []
