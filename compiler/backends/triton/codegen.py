"""Triton source for the fused kernels of a plan (compiler/plan.py): one `@triton.jit` kernel per `Kernel`.

A kernel steps EVERY parameter of a group in one launch. Its only arguments are two device tensors:

    META    int64 [tensors, width]: one row per parameter — the data pointer of each input and output buffer,
            the number of elements, the first block of that tensor, the iteration shape and the broadcast
            strides (where an input is broadcast), and the runtime host scalars as float64 bit patterns
    BLOCKS  int32 [blocks]: the row that each program (block of BLOCK elements) works on

so the grid covers the blocks of all tensors together, each program finds its tensor with one load, casts
that row's pointers with `.to(tl.pointer_type(...))`, and masks its tail. Host scalars travel in META (one per
tensor: bias corrections depend on each parameter's step, shape facts on its shape): a learning-rate schedule
changes data, never the source, and nothing recompiles. Static values are literals in the source.

Inputs are loaded and upcast to the compute dtype (fp32; fp64 when a buffer of the launch is fp64): the same
element (`full`), one element (`scalar`: a 0-d reduction result), or through index arithmetic (`bcast`: an
(m, 1) or (1, n) operand of an (m, n) kernel). A node whose value torch holds in a narrower dtype (a bf16 state
times a number, any node of a bf16 parameter) is rounded to it, as torch rounds each op's result: the kernel
computes what the reference computes, with one rounding per op. Every output is stored in each of its
destination buffers' dtypes: the parameter or a state in place, or a fresh buffer for later phases.

The source never contains text of the spec: values are named `v0, v1, …` (numbered as `--emit opt` numbers
nodes), operators lower through their registry facet (`OpDef.triton`, a function of argument expressions),
and the only comments are `# op @line:col`. Device functions (IEEE division and square root, NaN-propagating
max, bf16 rounding, the transcendental functions) live in device.py, imported as `G`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...ir import Node, Program
from ...ops import registry
from ...plan import Kernel, Plan
from ...types import DTYPES, Tensor

CODEGEN_VERSION = "1"
ACCESSES = ("full", "scalar", "bcast")


@dataclass(frozen=True)
class Launch:
    """What a kernel's source depends on besides the plan: the dtypes and access patterns of one launch."""

    compute: str                          # "fp32" | "fp64"
    inputs: tuple[tuple[str, str], ...]   # per kernel input: (dtype, access), access in ACCESSES
    outputs: tuple[tuple[str, ...], ...]  # per kernel output: the dtype of each destination buffer
    rank: int                             # rank of the iteration shape (used by `bcast` index arithmetic)
    param: str = "fp32"                   # the parameter's dtype: what a node of dtype "param" holds


@dataclass(frozen=True)
class Layout:
    """Column offsets of one META row."""

    inputs: int      # first input pointer (one column each)
    outputs: int     # first destination pointer
    numel: int
    first: int       # the tensor's first block
    dims: int        # the iteration shape (rank columns), when some input is broadcast
    strides: dict[int, int]  # input index -> its first stride column (rank columns)
    scalars: int     # first host scalar (float64 bits)
    width: int


def table_scalars(kernel: Kernel) -> list[Node]:
    """The host scalars a kernel reads from META: all but finite numeric constants, which are literals."""
    return [s for s in kernel.scalars if _literal(s) is None]


def layout(kernel: Kernel, launch: Launch) -> Layout:
    n_in = len(kernel.inputs)
    n_out = sum(len(d) for d in launch.outputs)
    bcast = [j for j, (_, access) in enumerate(launch.inputs) if access == "bcast"]
    rank = launch.rank if bcast else 0
    numel = n_in + n_out
    dims = numel + 2
    strides = {j: dims + rank * (k + 1) for k, j in enumerate(bcast)}
    scalars = dims + rank * (len(bcast) + 1)
    return Layout(0, n_in, numel, numel + 1, dims, strides, scalars, scalars + len(table_scalars(kernel)))


def _literal(n: Node) -> str | None:
    """A constant's value as a Python float literal, or None (not a constant, or not finite)."""
    if n.op != "const" or isinstance(n.value, (str, tuple)) or n.value is None:
        return None
    try:
        value = float(n.value)
    except (OverflowError, TypeError, ValueError):
        return None
    return repr(value) if math.isfinite(value) else None


def _where(n: Node, program: Program) -> str:
    if not n.span.source.text:
        return f"  # {n.op}"
    line, col = n.span.source.line_col(n.span.start)
    return f"  # {n.op} @{line}:{col}"


def numbering(program: Program) -> dict[int, int]:
    """Node ids → the dense numbers `--emit opt` prints (`%15` is `v15` in a kernel)."""
    return {n.id: i for i, n in enumerate(program.nodes())}


