"""Hostile spec text for the front-end robustness campaign: a grammar-aware generator and mutations.

`SpecGenerator` writes specs the way the grammar shapes them (declarations, selectors, views,
hyperparameters, statements, operator expressions), half of them well-typed so that they reach code
generation and a step, with names that mean something to Python or to generated code (`__import__`, `K`,
`store`) and strings that would escape a careless quoting. `mutate_text` works on lines and tokens,
`mutate_bytes` on the bytes of a file (invalid UTF-8, nesting thousands deep, numbers past every range).
"""
from __future__ import annotations

import re
from typing import Sequence

from ..compiler import binding as P
from ..compiler.ops import registry
from ..dsl.loader import STDLIB
from ..dsl.syntax_errors import KEYWORDS
from .draw import Draw
from .expressions import PARAM_FORMS, ExpressionGenerator


HOSTILE_NAMES = ("__import__", "__builtins__", "__class__", "__init__", "__dict__", "class", "import", "lambda",
                 "None", "True", "False", "exec", "eval", "open", "os", "sys", "globals", "K", "F", "store", "param",
                 "hypers", "state", "v0", "v1", "float", "print", "del", "yield", "await", "self", "params",
                 "geo_rule", "param_names", "step", "defaults", "x" * 200)
HOSTILE_STRINGS = ('"); import os; os.system("echo pwned") #', "\\n__import__('os')", "{0.__class__}", "%s%s%n",
                   "../../../../etc/passwd", "/dev/zero", "\\x00", "\\u202e", "a" * 500, "keller\\\"", "'''", "\\\\")
_NORMAL_NAMES = ("W", "p", "m", "v", "x", "y", "buf", "lr", "beta", "eps", "momentum", "wd", "u", "g", "d", "h")
_NUMBERS = ("0", "1", "2", "0.5", "1e-8", "1e308", "1e999", "9" * 40, ".5", "5.", "0e0", "1e-320", "3", "1000", "1001",
            "0.999", "100000")
_TOKENS = ("(", ")", "[", "]", ":", ",", "=", "==", "+", "-", "*", "/", "@", "^", "**", ".", ".T", "∘", ">>", ";",
           "#", '"', '"""', "\n", "\t", "    ", "\r\n", "\\", "'", "{", "}", "?", "!", "$", "\x00", "\ufeff", "é", "∑",
           "if", "else", "not", "static", "as", "for", "repeat", "state", "let", "return")


def stdlib_texts() -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted(STDLIB.glob("*.geo"))}


