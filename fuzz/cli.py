"""The `geo fuzz` subcommand: its arguments (`add_parser`, registered by geo's cli.py) and what it runs
(`run_cli`).

Building geo's argument parser imports this module for every command, so the engines are imported only when
`geo fuzz` runs.
"""
from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Callable

from ..dsl.diagnostics import GeoError

if TYPE_CHECKING:
    from ..dsl.source import SourceFile


def add_parser(sub) -> None:
    """The `geo fuzz` subparser, added to geo's subcommands `sub`."""
    f = sub.add_parser("fuzz", help="fuzz specs (properties, operator laws, step orders); explore compositions",
                       description="Fuzz each spec's optimizers with hypothesis; a failure prints the shrunk "
                                   "counterexample with a .geo and a Python reproduction (docs/fuzzing.md).")
    f.add_argument("files", nargs="*", metavar="FILE", help="a .geo file or a stdlib name")
    f.add_argument("--examples", type=int, default=None, metavar="N",
                   help="hypothesis examples per property (default: 50; --compose: 40 samples; --operators: 300)")
    f.add_argument("--seed", type=int, default=0, metavar="S", help="the hypothesis seed (default 0: reproducible)")
    f.add_argument("--backend", choices=("auto", "torch", "reference"), default="auto",
                   help="the backend checked against the reference (default: auto)")
    f.add_argument("--name", action="append", default=[], help="fuzz only this optimizer of the spec (repeatable)")
    f.add_argument("--property", action="append", default=[], metavar="P",
                   help="check only this property (repeatable): agree, finite, nonfinite, checkpoint, groups, "
                        "deterministic, laws")
    f.add_argument("--no-orders", action="store_true", help="skip random orders of the spec's steps")
    f.add_argument("--compose", nargs="+", metavar="STEP",
                   help="do these steps or operators commute? (steps of FILE or the stdlib, operators, or "
                        "expressions over W)")
    f.add_argument("--operators", action="store_true", help="fuzz random well-typed operator expressions")
    f.add_argument("--emitted", action="store_true",
                   help="every control character and code payload in every string position, through every "
                        "--emit stage (no raw character may come out; the Triton stage must be inert)")
    f.add_argument("--robustness", type=int, metavar="N",
                   help="run N generated and mutated spec texts through the whole front end")
    f.add_argument("--workers", type=int, default=None, help="processes for --robustness (default: up to 2)")
    f.add_argument("--hostile-every", type=int, default=8, metavar="K",
                   help="--robustness: every K-th input is a hostile case (files, links, surrogates, the kernel "
                        "cache, ranges, failures mid-step); 0: none (default: 8)")
    f.add_argument("-v", "--verbose", action="store_true", help="a line per property as it finishes")


def run_cli(args, source: Callable[[str], SourceFile]) -> int:
    """The `geo fuzz` command, on the arguments of `add_parser`; `source` reads a FILE argument (a path or a
    stdlib name). 0: every property held; 1: a failure or an invalid spec (diagnostics on stderr); 2: a usage
    error."""
    from .emitted import fuzz_emitted
    from .explorer import explore
    from .expressions import fuzz_operators
    from .properties import ALL_PROPERTIES
    from .robustness import robustness_campaign
    from .spec import DEFAULT_EXAMPLES, fuzz_spec

    def usage(message: str) -> int:
        print(f"geo fuzz: {message}", file=sys.stderr)
        return 2

    modes = sum(bool(x) for x in (args.compose, args.operators, args.emitted, args.robustness is not None))
    if modes > 1:
        return usage("--compose, --operators, --emitted and --robustness are separate runs; give one")
    if args.examples is not None and args.examples < 1:
        return usage("--examples takes a positive number")
    unknown = [p for p in args.property if p not in ALL_PROPERTIES]
    if unknown:
        return usage(f"unknown property {unknown[0]!r}; properties: {', '.join(ALL_PROPERTIES)}")
    if args.robustness is not None:
        if args.robustness < 1:
            return usage("--robustness takes a positive number of inputs")
        if args.hostile_every < 0:
            return usage("--hostile-every takes 0 (none) or a positive number")
        campaign = robustness_campaign(args.robustness, args.seed, args.workers, hostile_every=args.hostile_every)
        print(campaign.render())
        return 1 if campaign.failures else 0
    if args.operators:
        out = fuzz_operators(examples=args.examples or 300, seed=args.seed, backend=args.backend)
        print(f"geo fuzz --operators: {out.examples} random operator expressions, "
              f"{sum(c[3] for c in out.checks):.1f}s: " + ("ok" if out.ok else "FAILED"))
        for f in out.failures:
            print("\n" + f.render())
        return 0 if out.ok else 1
    if args.emitted:
        out = fuzz_emitted()
        print(f"geo fuzz --emitted: {out.examples} stage outputs, {sum(c[3] for c in out.checks):.1f}s: "
              + ("ok" if out.ok else "FAILED"))
        for f in out.failures:
            print("\n" + f.render())
        return 0 if out.ok else 1
    if args.compose:
        if len(args.compose) < 2:
            return usage("--compose takes at least two steps or operators")
        print(explore(args.compose, args.files, examples=args.examples or 40, seed=args.seed).render())
        return 0
    if not args.files:
        return usage("give a FILE to fuzz (or --compose, --operators, --emitted, --robustness)")
    properties = tuple(args.property) or ALL_PROPERTIES
    examples = args.examples or DEFAULT_EXAMPLES
    failed = False
    for f in args.files:
        start = time.perf_counter()
        try:
            src = source(f)
            out = fuzz_spec(src if os.path.isfile(f) else f, examples=examples, seed=args.seed, backend=args.backend,
                            properties=properties, names=args.name or None, compositions=not args.no_orders,
                            log=(lambda line: print(line, flush=True)) if args.verbose else None)
        except GeoError as err:
            print(err.render(), file=sys.stderr)
            failed = True
            continue
        seconds = time.perf_counter() - start
        props = sorted({c[1] for c in out.checks})
        verdict = "ok" if out.ok else f"FAILED ({len(out.failures)} counterexample{'s' if len(out.failures) > 1 else ''})"
        print(f"{f}: {verdict} — {out.examples} examples, {len(props)} propert{'y' if len(props) == 1 else 'ies'}, {seconds:.1f}s", flush=True)
        for note in out.notes:
            print(f"  note: {note}")
        for failure in out.failures:
            print("\n" + failure.render() + "\n", flush=True)
        failed |= not out.ok
    return 1 if failed else 0