def kernel_source(program: Program, kernel: Kernel, launch: Launch, num: dict[int, int] | None = None) -> str:
    """The `@triton.jit` function of one kernel for one launch, named `k<phase index>`."""
    num = num if num is not None else numbering(program)
    lay = layout(kernel, launch)
    ct = DTYPES[launch.compute].triton
    bcast = sorted(lay.strides)
    rank = launch.rank if bcast else 0
    out: list[str] = []
    emit = out.append
    emit("@triton.jit")
    emit(f"def k{kernel.index}(META, BLOCKS, BLOCK: tl.constexpr):")
    emit("    pid = tl.program_id(0)")
    emit(f"    row = META + tl.load(BLOCKS + pid).to(tl.int64) * {lay.width}")
    emit(f"    offs = (pid - tl.load(row + {lay.first})) * BLOCK + tl.arange(0, BLOCK)")
    emit(f"    mask = offs < tl.load(row + {lay.numel})")
    if rank:
        # the multi-index of each element in the iteration shape, for the broadcast inputs
        emit("    rest = offs")
        for d in reversed(range(1, rank)):
            emit(f"    dim = tl.load(row + {lay.dims + d})")
            emit(f"    i{d} = rest % dim")
            emit("    rest = rest // dim")
        emit("    i0 = rest")
    block: dict[int, bool] = {}
    names: dict[int, str] = {}
    for j, (a, (dtype, access)) in enumerate(zip(kernel.inputs, launch.inputs)):
        v = f"v{num[a.id]}"
        names[a.id] = v
        emit(f"    p{j} = tl.load(row + {lay.inputs + j}).to(tl.pointer_type({DTYPES[dtype].triton}))")
        upcast = "" if dtype == launch.compute else f".to({ct})"
        if access == "full":
            emit(f"    {v} = tl.load(p{j} + offs, mask=mask, other=0){upcast}{_where(a, program)}")
        elif access == "scalar":
            emit(f"    {v} = tl.load(p{j}){upcast}{_where(a, program)}")
        else:
            index = " + ".join(f"i{d} * tl.load(row + {lay.strides[j] + d})" for d in range(rank))
            emit(f"    {v} = tl.load(p{j} + ({index}), mask=mask, other=0){upcast}{_where(a, program)}")
        block[a.id] = access != "scalar"
    for k, s in enumerate(table_scalars(kernel)):
        v = f"s{num[s.id]}"
        names[s.id] = v
        down = f".to({ct})" if launch.compute != "fp64" else ""
        emit(f"    {v} = tl.load(row + {lay.scalars + k}).to(tl.float64, bitcast=True){down}{_where(s, program)}")
        block[s.id] = False
    for s in kernel.scalars:
        literal = _literal(s)
        if literal is not None:
            v = f"c{num[s.id]}"
            names[s.id] = v
            emit(f"    {v} = tl.full((), {literal}, {ct})")
            block[s.id] = False
    for n in kernel.nodes:
        opdef = registry.get(n.op)
        if opdef is None or opdef.triton is None:
            raise ValueError(f"operator {n.op!r} has no Triton lowering")
        v = f"v{num[n.id]}"
        expr = opdef.triton([names[a.id] for a in n.args], dict(n.attrs))
        dtype = node_dtype(n, launch.param)
        if dtype != launch.compute:  # torch computes this node in a narrower dtype: round as it does
            expr = _round(expr, launch.compute, dtype)
        emit(f"    {v} = {expr}{_where(n, program)}")
        names[n.id] = v
        block[n.id] = any(block[a.id] for a in n.args)
    ptr = lay.outputs
    for o, dests in zip(kernel.outputs, launch.outputs):
        value = names[o.id] if block[o.id] else f"({names[o.id]} + tl.zeros((BLOCK,), {ct}))"
        for dtype in dests:
            emit(f"    q{ptr} = tl.load(row + {ptr}).to(tl.pointer_type({DTYPES[dtype].triton}))")
            emit(f"    tl.store(q{ptr} + offs, {_cast(value, launch.compute, dtype)}, mask=mask)")
            ptr += 1
    return "\n".join(out) + "\n"


def node_dtype(n: Node, param: str) -> str:
    """The dtype torch holds a node's value in (the IR's: "param" is the parameter's dtype)."""
    d = n.type.dtype if isinstance(n.type, Tensor) else "param"
    return param if d == "param" else d


def _round(expr: str, compute: str, dtype: str) -> str:
    """`expr` rounded to `dtype` and held in the compute dtype again."""
    return f"{_cast(expr, compute, dtype)}.to({DTYPES[compute].triton})"


