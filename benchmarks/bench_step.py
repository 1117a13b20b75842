"""Optimizer step time: geo's generated optimizers against torch.optim, on GPT-2 parameter shapes.

    python benchmarks/bench_step.py --preset small            # or: geo bench --preset small
    python benchmarks/bench_step.py --preset medium --specs adamw muon --steps 5 --markdown

Everything is measured in ONE run, and every ratio is against a baseline measured in that same run:

    adamw            vs torch.optim.AdamW foreach=False, foreach=True, fused=True (where torch supports it)
    muon             vs torch.optim.Muon, same settings (lr 0.02, momentum 0.95, Nesterov, 5 quintic NS steps
                     in bf16, eps 1e-7, no weight decay, adjust_lr "original")
    auon, horst,     vs geo's muon (horst also vs torch.optim.AdamW foreach on the same matrices: it is an
    spectral_sphere  AdamW step composed with an elementwise mirror step)
    sgd              vs torch.optim.SGD foreach=True, both with momentum 0.9
    lion, signum     vs torch.optim.SGD foreach=True with momentum 0.9: different math, the same memory traffic
                     (read W, grad and one state; write W and the state)

Parameters: GPT-2 shapes only (token embedding vocab×d, positions 1024×d, per layer ln_1/ln_2 weight and bias,
attn.c_attn d×3d + 3d, attn.c_proj d×d + d, mlp.c_fc d×4d + 4d, mlp.c_proj 4d×d + d; final ln_f; the lm
head is tied to the embedding), float32, with fixed random values and gradients. AdamW-like optimizers get
every parameter; the Muon family gets the 2-D hidden matrices only (not the embeddings), as torch.optim.Muon
users do. All optimizers share the same parameter and gradient tensors; the parameters are reset to their
initial values before each optimizer is built, and each optimizer is freed before the next one is built.

Per optimizer: the median (and min) step time over --steps timed steps after --warmup untimed ones (the first
step, which allocates the state, is reported on its own), with torch.cuda.synchronize() around each step on
CUDA; the bytes a step must move (every parameter, gradient and state tensor read once, the parameter and the
states written once: sum of numel·itemsize over the actual tensors); that over the median time in GB/s and,
on CUDA, as a fraction of the device's peak memory bandwidth (--peak-gbps, or a small table of devices).
For the Muon family the step is compute-bound (Newton–Schulz): there "GB/s" is only traffic over time.
On the CPU, the minor page faults of each step are counted too: memory the allocator mapped afresh, which
glibc's malloc does or does not do depending on its history (see STEADY_MALLOC; `--steady-malloc` fixes it).

On a shared machine other processes' load distorts everything (on CPU most of all: torch's threads wait for a
descheduled peer). `--interleave` keeps, per spec, its optimizers and their baselines alive at once and steps
them in turn, the parameters reset before every step, so that all of them see the same conditions (it needs
all their states in memory at once); `--rounds N` measures everything N times, round-robin, and pools the
timed steps; `--threads N` sets torch's thread count. The 1-minute load average is recorded at the start and
at the end of the timed steps, and the geo commit with any uncommitted change to geo itself.

Compile time, per geo spec, in a fresh interpreter (cold: no import, parse or specialization done yet):
import torch; import geo; the first torch.optim optimizer of the process (a throwaway SGD built and stepped:
torch imports torch._dynamo on the first Optimizer construction, ~1 s that every torch.optim user pays once,
so it is kept out of geo's numbers and shown on its own); then `geo.compile`, building the optimizer (which
specializes the programs: by rank, role and statics, not by size, so the "tiny" preset's parameters used here
need the same programs GPT-2's do) and its first step(). "ready" = compile + build + first step. "again" is a
second `geo.compile` + build + first step in the same process. The interpreter runs with Python's bytecode
cache (as an installed package has it; a first run fills it) and a `gc.collect()` before the clock: the
imports leave a full collection due (~50 ms over torch's objects) that whatever allocates next would pay.
Included: everything between the two clock reads (Python, allocating the state, the tiny step's arithmetic,
and on CUDA any kernel compilation); the steady-state step of the same tiny optimizer is given alongside
("tiny step"), so the compile part can be read off.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

PRESETS = {  # d, layers, vocab, positions
    "tiny": (64, 2, 512, 128),
    "small": (768, 12, 50257, 1024),
    "medium": (1024, 24, 50257, 1024),
}
ALL_SPECS = ("adamw", "muon", "auon", "horst", "spectral_sphere", "sgd", "lion", "signum", "normuon", "adamuon")
MUON_FAMILY = {"muon", "auon", "horst", "spectral_sphere", "normuon", "adamuon"}
PEAK_GBPS = (  # (substring of torch.cuda.get_device_name(), HBM peak GB/s), first match wins
    ("H200", 4800.0),
    ("H100 PCIe", 2000.0),
    ("H100", 3350.0),      # SXM
    ("A100-SXM4-80GB", 2039.0),
    ("A100 80GB PCIe", 1935.0),
    ("A100", 1555.0),
)
ADAMW = {"lr": 1e-3, "weight_decay": 1e-2}      # both sides; betas (0.9, 0.999), eps 1e-8 by default on both
SGD = {"lr": 1e-3, "momentum": 0.9}
TORCH_MUON = {"lr": 0.02, "weight_decay": 0.0, "momentum": 0.95, "nesterov": True, "eps": 1e-7, "ns_steps": 5,
              "adjust_lr_fn": "original"}     # geo muon's defaults; ns_coefficients: the same keller default


# ---- parameters ------------------------------------------------------------------------------------------
def gpt2_shapes(preset: str) -> list[tuple[str, tuple[int, ...]]]:
    """GPT-2's parameters (Hugging Face names, Conv1D orientation: c_attn is d×3d), lm head tied."""
    d, layers, vocab, positions = PRESETS[preset]
    out = [("transformer.wte.weight", (vocab, d)), ("transformer.wpe.weight", (positions, d))]
    for i in range(layers):
        h = f"transformer.h.{i}"
        out += [(f"{h}.ln_1.weight", (d,)), (f"{h}.ln_1.bias", (d,)),
                (f"{h}.attn.c_attn.weight", (d, 3 * d)), (f"{h}.attn.c_attn.bias", (3 * d,)),
                (f"{h}.attn.c_proj.weight", (d, d)), (f"{h}.attn.c_proj.bias", (d,)),
                (f"{h}.ln_2.weight", (d,)), (f"{h}.ln_2.bias", (d,)),
                (f"{h}.mlp.c_fc.weight", (d, 4 * d)), (f"{h}.mlp.c_fc.bias", (4 * d,)),
                (f"{h}.mlp.c_proj.weight", (4 * d, d)), (f"{h}.mlp.c_proj.bias", (d,))]
    return out + [("transformer.ln_f.weight", (d,)), ("transformer.ln_f.bias", (d,))]


