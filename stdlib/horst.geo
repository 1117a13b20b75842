"""HORST — Hyperbolic Operator for Robust Sparse Training: an adaptive (AdamW) step composed with a hyperbolic
mirror step, as non-commuting operators.

RECONSTRUCTION, NOT THE PAPER'S ALGORITHM. The HORST paper (Jacobs, Jain, Burkholz, arXiv 2605.21104, HiLD @
ICML 2026) has published only its abstract: no equations, pseudo-code, hyperparameters or code. What follows is
our reconstruction (algorithms.md §2.4) from that abstract, the authors' preceding method HAM (Hyperbolic Aware
Minimization, arXiv 2506.02630, github.com/TomJacobs05/HAM) and hypentropy mirror descent (Ghai, Hazan,
Singer). Expect it to differ from the paper's method.

    A (adaptive, ℓ∞ geometry):   the AdamW step of torch.optim (adamw.geo)
    H (hyperbolic, ℓ1-inducing): W ← β·sinh(asinh(W/β) − s),  s = clamp(lr·(α·g + λ₁·sign W), −5, 5)
                                 = mirror_step(W, s, 1, "hypentropy", β)                  (matrices only)

    horst      R1 = H ∘ A  (the default, HAM's order: Adam first, then H with the sign taken after A)
    horst_r2   R2 = A ∘ H  (reversed)
    horst_r3   R3: one step, Adam's direction (scaled by α) taken in hypentropy coordinates
    ham        HAM = H₀ ∘ A with H₀ the β → 0 limit W ← W·exp(clamp(−lr·(α·sign(W)·g + λ₁), −5, 5))

Both operators use the same minibatch gradient g. β defaults to 1/α, so that α·sqrt(W² + β²) ≈ 1 + α|W|
near 0, HAM's effective inverse metric (algorithms.md §2.2). Exact zeros stay zero under H₀, not under H.
H, H₀ and R3 apply to matrices; vectors (biases, norm gains) get the AdamW step alone, as HAM leaves them.
"""
use adamw

step hyperbolic(matrix W; lr = 1e-3 in [0, inf), alpha = 200.0 in [0, inf), l1 = 1e-3 in [0, inf),
                beta = 5e-3 in (0, inf)):
    """The dual-space step is clamped to ±5, as HAM clamps its exponent: cosh and sinh stay finite."""
    let dual_step = clamp(lr * (alpha * grad + l1 * sign(W)), -5, 5)
    W = mirror_step(W, dual_step, 1, "hypentropy", beta)

step ham_step(matrix W; lr = 1e-3 in [0, inf), alpha = 200.0 in [0, inf), l1 = 1e-3 in [0, inf)):
    """HAM's multiplicative step: entropic mirror descent on |W| for α·f + λ₁·‖W‖₁; never flips a sign."""
    W = W * exp(clamp(-lr * (alpha * sign(W) * grad + l1), -5, 5))

step adam_in_hypentropy(matrix W; lr = 1e-3 in [0, inf), betas = (0.9, 0.999) in [0, 1), eps = 1e-8 in [0, inf),
                        weight_decay = 1e-2 in [0, inf), alpha = 200.0 in [0, inf), beta = 5e-3 in (0, inf)):
    """R3: the bias-corrected Adam direction d = m̂/(sqrt(v̂) + ε) as a hypentropy mirror step with HAM's scale α,
    clamped to ±5 as the hyperbolic step is: W ← β·sinh(asinh(W/β) − clamp(lr·α·d, −5, 5)). First order: the
    preconditioner α·sqrt(W² + β²)/(sqrt(v̂) + ε), a product where R1 and R2 give a sum; with β = 1/α it is
    sqrt(1 + (αW)²)/(sqrt(v̂) + ε): Adam's own step near 0, a multiplicative one (α|W|) away from it. Without α
    the step was lr·sqrt(W² + β²)·d, 100–200× smaller than Adam's for |W| ≲ β: loss 1.21 after 3000 steps at
    the defaults on benchmarks/horst_sparsity.py's regression, where R1 reaches 9.5e-9 (with α: 3.3e-6)."""
    state exp_avg = zeros_like(W)
    state exp_avg_sq = zeros_like(W)
    W = W * (1 - lr * weight_decay)
    exp_avg = lerp(exp_avg, grad, 1 - betas[0])
    exp_avg_sq = exp_avg_sq * betas[1] + (1 - betas[1]) * grad * grad
    let direction = exp_avg / bias_correction(betas[0], t) / (sqrt(exp_avg_sq / bias_correction(betas[1], t)) + eps)
    W = mirror_step(W, clamp(lr * alpha * direction, -5, 5), 1, "hypentropy", beta)

optimizer horst = hyperbolic ∘ adamw_step

optimizer horst_r2 = adamw_step ∘ hyperbolic

optimizer horst_r3:
    """R3 for matrices; vectors (biases, norm gains) take the AdamW step alone, as in R1 and R2."""
    for matrix W = adam_in_hypentropy
    for tensor p = adamw_step

optimizer ham = ham_step ∘ adamw_step
