"""Step time per parameter from 1M to 350M parameters: geo's AdamW (the inductor backend, gradient check on)
against torch.optim.AdamW(fused=True) and geo's torch path, interleaved per size. A line that stays flat is
linear scaling; a cliff (a size where the time per parameter jumps) would show an allocator, cache or
threading effect.

    python benchmarks/scaling.py --json results/scaling.json --png benchmarks/scaling.png

Each size is 8 float32 tensors of (n/8/1024) × 1024 with fixed random values and gradients; every optimizer is
alive at once for a size (needs all their states: 350M parameters take ~11 GB with two AdamWs), steps in turn
with the parameters reset before each step, and is freed before the next size. Reported: the median over the
timed steps, in nanoseconds per parameter, and the 1-minute load average around each size.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time

SIZES_M = (1, 4, 16, 64, 128, 256, 350)
TORCH_PATH_MAX_M = 128  # geo's torch path keeps two parameter-sized temporaries: left out above this size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES_M), help="millions of parameters")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", help="write the measurements here")
    ap.add_argument("--png", help="plot ns/parameter against parameters here (matplotlib)")
    args = ap.parse_args(argv)
    import torch
    import geo
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for m in args.sizes:
        n = m * 1_000_000
        rows_per = max(1, n // 8 // 1024)
        g = torch.Generator().manual_seed(m)
        params = [torch.nn.Parameter(torch.randn(rows_per, 1024, generator=g) * 0.02) for _ in range(8)]
        for p in params:
            p.grad = torch.randn(p.shape, generator=g) * 1e-3
        initial = [p.detach().clone() for p in params]
        makers = {"geo adamw [inductor]": lambda: geo.compile("adamw", backend="inductor")(params),
                  "torch.optim.AdamW fused=True": lambda: torch.optim.AdamW(params, fused=True)}
        if m <= TORCH_PATH_MAX_M:
            makers["geo adamw [torch]"] = lambda: geo.compile("adamw", backend="torch")(params)
        opts = {name: make() for name, make in makers.items()}
        times: dict[str, list[float]] = {name: [] for name in opts}
        load0 = os.getloadavg()[0]
        names = list(opts)
        for i in range(args.warmup + args.steps):
            for j in range(len(names)):
                name = names[(i + j) % len(names)]
                with torch.no_grad():
                    for p, x in zip(params, initial):
                        p.copy_(x)
                t0 = time.perf_counter()
                opts[name].step()
                dt = time.perf_counter() - t0
                if i >= args.warmup:
                    times[name].append(dt)
        load1 = os.getloadavg()[0]
        numel = sum(p.numel() for p in params)
        for name, ts in times.items():
            row = {"params": numel, "optimizer": name, "median_s": statistics.median(ts), "min_s": min(ts),
                   "ns_per_param": 1e9 * statistics.median(ts) / numel, "load": [load0, load1]}
            rows.append(row)
            print(f"{numel / 1e6:7.1f}M {name:32s} {row['median_s'] * 1e3:9.1f} ms  {row['ns_per_param']:6.3f} ns/param "
                  f"(load {load0:.1f}/{load1:.1f})", flush=True)
        del opts, params, initial
        gc.collect()
    env = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "torch": torch.__version__,
           "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "argv": sys.argv}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "rows": rows}, f, indent=1)
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for name in dict.fromkeys(r["optimizer"] for r in rows):
            pts = [(r["params"], r["ns_per_param"]) for r in rows if r["optimizer"] == name]
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("parameters (8 float32 tensors)")
        ax.set_ylabel("step time per parameter, ns (median)")
        ax.set_title(f"AdamW step, {env['cpu_count']}-core CPU, {env['threads']} threads, {env['date'][:10]}")
        ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
