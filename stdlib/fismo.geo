"""FISMO, the Fisher-Structured Momentum-Orthogonalized optimizer: Muon's orthogonalization in the geometry of a
Kronecker-factored Fisher metric F ≈ Q ⊗ P, so the step keeps curvature-aware anisotropy.

Xu, Yan, Zhang, "FISMO: Fisher-Structured Momentum-Orthogonalized Optimizer" (arXiv 2601.21750), Algorithm 1,
as two independent summaries of the paper state it (we have not seen released code). For W ∈ R^{m×n}, starting
from P = I_m, Q = I_n, M = 0:

    L = (1/n)·G Q⁻¹ Gᵀ + μ·tr(P)/m·I_m;   P̃ = γP + (1 − γ)L;   P ← sym(m·P̃/tr(P̃))
    R = (1/m)·Gᵀ P⁻¹ G + μ·tr(Q)/n·I_n;   Q̃ = γQ + (1 − γ)R;   Q ← sym(n·Q̃/tr(Q̃))   (Gauss–Seidel: the new P)
    G̃ = P^(−1/2) G Q^(−1/2);   M ← βM + (1 − β)G̃            momentum in the whitened space
    W ← W − lr·P^(−1/2) msign(M) Q^(−1/2)

It solves min ⟨G, ΔW⟩ s.t. ‖P^(1/2) ΔW Q^(1/2)‖₂ ≤ lr (the Fisher-structured LMO); P = Q = I is Muon with EMA
momentum. The trace normalization fixes the scale ambiguity between P and Q; μ damps both.

The factor updates are computed on G/c and with P̃, Q̃ divided by c², c = max(max|G|, 1): the trace normalization
makes that exact (P is the same), c = 1 leaves the arithmetic as written, and a huge gradient (entries ~1e30, whose
Gram matrix overflows fp32) no longer turns P into NaN.

The inverse square roots are (P + εI)^(−1/2) and (Q + εI)^(−1/2) with ε = root_eps = 1e-6 (P and Q have traces m
and n, so ε is relative): the damping μ·tr(P)/m is absolute, and against a huge gradient it vanishes, P loses rank
to working precision and P^(−1/2) would be infinite; with ε the root stays below 1e3. ε changes the roots by about
ε/λ_min relative (1e-6 for a P near I).

Choices of this spec (the summaries give none): defaults lr = 0.02, β = 0.95, γ = 0.95, μ = 1e-3; inverses by
`solve`, inverse square roots by `inv_root` (eigendecomposition, or `root_method = "newton"`), recomputed every
`root_every` steps (1 = the algorithm as stated; larger amortizes them as Shampoo does, using the stale roots in
between); the factors and their roots computed and stored in fp32 whatever the parameter's dtype (a bf16 model's
Gram matrices lose too much in bf16); msign by Newton–Schulz (keller, fp32). Matrices only.
"""

def sym(x):
    return 0.5 * (x + x.T)

optimizer fismo(lr = 0.02 in [0, inf), momentum = 0.95 in [0, 1], gamma = 0.95 in [0, 1], damping = 1e-3 in [0, inf),
                weight_decay = 0.0 in [0, inf), root_eps = 1e-6 in [0, inf),
                static ns_steps = 5, static ns_dtype = "fp32", static method = one_of("ns", "svd"),
                static root_method = one_of("eigh", "newton"), static root_every = 1 in [1, inf)):
    for matrix W:
        state P: fp32 = eye(W @ W.T)
        state Q: fp32 = eye(W.T @ W)
        state P_root: fp32 = eye(W @ W.T)
        state Q_root: fp32 = eye(W.T @ W)
        state momentum_buffer = zeros_like(W)
        let g32 = cast(grad, "fp32")
        let c = max(amax(abs(g32)), 1)
        let g = g32 / c
        let left = g @ solve(Q, g.T) / cols(W) + damping * trace(P) / rows(W) / (c * c) * eye(P)
        let p_tilde = gamma / (c * c) * P + (1 - gamma) * left
        P = sym(rows(W) * p_tilde / trace(p_tilde))
        let right = g.T @ solve(P, g) / rows(W) + damping * trace(Q) / cols(W) / (c * c) * eye(Q)
        let q_tilde = gamma / (c * c) * Q + (1 - gamma) * right
        Q = sym(cols(W) * q_tilde / trace(q_tilde))
        every root_every:
            P_root = inv_root(P, root_eps, p = 2, method = root_method)
            Q_root = inv_root(Q, root_eps, p = 2, method = root_method)
        momentum_buffer = lerp(momentum_buffer, P_root @ grad @ Q_root, 1 - momentum)
        let o = msign(momentum_buffer, steps = ns_steps, dtype = ns_dtype, method = method)
        W = W * (1 - lr * weight_decay) - lr * P_root @ o @ Q_root
