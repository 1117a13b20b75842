"""Diagnostics in the style of rustc.

    error[GEO0203]: `msign` needs a matrix, found `tensor[n]`
      --> stdlib/muon.geo:14:13
       |
    14 |     let o = msign(b)
       |                   ^ this has type `tensor[n]`
       |
       = note: msign maps UΣVᵀ to UVᵀ; it is defined only for matrices
    help: restrict this rule to matrix params

Every user error is a `Diagnostic` with a code (catalogued in docs/errors.md). Stages collect them in a
`DiagnosticBag`; the pipeline stops after a stage that produced errors and raises `GeoError` carrying all
of them. Compiler bugs are `InternalError`s and render differently, with a request to report them.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable

from .source import Span, escaped, printable, shown

MAX_ERRORS = 50


@dataclass(frozen=True)
class Label:
    span: Span
    text: str = ""


@dataclass
class Diagnostic:
    code: str
    message: str
    primary: Label
    secondary: list[Label] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    help: str | None = None
    severity: str = "error"

    @property
    def span(self) -> Span:
        return self.primary.span

    def render(self) -> str:
        return render(self)

    def __str__(self) -> str:
        return self.render()


class GeoError(Exception):
    """One or more user errors; `str()` renders them all."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=_position)
        super().__init__(self.render())

    def render(self) -> str:
        return render_all(self.diagnostics)


class InternalError(Exception):
    """A bug in geo itself (never the user's fault)."""

    def __init__(self, stage: str, message: str, span: Span | None = None, dump: str = ""):
        self.stage, self.span, self.dump = stage, span, dump
        text = f"internal error in {stage}: {message}"
        if span is not None and span.source.text:
            text += f"\n  --> {span.location()}"
        if dump:
            text += "\n" + dump
        text += "\n  = note: this is a bug in geo, not in your spec; please report it with the spec that triggered it"
        super().__init__(text)


class DiagnosticBag:
    """Collects diagnostics of one stage; `raise_if_errors` stops the pipeline."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def add(self, diag: Diagnostic) -> None:
        # A rule checked for several ranks meets the same error once per rank: report it once.
        key = (diag.code, diag.message, diag.span.source.name, diag.span.start, diag.span.end)
        if key in {(d.code, d.message, d.span.source.name, d.span.start, d.span.end) for d in self.items}:
            return
        if len(self.items) < MAX_ERRORS:
            self.items.append(diag)

    def error(self, code: str, message: str, span: Span, label: str = "", *, notes: Iterable[str] = (),
              help: str | None = None, secondary: Iterable[Label] = ()) -> Diagnostic:
        diag = Diagnostic(code, message, Label(span, label), list(secondary), list(notes), help)
        self.add(diag)
        return diag

    def extend(self, diags: Iterable[Diagnostic]) -> None:
        for d in diags:
            self.add(d)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_errors(self) -> None:
        if self.items:
            raise GeoError(self.items)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A `help:` text naming the closest candidate, or None."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _position(d: Diagnostic) -> tuple[str, int]:
    return d.span.source.name, d.span.start


def render_all(diags: list[Diagnostic]) -> str:
    body = "\n\n".join(render(d) for d in diags)
    n = sum(d.severity == "error" for d in diags)
    if n:
        body += f"\n\nerror: could not compile due to {n} previous error{'s' if n != 1 else ''}"
    return body


def render(d: Diagnostic) -> str:
    """Renders one diagnostic: header, location, the source lines as written, carets, notes, help. Its own text
    passes through `printable`: a message may quote a file name or a name given through the API, which can hold
    lone surrogates, and the rendering must print on any stream."""
    return printable(_render(d))


def _render(d: Diagnostic) -> str:
    span = d.span
    src = span.source
    out = [f"{d.severity}[{d.code}]: {d.message}"]
    labels = [(d.primary, "^")] + [(lab, "-") for lab in d.secondary if lab.span.source is src]
    if not src.text:  # a builtin or generated span: nothing to show
        out.append(f"  --> {escaped(src.name)}")
        gutter = 2
    else:
        line, col = src.line_col(span.start)
        lines = sorted({src.line_col(lab.span.start)[0] for lab, _ in labels})
        gutter = len(str(max(lines)))
        pad = " " * gutter
        out.append(f"{pad}--> {escaped(src.name)}:{line}:{col}")
        out.append(f"{pad} |")
        previous = None
        for ln in lines:
            if previous is not None and ln > previous + 1:
                out.append("...")
            text = shown(src.line_text(ln))
            out.append(f"{ln:>{gutter}} | {text}".rstrip())
            for lab, mark in sorted(labels, key=lambda lm: lm[0].span.start):  # left to right on a line
                if src.line_col(lab.span.start)[0] != ln:
                    continue
                start_col = src.line_col(lab.span.start)[1]
                end_line, end_col = src.line_col(lab.span.end)
                width = (end_col - start_col) if end_line == ln else len(text) - start_col + 1
                underline = _blank(text[:start_col - 1]) + mark * max(1, width)
                out.append(f"{pad} | {underline} {lab.text}".rstrip())
            previous = ln
        if d.notes or d.help:
            out.append(f"{pad} |")
    pad = " " * gutter
    for note in d.notes:
        out.append(f"{pad} = note: {note}")
    if d.help:
        out.append(f"help: {d.help}")
    return "\n".join(out)


def _blank(prefix: str) -> str:
    # The source line is shown as written, tabs included; the caret line keeps the same tabs, so a terminal
    # puts the carets under the same columns whatever its tab width.
    return "".join(ch if ch == "\t" else " " for ch in prefix)
