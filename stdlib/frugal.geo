"""FRUGAL: the gradient split into a low-dimensional subspace, where a state-full optimizer (AdamW) runs, and its
complement, where a state-free one (signSGD) does; the subspace is refreshed every T steps.

Zmushko, Beznosikov, Takáč, Horváth, "FRUGAL: Memory-Efficient Optimization by Reducing State Overhead for
Scalable Training" (arXiv 2412.07077); as in the released code (frugal/proj_optimizer_templates.py, adamw.py and
galore_projector.py, read in a fork of the authors' repository):

    every T steps (T = update_gap, at steps 1, T + 1, …):
        P ← the subspace (rows of P: r orthonormal vectors of Rⁿ, r = round(density·n))
            "svd": the top r right singular vectors of G (GaLore's projector)
            "random": a uniformly random orthonormal r-frame (QR of a Gaussian matrix)
        m, v ← 0, and Adam's step count restarts                    (reset_statistics = True)
    W ← W·(1 − lr·λ)
    S = G Pᵀ                                                          state-full part, m × r
    m ← β₁m + (1 − β₁)S;  v ← β₂v + (1 − β₂)S²;  k = steps since the refresh
    W ← W − (lr/(1 − β₁ᵏ))·(m/(sqrt(v)/sqrt(1 − β₂ᵏ) + ε)) P − lr·ρ·sign(G − S P)

`frugal_columns` is the code's coordinate projector ("columns": r of the n columns, chosen uniformly at random,
from the optimizer's generator); its Adam states are kept full-size and masked (the same arithmetic — Adam is
elementwise — without the memory saving).

Ranges: β₁, β₂ in [0, 1) as torch.optim.AdamW (the bias corrections divide by 1 − βᵏ); density, the fraction of
columns in the subspace, in [0, 1]; update_gap a positive period; lr, λ, ε and ρ non-negative.

Departures: the subspace is always on the right (columns) side; the code's "std" side projects a wide matrix
(m < n) from the left instead. r = max(1, ⌊density·n + 1/2⌋) (the code: Python's round, which rounds halves to
even). Matrices only (the code's "regular" parameters take plain AdamW: a route of its own, as in `muon_adamw`).
"""

def frugal_rank(density, n):
    return max(1, floor(density * n + 0.5))

optimizer frugal(lr = 1e-3 in [0, inf), betas = (0.9, 0.999) in [0, 1), eps = 1e-8 in [0, inf),
                 weight_decay = 0.0 in [0, inf), free_lr_scale = 1.0 in [0, inf),
                 static density = 0.25 in [0, 1], static update_gap = 200 in [1, inf), static projection = one_of("svd", "random")):
    for matrix W:
        state basis = right_init(W, rank = frugal_rank(density, cols(W)))
        state exp_avg = zeros_like(W @ right_init(W, rank = frugal_rank(density, cols(W))).T)
        state exp_avg_sq = zeros_like(W @ right_init(W, rank = frugal_rank(density, cols(W))).T)
        every update_gap:
            if projection == "svd":
                basis = right_init(grad, rank = frugal_rank(density, cols(W)), method = "svd")
            else:
                basis = qr(normal(basis.T))[0].T
            exp_avg = zeros_like(exp_avg)
            exp_avg_sq = zeros_like(exp_avg_sq)
        let k = mod(t - 1, update_gap) + 1
        W = W * (1 - lr * weight_decay)
        let s = grad @ basis.T
        exp_avg = exp_avg * betas[0] + (1 - betas[0]) * s
        exp_avg_sq = exp_avg_sq * betas[1] + (1 - betas[1]) * s * s
        let denom = sqrt(exp_avg_sq) / sqrt(1 - betas[1] ^ k) + eps
        W = W - lr / (1 - betas[0] ^ k) * (exp_avg / denom) @ basis - lr * free_lr_scale * sign(grad - s @ basis)

optimizer frugal_columns(lr = 1e-3 in [0, inf), betas = (0.9, 0.999) in [0, 1), eps = 1e-8 in [0, inf),
                         weight_decay = 0.0 in [0, inf), free_lr_scale = 1.0 in [0, inf),
                         static density = 0.25 in [0, 1], static update_gap = 200 in [1, inf)):
    for matrix W:
        state columns = zeros_like(sum(W, axis = -2))
        state exp_avg = zeros_like(W)
        state exp_avg_sq = zeros_like(W)
        every update_gap:
            columns = subset(W, frugal_rank(density, cols(W)), axis = -1)
            exp_avg = zeros_like(exp_avg)
            exp_avg_sq = zeros_like(exp_avg_sq)
        let k = mod(t - 1, update_gap) + 1
        W = W * (1 - lr * weight_decay)
        let s = grad * columns
        exp_avg = exp_avg * betas[0] + (1 - betas[0]) * s
        exp_avg_sq = exp_avg_sq * betas[1] + (1 - betas[1]) * s * s
        let denom = sqrt(exp_avg_sq) / sqrt(1 - betas[1] ^ k) + eps
        W = W - lr / (1 - betas[0] ^ k) * exp_avg / denom - lr * free_lr_scale * sign(grad - s)
