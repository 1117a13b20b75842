"""Source text → AST.

lark's LALR(1) parser with an indentation post-lexer produces a parse tree; `_Builder` turns it into the
frozen dataclasses of `ast.py`, giving every node the span of its text. lark's errors become GEO0001–GEO0004
diagnostics that say what was expected and what was found.
"""
from __future__ import annotations

import ast as pyast
import difflib
import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path

import lark
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.grammar import Rule
from lark.indenter import DedentError, Indenter
from lark.lexer import TerminalDef

from . import ast
from .diagnostics import Diagnostic, GeoError, Label
from .source import SourceFile, Span


class _GeoIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def handle_NL(self, token):
        try:
            yield from super().handle_NL(token)
        except DedentError as err:
            err.token = token  # lark's message has no position; the newline token knows the line
            raise


GRAMMAR = Path(__file__).parent / "grammar.lark"
# lark's LALR tables for GRAMMAR, built ahead of time: building them takes lark 50–100 ms, which would be most
# of the time from a spec to a ready optimizer in a fresh process; loading them takes ~6 ms. They are JSON (not
# lark's pickle: geo reads no pickles) and keyed by what they were built from, so a stale file is never used.
# `python -m geo.dsl.write_tables` rebuilds them after a grammar change; a test checks they are current.
TABLES = Path(__file__).parent / "grammar_tables.json"
_LARK_OPTIONS = dict(parser="lalr", start="module", propagate_positions=True, maybe_placeholders=True)


def _tables_key(grammar: str) -> dict[str, str]:
    options = json.dumps(_LARK_OPTIONS, sort_keys=True)
    return {"grammar_sha256": hashlib.sha256(grammar.encode()).hexdigest(), "lark": lark.__version__,
            "options": options}


def _build_lark(grammar: str) -> Lark:
    return Lark(grammar, postlex=_GeoIndenter(), **_LARK_OPTIONS)


def _serialized_tables(grammar: str) -> str:
    data, memo = _build_lark(grammar).memo_serialize([TerminalDef, Rule])
    del data["options"]["postlex"]  # an object, given again at load time
    return json.dumps({"key": _tables_key(grammar), "data": data, "memo": memo}, sort_keys=True)


def _int_keys(obj: dict) -> dict:
    # JSON object keys are strings; lark's tables key states, tokens and memo entries by int
    return {int(k) if k.isdigit() else k: v for k, v in obj.items()}


def _load_tables(grammar: str) -> Lark | None:
    try:
        tables = json.loads(TABLES.read_text(), object_hook=_int_keys)
    except (OSError, ValueError):
        return None
    if not isinstance(tables, dict) or tables.get("key") != _tables_key(grammar):
        return None
    try:
        return Lark._load_from_dict(tables["data"], tables["memo"], postlex=_GeoIndenter())
    except Exception:  # noqa: BLE001 - damaged tables with the right key: build them from the grammar instead
        return None


@lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = GRAMMAR.read_text()
    return _load_tables(grammar) or _build_lark(grammar)


def parse(source: SourceFile) -> ast.Module:
    """Parses one file; raises GeoError with a diagnostic on a syntax error."""
    text = source.text if source.text.endswith("\n") else source.text + "\n"
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as err:
        raise GeoError([_syntax_diagnostic(source, err)]) from None
    except DedentError as err:
        raise GeoError([_dedent_diagnostic(source, str(err), getattr(err, "token", None))]) from None
    too_deep = _nesting_diagnostic(source, tree)
    if too_deep is not None:
        raise GeoError([too_deep])
    try:
        return _Builder(source).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, GeoError):
            raise err.orig_exc from None
        raise


# The builder and the checker recurse over the tree; past this depth Python's stack would overflow.
MAX_NESTING = 100


def _nesting_diagnostic(source: SourceFile, tree: Tree) -> Diagnostic | None:
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            pos = 0 if node.meta.empty else node.meta.start_pos
            return Diagnostic("GEO0005", f"this is nested more than {MAX_NESTING} levels deep",
                              Label(Span(source, pos, pos + 1), "too deep from here on"),
                              help="name parts of the expression with `let`")
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))
    return None


# ---- syntax errors -------------------------------------------------------------------------------------
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


def _syntax_diagnostic(source: SourceFile, err: UnexpectedInput) -> Diagnostic:
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
        help_text = "a header line (`optimizer`, `step`, `for`, `if`, `repeat`, `def`) ends with `:`"
    elif token is not None and token.type == "EQUAL" and "`=`" not in want:
        help_text = "`=` assigns only at the start of a statement; compare with `==`"
    else:
        help_text = _keyword_help(source, token)
    code = "GEO0004" if isinstance(err, UnexpectedEOF) or found == "end of file" else "GEO0001"
    return Diagnostic(code, f"expected {want}, found {found}", Label(span, f"expected {want} here"), help=help_text)


