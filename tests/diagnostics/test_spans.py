"""Every span of every diagnostic lies inside its file, for any text (hypothesis).

The texts are stdlib specs with a few random edits (a deleted slice, an inserted token, a duplicated or
re-indented line, ...), so most are nearly valid and reach deep into the checker; plus pure noise. For each
text the front end must either accept it or raise `GeoError`, never anything else, and every diagnostic must
point inside a real file: the span within the text, `--> FILE:LINE:COL` naming a line that exists, that line
shown as written, carets no further right than the line's end. A spec that checks must also specialize.

Derandomized and modest by default; for a deeper, random search:
    GEO_SPAN_EXAMPLES=2000 python -m pytest tests/diagnostics/test_spans.py
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.compiler import pipeline
from geo.dsl.diagnostics import Diagnostic, GeoError
from geo.dsl.loader import STDLIB, stdlib_names
from geo.dsl.source import SourceFile
from geo.dsl.source import shown as visible

MAX_EXAMPLES = int(os.environ.get("GEO_SPAN_EXAMPLES", "150"))
DERANDOMIZE = "GEO_SPAN_EXAMPLES" not in os.environ
SETTINGS = settings(max_examples=MAX_EXAMPLES, derandomize=DERANDOMIZE, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))

TEXTS = {name: (STDLIB / f"{name}.geo").read_text() for name in stdlib_names()}
VOCAB = ["(", ")", "[", "]", ":", ",", "=", "==", "\n", "    ", "\t", "#", '"', '"""', "∘", ">>", "@", "^", "-",
         "*", ".T", "let ", "state ", "static ", "if ", "else:", "repeat ", "return ", "use ", "for ", "def ",
         "step ", "optimizer ", "as heads(3)", "msign", "lerp", "grad", "t", "W", "lr", "1e999", "0", "-1",
         "true", "9999999", "(1, 2)", "not ", "and", "\\\n", "\r\n", "\x00", "é", "\ufeff"]


@st.composite
def mutated(draw) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(TEXTS)))
    text = TEXTS[name]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "dup_line", "drop_line", "indent", "swap"]))
        lines = text.split("\n")
        if kind in ("dup_line", "drop_line", "indent", "swap") and len(lines) > 1:
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "dup_line":
                lines.insert(i, lines[i])
            elif kind == "drop_line":
                del lines[i]
            elif kind == "indent":
                lines[i] = " " * draw(st.integers(1, 5)) + lines[i]
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
            continue
        i = draw(st.integers(0, len(text)))
        if kind == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 12)):]
        elif kind == "insert":
            text = text[:i] + draw(st.sampled_from(VOCAB)) + text[i:]
        else:
            text = text[:i] + draw(st.sampled_from(VOCAB)) + text[i + 1:]
    return name, text


def check_text(text: str) -> list[Diagnostic]:
    source = SourceFile("<mutated>", text)
    try:
        _, checked = pipeline.front(source)
    except GeoError as err:
        assert err.diagnostics
        for d in err.diagnostics:
            assert_inside(d, source)
        return err.diagnostics
    # A spec that checks compiles: every rule of every optimizer, with its default static values.
    for info in checked.optimizers.values():
        for rule in info.rules:
            statics = rule.statics()
            for rank, active in rule.variants():  # (a rule whose statics read the rank has one per rank)
                try:
                    pipeline.specialize(checked, rule, statics, rank, active)
                except GeoError as err:  # a value only the specialization meets (a static out of range)
                    for d in err.diagnostics:
                        assert_inside(d, source)
    return []


def assert_inside(d: Diagnostic, source: SourceFile) -> None:
    for label in [d.primary, *d.secondary]:
        span = label.span
        src = span.source
        assert src is source or src.name.startswith("stdlib/") or not src.text, f"{d.code}: a span in {src.name}"
        assert 0 <= span.start <= span.end <= len(src.text), (d.code, span.start, span.end, len(src.text))
    src = d.span.source
    rendered = d.render()
    if not src.text:  # a file-level error: it names the file, no line
        assert f"--> {src.name}" in rendered
        return
    line, col = src.line_col(d.span.start)
    assert 1 <= line <= src.line_count
    assert 1 <= col <= len(src.line_text(line)) + 1, (d.code, line, col)
    lines = rendered.split("\n")
    arrow = next(ln for ln in lines if "--> " in ln)
    assert arrow.endswith(f"--> {src.name}:{line}:{col}"), rendered
    gutter = len(arrow) - len(arrow.lstrip())
    shown = f"{line:>{gutter}} | {visible(src.line_text(line))}".rstrip()  # (controls show as their pictures)
    assert shown in lines, rendered
    carets = next(ln for ln in lines[lines.index(shown) + 1:] if "^" in ln)
    assert carets.index("^") == gutter + 3 + col - 1, rendered


@SETTINGS
@given(mutated())
def test_spans_of_mutated_stdlib_specs(case):
    _, text = case
    check_text(text)


NOISE = st.text(alphabet=st.sampled_from(list("abcdefgW_()[]:,=+-*/@^<>!?.#\"' \t\n0123456789∘é")), max_size=200)


@SETTINGS
@given(NOISE)
def test_spans_of_noise(text):
    check_text(text)


@SETTINGS
@given(st.sampled_from(sorted(TEXTS)), st.data())
def test_spans_of_truncated_specs(name, data):
    """Every prefix of a spec (an editor's buffer while typing) gives a clean verdict."""
    text = TEXTS[name]
    check_text(text[:data.draw(st.integers(0, len(text)))])


def test_unmutated_stdlib_specs_check():
    for name, text in TEXTS.items():
        assert check_text(text) == [], name
