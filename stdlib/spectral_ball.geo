"""Spectral-ball Muon: steepest descent under the spectral norm inside the ball ‖W‖₂ ≤ R.

Cesista, "Rethinking µP: the spectral ball" and "Steepest descent on Finsler geometries via dual ascent"
(leloykun.github.io/ponder, 2025), references/algorithms.md §4.2. Inside the ball the step is Muon's; on its
boundary (singular pairs U_R, V_R with σ = R) the direction must lie in the tangent cone
T = {A : sym(U_Rᵀ A V_R) ⪯ 0}, so that the step never pushes a capped singular value outwards:

    R = c·sqrt(d_out/d_in);  B ← lerp(B, G, 1 − β);  M = lerp(G, B, β) if nesterov else B
    Φ = msign(proj_T(M))                   the one-step dual-ascent heuristic LMO(proj_T(G))
    W ← hardcap_R(W − lr·R·Φ)               retraction: U min(Σ, R) Vᵀ by the msign identity ("sso8")

Departures: one dual-ascent step (Cesista iterates to a tolerance), and proj_T by float64 SVD (`tangent`)
rather than his msign-only eig_stepfun form. A singular value within boundary_tol of R counts as on the boundary.
"""

optimizer spectral_ball(lr = 0.02, momentum = 0.95, radius_scaler = 1.0, static nesterov = true,
                        static ns_steps = 8, static ns_dtype = "fp32", static boundary_tol = 1e-3):
    for matrix W:
        state momentum_buffer = zeros_like(W)
        momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
        let m = lerp(grad, momentum_buffer, momentum) if nesterov else momentum_buffer
        let R = radius_scaler * sqrt(rows(W) / cols(W))
        let phi = msign(tangent(m, W, "spectral_ball", R, tol = boundary_tol), steps = ns_steps, coeffs = "sso8",
                        dtype = ns_dtype)
        W = retract(W - lr * R * phi, "spectral_ball", R, steps = ns_steps, dtype = ns_dtype)
