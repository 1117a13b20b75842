"""Lion: the sign of an interpolated momentum (Chen et al., "Symbolic Discovery of Optimization
Algorithms", 2023). Steepest descent in ℓ∞: sign(·) is the LMO of the max norm.

    c ← β₁·m + (1 − β₁)·g
    W ← W·(1 − lr·λ) − lr·sign(c)
    m ← β₂·m + (1 − β₂)·g

Use a learning rate 3–10× smaller than AdamW's and a weight decay 3–10× larger.
"""

optimizer lion(lr = 1e-4 in [0, inf), betas = (0.9, 0.99) in [0, 1], weight_decay = 0.0 in [0, inf)):
    for tensor W:
        state exp_avg = zeros_like(W)
        let c = lerp(exp_avg, grad, 1 - betas[0])
        W = W * (1 - lr * weight_decay) - lr * sign(c)
        exp_avg = lerp(exp_avg, grad, 1 - betas[1])
