"""NAMO and NAMO-D: Muon's orthogonalized momentum with Adam-type, norm-based noise adaptation.

Zhang, Liu, Schaeffer, "Adam Improves Muon: Adaptive Moment Estimation with Orthogonalized Momentum"
(arXiv 2602.17080); as in the authors' code (github.com/minxin-zhg/namo, src/namo.py, classes NAMO and NAMO_D).

NAMO — one adaptive step size per matrix, from a scalar second moment of the gradient's Frobenius norm:

    B ← lerp(B, G, 1 − μ);  M = lerp(G, B, μ) if nesterov else B;  O = msign(M)   (Newton–Schulz, keller, bf16)
    v ← μ₂·v + (1 − μ₂)·‖G‖²_F
    α = lr · sqrt(1 − μ₂ᵗ)/(1 − μᵗ + 1e-12) · ‖M‖_F/(sqrt(v) + ε)
    W ← W·(1 − λ·min(α, 1)) − min(α·c·sqrt(max(m, n)), 1)·O          (c = scale_coeff = 0.2, Moonlight's RMS match)

NAMO-D — the same per column (neuron-wise): O is right-multiplied by a diagonal of clamped column scales:

    V ← μ₂·V + (1 − μ₂)·‖G_{:,j}‖²        (a row of n values)
    sⱼ = ‖M_{:,j}‖/(sqrt(Vⱼ) + ε),  then clamped to [c̄·s̄, s̄/c̄] around s̄ = mean(s) when 0 < c̄ ≤ 1 (c̄ = col_clamp)
    b = lr · sqrt(1 − μ₂ᵗ)/(1 − μᵗ + 1e-12)
    W ← W ⊙ max(1 − λ·min(b·s, 1), 0) − O ⊙ min(b·c·sqrt(max(m, n))·s, 1)      (per column)

Ranges: μ, μ₂ and c̄ in [0, 1] (c̄ = 0 turns NAMO-D's clamp off; above 1 the clamp's ends would cross), lr, λ, ε
and c non-negative.

Departures: Newton–Schulz normalizes by max(‖M‖_F, eps) where the code adds 1e-7 (`msign`'s convention; a
relative difference of 1e-7/‖M‖_F); matrices only (the code's AdamW for the other parameters is `muon_adamw`'s
route); the code's `use_exact_svd` is `method = "svd"`. Conv kernels: `for conv W as matrix` (the code scales by
the kernel's (out, in) dims, this spec by the flattened matrix's).
"""

def frobenius(x):
    return sqrt(sum(x * x))

def column_norms(x):
    return sqrt(sum(x * x, axis = -2))

optimizer namo(lr = 0.01 in [0, inf), momentum = 0.95 in [0, 1], mu2 = 0.99 in [0, 1], weight_decay = 0.1 in [0, inf),
               eps = 1e-8 in [0, inf), scale_coeff = 0.2 in [0, inf),
               static nesterov = true, static ns_steps = 5, static ns_dtype = "bf16",
               static method = one_of("ns", "svd")):
    for matrix W:
        state momentum_buffer = zeros_like(W)
        state v_squared = 0.0
        v_squared = mu2 * v_squared + (1 - mu2) * sum(grad * grad)
        momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
        let m = lerp(grad, momentum_buffer, momentum) if nesterov else momentum_buffer
        let o = msign(m, steps = ns_steps, dtype = ns_dtype, method = method)
        let base = lr * sqrt(1 - mu2 ^ t) / (1 - momentum ^ t + 1e-12)
        let alpha = base * frobenius(m) / (sqrt(v_squared) + eps)
        let step_size = min(alpha * scale_coeff * sqrt(max(rows(W), cols(W))), 1)
        W = W * (1 - weight_decay * min(alpha, 1)) - step_size * o

optimizer namo_d(lr = 0.01 in [0, inf), momentum = 0.95 in [0, 1], mu2 = 0.99 in [0, 1], weight_decay = 0.1 in [0, inf),
                 eps = 1e-8 in [0, inf), scale_coeff = 0.2 in [0, inf), col_clamp = 0.75 in [0, 1],
                 static nesterov = true, static ns_steps = 5, static ns_dtype = "bf16",
                 static method = one_of("ns", "svd")):
    for matrix W:
        state momentum_buffer = zeros_like(W)
        state col_v = zeros_like(sum(W, axis = -2))
        col_v = mu2 * col_v + (1 - mu2) * sum(grad * grad, axis = -2)
        momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
        let m = lerp(grad, momentum_buffer, momentum) if nesterov else momentum_buffer
        let o = msign(m, steps = ns_steps, dtype = ns_dtype, method = method)
        let base = lr * sqrt(1 - mu2 ^ t) / (1 - momentum ^ t + 1e-12)
        let s = column_norms(m) / (sqrt(col_v) + eps)
        let center = mean(s)
        let bounded = clamp(s, where(center > 0, center * col_clamp, 0), where(center > 0, center / col_clamp, 1e300))
        s = where((col_clamp > 0) and (col_clamp <= 1), bounded, s)
        let decay = max(1 - weight_decay * min(s * base, 1), 0)
        W = W * decay - o * min(s * base * scale_coeff * sqrt(max(rows(W), cols(W))), 1)
