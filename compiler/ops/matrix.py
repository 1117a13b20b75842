"""Matrix operators: the matrix product, transpose, and msign (orthogonalization).

msign(X) = U Vᵀ for the reduced SVD X = U Σ Vᵀ: the polar factor, the LMO of the spectral norm (Bernstein &
Newhouse, "Old optimizer, new norm", arXiv 2409.20325) and the heart of Muon. Newton–Schulz computes it with
odd matrix polynomials: with A = X Xᵀ, X ← a·X + (b·A + c·A²)·X maps every singular value σ to
p(σ) = aσ + bσ³ + cσ⁵, so after normalizing X by its Frobenius norm (σ ≤ 1) a few steps push all σ
towards 1. The coefficient schedules below trade exactness for speed (references/algorithms.md §1.3–1.4).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..types import DTYPES, ShapeError, Tensor, torch_dtype
from . import _linalg, sampling
from ._rules import check_compute_dtype
from .registry import MATRIX, WHOLE, Domain, Law, Rewrite, StaticArg, host_scalar, matrix_rule, op
from ._lazy import lazy_torch

torch = lazy_torch(globals())


# ---- coefficient schedules -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """Per-step (a, b, c) tuples; step k uses tuple min(k, len − 1). `safety` divides the input by
    safety·‖X‖_F (Polar Express's 2 % margin). `band` is the range of output singular values for normalized
    input singular values in [1e-2, 1] after `band_steps` steps (algorithms.md §1.3–1.4, [CALC])."""

    name: str
    tuples: tuple[tuple[float, float, float], ...]
    safety: float
    band: tuple[float, float]
    band_steps: int
    source: str

    def coefficients(self, step: int) -> tuple[float, float, float]:
        return self.tuples[min(step, len(self.tuples) - 1)]


SCHEDULES: dict[str, Schedule] = {s.name: s for s in [
    Schedule("keller", ((3.4445, -4.7750, 2.0315),), 1.0, (0.6818, 1.1344), 5,
             "Keller Jordan, Muon (2024); torch.optim.Muon's default"),
    Schedule("polar_express", (
        (8.156554524902461, -22.48329292557795, 15.878769915207462),
        (4.042929935166739, -2.808917465908714, 0.5000178451051316),
        (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
        (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
        (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
    ), 1.02, (0.8589, 1.1411), 5, "Amsel, Persson, Musco, Gower, Polar Express (arXiv 2505.16932)"),
    Schedule("tuned6", tuple((a / 1024, b / 1024, c / 1024) for a, b, c in (
        (3955, -8306, 5008), (3735, -6681, 3463), (3799, -6499, 3211),
        (4019, -6385, 2906), (2677, -3029, 1162), (2172, -1833, 682),
    )), 1.0, (0.9956, 0.9993), 6, "YouJiacheng / Cesista tuned 6-step set (Modula's orthogonalize)"),
    Schedule("sso8", (
        (8.2051, -22.9019, 16.4607), (4.0664, -2.8612, 0.5184), (3.9096, -2.8234, 0.5250),
        (3.2856, -2.4153, 0.4853), (2.2779, -1.6198, 0.3985), (1.8726, -1.2307, 0.3585),
        (1.8564, -1.2132, 0.3568), (1.8750, -1.2500, 0.3750),
    ), 1.0, (0.9999, 1.0001), 8, "Spectral Sphere Optimizer's 8-step Polar Express list (Xie et al., arXiv 2601.08393)"),
]}

def resolve_schedule(coeffs) -> Schedule:
    if isinstance(coeffs, str):
        return SCHEDULES[coeffs]
    tuples = tuple(tuple(float(v) for v in t) for t in coeffs)
    return Schedule("custom", tuples, 1.0, (0.0, float("inf")), len(tuples), "user-given")


def _msign_rule(args, attrs, constraints):
    x = matrix_rule(args, attrs, constraints)
    coeffs, steps, dtype, method = attrs["coeffs"], attrs["steps"], attrs["dtype"], attrs["method"]
    if method not in ("ns", "svd"):
        raise ShapeError(f"`method` must be \"ns\" or \"svd\", found {method!r}", code="GEO0206")
    if isinstance(coeffs, str):
        if coeffs not in SCHEDULES:
            raise ShapeError(f"unknown coefficient schedule {coeffs!r}", code="GEO0206",
                             help="one of " + ", ".join(f'"{k}"' for k in SCHEDULES) + ", or a tuple of (a, b, c) tuples")
    elif not (isinstance(coeffs, tuple) and coeffs and all(
            isinstance(t, tuple) and len(t) == 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in t)
            for t in coeffs)):
        raise ShapeError("`coeffs` must name a schedule or be a tuple of (a, b, c) tuples", code="GEO0206",
                         help='write `coeffs = ((3.4445, -4.775, 2.0315),)` for a single tuple')
    if not isinstance(steps, int) or isinstance(steps, bool) or not 0 <= steps < 100:
        raise ShapeError(f"`steps` must be a static integer in [0, 100), found {steps!r}", code="GEO0206")
    check_compute_dtype(dtype)
    return x


def _frobenius(X: torch.Tensor) -> torch.Tensor:
    """‖X‖_F per matrix, as torch computes it, except where the sum of squares overflows (entries ~1e20 in fp32
    or bf16): there it is max|X|·‖X/max|X|‖_F, so that a huge but finite gradient is not divided by inf (an
    update of 0). Finite norms are exactly torch's; NaN and Inf inputs still give NaN."""
    norm = torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True)
    if X.device.type == "cpu" and not torch.isinf(norm).any():
        return norm  # the common case, known for one host read (free on the CPU; a sync on an accelerator)
    big = X.abs().amax(dim=(-2, -1), keepdim=True)
    rescaled = big * torch.linalg.vector_norm(X / torch.where(big > 0, big, torch.ones_like(big)), dim=(-2, -1),
                                              keepdim=True)
    return torch.where(torch.isinf(norm) & torch.isfinite(big), rescaled, norm)


