"""Raw control and invisible characters are refused everywhere in a spec, strings, docstrings and comments
included (GEO0002), and a diagnostic never prints one: a carriage return inside a `name "…"` glob once reached
the header comment of the emitted Triton source, where Python reads it as a line break (issue 14)."""
from __future__ import annotations

import pytest

from geo.dsl.diagnostics import GeoError
from geo.dsl.parser import parse
from geo.dsl.source import FORBIDDEN, SourceFile, escaped, shown

SPEC = 'optimizer o(lr = 0.1):\n    """doc{d}."""\n    for matrix name "a{s}*" W:  # note{c}.\n        W = W - lr *{e} grad\n'
CLEAN = {"d": "", "s": "", "c": "", "e": ""}
# One of each class: C0 controls, a lone CR, DEL, a C1 control, the separators, bidi controls, a lone surrogate.
HOSTILE = ["\x00", "\x07", "\x0b", "\x0c", "\x1b", "\r", "\x7f", "\x85", "\x9b", "\u2028", "\u2029", "\u202e",
           "\u2066", "\u200f", "\u061c", "\ud800", "\udfff"]


def error_of(text: str) -> GeoError:
    with pytest.raises(GeoError) as caught:
        parse(SourceFile("spec.geo", text))
    return caught.value


def test_the_clean_spec_parses():
    parse(SourceFile("spec.geo", SPEC.format(**CLEAN)))


@pytest.mark.parametrize("where", ["d", "s", "c", "e"])
@pytest.mark.parametrize("ch", HOSTILE, ids=lambda ch: f"U+{ord(ch):04X}")
def test_refused_in_every_position(where, ch):
    text = SPEC.format(**{**CLEAN, where: ch})
    err = error_of(text)
    [d] = err.diagnostics
    assert d.code == "GEO0002" and f"U+{ord(ch):04X}" in d.message
    assert d.span.start == text.index(ch)
    rendered = err.render()
    assert not FORBIDDEN.search(rendered), "the diagnostic itself must not print the character"
    rendered.encode("utf-8")  # a lone surrogate could not even be printed


def test_crlf_line_ends_are_line_ends():
    parse(SourceFile("spec.geo", SPEC.format(**CLEAN).replace("\n", "\r\n")))


@pytest.mark.parametrize("escape", ["\\r", "\\n", "\\t", "\\u2028", "\\x00"])
def test_escapes_spell_them_in_strings(escape):
    module = parse(SourceFile("spec.geo", SPEC.format(**{**CLEAN, "s": escape})))
    term = module.items[0].rules[0].binder.selector[1]
    assert term.pattern == "a" + escape.encode().decode("unicode_escape") + "*"


def test_an_escaped_lone_surrogate_is_refused():
    err = error_of(SPEC.format(**{**CLEAN, "s": "\\ud800"}))
    assert [d.code for d in err.diagnostics] == ["GEO0002"] and "surrogate" in err.diagnostics[0].message


def test_a_file_name_with_control_characters_is_shown_escaped():
    with pytest.raises(GeoError) as caught:
        parse(SourceFile("evil\rname\u202e.geo", "optimizer o(:\n"))
    assert "evil\\rname\\u202e.geo" in caught.value.render()


def test_shown_keeps_columns_and_escaped_keeps_lines():
    line = "a\rb\u2028c\td\ud800"
    assert len(shown(line)) == len(line) and "\t" in shown(line) and not FORBIDDEN.search(shown(line))
    out = escaped(line + "\n")
    assert out.isprintable() and "\n" not in out and "\r" not in out
    assert out == "a\\rb\\u2028c\\td\\ud800\\n"


def test_a_docstring_can_hold_escaped_triple_quotes():
    text = ('"""Quotes \\"""this\\""" and a backslash \\\\ here."""\n'
            'optimizer o(lr = 0.1):\n    """Rule block \\"doc\\"."""\n    for tensor W:\n        W = W - lr * grad\n')
    module = parse(SourceFile("spec.geo", text))
    assert module.doc == 'Quotes """this""" and a backslash \\ here.'
    assert module.items[0].doc == 'Rule block "doc".'


def test_an_unclosed_docstring_with_an_escaped_quote_is_an_unclosed_docstring():
    err = error_of('"""never closed \\"""\noptimizer o(lr = 0.1):\n    for tensor W:\n        W = W - lr * grad\n')
    assert err.diagnostics[0].code in ("GEO0001", "GEO0002", "GEO0004")
