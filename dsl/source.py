"""Source files and spans.

A `Span` is born in the lexer (a byte range of one `SourceFile`) and travels with every AST node, IR node
and kernel, so a diagnostic raised at any stage can point at the `.geo` text as the user wrote it.
Line and column are computed on demand from a line-start index.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(eq=False)
class SourceFile:
    """The text of one `.geo` file (or of spec text given inline) and an index of its line starts."""

    name: str
    text: str
    line_starts: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.line_starts = [0] + [i + 1 for i, ch in enumerate(self.text) if ch == "\n"]

    @classmethod
    def read(cls, path: str | Path) -> "SourceFile":
        """Reads a file as UTF-8; raises OSError/UnicodeDecodeError for the caller to turn into GEO0601."""
        p = Path(path)
        return cls(str(path), p.read_bytes().decode("utf-8"))

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset (clamped into the file)."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.line_starts, offset) - 1
        return line + 1, offset - self.line_starts[line] + 1

    def line_text(self, line: int) -> str:
        """The 1-based line exactly as written, without its newline."""
        start = self.line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end]

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


def code_end(text: str, start: int, end: int) -> int:
    """The end of the last code character in text[start:end]: no trailing newline, indentation or comment."""
    last = start
    i = start
    while i < end:
        ch = text[i]
        if text.startswith('"""', i):
            close = text.find('"""', i + 3, end)
            i = end if close < 0 else close + 3
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
