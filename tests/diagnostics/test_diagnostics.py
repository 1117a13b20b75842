"""Diagnostics against expectations written in the specs themselves.

Each `tests/diagnostics/*.geo` file is one error situation. The errors it must produce are trailing comments
on the offending lines (as in Crafting Interpreters' test suite):

    let o = msign(b)   # error[GEO0203]
    let d = sgn(grad)  # error[GEO0102]: did you mean `sign`?

A mark is `error[CODE]`, optionally followed by `: TEXT` that must appear in that diagnostic's rendering;
a line may carry several marks. A case made of several files is a folder whose entry point is `main.geo`;
the marks of all its files count (an error may belong to a spec that `main.geo` uses).

`geo check` on a case must report exactly the marked (file, line, code) set, exit with status 1, and render
every diagnostic rustc-style: `--> FILE:LINE:COL`, the source line as written, carets under the span.
Bind-time errors (GEO0401, GEO0402) are tested through `geo.compile(...)(params)`, and a few renderings are
locked in golden `.err` files (`pytest --update-goldens` rewrites them).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import geo
from geo.cli import main
from geo.compiler.pipeline import front
from geo.dsl.diagnostics import Diagnostic, GeoError, render_all
from geo.dsl.loader import read_file
from geo.dsl.source import SourceFile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
GOLDEN = HERE / "golden"
MARK = re.compile(r"error\[(GEO\d{4})\](?::\s*(.*?))?(?=\s+error\[|\s*$)")


def _cases() -> list[Path]:
    files = sorted(HERE.glob("*.geo"))
    folders = sorted(p / "main.geo" for p in HERE.iterdir() if (p / "main.geo").is_file())
    return files + folders


CASES = _cases()


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _case_files(entry: Path) -> list[Path]:
    return sorted(entry.parent.glob("*.geo")) if entry.name == "main.geo" else [entry]


def marks(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, code, text or None) for every `# error[CODE]` mark of a file."""
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        _, hash_, comment = line.partition("# error[")
        if hash_:
            out.extend((number, m.group(1), m.group(2) or None) for m in MARK.finditer("error[" + comment))
    return out


def expected(entry: Path) -> dict[tuple[str, int, str], list[str]]:
    out: dict[tuple[str, int, str], list[str]] = {}
    for f in _case_files(entry):
        for line, code, text in marks(f):
            out.setdefault((_rel(f), line, code), []).extend([text] if text else [])
    return out


def diagnostics_of(rel: str) -> list[Diagnostic]:
    try:
        front(read_file(rel))
    except GeoError as err:
        return err.diagnostics
    return []


def key(d: Diagnostic) -> tuple[str, int, str]:
    return d.span.source.name, d.span.source.line_col(d.span.start)[0], d.code


def assert_rendered_rustc_style(d: Diagnostic) -> None:
    """The header, `--> FILE:LINE:COL`, the source line exactly as written, and carets under the span."""
    src = d.span.source
    line, col = src.line_col(d.span.start)
    text = d.render()
    lines = text.splitlines()
    assert lines[0] == f"error[{d.code}]: {d.message}"
    arrow = [ln for ln in lines if "--> " in ln]
    assert arrow and arrow[0].endswith(f"--> {src.name}:{line}:{col}"), text
    gutter = len(arrow[0]) - len(arrow[0].lstrip())
    shown = f"{line:>{gutter}} | {src.line_text(line)}".rstrip()
    assert shown in lines, f"the source line is not shown as written:\n{text}"
    after = lines[lines.index(shown) + 1:]
    carets = [ln for ln in after if ln.startswith(" " * gutter + " | ") and "^" in ln]
    assert carets, f"no carets:\n{text}"
    assert carets[0][gutter + 3 + col - 1] == "^", f"the carets do not start under column {col}:\n{text}"


