"""Writes docs/operators.md, the operator catalog, from the registry (compiler/ops): after adding or changing an
operator,

    python -m geo.compiler.write_catalog            # rewrite docs/operators.md
    python -m geo.compiler.write_catalog --check    # exit 1 if it is stale (tests/unit/test_operator_catalog.py)

Every entry is the operator's own record: signature (static parameters are compile-time), kind, family module,
the doc with its math and source, the declared input domain, laws and rewrites — the same text `geo doc OP`
prints, so the page cannot say something the code does not. Written whole to a temporary file and renamed.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from .ops import registry

DOCS = Path(__file__).resolve().parents[1] / "docs" / "operators.md"

_KIND_TITLES = {
    registry.ELEMENTWISE: "Elementwise (fused into kernels)",
    registry.REDUCTION: "Reductions",
    registry.MATRIX: "Matrix operators (kernel boundaries)",
    registry.SHAPE: "Shape facts and scale factors (host scalars)",
    registry.INIT: "Initial values of states",
    registry.RANDOM: "Random draws (keyed by the optimizer's seed, the parameter and the step)",
}


def _domain(d: registry.Domain) -> str:
    if d.choices:
        return "one of " + ", ".join(f"`{c!r}`" for c in d.choices)
    lo = "−∞" if d.low == -math.inf else f"{d.low:g}"
    hi = "∞" if d.high == math.inf else f"{d.high:g}"
    return f"[{lo}, {hi}]"


def _sharding(o: registry.OpDef) -> str:
    """The sharding facet in words (runtime/distributed.py reads it)."""
    if not isinstance(o.sharding, registry.Sharding):
        return o.sharding.__doc__ or "depends on its static arguments"
    return o.sharding.describe()


def _entry(o: registry.OpDef) -> list[str]:
    family = o.module.rsplit(".", 1)[-1]
    lines = [f"### `{o.name}`", "", f"`{o.signature()}` — {o.kind}, `compiler/ops/{family}.py`; sharded by rows: "
             f"{_sharding(o)}", "", "```text", *o.doc.rstrip().splitlines(), "```", ""]
    if o.domain:
        lines += ["Inputs it is meant for: " + "; ".join(f"`{name}` {_domain(d)}" for name, d in o.domain), ""]
    if o.laws:
        lines += ["Laws (checked by tests/properties and `geo fuzz`):", ""]
        lines += [f"- {law.name}" for law in o.laws] + [""]
    if o.rewrites:
        lines += ["Rewrites:", ""]
        lines += [f"- {rw.name} ({rw.stage})" for rw in o.rewrites] + [""]
    return lines


def render() -> str:
    ops = registry.all_ops()
    out = ["# Operator catalog", "",
           "Generated from the operator registry by `python -m geo.compiler.write_catalog`; do not edit by hand "
           "(a test fails when it is stale). `geo doc OP` prints the same entry. Parameters marked `static` are "
           "compile-time values (part of the kernel key); the others are runtime values. The language that "
           "calls them: docs/language.md.", ""]
    for kind in registry.KINDS:
        names = [o.name for o in ops if o.kind == kind]
        if names:
            out.append(f"- {_KIND_TITLES[kind]}: " + ", ".join(f"[`{n}`](#{n})" for n in names))
    out.append("")
    for kind in registry.KINDS:
        members = [o for o in ops if o.kind == kind]
        if not members:
            continue
        out += [f"## {_KIND_TITLES[kind]}", ""]
        for o in members:
            out += _entry(o)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if args == ["--check"]:
        current = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
        if current != text:
            print(f"{DOCS} is stale: run `python -m geo.compiler.write_catalog`", file=sys.stderr)
            return 1
        print(f"{DOCS} is current")
        return 0
    if args:
        print("usage: python -m geo.compiler.write_catalog [--check]", file=sys.stderr)
        return 2
    tmp = DOCS.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(DOCS)
    print(f"wrote {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
