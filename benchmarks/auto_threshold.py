"""Where `auto` switches from the torch path to the inductor backend on the CPU (compiler/backends/__init__.py,
AUTO_INDUCTOR_NUMEL): AdamW (geo's default gradient check on) over a group of 16 tensors of n elements each,
both backends alive at once and stepping in turn; the ratio torch-path time / inductor time per n.

    python benchmarks/auto_threshold.py
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import torch

import geo


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [2 ** k for k in (8, 10, 12, 13, 14, 15, 16, 18, 20)]
    print(f"{'n':>9s} {'torch ms':>9s} {'inductor ms':>12s} {'torch/inductor':>15s}  load")
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        params = [torch.nn.Parameter(torch.randn(n, generator=g)) for _ in range(16)]
        for p in params:
            p.grad = torch.randn(n, generator=g)
        opts = {b: geo.compile("adamw", backend=b)(params) for b in ("torch", "inductor")}
        times = {b: [] for b in opts}
        for i in range(25):
            for b in (("torch", "inductor") if i % 2 else ("inductor", "torch")):
                t0 = time.perf_counter()
                opts[b].step()
                if i >= 5:
                    times[b].append(time.perf_counter() - t0)
        t, c = statistics.median(times["torch"]), statistics.median(times["inductor"])
        print(f"{n:9d} {t * 1e3:9.3f} {c * 1e3:12.3f} {t / c:15.2f}  {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
