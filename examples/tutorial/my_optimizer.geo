"""Spectral Lion: Lion's two-speed momentum, orthogonalized as Muon orthogonalizes its momentum.

    c = lerp(m, g, 1 − β₁)                                   Lion's direction, before its sign
    W ← W·(1 − lr·wd) − lr·√max(1, rows/cols)·msign(c)       Muon's geometry instead of Lion's sign
    m ← lerp(m, g, 1 − β₂)                                   the slow momentum, updated after the step
Everything that is not a hidden matrix gets the stdlib's AdamW step, as in muon_adamw.
"""
use adamw

step spectral_lion(matrix W; lr = 0.02, betas = (0.9, 0.99), weight_decay = 0.0):
    state m = zeros_like(W)
    let c = lerp(m, grad, 1 - betas[0])
    W = W * (1 - lr * weight_decay) - lr * scale_factor(W, "muon") * msign(c, steps = 5, coeffs = "polar_express")
    m = lerp(m, grad, 1 - betas[1])

optimizer my_optimizer:
    for hidden matrix W = spectral_lion
    for tensor p = adamw(lr = 3e-3, betas = (0.9, 0.95), eps = 1e-10, weight_decay = 0.0)