def _cast(value: str, compute: str, dtype: str) -> str:
    if dtype == compute:
        return value
    if dtype == "bf16":
        return f"G.to_bf16({value})"
    return f"{value}.to({DTYPES[dtype].triton})"


MODULE_HEADER = ("import triton\n"
                 "import triton.language as tl\n"
                 "from geo.compiler.backends.triton import device as G\n")


def module_source(functions: list[str]) -> str:
    """A Python module holding kernels (what the cache stores and imports: `@triton.jit` reads its source)."""
    return "# Generated by geo's Triton backend (compiler/backends/triton/codegen.py).\n" + MODULE_HEADER + \
        "".join("\n\n" + f for f in functions)


# ---- `geo compile --emit triton`: the kernels of a rule for fp32 parameters and states in their dtypes ---------
def default_launch(program: Program, p: Plan, kernel: Kernel) -> Launch:
    """The launch of a group of fp32 parameters (states in their declared storage dtypes), with each input's
    access pattern taken from its symbolic shape."""
    def dtype(n: Node) -> str:
        d = n.type.dtype if isinstance(n.type, Tensor) else "param"
        return "fp32" if d == "param" else d

    inputs = []
    for a in kernel.inputs:
        t = a.type
        if isinstance(t, Tensor) and t.shape is not None and not t.batched and all(d == 1 for d in t.shape):
            access = "scalar"
        elif isinstance(t, Tensor) and (t.shape, t.batched) == (kernel.shape, _batched(kernel)):
            access = "full"
        else:
            access = "bcast"
        inputs.append((dtype(a), access))
    outputs = []
    for o in kernel.outputs:
        outputs.append(tuple(d for _, d in destinations(program, p, kernel, o, dtype(o),
                                                         {name: (s.dtype or "fp32") for name, s in _slots(program).items()}
                                                         | {"param": "fp32"})))
    rank = len(kernel.shape) if kernel.shape is not None else max(
        (len(a.type.shape) for a in kernel.inputs if isinstance(a.type, Tensor) and a.type.shape is not None), default=0)
    compute = "fp64" if any(d == "fp64" for d, _ in inputs) or any("fp64" in d for d in outputs) else "fp32"
    return Launch(compute, tuple(inputs), tuple(outputs), rank)


def _batched(kernel: Kernel) -> bool:
    t = kernel.nodes[0].type
    return isinstance(t, Tensor) and t.batched


def _slots(program: Program):
    return {s.name: s for s in program.states}


def destinations(program: Program, p: Plan, kernel: Kernel, o: Node, node_dtype: str,
                 slot_dtypes: dict[str, str]) -> list[tuple[str | None, str]]:
    """Where a kernel output is stored: (slot name, dtype) for each program output written from it in place, then
    (None, its own dtype) for a fresh buffer when a later phase reads it or a program output takes it at the end
    and no slot buffer already holds it in its own dtype."""
    slots, needed = output_roles(program, p, kernel)[o.id]
    return place(slots, needed, node_dtype, slot_dtypes)


def output_roles(program: Program, p: Plan, kernel: Kernel) -> dict[int, tuple[list[str], bool]]:
    """Per kernel output: the program outputs it writes in place, and whether its value is needed after the kernel
    (by a later phase, or by a program output written at the end of the step)."""
    later = read_later(p, kernel)
    out = {}
    for o in kernel.outputs:
        slots = [name for name, n in program.outputs.items() if n.id == o.id and name in p.in_place]
        needed = o.id in later or any(n.id == o.id and name not in p.in_place for name, n in program.outputs.items())
        out[o.id] = (slots, needed)
    return out


def place(slots: list[str], needed: bool, node_dtype: str, slot_dtypes: dict[str, str]) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = [(name, slot_dtypes[name]) for name in slots]
    if needed and all(d != node_dtype for _, d in out):  # else a slot's buffer holds the value already
        out.append((None, node_dtype))
    return out


def read_later(p: Plan, kernel: Kernel) -> set[int]:
    """The kernel's outputs that a later phase reads."""
    after = {a.id for ph in p.phases if ph.index > kernel.index for n in ph.nodes for a in n.args}
    return {o.id for o in kernel.outputs} & after


def emit_program(program: Program, p: Plan) -> str:
    """Every kernel of a plan, in phase order, with the torch ops between them as comments."""
    num = numbering(program)
    parts = []
    for ph in p.phases:
        if isinstance(ph, Kernel):
            parts.append(kernel_source(program, ph, default_launch(program, p, ph), num))
        else:
            n = ph.node
            args = ", ".join(f"v{num[a.id]}" for a in n.args)
            parts.append(f"# phase {ph.index}: v{num[n.id]} = {n.op}({args}) by its torch reference{_where(n, program)}\n")
    return MODULE_HEADER + "".join("\n\n" + s for s in parts)
