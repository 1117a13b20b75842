"""Parse tree → AST.

`Builder` turns lark's tree into the frozen dataclasses of `ast.py`, giving every node the span of its text
(a statement's span ends at its last code character, not at the newline or comment after it). String
literals are read as data (`ast.literal_eval` of a double-quoted literal), never as code.
"""
from __future__ import annotations

import ast as pyast
import re

from lark import Token, Transformer, v_args

from . import ast
from .diagnostics import Diagnostic, GeoError, Label
from .source import SourceFile, Span, code_end


def string_value(token: Token) -> str:
    # The literal is double-quoted with backslash escapes; read it as data, never as code.
    try:
        value = pyast.literal_eval(str(token))
    except (ValueError, SyntaxError):
        return str(token)[1:-1]
    return value if isinstance(value, str) else str(token)[1:-1]


def _docstring_value(token: Token) -> str:
    # `\"` is `"` (so `\"""` can appear inside) and `\\` is a backslash; any other text is kept as written.
    import inspect
    return re.sub(r'\\(["\\])', r"\1", inspect.cleandoc(str(token)[3:-3]))


@v_args(meta=True)
class Builder(Transformer):
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

    def _string(self, token: Token) -> str:
        value = string_value(token)
        if any("\ud800" <= ch <= "\udfff" for ch in value):  # an escape `\ud800`: not text, nothing can print it
            raise GeoError([Diagnostic("GEO0002", "a string cannot hold a lone surrogate",
                                       Label(self._tok(token), "an escape in here makes half a UTF-16 pair"),
                                       help="write the character itself, or both halves as one `\\U0001xxxx`")])
        return value

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

    def across_block(self, meta, children):
        binder, body = children
        return ast.Across(self._span(meta), binder, body)

    def hparams(self, meta, children):
        return list(children)

    def hparam(self, meta, children):
        static, name, default, bounds = children
        return ast.Hyper(self._span(meta), str(name), static is not None, default, bounds)

    def hrange(self, meta, children):
        (lo, lo_closed), (hi, hi_closed) = children
        return ast.Range(self._span(meta), lo, hi, lo_closed, hi_closed)

    def closed_lo(self, meta, children):
        return children[0], True

    def open_lo(self, meta, children):
        return children[0], False

    def closed_hi(self, meta, children):
        return children[0], True

    def open_hi(self, meta, children):
        return children[0], False

    def binder(self, meta, children):
        view = children[-1] if isinstance(children[-1], ast.View) else None
        rest = children[:-1] if view is not None else children
        *terms, name = rest
        return ast.Binder(self._span(meta), tuple(terms), str(name), self._tok(name), view)

    def sel_word(self, meta, children):
        return ast.SelectorTerm(self._span(meta), str(children[0]))

    def sel_pattern(self, meta, children):
        word, pattern = children
        return ast.SelectorTerm(self._span(meta), str(word), self._string(pattern))

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

    def when_stmt(self, meta, children):
        test, body = children
        return ast.When(self._span(meta), test, None, body)

    def every_stmt(self, meta, children):
        period, body = children
        return ast.When(self._span(meta), None, period, body)

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
        return ast.String(self._span(meta), self._string(children[0]))

    def name(self, meta, children):
        return ast.Name(self._span(meta), str(children[0]))

    def true(self, meta, children):
        return ast.Bool(self._span(meta), True)

    def false(self, meta, children):
        return ast.Bool(self._span(meta), False)

    def tuple(self, meta, children):
        return ast.TupleExpr(self._span(meta), tuple(c for c in children if c is not None))