def is_hidden_matrix(name: str, shape: tuple[int, ...]) -> bool:
    return len(shape) == 2 and ".h." in name


class ParamSet:
    """The parameters and their (fixed) gradients, built once and shared by every optimizer; `reset()` restores
    the initial values, regenerated from per-tensor seeds (no copy is kept: GPT-2 medium is 1.4 GB a copy)."""

    def __init__(self, preset: str, device: str, seed: int = 0):
        import torch
        self.device, self.seed = device, seed
        self.names, self.params, self.grads = [], [], []
        for i, (name, shape) in enumerate(gpt2_shapes(preset)):
            p = torch.nn.Parameter(self._random(2 * i, shape, 0.02))
            p.grad = self._random(2 * i + 1, shape, 1e-3)
            self.names.append(name)
            self.params.append(p)
            self.grads.append(p.grad)

    def _random(self, index: int, shape: tuple[int, ...], scale: float):
        import torch
        gen = torch.Generator(device="cpu").manual_seed(self.seed * 1_000_003 + index)
        return torch.randn(shape, generator=gen).mul_(scale).to(self.device)

    def subset(self, which: str) -> list[tuple[str, Any]]:
        return [(n, p) for n, p in zip(self.names, self.params) if which == "all" or is_hidden_matrix(n, p.shape)]

    def groups(self, which: str, mode: str) -> list[list[tuple[str, Any]]]:
        """The subset as param groups: one, or one per transformer block (and one for the rest)."""
        named = self.subset(which)
        if mode == "one":
            return [named]
        by: dict[str, list] = {}
        for n, p in named:
            by.setdefault(".".join(n.split(".")[:3]) if ".h." in n else "rest", []).append((n, p))
        return list(by.values())

    def snapshot(self) -> None:
        """Keeps a copy of the initial values, so that `reset` is a copy (fast enough to run before every step)."""
        self._initial = [p.detach().clone() for p in self.params]

    def reset(self, which: str = "all") -> None:
        import torch
        initial = getattr(self, "_initial", None)
        with torch.no_grad():
            for i, (n, p) in enumerate(zip(self.names, self.params)):
                if which == "all" or is_hidden_matrix(n, p.shape):
                    p.copy_(initial[i] if initial is not None else self._random(2 * i, tuple(p.shape), 0.02))
                    p.grad = self.grads[i]  # heavyball's step sets p.grad = None (it frees gradients)


# ---- what is measured --------------------------------------------------------------------------------------
@dataclass
class Case:
    key: str                      # unique: label + parameter subset
    label: str                    # "geo adamw [torch]", "torch.optim.AdamW foreach=True"
    subset: str                   # "all" or "hidden" (2-D hidden matrices)
    make: Callable[[list], Any]   # param groups (lists of (name, tensor)) → optimizer
    elementwise: bool
    geo_spec: str | None = None


@dataclass
class Row:
    key: str
    label: str
    subset: str
    params: int
    tensors: int
    median_ms: float
    min_ms: float
    first_ms: float
    step_bytes: int
    gbps: float
    peak_fraction: float | None
    elementwise: bool
    warmup: int = 0
    cluster: str | None = None    # --interleave: the spec whose comparison this measurement belongs to
    times_ms: list[list[float]] = field(default_factory=list)   # per round: every step, the warm-up ones first
    faults: list[list[int]] = field(default_factory=list)       # the same steps' minor page faults (CPU)
    faults_per_step: float | None = None                        # median over the timed steps
    peak_mb: float | None = None  # memory a step allocates beyond what it started with, at its peak (one profiled step)

    def merge(self, other: "Row", peak: float | None) -> None:
        """Adds another round of the same optimizer: the statistics are over every timed step of every round."""
        self.times_ms += other.times_ms
        self.faults += other.faults
        self.faults_per_step = _median_timed(self.faults, self.warmup)
        timed = [t for r in self.times_ms for t in (r[self.warmup:] or r[-1:])]
        self.median_ms, self.min_ms = statistics.median(timed), min(timed)
        self.first_ms = statistics.median(r[0] for r in self.times_ms)
        self.gbps = self.step_bytes / (self.median_ms * 1e-3) / 1e9
        self.peak_fraction = self.gbps / peak if self.peak_fraction is not None and peak else None


