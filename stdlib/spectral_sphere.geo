"""SSO, the Spectral Sphere Optimizer: steepest descent under the spectral norm on the sphere ‖W‖₂ = R.

Xie et al., "Controlled LLM Training on Spectral Sphere" (arXiv 2601.08393), Algorithm 1, as in the reference
code github.com/Unakar/Spectral-Sphere-Optimizer (sso.py) with its defaults; references/algorithms.md §4.1.

    R = c·sqrt(d_out/d_in)                      c = radius_scaler (spectral µP radius)
    B ← lerp(B, G, 1 − β);  M = lerp(G, B, β) if nesterov else B;  M̂ = M / max(‖M‖_F, eps)
    v ← power_iter(W, v); σ = ‖W v₀ᵀ‖; Θ = u v₀ᵀ  (top singular triplet, warm-started from the last step)
    W ← (R/σ)·W                                  hard retraction, before the update
    λ* = root of h(λ) = ⟨Θ, msign(M̂ + λΘ)⟩      bracket + bisection from the last step's λ
    W ← W − lr·R·msign(M̂ + λ*Θ)                 msign: the 8-step "sso8" list, in fp32

Departures from sso.py: power iteration warm-started from the state `v` (as SSO's Megatron code caches u, v)
on a block of power_rank right vectors with Rayleigh–Ritz, power_steps = 40 rounds a step (sso.py: one vector,
5 rounds from ones; its Megatron flags: 20 rounds, warm-started). SSO drives the top singular values together,
where one vector stalls (‖W‖₂ drifted 2–20 % above R on 16×16 layers) and a block converges like
(σ_{k+1}/σ₁)^(2·steps). Measured |‖W_ret‖₂ − R| right after the retraction, worst of 150 steps × 3 seeds × lr
0.01/0.02/0.1 on a 16→16→16→16 tanh MLP (tests/unit/test_sso.py keeps one seed at lr 0.02 and 0.1): block 8
with 5 rounds 1.4e-2, 20 rounds 1.4e-4, 40 rounds (the default) 6.5e-7, within the 1e-4 we promise. Wider
layers need a larger block for that: 64×64 with block 16 and 40 rounds 7.7e-5; 128×128 with block 16 and 30
rounds 4.1e-4 (at lr 0.1; 2e-5 at 0.02). The power rounds cost 4·m·n·power_rank·power_steps FLOPs: a few %
of the λ solver's Newton–Schulz calls at width 64, under 1 % from width 768.
σ = ‖W v₀ᵀ‖; the retraction always rescales (sso.py skips |R/(σ + eps) − 1| ≤ eps); msign in fp32
as in the paper's Megatron runs (sso.py casts to bf16, whose ~5e-3 noise in h defeats solver_tol = 1e-6:
pass msign_dtype = "bf16" for sso.py's behaviour). Matrices only.
"""

optimizer spectral_sphere(lr = 0.02 in [0, inf), momentum = 0.9 in [0, 1], radius_scaler = 1.0 in [0, inf),
                          weight_decay = 0.0 in [0, inf), eps = 1e-7 in [0, inf), solver_tol = 1e-6 in [0, inf),
                          static nesterov = true, static power_steps = 40, static power_rank = 8,
                          static msign_steps = 8, static msign_dtype = "fp32", static msign_method = "ns",
                          static solver_max_iter = 20):
    for matrix W:
        state momentum_buffer = zeros_like(W)
        state v = right_init(W, rank = power_rank)
        state prev_lambda = 0.0
        W = W * (1 - lr * weight_decay)
        momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
        let m = lerp(grad, momentum_buffer, momentum) if nesterov else momentum_buffer
        let m_hat = m / max(sqrt(sum(m * m)), eps)
        let R = radius_scaler * sqrt(rows(W) / cols(W))
        v = power_iter(W, v, steps = power_steps)
        let theta = top_left(W, v) @ top_right(v)
        W = W * (R / (top_sv(W, v) + eps))
        prev_lambda = sso_lambda(m_hat, theta, prev_lambda, solver_tol, eps, max_iter = solver_max_iter,
                                 steps = msign_steps, coeffs = "sso8", dtype = msign_dtype, method = msign_method)
        let phi = msign(m_hat + prev_lambda * theta, eps, steps = msign_steps, coeffs = "sso8", dtype = msign_dtype,
                        method = msign_method)
        W = W - lr * R * phi
