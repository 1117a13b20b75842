"""Same-shape matrices in one call: the backends' shared way to run an operator that batches over leading dims
(`OpDef.batches`: msign, matmul, power iteration) for every tensor of a group.

The tensors whose arguments agree in shape, dtype and device (and in every non-tensor argument) are stacked and
the operator runs once over the stack: one Newton–Schulz, a `bmm` per product, for all of a model's 768×3072
matrices. On CUDA one launch for all of them is the point. On the CPU a product of one such matrix already
keeps the cores busy, while a stack is a large block: glibc's malloc serves a block above its largest dynamic
mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX, 32 MiB on 64-bit) with a fresh mapping and unmaps it when freed, so
a stack of twelve 768×3072 fp32 matrices (113 MB) and Newton–Schulz's buffers over it were page-faulted in
afresh every step (~390,000 faults a step for GPT-2 small's Muon: benchmarks/RESULTS.md, "Muon's page
faults"). There a batch holds at most CPU_BATCH_BYTES of each argument.
"""
from __future__ import annotations

from typing import Any, Callable

from ..ops.registry import OpDef

CPU_BATCH_BYTES = 32 << 20


def batched_calls(opdef: OpDef, columns: list[list[Any]], attrs: dict[str, Any], result_type: Any,
                  shape_of: Callable[[int], tuple[int, ...]] | None = None) -> list[Any]:
    """`opdef` over `columns` (one list of argument values per tensor), same-shape tensors stacked in one call
    each. Returns one result per tensor; None where the tensor ran in no batch (it had no twin, or the stacked
    result was not a stack of the expected shape `shape_of(i)`): the caller runs those one at a time."""
    import torch
    out: list[Any] = [None] * len(columns)
    groups: dict[tuple, list[int]] = {}
    for i, col in enumerate(columns):
        key = tuple((tuple(v.shape), v.dtype, str(v.device)) if isinstance(v, torch.Tensor) else repr(v) for v in col)
        groups.setdefault(key, []).append(i)
    for same in groups.values():
        for members in _batches(same, columns):
            if len(members) < 2:
                continue
            stacked = [torch.stack([columns[i][j] for i in members]) if isinstance(v, torch.Tensor) else v
                       for j, v in enumerate(columns[members[0]])]
            result = opdef.apply(stacked, attrs, result_type)
            if isinstance(result, torch.Tensor) and result.dim() > 0 and result.size(0) == len(members) \
                    and (shape_of is None or tuple(result.shape[1:]) == tuple(shape_of(members[0]))):
                for i, r in zip(members, result.unbind(0)):
                    out[i] = r
    return out


def _batches(members: list[int], columns: list[list[Any]]) -> list[list[int]]:
    """`members` (same-shape tensors) in the batches they run in: all at once on CUDA, at most CPU_BATCH_BYTES of
    each argument per batch on the CPU."""
    import torch
    tensors = [v for v in columns[members[0]] if isinstance(v, torch.Tensor)]
    if not tensors or tensors[0].is_cuda:
        return [members]
    each = max(t.numel() * t.element_size() for t in tensors)
    size = max(1, CPU_BATCH_BYTES // max(each, 1))
    return [members[k:k + size] for k in range(0, len(members), size)]


def cpu_runs(params: list[Any]) -> list[list[int]]:
    """The indices of `params` in runs stepped one after another on the CPU: same-shape tensors next to each
    other (so that a run's matrix ops still batch), each run at most CPU_BATCH_BYTES of parameters or a single
    bigger tensor. Every tensor's step is its own, so the runs change no result."""
    order = sorted(range(len(params)), key=lambda i: (tuple(params[i].shape), str(params[i].dtype)))
    runs: list[list[int]] = []
    size = 0
    for i in order:
        nbytes = params[i].numel() * params[i].element_size()
        if not runs or size + nbytes > CPU_BATCH_BYTES:
            runs.append([])
            size = 0
        runs[-1].append(i)
        size += nbytes
    return runs

