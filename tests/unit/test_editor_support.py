"""Editor support: the Pygments lexer (dsl/pygments_lexer.py, entry point `pygments.lexers`) and the TextMate
grammar (editors/geo.tmLanguage.json) cover the grammar's keywords and highlight every spec without errors."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

pygments = pytest.importorskip("pygments", reason="pygments is absent (pytest itself depends on it)")
from pygments.token import Error, Keyword, Name, Operator, String  # noqa: E402

from geo.dsl.pygments_lexer import GeoLexer  # noqa: E402
from geo.dsl.syntax_errors import KEYWORDS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(ROOT.glob("stdlib/*.geo")) + sorted(ROOT.glob("examples/**/*.geo"))
TM = json.loads((ROOT / "editors" / "geo.tmLanguage.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_the_lexer_tokenizes_every_spec_without_errors(path):
    text = path.read_text(encoding="utf-8")
    tokens = list(GeoLexer().get_tokens(text))
    assert "".join(v for _, v in tokens) == text.rstrip("\n") + "\n"
    bad = [v for t, v in tokens if t in Error]
    assert not bad, f"{path.name}: Error tokens {bad[:5]}"


def test_the_lexer_knows_the_grammars_keywords_and_structure():
    src = ('"""doc"""\nuse adamw, muon\n'
           'step s(matrix W; lr = 1e-3 in [0, inf), static n = 5):\n'
           '    state m: bf16 = zeros_like(W)\n    let u = lerp(m, grad, 0.1)  # c\n'
           '    if n > 2 and not false:\n        W = W - lr * msign(u, steps = n)\n'
           '    elif true or n == 1:\n        pass\n    else:\n        repeat 2 as i:\n            W = W\n'
           '    every 10:\n        m = m * 0\n    when t > 1:\n        W = W\n'
           'def f(x):\n    return x if t > 1 else x\n'
           'optimizer o = s ∘ adamw\noptimizer p = s >> adamw\n'
           'optimizer q:\n    across matrix layers:\n        pass\n    for hidden matrix W as heads(2) = s\n')
    tokens = [(t, v) for t, v in GeoLexer().get_tokens(src) if v.strip()]
    kinds = {}
    for t, v in tokens:
        kinds.setdefault(v, t)  # the first occurrence of each text
    for word in KEYWORDS:
        assert word in kinds, f"keyword {word!r} missing from the sample"
        assert kinds[word] in Keyword or kinds[word] in Operator.Word, (word, kinds[word])
    assert kinds["s"] in Name.Function and kinds["o"] in Name.Function and kinds["f"] in Name.Function
    assert kinds["lerp"] in Name.Function and kinds["msign"] in Name.Function
    assert kinds["m"] in Name.Variable and kinds["grad"] in Name.Builtin
    assert kinds["adamw"] in Name.Namespace or kinds["adamw"] in Name
    assert kinds['"""doc"""'] in String.Doc and kinds["∘"] in Operator and kinds["bf16"] in Keyword.Type


def test_pyproject_registers_the_lexer_as_a_pygments_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pygments.lexers"]["geo"] == "geo.dsl.pygments_lexer:GeoLexer"


def _tm_patterns(node):
    for key in ("match", "begin", "end"):
        if key in node:
            yield node[key]
    for child in node.get("patterns", []):
        yield from _tm_patterns(child)
    for cap in node.get("captures", {}).values():
        yield from _tm_patterns(cap)


def test_the_textmate_grammar_is_valid_and_covers_the_keywords():
    assert TM["scopeName"] == "source.geo" and TM["fileTypes"] == ["geo"]
    patterns = list(_tm_patterns(TM)) + [p for r in TM["repository"].values() for p in _tm_patterns(r)]
    compiled = [re.compile(p) for p in patterns]  # the grammar uses only syntax Oniguruma and Python share
    for word in KEYWORDS:
        assert any(c.search(f" {word} x") and c.search(f" {word} x").group(0).strip().startswith(word)
                   for c in compiled), f"no TextMate pattern matches the keyword {word!r}"
    comment = re.compile(TM["repository"]["comment"]["match"], re.M)
    assert comment.search("W = W  # a comment").group(0) == "# a comment"


def test_an_installed_geo_is_found_by_pygments(tmp_path):
    """`pip install .` writes the entry point; Pygments then finds the lexer by name and by file name."""
    import subprocess
    import sys
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    code = ("import pygments.lexers as L; a = L.get_lexer_by_name('geo'); b = L.get_lexer_for_filename('x.geo'); "
            "print(type(a).__module__, type(b).__name__)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == ["geo.dsl.pygments_lexer", "GeoLexer"]
