"""The inductor backend (`InductorStep`): each fused region of a program's plan compiled by TorchInductor.

    host     every host scalar, once per distinct (shape, step) of the group, in double precision (as the
             other backends); a region reads the ones it needs from a float64 tensor, so they are data:
             a learning-rate schedule, the step count in a bias correction, never recompile
    Kernel   ONE generated Python function of the region's nodes (each node its operator's `inductor` facet,
             or its torch reference), compiled with `torch.compile(fullgraph=True, dynamic=True)`: Inductor
             fuses it into one loop nest (vectorized C++ with OpenMP on the CPU, Triton on CUDA) that reads each
             input once and stores the parameter and the states in place
    OpCall   the operator's torch reference, an ATen call between regions; operators that batch over leading
             dims (`OpDef.batches`: msign, matmul, power iteration) get the group's same-shape matrices stacked
             into one call (one bmm-based Newton–Schulz per shape); on the CPU a group whose plan has such
             ops steps in runs of same-shape tensors of at most 32 MiB (batching.py: the values between
             regions of one run alive at a time, blocks malloc recycles instead of faulting in every step)

Regions are traced with symbolic sizes and, where every input is whole or a single element, over flat views:
one compilation serves every tensor of a group (a vector and a matrix alike) and any model. It is then called
once per tensor (Inductor's CPU kernels are per tensor anyway: one call each, ~25 µs of dispatch). The
compiled variants are keyed by what the trace depends on — the region, dtypes, flat or shaped, where each
output goes, the gradient check — and each key gets its own code object, so Dynamo never mixes them up or
runs into its per-function recompilation limit. On the CPU, a tensor of at least PARALLEL_NUMEL elements runs
a variant compiled with `cpp.dynamic_threads` (an OpenMP loop over torch's threads); smaller ones a serial one
(a parallel region costs more than it saves below that).

The gradient check (`check=True`, the runtime's `nonfinite="skip"`): the first region computes
`all(isfinite(grad))` per tensor in the same compiled kernel as its arithmetic (a reduction loop over the
gradient, then the update loop), and every store into the parameter or a state — in this region and later
ones — is `where(ok, new, old)`. The runtime's separate pass over the gradients is gone; the gradient is read
twice inside the kernel (a step that must not change anything when one element is bad cannot store before it
has seen them all). Values that reach the end of the step outside a region (an op's result bound to a state)
are selected the same way there. `step_group` returns the flags; the runtime counts the skips.

Inductor's caches (the FX graph cache and the compiled C++/Triton code, on disk under
`TORCHINDUCTOR_CACHE_DIR`) make a second process's first step a cache load instead of a compilation. A
compilation that takes more than a second says so on stderr.

Not bit-exact with the reference (fused arithmetic rounds once where torch rounds per op, summation orders
differ); tests/inductor states the tolerances.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.autograd.graph import increment_version

from ..ir import Node, Program
from ..ops import registry
from ..plan import Kernel, OpCall, concrete_shapes, is_host, plan
from ..types import DTYPES, Tensor, torch_dtype
from .batching import batched_calls, cpu_runs
from .epilogue import KEPT, end_step, storage_id
from .reference import ReferenceStep, evaluate

PARALLEL_NUMEL = 1 << 16   # CPU: tensors from this size on run a region on all of torch's threads
PROGRESS_SECONDS = 1.0     # a compilation longer than this prints a progress line
NAMES = {torch_dtype(name): name for name in DTYPES}


@dataclass(frozen=True)
class Variant:
    """What the trace of one region depends on (besides sizes, which are symbolic)."""

    kernel: int
    flat: bool                                  # inputs and outputs as 1-D (or 0-d) views
    inputs: tuple[tuple[str, str], ...]         # per input: (dtype, "full" | "one" | "shaped")
    param: str                                  # the parameter's dtype: what a node of dtype "param" holds
    dests: tuple[tuple[int, int], ...]          # (output index, argument index) per in-place store
    extra: int                                  # destination buffers that are not inputs (a state not read here)
    returned: tuple[int, ...]                   # outputs returned to the step
    check: str                                  # "compute" | "take" | "none": the gradient check
    grad_arg: int                               # the argument holding the gradient ("compute"), -1 if none
    parallel: bool                              # CPU: OpenMP over torch's threads
    device: str


class InductorStep:
    name = "inductor"
    checks_finite = True  # step_group(check=True): the gradient check and the skip inside the kernels

    def __init__(self, program: Program):
        self.program = program
        self.plan = plan(program)
        self._reference = ReferenceStep(program)
        self.slots = {s.name: s for s in program.states}
        self.num = {n.id: i for i, n in enumerate(program.nodes())}
        self.host_nodes = [n for n in program.step_nodes() if is_host(n) or n.op in ("param", "grad", "state")]
        self.host_reads_state = any(n.op == "state" and is_host(n) for n in self.host_nodes)
        self.shaped = [a for n in self.host_nodes if is_host(n) for a in n.args
                       if not is_host(a) and a.op not in ("param", "grad", "state")]
        kernels = self.plan.kernels()
        self.first_kernel = kernels[0].index if kernels else None
        self.grad_node = next((n for n in self.plan.sources if n.op == "grad"), None)
        later_reads = {}
        for k in kernels:
            after = {a.id for ph in self.plan.phases if ph.index > k.index for n in ph.nodes for a in n.args}
            later_reads[k.index] = after
        self.later_reads = later_reads
        in_kernels = {o.id for k in kernels for o in k.outputs}
        # the program outputs a kernel may store straight into their slot (plan.in_place), per output node
        self.in_place: dict[int, list[str]] = {}
        for name, n in program.outputs.items():
            if name in self.plan.in_place and n.id in in_kernels:
                self.in_place.setdefault(n.id, []).append(name)
        kernel_slots = {s for names in self.in_place.values() for s in names}
        # An output that IS the old value of a slot a kernel overwrites (`prev = W`) is copied before the kernels.
        self.snapshot = {n.id for name, n in program.outputs.items()
                         if n.op in ("param", "state") and _slot_of(n) in kernel_slots}
        self._compiled: dict[Variant, Callable] = {}
        self.sources: dict[Variant, str] = {}     # the generated source of every variant compiled
        self.compile_seconds = 0.0
        self._shapes: dict[tuple[int, ...], dict[int, tuple[int, ...]]] = {}
        self.has_ops = any(isinstance(ph, OpCall) for ph in self.plan.phases)

    # ---- the backends' per-parameter interface
    def init(self, param: torch.Tensor, hypers: dict[str, Any]) -> dict[str, Any]:
        return self._reference.init(param, hypers)

    # ---- the group step
    def step_group(self, params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict[str, Any]],
                   hypers: dict[str, Any], ts: list[float], inputs: list[dict[str, Any]] | None = None,
                   check: bool = False) -> list[torch.Tensor] | None:
        """One step for the group. `inputs`: per parameter, what the program's `input` nodes read (the random
        key, `across` values). With `check`, a tensor whose gradient holds NaN or ±Inf keeps its parameter and
        states; returns one 0-d bool tensor per parameter (True: stepped)."""
        if not params:
            return [] if check else None
        inputs = inputs if inputs is not None else [{} for _ in params]
        if self.has_ops and not params[0].is_cuda:
            # Level by level over the whole group, every tensor's values between the regions and the matrix ops
            # would be alive at once (736 MB for GPT-2 small's Muon), memory that malloc trims and faults in
            # again every step; a run of same-shape tensors at a time bounds them (batching.cpu_runs).
            runs = cpu_runs(params)
            if len(runs) > 1:
                ok: list[Any] = [None] * len(params)
                for run in runs:
                    pick = lambda xs: [xs[i] for i in run]  # noqa: E731
                    flags = self._step(pick(params), pick(grads), pick(states), hypers, pick(ts), pick(inputs),
                                       check)
                    for i, flag in zip(run, flags or ()):
                        ok[i] = flag
                return ok if check else None
        return self._step(params, grads, states, hypers, ts, inputs, check)

    def _step(self, params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict[str, Any]],
              hypers: dict[str, Any], ts: list[float], inputs: list[dict[str, Any]],
              check: bool) -> list[torch.Tensor] | None:
        shapes = [self._shapes_of(tuple(p.shape)) for p in params]
        host = self._host(params, grads, states, hypers, ts, inputs)
        env: dict[int, list[Any]] = {}
        for n in self.plan.sources:
            if n.op == "param":
                env[n.id] = list(params)
            elif n.op == "grad":
                env[n.id] = list(grads)
            elif n.op == "input":
                env[n.id] = [i[n.attr("name")] for i in inputs]
                continue
            else:
                env[n.id] = [s[n.attr("name")] for s in states]
            if n.id in self.snapshot:
                env[n.id] = [t.clone() for t in env[n.id]]
        ok: list[Any] | None = [None] * len(params) if check else None
        done: set[tuple[int, str]] = set()  # (tensor, slot) stored in place by a kernel
        shared = []  # per parameter: how many of its buffers (itself, grad, states) share each storage
        for p, g, s in zip(params, grads, states):
            count: dict[int, int] = {}
            for t in (p, g, *[v for v in s.values() if isinstance(v, torch.Tensor)]):
                count[storage_id(t)] = count.get(storage_id(t), 0) + 1
            shared.append(count)
        sources = [set(c) for c in shared]
        compiling = _Progress(self.program)
        try:
            for ph in self.plan.phases:
                if isinstance(ph, Kernel):
                    self._kernel(ph, params, grads, states, env, host, shapes, done, shared, ok, compiling)
                else:
                    self._op(ph, env, host, shapes, sources)
        finally:
            compiling.finish()
        if check and ok[0] is None:  # a program without a fused region: the check runs here, on its own
            ok = [torch.isfinite(g).all() for g in grads]
        written = [params[i] if slot == "param" else states[i][slot] for i, slot in done]
        if written:
            increment_version(written)
        self._finish(params, grads, states, env, host, done, ok)
        return ok

    def _shapes_of(self, shape: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
        found = self._shapes.get(shape)
        if found is None:
            found = self._shapes[shape] = concrete_shapes(self.program, shape)
        return found

    # ---- host scalars
    def _host(self, params, grads, states, hypers, ts, inputs) -> list[dict[int, Any]]:
        """Each tensor's host values, in double precision (shared between tensors of one shape, step and host
        inputs)."""
        out, seen = [], {}
        for i, p in enumerate(params):
            key = i if self.host_reads_state else (tuple(p.shape), ts[i], tuple(
                (k, v) for k, v in sorted(inputs[i].items()) if isinstance(v, float)))
            if key not in seen:
                env = {"param": p, "grad": grads[i], "state": states[i], "hypers": hypers, "t": ts[i],
                       "inputs": inputs[i]}
                seen[key] = evaluate(self.host_nodes, env, self._stand_ins(p))
            out.append(seen[key])
        return out

    def _stand_ins(self, p: torch.Tensor) -> dict[int, torch.Tensor]:
        """Shape facts of intermediate tensors (`rows(W * s)`) need only their shapes: meta tensors stand in."""
        if not self.shaped:
            return {}
        shapes = self._shapes_of(tuple(p.shape))
        return {a.id: torch.empty(shapes[a.id], device="meta") for a in self.shaped}

    # ---- regions
    def _kernel(self, k: Kernel, params, grads, states, env, host, shapes, done, shared, ok, compiling) -> None:
        scalars = _table(k)
        tables: dict[tuple, torch.Tensor] = {}
        later = self.later_reads[k.index]
        check = "none" if ok is None else ("compute" if k.index == self.first_kernel else "take")
        for i, p in enumerate(params):
            dom = shapes[i][k.nodes[0].id]
            numel = math.prod(dom)
            inputs = [env[a.id][i] for a in k.inputs]
            if check == "compute" and self.grad_node is not None and all(a.id != self.grad_node.id for a in k.inputs):
                inputs.append(grads[i])  # this region does not read the gradient otherwise: the check adds a read
            grad_arg = -1
            if check == "compute":
                grad_arg = next((j for j, a in enumerate(k.inputs) if a.id == self.grad_node.id), len(k.inputs))
            # where each output goes: in place into its slots (a contiguous buffer of the region's shape that no
            # other buffer of this parameter shares), and/or returned
            dests, extra_bufs, returned = [], [], []
            values: dict[int, Any] = {}
            for j, o in enumerate(k.outputs):
                in_slot = None
                for slot in self.in_place.get(o.id, ()):
                    target = p if slot == "param" else states[i][slot]
                    if not (isinstance(target, torch.Tensor) and target.is_contiguous()
                            and tuple(target.shape) == dom and shared[i][storage_id(target)] == 1):
                        continue
                    arg = next((m for m, t in enumerate(inputs) if t is target), None)
                    if arg is None:
                        arg = len(inputs) + len(extra_bufs)
                        extra_bufs.append(target)
                    dests.append((j, arg))
                    done.add((i, slot))
                    if in_slot is None and target.dtype == self._dtype_of(o, p):
                        in_slot = target
                needed = o.id in later or any(n.id == o.id and (i, name) not in done
                                              for name, n in self.program.outputs.items())
                if needed and in_slot is None:
                    returned.append(j)
                elif needed:
                    values[o.id] = in_slot
            flat = all(_flattenable(t, dom) for t in inputs) and all(t.is_contiguous() for t in extra_bufs)
            args = [_flat(t, dom) if flat else t for t in inputs + extra_bufs]
            variant = Variant(
                k.index, flat,
                tuple((NAMES.get(t.dtype, str(t.dtype)), _access(t, dom, flat)) for t in inputs),
                NAMES.get(p.dtype, str(p.dtype)), tuple(dests), len(extra_bufs), tuple(returned), check, grad_arg,
                p.device.type == "cpu" and numel >= PARALLEL_NUMEL and torch.get_num_threads() > 1, p.device.type)
            if scalars:
                row = tuple(float(host[i][s.id]) for s in scalars)
                table = tables.get(row)
                if table is None:
                    table = tables[row] = torch.tensor(row, dtype=torch.float64).to(p.device, non_blocking=True)
                args.append(table)
            if check == "take":
                args.append(ok[i])
            fn = self._compiled.get(variant)
            if fn is None:
                fn = self._compile(k, variant, compiling)
            out = fn(*args)
            if check == "compute":
                *out, ok[i] = out
            for j, r in zip(returned, out):
                values[k.outputs[j].id] = r.view(dom) if flat and r.numel() == numel else r
            for o in k.outputs:
                if o.id in values:
                    env.setdefault(o.id, [None] * len(params))[i] = values[o.id]

    def _dtype_of(self, n: Node, p: torch.Tensor) -> torch.dtype:
        d = n.type.dtype if isinstance(n.type, Tensor) else "param"
        return p.dtype if d == "param" else torch_dtype(d)

    def _compile(self, k: Kernel, v: Variant, compiling: "_Progress") -> Callable:
        source, names = region_source(self.program, k, v, self.num)
        key = (_code(source), dataclasses.replace(v, kernel=-1))
        region = _REGIONS.get(key)
        if region is None:
            region = _REGIONS[key] = _Region(source, names, v)
        what = f"region k{k.index} of {self.program.optimizer}[{self.program.rule_index}]"

        def run(*args):
            if region.ready:
                return region.fn(*args)
            compiling.start()
            t0 = time.perf_counter()
            try:
                return region.first(args, what)
            finally:
                self.compile_seconds += time.perf_counter() - t0

        self._compiled[v] = run
        self.sources[v] = source
        return run

    # ---- torch ops between regions
    def _op(self, ph: OpCall, env, host, shapes, sources) -> None:
        n = ph.node
        opdef = registry.get(n.op)
        attrs = dict(n.attrs)
        count = len(shapes)
        columns = [[host[i][a.id] if is_host(a) else env[a.id][i] for a in n.args] for i in range(count)]
        out = batched_calls(opdef, columns, attrs, n.type, lambda i: shapes[i][n.id]) \
            if opdef.batches and count > 1 else [None] * count
        for i in range(count):
            if out[i] is None:
                out[i] = opdef.apply(columns[i], attrs, n.type)
            if isinstance(out[i], torch.Tensor) and (storage_id(out[i]) in sources[i] or not out[i].is_contiguous()):
                # a view of the parameter or a state, which a later region may overwrite; or strided (a tall
                # matrix's msign is a transposed view): regions read flat views, one compilation for all layouts
                out[i] = out[i].contiguous() if not out[i].is_contiguous() else out[i].clone()
        env[n.id] = out

    # ---- the end of the step
    def _finish(self, params, grads, states, env, host, done, ok) -> None:
        for i, (p, g, state) in enumerate(zip(params, grads, states)):
            def value_of(name, node, i=i, p=p, state=state):
                if (i, name) in done:
                    return KEPT
                value = env[node.id][i] if node.id in env else host[i][node.id]
                if ok is None:
                    return value
                old = p if name == "param" else state[name]
                if not isinstance(old, torch.Tensor):  # a scalar slot: the flag is needed on the host
                    return value if bool(ok[i]) else old
                return torch.where(ok[i], value, old)
            end_step(p, g, state, self.program.outputs, self.slots, value_of)

    # ---- introspection
    def show(self) -> str:
        """The generated source of every region variant compiled so far."""
        return "\n\n".join(self.sources.values())


# ---- code generation -------------------------------------------------------------------------------------
def region_source(program: Program, k: Kernel, v: Variant, num: dict[int, int]) -> tuple[str, dict[str, Any]]:
    """The Python function of one region variant, and the names it calls (each operator's lowering, bound to
    its static attributes). Arguments are `x<j>` (inputs), `d<j>` (destination buffers), `sc` (the float64
    scalar table) and `ok` (the gradient flag); values are `v<j>`, numbered within the region, so equal regions
    of different programs have the same source and share one compilation. The comments name each value's node
    as `--emit opt` numbers it and its place in the spec; no other text of the spec reaches the source."""
    n_in = len(v.inputs)
    params = [f"x{j}" for j in range(n_in)] + [f"d{j}" for j in range(v.extra)]
    table = _table(k)
    if table:
        params.append("sc")
    if v.check == "take":
        params.append("ok")
    lines = [f"def region({', '.join(params)}):"]
    names: dict[str, Any] = {}
    value: dict[int, str] = {}
    for j, a in enumerate(k.inputs):
        value[a.id] = f"x{j}"
    for j, s in enumerate(table):
        value[s.id] = f"sc[{j}]"
    for s in k.scalars:
        literal = _literal(s)
        if literal is not None:
            value[s.id] = literal
    for j, n in enumerate(k.nodes):
        opdef = registry.get(n.op)
        fn = f"op_{n.op}_{_attrs_key(n)}" if n.attrs else f"op_{n.op}"
        if fn not in names:
            names[fn] = _lowering(opdef, dict(n.attrs))
        call = f"{fn}({', '.join(value[a.id] for a in n.args)})"
        lines.append(f"    v{j} = _as({call}, torch.{_expected(n, v.param)})  # %{num[n.id]}{_where(n)}")
        value[n.id] = f"v{j}"
    if v.check == "compute":
        lines.append(f"    ok = torch.isfinite(x{v.grad_arg}).all()")
    for j, arg in v.dests:
        o = k.outputs[j]
        dest = params[arg]
        new = value[o.id] if v.check == "none" else f"torch.where(ok, {value[o.id]}, {dest})"
        lines.append(f"    {dest}.copy_({new})")
    ret = [value[k.outputs[j].id] for j in v.returned] + (["ok"] if v.check == "compute" else [])
    lines.append(f"    return ({', '.join(ret)}{',' if ret else ''})")
    return "\n".join(lines) + "\n", names


def _attrs_key(n: Node) -> str:
    """A name-safe digest of a node's static attributes (an operator called with other statics is another name)."""
    import hashlib
    return hashlib.sha256(repr(sorted(n.attrs)).encode()).hexdigest()[:8]


