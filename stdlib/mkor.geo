"""MKOR: Kronecker-factored second-order preconditioning whose factor inverses are updated by rank-1 Sherman–Morrison
steps, every f steps, followed by momentum SGD.

Mozaffari, Li, Zhang, Dehnavi, "MKOR: Momentum-Enabled Kronecker-Factor-Based Optimizer Using Rank-1 Updates"
(NeurIPS 2023); as in the released code (mkor/mkor.py and utils/factors.py). For a layer W (m × n) with inverse
factors L⁻¹ (m × m, output gradients) and R⁻¹ (n × n, inputs), starting from identities:

    every f steps (inv_freq):
        if t = 1, or max|L⁻¹| > 2 or max|R⁻¹| > 2 (the norm-based stabilizer): L⁻¹, R⁻¹ ← I
        else: L⁻¹ ← SM(0.95·L⁻¹ + 0.05·I, ḡ),  R⁻¹ ← SM(0.95·R⁻¹ + 0.05·I, ā)
              with SM(A⁻¹, v) = A⁻¹ − (A⁻¹v vᵀA⁻¹)/(1 + vᵀA⁻¹v) = (A + vvᵀ)⁻¹
    D = L⁻¹ G R⁻¹;  D ← D·‖G‖_F/‖D‖_F  (the gradient's norm; D = G where D = 0)
    then torch.optim.SGD on D: d = D + λW;  B ← d at the first step, else μB + d;  W ← W − lr·B

DEPARTURE — the rank-1 vectors. MKOR's ḡ and ā are the batch means of the layer's output gradients and inputs,
which its module hooks record during the forward and backward passes. A geo step sees only the parameter and its
gradient; the optimizer holds parameters, not modules, and hooks would have to be registered on the user's model,
follow it through FSDP/compile wrappers, and be kept in step with gradient accumulation. We did not add them
(docs/language.md, "What a step sees"). This spec uses the closest quantity the gradient itself carries: its top
singular pair, ∇W ≈ σ u vᵀ, with ḡ = √σ·u and ā = √σ·v (by warm-started power iteration, `power_iter`). For a
batch of one, ∇W = g aᵀ is rank one and this is exact up to the split of scale between the two vectors; for
larger batches it is the best rank-1 summary of Σ gᵢaᵢᵀ, not the product of the means. Both vectors are clamped to
±100 as the code clamps its vectors. Other departures: factors in the parameter's dtype (the code keeps them in
fp16); a Linear layer's bias is not folded into its factors (route biases to their own rule).

Ranges: μ in [0, 1] (torch.optim.SGD checks only μ ≥ 0; above 1 the buffer grows geometrically); lr, λ, the reset
threshold and the clip bound non-negative (a negative clip would give clamp crossed ends); inv_freq a positive period.
"""

def sherman_morrison(inverse, v):
    let iv = inverse @ v
    return inverse - (iv @ (v.T @ inverse)) / (1 + v.T @ iv)

def frobenius(x):
    """‖x‖_F scaled by the largest entry first, so that huge gradients do not overflow the sum of squares."""
    let big = max(amax(abs(x)), 1e-30)
    return big * sqrt(sum((x / big) * (x / big)))

optimizer mkor(lr = 0.1 in [0, inf), momentum = 0.9 in [0, 1], weight_decay = 0.0 in [0, inf),
               reset_threshold = 2.0 in [0, inf), clip = 100.0 in [0, inf), static inv_freq = 10 in [1, inf),
               static power_steps = 5):
    for matrix W:
        state left_inv = eye(W @ W.T)
        state right_inv = eye(W.T @ W)
        state direction = right_init(W)
        state momentum_buffer = zeros_like(W)
        every inv_freq:
            direction = power_iter(grad, direction, steps = power_steps)
            let sigma = top_sv(grad, direction)
            let g_vec = clamp(sqrt(sigma) * top_left(grad, direction), -clip, clip)
            let a_vec = clamp(sqrt(sigma) * top_right(direction).T, -clip, clip)
            let reset = (t == 1) or (max(amax(abs(left_inv)), amax(abs(right_inv))) > reset_threshold)
            left_inv = where(reset, eye(left_inv), sherman_morrison(0.95 * left_inv + 0.05 * eye(left_inv), g_vec))
            right_inv = where(reset, eye(right_inv), sherman_morrison(0.95 * right_inv + 0.05 * eye(right_inv), a_vec))
        let preconditioned = left_inv @ grad @ right_inv
        let size = frobenius(preconditioned)
        let d = where(size > 0, preconditioned * frobenius(grad) / size, grad) + weight_decay * W
        momentum_buffer = where(t == 1, d, momentum * momentum_buffer + d)
        W = W - lr * momentum_buffer
