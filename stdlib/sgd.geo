"""SGD with momentum, dampening, Nesterov and (coupled) weight decay, as torch.optim.SGD (torch 2.13).

    g ← ∇f + λ·W
    B ← g at the first step, else μ·B + (1 − τ)·g        (τ: dampening)
    d ← g + μ·B if nesterov else B                      (d = g when μ = 0)
    W ← W − lr·d
"""

optimizer sgd(lr = 1e-3 in [0, inf), momentum = 0.0 in [0, inf), dampening = 0.0, weight_decay = 0.0 in [0, inf),
              static nesterov = false):
    for tensor W:
        state momentum_buffer = zeros_like(W)
        let g = grad + weight_decay * W
        momentum_buffer = where(t == 1, g, momentum * momentum_buffer + (1 - dampening) * g)
        let direction = g + momentum * momentum_buffer if nesterov else momentum_buffer
        W = W - lr * where(momentum == 0, g, direction)