class SpecGenerator:
    """Grammar-aware random specs: mostly well-formed declarations with random names, selectors, views,
    hyperparameters, statements and operator expressions; hostile names and strings mixed in."""

    def __init__(self, draw: Draw):
        self.d = draw
        self.indent = draw.choice(("    ", "    ", "  ", "\t"))

    def name(self) -> str:
        d = self.d
        r = d.int(0, 99)
        if r < 55:
            return d.choice(_NORMAL_NAMES)
        if r < 70:
            return d.choice(HOSTILE_NAMES)
        if r < 80:
            return d.choice(KEYWORDS)
        if r < 92:
            return d.choice(registry.names())
        return "n" + str(d.int(0, 999))

    def string(self) -> str:
        d = self.d
        if d.bool(0.6):
            return '"' + d.choice(("keller", "polar_express", "sso8", "spectral", "rms_rms", "bf16", "fp32", "svd", "ns",
                                   "l2_ball", "stiefel", "hypentropy", "code", "paper", "*.weight", "embed*")) + '"'
        return '"' + d.choice(HOSTILE_STRINGS) + '"'

    def literal(self) -> str:
        d = self.d
        r = d.int(0, 9)
        if r < 6:
            return d.choice(_NUMBERS)
        if r < 7:
            return d.choice(("true", "false"))
        if r < 9:
            return self.string()
        return "(" + ", ".join(d.choice(_NUMBERS) for _ in range(d.int(1, 3))) + ")"

    def expr(self, depth: int = 0) -> str:
        d = self.d
        if depth > 3 or d.bool(0.3):
            return self.name() if d.bool(0.6) else self.literal()
        r = d.int(0, 9)
        if r < 4:
            args = [self.expr(depth + 1) for _ in range(d.int(0, 3))]
            if d.bool(0.3):
                args.append(f"{self.name()} = {self.expr(depth + 1)}")
            return f"{d.choice(registry.names()) if d.bool(0.8) else self.name()}({', '.join(args)})"
        if r < 7:
            op = d.choice(("+", "-", "*", "/", "@", "^", "**", "==", "<", ">=", "and", "or"))
            return f"{self.expr(depth + 1)} {op} {self.expr(depth + 1)}"
        if r < 8:
            return f"{self.expr(depth + 1)} if {self.expr(depth + 1)} else {self.expr(depth + 1)}"
        if r < 9:
            return f"({self.expr(depth + 1)})" + d.choice(("", ".T", "[0]", "[1]", ".x"))
        return d.choice(("-", "not ")) + self.expr(depth + 1)

    def typed_expr(self, form: str = "matrix") -> str:
        return ExpressionGenerator(self.d, PARAM_FORMS[form][1], max_depth=2).expr("T")

    def hypers(self) -> str:
        d = self.d
        out = []
        for _ in range(d.int(0, 4)):
            static = "static " if d.bool(0.25) else ""
            value = f" = {self.literal() if d.bool(0.8) else self.expr(2)}" if d.bool(0.85) else ""
            out.append(f"{static}{self.name() if d.bool(0.5) else d.choice(('lr', 'beta', 'eps', 'momentum'))}{value}")
        return ", ".join(out)

    def binder(self) -> str:
        d = self.d
        words = []
        for _ in range(d.int(0, 2)):
            r = d.int(0, 9)
            if r < 6:
                words.append(d.choice(tuple(P.SELECTORS)))
            elif r < 7:
                words.append(f'name {self.string()}')
            elif r < 8:
                words.append("not " + d.choice(tuple(P.SELECTORS)))
            else:
                words.append(self.name())
        view = ""
        if d.bool(0.15):
            view = " as " + d.choice(("matrix", "batch", f"heads({d.choice(_NUMBERS)})", f"split({d.int(0, 4)})",
                                      self.name()))
        return " ".join(words + [d.choice(("W", "W", "p", self.name()))]) + view

    def body(self, level: int, param: str = "W", form: str = "matrix") -> list[str]:
        d = self.d
        pad = self.indent * level
        lines = []
        if d.bool(0.1):
            lines.append(f'{pad}"""a docstring {d.choice(HOSTILE_STRINGS)}"""')
        if d.bool(0.6):
            dtype = (": " + d.choice(("bf16", "fp32", "fp64", "fp16", "int8", self.name()))) if d.bool(0.2) else ""
            lines.append(f"{pad}state {d.choice(('m', 'buf', self.name()))}{dtype} = "
                         f"{d.choice(('zeros_like', 'ones_like', 'right_init'))}({param})" if d.bool(0.8)
                         else f"{pad}state {self.name()} = {self.literal()}")
        for _ in range(d.int(1, 4)):
            r = d.int(0, 9)
            if r < 3:
                lines.append(f"{pad}let {self.name()} = {self.typed_expr(form) if d.bool(0.5) else self.expr()}")
            elif r < 6:
                target = d.choice((param, param, "m", self.name()))
                value = f"{param} - lr * {self.typed_expr(form)}" if d.bool(0.6) else self.expr()
                lines.append(f"{pad}{target} = {value}")
            elif r < 7 and level < 5:
                lines.append(f"{pad}if {self.expr(2)}:")
                lines += self.body(level + 1, param, form)
                if d.bool(0.4):
                    lines.append(f"{pad}else:")
                    lines += self.body(level + 1, param, form)
            elif r < 8 and level < 5:
                lines.append(f"{pad}repeat {d.choice(('2', '3', '0', '1001', 'n', self.literal()))}"
                             + (f" as {self.name()}" if d.bool(0.3) else "") + ":")
                lines += self.body(level + 1, param, form)
            elif r < 9:
                lines.append(f"{pad}return {self.expr()}")
            else:
                lines.append(f"{pad}pass")
        return lines

    def stepexpr(self, names: list[str]) -> str:
        d = self.d
        parts = []
        for _ in range(d.int(1, 3)):
            n = d.choice(names) if names and d.bool(0.8) else self.name()
            if d.bool(0.3):
                n += f"({self.name()} = {self.literal()})"
            parts.append(n)
        return d.choice((" ∘ ", " >> ")).join(parts)

    def legal_name(self) -> str:
        """A name the grammar accepts, often one that means something to Python or to the generated code."""
        d = self.d
        pool = [n for n in HOSTILE_NAMES if n not in KEYWORDS] + ["m2", "acc", "z"]
        return d.choice(pool) if d.bool(0.5) else d.choice(("u", "g", "d", "h", "y", "acc"))

    def valid_spec(self) -> str:
        """A spec that should check: one optimizer whose rules update W by random well-typed expressions,
        with hostile (but legal) names for hyperparameters, states and locals."""
        d = self.d
        i1, i2, i3 = self.indent, self.indent * 2, self.indent * 3
        taken = {"lr", "beta", "W", "grad", "t", "m", "flag", "k"}
        extra = self.legal_name()
        extra = extra if extra not in taken else "z"
        taken.add(extra)
        state = self.legal_name()
        state = state if state not in taken else "acc_"
        taken.add(state)
        lines = [f"optimizer {d.choice(('fuzzed', 'spec', 'lambda_', 'class_'))}(lr = 0.01, beta = 0.9, "
                 f"{extra} = {d.choice(('0.5', '2.0', '1e-3'))}, static flag = {d.choice(('true', 'false'))}):"]
        used_forms = []
        for _ in range(d.int(1, 2)):
            form = d.choice(tuple(f for f in ("matrix", "vector", "stack") if f not in used_forms))
            used_forms.append(form)
            binder = {"matrix": "matrix W", "vector": "vector W", "stack": "stack W as batch"}[form]
            lines.append(f"{i1}for {binder}:")
            lines.append(f"{i2}state m = zeros_like(W)")
            lines.append(f"{i2}state {state}{d.choice(('', ': bf16', ': fp64'))} = zeros_like(W)")
            lines.append(f"{i2}m = lerp(m, grad, 1 - beta)")
            lines.append(f"{i2}{state} = {state} * beta + {extra} * grad")
            local = self.legal_name()
            local = local if local not in taken else "u_"
            lines.append(f"{i2}let {local} = {self.typed_expr(form)}")
            if d.bool(0.4):
                lines.append(f"{i2}if flag:")
                lines.append(f"{i3}{local} = {local} + {self.typed_expr(form)}")
            if d.bool(0.3):
                lines.append(f"{i2}repeat {d.int(0, 3)} as k:")
                lines.append(f"{i3}{local} = lerp({local}, {self.typed_expr(form)}, 0.5)")
            lines.append(f"{i2}W = W - lr * {local}")
        return "\n".join(lines) + "\n"

    def spec(self) -> str:
        d = self.d
        if d.bool(0.5):
            text = self.valid_spec()
            return mutate_text(d, text) if d.bool(0.2) else text
        lines: list[str] = []
        if d.bool(0.3):
            lines.append('"""A generated spec."""')
        if d.bool(0.3):
            lines.append("use " + ", ".join(d.choice(list(stdlib_texts()) + [self.name()]) for _ in range(d.int(1, 2))))
        steps: list[str] = []
        for _ in range(d.int(0, 2)):
            fname = self.name()
            params = ", ".join(self.name() for _ in range(d.int(0, 2)))
            lines.append(f"def {fname}({params}):")
            lines += self.body(1, "x")[:-1] or [self.indent + "pass"]
            lines.append(f"{self.indent}return {self.expr()}")
        for _ in range(d.int(0, 2)):
            sname = d.choice(("a_step", "b_step", self.name()))
            steps.append(sname)
            form = d.choice(("matrix", "vector"))
            lines.append(f"step {sname}({form if d.bool(0.5) else ''} W; {self.hypers() or 'lr = 0.1'}):")
            lines += self.body(1, "W", form)
        for _ in range(d.int(1, 2)):
            head = f"optimizer {d.choice(('opt', 'fuzzed', self.name()))}"
            if d.bool(0.8):
                head += f"({self.hypers() or 'lr = 0.01'})"
            if steps and d.bool(0.3):
                lines.append(f"{head} = {self.stepexpr(steps)}")
                continue
            lines.append(head + ":")
            for _ in range(d.int(1, 3)):
                if steps and d.bool(0.3):
                    lines.append(f"{self.indent}for {self.binder()} = {self.stepexpr(steps + ['adamw', 'muon', 'sgd'])}")
                else:
                    form = d.choice(("matrix", "vector"))
                    lines.append(f"{self.indent}for {form if d.bool(0.7) else self.binder()} W:")
                    lines += self.body(2, "W", form)
        text = "\n".join(lines) + ("\n" if d.bool(0.9) else "")
        if d.bool(0.3):
            text = mutate_text(d, text)
        return text


