"""Compile stdlib specs, train a small model with each, and show what a broken spec looks like.

    python examples/train_small.py

A two-layer MLP learns a fixed random teacher network on generated data (no downloads). For each
optimizer it prints the compile time, the loss every 50 steps and the final loss next to torch.optim's.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

import geo

STEPS = 200


def data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    teacher = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    for p in teacher.parameters():
        p.data = torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5
    x = torch.randn(512, 16, generator=g)
    with torch.no_grad():
        y = teacher(x)
    return x, y


def student():
    torch.manual_seed(1)
    return torch.nn.ModuleDict({"hidden": torch.nn.Linear(16, 64), "lm_head": torch.nn.Linear(64, 4)})


def forward(model, x):
    return model["lm_head"](torch.tanh(model["hidden"](x)))


def train(name: str, make_optimizer) -> float:
    x, y = data()
    model = student()
    opt = make_optimizer(model)
    losses = []
    for step in range(STEPS):
        opt.zero_grad()
        loss = ((forward(model, x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    shown = "  ".join(f"{losses[i]:.4f}" for i in range(0, STEPS, 50))
    print(f"  {name:28s} loss every 50 steps: {shown}  final {losses[-1]:.5f}")
    return losses[-1]


def main() -> None:
    print(f"geo {geo.__version__}, torch {torch.__version__}\n")
    compiled = {}
    for spec in ("adamw", "muon", "muon_adamw", "sgd"):
        start = time.perf_counter()
        compiled[spec] = geo.compile(spec)
        print(f"compiled stdlib/{spec}.geo in {1e3 * (time.perf_counter() - start):.1f} ms")
    print("\ntraining a 16-64-4 MLP for", STEPS, "steps:")
    train("geo adamw", lambda m: compiled["adamw"](m.parameters(), lr=1e-2))
    train("torch.optim.AdamW", lambda m: torch.optim.AdamW(m.parameters(), lr=1e-2))
    train("geo sgd (momentum 0.9)", lambda m: compiled["sgd"](m.parameters(), lr=0.1, momentum=0.9))
    train("geo muon_adamw (routed)", lambda m: compiled["muon_adamw"](m.named_parameters()))
    opt = compiled["muon_adamw"](student().named_parameters())
    for group in opt.param_groups:
        print(f"    route {group['geo_rule']}: lr={group['lr']:g} for {', '.join(group['param_names'])}")

    broken = Path(__file__).with_name("broken.geo")
    print(f"\na broken spec ({broken.name}) gets a diagnostic, not a traceback:\n")
    try:
        geo.compile(broken)
    except geo.GeoError as err:
        print(err)


if __name__ == "__main__":
    main()
