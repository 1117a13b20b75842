"""Spectral-ball Muon: steepest descent under the spectral norm inside the ball ‖W‖₂ ≤ R.

Cesista, "Rethinking µP: the spectral ball" and "Steepest descent on Finsler geometries via dual ascent"
(leloykun.github.io/ponder, 2025), references/algorithms.md §4.2. Inside the ball the step is Muon's; on its
boundary (singular pairs U_R, V_R with σ = R) the step A must lie in the tangent cone
T = {A : L(A) = sym(U_Rᵀ A V_R) ⪯ 0}, so that it never pushes a capped singular value outwards:

    R = c·sqrt(d_out/d_in);  B ← lerp(B, G, 1 − β);  M = lerp(G, B, β) if nesterov else B;  η = lr·R
    A = argmin ⟨M, A⟩  s.t.  ‖A‖₂ ≤ η, A ∈ T
    W ← hardcap_R(W + A)                    retraction: U min(Σ, R) Vᵀ by the msign identity ("sso8")

`direction` chooses how A is computed:

    "heuristic"    A = η·msign(proj_T(−M))          one msign; proj_T by float64 SVD (`tangent`)
    "dual_ascent"  A = constrained_direction(M, W, "spectral_ball", R, η): the dual Y ⪰ 0 (k×k, k capped pairs),
                   Y₀ = proj_psd(L(−M̂)), A_j = −msign(M̂ + U_R Y_j V_Rᵀ), Y_{j+1} = proj_psd(Y_j + σ_j L(A_j)),
                   σ_j = dual_step/√(j+1), M̂ = M/RMS σ(M); stop when ‖Y_{j+1} − Y_j‖/σ_j ≤ max(dual_atol,
                   dual_rtol·‖Y_j‖) or j = dual_steps (then the average of the iterates or the heuristic, whichever
                   is the least infeasible with the best ⟨M, A⟩), A = η·A_j

The heuristic is dual ascent stopped at j = 0 (§4.2): it projects the descent direction −M onto T, then takes its
LMO. It stays the default: it costs one msign and no host synchronization, while dual ascent costs up to
dual_steps + 1 msigns and one sync per iteration, and it gained ≤ 0.3 % in loss over the heuristic on the small
models of tests/stdlib (100 steps; both keep ‖W‖₂ ≤ R to 3e-5 through the retraction). The heuristic's A may
point outwards (msign does not preserve the cone; measured violations of sym(U_Rᵀ A V_R) ⪯ 0 up to 0.5η) and may
be suboptimal even where it is feasible; dual ascent returns a direction that is feasible to its tolerance where
it converges, and never less feasible than the heuristic (tests/unit/test_manifold.py).

Departures: proj_T by float64 SVD rather than Cesista's msign-only eig_stepfun form; dual ascent runs at most
dual_steps = 32 iterations (Cesista: 128) on the momentum scaled to RMS singular value 1, with the primal
recovery above where it does not converge (the dual is non-smooth where M̂ + U_R Y* V_Rᵀ loses rank, e.g. square
layers with several capped singular values). A singular value within boundary_tol of R counts as on the boundary.
Until this version the heuristic projected M instead of −M (msign(proj_T(M)), step −η·that): on the ball's
one-sided cone that keeps the outward part of the step and removes the inward one.
"""

optimizer spectral_ball(lr = 0.02 in [0, inf), momentum = 0.95 in [0, 1], radius_scaler = 1.0 in [0, inf),
                        dual_step = 1.0 in [0, inf), dual_atol = 1e-4 in [0, inf), dual_rtol = 1e-3 in [0, inf),
                        static nesterov = true, static direction = one_of("heuristic", "dual_ascent"),
                        static dual_steps = 32, static ns_steps = 8, static ns_dtype = "fp32",
                        static boundary_tol = 1e-3):
    for matrix W:
        state momentum_buffer = zeros_like(W)
        momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
        let m = lerp(grad, momentum_buffer, momentum) if nesterov else momentum_buffer
        let R = radius_scaler * sqrt(rows(W) / cols(W))
        let step = lr * R * msign(tangent(-m, W, "spectral_ball", R, tol = boundary_tol), steps = ns_steps,
                                  coeffs = "sso8", dtype = ns_dtype)
        if direction == "dual_ascent":
            step = constrained_direction(m, W, "spectral_ball", R, 0.0, lr * R, dual_step, dual_atol, dual_rtol,
                                         max_steps = dual_steps, tol = boundary_tol, ns_steps = ns_steps,
                                         dtype = ns_dtype)
        W = retract(W + step, "spectral_ball", R, steps = ns_steps, dtype = ns_dtype)
