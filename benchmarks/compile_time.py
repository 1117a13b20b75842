"""Time from spec to a ready optimizer, for every stdlib spec.

    python benchmarks/compile_time.py

"compile" is `geo.compile(name)`: load, parse, check (every rule elaborated once). "specialize" builds the
programs a first `step()` needs for one 64×32 matrix and one 32-vector (elaboration for the parameter's
rank, the passes, IR verification, torch code generation). Together they are "spec → ready optimizer".
Each number is the median of 5 runs after one warm-up in the same process.
"""
from __future__ import annotations

import statistics
import time

import torch

import geo
from geo.compiler.pipeline import front
from geo.dsl.diagnostics import Diagnostic
from geo.dsl.loader import source_for, stdlib_names
from geo.compiler.binding import ParamInfo, bind_rule, infer_role


def _params(Opt):
    out = []
    for name, shape in (("hidden.weight", (64, 32)), ("hidden.bias", (32,))):
        info = ParamInfo(name, shape, infer_role(name, shape))
        if not isinstance(bind_rule(Opt._geo.info, info), Diagnostic):
            out.append((name, torch.nn.Parameter(torch.randn(shape))))
    return out


def measure(spec: str, name: str) -> tuple[float, float]:
    compile_times, specialize_times = [], []
    for i in range(6):
        t0 = time.perf_counter()
        Opt = geo.compile(spec, name=name)
        t1 = time.perf_counter()
        opt = Opt(_params(Opt))
        t2 = time.perf_counter()
        for group in opt.param_groups:
            rule = Opt._geo.rules[group["geo_rule"]]
            statics = rule.statics(group)
            for p in group["params"]:
                _, rank, active = opt._geo_binding[p]
                Opt._geo.runner(rule, statics, rank, active, "torch")
        t3 = time.perf_counter()
        if i:
            compile_times.append(t1 - t0)
            specialize_times.append(t3 - t2)
    return 1e3 * statistics.median(compile_times), 1e3 * statistics.median(specialize_times)


def main() -> None:
    print(f"{'spec':14s} {'optimizer':20s} {'compile ms':>11s} {'specialize ms':>14s}")
    for spec in stdlib_names():
        _, checked = front(source_for(spec))
        for name in checked.root_optimizers:
            c, s = measure(spec, name)
            print(f"{spec:14s} {name:20s} {c:11.1f} {s:14.1f}")


if __name__ == "__main__":
    main()
