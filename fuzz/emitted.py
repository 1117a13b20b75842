"""Emitted-text injection: no spec text reaches what geo prints or generates unescaped (issue 14).

A raw carriage return inside a `name "…"` glob once reached the header comment of `geo compile --emit triton`
output; Python reads CR as a line break, so running the emitted file ran what followed it. The lexer now
refuses raw control characters everywhere (GEO0002), but a string may still spell one as an escape ("\\r"), and
its value travels through the compiler. This engine puts every character class the lexer refuses, and code
meant to escape a comment or a string, into every string position a spec has — a name glob, a static string's
default, a string compared in a condition, the docstrings of the file, of a rule block and of a body, and the
file's own name — then prints every `--emit` stage and checks that

- no stage holds a raw character of `dsl.source.FORBIDDEN` (Python would read CR, a terminal would obey the
  bidi controls), and
- the `triton` stage, which is Python, does nothing when it is imported: a sandboxed subprocess imports each
  emitted module under an audit hook that records every file opened (but the module's own), every process,
  socket and file-system change. A planted payload is caught by the same check (its test).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..compiler.pipeline import STAGES, emit
from ..dsl.diagnostics import GeoError
from ..dsl.source import FORBIDDEN, SourceFile, escaped
from .report import Failure, Outcome

# Escapes (as written inside a geo string) of one character of every class the lexer refuses raw, and payloads
# that would run code if a printer wrote them unescaped into a comment or a string of generated Python.
CHARACTERS = ("\\r", "\\n", "\\t", "\\x00", "\\x07", "\\x0b", "\\x0c", "\\x1b", "\\x7f", "\\x85", "\\x9b",
              "\\u2028", "\\u2029", "\\u202e", "\\u2066", "\\u200f", "\\u061c")
PAYLOADS = ('\\rimport os; os.system(\\"echo geo-pwned\\")  #', '\\n__import__(\\"os\\").system(\\"true\\")\\n#',
            '\\u2028import socket; socket.socket()', '\\"); open(\\"/tmp/geo-pwned\\", \\"w\\")  #',
            '\\\\\\r\\\\nexec(\\"1\\")')

_SPEC = '''"""File {doc}."""
step s(W; lr = 0.1, static flag = "a{glob}b"):
    """Body {doc}."""
    let u = grad if flag == "x{cmp}y" else grad * 2
    W = W - lr * u

optimizer o:
    """Rules {doc}."""
    for name "la{glob}yer*" tensor W = s
    for tensor W = s
'''
POSITIONS = ("glob", "cmp", "doc", "file name")


def spec_for(position: str, payload: str) -> SourceFile:
    """The spec with `payload` (geo string text) in one position and plain text in the others."""
    fill = {"glob": "", "cmp": "", "doc": ""}
    if position in fill:
        fill[position] = payload
    text = _SPEC.format(**fill)
    name = "spec.geo" if position != "file name" else "spec" + payload.encode().decode("unicode_escape") + ".geo"
    return SourceFile(name, text)


def cases() -> list[tuple[str, str]]:
    """Every (position, payload) pair: each character class and each payload in each position."""
    return [(pos, p) for pos in POSITIONS for p in CHARACTERS + PAYLOADS]


def emitted(source: SourceFile) -> dict[str, str]:
    """The text of every stage (a stage that refuses the spec gives its rendered diagnostics, which must be as
    clean as any output)."""
    out = {}
    for stage in STAGES:
        try:
            out[stage] = emit(source, stage)
        except GeoError as err:
            out[stage] = err.render()
    return out


# Imports each module named on the command line under an audit hook, after the imports the emitted source makes
# are loaded, and prints what happened beyond reading the module itself, as JSON.
_SANDBOX = r'''
import importlib.util, json, os, sys
sys.dont_write_bytecode = True
import inspect, linecache, triton, triton.language
from geo.compiler.backends.triton import device
WATCHED = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.kill", "subprocess.Popen",
           "socket.", "os.remove", "os.unlink", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "shutil.",
           "ctypes.", "webbrowser.", "urllib.", "http.", "builtins.input")
current = [None]
events = {}
def hook(event, args):
    path = current[0]
    if path is None:
        return
    if event == "open":
        target = args[0]
        if isinstance(target, int):
            return
        allowed = (path, importlib.util.cache_from_source(path))  # the module, and the bytecode import looks for
        if os.fsdecode(target) not in allowed or (args[1] and any(m in str(args[1]) for m in "wax+")):
            events[path].append(f"open {os.fsdecode(target)!r} {args[1]!r}")
    elif event.startswith(WATCHED):
        events[path].append(event)
sys.addaudithook(hook)
for path in sys.argv[1:]:
    events[path] = []
    current[0] = path
    try:
        spec = importlib.util.spec_from_file_location("geo_emitted_" + str(len(events)), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except BaseException as err:
        events[path].append(f"raised {type(err).__name__}: {err}")
    finally:
        current[0] = None
print(json.dumps(events))
'''


def run_sandboxed(sources: list[str], timeout: float = 300.0) -> list[list[str]]:
    """What importing each Python source did beyond reading itself (an empty list: nothing), in a subprocess."""
    with tempfile.TemporaryDirectory(prefix="geo-emitted-") as tmp:
        paths = []
        for i, text in enumerate(sources):
            path = Path(tmp) / f"emitted_{i}.py"
            path.write_text(text, encoding="utf-8")
            paths.append(str(path))
        done = subprocess.run([sys.executable, "-c", _SANDBOX, *paths], capture_output=True, text=True,
                              timeout=timeout, cwd=tmp, env={**os.environ, "TRITON_INTERPRET": "1"})
        if done.returncode != 0:
            raise RuntimeError(f"the sandbox failed: {done.stderr[-2000:]}")
        events = json.loads(done.stdout.strip().splitlines()[-1])
        return [events[p] for p in paths]


def fuzz_emitted() -> Outcome:
    """Every position × character class and payload through every `--emit` stage; the Triton stages imported in
    the sandbox. Deterministic: the whole product, no sampling."""
    out = Outcome("<emitted text>")
    start = time.perf_counter()
    triton_sources, origins = [], []
    for position, payload in cases():
        texts = emitted(spec_for(position, payload))
        for stage, text in texts.items():
            found = FORBIDDEN.search(text)
            if found:
                out.failures.append(_failure(position, payload, stage,
                                             f"the raw character U+{ord(found.group()[0]):04X} is in the output",
                                             text))
        if not texts["triton"].startswith("error"):
            triton_sources.append(texts["triton"])
            origins.append((position, payload))
    for (position, payload), events in zip(origins, run_sandboxed(triton_sources)):
        if events:
            out.failures.append(_failure(position, payload, "triton", "importing the emitted module did: "
                                         + "; ".join(events[:5]), ""))
    out.checks.append(("emitted text", "every stage clean, Triton inert", len(cases()) * len(STAGES),
                       time.perf_counter() - start))
    return out


def _failure(position: str, payload: str, stage: str, what: str, text: str) -> Failure:
    return Failure("<emitted text>", "emitted", f"--emit {stage}", what, [f"{position}: {payload}"],
                   "no raw control character, no effect", what, escaped(text[:400]), spec_for(position, payload).text)
