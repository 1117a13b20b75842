"""The registry's `sharding` facet, checked against each operator's own reference (issue 11).

Every operator declares how it runs on a row shard (FSDP2's `Shard(0)`): LOCAL operators applied to the rows of
their tensor arguments, concatenated, must give the whole's result; a reduction's partial results over the rows,
combined as its facet says, must give the whole's result. A facet that claims too much (LOCAL on a whole-tensor
operator) fails here, which is what keeps the distributed step (runtime/distributed.py) from silently running an
operator on a shard that needs the whole matrix.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from geo.compiler.ops import registry
from geo.compiler.ops.registry import Sharding

ROWS, COLS = 7, 4
SPLITS = (3, 2, 2)  # uneven row shards, as FSDP2 gives 7 rows on 3 ranks


def _values(opdef, gen):
    """Draws inside the operator's declared domain (positive where it allows, so `log`, `sqrt` and the entropy
    mirror map are defined)."""
    out = []
    for p in opdef.value_params:
        dom = opdef.domain_of(p.name)
        lo, hi = max(dom.low, 0.2), min(dom.high, 2.0)
        if not lo < hi:
            lo, hi = max(dom.low, -2.0), min(dom.high, 2.0)
        out.append((lo, hi))
    return [lo + (hi - lo) * torch.rand(ROWS, COLS, generator=gen, dtype=torch.float64) for lo, hi in out]


def _statics(opdef):
    """Each combination of static arguments to try: defaults, or every declared choice."""
    options = []
    for p in opdef.static_params:
        if p.name in registry.RANDOM_HIDDEN:
            return []
        choices = opdef.domain_of(p.name).choices
        if choices:
            options.append([(p.name, c) for c in choices])
        elif not p.required:
            options.append([(p.name, p.default)])
        else:
            return []
    return [dict(combo) for combo in itertools.product(*options)]


def _call(opdef, tensors, scalar_mask, attrs):
    args = [float(t.flatten()[0]) if scalar else t for t, scalar in zip(tensors, scalar_mask)]
    return opdef.call(args, attrs)


def _working_calls(opdef, tensors, attrs, number_ok=False):
    """The argument forms (tensor or host number, per value parameter) the reference accepts, most tensors first;
    the first argument is always a tensor (it is the one split)."""
    n = len(tensors)
    masks = [(False,) + rest for rest in itertools.product((False, True), repeat=max(n - 1, 0))]
    masks.sort(key=sum)
    for mask in masks:
        try:
            out = _call(opdef, tensors, mask, attrs)
        except Exception:  # noqa: BLE001 - the reference refuses this form of the arguments: try the next
            continue
        if isinstance(out, torch.Tensor) or (number_ok and isinstance(out, (int, float))):
            return mask, out
    return None, None


def _shards(tensors, mask):
    start = 0
    for size in SPLITS:
        yield [t if scalar else t[start:start + size] for t, scalar in zip(tensors, mask)], size
        start += size


def _cases():
    for opdef in registry.all_ops():
        for attrs in _statics(opdef) or [None]:
            if attrs is not None and opdef.value_params and opdef.sharding_for(attrs).mode != "whole":
                yield pytest.param(opdef.name, attrs, id=f"{opdef.name}-{attrs}" if attrs else opdef.name)


def test_every_operator_declares_a_facet():
    modes = {}
    for opdef in registry.all_ops():
        for attrs in _statics(opdef) or [{}]:
            facet = opdef.sharding_for(attrs)
            assert isinstance(facet, Sharding), opdef.name
            assert facet.mode in ("local", "reduction", "shape", "whole"), opdef.name
            if facet.mode == "reduction":
                assert facet.over in ("all", "axis", "last") and facet.combine in ("sum", "max", "min", "mean", "rms")
            modes.setdefault(facet.mode, set()).add(opdef.name)
    assert {"msign", "power_iter", "matmul", "sso_lambda", "retract", "uniform"} <= modes["whole"]
    assert {"rows", "cols", "numel"} <= modes["shape"]
    assert {"add", "ema", "lerp", "sign"} <= modes["local"] and {"sum", "rms", "row_mean_sq"} <= modes["reduction"]


def test_a_facet_is_required():
    """Required of every operator but the elementwise ones, whose kind makes them LOCAL (and nothing else)."""
    with pytest.raises(ValueError, match="sharding"):
        registry.op(registry.MATRIX, registry.matrix_rule, name="unregistered_x")(lambda x: x)
    with pytest.raises(ValueError, match="LOCAL"):
        registry.op(registry.ELEMENTWISE, registry.elementwise_rule, name="unregistered_y",
                    sharding=registry.WHOLE)(lambda x: x)
    assert all(o.sharding is registry.LOCAL for o in registry.all_ops() if o.kind == registry.ELEMENTWISE)


def _combine(facet: Sharding, parts, sizes, whole_shape):
    if facet.combine == "sum":
        return sum(parts)
    if facet.combine == "max":
        return torch.stack(parts).amax(0)
    if facet.combine == "min":
        return torch.stack(parts).amin(0)
    weights = [s / sum(sizes) for s in sizes]
    if facet.combine == "mean":
        return sum(w * p for w, p in zip(weights, parts))
    return torch.sqrt(sum(w * p * p for w, p in zip(weights, parts)))  # rms


@pytest.mark.parametrize("name, attrs", list(_cases()))
def test_facet_agrees_with_the_reference(name, attrs):
    opdef = registry.get(name)
    facet = opdef.sharding_for(attrs)
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    tensors = _values(opdef, gen)
    axes = [None, 0, 1, -1] if facet.over == "axis" and "axis" in attrs else [attrs.get("axis")]
    checked = 0
    for axis in axes:
        call_attrs = dict(attrs, axis=axis) if "axis" in attrs else attrs
        mask, whole = _working_calls(opdef, tensors, call_attrs, number_ok=facet.mode == "shape")
        if mask is None:
            continue
        if facet.mode == "shape":  # the whole's shape alone (no values) gives the whole's result
            meta = [t.to("meta") if not scalar else t for t, scalar in zip(tensors, mask)]
            assert _call(opdef, meta, mask, call_attrs) == whole, name
            checked += 1
            continue
        parts = [(_call(opdef, shard, mask, call_attrs), size) for shard, size in _shards(tensors, mask)]
        results = [p for p, _ in parts]
        if facet.mode == "local":
            if whole.dim() and whole.shape[0] == ROWS:
                got = torch.cat(results)
            else:  # a result that does not depend on the rows (a 0-d initial state): each shard's is the whole's
                for r in results:
                    torch.testing.assert_close(r, whole, rtol=1e-12, atol=0)
                got = whole
        else:
            dims = facet.reduced_dims(call_attrs, len(tensors[0].shape))
            if 0 in dims:
                got = _combine(facet, results, [s for _, s in parts], whole.shape)
            else:  # the reduction keeps the rows: each shard's rows are final
                got = torch.cat(results)
        torch.testing.assert_close(got, whole, rtol=1e-10, atol=1e-12, msg=lambda m: f"{name} {call_attrs}: {m}")
        checked += 1
    assert checked, f"{name}: no argument form accepted by its reference"


def test_a_wrong_facet_would_be_caught():
    """msign claimed LOCAL: its rows' results concatenated are not the whole's (so the check above can fail)."""
    opdef = registry.get("msign")
    x = torch.randn(ROWS, COLS, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    whole = opdef.call([x], {})
    split = torch.cat([opdef.call([x[:3]], {}), opdef.call([x[3:]], {})])
    assert not torch.allclose(split, whole, rtol=1e-6, atol=1e-8)
    rms = registry.get("rms")
    parts = [rms.call([x[:3]], {"axis": None}), rms.call([x[3:]], {"axis": None})]
    assert not math.isclose(float(sum(parts)), float(rms.call([x], {"axis": None})), rel_tol=1e-6)
