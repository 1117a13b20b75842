"""NorMuon: Muon with a per-neuron second moment (Li et al., arXiv 2510.05491; code zichongli5/NorMuon).

After orthogonalization each row (output neuron) is normalized by the EMA of its mean square, then the
update is rescaled to the norm it had before:

    B ← lerp(B, g, 1 − μ);  U ← lerp(g, B, μ);  O ← msign(U)          (Newton–Schulz, keller, bf16)
    v ← lerp(v, mean_j O²ᵢⱼ, 1 − β₂)                                  (one scalar per row)
    Ô ← O / (sqrt(v) + ε);  Ô ← Ô·‖O‖_F / (‖Ô‖_F + ε)
    W ← W·(1 − lr·λ) − lr·sqrt(max(1, m/n))·Ô

Follows the code's defaults (not the paper's 0.2·sqrt(mn) RMS matching). Conv kernels: `as matrix`.
"""

def frobenius(x):
    return sqrt(sum(x * x))

optimizer normuon(lr = 0.02 in [0, inf), momentum = 0.95 in [0, 1], beta2 = 0.95 in [0, 1],
                  weight_decay = 0.0 in [0, inf), eps = 1e-10 in [0, inf),
                  static ns_steps = 5, static ns_dtype = "bf16"):
    for matrix W:
        state momentum_buffer = zeros_like(W)
        state second_momentum_buffer = zeros_like(mean(W, axis = -1))
        momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
        let o = msign(lerp(grad, momentum_buffer, momentum), steps = ns_steps, dtype = ns_dtype)
        second_momentum_buffer = lerp(second_momentum_buffer, mean(o * o, axis = -1), 1 - beta2)
        let normalized = o / (sqrt(second_momentum_buffer) + eps)
        let update = normalized * frobenius(o) / (frobenius(normalized) + eps)
        W = W * (1 - lr * weight_decay) - lr * sqrt(max(1, rows(W) / cols(W))) * update
