"""MuonSphere: Muon's direction on the spectral sphere ‖W‖₂ = R, i.e. SSO with λ = 0.

Xie et al., "Controlled LLM Training on Spectral Sphere" (arXiv 2601.08393) and its code
github.com/Unakar/Spectral-Sphere-Optimizer: the ablation that keeps SSO's radius, momentum and hard retraction
but drops the tangent constraint, so the step Φ = msign(M̂) may change ‖W‖₂ to first order; the next step's
retraction removes that drift (references/algorithms.md §4.1).

    R = c·sqrt(d_out/d_in);  B ← lerp(B, G, 1 − β);  M = lerp(G, B, β) if nesterov else B
    v ← power_iter(W, v);  W ← (R/‖W v₀ᵀ‖)·W;  W ← W − lr·R·msign(M)     (msign: "sso8", fp32)

Same departures as spectral_sphere.geo (power iteration warm-started from a state, on a block of power_rank
right vectors, 40 rounds a step for the retraction's accuracy; σ = ‖W v₀ᵀ‖; the retraction always rescales). M is not normalized: msign is scale-invariant.
"""

optimizer muon_sphere(lr = 0.02 in [0, inf), momentum = 0.9 in [0, 1], radius_scaler = 1.0 in [0, inf),
                      weight_decay = 0.0 in [0, inf), eps = 1e-7 in [0, inf),
                      static nesterov = true, static power_steps = 40, static power_rank = 8, static msign_steps = 8,
                      static msign_dtype = "fp32", static msign_method = "ns"):
    for matrix W:
        state momentum_buffer = zeros_like(W)
        state v = right_init(W, rank = power_rank)
        W = W * (1 - lr * weight_decay)
        momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
        let m = lerp(grad, momentum_buffer, momentum) if nesterov else momentum_buffer
        let R = radius_scaler * sqrt(rows(W) / cols(W))
        v = power_iter(W, v, steps = power_steps)
        W = W * (R / (top_sv(W, v) + eps))
        W = W - lr * R * msign(m, eps, steps = msign_steps, coeffs = "sso8", dtype = msign_dtype, method = msign_method)
