"""The prebuilt LALR tables (dsl/grammar_tables.json) are current, parse exactly as lark's own build of
grammar.lark does, and are never used when stale or damaged."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from lark.exceptions import UnexpectedInput

from geo.dsl import parser
from geo.dsl.loader import source_for, stdlib_names

ROOT = Path(__file__).resolve().parents[2]


def _corpus() -> list[str]:
    texts = [source_for(name).text for name in stdlib_names()]
    texts += [p.read_text() for p in sorted((ROOT / "tests").rglob("*.geo")) + sorted((ROOT / "examples").glob("*.geo"))]
    return texts


def _outcome(lark_parser, text: str):
    try:
        return lark_parser.parse(text)
    except UnexpectedInput as err:  # what the diagnostics are built from: where, what was found, what expected
        token = getattr(err, "token", None)
        return type(err).__name__, err.pos_in_stream, token, getattr(token, "type", None), \
            sorted(getattr(err, "expected", None) or ())
    except Exception as err:  # noqa: BLE001 - the indenter's errors: compared by type and text
        return type(err).__name__, str(err)


def test_the_shipped_tables_are_current():
    assert parser._load_tables(parser.GRAMMAR.read_text()) is not None, (
        "dsl/grammar_tables.json was not built from this grammar.lark and lark version: "
        "run `python -m geo.dsl.write_tables`")


def test_the_loaded_tables_parse_like_a_fresh_build():
    grammar = parser.GRAMMAR.read_text()
    loaded, built = parser._load_tables(grammar), parser._build_lark(grammar)
    texts = _corpus()
    # and broken text: every spec cut short at a few places, which exercises the error states
    broken = [t[:cut] for t in texts[:20] for cut in range(7, len(t), max(1, len(t) // 9))]
    outcomes = 0
    for text in texts + broken:
        text = text if text.endswith("\n") else text + "\n"
        assert _outcome(loaded, text) == _outcome(built, text), text
        outcomes += 1
    assert outcomes > 200


@pytest.mark.parametrize("damage", ["stale key", "not json", "missing", "damaged data", "a list"])
def test_stale_or_damaged_tables_are_not_used(tmp_path, monkeypatch, damage):
    grammar = parser.GRAMMAR.read_text()
    tables = tmp_path / "grammar_tables.json"
    if damage == "stale key":
        data = json.loads(parser.TABLES.read_text())
        data["key"]["grammar_sha256"] = "0" * 64
        tables.write_text(json.dumps(data))
    elif damage == "not json":
        tables.write_text(parser.TABLES.read_text()[:1000])
    elif damage == "damaged data":  # the right key, but tables lark cannot read
        data = json.loads(parser.TABLES.read_text())
        data["data"]["parser"] = {"no": "tables"}
        tables.write_text(json.dumps(data))
    elif damage == "a list":
        tables.write_text("[1, 2, 3]")
    monkeypatch.setattr(parser, "TABLES", tables)
    assert parser._load_tables(grammar) is None
    # and the parser is then built from the grammar, not refused
    parser._lark.cache_clear()
    try:
        assert parser._lark().parse(source_for("adamw").text) == parser._build_lark(grammar).parse(source_for("adamw").text)
    finally:
        parser._lark.cache_clear()


def test_a_grammar_change_makes_the_tables_stale():
    grammar = parser.GRAMMAR.read_text()
    assert parser._load_tables(grammar + "\n// a comment\n") is None


def test_the_keyword_list_is_the_grammars():
    """syntax_errors.KEYWORDS (typo help, the fuzzer's token pool) names exactly the grammar's reserved words."""
    import re
    from geo.dsl.syntax_errors import KEYWORDS
    words = set(re.findall(r'"([A-Za-z_]\w*)"', parser.GRAMMAR.read_text()))  # quoted in rules and terminals
    assert set(KEYWORDS) == words
    assert len(KEYWORDS) == len(set(KEYWORDS))


def test_strings_and_docstrings_lex_as_the_per_character_forms_did():
    """STRING and DOCSTRING (issue 16) are written to cost constant memory; they accept exactly what the
    per-character alternations they replace accepted: the longest match of each, on random texts over the
    characters that matter."""
    import random
    import re
    grammar = parser.GRAMMAR.read_text()
    string = re.compile(re.search(r"^STRING: /(.*)/$", grammar, re.M).group(1))
    docstring = re.compile(re.search(r"^DOCSTRING\.2: /(.*)/$", grammar, re.M).group(1))
    old_string, old_docstring = re.compile(r'"([^"\\\n]|\\.)*"'), re.compile(r'"""(\\[\s\S]|[^\\])*?"""')
    rng = random.Random(16)
    for _ in range(20_000):
        s = '"' + "".join(rng.choice('a\\"\n') for _ in range(rng.randint(0, 12)))
        a, b = old_string.match(s), string.match(s)
        assert (a and a.end()) == (b and b.end()), repr(s)
        d = '"""' + "".join(rng.choice('a\\"\n') for _ in range(rng.randint(0, 12)))
        a, b = old_docstring.match(d), docstring.match(d)
        assert (a and a.end()) == (b and b.end()), repr(d)
