"""Syntax errors: lark's exceptions → GEO0001–GEO0004 diagnostics.

lark reports the token it could not use and the terminals it would have taken; this module says that in the
user's words ("expected `:`, found end of line"), points the caret at the right place (the end of the previous
line for a missing `:`, the unclosed bracket for an early end of file, the indentation itself for a bad
indent), and adds the usual fix as help (a misspelt keyword, a trailing comma, `=` for `==`).
"""
from __future__ import annotations

import difflib
import re
import unicodedata

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from .diagnostics import Diagnostic, Label
from .source import FORBIDDEN, SourceFile, Span, docstring_end

# Columns a tab advances the indentation by (the parser's indenter counts with it).
TAB_LEN = 8

_TOKEN_WORDS = {
    "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`", "COLON": "`:`", "COMMA": "`,`",
    "EQUAL": "`=`", "SEMICOLON": "`;`", "DOT": "`.`", "_NL": "end of line", "_INDENT": "an indented block",
    "_DEDENT": "the end of the block", "$END": "end of file", "NAME": "a name", "NUMBER": "a number",
    "STRING": "a string", "DOCSTRING": "a docstring", "COMP_OP": "a comparison", "ADD_OP": "`+` or `-`",
    "MUL_OP": "`*`, `/` or `@`", "POW_OP": "`^`", "COMPOSE": "`∘`", "MORETHAN": "`>`", "STATIC": "`static`",
}
_EXPR_START = {"NAME", "NUMBER", "STRING", "LPAR", "ADD_OP", "TRUE", "FALSE", "NOT"}


def _describe_expected(expected: set[str]) -> str:
    if "NUMBER" in expected and len(_EXPR_START & expected) >= 3:  # NUMBER: only where an expression may start
        return "an expression"
    words = []
    for name in sorted(expected):
        if name.startswith("__ANON"):
            continue
        word = _TOKEN_WORDS.get(name)
        if word is None:
            word = f"`{name.lower()}`" if name.isupper() and name.isalpha() else name
        words.append(word)
    if not words:
        return "something else"
    if len(words) > 6:
        words = words[:6] + ["…"]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _describe_found(token: Token | None) -> str:
    if token is None or token.type == "$END":
        return "end of file"
    if token.type == "_NL":
        return "end of line"
    if token.type == "_INDENT":
        return "an indented block"
    if token.type == "_DEDENT":
        return "the end of the block"
    return f"`{str(token).strip() or token.type}`"


_ESCAPES = {"\r": "\\r", "\x0c": "\\f", "\x0b": "\\v", "\x00": "\\0"}


def forbidden_character_diagnostic(source: SourceFile) -> Diagnostic | None:
    """GEO0002 for the first character of FORBIDDEN in the text, wherever it stands."""
    found = FORBIDDEN.search(source.text)
    if found is None:
        return None
    pos, ch = found.start(), found.group()
    escape = _ESCAPES.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    try:
        name = unicodedata.name(ch).lower()
    except ValueError:
        name = "lone surrogate" if unicodedata.category(ch) == "Cs" else {
            "\r": "carriage return", "\x0c": "form feed"}.get(ch, "control character")
    return Diagnostic("GEO0002", f"unexpected character U+{ord(ch):04X} ({name})",
                      Label(Span(source, pos, pos + 1), "not valid here, not even in a string or comment"),
                      help=f"an invisible or control character cannot appear raw in a spec; inside a string write it "
                           f"as the escape `{escape}`, elsewhere delete it")


def syntax_diagnostic(source: SourceFile, err: UnexpectedInput) -> Diagnostic:
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream
        ch = source.text[pos] if pos < len(source.text) else ""
        span = Span(source, pos, pos + 1)
        shown = f"`{ch}`" if ch.isprintable() and not ch.isspace() else f"U+{ord(ch):04X}" if ch else "end of file"
        return Diagnostic("GEO0002", f"unexpected character {shown}", Label(span, "not valid here"),
                          help=_char_help(ch))
    token = getattr(err, "token", None)
    expected = set(getattr(err, "expected", None) or getattr(err, "accepts", None) or ())
    at_eof = token is None or token.type == "$END" or (token.type == "_DEDENT" and _only_comments_after(source, token))
    if at_eof:
        unclosed = _unclosed_bracket(source.text)
        if unclosed is not None:  # the usual reason to meet the end of the file early
            ch = source.text[unclosed]
            return Diagnostic("GEO0004", f"unexpected end of file: `{ch}` is never closed",
                              Label(Span(source, unclosed, unclosed + 1), "unclosed"),
                              help=f"close it with `{_CLOSING[ch]}`")
    pos = _token_pos(source, token)
    found = "end of file" if at_eof else _describe_found(token)
    want = _describe_expected(expected)
    if token is not None and token.type == "_NL" and "COLON" in expected and _header_line(source, pos):
        want = "`:`"  # the parser would also take more of the header; the missing `:` is what matters
    end = pos + max(1, len(str(token))) if token is not None and token.type not in ("_NL", "_DEDENT", "_INDENT", "$END") else pos + 1
    span = Span(source, pos, end)
    help_text = None
    if token is not None and token.type == "_INDENT":
        if token.end_pos is not None:  # the token borrows the newline's place; point at the indentation itself
            span = Span(source, token.end_pos - len(str(token)), token.end_pos)
        return Diagnostic("GEO0003", "unexpected indentation", Label(span, "this line is indented more than the block"),
                          help="indent the lines of one block by the same amount")
    if want == "an expression" and found == "`)`" and source.text[:pos].rstrip().endswith(","):
        help_text = "remove the trailing comma or supply the missing argument"
    elif "`:`" in want and token is not None and token.type == "_NL":
        help_text = "a header line (`optimizer`, `step`, `for`, `if`, `repeat`, `when`, `every`, `def`) ends with `:`"
    elif token is not None and token.type == "EQUAL" and "`=`" not in want:
        help_text = "`=` assigns only at the start of a statement; compare with `==`"
    else:
        help_text = _keyword_help(source, token)
    code = "GEO0004" if isinstance(err, UnexpectedEOF) or found == "end of file" else "GEO0001"
    return Diagnostic(code, f"expected {want}, found {found}", Label(span, f"expected {want} here"), help=help_text)


