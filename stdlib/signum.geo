"""Signum: signSGD with EMA momentum (Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex
Problems", 2018). Steepest descent in ℓ∞ on the momentum; momentum = 0 gives signSGD.

    B ← lerp(B, g, 1 − μ)
    W ← W·(1 − lr·λ) − lr·sign(B)
"""

optimizer signum(lr = 1e-3 in [0, inf), momentum = 0.9 in [0, 1], weight_decay = 0.0 in [0, inf)):
    for tensor W:
        state momentum_buffer = zeros_like(W)
        momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
        W = W * (1 - lr * weight_decay) - lr * sign(momentum_buffer)