def _lowering(opdef, attrs: dict[str, Any]) -> Callable:
    """The operator as the trace calls it: its `inductor` facet, else its torch reference, arguments by name."""
    fn = opdef.inductor or opdef.reference
    names = [p.name for p in opdef.value_params]

    def lower(*args):
        return fn(**dict(zip(names, args)), **attrs)
    return lower


def _as(value: Any, dtype: torch.dtype) -> Any:
    """A node's value in the dtype torch holds it in: a host scalar (a 0-d float64 tensor here, a Python number in
    the reference) never widens a result, so a float64 that reaches a node of another dtype is narrowed
    (`where(mask, s, t)` of two scalars, a comparison with a scalar on the left)."""
    if isinstance(value, torch.Tensor) and value.dtype == torch.float64 and dtype != torch.float64:
        return value.to(dtype)
    return value


def _expected(n: Node, param: str) -> str:
    d = n.type.dtype if isinstance(n.type, Tensor) else "param"
    name = param if d == "param" else d
    return DTYPES[name].torch if name in DTYPES else "float32"


def _table(k: Kernel) -> list[Node]:
    """The host scalars a region reads from its float64 table: all but finite numeric constants (literals)."""
    return [s for s in k.scalars if _literal(s) is None]


def _literal(n: Node) -> str | None:
    if n.op != "const" or isinstance(n.value, (str, tuple)) or n.value is None:
        return None
    try:
        value = float(n.value)
    except (OverflowError, TypeError, ValueError):
        return None
    return repr(value) if math.isfinite(value) else None