@pytest.mark.parametrize("entry", CASES, ids=lambda p: _rel(p).removeprefix("tests/diagnostics/"))
def test_case(entry: Path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # diagnostics name files as given on the command line: keep them relative
    want = expected(entry)
    assert want, f"{entry.name} marks no error; every case file is an error situation"
    rel = _rel(entry)
    diags = diagnostics_of(rel)
    got = {key(d) for d in diags}
    missing = sorted(set(want) - got)
    unexpected = sorted(got - set(want))
    assert not missing and not unexpected, (
        f"missing: {missing}\nunexpected: {unexpected}\n\n{render_all(diags)}")
    for d in diags:
        assert_rendered_rustc_style(d)
    for k, texts in want.items():
        rendered = "\n".join(d.render() for d in diags if key(d) == k)
        for text in texts:
            assert text in rendered, f"{k}: `{text}` is not in\n{rendered}"
    # The command line reports the same, on stderr, with exit status 1.
    capsys.readouterr()
    assert main(["check", rel]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == render_all(diags) + "\n"


def test_the_marks_parse():
    assert marks(HERE / "hyper_not_static.geo") == [
        (2, "GEO0302", "`nesterov`"), (2, "GEO0302", "`adjust`")]


def test_errors_come_in_source_order(monkeypatch):
    monkeypatch.chdir(ROOT)
    diags = diagnostics_of("tests/diagnostics/multiple_errors.geo")
    assert len(diags) == 8
    assert [d.span.start for d in diags] == sorted(d.span.start for d in diags)


# ---- bind time: the spec is fine, the parameters are not -----------------------------------------------
def _param(*shape: int) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(*shape))


def test_param_matching_no_rule():
    Muon = geo.compile("muon")
    with pytest.raises(geo.GeoError) as info:
        Muon([("blocks.0.attn.weight", _param(4, 4)), ("blocks.0.ln.bias", _param(4))])
    (d,) = info.value.diagnostics
    assert d.code == "GEO0401"
    text = str(info.value)
    assert "parameter `blocks.0.ln.bias` of shape (4,) matches no rule of `muon`" in text
    assert "--> stdlib/muon.geo:" in text
    assert "for matrix W:" in text and "does not select it" in text
    assert "role: bias" in text


def test_a_parameter_outside_the_across_block():
    Opt = geo.compile("""
optimizer some_layers(lr = 0.1):
    across hidden matrix layers:
        let update = subset(layers, 1)
    for tensor W:
        when update > 0:
            W = W - lr * grad
""")
    with pytest.raises(geo.GeoError) as info:
        Opt([("0.weight", _param(4, 3)), ("0.bias", _param(4))])
    (d,) = info.value.diagnostics
    assert d.code == "GEO0404"
    text = str(info.value)
    assert "parameter `0.bias` of shape (4,) reads an `across` value, but the `across` block does not cover it" in text
    assert "across hidden matrix layers" in text and "help: widen the block's selector" in text


def test_a_complex_parameter():
    AdamW = geo.compile("adamw")
    with pytest.raises(geo.GeoError) as info:
        AdamW([("z", torch.nn.Parameter(torch.zeros(3, dtype=torch.complex64))), ("w", _param(3))])
    (d,) = info.value.diagnostics
    assert d.code == "GEO0403"
    text = str(info.value)
    assert "parameter `z` has dtype complex64; `adamw` optimizes real floating-point parameters" in text
    assert "--> stdlib/adamw.geo:" in text and "help: optimize a complex parameter as its real view" in text


def test_every_unmatched_param_is_reported():
    with pytest.raises(geo.GeoError) as info:
        geo.compile("muon")([_param(3), _param(2, 2), _param(5)])
    assert [d.code for d in info.value.diagnostics] == ["GEO0401", "GEO0401"]
    assert "`param0` of shape (3,)" in str(info.value) and "`param2` of shape (5,)" in str(info.value)


HEADS = """\
optimizer per_head(lr = 0.1):
    for matrix W as heads(4):
        W = W - lr * msign(grad)
"""


def test_shape_that_does_not_fit_the_view():
    with pytest.raises(geo.GeoError) as info:
        geo.compile(HEADS)([("blocks.0.attn.qkv.weight", _param(6, 8))])
    (d,) = info.value.diagnostics
    assert d.code == "GEO0402"
    text = str(info.value)
    assert "parameter `blocks.0.attn.qkv.weight` of shape (6, 8) does not fit `as heads(4)`" in text
    assert "6 rows do not split into 4 equal heads" in text
    assert_rendered_rustc_style(d)
    geo.compile(HEADS)([("blocks.0.attn.qkv.weight", _param(8, 8))])  # 8 rows split into 4 heads


def test_bind_time_error_is_not_a_spec_error():
    # The spec checks; only binding fails.
    assert main(["check", "muon"]) == 0


# ---- errors that name no line: which spec, which file --------------------------------------------------
def test_no_optimizer_to_compile(capsys):
    with pytest.raises(geo.GeoError) as info:
        geo.compile("step s(W; lr = 0.1):\n    W = W - lr * grad\n")
    assert [d.code for d in info.value.diagnostics] == ["GEO0115"]
    assert "the spec defines no optimizer" in str(info.value)


def test_ambiguous_optimizer_needs_a_name():
    text = "use sgd, adamw\noptimizer a = adamw_step\noptimizer b = adamw_step\n"
    with pytest.raises(geo.GeoError) as info:
        geo.compile(text)
    assert [d.code for d in info.value.diagnostics] == ["GEO0115"]
    assert "optimizers: a, b" in str(info.value)
    assert geo.compile(text, name="b").__name__ == "b"


def test_unknown_stdlib_name():
    with pytest.raises(geo.GeoError) as info:
        geo.compile("muonn")
    (d,) = info.value.diagnostics
    assert d.code == "GEO0501" and "did you mean `muon`?" in str(info.value)


def test_unreadable_file(tmp_path):
    (tmp_path / "latin1.geo").write_bytes(b"# caf\xe9\noptimizer x = y\n")
    for path, why in [(tmp_path / "absent.geo", "no such file"), (tmp_path, "it is a directory"),
                      (tmp_path / "latin1.geo", "not UTF-8 text")]:
        with pytest.raises(geo.GeoError) as info:
            geo.compile(path)
        assert [d.code for d in info.value.diagnostics] == ["GEO0601"]
        assert why in str(info.value)


def test_a_chain_of_uses_too_deep(tmp_path):
    """1000 specs, each `use`ing the next: GEO0503 at the 65th (a RecursionError, exit 3, before the fix)."""
    for i in range(1000):
        (tmp_path / f"m{i}.geo").write_text((f"use m{i + 1}\n" if i < 999 else "")
                                             + f"optimizer o{i}(lr = 0.1):\n    for tensor W:\n        W = W\n")
    with pytest.raises(geo.GeoError) as info:
        geo.compile(tmp_path / "m0.geo")
    assert [d.code for d in info.value.diagnostics] == ["GEO0503"]
    assert "more than 64 deep" in str(info.value)


def test_a_chain_of_optimizers_too_deep():
    """1000 optimizers, each made of the next (RecursionError before the fix)."""
    text = "".join(f"optimizer a{i}(lr = 0.1) = a{i - 1}\n" for i in range(1000, 0, -1))
    with pytest.raises(geo.GeoError) as info:
        geo.compile(text + "optimizer a0(lr = 0.1):\n    for tensor W:\n        W = W - lr * grad\n", name="a1000")
    assert {d.code for d in info.value.diagnostics} == {"GEO0109"}
    assert "nested more than 64 deep" in str(info.value)


# ---- a few renderings, locked byte for byte ------------------------------------------------------------
GOLDEN_CASES = ["msign_vector.geo", "multiple_errors.geo", "runtime_repeat_count.geo", "syntax_missing_colon.geo",
                "syntax_unclosed_paren.geo", "duplicate_definitions.geo", "use_cycle/main.geo"]


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_golden_rendering(case: str, golden, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    assert main(["check", f"tests/diagnostics/{case}"]) == 1
    golden(GOLDEN / (case.removesuffix(".geo").replace("/", "__") + ".err"), capsys.readouterr().err)


ROUTED = """\
\"\"\"Muon for hidden matrices, sign descent for embeddings.\"\"\"
optimizer routed(lr = 0.02):
    for hidden matrix W:
        W = W - lr * msign(grad)

    for embedding W:
        W = W - lr * sign(grad)
"""


def test_golden_bind_time_rendering(golden):
    with pytest.raises(geo.GeoError) as info:
        geo.compile(ROUTED)([("blocks.0.ln.bias", _param(4))])
    golden(GOLDEN / "bind_no_rule.err", info.value.render() + "\n")
    with pytest.raises(geo.GeoError) as info:
        geo.compile(HEADS)([("blocks.0.attn.qkv.weight", _param(6, 8))])
    golden(GOLDEN / "bind_view.err", info.value.render() + "\n")


# ---- the catalogue: every code the code base emits is documented and tested ----------------------------
EMITTED = re.compile(r"[\"'](GEO\d{4})[\"']")
# Codes that no `.geo` case can produce, with the test that covers each.
TESTED_IN_PYTHON = {
    "GEO0115": "test_no_optimizer_to_compile",
    "GEO0401": "test_param_matching_no_rule",
    "GEO0402": "test_shape_that_does_not_fit_the_view",
    "GEO0403": "test_a_complex_parameter",
    "GEO0503": "test_a_chain_of_uses_too_deep",
    "GEO0404": "test_a_parameter_outside_the_across_block",
    "GEO0601": "test_unreadable_file",
}
# Emitted by code that no spec reaches today (kept for the catalogue; see docs/errors.md).
UNREACHABLE: set[str] = set()


def emitted_codes() -> set[str]:
    codes = set()
    for folder in ("dsl", "compiler", "runtime"):
        for path in (ROOT / folder).rglob("*.py"):
            codes |= set(EMITTED.findall(path.read_text()))
    codes.add("GEO0204")  # ShapeError's default code (compiler/types.py), used without being named
    return codes


def test_every_emitted_code_has_a_case():
    marked = {code for entry in CASES for (_, _, code) in expected(entry)}
    assert all(callable(globals().get(test)) for test in TESTED_IN_PYTHON.values())
    uncovered = emitted_codes() - marked - set(TESTED_IN_PYTHON) - UNREACHABLE
    assert not uncovered, f"no tests/diagnostics case produces {sorted(uncovered)}"


def test_every_emitted_code_is_documented():
    documented = set(re.findall(r"^## (GEO\d{4})", (ROOT / "docs" / "errors.md").read_text(), re.M))
    assert emitted_codes() <= documented, f"docs/errors.md lacks {sorted(emitted_codes() - documented)}"
    assert documented <= emitted_codes(), f"docs/errors.md documents codes nothing emits: " \
                                          f"{sorted(documented - emitted_codes())}"


def test_an_unknown_dtype_lists_every_accepted_value():
    """GEO0206's help for msign's `dtype` names "param" too (compute in the parameter's own dtype)."""
    spec = "optimizer o(lr = 0.1):\n    for matrix W:\n        W = W - lr * msign(grad, dtype = \"fp8\")\n"
    with pytest.raises(GeoError) as caught:
        front(SourceFile("spec.geo", spec))
    [d] = caught.value.diagnostics
    assert d.code == "GEO0206" and '"param"' in d.help and '"bf16"' in d.help


def test_a_keyword_diagnostic_points_at_the_keyword():
    spec = "optimizer o(lr = 0.1):\n    for matrix W:\n        W = W - lr * msign(grad, stepz = 3)\n"
    with pytest.raises(GeoError) as caught:
        front(SourceFile("spec.geo", spec))
    [d] = caught.value.diagnostics
    assert d.code == "GEO0103" and d.span.text == "stepz"