def newton_schulz(x: torch.Tensor, schedule: Schedule, steps: int, dtype: torch.dtype, eps: float,
                  safety: float) -> torch.Tensor:
    """Newton–Schulz in `dtype`, on the wide orientation (rows ≤ cols, so the Gram is min(m, n)²), batched
    over leading dims. The update is written with addmm/baddbmm exactly as torch.optim.Muon does."""
    X = x.to(dtype)
    copied = X.data_ptr() != x.data_ptr()  # then X is this function's own buffer, and may be divided in place
    tall = x.size(-2) > x.size(-1)
    if tall:
        X = X.mT
    norm = _frobenius(X)
    eps = host_scalar(eps, X)
    scale = (norm * safety).clamp(min=eps) if safety != 1.0 else norm.clamp(min=eps)
    X = X.div_(scale) if copied else X / scale
    batched = X.dim() > 2
    if batched:
        lead = X.shape[:-2]
        X = X.reshape(-1, *X.shape[-2:])
    if steps > 0:
        # Every iteration writes into the same three buffers (X and C trade places): a batch of GPT-2's matrices
        # is tens of MB per buffer, above glibc's largest mmap threshold (32 MiB), so a fresh buffer per
        # iteration was a fresh mapping that the CPU page-faulted in, five times a step (benchmarks/RESULTS.md,
        # "Muon's page faults"). The products are the same calls as torch.optim.Muon's, into given outputs.
        gram = torch.empty((*X.shape[:-1], X.size(-2)), dtype=X.dtype, device=X.device)
        poly = torch.empty_like(gram)
        other = torch.empty(X.shape, dtype=X.dtype, device=X.device)
        mm, addmm = (torch.bmm, torch.baddbmm) if batched else (torch.mm, torch.addmm)
    for k in range(steps):
        # (a user's coefficient beyond the dtype's range is ±inf there, as a cast gives, not torch's refusal)
        a, b, c = (host_scalar(float(v), X) for v in schedule.coefficients(k))
        mm(X, X.mT, out=gram)
        addmm(gram, gram, gram, beta=b, alpha=c, out=poly)
        addmm(X, poly, X, beta=a, out=other)
        # a tall matrix's first X is a transposed view: it is not reused as an output, so that every product
        # writes row-major as torch.optim.Muon's does (an output's layout changes the rounding)
        X, other = other, X if X.is_contiguous() else torch.empty_like(other)
    if batched:
        X = X.reshape(*lead, *X.shape[-2:])
    if tall:
        X = X.mT
    return X