def mutate_text(d: Draw, text: str) -> str:
    """Token- and line-level mutations: delete, duplicate or swap lines, re-indent, insert or drop a token."""
    lines = text.split("\n")
    for _ in range(d.int(1, 3)):
        if not lines:
            break
        i = d.int(0, len(lines) - 1)
        r = d.int(0, 6)
        if r == 0:
            del lines[i]
        elif r == 1:
            lines.insert(i, lines[i])
        elif r == 2:
            j = d.int(0, len(lines) - 1)
            lines[i], lines[j] = lines[j], lines[i]
        elif r == 3:
            lines[i] = d.choice(("", " ", "\t", "  ", "        ")) + lines[i].lstrip(" \t")
        elif r == 4:
            k = d.int(0, len(lines[i]))
            lines[i] = lines[i][:k] + d.choice(_TOKENS) + lines[i][k:]
        elif r == 5 and lines[i]:
            k = d.int(0, len(lines[i]) - 1)
            lines[i] = lines[i][:k] + lines[i][k + d.int(1, 6):]
        else:
            lines[i] = lines[i] + " " + d.choice(_TOKENS + KEYWORDS)
    return "\n".join(lines)


def mutate_bytes(d: Draw, data: bytes, others: Sequence[bytes] = ()) -> bytes:
    """Byte-level mutations of a file: bit flips, byte edits, inserted tokens and edge numbers, deleted,
    duplicated and spliced ranges, deep nesting."""
    b = bytearray(data)
    for _ in range(d.int(1, 4)):
        n = len(b)
        i = d.int(0, n) if n else 0
        r = d.int(0, 10)
        if r == 0 and n:
            j = min(i, n - 1)
            b[j] ^= 1 << d.int(0, 7)
        elif r == 1 and n:
            b[min(i, n - 1)] = d.int(0, 255)
        elif r == 2:
            b[i:i] = d.choice(_TOKENS + KEYWORDS + _NUMBERS + HOSTILE_NAMES).encode("utf-8")
        elif r == 3 and n:
            del b[i:i + d.int(1, 24)]
        elif r == 4 and n:
            j = min(n, i + d.int(1, 80))
            b[j:j] = b[i:j]
        elif r == 5 and others:
            src = d.choice(tuple(others))
            if src:
                k = d.int(0, len(src) - 1)
                b[i:i] = src[k:k + d.int(1, 200)]
        elif r == 6:
            depth = d.choice((50, 99, 100, 101, 300, 2000))
            b[i:i] = (b"(" * depth + b"1" + b")" * depth) if d.bool() else (b"-" * depth + b"1")
        elif r == 7:
            numbers = list(re.finditer(rb"\d+(\.\d*)?([eE][+-]?\d+)?", bytes(b)))
            if numbers:
                m = d.choice(numbers)
                b[m.start():m.end()] = d.choice(_NUMBERS).encode()
        elif r == 8:
            names = list(re.finditer(rb"[A-Za-z_]\w*", bytes(b)))
            if names:
                m = d.choice(names)
                b[m.start():m.end()] = d.choice(HOSTILE_NAMES + KEYWORDS + tuple(registry.names())).encode()
        elif r == 9:
            b[i:i] = d.choice((b"\xff", b"\xc3", b"\xe2\x88", b"\x00", b"\r", b"\xef\xbb\xbf", b"\x80\x80"))
        else:
            lines = bytes(b).split(b"\n")
            if len(lines) > 2:
                k = d.int(0, len(lines) - 2)
                lines[k], lines[k + 1] = lines[k + 1], lines[k]
                b = bytearray(b"\n".join(lines))
    return bytes(b)


