"""Rebuilds dsl/grammar_tables.json, lark's LALR tables for dsl/grammar.lark, after a grammar change:

    python -m geo.dsl.write_tables

Written whole to a temporary file and renamed over the old one, so a failed run leaves the old tables."""
from __future__ import annotations

from .parser import GRAMMAR, TABLES, _serialized_tables


def main() -> None:
    tmp = TABLES.with_suffix(".json.tmp")
    tmp.write_text(_serialized_tables(GRAMMAR.read_text()))
    tmp.replace(TABLES)
    print(f"wrote {TABLES}")


if __name__ == "__main__":
    main()
