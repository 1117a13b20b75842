"""Source text → AST: lark's LALR(1) parser with an indentation post-lexer, and its prebuilt tables.

`parse` runs the parser, turns lark's errors into diagnostics (`syntax_errors`), refuses nesting deeper than the
builder and checker can recurse, and builds the AST (`build_ast`).
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import lark
from lark import Lark, Tree
from lark.exceptions import UnexpectedInput, VisitError
from lark.grammar import Rule
from lark.indenter import DedentError, Indenter
from lark.lexer import TerminalDef

from . import ast
from .build_ast import Builder
from .diagnostics import Diagnostic, GeoError, Label
from .source import MAX_SPEC_BYTES, SourceFile, Span, builtin_span
from .syntax_errors import TAB_LEN, dedent_diagnostic, forbidden_character_diagnostic, syntax_diagnostic


class _GeoIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = TAB_LEN

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
    if len(source.text) > MAX_SPEC_BYTES:  # spec text given inline; a file is refused before it is read
        raise GeoError([Diagnostic("GEO0601", f"this spec is {len(source.text):,} characters long; a spec may hold "
                                   f"at most {MAX_SPEC_BYTES:,}", Label(builtin_span(source.name)))])
    forbidden = forbidden_character_diagnostic(source)
    if forbidden is not None:
        raise GeoError([forbidden])
    text = source.text if source.text.endswith("\n") else source.text + "\n"
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as err:
        raise GeoError([syntax_diagnostic(source, err)]) from None
    except DedentError as err:
        raise GeoError([dedent_diagnostic(source, str(err), getattr(err, "token", None))]) from None
    too_deep = _nesting_diagnostic(source, tree)
    if too_deep is not None:
        raise GeoError([too_deep])
    try:
        return Builder(source).transform(tree)
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