def _torch_case(label: str, subset: str, cls_name: str, elementwise: bool = True, **kw) -> Case:
    def make(groups):
        import torch
        return getattr(torch.optim, cls_name)([{"params": [p for _, p in g]} for g in groups], **kw)
    return Case(f"{label} | {subset}", label, subset, make, elementwise)


def _compiled_torch_case(label: str, subset: str, cls_name: str, **kw) -> Case:
    """torch.optim's optimizer with its `step` compiled by torch.compile (PyTorch's recipe for a fused optimizer
    step: Inductor fuses the foreach ops; the first step pays the compilation)."""
    def make(groups):
        import torch
        opt = getattr(torch.optim, cls_name)([{"params": [p for _, p in g]} for g in groups], **kw)
        opt.step = torch.compile(opt.step)
        return opt
    return Case(f"{label} | {subset}", label, subset, make, True)


# Peers from PyPI, in a benchmark venv only (benchmarks/README.md): (module, class, constructor keywords, the
# equivalent of geo's hyperparameters). A peer that does not import, or does not have the class, is left out
# and the run says why.
PEERS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "sgd": [("pytorch_optimizer", "SGD", {"lr": 1e-3, "momentum": 0.9}),
            ("heavyball", "SGD", {"lr": 1e-3, "beta": 0.9})],
    "lion": [("pytorch_optimizer", "Lion", {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.0}),
             ("heavyball", "Lion", {"lr": 1e-4, "betas": (0.9, 0.99)})],
    "signum": [("pytorch_optimizer", "SignSGD", {"lr": 1e-3, "momentum": 0.9}),
               ("heavyball", "Signum", {"lr": 1e-3})],
    "muon": [("pytorch_optimizer", "Muon", {"lr": 0.02, "momentum": 0.95, "nesterov": True, "ns_steps": 5,
                                            "group": {"use_muon": True}}),
             ("heavyball", "Muon", {"lr": 0.02})],
    "normuon": [("pytorch_optimizer", "NorMuon", {"lr": 0.02, "momentum": 0.95, "nesterov": True, "ns_steps": 5,
                                                  "group": {"use_muon": True}})],
    "adamuon": [("pytorch_optimizer", "AdaMuon", {"lr": 0.02, "ns_steps": 5, "group": {"use_muon": True}})],
}
SKIPPED_PEERS: list[str] = []  # why a peer is not in this run


def _peer_case(spec: str, module: str, cls_name: str, subset: str, kw: dict[str, Any]) -> Case | None:
    import importlib
    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        SKIPPED_PEERS.append(f"{module}.{cls_name} ({spec}): not installed ({err}); see benchmarks/README.md")
        return None
    try:
        from importlib.metadata import version as dist_version
        version = dist_version(module.replace("_", "-"))
    except Exception:  # noqa: BLE001 - a version is only a label
        version = getattr(mod, "__version__", "")
    cls = getattr(mod, cls_name, None)
    if cls is None:
        SKIPPED_PEERS.append(f"{module}.{cls_name} ({spec}): {module} {version} has no `{cls_name}`")
        return None
    label = f"{module}{(' ' + version) if version else ''} {cls_name}"

    kw = dict(kw)
    extra = kw.pop("group", {})  # what the peer wants in each param group (pytorch_optimizer's Muons: use_muon)

    def make(groups):
        return cls([{"params": [p for _, p in g], **extra} for g in groups], **kw)
    return Case(f"{label} | {subset}", label, subset, make, spec not in MUON_FAMILY - {"horst"})


def _geo_case(spec: str, subset: str, backend: str, nonfinite: str, **hypers) -> Case:
    extra = "" if nonfinite == "skip" else f", nonfinite={nonfinite}"
    label = f"geo {spec} [{backend}{extra}]"

    def make(groups):
        import geo
        return geo.compile(spec, backend=backend)([{"params": g} for g in groups], nonfinite=nonfinite, **hypers)
    return Case(f"{label} | {subset}", label, subset, make, spec not in MUON_FAMILY - {"horst"}, spec)


GEO_HYPERS = {"adamw": ADAMW, "sgd": SGD}