# ---- hostile cases: what is not spec text, or not only (issue 16) --------------------------------------------
# Each class is a scenario the robustness campaign builds and runs (`hostile.check_hostile`): files and links
# on disk, states of the kernel cache, values given through the API, failures injected into a step. A case is a
# JSON-able dict, so a failing one is reported and reproduced from its index alone.
HOSTILE_CLASSES = ("resource-bomb", "non-regular-file", "surrogate", "symlink", "kernel-cache", "range-violation",
                   "failing-mid-step")
RANGE_SPECS = ("sgd", "adamw", "lion", "signum", "muon", "normuon", "adamuon")
_SURROGATES = ("\udcff", "\udc80", "\ud800", "\udfff")


def hostile_case(d: Draw, kind: str | None = None) -> dict:
    """One hostile scenario: its class and what the class needs, drawn."""
    kind = kind or d.choice(HOSTILE_CLASSES)
    return {"class": kind, **_HOSTILE[kind](d)}


def _resource_bomb(d: Draw) -> dict:
    head = "optimizer o(lr = 0.1{}):\n    for tensor W:\n"
    tail = "        W = W - lr * grad\n"
    n = d.choice((10, 99_999, 100_000, 100_001, 1_000_000_000, 2 ** 64))
    r = d.int(0, 11)
    if r == 0:
        return {"text": head.format(f', static k = "{d.choice(("a", "ab", ""))}" * {n} == "b"') + tail}
    if r == 1:
        return {"text": head.format(f", static k = (({d.choice(('1, 2', '0,', '1, 2, 3'))}) * {n})[0]") + tail}
    if r == 2:
        return {"text": head.format(', static s = "ab"') + f"        let x = s\n        repeat {d.choice((5, 16, 17, 40))}:\n"
                "            x = x + x\n" + tail}
    if r == 3:
        return {"text": head.format("") + f'        let x = "a" * 99999\n        repeat {d.choice((50, 101, 400))} as i:\n'
                '            let y = x + "c"\n' + tail}
    if r == 4:
        size = d.choice((1_000, 100_000, 300_000))
        literal = d.choice(("a" * size, "\\n" * (size // 2), "\\\\" * (size // 2), '\\"' * (size // 2)))
        return {"text": head.format(f', static s = "{literal}"') + tail}
    if r == 5:
        size = d.choice((1_000, 300_000))
        return {"text": d.choice(('"""' + '"a' * (size // 2) + '"""\n', "#" + "x" * size + "\n")) + head.format("") + tail}
    if r == 6:
        base, exponent = d.choice((("(-1)", "0.5"), ("(-8.0)", "(1 / 3)"), ("-2", "0.5"), ("(-0.5)", "1.5")))
        return {"text": head.format(f", static k = {base} ^ {exponent}") + tail}
    if r == 7:
        return {"text": head.format(f", static k = bias_correction({d.choice(('-2', '-0.5', '2'))}, "
                                    f"{d.choice(('0.5', '1.5', '3'))})") + tail}
    if r == 8:
        return {"use_chain": d.choice((3, 64, 65, 300))}
    if r == 9:
        return {"optimizer_chain": d.choice((10, 64, 65, 500))}
    if r == 10:
        return {"text": head.format(", static k = " + " ^ ".join(["2"] * d.int(3, 8))) + tail}
    return {"oversized": d.choice(("file", "text")), "extra": d.int(0, 64)}


def _non_regular_file(d: Draw) -> dict:
    return {"target": d.choice(("fifo", "directory", "/dev/zero", "/dev/urandom", "/dev/null", "link to /dev/zero",
                                "sparse 2 MiB", "socket")),
            "via": d.choice(("path", "use"))}


def _surrogate(d: Draw) -> dict:
    return {"where": d.choice(("file name", "spec escape", "spec raw", "keyword", "param name", "route",
                               "optimizer name", "used name")),
            "char": d.choice(_SURROGATES)}


def _symlink(d: Draw) -> dict:
    return {"link": d.choice(("secret outside", "spec outside", "spec beside", "dangling", "to a folder",
                              "link to a link beside", "link to a link outside", "secret beside without .geo"))}


def _hostile_cache(d: Draw) -> dict:
    return {"folder": d.choice(("sound", "sound", "triton is a file", "uncreatable", "world-writable",
                                "group-writable", "another user's")),
            "entry": d.choice(("none", "sound", "directory", "fifo", "symlink", "unkeyed plant", "keyed plant",
                               "garbage", "huge", "truncated", "group-writable")),
            "key": d.choice(("none", "sound", "directory", "short", "group-readable", "symlink", "fifo")),
            "damage_after_load": d.bool(0.3)}


def _range_violation(d: Draw) -> dict:
    where = d.choice(("constructor", "group", "checkpoint", "spec"))
    if where == "spec":
        lo, hi = d.choice(("0", "-1", "0.5", "1", "-inf", "inf")), d.choice(("0", "1", "0.5", "2", "inf", "-1"))
        return {"where": where, "default": d.choice(("0", "0.5", "1", "-0.1", "2", "1e308")), "lo": lo, "hi": hi,
                "lo_closed": d.bool(), "hi_closed": d.bool()}
    value = d.choice(("-1", "-1e-12", "0", "0.5", "0.999", "1", "2", "nan", "inf", "-inf", "1e308", "tensor nan",
                      "tensor -1", "tensor 0.5", "tensor 2 elements", "string", "bool", "none", "huge int",
                      "pair", "pair with nan", "pair with 1", "pair too long"))
    return {"where": where, "spec": d.choice(RANGE_SPECS), "pick": d.int(0, 99), "value": value,
            "step": d.choice(("keep", "nan", "-5", "1.5", "inf", "3")) if where == "checkpoint" else "keep"}


def _failing_mid_step(d: Draw) -> dict:
    return {"spec": d.choice(("sgd", "adamw", "lion", "muon")), "groups": d.int(2, 3),
            "fail": d.choice(("hyper", "init", "static", "nonfinite", "kernel")), "warm": d.bool(),
            "value": d.choice(("-1", "nan", "string", "tensor nan"))}


_HOSTILE = {"resource-bomb": _resource_bomb, "non-regular-file": _non_regular_file, "surrogate": _surrogate,
            "symlink": _symlink, "kernel-cache": _hostile_cache, "range-violation": _range_violation,
            "failing-mid-step": _failing_mid_step}
