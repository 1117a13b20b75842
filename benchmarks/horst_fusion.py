"""HORST's step on the inductor backend, two geo trees against each other: before and after a change.

    python benchmarks/horst_fusion.py --before /tmp/pp-main --after /tmp/pp-horst --rounds 2

Each PATH is a directory holding `geo` (a link to a checkout), put on PYTHONPATH of a child process. A child
builds GPT-2 small's hidden matrices (bench_step.py's ParamSet, 84.9 M parameters) and steps, interleaved
(bench_step.measure_interleaved: every optimizer alive at once, in turn, parameters reset before each step),
geo's horst on the inductor backend, torch.optim.AdamW(fused=True) and torch.optim.AdamW(foreach=True) on the
same matrices; the ratio horst/fused AdamW is of GB/s (bytes each step must move over its median time), taken
within the child, so the two trees' ratios do not depend on load that differs between children. The children
alternate (before, after, after, before, ...) over --rounds, with bench_step's steady malloc.

`--passes` adds a child that times single passes over a tensor of the same size: a copy, an add, exp and
sinh (ATen's kernels), and Inductor kernels of exp, expm1, sinh and of the hypentropy mirror step alone
(read x and s, write x; geo's `_hypentropy_step` of the tree given as --after) against x + s: what the
step's transcendental functions cost against its memory traffic.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def child(steps: int, warmup: int) -> dict:
    import torch
    import bench_step as bs
    import geo
    ps = bs.ParamSet("small", "cpu")
    ps.snapshot()
    cases = [bs._torch_case("torch.optim.AdamW fused=True", "hidden", "AdamW", fused=True, **bs.ADAMW),
             bs._torch_case("torch.optim.AdamW foreach=True", "hidden", "AdamW", foreach=True, **bs.ADAMW),
             bs._geo_case("horst", "hidden", "inductor", "skip")]
    load0 = bs._loadavg()
    rows = bs.measure_interleaved(cases, ps, steps, warmup, "cpu", None)
    tree = Path(geo.__file__).resolve().parent
    out = {"geo": str(tree), "git": _commit(tree), "threads": torch.get_num_threads(),
           "load": [load0, bs._loadavg()], "malloc": os.environ.get("GLIBC_TUNABLES", "default"), "rows": []}
    for r in rows:
        out["rows"].append({"label": r.label, "params": r.params, "median_ms": r.median_ms, "min_ms": r.min_ms,
                            "first_ms": r.first_ms, "bytes": r.step_bytes, "gbps": r.gbps, "peak_mb": r.peak_mb})
    return out


def _commit(tree: Path) -> str:
    """The commit of the geo tree measured (bench_step's `_git` reads the working directory's), "+" if dirty."""
    def git(*args):
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True).stdout.strip()
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + ("+" if dirty else "")


def passes(n: int, reps: int) -> dict:
    """Median ms of one pass over n float32 elements (n = GPT-2 small's hidden matrices)."""
    import torch
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, generator=g) * 0.02
    s = (torch.randn(n, generator=g) * 0.2).clamp(-5, 5)
    out = torch.empty_like(x)
    beta = 5e-3

    from geo.compiler.ops.mirror import _hypentropy_step  # the arithmetic the rewrite emits, op for op

    def mirror(x, s):
        return _hypentropy_step(x, s, beta)

    fused_mirror = torch.compile(lambda x, s: x.copy_(mirror(x, s)))
    fused_add = torch.compile(lambda x, s: x.copy_(x + s))
    fused_exp = torch.compile(lambda x, s: x.copy_(torch.exp(s)))
    fused_expm1 = torch.compile(lambda x, s: x.copy_(torch.expm1(s)))
    fused_sinh = torch.compile(lambda x, s: x.copy_(torch.sinh(s)))
    work = x.clone()
    fns = {"copy (read 1, write 1)": lambda: out.copy_(x),
           "add x + s (read 2, write 1)": lambda: torch.add(x, s, out=out),
           "exp (read 1, write 1)": lambda: torch.exp(s, out=out),
           "sinh (read 1, write 1)": lambda: torch.sinh(s, out=out),
           "inductor: x ← x + s": lambda: fused_add(work, s),
           "inductor: x ← exp(s)": lambda: fused_exp(work, s),
           "inductor: x ← expm1(s)": lambda: fused_expm1(work, s),
           "inductor: x ← sinh(s)": lambda: fused_sinh(work, s),
           "inductor: x ← mirror_step(x, s, hypentropy)": lambda: fused_mirror(work, s)}
    res = {}
    for name, fn in fns.items():
        fn()
        fn()  # compile, warm
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - t0))
        res[name] = {"median_ms": statistics.median(times), "min_ms": min(times)}
    return {"n": n, "threads": torch.get_num_threads(), "passes": res}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="a directory holding `geo` (PYTHONPATH of the first tree)")
    ap.add_argument("--after", required=True, help="a directory holding `geo` (PYTHONPATH of the second tree)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--passes", action="store_true", help="also time single passes (copy, exp, the fused step)")
    ap.add_argument("--json", help="write every child's result here")
    ap.add_argument("--child", choices=("step", "passes"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "step":
        print(json.dumps(child(args.steps, args.warmup)))
        return 0
    if args.child == "passes":
        print(json.dumps(passes(84_934_656, 7)))
        return 0
    import bench_step as bs
    results = []
    order = []
    for r in range(args.rounds):
        pair = [("before", args.before), ("after", args.after)]
        order += pair if r % 2 == 0 else pair[::-1]
    jobs = [("step", tag, path) for tag, path in order] + ([("passes", "after", args.after)] if args.passes else [])
    for kind, tag, path in jobs:
        env = {**os.environ, "PYTHONPATH": path, "GLIBC_TUNABLES": bs.STEADY_MALLOC}
        t0 = time.time()
        proc = subprocess.run([sys.executable, __file__, "--before", args.before, "--after", args.after,
                               "--steps", str(args.steps), "--warmup", str(args.warmup), "--child", kind],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res.update(kind=kind, tree=tag, wall_s=time.time() - t0)
        results.append(res)
        print(f"{kind} {tag} ({res['wall_s']:.0f} s):", file=sys.stderr)
        if kind == "step":
            fused = next(r for r in res["rows"] if "fused=True" in r["label"])
            for row in res["rows"]:
                print(f"  {row['label']:40s} {row['median_ms']:9.1f} ms (min {row['min_ms']:.1f})  "
                      f"{row['gbps']:6.2f} GB/s  ×{row['gbps'] / fused['gbps']:.3f} of fused  "
                      f"peak {row['peak_mb'] or 0:.0f} MB", file=sys.stderr)
            print(f"  load {res['load']}, geo {res['geo']} {res['git']}", file=sys.stderr)
        else:
            for name, v in res["passes"].items():
                print(f"  {name:45s} {v['median_ms']:8.1f} ms (min {v['min_ms']:.1f})", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