def plan(specs: list[str], backend: str, nonfinite: list[str], device: str, peers: bool = True, compiled: bool = True):
    """The cases to measure (baselines first, no duplicates), the comparisons (spec, geo key, baseline key) and
    the clusters (spec, the keys of its geo cases and their baselines)."""
    cases: dict[str, Case] = {}
    comparisons: list[tuple[str, str, str]] = []
    clusters: list[tuple[str, list[str]]] = []

    def add(case: Case) -> str:
        cases.setdefault(case.key, case)
        return case.key

    sgd_foreach = lambda: _torch_case("torch.optim.SGD foreach=True momentum=0.9", "all", "SGD", foreach=True, **SGD)
    fused_adamw = fused_adamw_supported(device)
    for spec in specs:
        subset = "hidden" if spec in MUON_FAMILY else "all"
        if spec == "adamw":
            baselines = [add(_torch_case("torch.optim.AdamW foreach=False", "all", "AdamW", foreach=False, **ADAMW)),
                         add(_torch_case("torch.optim.AdamW foreach=True", "all", "AdamW", foreach=True, **ADAMW))]
            if fused_adamw:
                baselines.append(add(_torch_case("torch.optim.AdamW fused=True", "all", "AdamW", fused=True, **ADAMW)))
            if compiled:
                baselines.append(add(_compiled_torch_case("torch.compile(torch.optim.AdamW foreach=True .step)", "all",
                                                          "AdamW", foreach=True, **ADAMW)))
        elif spec == "muon":
            baselines = [add(_torch_case("torch.optim.Muon", "hidden", "Muon", elementwise=False, **TORCH_MUON))]
        elif spec in ("auon", "spectral_sphere"):
            baselines = [add(_geo_case("muon", "hidden", backend.split(",")[0], "skip"))]
        elif spec == "horst":
            baselines = [add(_geo_case("muon", "hidden", backend.split(",")[0], "skip")),
                         add(_torch_case("torch.optim.AdamW foreach=True", "hidden", "AdamW", foreach=True, **ADAMW))]
            if fused_adamw:
                baselines.append(add(_torch_case("torch.optim.AdamW fused=True", "hidden", "AdamW", fused=True, **ADAMW)))
        elif spec in ("sgd", "lion", "signum"):
            baselines = [add(sgd_foreach())]
            if fused_adamw:
                baselines.append(add(_torch_case("torch.optim.AdamW fused=True", "all", "AdamW", fused=True, **ADAMW)))
        else:
            baselines = []
        if peers:
            for module, cls_name, kw in PEERS.get(spec, []):
                case = _peer_case(spec, module, cls_name, subset, kw)
                if case is not None:
                    baselines.append(add(case))
        geo_keys = []
        for name in backend.split(","):
            for policy in nonfinite:
                geo_keys.append(add(_geo_case(spec, subset, name, policy, **GEO_HYPERS.get(spec, {}))))
                comparisons += [(spec, geo_keys[-1], b) for b in baselines if b != geo_keys[-1]]
        clusters.append((spec, list(dict.fromkeys(baselines + geo_keys))))
    # baselines before the optimizers compared with them, otherwise in the order the specs were given
    baseline_keys = {b for _, _, b in comparisons}
    order = [k for k in cases if k in baseline_keys] + [k for k in cases if k not in baseline_keys]
    return [cases[k] for k in order], comparisons, clusters


def fused_adamw_supported(device: str) -> bool:
    import torch
    try:
        p = torch.nn.Parameter(torch.zeros(4, device=device))
        p.grad = torch.ones(4, device=device)
        torch.optim.AdamW([p], fused=True).step()
        return True
    except (RuntimeError, ValueError, TypeError):
        return False


# ---- measuring -------------------------------------------------------------------------------------------
def _tensors_in(opt) -> list[Any]:
    import torch
    return [v for state in opt.state.values() for v in state.values() if isinstance(v, torch.Tensor)]


def step_bytes(named: list, opt) -> int:
    """Reads: every parameter, gradient and state tensor once; writes: every parameter and state tensor once."""
    params = sum(p.numel() * p.element_size() for _, p in named)
    grads = sum((p if p.grad is None else p.grad).numel() * (p if p.grad is None else p.grad).element_size()
                for _, p in named)  # heavyball frees gradients after its step: then the gradient had p's shape
    states = sum(t.numel() * t.element_size() for t in _tensors_in(opt))
    return 2 * params + grads + 2 * states


def measure(case: Case, ps: ParamSet, steps: int, warmup: int, device: str, peak: float | None,
            group_mode: str = "one") -> Row:
    import torch
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    ps.reset()
    named = ps.subset(case.subset)
    opt = case.make(ps.groups(case.subset, group_mode))
    times, faults = [], []
    for _ in range(warmup + steps):
        ms, pf = _timed_step(opt, sync)
        times.append(ms)
        faults.append(pf)
    row = _row(case, named, opt, times, faults, warmup, cuda, peak)
    ps.reset()
    row.peak_mb = step_peak_mb(opt, cuda)
    del opt
    _free(cuda)
    return row


def measure_interleaved(cases: list[Case], ps: ParamSet, steps: int, warmup: int, device: str, peak: float | None,
                        group_mode: str = "one") -> list[Row]:
    """Every optimizer of `cases` alive at once, stepping in turn (the order rotating each round), the parameters
    reset to their initial values before every step: the optimizers see the same load from other processes and
    the same parameter values. Needs the memory of all their states at once."""
    import torch
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    opts = []
    for case in cases:
        ps.reset(case.subset)
        opts.append(case.make(ps.groups(case.subset, group_mode)))
    times: list[list[float]] = [[] for _ in cases]
    faults: list[list[int]] = [[] for _ in cases]
    for i in range(warmup + steps):
        for j in range(len(cases)):
            k = (i + j) % len(cases)
            ps.reset(cases[k].subset)
            ms, pf = _timed_step(opts[k], sync)
            times[k].append(ms)
            faults[k].append(pf)
    rows = [_row(case, ps.subset(case.subset), opt, t, f, warmup, cuda, peak)
            for case, opt, t, f in zip(cases, opts, times, faults)]
    for case, opt, row in zip(cases, opts, rows):
        ps.reset(case.subset)
        row.peak_mb = step_peak_mb(opt, cuda)
    del opts
    _free(cuda)
    return rows


