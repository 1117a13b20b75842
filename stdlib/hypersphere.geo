"""Optimization on spheres: nGPT's unit-norm rows, and Hyperball's fixed-norm weights and updates — each as a
retraction step composed after a direction step (Adam's or Muon's), so that the direction and the geometry are
separate, stateful transforms of one chain (`∘`: the direction step hands the retraction its `grad`).

Hypersphere (nGPT): Loshchilov, Hsieh, Sun, Ginsburg, "nGPT: Normalized Transformer with Representation Learning
on the Hypersphere" (arXiv 2410.01131). Every matrix is kept with unit-norm rows (the vectors along the embedding
dimension): after the base optimizer's step (without weight decay) each row is normalized again,

    W ← normalize_rows(W − lr·U)                  U: Adam's or Muon's direction

Hyperball: Wen, Dang, Lyu, Ma, Liang, "Fantastic Pretraining Optimizers and Where to Find Them II: Hyperball
Optimization" (arXiv 2606.16899), from its abstract and the authors' note (no code seen). The weight matrix keeps
its initial Frobenius norm R and every update has length lr·R, replacing weight decay:

    W ← R·normalize(W − lr·R·normalize(U))        normalize(X) = X/‖X‖_F;  R = ‖W₀‖_F (a state)

    hypersphere        sphere_retract ∘ adam_direction      (nGPT, Adam)
    hypersphere_muon   sphere_retract ∘ muon_direction      (nGPT's rows, Muon's direction)
    hyperball          ball_retract ∘ adam_direction        (AdamH)
    hyperball_muon     ball_retract ∘ muon_direction        (MuonH)

Departures: nGPT normalizes a matrix along its embedding dimension, which is the rows of some matrices and the
columns of others (`axis = -2` normalizes columns); its learnable scaling factors are ordinary vector parameters
(route them to AdamW). Matrices only; the directions are muon.geo's and adamw.geo's without weight decay.
"""

def normalize(x):
    return x / max(sqrt(sum(x * x)), 1e-30)

step adam_direction(matrix W; betas = (0.9, 0.999) in [0, 1), eps = 1e-8 in [0, inf)):
    """Adam's bias-corrected direction m̂/(sqrt(v̂) + ε), handed on as `grad`."""
    state exp_avg = zeros_like(W)
    state exp_avg_sq = zeros_like(W)
    exp_avg = lerp(exp_avg, grad, 1 - betas[0])
    exp_avg_sq = exp_avg_sq * betas[1] + (1 - betas[1]) * grad * grad
    grad = exp_avg / (1 - betas[0] ^ t) / (sqrt(exp_avg_sq) / sqrt(1 - betas[1] ^ t) + eps)

step muon_direction(matrix W; momentum = 0.95 in [0, 1], static nesterov = true, static ns_steps = 5, static ns_dtype = "bf16"):
    """Muon's direction msign(M) with its shape factor sqrt(max(1, m/n)), handed on as `grad`."""
    state momentum_buffer = zeros_like(W)
    momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
    let u = lerp(grad, momentum_buffer, momentum) if nesterov else momentum_buffer
    grad = sqrt(max(1, rows(W) / cols(W))) * msign(u, steps = ns_steps, dtype = ns_dtype)

step sphere_retract(matrix W; lr = 1e-3 in [0, inf), static axis = one_of(-1, -2)):
    """nGPT's retraction: each row (axis −1) or column (axis −2) back to unit norm after the step."""
    let moved = W - lr * grad
    W = moved / max(sqrt(sum(moved * moved, axis = axis)), 1e-30)

step ball_retract(matrix W; lr = 1e-3 in [0, inf)):
    """Hyperball: an update of Frobenius length lr·R, then back to the sphere of the initial radius R."""
    state radius = sqrt(sum(W * W))
    W = radius * normalize(W - lr * radius * normalize(grad))

optimizer hypersphere = sphere_retract ∘ adam_direction

optimizer hypersphere_muon = sphere_retract(lr = 0.02) ∘ muon_direction

optimizer hyperball = ball_retract ∘ adam_direction

optimizer hyperball_muon = ball_retract(lr = 0.02) ∘ muon_direction
