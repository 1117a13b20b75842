"""Scion: unconstrained or constrained (Frank–Wolfe) steepest descent with an LMO chosen per layer role
(Pethick, Xie, Erdogan, Latafat, Patrinos, Cevher, "Training Deep Learning Models with Norm-Constrained
LMOs", arXiv 2502.07529; code LIONS-EPFL/scion).

    m ← (1 − α)·m + α·g                    (Scion's `momentum` argument is α = 1 − β)
    d ← ρ·LMO(m)                            the layer's norm ball of radius ρ
    W ← W − lr·d            (unconstrained)
    W ← (1 − lr)·W − lr·d   (constrained: a Frank–Wolfe convex combination; W stays in the ρ-ball)

Layer map: embedding → ColNorm (√m·each column normalized), hidden matrices → Spectral (√(m/n)·UVᵀ,
the RMS→RMS LMO), head → Sign (sign(g)/n), vectors → BiasRMS (g/RMS(g)). The radii are our defaults
(Scion tunes them per model).
"""

def scion_lmo(g, norm):
    let d = lmo(g, "rms")
    if norm == "spectral":
        d = lmo(g, "rms_rms")
    elif norm == "colnorm":
        d = scale_factor(g, "scion_colnorm") * lmo(g, "max_col_l2")
    elif norm == "sign":
        d = scale_factor(g, "scion_sign") * sign(g)
    return d

step scion_step(W; lr = 1e-3 in [0, inf), momentum = 0.1 in [0, 1], radius = 1.0 in [0, inf),
                static norm = one_of("spectral", "colnorm", "sign", "bias_rms"), static constrained = false):
    state m = zeros_like(W)
    m = lerp(m, grad, momentum)
    let d = radius * scion_lmo(m, norm)
    W = (1 - lr) * W - lr * d if constrained else W - lr * d

optimizer scion:
    for embedding matrix W = scion_step(norm = "colnorm", radius = 1.0)
    for head matrix W = scion_step(norm = "sign", radius = 10.0)
    for matrix W = scion_step(norm = "spectral", radius = 3.0)
    for tensor p = scion_step(norm = "bias_rms", radius = 1.0)
