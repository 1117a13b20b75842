"""Types of geo values.

    Static(kind)             a compile-time value (int, float, bool, str, tuple): static hyperparameters,
                             literals, shape-free constants; part of the kernel key
    Scalar                   a runtime real number (runtime hyperparameters, the step count t, rows(W), ‖x‖)
    Tuple(items)             a runtime tuple of scalars (e.g. `betas = (0.9, 0.999)`)
    Tensor(shape, dtype)     a tensor; `shape` is a tuple of symbolic or concrete dims, optionally batched
                             over leading dims (`...`), or None for "any rank"
    Key                      the random key of a parameter's step (random operators take it implicitly)

Dims are symbols (`m`, `n`: the rows and cols a rule binds) or ints. Symbolic equalities that cannot be
decided at compile time become bind-time constraints, checked against the real parameter's shape.

A tensor's dtype is "param" (whatever the parameter holds) or one of geo's storage dtypes, `DTYPES`: the one
table of their item sizes, torch dtypes and Triton types, which the checker, the operators, the plan's cost
model and every backend read. This module stays free of torch at import time (the checker and `geo check`
need no torch): `torch_dtype(name)` imports it on first use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Dim = int | str


@dataclass(frozen=True)
class DType:
    """One storage dtype: geo's name for it, its item size, and what torch and Triton call it."""

    name: str      # as a spec writes it: `state m: bf16 = ...`, `msign(x, dtype = "fp32")`
    itemsize: int  # bytes per element
    torch: str     # the attribute of the torch module (`torch.bfloat16`)
    triton: str    # the Triton type expression in generated kernels


# Ordered from narrow to wide: type promotion takes the later of two, and messages list them in this order.
DTYPES: dict[str, DType] = {d.name: d for d in (
    DType("bf16", 2, "bfloat16", "tl.bfloat16"),
    DType("fp16", 2, "float16", "tl.float16"),
    DType("fp32", 4, "float32", "tl.float32"),
    DType("fp64", 8, "float64", "tl.float64"),
)}

_TORCH: dict[str, Any] = {}  # name -> torch.dtype, filled on first use


def torch_dtype(name: str) -> Any:
    """The torch dtype of a storage dtype name (KeyError for any other name)."""
    found = _TORCH.get(name)
    if found is None:
        import torch
        found = _TORCH[name] = getattr(torch, DTYPES[name].torch)
    return found


def dtype_name(dtype: Any) -> str | None:
    """geo's name for a torch dtype (`torch.bfloat16` -> "bf16"), None for a dtype geo does not store."""
    attr = str(dtype).removeprefix("torch.")
    return next((d.name for d in DTYPES.values() if d.torch == attr), None)


@dataclass(frozen=True)
class Type:
    def show(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Static(Type):
    kind: str  # int | float | bool | str | tuple | none

    def show(self) -> str:
        return f"static {self.kind}"


@dataclass(frozen=True)
class Scalar(Type):
    def show(self) -> str:
        return "scalar"


@dataclass(frozen=True)
class TupleT(Type):
    items: tuple[Type, ...]

    def show(self) -> str:
        return "(" + ", ".join(t.show() for t in self.items) + ")"


@dataclass(frozen=True)
class Tensor(Type):
    shape: tuple[Dim, ...] | None  # None: any rank
    batched: bool = False          # leading dims `...` (a stack of matrices)
    dtype: str = "param"           # "param" follows the parameter's dtype; else a storage dtype name

    @property
    def rank(self) -> int | None:
        return None if self.shape is None or self.batched else len(self.shape)

    @property
    def is_matrix(self) -> bool:
        return self.shape is not None and len(self.shape) >= 2 and (self.batched or len(self.shape) == 2)

    def with_shape(self, shape: tuple[Dim, ...] | None, batched: bool | None = None) -> "Tensor":
        return Tensor(shape, self.batched if batched is None else batched, self.dtype)

    def show(self) -> str:
        dt = "" if self.dtype == "param" else f"{self.dtype}"
        if self.shape is None:
            return f"tensor{dt and ':' + dt}[...]"
        dims = (["..."] if self.batched else []) + [str(d) for d in self.shape]
        kind = "matrix" if self.is_matrix and not self.batched else "vector" if len(self.shape) == 1 and not self.batched else "tensor"
        return f"{kind}{dt and ':' + dt}[{', '.join(dims)}]"


@dataclass(frozen=True)
class Key(Type):
    """The per-parameter random key a random operator draws from (the `input` "rng" the runtime provides)."""

    def show(self) -> str:
        return "random key"


SCALAR = Scalar()
KEY = Key()
ANY_TENSOR = Tensor(None)


def static_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, tuple):
        return "tuple"
    if value is None:
        return "none"
    raise TypeError(f"not a static value: {value!r}")


def is_value(t: Type) -> bool:
    """Numeric types that arithmetic accepts (a numeric static is promoted to a runtime value)."""
    return isinstance(t, (Scalar, Tensor)) or (isinstance(t, Static) and t.kind in ("int", "float", "bool"))


class ShapeError(Exception):
    """Raised by type rules; the checker turns it into a diagnostic at the call's span."""

    def __init__(self, message: str, arg: int | None = None, help: str | None = None, note: str | None = None,
                 code: str = "GEO0204"):
        super().__init__(message)
        self.message, self.arg, self.help, self.note, self.code = message, arg, help, note, code


def broadcast(a: Type, b: Type, constraints: list[tuple[Dim, Dim]]) -> Type:
    """The type of an elementwise combination of a and b (numpy-style broadcasting from the right).

    Unequal symbolic dims are recorded in `constraints` to be checked at bind time.
    """
    if not isinstance(a, Tensor):
        return b if isinstance(b, Tensor) else SCALAR
    if not isinstance(b, Tensor):
        return a
    dtype = a.dtype if a.dtype == b.dtype else "param" if "param" in (a.dtype, b.dtype) else _promote(a.dtype, b.dtype)
    if a.shape is None or b.shape is None:
        known = a if a.shape is not None and a.batched else b if b.shape is not None and b.batched else None
        return Tensor(None if known is None else known.shape, known is not None, dtype)
    out: list[Dim] = []
    la, lb = list(a.shape), list(b.shape)
    for i in range(1, max(len(la), len(lb)) + 1):
        da = la[-i] if i <= len(la) else 1
        db = lb[-i] if i <= len(lb) else 1
        if da == 1:
            out.append(db)
        elif db == 1 or da == db:
            out.append(da)
        elif isinstance(da, int) and isinstance(db, int):
            raise ShapeError(f"shapes do not broadcast: {a.show()} and {b.show()}")
        else:
            constraints.append((da, db))
            out.append(da)
    return Tensor(tuple(reversed(out)), a.batched or b.batched, dtype)


_ORDER = list(DTYPES)


def _promote(x: str, y: str) -> str:
    return max(x, y, key=lambda d: _ORDER.index(d) if d in _ORDER else -1)
