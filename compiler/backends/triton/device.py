"""Triton device functions that the generated kernels call (`G.sqrt(x)`, `G.div(a, b)`, ...).

Every argument is a Triton tensor (a block or a 0-d value) in the kernel's compute dtype, fp32 or fp64 (the
kernels upcast bf16/fp16 loads to fp32); each function returns that dtype. They are chosen to round like
torch's eager kernels where the math allows it:

    div, sqrt   IEEE-rounded (`div_rn`, `sqrt_rn`; Triton's `/` and `tl.sqrt` on fp32 are approximate on GPUs)
    rsqrt       1/√x with both steps IEEE-rounded (torch's CPU rsqrt), not the approximate instruction
    maximum, minimum, clamp   propagate NaN (torch.maximum does; the GPU instruction would drop it)
    to_bf16     fp32 → bf16 rounded to nearest even, in integer arithmetic (Triton's interpreter truncates,
                GPUs round: this is the same on both)

The transcendental functions (exp, expm1, log, sinh, cosh, tanh, asinh, pow) are libdevice's on a GPU. Triton's
interpreter (`TRITON_INTERPRET=1`, CPU tests) has no libdevice, so there they are built from `tl.exp`/`tl.log`
(numpy underneath, correctly rounded to a few ulps) in float64, with series near 0 where the closed forms
cancel. Which set a process uses is fixed when this module is imported (`INTERPRETED`).
"""
from __future__ import annotations

import os

import triton
import triton.language as tl

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

if not INTERPRETED:  # libdevice resolves to the backend's library (CUDA's or ROCm's) when a kernel compiles
    from triton.language.extra import libdevice


@triton.jit
def div(a, b):
    if a.dtype == tl.float32 and b.dtype == tl.float32:
        y = tl.div_rn(a, b)
    else:
        y = a / b
    return y


@triton.jit
def sqrt(x):
    if x.dtype == tl.float32:
        y = tl.sqrt_rn(x)
    else:
        y = tl.sqrt(x)
    return y


@triton.jit
def rsqrt(x):
    return div(tl.full((), 1.0, x.dtype), sqrt(x))


@triton.jit
def maximum(a, b):
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def minimum(a, b):
    return tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def clamp(x, lo, hi):
    return minimum(maximum(x, lo), hi)


@triton.jit
def mask(cond, like):
    """A 0/1 mask in `like`'s dtype (comparisons give masks, as the torch reference does)."""
    return tl.where(cond, 1.0, 0.0).to(like.dtype)


@triton.jit
def sign(x):
    """−1, 0 or 1; sign(±0) = 0 and sign(NaN) = 0, as torch.sign on the CPU."""
    return (x > 0).to(x.dtype) - (x < 0).to(x.dtype)


@triton.jit
def lerp(a, b, w):
    """torch's lerp: a + w·(b − a) for |w| < 0.5, else b − (1 − w)·(b − a), with one rounding (torch's CPU
    kernel uses a fused multiply–add)."""
    small = tl.abs(w) < 0.5
    return tl.fma(tl.where(small, w, w - 1.0), b - a, tl.where(small, a, b))


@triton.jit
def mod(a, b):
    """a mod b with the divisor's sign, as torch.remainder computes it: r = fmod(a, b) = a − b·trunc(a/b), then
    r + b where r ≠ 0 and its sign differs from b's. For fp32 operands both steps are exact in float64 (the quotient
    of two fp32 numbers is never within float64 rounding of an integer it is not), so the one rounding to fp32 is
    torch's; fp64 operands round as the formula does."""
    x = a.to(tl.float64)
    y = b.to(tl.float64)
    q = x / y
    r = x - y * tl.where(q < 0, tl.ceil(q), tl.floor(q))
    r = tl.where((r != 0) & ((r < 0) != (y < 0)), r + y, r)
    return r.to(a.dtype)


@triton.jit
def axpy(x, y, s):
    """x + s·y rounded once (torch.add(x, y, alpha=s)); exactly x where s = 0, as the reference."""
    return tl.where(s == 0, x, tl.fma(y, s, x))


@triton.jit
def to_bf16(x):
    """Rounds to bfloat16, to nearest even (NaN stays NaN, overflow gives ±inf)."""
    bits = x.to(tl.float32).to(tl.uint32, bitcast=True)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    rounded = tl.where(x != x, bits | 0x400000, rounded)
    return (rounded >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)


# ---- transcendental functions: libdevice on a GPU ------------------------------------------------------
@triton.jit
def _exp_gpu(x):
    return libdevice.exp(x)


