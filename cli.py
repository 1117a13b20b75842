"""The `geo` command line: check, compile --emit, doc, fuzz, bench.

Exit status: 0 success, 1 a user error (rendered diagnostics on stderr), 2 a usage error, 3 a bug in geo.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from .dsl.diagnostics import GeoError, InternalError

EMITS = ("ast", "ir", "opt", "plan", "torch", "triton")  # compiler.pipeline.STAGES, without importing it


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="geo", description="The geo optimizer language and compiler.")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="check specs and report every error")
    c.add_argument("files", nargs="+", metavar="FILE", help="a .geo file or a stdlib name")
    k = sub.add_parser("compile", help="compile a spec and print a stage")
    k.add_argument("file", metavar="FILE", help="a .geo file or a stdlib name")
    k.add_argument("--emit", choices=EMITS, default="opt", help="the stage to print (default: opt)")
    k.add_argument("--name", help="the optimizer to compile, when the spec defines several")
    k.add_argument("--rank", type=int, default=None, choices=range(5),
                   help="specialize rules that select any rank to parameters of this rank")
    k.add_argument("--static", action="append", default=[], metavar="NAME=VALUE",
                   help="a static hyperparameter value (a literal), e.g. --static nesterov=false")
    e = sub.add_parser("explain", help="per parameter: the rule, state bytes, kernels, bytes moved and FLOPs")
    e.add_argument("file", metavar="FILE", help="a .geo file or a stdlib name")
    e.add_argument("--name", help="the optimizer, when the spec defines several")
    e.add_argument("--param", action="append", default=[], metavar="NAME=SHAPE[:ROLE]",
                   help="a parameter to explain, e.g. h.0.mlp.c_fc.weight=3072x768, in model order (repeatable; "
                        "default: a GPT-2-small layer); :ROLE gives its role as roles= does (e.g. :hidden.T)")
    e.add_argument("--dtype", choices=("fp32", "bf16", "fp16", "fp64"), default="fp32", help="the parameters' dtype")
    e.add_argument("--model", choices=("gpt2-small", "gpt2-small-layer"), default=None,
                   help="explain every parameter of this model (instead of --param)")
    e.add_argument("--world-size", type=int, default=None, metavar="N",
                   help="the communication per step on N ranks under FSDP2 (parameters split by rows): collectives "
                        "and bytes, per parameter and in total (docs/distributed.md)")
    d = sub.add_parser("doc", help="the operator catalog, one operator's documentation, or the stdlib's optimizers")
    d.add_argument("op", nargs="?", help="an operator name")
    d.add_argument("--stdlib", action="store_true",
                   help="list every stdlib optimizer (each is a name geo.compile and every command take)")
    from .fuzz.cli import add_parser as add_fuzz_parser
    add_fuzz_parser(sub)
    sub.add_parser("bench", add_help=False, help="step time against torch.optim on GPT-2 shapes (geo bench --help)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        # A file name with a byte that is not UTF-8 reaches us as a lone surrogate (os.fsdecode); printed as
        # `\udcff`, it is shown rather than raising UnicodeEncodeError.
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # a stream that is not a TextIOWrapper (captured output)
            pass
    bench = argv[:1] == ["bench"]  # its options are the benchmark script's own
    args = None if bench else _parser().parse_args(argv)
    try:
        if bench:
            return _bench(argv[1:])
        if args.command == "check":
            return _check(args.files)
        if args.command == "compile":
            return _compile(args)
        if args.command == "fuzz":
            from .fuzz.cli import run_cli
            return run_cli(args, _source)
        if args.command == "explain":
            return _explain(args)
        if args.stdlib:
            return _doc_stdlib()
        return _doc(args.op)
    except GeoError as err:
        print(err.render(), file=sys.stderr)
        return 1
    except InternalError as err:
        print(str(err), file=sys.stderr)
        return 3
    except BrokenPipeError:
        return 0
    except Exception as err:  # a bug in geo: say so, without a traceback (GEO_DEBUG=1 shows it)
        if os.environ.get("GEO_DEBUG"):
            raise
        print(f"internal error: {type(err).__name__}: {err}\n"
              "  = note: this is a bug in geo, not in your spec; please report it with the spec that triggered it "
              "(GEO_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 3


def _bench(argv: list[str]) -> int:
    """`geo bench`: benchmarks/bench_step.py of the source tree (an editable install has it next to this file)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent / "benchmarks" / "bench_step.py"
    if not path.is_file():
        print(f"geo bench: {path} is missing: the benchmarks ship with the source tree, not with the package; "
              "run it from a checkout with an editable install (pip install -e .)", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("geo_bench_step", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    try:
        return module.main(argv, prog="geo bench")
    except SystemExit as done:  # argparse: --help (0) or a usage error (2)
        return done.code if isinstance(done.code, int) else 2


def _source(arg: str):
    """A command-line FILE: a stdlib name (an identifier that names no file here) or a path, never spec text."""
    from .dsl.loader import read_file, source_for
    if arg.isidentifier() and not os.path.isfile(arg):
        return source_for(arg)
    return read_file(arg)


def _check(files: list[str]) -> int:
    from .compiler.pipeline import front
    failed = []
    for f in files:
        try:
            _, checked = front(_source(f))
            names = ", ".join(checked.optimizers) or "no optimizers"
            print(f"{f}: ok ({names})")
        except GeoError as err:
            print(err.render(), file=sys.stderr)
            failed.append(f)
    return 1 if failed else 0


def _literal(text: str):
    import ast as pyast
    if text in ("true", "false"):
        return text == "true"
    try:
        value = pyast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, (int, float, str, tuple, bool)) else text


def _compile(args) -> int:
    from .compiler.pipeline import StaticOverrideError, emit
    statics = {}
    for item in args.static:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"geo: --static takes NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        statics[name] = _literal(value)
    try:
        print(emit(_source(args.file), args.emit, name=args.name, statics=statics, rank=args.rank))
    except StaticOverrideError as err:
        print(f"geo: --static {err.name}: {err}", file=sys.stderr)
        return 2
    return 0


def _explain(args) -> int:
    from .compiler.types import torch_dtype
    from .runtime import explain as ex
    from .runtime.api import compile as compile_spec
    try:
        parsed = [ex.parse_param(p) for p in args.param]
    except ValueError as err:
        print(f"geo: {err}", file=sys.stderr)
        return 2
    params = {p[0]: p[1] for p in parsed} or (ex.MODELS[args.model]() if args.model else ex.GPT2_SMALL_LAYER)
    roles = {p[0]: p[2] for p in parsed if len(p) == 3}
    opt = compile_spec(_source(args.file), name=args.name)
    if args.world_size is not None:
        try:
            print(ex.explain_communication(opt, params, args.world_size, torch_dtype(args.dtype), roles))
        except ValueError as err:  # a world size below 1
            print(f"geo: {err}", file=sys.stderr)
            return 2
        return 0
    print(ex.explain(opt, params, torch_dtype(args.dtype), roles))
    return 0


def _doc_stdlib() -> int:
    from .dsl.loader import stdlib_catalog
    rows = stdlib_catalog()
    width = max(len(name) for name, _, _ in rows)
    where = max(len(path) for _, path, _ in rows)
    for name, path, summary in rows:
        print(f"{name:<{width}}  {path:<{where}}  {summary}")
    return 0


def _doc(name: str | None) -> int:
    from .compiler.ops import registry
    if name is None:
        for o in registry.all_ops():
            print(f"{o.signature():60s} [{o.kind}] {o.summary()}")
        return 0
    o = registry.get(name)
    if o is None:
        from .dsl.diagnostics import did_you_mean
        print(f"geo doc: no operator `{name}`" + (f"; {did_you_mean(name, registry.names())}" if did_you_mean(name, registry.names()) else ""),
              file=sys.stderr)
        return 1
    print(f"{o.signature()}   [{o.kind}]\n\n{o.doc}")
    for law in o.laws:
        print(f"  law: {law.name}")
    for rw in o.rewrites:
        print(f"  rewrite: {rw.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
