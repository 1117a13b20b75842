"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019).

torch.optim.AdamW semantics (torch 2.13): the step count t is incremented before use, the bias corrections
divide the step size and sqrt(v), and eps is added after the bias-corrected sqrt(v).

    W ← W·(1 − lr·λ)
    m ← lerp(m, g, 1 − β₁);   v ← β₂·v + (1 − β₂)·g²
    W ← W − lr/(1 − β₁ᵗ) · m / (sqrt(v)/sqrt(1 − β₂ᵗ) + ε)
"""

step adamw_step(W; lr = 1e-3 in [0, inf), betas = (0.9, 0.999) in [0, 1), eps = 1e-8 in [0, inf),
                   weight_decay = 1e-2 in [0, inf)):
    state exp_avg = zeros_like(W)
    state exp_avg_sq = zeros_like(W)
    W = W * (1 - lr * weight_decay)
    exp_avg = lerp(exp_avg, grad, 1 - betas[0])
    exp_avg_sq = exp_avg_sq * betas[1] + (1 - betas[1]) * grad * grad
    let bias_correction1 = 1 - betas[0] ^ t
    let bias_correction2 = 1 - betas[1] ^ t
    let denom = sqrt(exp_avg_sq) / sqrt(bias_correction2) + eps
    W = W - lr / bias_correction1 * exp_avg / denom

optimizer adamw = adamw_step