_CLOSING = {"(": ")", "[": "]"}
_HEADERS = ("optimizer", "step", "def", "for", "if", "elif", "else", "repeat", "when", "every", "across")


def _header_line(source: SourceFile, pos: int) -> bool:
    words = source.line_text(source.line_col(pos)[0]).split()
    return bool(words) and words[0].split("(")[0] in _HEADERS


def _only_comments_after(source: SourceFile, token: Token) -> bool:
    """The dedents at the end of the input borrow the last token's place: nothing but comments follow it."""
    rest = source.text[token.end_pos:] if token.end_pos is not None else ""
    return all(not line.strip() or line.strip().startswith("#") for line in rest.split("\n"))


def _unclosed_bracket(text: str) -> int | None:
    """The offset of the last `(` or `[` that is never closed (strings and comments skipped), or None."""
    stack: list[int] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if text.startswith('"""', i):
            end = docstring_end(text, i)
            i = n if end < 0 else end
            continue
        if ch == '"':
            i += 1
            while i < n and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "([":
            stack.append(i)
        elif ch in ")]" and stack:
            stack.pop()
        i += 1
    return stack[-1] if stack else None


def _token_pos(source: SourceFile, token: Token | None) -> int:
    if token is None or token.start_pos is None:
        return max(0, len(source.text.rstrip("\n")))
    pos = min(token.start_pos, len(source.text))
    if token.type in ("_NL", "_DEDENT"):
        # Point at the end of the previous line's text, not at the next line's indentation.
        pos = len(source.text[:pos].rstrip(" \t")) if token.type == "_NL" else pos
        if token.type == "_DEDENT":
            pos = len(source.text[:pos].rstrip())
    return pos


# The words that open a declaration or statement: a misspelt one at the start of a line gets a "did you mean".
LEADING_KEYWORDS = ("use", "def", "step", "optimizer", "for", "state", "let", "if", "elif", "else", "repeat",
                    "return", "pass", "static", "when", "every", "across")
# Every reserved word of grammar.lark (a test derives the set from the grammar).
KEYWORDS = LEADING_KEYWORDS + ("as", "in", "not", "and", "or", "true", "false")


def _keyword_help(source: SourceFile, token: Token | None) -> str | None:
    """`lett x = 1`, `retrun W`, `optimiser f`: a misspelt keyword, when the error is at or just after it."""
    if token is None or token.start_pos is None or token.type in ("_NL", "_INDENT", "_DEDENT", "$END"):
        return None
    line, _ = source.line_col(token.start_pos)
    words = re.match(r"[ \t]*([A-Za-z_]\w*)(?:[ \t]+([A-Za-z_]\w*))?", source.line_text(line))
    if words is None or words.group(1) in LEADING_KEYWORDS:
        return None
    start = source.line_starts[line - 1]
    if token.start_pos - start not in (words.start(1), words.start(2)):
        return None
    close = difflib.get_close_matches(words.group(1), LEADING_KEYWORDS, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _tab_note(indent: str) -> str:
    width = indent.count(" ") + indent.count("\t") * TAB_LEN
    return f"a tab counts as {TAB_LEN} columns: this line is indented by {width}"


def _char_help(ch: str) -> str | None:
    return {
        "'": "strings use double quotes: \"...\"",
        '"': "a string ends with `\"` on the line where it starts",
        "{": "blocks are written by indentation, not braces",
        "}": "blocks are written by indentation, not braces",
        "?": "conditional expressions read `a if cond else b`",
        "!": "negation is `not`; inequality is `!=`",
        "&": "logical and is `and`",
        "|": "logical or is `or`",
        "$": None,
    }.get(ch)


def dedent_diagnostic(source: SourceFile, message: str, token: Token | None = None) -> Diagnostic:
    if token is not None and token.end_pos is not None:
        indent = str(token).rsplit("\n", 1)[-1]
        span = Span(source, token.end_pos - len(indent), token.end_pos)
        return Diagnostic("GEO0003", "this line's indentation matches no enclosing block",
                          Label(span, "dedented to here"), notes=[_tab_note(indent)] if "\t" in indent else [],
                          help="dedent to the column of an enclosing block")
    # lark's DedentError names no position; find the first line whose indentation matches no open block.
    stack = [0]
    offset = 0
    for line in source.text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            indent = len(line) - len(line.lstrip(" \t"))
            if indent > stack[-1]:
                stack.append(indent)
            else:
                while indent < stack[-1]:
                    stack.pop()
                if indent != stack[-1]:
                    span = Span(source, offset, offset + indent)
                    return Diagnostic("GEO0003", "this line's indentation matches no enclosing block",
                                      Label(span, "dedented to here"),
                                      help="dedent to the column of an enclosing block")
        offset += len(line)
    return Diagnostic("GEO0003", "inconsistent indentation", Label(Span(source, 0, 0)), notes=[message])