def _where(n: Node) -> str:
    if not n.span.source.text:
        return ""
    line, col = n.span.source.line_col(n.span.start)
    return f" @{line}:{col}"


def _slot_of(n: Node) -> str:
    return "param" if n.op == "param" else n.attr("name")


def _flattenable(t: torch.Tensor, dom: tuple[int, ...]) -> bool:
    return (tuple(t.shape) == dom and t.is_contiguous()) or t.numel() == 1


def _flat(t: torch.Tensor, dom: tuple[int, ...]) -> torch.Tensor:
    return t.view(-1) if tuple(t.shape) == dom else t.reshape(())


def _access(t: torch.Tensor, dom: tuple[int, ...], flat: bool) -> str:
    if tuple(t.shape) == dom:
        return "full"
    if t.numel() == 1:
        return "one"
    return "shaped"


class _Region:
    """One compiled region variant, shared by every runner whose region has the same source (the same nodes
    with the same dtypes, destinations and check): Dynamo traces each code object once."""

    def __init__(self, source: str, names: dict[str, Any], v: Variant):
        scope = {"torch": torch, "_as": _as, **names}
        exec(compile(source, f"<geo-inductor region #{len(_REGIONS)}>", "exec"), scope)  # noqa: S102 - our own
        # generated source; no text of the spec reaches it (values are v<N>, the comments are stripped)
        options: dict[str, Any] = {"emulate_precision_casts": True}
        if v.device == "cpu":
            options["cpp.dynamic_threads"] = v.parallel
        self.fn = torch.compile(scope["region"], fullgraph=True, dynamic=True, options=options)
        self.ready = False

    def first(self, args: tuple, what: str) -> Any:
        try:
            out = self.fn(*args)
        except Exception as err:
            text = str(err).strip().splitlines()
            raise RuntimeError(f"the inductor backend could not compile {what} ({type(err).__name__}: "
                               f"{text[0] if text else repr(err)}); backend='torch' runs the same step without a "
                               "compiler") from err
        self.ready = True
        return out


_REGIONS: dict[tuple, _Region] = {}  # (source without comments, variant without its kernel index) -> region


def _code(source: str) -> str:
    """The source without its comments (which name the spec's nodes and lines): what the trace depends on."""
    return "\n".join(line.split("  #", 1)[0] for line in source.splitlines())


class _Progress:
    """One line on stderr when a step's compilations take longer than PROGRESS_SECONDS, and one when they end."""

    def __init__(self, program: Program):
        self.what = f"{program.optimizer}[{program.rule_index}]"
        self.timer: threading.Timer | None = None
        self.t0 = 0.0
        self.said = False

    def start(self) -> None:
        if self.timer is None:
            self.t0 = time.perf_counter()
            self.timer = threading.Timer(PROGRESS_SECONDS, self._say)
            self.timer.daemon = True
            self.timer.start()

    def _say(self) -> None:
        self.said = True
        print(f"geo: compiling {self.what} with TorchInductor (first step; later processes load it from "
              "Inductor's disk cache)...", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            if self.said:
                print(f"geo: compiled {self.what} in {time.perf_counter() - self.t0:.1f} s", file=sys.stderr,
                      flush=True)
            self.timer = None
