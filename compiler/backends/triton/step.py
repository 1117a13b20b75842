"""The Triton backend: a program's plan run over every parameter of a group, one launch per fused kernel.

    host     every host scalar, once per distinct (shape, step) of the group, in double precision
    Kernel   ONE launch of the kernel codegen.py generates for it, over all the group's tensors (a group
             whose tensors differ in dtype or access pattern gets one launch per kind)
    OpCall   the operator's torch reference; for operators that batch over leading dims (`OpDef.batches`), same-shape
             same-dtype matrices are stacked into one call, so one Newton–Schulz serves all of them

Kernels write the parameter and the states in place where the plan allows it (`plan.in_place`) and the buffer
is contiguous with the kernel's shape; everything else is written at the end of the step by every backend's
epilogue (../epilogue.py), never leaving a state sharing memory with the parameter, the gradient or another state.

Triton runs on CUDA tensors, or on CPU tensors under Triton's interpreter (`TRITON_INTERPRET=1`, set before
triton is imported), which is how the tests run it.
"""
from __future__ import annotations

import struct
from contextlib import nullcontext
from typing import Any

import torch
from torch.autograd.graph import increment_version

from ...ir import Node, Program, print_program
from ...ops import registry
from ...plan import Kernel, OpCall, concrete_shapes, is_host, plan
from ...types import DTYPES, torch_dtype
from ..batching import batched_calls
from ..epilogue import KEPT, end_step, storage_id
from ..reference import ReferenceStep
from . import cache
from .codegen import Launch, kernel_source, layout, module_source, node_dtype, numbering, output_roles, place, \
    table_scalars

BLOCK = 1024
NAMES = {torch_dtype(name): name for name in DTYPES}  # per tensor of every launch: a dict lookup by torch dtype


def _device():
    try:
        from . import device
    except ImportError as err:  # triton is an optional dependency
        raise RuntimeError("the triton backend needs the `triton` package: pip install 'geo[triton]'") from err
    return device


