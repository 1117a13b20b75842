"""Manifold Muon: steepest descent under the spectral norm on the scaled Stiefel manifold, by dual ascent.

Cesista, "Steepest descent on the Stiefel manifold" (2025-07-18) and "Steepest descent on Finsler geometries
via dual ascent" (2025-10-29), leloykun.github.io/ponder; Bernstein's "manifold Muon" (Thinking Machines,
"Modular manifolds", 2025); references/algorithms.md §4.2. Every weight keeps all its singular values equal to
s = sqrt(d_out/d_in) (WᵀW = s²I for tall W, WWᵀ = s²I for wide W: unit RMS→RMS gain in every direction).

    B ← lerp(B, G, 1 − β);  M = lerp(G, B, β) if nesterov else B
    Φ = msign(M + W̃Λ)        Λ symmetric, by dual ascent on sym(W̃ᵀΦ) = 0  (W̃ = W/s; stiefel_direction)
    W ← s·msign(W − lr·s·Φ)   retraction (Newton–Schulz, "sso8")

Departures: a fixed number of dual-ascent iterations (Cesista stops at a tolerance, ≤ 128), the dual step
scaled by ‖M‖_F/√n, the most tangent iterate returned. The first step starts from W as initialized (use
nn.init.orthogonal_, scaled by s); its retraction puts W on the manifold.
"""

optimizer stiefel_muon(lr = 0.02 in [0, inf), momentum = 0.95 in [0, 1], dual_step = 0.5 in [0, inf),
                       static nesterov = true, static dual_iters = 5,
                       static dual_method = "dual_ascent", static ns_steps = 8, static ns_dtype = "fp32"):
    for matrix W:
        state momentum_buffer = zeros_like(W)
        momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
        let m = lerp(grad, momentum_buffer, momentum) if nesterov else momentum_buffer
        let s = sqrt(rows(W) / cols(W))
        let phi = stiefel_direction(m, W, s, dual_step, iters = dual_iters, method = dual_method,
                                    ns_steps = ns_steps, dtype = ns_dtype)
        W = retract(W - lr * s * phi, "stiefel", s, steps = ns_steps, dtype = ns_dtype)
