"""AuON and Hybrid-AuON: momentum with a cosh "brake" (arXiv 2509.24320; code ryyzn9/AuON).

A global scalar r = sqrt(mean(cosh(γ·X)²)) of the normalized update X = U/‖U‖_F slows large, peaked
updates; it reweights no entry (r ∈ [cosh(γ/√N), sqrt(1 + sinh²γ/N)], ≈ 1 for real layers: algorithms.md §3.3).

form = "code" (released code, commit bba2e82): W ← W − lr·U/(r + 1e-8), U the *unnormalized* Nesterov
momentum, γ = 1.5. form = "paper" (the PDF of 21 Sep 2025): W ← W − lr·X/(r + 1e-8) with γ = 1.
Hybrid-AuON first orthogonalizes U by Newton–Schulz (keller coefficients, in the parameter's dtype: the code
takes 5 steps, the paper one) on matrices; vectors skip that step.
"""

def frobenius(x):
    return sqrt(sum(x * x))

def cosh_brake(x, gamma, form):
    let X = x / (frobenius(x) + 1e-7)
    let r = sqrt(mean(square(cosh(gamma * X)))) if form == "code" else sqrt(mean(square(cosh(X))))
    return (x if form == "code" else X) / (r + 1e-8)

step auon_step(W; lr = 0.24 in [0, inf), momentum = 0.95 in [0, 1], weight_decay = 0.0 in [0, inf), gamma = 1.5 in [0, inf),
               static form = one_of("code", "paper")):
    state momentum_buffer = zeros_like(W)
    W = W * (1 - lr * weight_decay)
    momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
    W = W - lr * cosh_brake(lerp(grad, momentum_buffer, momentum), gamma, form)

step hybrid_auon_step(matrix W; lr = 0.24 in [0, inf), momentum = 0.95 in [0, 1], weight_decay = 0.0 in [0, inf),
                      gamma = 1.5 in [0, inf), static form = one_of("code", "paper"),
                      static ns_steps = 5):
    state momentum_buffer = zeros_like(W)
    W = W * (1 - lr * weight_decay)
    momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
    let o = msign(lerp(grad, momentum_buffer, momentum), steps = ns_steps, dtype = "param")
    W = W - lr * cosh_brake(o, gamma, form)

optimizer auon = auon_step

optimizer auon_paper = auon_step(form = "paper")