def msign_svd(x: torch.Tensor) -> torch.Tensor:
    """Exact U Vᵀ by SVD in float64; singular values below a relative tolerance map to 0 (so msign(0) = 0)."""
    X = x.to(torch.float64)
    U, S, Vh = _linalg.svd(X, full_matrices=False)
    tol = S.amax(dim=-1, keepdim=True) * max(X.shape[-2:]) * torch.finfo(torch.float64).eps
    keep = (S > tol).to(X.dtype)
    return (U * keep.unsqueeze(-2)) @ Vh


def _singular_values_in_band(f, x, schedule="keller"):
    """Newton–Schulz maps each singular value σ of X = UΣVᵀ to p(σ/‖X‖_F) along the same singular vectors
    (not monotonically), so the output's values are read as diag(Uᵀ·out·V), paired with their inputs."""
    s = SCHEDULES[schedule]
    out = f(x, steps=s.band_steps, coeffs=schedule, dtype="fp64", method="ns")
    U, sv_in, Vh = _linalg.svd(x, full_matrices=False)
    sv_out = torch.diagonal(U.mT @ out @ Vh.mT)
    rel = sv_in / torch.linalg.vector_norm(x)
    mask = rel >= 1e-2
    lo, hi = s.band
    inside = sv_out[mask]
    assert (inside >= lo - 1e-3).all() and (inside <= hi + 1e-3).all(), \
        f"{schedule}: singular values {inside.tolist()} outside [{lo}, {hi}]"


def _scale_invariant(f, x):
    for c in (1e-3, 7.0):
        a = f(x, dtype="fp64")
        b = f(c * x, dtype="fp64")
        assert torch.allclose(a, b, atol=1e-6), f"msign(c·x) ≠ msign(x) for c = {c}"
    # A huge but finite input (a ~1e30 gradient): its Frobenius norm overflows in fp32 and bf16.
    for dtype, tol in (("fp32", 1e-4), ("bf16", 0.25)):  # bf16 Newton–Schulz rounds to ~0.1
        a = f(x.float(), dtype=dtype)
        b = f(x.float() * 1e30, dtype=dtype)
        assert torch.allclose(a, b, atol=tol), f"msign(1e30·x) ≠ msign(x) computing in {dtype}"


def _transpose_equivariant(f, x):
    a = f(x.T.contiguous(), dtype="fp64")
    b = f(x, dtype="fp64").T
    assert torch.allclose(a, b, atol=1e-9), "msign(xᵀ) ≠ msign(x)ᵀ"


def _drop_positive_scale(node, graph):
    """msign(c·x) → msign(x) for a constant c > 0 (Frobenius normalization removes it)."""
    (x, eps) = node.args
    if x.op == "mul":
        a, b = x.args
        for c, y in ((a, b), (b, a)):
            if c.op == "const" and isinstance(c.value, (int, float)) and not isinstance(c.value, bool) and c.value > 0 \
                    and y.type == x.type:
                return graph.node("msign", (y, eps), dict(node.attrs), type=node.type, span=node.span)
    return None


def _msign_idempotent(node, graph):
    """msign(msign(x)) → msign(x) when both are exact (SVD): the polar factor of an orthogonal factor is itself."""
    (x, _eps) = node.args
    if x.op == "msign" and x.attr("method") == "svd" and node.attr("method") == "svd":
        return x
    return None


def _msign_cost(shapes, attrs):
    """Newton–Schulz FLOPs in the rows ≤ cols orientation: per step A = XXᵀ (2m²n), A² (2m³), (bA + cA²)X (2m²n)."""
    if attrs.get("method") == "svd":
        return float("nan")
    *lead, m, n = shapes[0]
    m, n = min(m, n), max(m, n)
    return math.prod(lead) * int(attrs.get("steps", 5)) * (4 * m * m * n + 2 * m ** 3)


@op(MATRIX, _msign_rule, cost=_msign_cost, batches=True, rewrites=[Rewrite("msign(c·x) -> msign(x), c > 0", _drop_positive_scale),
                                   Rewrite("msign(msign(x)) -> msign(x) (svd)", _msign_idempotent)],
    laws=[Law("Newton–Schulz singular values lie in the schedule's band (keller, polar_express, tuned6, sso8)",
              lambda: sampling.gaussian_matrices(),
              lambda f, x: [_singular_values_in_band(f, x, s) for s in SCHEDULES]),
          Law("msign is scale-invariant: msign(c·x) = msign(x), c > 0", lambda: sampling.gaussian_matrices(),
              _scale_invariant),
          Law("msign is transpose-equivariant: msign(xᵀ) = msign(x)ᵀ", lambda: sampling.gaussian_matrices(),
              _transpose_equivariant)],
    domain={"eps": Domain(0.0, 1e-3), "coeffs": Domain(choices=tuple(SCHEDULES)), "method": Domain(choices=("ns", "svd")),
            "dtype": Domain(choices=(*DTYPES, "param"))}, sharding=WHOLE)
