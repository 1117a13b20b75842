"""The tutorial's spec with a slip: a misspelt operator (`geo check` says which, where, and what was meant)."""
use adamw

step spectral_lion(matrix W; lr = 0.02, betas = (0.9, 0.99), weight_decay = 0.0):
    state m = zeros_like(W)
    let c = lerp(m, grad, 1 - betas[0])
    W = W * (1 - lr * weight_decay) - lr * scale_factor(W, "muon") * msing(c, steps = 5)
    m = lerp(m, grad, 1 - betas[1])

optimizer my_optimizer:
    for hidden matrix W = spectral_lion
    for tensor p = adamw(lr = 3e-3, betas = (0.9, 0.95), eps = 1e-10, weight_decay = 0.0)