class TritonStep:
    name = "triton"

    def __init__(self, program: Program):
        self._math = _device()
        self.program = program
        self.plan = plan(program)
        self._reference = ReferenceStep(program)
        self.num = numbering(program)
        self.text = print_program(program)  # what the kernels are generated from (with spans): the cache key
        self.slots = {s.name: s for s in program.states}
        self.host_nodes = self.plan.host
        self.host_reads_state = any(n.op == "state" for n in self.host_nodes)
        kernels = self.plan.kernels()
        for k in kernels:
            for n in k.nodes:
                if registry.get(n.op).triton is None:
                    raise ValueError(f"operator `{n.op}` has no Triton lowering: give its @op a `triton=` facet")
        self.roles = {k.index: output_roles(program, self.plan, k) for k in kernels}
        in_kernels = {o.id for k in kernels for o in k.outputs}
        self.kernel_slots = {name for name, n in program.outputs.items() if name in self.plan.in_place and n.id in in_kernels}
        # An output that IS the old value of a slot a kernel overwrites (`m = W` with W updated in place) is
        # copied before the kernels run.
        self.snapshot = {n.id for name, n in program.outputs.items()
                         if n.op in ("param", "state") and _slot_of(n) in self.kernel_slots}
        self._fns: dict[tuple, Any] = {}
        self._blocks: dict[tuple, tuple[torch.Tensor, list[int]]] = {}
        self._shapes: dict[tuple[int, ...], dict[int, tuple[int, ...]]] = {}
        self.launches: set[tuple[int, Launch]] = set()  # every (kernel, launch) this runner has compiled

    # ---- the backends' per-parameter interface
    def init(self, param: torch.Tensor, hypers: dict[str, Any]) -> dict[str, Any]:
        return self._reference.init(param, hypers)

    def step(self, param, grad, state, hypers, t, inputs=None):
        """One parameter, functionally (the older calling convention): returns (new param, new states)."""
        p = param.clone()
        s = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in state.items()}
        self.step_group([p], [grad], [s], hypers, [t], [inputs or {}])
        return p, {name: s[name] for name in self.program.outputs if name != "param"}

    # ---- the group step
    def step_group(self, params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict[str, Any]],
                   hypers: dict[str, Any], ts: list[float], inputs: list[dict[str, Any]] | None = None) -> None:
        if not params:
            return
        inputs = inputs if inputs is not None else [{} for _ in params]
        self._check_devices(params)
        shapes = [self._shapes_of(tuple(p.shape)) for p in params]
        host = self._host(params, grads, states, hypers, ts, shapes, inputs)
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
        done: dict[tuple[int, str], torch.Tensor | None] = {}  # (tensor, slot) written by a kernel: None in place
        # how many of a parameter's buffers (itself, its grad, its states) share each storage: a slot whose buffer
        # another one shares is not overwritten in place
        shared: list[dict[int, int]] = []
        for p, g, s in zip(params, grads, states):
            count: dict[int, int] = {}
            for t in (p, g, *[v for v in s.values() if isinstance(v, torch.Tensor)]):
                count[storage_id(t)] = count.get(storage_id(t), 0) + 1
            shared.append(count)
        sources = [set(c) for c in shared]
        for ph in self.plan.phases:
            if isinstance(ph, Kernel):
                self._kernel(ph, params, states, env, host, shapes, done, shared)
            else:
                self._op(ph, env, host, shapes, sources)
        # Kernels write through raw pointers: tell autograd that these tensors changed, as an in-place torch op does
        # (a graph that saved the old parameter then refuses to backpropagate instead of using the new one).
        written = [params[i] if slot == "param" else states[i][slot] for (i, slot), v in done.items() if v is None]
        if written:
            increment_version(written)
        self._finish(params, grads, states, env, host, done)

    def _check_devices(self, params: list[torch.Tensor]) -> None:
        interpreted = self._math.INTERPRETED
        for p in params:
            if interpreted and p.device.type != "cpu":
                raise RuntimeError("Triton's interpreter (TRITON_INTERPRET=1) runs the triton backend on CPU tensors; "
                                   f"this parameter is on {p.device}")
            if not interpreted and p.device.type != "cuda":
                raise RuntimeError(f"the triton backend runs on CUDA tensors, this parameter is on {p.device}: use "
                                   "backend='torch' on the CPU (or TRITON_INTERPRET=1 to interpret the kernels)")

    def _shapes_of(self, shape: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
        found = self._shapes.get(shape)
        if found is None:
            found = self._shapes[shape] = concrete_shapes(self.program, shape)
        return found

    # ---- host scalars
    def _host(self, params, grads, states, hypers, ts, shapes, inputs) -> list[dict[int, Any]]:
        """Each tensor's host values (shared between tensors of one shape, step and host inputs)."""
        out, seen = [], {}
        for i, p in enumerate(params):
            key = i if self.host_reads_state else (tuple(p.shape), ts[i], tuple(
                (k, v) for k, v in sorted(inputs[i].items()) if isinstance(v, float)))
            if key not in seen:
                seen[key] = self._host_one(params[i], grads[i], states[i], hypers, ts[i], shapes[i], inputs[i])
            out.append(seen[key])
        return out

    def _host_one(self, p, g, state, hypers, t, shapes, inputs) -> dict[int, Any]:
        values: dict[int, Any] = {}
        for n in self.host_nodes:
            if n.op == "input":
                values[n.id] = inputs[n.attr("name")]
            elif n.op == "hyper":
                v = hypers[n.attr("name")]
                values[n.id] = float(v[n.attr("index")] if n.attr("index") is not None else v)
            elif n.op == "t":
                values[n.id] = float(t)
            elif n.op == "const":
                values[n.id] = n.value
            elif n.op == "state":
                v = state[n.attr("name")]
                values[n.id] = float(v) if isinstance(v, torch.Tensor) else v
            else:
                args = [values[a.id] if is_host(a) else _host_tensor(a, p, g, state, shapes) for a in n.args]
                values[n.id] = registry.get(n.op).apply(args, dict(n.attrs), n.type)
        return values

    # ---- kernels
    def _kernel(self, k: Kernel, params, states, env, host, shapes, done, shared) -> None:
        groups: dict[tuple, list[int]] = {}
        rows: list[tuple] = []
        roles_of = self.roles[k.index]
        for i, p in enumerate(params):
            dom = shapes[i][k.nodes[0].id]
            inputs, accesses = [], []
            for a in k.inputs:
                t = env[a.id][i]
                if not t.is_contiguous():
                    t = t.contiguous()
                inputs.append(t)
                accesses.append((NAMES[t.dtype], _access(tuple(t.shape), dom)))
            slot_dtypes = {"param": NAMES[p.dtype]}
            slot_dtypes.update({name: NAMES[v.dtype] for name, v in states[i].items() if isinstance(v, torch.Tensor)
                                and v.dtype in NAMES})
            buffers, dest_dtypes, roles = [], [], []
            for o in k.outputs:
                dtype_of_o = node_dtype(o, NAMES[p.dtype])
                dests = place(*roles_of[o.id], dtype_of_o, slot_dtypes)
                value = None
                for slot, dtype in dests:
                    if slot is None:
                        buf = torch.empty(dom, dtype=torch_dtype(dtype), device=p.device)
                    else:
                        target = p if slot == "param" else states[i][slot]
                        if target.is_contiguous() and tuple(target.shape) == dom and shared[i][storage_id(target)] == 1:
                            buf = target
                            done[(i, slot)] = None
                        else:  # a strided or differently shaped slot: written at the end of the step
                            buf = done[(i, slot)] = torch.empty(dom, dtype=target.dtype, device=p.device)
                    buffers.append(buf)
                    if value is None and dtype == dtype_of_o:
                        value = buf
                env.setdefault(o.id, [None] * len(params))[i] = value
                dest_dtypes.append(tuple(d for _, d in dests))
                roles.append(tuple(s for s, _ in dests))
                assert value is not None or not roles_of[o.id][1]
            bcast = any(a == "bcast" for _, a in accesses)
            compute = "fp64" if any(d == "fp64" for d, _ in accesses) or any("fp64" in d for d in dest_dtypes) else "fp32"
            launch = Launch(compute, tuple(accesses), tuple(dest_dtypes), len(dom) if bcast else 0, NAMES[p.dtype])
            key = (p.device, launch, tuple(roles))
            groups.setdefault(key, []).append(i)
            rows.append((dom, inputs, buffers, accesses))
        for (device, launch, _), members in groups.items():
            self._launch(k, launch, device, [rows[i] for i in members], [host[i] for i in members])

    def _launch(self, k: Kernel, launch: Launch, device: torch.device, rows: list[tuple], hosts: list[dict]) -> None:
        numels = tuple(_numel(dom) for dom, *_ in rows)
        blocks, first = self._block_table(numels, device)
        if not blocks.numel():
            return
        lay = layout(k, launch)
        scalars = table_scalars(k)
        meta = []
        for (dom, inputs, buffers, accesses), h, f, numel in zip(rows, hosts, first, numels):
            row = [t.data_ptr() for t in inputs] + [b.data_ptr() for b in buffers] + [numel, f]
            if lay.strides:
                row += list(dom)
                for j in sorted(lay.strides):
                    row += _strides(tuple(inputs[j].shape), dom)
            row += [_bits(h[s.id]) for s in scalars]
            assert len(row) == lay.width
            meta.append(row)
        fn = self._function(k, launch, device)
        if device.type == "cuda":  # one asynchronous copy from pinned memory, on the tensors' own device
            table = torch.tensor(meta, dtype=torch.int64).pin_memory().to(device, non_blocking=True)
            with torch.cuda.device(device):
                fn[(int(blocks.numel()),)](table, blocks, BLOCK=BLOCK)
            return
        table = torch.tensor(meta, dtype=torch.int64)
        with self._quiet():
            fn[(int(blocks.numel()),)](table, blocks, BLOCK=BLOCK)

    def _quiet(self):
        """The interpreter computes masked-off lanes too (numpy warns about their log(0) and 0/0)."""
        if self._math.INTERPRETED:
            import numpy as np
            return np.errstate(all="ignore")
        return nullcontext()

    def _block_table(self, numels: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, list[int]]:
        key = (numels, str(device))
        found = self._blocks.get(key)
        if found is None:
            owner, first = [], []
            for i, n in enumerate(numels):
                first.append(len(owner))
                owner += [i] * -(-n // BLOCK)
            found = self._blocks[key] = (torch.tensor(owner, dtype=torch.int32).to(device), first)
        return found

    def _function(self, k: Kernel, launch: Launch, device: torch.device):
        key = (k.index, launch)
        fn = self._fns.get(key)
        if fn is None:
            where = _device_name(device, self._math.INTERPRETED)
            versions = cache.versions()
            context = {"BLOCK": BLOCK, "device": where, "versions": versions}
            module = cache.load(
                (self.text, k.index, repr(launch), context),
                lambda: module_source([kernel_source(self.program, k, launch, self.num)]),
                context)
            fn = self._fns[key] = getattr(module, f"k{k.index}")
            self.launches.add(key)
        return fn

    # ---- torch ops
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
            if isinstance(out[i], torch.Tensor) and storage_id(out[i]) in sources[i]:
                out[i] = out[i].clone()  # a view of the parameter or a state, which a later kernel may overwrite
        env[n.id] = out

    # ---- the end of the step
    def _finish(self, params, grads, states, env, host, done) -> None:
        for i, (p, g, state) in enumerate(zip(params, grads, states)):
            def value_of(name, node, i=i):
                if (i, name) in done:  # None: a kernel wrote it in place already
                    return KEPT if done[(i, name)] is None else done[(i, name)]
                return env[node.id][i] if node.id in env else host[i][node.id]
            end_step(p, g, state, self.program.outputs, self.slots, value_of)


# ---- helpers -------------------------------------------------------------------------------------------
def _slot_of(n: Node) -> str:
    return "param" if n.op == "param" else n.attr("name")



def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def _access(shape: tuple[int, ...], dom: tuple[int, ...]) -> str:
    if shape == dom:
        return "full"
    if _numel(shape) == 1:
        return "scalar"
    padded = (1,) * (len(dom) - len(shape)) + shape
    if len(padded) != len(dom) or any(s not in (1, d) for s, d in zip(padded, dom)):
        raise ValueError(f"a kernel input of shape {shape} does not broadcast to the kernel's shape {dom}")
    return "bcast"


def _strides(shape: tuple[int, ...], dom: tuple[int, ...]) -> list[int]:
    """Element strides of a contiguous input over the kernel's iteration shape (0 along broadcast dims)."""
    padded = (1,) * (len(dom) - len(shape)) + shape
    out, step = [], 1
    for s in reversed(padded):
        out.append(step if s != 1 else 0)
        step *= s
    return list(reversed(out))


def _bits(value: Any) -> int:
    """A host number as the int64 holding its float64 bits (the kernel bitcasts it back)."""
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


def _host_tensor(a: Node, p, g, state, shapes) -> torch.Tensor:
    """A tensor argument of a host node: a shape fact needs only its shape (a meta tensor stands in for an
    intermediate)."""
    if a.op == "param":
        return p
    if a.op == "grad":
        return g
    if a.op == "state":
        return state[a.attr("name")]
    return torch.empty(shapes[a.id], device="meta")


def _device_name(device: torch.device, interpreted: bool) -> str:
    if interpreted:
        return "interpreter"
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return f"{device.type}:{torch.cuda.get_device_name(index)}:sm{major}{minor}"
