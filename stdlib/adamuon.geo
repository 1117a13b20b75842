"""AdaMuon: Muon with an elementwise second moment of the orthogonalized update (Si, Zhang, Shen,
arXiv 2507.11005; code Chongjie-Si/AdaMuon).

    B ← lerp(B, g, 1 − μ);  U ← lerp(g, B, μ) if nesterov else B
    O ← msign(sign(U))                            (sign BEFORE orthogonalization; keller, bf16)
    v ← μ·v + (1 − μ)·O²                          (the momentum's μ; no bias correction)
    Ô ← O / (sqrt(v) + ε);  Ô ← Ô · 0.2·sqrt(mn) / (‖Ô‖_F + ε)       (update RMS 0.2, as AdamW's)
    W ← W·(1 − lr·λ) − lr·Ô

Departure: v is stored in the parameter's dtype (the code keeps it flat in bf16, like O).
"""

optimizer adamuon(lr = 0.02 in [0, inf), momentum = 0.95 in [0, 1], weight_decay = 0.01 in [0, inf),
                  eps = 1e-8 in [0, inf),
                  static nesterov = true, static ns_steps = 5):
    for matrix W:
        state momentum_buffer = zeros_like(W)
        state v = zeros_like(W)
        momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
        let u = lerp(grad, momentum_buffer, momentum) if nesterov else momentum_buffer
        let o = msign(sign(u), steps = ns_steps, dtype = "bf16")
        v = lerp(v, o * o, 1 - momentum)
        let a = o / (sqrt(v) + eps)
        W = W * (1 - lr * weight_decay) - lr * 0.2 * sqrt(numel(W)) * a / (sqrt(sum(a * a)) + eps)
