"""A Pygments lexer for `.geo` specs, so Sphinx, MkDocs, Jupyter and `pygmentize` highlight them.

Registered as the entry point `geo = geo.dsl.pygments_lexer:GeoLexer` in the `pygments.lexers` group
(pyproject.toml): once geo is installed, ```` ```geo ```` fences and `pygmentize -l geo FILE` use it. Pygments is
not a dependency of geo; this module is imported only by Pygments itself (or a test).

Like the grammar (dsl/grammar.lark), it knows syntax, not operator names: the keywords are the grammar's own
(`syntax_errors.KEYWORDS`, checked against grammar.lark by a test), a name before `(` is a call, the name after
`def`/`step`/`optimizer` is a definition, after `state`/`let` a variable, after `use` a module; `grad` and `t` are
the step's built-in names. Every character of every valid spec gets a token that is not Error
(tests/unit/test_editor_support.py lexes the stdlib).
"""
from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import (Comment, Keyword, Name, Number, Operator, Punctuation, String, Text,
                            Whitespace)

from .syntax_errors import KEYWORDS

_DECLARATIONS = ("def", "step", "optimizer")
_CONSTANTS = ("true", "false")
_WORD_OPERATORS = ("and", "or", "not")
_PLAIN_KEYWORDS = tuple(k for k in KEYWORDS
                        if k not in _DECLARATIONS + _CONSTANTS + _WORD_OPERATORS + ("state", "let", "use", "static"))
_STORAGE_DTYPES = ("fp16", "bf16", "fp32", "fp64")
_NAME = r"[A-Za-z_][A-Za-z_0-9]*"


class GeoLexer(RegexLexer):
    """Lexer for geo optimizer specs (`.geo`): optimizer steps built from geometric operators."""

    name = "geo"
    aliases = ["geo"]
    filenames = ["*.geo"]
    mimetypes = ["text/x-geo"]

    tokens = {
        "root": [
            (r"\n", Whitespace),
            (r"[\t \f]+", Whitespace),
            (r"\\\n", Text),
            (r"#[^\n]*", Comment.Single),
            (r'"""(.|\n)*?"""', String.Doc),
            (r'"([^"\\\n]|\\.)*"', String.Double),
            (r"(use)(\s+)", bygroups(Keyword.Namespace, Whitespace), "modules"),
            (r"(%s)(\s+)(%s)" % ("|".join(_DECLARATIONS), _NAME),
             bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (r"(state|let)(\s+)(%s)" % _NAME, bygroups(Keyword.Declaration, Whitespace, Name.Variable)),
            (r"static\b", Keyword.Declaration),
            (words(_CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (words(_WORD_OPERATORS, suffix=r"\b"), Operator.Word),
            (words(_PLAIN_KEYWORDS, suffix=r"\b"), Keyword),
            (words(_STORAGE_DTYPES, suffix=r"\b"), Keyword.Type),
            (words(("grad", "t"), suffix=r"\b"), Name.Builtin.Pseudo),
            include("numbers"),
            (r"(%s)(\s*)(?=\()" % _NAME, bygroups(Name.Function, Whitespace)),
            (_NAME, Name),
            (r"\*\*|==|!=|<=|>=|>>|[-+*/@^<>=∘]", Operator),
            (r"[()\[\],:;.]", Punctuation),
        ],
        "modules": [
            (_NAME, Name.Namespace),
            (r"[\t ]*,[\t ]*", Punctuation),
            (r"[\t ]+", Whitespace),
            (r"", Text, "#pop"),
        ],
        "numbers": [
            (r"(\d+\.\d*|\.\d+)([eE][+-]?\d+)?", Number.Float),
            (r"\d+[eE][+-]?\d+", Number.Float),
            (r"\d+", Number.Integer),
        ],
    }
