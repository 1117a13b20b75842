"""Adaptive memory momentum: SGD whose momentum coefficient β is chosen online, each step, from a two-plane proximal
model of the objective.

Topollai, Choromanska, "Adaptive Memory Momentum via a Model-Based Framework for Deep Learning Optimization"
(arXiv 2510.04988). What we know of it: the objective is modelled by two planes, one from the gradient gₜ at the
current iterate and one from the memory dₜ (the accumulated descent direction); the proximal step on that model
gives a closed-form βₜ, and the momentum step becomes

    dₜ₊₁ = (βₜ + λ)/(1 + λ)·dₜ + (1 − βₜ)/(1 + λ)·gₜ,   xₜ₊₁ = xₜ − η·dₜ₊₁

(from an independent summary of the paper). We could not obtain the paper's closed form for βₜ.

RECONSTRUCTION — βₜ. This spec uses the proximal two-plane model whose planes both pass through the current point
(a step sees no loss values, so the memory plane's offset is not available):

    min_x max(⟨gₜ, x − xₜ⟩, ⟨dₜ, x − xₜ⟩) + ‖x − xₜ‖²/(2η)

whose solution steps along the least-norm point of the segment [gₜ, dₜ]: βₜ = clip(⟨gₜ, gₜ − dₜ⟩/‖gₜ − dₜ‖², 0, 1),
one β per parameter tensor (βₜ = 0 when gₜ = dₜ; computed on gₜ and dₜ divided by their largest entry, which
changes nothing but keeps huge gradients from overflowing the inner products). It keeps the memory where the new gradient agrees with it and
shortens the step where they disagree; λ (default 1) pulls the result towards the memory. The memory starts at
the first gradient (as torch.optim.SGD's buffer does). Expect it to differ from the paper's βₜ, which also uses
the planes' offsets; the equations above are what this spec computes, and what tests/stdlib checks.
"""

optimizer adaptive_memory(lr = 0.01 in [0, inf), lam = 1.0 in [0, inf), weight_decay = 0.0 in [0, inf)):
    for tensor W:
        state memory = zeros_like(W)
        let d = where(t == 1, grad, memory)
        let scale = max(max(amax(abs(grad)), amax(abs(d))), 1e-30)
        let g = grad / scale
        let gap = g - d / scale
        let gap_sq = sum(gap * gap)
        let beta = where(gap_sq > 0, clamp(sum(g * gap) / where(gap_sq > 0, gap_sq, 1), 0, 1), 0)
        memory = (beta + lam) / (1 + lam) * d + (1 - beta) / (1 + lam) * grad
        W = W * (1 - lr * weight_decay) - lr * memory