@triton.jit
def _log_gpu(x):
    return libdevice.log(x)


@triton.jit
def _expm1_gpu(x):
    return libdevice.expm1(x)


@triton.jit
def _sinh_gpu(x):
    return libdevice.sinh(x)


@triton.jit
def _cosh_gpu(x):
    return libdevice.cosh(x)


@triton.jit
def _tanh_gpu(x):
    return libdevice.tanh(x)


@triton.jit
def _asinh_gpu(x):
    return libdevice.asinh(x)


@triton.jit
def _pow_gpu(a, b):
    return libdevice.pow(a, b)


# ---- and from exp/log in float64 in the interpreter ----------------------------------------------------
@triton.jit
def _exp_cpu(x):
    return tl.exp(x)


@triton.jit
def _log_cpu(x):
    return tl.log(x)


@triton.jit
def _expm1_cpu(x):
    d = x.to(tl.float64)
    series = d * (1.0 + d * (0.5 + d * (1.0 / 6.0 + d * (1.0 / 24.0))))
    y = tl.where(tl.abs(d) < 1e-3, series, tl.exp(d) - 1.0)
    return y.to(x.dtype)


@triton.jit
def _sinh_cpu(x):
    d = x.to(tl.float64)
    a = tl.abs(d)
    e = tl.exp(a)
    big = (e - 1.0 / e) * 0.5
    a2 = a * a
    series = a * (1.0 + a2 * (1.0 / 6.0 + a2 * (1.0 / 120.0)))
    y = tl.where(a < 1e-3, series, big)
    return tl.where(d < 0, -y, y).to(x.dtype)


@triton.jit
def _cosh_cpu(x):
    a = tl.abs(x.to(tl.float64))
    e = tl.exp(a)
    return ((e + 1.0 / e) * 0.5).to(x.dtype)


@triton.jit
def _tanh_cpu(x):
    d = x.to(tl.float64)
    a = tl.abs(d)
    big = 1.0 - 2.0 / (tl.exp(2.0 * a) + 1.0)
    a2 = a * a
    series = a * (1.0 - a2 * (1.0 / 3.0 - a2 * (2.0 / 15.0)))
    y = tl.where(a < 1e-3, series, big)
    y = tl.where(d != d, d, y)
    return tl.where(d < 0, -y, y).to(x.dtype)


@triton.jit
def _asinh_cpu(x):
    d = x.to(tl.float64)
    a = tl.abs(d)
    huge = a > 1e18
    safe = tl.where(huge, 1.0, a)
    closed = tl.log(safe + tl.sqrt(safe * safe + 1.0))
    closed = tl.where(huge, tl.log(a) + 0.6931471805599453, closed)
    a2 = a * a
    series = a * (1.0 - a2 * (1.0 / 6.0 - a2 * (3.0 / 40.0)))
    y = tl.where(a < 1e-3, series, closed)
    return tl.where(d < 0, -y, y).to(x.dtype)


@triton.jit
def _pow_cpu(a, b):
    """C's pow: exp(b·log|a|) with the sign of a negative base for odd integer b, NaN for a non-integer power of a
    negative base, pow(x, 0) = pow(1, y) = 1."""
    x = a.to(tl.float64)
    y = b.to(tl.float64)
    r = tl.exp(y * tl.log(tl.abs(x)))
    frac = y - tl.floor(y)                    # 0 for an integer power
    half = y * 0.5 - tl.floor(y * 0.5)        # 0.5 for an odd one
    big = tl.abs(y) == float("inf")
    signed = tl.where(half != 0, -r, r)
    # nested `where`s, not `&`: the interpreter cannot combine a 0-d mask with a block one
    r = tl.where(x < 0, tl.where(big, r, tl.where(frac != 0, float("nan"), signed)), r)
    r = tl.where(tl.abs(x) == 1.0, tl.where(big, 1.0, r), r)
    r = tl.where(x == 1.0, 1.0, r)
    r = tl.where(y == 0, 1.0, r)
    return r.to(a.dtype)


if INTERPRETED:
    exp, log, sinh, cosh, tanh, asinh, pow = _exp_cpu, _log_cpu, _sinh_cpu, _cosh_cpu, _tanh_cpu, _asinh_cpu, _pow_cpu
    expm1 = _expm1_cpu
else:
    exp, log, sinh, cosh, tanh, asinh, pow = _exp_gpu, _log_gpu, _sinh_gpu, _cosh_gpu, _tanh_gpu, _asinh_gpu, _pow_gpu
    expm1 = _expm1_gpu