def step_peak_mb(opt, cuda: bool) -> float | None:
    """The most memory one step holds beyond what it started with, in MB: on CUDA from the caching allocator's
    peak; on the CPU from torch.profiler's memory events (every allocation and free of torch's CPU allocator,
    Inductor's buffers included), summed in order. Temporaries the size of a parameter show up here."""
    import torch
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        opt.step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - start) / 1e6
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
            opt.step()
    except RuntimeError:
        return None
    # every allocation (+bytes) and free (−bytes) of the CPU allocator, in time order (the profiler's function
    # events fold them into the op that made them)
    events = sorted(((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                     if e.name() == "[memory]"), key=lambda e: e[0])
    now = top = 0
    for _, nbytes in events:
        now += nbytes
        top = max(top, now)
    return top / 1e6


def _timed_step(opt, sync) -> tuple[float, int]:
    """The step's milliseconds and the minor page faults it took (memory the allocator mapped afresh)."""
    sync()
    f0 = _minor_faults()
    t0 = time.perf_counter()
    opt.step()
    sync()
    t1 = time.perf_counter()
    return 1e3 * (t1 - t0), _minor_faults() - f0


def _minor_faults() -> int:
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _median_timed(per_round: list[list[int]], warmup: int) -> float | None:
    timed = [x for r in per_round for x in (r[warmup:] or r[-1:])]
    return statistics.median(timed) if timed else None


def _row(case: Case, named: list, opt, times: list[float], faults: list[int], warmup: int, cuda: bool,
         peak: float | None) -> Row:
    timed = times[warmup:] or times[-1:]
    nbytes = step_bytes(named, opt)
    median = statistics.median(timed)
    gbps = nbytes / (median * 1e-3) / 1e9
    return Row(case.key, case.label, case.subset, sum(p.numel() for _, p in named), len(named), median, min(timed),
               times[0], nbytes, gbps, gbps / peak if (cuda and peak) else None, case.elementwise, warmup=warmup,
               times_ms=[times], faults=[faults], faults_per_step=_median_timed([faults], warmup))


def _free(cuda: bool) -> None:
    gc.collect()
    if cuda:
        import torch
        torch.cuda.empty_cache()


def peak_gbps(device: str, override: float | None) -> tuple[float | None, str]:
    if override is not None:
        return override, "--peak-gbps"
    if not device.startswith("cuda"):
        return None, "cpu: not applicable"
    import torch
    name = torch.cuda.get_device_name(torch.device(device))
    for sub, value in PEAK_GBPS:
        if sub in name:
            return value, f"table ({sub})"
    return None, f"unknown device {name!r}: pass --peak-gbps"


# ---- compile time, in a fresh interpreter ------------------------------------------------------------------
COLD_FIELDS = ("import_torch_ms", "import_geo_ms", "torch_optim_first_ms", "compile_ms", "build_ms", "first_step_ms", "ready_ms",
               "again_ms", "tiny_step_ms")


def _cold(spec: str, backend: str, device: str, threads: int | None) -> dict[str, float]:
    """Runs in the fresh interpreter: see the module docstring."""
    t0 = time.perf_counter()
    import torch
    t1 = time.perf_counter()
    if threads is not None:
        torch.set_num_threads(threads)
    import geo
    t2 = time.perf_counter()
    subset = "hidden" if spec in MUON_FAMILY else "all"
    ps = ParamSet("tiny", device)
    named = ps.subset(subset)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    hypers = GEO_HYPERS.get(spec, {})
    # torch's own one-time cost, paid by the first torch.optim optimizer of any process (geo's included): its
    # first construction imports torch._dynamo (~1 s). Paid here on a throwaway SGD, and reported on its own.
    sync()
    ta = time.perf_counter()
    dummy = torch.nn.Parameter(torch.zeros(2, device=device))
    dummy.grad = torch.ones(2, device=device)
    torch.optim.SGD([dummy], lr=0.1).step()
    sync()
    gc.collect()  # the collector's debt from the imports above, not geo's: a full pass over torch's objects
    t3 = time.perf_counter()
    Opt = geo.compile(spec, backend=backend)
    t4 = time.perf_counter()
    opt = Opt([{"params": named}], **hypers)
    t5 = time.perf_counter()
    opt.step()
    sync()
    t6 = time.perf_counter()
    steady = []
    for _ in range(5):
        s0 = time.perf_counter()
        opt.step()
        sync()
        steady.append(time.perf_counter() - s0)
    ps.reset()
    s0 = time.perf_counter()
    geo.compile(spec, backend=backend)([{"params": named}], **hypers).step()
    sync()
    s1 = time.perf_counter()
    ms = lambda a, b: 1e3 * (b - a)
    return {"import_torch_ms": ms(t0, t1), "import_geo_ms": ms(t1, t2), "torch_optim_first_ms": ms(ta, t3),
            "compile_ms": ms(t3, t4),
            "build_ms": ms(t4, t5), "first_step_ms": ms(t5, t6), "ready_ms": ms(t3, t6), "again_ms": ms(s0, s1),
            "tiny_step_ms": 1e3 * statistics.median(steady)}


def cold_compile(spec: str, backend: str, device: str, threads: int | None) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--cold-compile", spec, "--backend", backend, "--device", device]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    # Python's bytecode cache on, as an installed package has it: a first run writes it (PYTHONDONTWRITEBYTECODE
    # would make every run compile geo's source, ~40 ms), the second is measured.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for _ in range(2):
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"spec": spec, "error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return {"spec": spec, **json.loads(out.stdout.strip().splitlines()[-1])}


# ---- reporting -------------------------------------------------------------------------------------------
def environment(device: str) -> dict[str, Any]:
    import torch
    info = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(), "cpu": _cpu_name(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    info["git"] = _git()
    return info


def _git() -> dict[str, Any] | None:
    """The commit measured, and the files of geo itself that differ from it (a benchmark of a dirty tree)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "compiler", "runtime", "stdlib", "dsl"],
                               cwd=root, capture_output=True, text=True)
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return {"commit": head.stdout.strip(), "uncommitted": [l[3:] for l in dirty.stdout.splitlines()]}


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def tables(result: dict[str, Any]) -> str:
    """The Markdown tables (measurements, comparisons, compile time)."""
    rows = {r["key"]: r for r in result["measurements"]}
    env = result["env"]
    cuda = env["device"].startswith("cuda")
    git = env.get("git") or {}
    load = [env.get("loadavg_start"), env.get("loadavg_end_of_steps")]
    out = [f"{env['date']}: preset {env['preset']}, param groups: {env['groups']}, {env['warmup']} warm-up + "
           f"{env['steps']} timed steps" + (f" × {env['rounds']} rounds" if env.get("rounds", 1) > 1 else "")
           + f", backend {env['backend']}, device {env.get('gpu', env['device'])}, "
           f"{env['cpu']} ({env['cpu_count']} CPUs, {env['torch_threads']} torch threads), torch {env['torch']}, "
           f"Python {env['python']}; 1-min load average at start / end: "
           + " / ".join("—" if x is None else f"{x:.2f}" for x in load)
           + (f"; geo {git.get('commit')}" + (f" + uncommitted {', '.join(git['uncommitted'])}"
                                               if git.get("uncommitted") else "") if git else "")
           + ("; interleaved: per spec, its optimizers and baselines step in turn" if env.get("interleave") else "")
           + (f"; malloc: {env['malloc']}" if env.get("malloc") else ""),
           "",
           "| optimizer | params | tensors | median ms | min ms | first step ms | MB/step | GB/s | peak MB/step |"
           + (" % of peak |" if cuda else " page faults/step |"),
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["measurements"]:
        gb = _fmt(r["gbps"], 2) + ("" if r["elementwise"] else "*")
        out.append(f"| {_name(r)} | {r['subset']} {r['params'] / 1e6:.1f}M | {r['tensors']} | {_fmt(r['median_ms'])} "
                   f"| {_fmt(r['min_ms'])} | {_fmt(r['first_ms'])} | {r['step_bytes'] / 1e6:,.0f} | {gb} "
                   f"| {_fmt(r.get('peak_mb'), 0)} |"
                   + (f" {_fmt(100 * r['peak_fraction']) if r['peak_fraction'] is not None else '—'} |" if cuda
                      else f" {_fmt(r.get('faults_per_step'), 0)} |"))
    out += ["", "| geo | baseline | geo ms | baseline ms | baseline / geo | same, on min times | GB/s geo / baseline |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for c in result["comparisons"]:
        g, b = rows[c["geo"]], rows[c["baseline"]]
        out.append(f"| {_name(g)} | {b['label']} ({b['subset']}) | {_fmt(g['median_ms'])} | {_fmt(b['median_ms'])} "
                   f"| **{c['ratio']:.3f}** | {c['ratio_min']:.3f} | {c.get('gbps_ratio', float('nan')):.3f} |")
    if env.get("skipped_peers"):
        out += ["", "Peers not in this run: " + "; ".join(env["skipped_peers"]) + "."]
    if result["compile"]:
        out += ["", "| spec | import torch ms | import geo ms | first torch.optim ms | compile ms | build ms "
                    "| first step ms | ready ms | again ms | tiny step ms |", "|---|" + "---:|" * 9]
        for c in result["compile"]:
            if "error" in c:
                out.append(f"| {c['spec']} | error: {c['error']} |" + " |" * 8)
            else:
                out.append(f"| {c['spec']} | " + " | ".join(_fmt(c[f]) for f in COLD_FIELDS) + " |")
    return "\n".join(out)


def _name(row: dict[str, Any]) -> str:
    return f"{row['cluster']}: {row['label']}" if row.get("cluster") else row["label"]


def text_table(result: dict[str, Any]) -> str:
    rows = {r["key"]: r for r in result["measurements"]}
    lines = [f"{'optimizer':52s} {'subset':>6s} {'median ms':>10s} {'first ms':>9s} {'GB/s':>8s}"]
    for r in result["measurements"]:
        lines.append(f"{_name(r):52s} {r['subset']:>6s} {r['median_ms']:10.1f} {r['first_ms']:9.1f} {r['gbps']:8.2f}")
    lines += ["", f"{'geo':40s} {'baseline':52s} {'baseline/geo':>12s}"]
    for c in result["comparisons"]:
        lines.append(f"{_name(rows[c['geo']]):40s} {rows[c['baseline']]['label'] + ' (' + rows[c['baseline']]['subset'] + ')':52s} "
                     f"{c['ratio']:12.3f}")
    if result["compile"]:
        lines += ["", f"{'spec':16s} " + " ".join(f"{f[:-3]:>12s}" for f in COLD_FIELDS)]
        for c in result["compile"]:
            lines.append(f"{c['spec']:16s} " + (f"error: {c['error']}" if "error" in c else
                                                " ".join(f"{c[f]:12.1f}" for f in COLD_FIELDS)))
    return "\n".join(lines)


# ---- the command -----------------------------------------------------------------------------------------
def parser(prog: str = "bench_step.py") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description="Step time of geo's optimizers against torch.optim on "
                                 "GPT-2 parameter shapes (benchmarks/bench_step.py).")
    ap.add_argument("--preset", choices=tuple(PRESETS), default="small", help="parameter shapes (default: small)")
    ap.add_argument("--specs", nargs="+", choices=ALL_SPECS, default=list(ALL_SPECS), metavar="SPEC",
                    help=f"geo specs to measure (default: all of {', '.join(ALL_SPECS)})")
    ap.add_argument("--backend", type=_backends, default="auto", metavar="NAME[,NAME...]",
                    help="geo backend(s), from torch, triton, inductor, auto; several, comma-separated, measure each "
                         "in the same run (default: auto)")
    ap.add_argument("--steps", type=_nonnegative, default=10, help="timed steps after the warm-up (default: 10)")
    ap.add_argument("--warmup", type=_positive, default=2,
                    help="untimed steps first (default: 2; the first allocates the state)")
    ap.add_argument("--rounds", type=_positive, default=1,
                    help="measure every optimizer this many times, round-robin, and pool the timed steps (on a "
                         "shared machine: spreads other processes' load over all of them; default: 1)")
    ap.add_argument("--interleave", action="store_true",
                    help="per spec, keep its optimizer(s) and their baselines alive at once and step them in turn, "
                         "resetting the parameters before every step (robust to other processes' load on a shared "
                         "machine; needs every state of a comparison in memory at once: not for GPT-2 medium on a "
                         "small host)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default: cpu")
    ap.add_argument("--nonfinite", choices=("skip", "propagate", "both"), default="skip",
                    help="geo's gradient check: skip (geo's default: one isfinite pass per gradient), propagate "
                         "(none, as torch.optim), or both (measure each)")
    ap.add_argument("--peak-gbps", type=float, default=None, help="peak memory bandwidth for the %% of peak column "
                    "(CUDA; default from a table: H100 SXM 3350, H200 4800)")
    ap.add_argument("--no-compile-time", action="store_true", help="skip the cold compile-time subprocesses")
    ap.add_argument("--no-peers", action="store_true", help="leave out the PyPI peers (pytorch_optimizer, heavyball)")
    ap.add_argument("--no-compiled-adamw", action="store_true",
                    help="leave out torch.compile'd torch.optim.AdamW(foreach=True).step (its compilation takes minutes "
                         "on a small CPU)")
    ap.add_argument("--groups", choices=("one", "layer"), default="one",
                    help="param groups: one (default), or one per transformer block and one for the rest (the same "
                         "groups for every optimizer; smaller groups bound the memory of a step's temporaries)")
    ap.add_argument("--threads", type=_positive, default=None,
                    help="torch.set_num_threads (default: torch's own choice, the number of cores)")
    ap.add_argument("--steady-malloc", action="store_true",
                    help="run with glibc malloc's thresholds fixed (GLIBC_TUNABLES, see STEADY_MALLOC): no block is "
                         "given back to the OS, so no step pays page faults for memory mapped afresh")
    ap.add_argument("--seed", type=int, default=0, help="seed of the parameter values and gradients")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON here")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables (for RESULTS.md)")
    ap.add_argument("--cold-compile", metavar="SPEC", help=argparse.SUPPRESS)
    return ap


def _backends(text: str) -> str:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in ("torch", "triton", "inductor", "auto")]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"unknown backend {', '.join(bad) or text!r}: choose from torch, triton, "
                                         "inductor, auto")
    return ",".join(names)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _nonnegative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# glibc's malloc maps blocks above a threshold afresh and gives freed memory back to the OS above another; both
# thresholds move with the history of allocations. On the CPU a step's temporaries then cost 0 to 800 k page
# faults from one run to the next, for torch.optim and geo alike (up to half of a step, RESULTS.md).
# Fixed thresholds (which also stop their movement) keep all of it in the heap: the comparison is then of the
# arithmetic, not of the allocator's state. The tables say which malloc a run had.
STEADY_MALLOC = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=68719476736"


def main(argv: list[str] | None = None, prog: str = "bench_step.py") -> int:
    ap = parser(prog)
    args = ap.parse_args(argv)
    if args.steady_malloc and os.environ.get("GLIBC_TUNABLES") != STEADY_MALLOC:
        # glibc reads its tunables at process start: the benchmark runs again in a child that has them
        argv = sys.argv[1:] if argv is None else argv
        child = subprocess.run([sys.executable, os.path.abspath(__file__), *argv],
                               env={**os.environ, "GLIBC_TUNABLES": STEADY_MALLOC})
        return child.returncode
    if args.cold_compile:  # the fresh interpreter of cold_compile: nothing imported yet
        print(json.dumps(_cold(args.cold_compile, args.backend, args.device, args.threads)))
        return 0
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load = _loadavg()
    if load is not None and load > 0.5:
        _progress(f"bench: warning: the 1-minute load average is {load:.2f} before the first measurement; other "
                  "processes share the CPU, so the times may be inflated (most on CPU, where torch's threads wait "
                  "for each other)")
    import geo
    try:  # a backend this geo does not know, or that cannot run on the device, is a usage error
        probe = torch.nn.Parameter(torch.zeros(2, device=args.device))
        probe.grad = torch.ones(2, device=args.device)
        for name in args.backend.split(","):
            geo.compile("sgd", backend=name)([probe]).step()
    except (ValueError, RuntimeError) as err:
        ap.error(f"--backend {args.backend} --device {args.device}: {err}")
    specs = list(dict.fromkeys(args.specs))
    policies = ["skip", "propagate"] if args.nonfinite == "both" else [args.nonfinite]
    cases, comparisons, clusters = plan(specs, args.backend, policies, args.device, peers=not args.no_peers,
                                        compiled=not args.no_compiled_adamw)
    peak, peak_source = peak_gbps(args.device, args.peak_gbps)
    env = environment(args.device)
    env.update(preset=args.preset, groups=args.groups, interleave=args.interleave, rounds=args.rounds, steps=args.steps, warmup=args.warmup, backend=args.backend, seed=args.seed,
               peak_gbps=peak, peak_source=peak_source, argv=list(sys.argv if argv is None else argv),
               loadavg_start=load, skipped_peers=list(SKIPPED_PEERS), malloc=f"GLIBC_TUNABLES={os.environ['GLIBC_TUNABLES']}"
               if os.environ.get("GLIBC_TUNABLES") else "default")
    _progress(f"bench: preset {args.preset} ({PRESETS[args.preset]}: d, layers, vocab, positions) on {args.device}, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(cases)} optimizers, "
              f"{args.warmup} warm-up + {args.steps} timed steps each")
    ps = ParamSet(args.preset, args.device, args.seed)
    rows: dict[str, Row] = {}

    def record(key: str, row: Row, where: str, seconds: float) -> None:
        row.key = key
        if key in rows:
            rows[key].merge(row, peak)
        else:
            rows[key] = row
        _progress(f"[{where}] {row.label} on {row.subset} ({row.params / 1e6:.1f}M params, {row.tensors} tensors): "
                  f"median {row.median_ms:.1f} ms, first {row.first_ms:.1f} ms, {row.gbps:.2f} GB/s ({seconds:.1f} s, "
                  f"load {_loadavg() or 0:.2f})")

    if args.interleave:
        ps.snapshot()
        by_key = {c.key: c for c in cases}
        for r in range(args.rounds):
            for i, (spec, keys) in enumerate(clusters, 1):
                t0 = time.perf_counter()
                measured = measure_interleaved([by_key[k] for k in keys], ps, args.steps, args.warmup, args.device,
                                               peak, args.groups)
                for row in measured:
                    row.cluster = spec
                    where = (f"round {r + 1}/{args.rounds}, " if args.rounds > 1 else "") + f"{i}/{len(clusters)} {spec}"
                    record(f"{spec}: {row.key}", row, where, time.perf_counter() - t0)
        comparisons = [(spec, f"{spec}: {g}", f"{spec}: {b}") for spec, g, b in comparisons]
    else:
        for r in range(args.rounds):
            for i, case in enumerate(cases, 1):
                t0 = time.perf_counter()
                row = measure(case, ps, args.steps, args.warmup, args.device, peak, args.groups)
                where = (f"round {r + 1}/{args.rounds}, " if args.rounds > 1 else "") + f"{i}/{len(cases)}"
                record(case.key, row, where, time.perf_counter() - t0)
    del ps
    gc.collect()
    env["loadavg_end_of_steps"] = _loadavg()
    compile_rows = []
    if not args.no_compile_time:
        for spec in dict.fromkeys([c.geo_spec for c in cases if c.geo_spec]):
            compile_rows.append(cold_compile(spec, args.backend.split(",")[0], args.device, args.threads))
            c = compile_rows[-1]
            _progress(f"[compile] {spec}: " + (f"error: {c['error']}" if "error" in c else
                      f"ready {c['ready_ms']:.1f} ms cold (compile {c['compile_ms']:.1f}, build {c['build_ms']:.1f}, "
                      f"first step {c['first_step_ms']:.1f}), again {c['again_ms']:.1f} ms"))
    result = {
        "env": env,
        "measurements": [asdict(r) for r in rows.values()],
        "comparisons": [{"geo": g, "baseline": b, "ratio": rows[b].median_ms / rows[g].median_ms,
                         "ratio_min": rows[b].min_ms / rows[g].min_ms, "gbps_ratio": rows[g].gbps / rows[b].gbps}
                        for _, g, b in comparisons],
        "compile": compile_rows,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    print(tables(result) if args.markdown else text_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
