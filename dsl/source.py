"""Source files and spans.

A `Span` is born in the lexer (a byte range of one `SourceFile`) and travels with every AST node, IR node
and kernel, so a diagnostic raised at any stage can point at the `.geo` text as the user wrote it.
Line and column are computed on demand from a line-start index.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field


# The largest spec geo reads (bytes of a file, characters of spec text given inline): the stdlib's are under 5 kB;
# a megabyte is far more than any spec needs, and bounds what the lexer, the parser and the checker are given.
MAX_SPEC_BYTES = 1 << 20


@dataclass(eq=False)
class SourceFile:
    """The text of one `.geo` file (or of spec text given inline) and an index of its line starts."""

    name: str
    text: str
    # The optimizer a stdlib name reached (`geo.compile("muon_conv")` reads stdlib/muon.geo and means the optimizer
    # `muon_conv` in it); None: the spec's only optimizer, or the one named like the file.
    entry: str | None = None
    line_starts: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.line_starts = [0] + [i + 1 for i, ch in enumerate(self.text) if ch == "\n"]

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset (clamped into the file)."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.line_starts, offset) - 1
        return line + 1, offset - self.line_starts[line] + 1

    def line_text(self, line: int) -> str:
        """The 1-based line exactly as written, without its line break (`\n` or `\r\n`)."""
        start = self.line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end - (self.text[end - 1:end] == "\r")]

    @property
    def line_count(self) -> int:
        return len(self.line_starts)


@dataclass(frozen=True, eq=False)
class Span:
    """A half-open character range [start, end) of one source file."""

    source: SourceFile
    start: int
    end: int

    def __post_init__(self) -> None:
        n = len(self.source.text)
        object.__setattr__(self, "start", max(0, min(self.start, n)))
        object.__setattr__(self, "end", max(self.start, min(self.end, n)))

    @property
    def text(self) -> str:
        return self.source.text[self.start:self.end]

    def to(self, other: "Span") -> "Span":
        """The span covering both self and `other` (same file)."""
        return Span(self.source, min(self.start, other.start), max(self.end, other.end))

    def head(self) -> "Span":
        """The first line of a declaration without its trailing comment: what a label on a whole `optimizer`,
        `step` or `def` points at, rather than its entire body."""
        text = self.text
        end = text.find("\n")
        end = self.start + (end if end >= 0 else len(text))
        return Span(self.source, self.start, code_end(self.source.text, self.start, end))

    def location(self) -> str:
        line, col = self.source.line_col(self.start)
        return f"{self.source.name}:{line}:{col}"

    def __repr__(self) -> str:
        return f"Span({self.location()})"


def docstring_end(text: str, start: int, end: int | None = None) -> int:
    """The offset just past the three double quotes that close the docstring opened at `start`, or -1 if it is
    not closed before `end`. A backslash escapes the next character, so an escaped quote does not close it."""
    end = len(text) if end is None else end
    i = start + 3
    while i < end:
        if text[i] == "\\":
            i += 2
        elif text.startswith('"""', i) and i + 3 <= end:
            return i + 3
        else:
            i += 1
    return -1


def code_end(text: str, start: int, end: int) -> int:
    """The end of the last code character in text[start:end]: no trailing newline, indentation or comment."""
    last = start
    i = start
    while i < end:
        ch = text[i]
        if text.startswith('"""', i):
            close = docstring_end(text, i, end)
            i = end if close < 0 else close
            last = i
            continue
        if ch == '"':
            i += 1
            while i < end and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
            last = min(i + 1, end)
        elif ch == "#":
            while i < end and text[i] != "\n":
                i += 1
            continue
        elif not ch.isspace():
            last = i + 1
        i += 1
    return last


def builtin_span(what: str = "<builtin>") -> Span:
    """A span for things with no user-written text (builtins, generated nodes)."""
    return Span(SourceFile(what, ""), 0, 0)


# Characters a spec may not hold raw anywhere, in strings, docstrings and comments too: the C0 and C1 controls and
# DEL but tab and line breaks, a CR not followed by LF (Python reads a lone CR as a line break, so one inside a
# `name "…"` glob would end a comment of generated source and start code), the line and paragraph separators,
# the bidirectional controls that make text display in another order than it runs (Trojan Source), and lone
# surrogates (not text: they cannot even be printed). A string spells any of them as an escape: "\r", "\u2028".
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                       "\u2066-\u2069\ud800-\udfff]|\r(?!\n)")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                          "\ud800-\udfff]")


def shown(line: str) -> str:
    """A source line as a diagnostic shows it: every unprintable character but tab becomes one visible stand-in
    (a control picture such as ␍, else U+FFFD), so the terminal neither obeys it nor moves the carets' columns."""
    return _UNPRINTABLE.sub(lambda m: m.group() if m.group() == "\t" else
                            chr(0x2400 + ord(m.group())) if ord(m.group()) < 0x20 else
                            "\u2421" if m.group() == "\x7f" else "\ufffd", line)


_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """Text that any terminal or UTF-8 stream can take: each lone surrogate (a file name's undecodable byte, a
    `\\ud800` escape) written as its `\\udcff` escape, everything else as it is. Diagnostics pass their own
    text through it: a message quotes file names and names given through the API, and printing a surrogate
    raises UnicodeEncodeError."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def escaped(text: str) -> str:
    """Spec-derived text as generated text may hold it: every unprintable character (tab and newline included)
    written as its Python escape, so that no spec text can start a line, end a comment or hide itself in
    what `geo compile --emit` prints or a backend generates."""
    return "".join(ch if ch.isprintable() and not _UNPRINTABLE.match(ch) else
                   repr(ch)[1:-1] if not "\ud800" <= ch <= "\udfff" else f"\\u{ord(ch):04x}" for ch in text)