def msign(x, eps=1e-7, steps: StaticArg = 5, coeffs: StaticArg = "keller", dtype: StaticArg = "fp32",
          method: StaticArg = "ns", safety: StaticArg = None):
    """msign(X) = U Vᵀ, the orthogonal polar factor (zero singular values stay zero; msign(0) = 0).

    method "ns": Newton–Schulz with a coefficient schedule — "keller" (3.4445, −4.7750, 2.0315), Muon's;
    "polar_express" (5 tuples, 2 % safety margin); "tuned6"; "sso8" (8 tuples, the last the classical
    (15/8, −10/8, 3/8)); or a tuple of (a, b, c) tuples. Computed in `dtype` ("bf16" as torch.optim.Muon
    does, "fp32", "fp64" or "param") on the rows ≤ cols orientation after X ← X / max(safety·‖X‖_F, eps),
    and returned in the input's dtype. method "svd": the exact polar factor in float64 (the reference).
    Batched over leading dims.
    """
    if x.numel() == 0:  # no singular values: nothing to orthogonalize
        return x.clone()
    if method == "svd":
        return msign_svd(x).to(x.dtype)
    schedule = resolve_schedule(coeffs)
    compute = x.dtype if dtype == "param" else torch_dtype(dtype)
    eps_value = float(eps) if not isinstance(eps, torch.Tensor) else float(eps.item())
    out = newton_schulz(x, schedule, steps, compute, eps_value, schedule.safety if safety is None else float(safety))
    return out.to(x.dtype)


def _matmul_rule(args, attrs, constraints):
    a, b = args
    for i, t in enumerate(args):
        if not (isinstance(t, Tensor) and t.shape is not None and len(t.shape) >= 1):
            raise ShapeError(f"`@` needs tensors of known rank, found `{t.show()}`", arg=i, code="GEO0202")
    if len(a.shape) == 1 or len(b.shape) == 1:
        raise ShapeError("`@` multiplies matrices; for vectors use `dot(a, b)`", code="GEO0203")
    inner_a, inner_b = a.shape[-1], b.shape[-2]
    if inner_a != inner_b:
        if isinstance(inner_a, int) and isinstance(inner_b, int):
            raise ShapeError(f"inner dimensions differ: `{a.show()}` @ `{b.show()}`", code="GEO0204")
        constraints.append((inner_a, inner_b))
    dtype = a.dtype if a.dtype == b.dtype else "param" if "param" in (a.dtype, b.dtype) else max(
        a.dtype, b.dtype, key=list(DTYPES).index)
    return Tensor(a.shape[:-1] + b.shape[-1:], a.batched or b.batched, dtype)


@op(MATRIX, _matmul_rule, batches=True, cost=lambda shapes, attrs: 2.0 * math.prod(shapes[0]) * shapes[1][-1], sharding=WHOLE)
def matmul(a, b):
    """a @ b, the matrix product (batched over leading dims). Operands of different dtypes (an fp32 state and a bf16
    gradient) are promoted to the wider one first, as elementwise arithmetic promotes them."""
    if a.dtype != b.dtype:
        common = torch.promote_types(a.dtype, b.dtype)
        a, b = a.to(common), b.to(common)
    return a @ b


def _transpose_rule(args, attrs, constraints):
    x = matrix_rule(args, attrs, constraints)
    return Tensor(x.shape[:-2] + (x.shape[-1], x.shape[-2]), x.batched, x.dtype)


def _transpose_twice(node, graph):
    (x,) = node.args
    return x.args[0] if x.op == "transpose" else None


@op(MATRIX, _transpose_rule, batches=True, rewrites=[Rewrite("(xᵀ)ᵀ -> x", _transpose_twice)], sharding=WHOLE)
def transpose(x):
    """xᵀ (also written `x.T`): swaps the last two dims."""
    return x.mT