_CLOSING = {"(": ")", "[": "]"}
_HEADERS = ("optimizer", "step", "def", "for", "if", "elif", "else", "repeat")


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
            end = text.find('"""', i + 3)
            i = n if end < 0 else end + 3
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


_KEYWORDS = ("use", "def", "step", "optimizer", "for", "state", "let", "if", "elif", "else", "repeat", "return",
             "pass", "static")


def _keyword_help(source: SourceFile, token: Token | None) -> str | None:
    """`lett x = 1`, `retrun W`, `optimiser f`: a misspelt keyword, when the error is at or just after it."""
    if token is None or token.start_pos is None or token.type in ("_NL", "_INDENT", "_DEDENT", "$END"):
        return None
    line, _ = source.line_col(token.start_pos)
    words = re.match(r"[ \t]*([A-Za-z_]\w*)(?:[ \t]+([A-Za-z_]\w*))?", source.line_text(line))
    if words is None or words.group(1) in _KEYWORDS:
        return None
    start = source.line_starts[line - 1]
    if token.start_pos - start not in (words.start(1), words.start(2)):
        return None
    close = difflib.get_close_matches(words.group(1), _KEYWORDS, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _tab_note(indent: str) -> str:
    width = indent.count(" ") + indent.count("\t") * _GeoIndenter.tab_len
    return f"a tab counts as {_GeoIndenter.tab_len} columns: this line is indented by {width}"


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


def _dedent_diagnostic(source: SourceFile, message: str, token: Token | None = None) -> Diagnostic:
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


# ---- parse tree → AST ----------------------------------------------------------------------------------
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


def _string_value(token: Token) -> str:
    # The literal is double-quoted with backslash escapes; read it as data, never as code.
    try:
        value = pyast.literal_eval(str(token))
    except (ValueError, SyntaxError):
        return str(token)[1:-1]
    return value if isinstance(value, str) else str(token)[1:-1]


def _docstring_value(token: Token) -> str:
    import inspect
    return inspect.cleandoc(str(token)[3:-3])


@v_args(meta=True)
class _Builder(Transformer):
    def __init__(self, source: SourceFile):
        super().__init__()
        self.source = source

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.source, 0, 0)
        text, end = self.source.text, meta.end_pos
        if end > meta.start_pos and (end > len(text) or text[end - 1].isspace()):  # (the parser appends a "\n")
            end = code_end(text, meta.start_pos, min(end, len(text)))  # a statement's span ends at its code
        return Span(self.source, meta.start_pos, end)

    def _tok(self, token: Token) -> Span:
        return Span(self.source, token.start_pos, token.end_pos)

    # -- module and declarations
    def module(self, meta, children):
        doc, *items = children
        return ast.Module(self._span(meta), doc, tuple(items))

    def docstring(self, meta, children):
        return _docstring_value(children[0])

    def use_decl(self, meta, children):
        return ast.Use(self._span(meta), tuple(ast.Name(self._tok(t), str(t)) for t in children))

    def def_decl(self, meta, children):
        name, params, body = children
        return ast.FunctionDef(self._span(meta), str(name), tuple(params or ()), body)

    def fparams(self, meta, children):
        return list(children)

    def fparam(self, meta, children):
        name, default = children
        return ast.Hyper(self._span(meta), str(name), False, default)

    def step_decl(self, meta, children):
        name, binder, hypers, body = children
        return ast.StepDef(self._span(meta), str(name), binder, tuple(hypers or ()), body)

    def optimizer_decl(self, meta, children):
        name, hypers, tail = children
        span = self._span(meta)
        if isinstance(tail, tuple):  # rules block: (doc, rules)
            doc, rules = tail
            return ast.OptimizerDef(span, str(name), tuple(hypers or ()), doc, rules, None)
        return ast.OptimizerDef(span, str(name), tuple(hypers or ()), None, (), tail)

    def rules(self, meta, children):
        doc, *rules = children
        return (doc, tuple(rules))

    def rule_body(self, meta, children):
        binder, body = children
        return ast.Rule(self._span(meta), binder, body, None)

    def rule_step(self, meta, children):
        binder, step = children
        return ast.Rule(self._span(meta), binder, None, step)

    def hparams(self, meta, children):
        return list(children)

    def hparam(self, meta, children):
        static, name, default = children
        return ast.Hyper(self._span(meta), str(name), static is not None, default)

    def binder(self, meta, children):
        view = children[-1] if isinstance(children[-1], ast.View) else None
        rest = children[:-1] if view is not None else children
        *terms, name = rest
        return ast.Binder(self._span(meta), tuple(terms), str(name), self._tok(name), view)

    def sel_word(self, meta, children):
        return ast.SelectorTerm(self._span(meta), str(children[0]))

    def sel_pattern(self, meta, children):
        word, pattern = children
        return ast.SelectorTerm(self._span(meta), str(word), _string_value(pattern))

    def sel_not(self, meta, children):
        return ast.SelectorTerm(self._span(meta), str(children[0]), None, True)

    def view(self, meta, children):
        name, args = children
        positional, keywords = args or ((), ())
        return ast.View(self._span(meta), str(name), positional, keywords)

    def compose(self, meta, children):
        outer, _op, inner = children
        return ast.Compose(self._span(meta), outer, inner)

    def then(self, meta, children):
        inner, outer = children
        return ast.Compose(self._span(meta), outer, inner)

    def step_ref(self, meta, children):
        name, args = children
        positional, keywords = args or ((), ())
        return ast.StepRef(self._span(meta), str(name), positional, keywords)

    # -- statements
    def body(self, meta, children):
        doc, *stmts = children
        return ast.Block(self._span(meta), doc, tuple(stmts))

    def state_stmt(self, meta, children):
        name, dtype, init = children
        dtype_name = ast.Name(self._tok(dtype), str(dtype)) if dtype is not None else None
        return ast.StateDecl(self._span(meta), str(name), dtype_name, init)

    def let_stmt(self, meta, children):
        name, value = children
        return ast.Let(self._span(meta), str(name), value)

    def assign_stmt(self, meta, children):
        name, value = children
        return ast.Assign(self._span(meta), str(name), value)

    def if_stmt(self, meta, children):
        test, body, *rest = children
        branches = [(test, body)]
        orelse = None
        for clause in rest:
            if clause is None:
                continue
            if clause[0] == "elif":
                branches.append(clause[1:])
            else:
                orelse = clause[1]
        return ast.If(self._span(meta), tuple(branches), orelse)

    def elif_clause(self, meta, children):
        return ("elif", children[0], children[1])

    def else_clause(self, meta, children):
        return ("else", children[0])

    def repeat_stmt(self, meta, children):
        count, var, body = children
        return ast.Repeat(self._span(meta), count, str(var) if var is not None else None, body)

    def return_stmt(self, meta, children):
        return ast.Return(self._span(meta), children[0])

    def pass_stmt(self, meta, children):
        return ast.Pass(self._span(meta))

    # -- expressions
    def cond(self, meta, children):
        then, test, orelse = children
        return ast.Cond(self._span(meta), test, then, orelse)

    def _bool_op(self, meta, children, op):
        left, right = children
        return ast.Binary(self._span(meta), op, left, right, self._span(meta))

    def or_(self, meta, children):
        return self._bool_op(meta, children, "or")

    def and_(self, meta, children):
        return self._bool_op(meta, children, "and")

    def not_(self, meta, children):
        return ast.Unary(self._span(meta), "not", children[0])

    def compare(self, meta, children):
        left, op, right = children
        return ast.Binary(self._span(meta), str(op), left, right, self._tok(op))

    def binary(self, meta, children):
        left, op, right = children
        symbol = "^" if str(op) == "**" else str(op)
        return ast.Binary(self._span(meta), symbol, left, right, self._tok(op))

    def unary(self, meta, children):
        op, operand = children
        return ast.Unary(self._span(meta), str(op), operand)

    def call(self, meta, children):
        name, args = children
        positional, keywords = args or ((), ())
        return ast.Call(self._span(meta), ast.Name(self._tok(name), str(name)), positional, keywords)

    def args(self, meta, children):
        keyword = None
        for c in children:  # `f(x, k = 1, y)` would bind y by position after a keyword: refuse it, as Python does
            if isinstance(c, ast.Keyword):
                keyword = keyword or c
            elif c is not None and keyword is not None:
                raise GeoError([Diagnostic("GEO0001", "a positional argument follows a keyword argument",
                                           Label(c.span, "positional"), [Label(keyword.span, "after this keyword")],
                                           help="put the positional arguments first, or name this one too")])
        positional = tuple(c for c in children if c is not None and not isinstance(c, ast.Keyword))
        keywords = tuple(c for c in children if isinstance(c, ast.Keyword))
        return positional, keywords

    def kwarg(self, meta, children):
        name, value = children
        return ast.Keyword(self._span(meta), str(name), value)

    def attr(self, meta, children):
        value, name = children
        return ast.Attr(self._span(meta), value, str(name))

    def index(self, meta, children):
        value, index = children
        return ast.Index(self._span(meta), value, index)

    def number(self, meta, children):
        text = str(children[0])
        is_int = text.isdigit() and len(text) <= 300  # a longer one is beyond a float too: it reads as inf
        return ast.Number(self._span(meta), int(text) if is_int else float(text))

    def string(self, meta, children):
        return ast.String(self._span(meta), _string_value(children[0]))

    def name(self, meta, children):
        return ast.Name(self._span(meta), str(children[0]))

    def true(self, meta, children):
        return ast.Bool(self._span(meta), True)

    def false(self, meta, children):
        return ast.Bool(self._span(meta), False)

    def tuple(self, meta, children):
        return ast.TupleExpr(self._span(meta), tuple(c for c in children if c is not None))

