"""docs/operators.md is generated from the operator registry and current (`python -m geo.compiler.write_catalog`)."""
from __future__ import annotations

from geo.compiler import write_catalog
from geo.compiler.ops import registry


def test_the_catalog_page_is_current():
    assert write_catalog.DOCS.read_text(encoding="utf-8") == write_catalog.render(), \
        "docs/operators.md is stale: run `python -m geo.compiler.write_catalog`"
    assert write_catalog.main(["--check"]) == 0


def test_every_operator_has_an_entry_with_its_signature():
    text = write_catalog.render()
    for o in registry.all_ops():
        assert f"### `{o.name}`\n\n`{o.signature()}`" in text, o.name


def test_the_check_fails_on_a_stale_page(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "operators.md"
    stale.write_text(write_catalog.render().replace("msign", "msing", 1), encoding="utf-8")
    monkeypatch.setattr(write_catalog, "DOCS", stale)
    assert write_catalog.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert write_catalog.main([]) == 0 and write_catalog.main(["--check"]) == 0
    assert write_catalog.main(["--bogus"]) == 2
