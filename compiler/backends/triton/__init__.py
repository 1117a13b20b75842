"""The Triton backend: a program's plan as generated Triton kernels, one launch per fused kernel per group.

    step.py     `TritonStep`: host scalars, launches over a group through a pointer table, the boundary ops by
                torch (same-shape matrices stacked), in-place writes, the end of the step
    codegen.py  the source of one kernel for one launch (dtypes, access patterns); `--emit triton`
    device.py   the device functions the kernels call as `G.…` (IEEE rounding, NaN-propagating max, libdevice)
    cache.py    the disk cache of generated modules (content-hashed, sealed, written atomically)

Only device.py and cache.py import `triton` (an optional dependency), and only when a kernel is built: the
code generator and `--emit triton` run without it. docs/triton.md tells the whole story.
"""
