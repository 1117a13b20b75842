"""Muon: momentum, then steepest descent under the spectral norm.

Keller Jordan, "Muon: An optimizer for hidden layers in neural networks" (2024), as shipped in
torch.optim.Muon (torch 2.13): EMA momentum, Nesterov by default, Newton–Schulz orthogonalization in bf16
with the quintic coefficients (3.4445, −4.7750, 2.0315), decoupled weight decay with the unadjusted lr.

    B ← lerp(B, G, 1 − μ)                         # EMA momentum
    U ← lerp(G, B, μ) if nesterov else B
    O ← msign(U)                                  # Newton–Schulz, rows ≤ cols orientation
    W ← W·(1 − lr·wd) − lr·s(m, n)·O

s(m, n) = sqrt(max(1, m/n)) ("original") or 0.2·sqrt(max(m, n)) ("match_rms_adamw", Moonlight).
Only for matrices: route vectors, embeddings and heads to AdamW (see muon_adamw.geo).

Variants: muon_polar_express (Polar Express coefficients, arXiv 2505.16932), muon_moonlight (update RMS
0.2 to reuse AdamW's lr and weight decay), muon_conv (conv kernels viewed as matrices). Per-head and fused
QKV weights: `for name "*.qkv.weight" W as split(3) = muon`, `for name "*.attn.*" matrix W as heads(8) = muon`.
"""

optimizer muon(lr = 0.02 in [0, inf), momentum = 0.95 in [0, inf), weight_decay = 0.0 in [0, inf),
               eps = 1e-7 in [0, inf),
               static nesterov = true, static ns_steps = 5, static ns_coeffs = "keller",
               static ns_dtype = "bf16", static adjust_lr = one_of("original", "match_rms_adamw")):
    for matrix W:
        state buf = zeros_like(W)
        buf = lerp(buf, grad, 1 - momentum)
        let u = lerp(grad, buf, momentum) if nesterov else buf
        let o = msign(u, steps = ns_steps, coeffs = ns_coeffs, dtype = ns_dtype, eps = eps)
        let scale = sqrt(max(1, rows(W) / cols(W))) if adjust_lr == "original" else 0.2 * sqrt(max(rows(W), cols(W)))
        W = W * (1 - lr * weight_decay) - lr * scale * o

optimizer muon_polar_express = muon(ns_coeffs = "polar_express")

optimizer muon_moonlight = muon(adjust_lr = "match_rms_adamw", lr = 1e-3, weight_decay = 0.1)

optimizer muon_conv:
    """Conv kernels flattened to (out, in·kh·kw) matrices, as Keller Jordan's Muon does. Departure: the shape
    scale uses the flattened (out, in·kh·kw); Keller's code uses the kernel's last two dims (kh/kw)."""
    for conv W as matrix = muon
    for matrix W = muon
