"""`geo.roles(model)`: parameter roles read off a model's modules, for the constructor's `roles=`.

Names and positions (compiler/binding.py) cannot see what a module is: an `nn.Embedding` inside an
`nn.Sequential` is named `0.weight`, and HF GPT-2's `Conv1D` stores its weight (in, out), the transpose of
`nn.Linear`'s (out, in), under the same names nanoGPT gives its `nn.Linear`s. The modules can:

    embedding   the weight of every nn.Embedding and nn.EmbeddingBag (a head tied to it stays an embedding)
    head        the output layer: the nn.Linear named like a head (`lm_head`, `head`, `classifier`, `output`,
                outside numbered blocks), else the last nn.Linear in module order outside any numbered block
    ROLE.T      the weight of HF's Conv1D (a module class named `Conv1D` with `nf`, weight (nx, nf)): stored
                transposed, so every rule sees (nf, nx) = (out, in), and `split(3)` cuts GPT-2's fused QKV
                into Q, K and V

Every other parameter gets the role its name gives it (compiler/binding.py), so the map is whole and works with
`model.parameters()` too.
"""
from __future__ import annotations

from typing import Any

import torch

from ..compiler.binding import choose_roles, in_numbered_block, name_role


def roles(model: torch.nn.Module) -> dict[torch.Tensor, str]:
    """{parameter: role} for `Opt(model.named_parameters(), roles=geo.roles(model))`."""
    out: dict[torch.Tensor, str] = {}
    linears: list[tuple[str, Any]] = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            continue
        if isinstance(module, (torch.nn.Embedding, torch.nn.EmbeddingBag)):
            out[weight] = "embedding"
        elif _is_conv1d(module):
            out.setdefault(weight, "hidden.T")
            linears.append((name, module))
        elif isinstance(module, torch.nn.Linear):
            linears.append((name, module))
    named = [(n, m) for n, m in linears if name_role(f"{n}.weight", (2, 2))[0] == "head"]
    outside = [(n, m) for n, m in linears if not in_numbered_block(n.rpartition(".")[0])]  # `2` of a Sequential
    chosen = named[-1] if named else outside[-1] if outside else None
    if chosen is not None and out.get(chosen[1].weight) != "embedding":  # a head tied to the embedding stays one
        out[chosen[1].weight] = "head.T" if _is_conv1d(chosen[1]) else "head"
    # every other parameter as its name gives it (bias, norm, hidden): the map is whole, nothing left to the rank
    params = list(model.named_parameters())
    given = [out.get(p) for _, p in params]
    for (_, p), choice in zip(params, choose_roles([(n, tuple(p.shape)) for n, p in params], given)):
        out.setdefault(p, choice.role + (".T" if choice.transposed else ""))
    return out


def _is_conv1d(module: torch.nn.Module) -> bool:
    """HF transformers' `Conv1D` (GPT-2, GPT-J's ancestors): y = x @ W + b with W stored (in, out); recognised by
    its class name and `nf` (out features) without importing transformers."""
    weight = getattr(module, "weight", None)
    return (type(module).__name__ == "Conv1D" and isinstance(getattr(module, "nf", None), int)
            and isinstance(weight, torch.Tensor) and weight.dim() == 2 and weight.shape[1] == module.nf)
