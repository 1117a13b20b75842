"""SAGE, Sign-Adaptive GradiEnt: Lion's sign-momentum direction, scaled by an O(d) adaptive damper bounded by 1.

Lee, Kim, "SAGE: Sign-Adaptive Gradient for Memory-Efficient LLM Optimization" (arXiv 2604.07663; code
github.com/naubull2/SAGE-optimizer). The damper tames high-variance dimensions (embeddings: rare tokens' sparse,
spiky gradients) with one EMA of a gradient-magnitude statistic, O(d) for a V × d matrix:

    W ← W·(1 − lr·λ)
    s = mean over rows of |G| (one value per column) for a matrix;  |G| elementwise otherwise
    S ← β₂S + (1 − β₂)s;  Ŝ = S/(1 − β₂ᵗ)
    H = min(RMS(Ŝ)/(Ŝ + ε), RMS(s)/(s + ε), 1)            form = "paper"
    H = min(RMS(Ŝ)/(Ŝ + ε), 1)                             form = "code" (src/optimizers/sage.py, which its
                                                            docstring calls experimentation code)
    W ← W − lr·sign(β₁m + (1 − β₁)G) ⊙ H;   m ← β₂m + (1 − β₂)G

Ranges: β₁ and β₂ in [0, 1) — Ŝ divides by 1 − β₂ᵗ, and one range holds for both numbers of `betas`.

One step for parameters of every rank: the statistic's shape is chosen by a static `if ndim(W) == 2`, so the rule
is checked, and compiled, once per rank (docs/language.md, "Static values from shapes").

Source of the paper form: an independent summary of the paper's equations (we have not read the paper itself);
the code form follows the released file. The paper pairs SAGE (embeddings) with SinkGD (other matrices) and AdamW
(vectors); this spec is SAGE alone, for any parameter.
"""

optimizer sage(lr = 1e-3 in [0, inf), betas = (0.9, 0.99) in [0, 1), eps = 1e-8 in [0, inf), weight_decay = 0.01 in [0, inf),
               static form = one_of("paper", "code")):
    for tensor W:
        state exp_avg = zeros_like(W)
        state scale_avg = zeros_like(mean(W, axis = -2)) if ndim(W) == 2 else zeros_like(W)
        W = W * (1 - lr * weight_decay)
        let s = mean(abs(grad), axis = -2) if ndim(W) == 2 else abs(grad)
        scale_avg = scale_avg * betas[1] + (1 - betas[1]) * s
        let s_hat = scale_avg / (1 - betas[1] ^ t)
        let damper = min(sqrt(mean(s_hat * s_hat)) / (s_hat + eps), 1)
        if form == "paper":
            damper = min(damper, sqrt(mean(s * s)) / (s + eps))
        W = W - lr * sign(exp_avg * betas[0] + (1 - betas[0]) * grad) * damper
        exp_avg = exp_avg * betas[1] + (1 - betas[1]) * grad
