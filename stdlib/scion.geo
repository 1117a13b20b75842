"""Scion: constrained (Frank–Wolfe) or unconstrained steepest descent with an LMO chosen per layer role
(Pethick, Xie, Antonakopoulos, Zhu, Silveti-Falls, Cevher, "Training Deep Learning Models with
Norm-Constrained LMOs", arXiv 2502.07529; code github.com/LIONS-EPFL/scion, scion.py).

    m ← (1 − α)·m + α·g                    (Scion's `momentum` argument is α = 1 − β)
    d ← ρ·LMO(m)                            the layer's norm ball of radius ρ (Scion's `scale`)
    W ← (1 − lr)·W − lr·d   (constrained, the default as in scion.py: a Frank–Wolfe convex combination,
                             so W stays in the ρ-ball once inside it)
    W ← W − lr·d            (unconstrained = false: scion.py's `unconstrained=True`)

Layer map (scion.py's norms; the nanoGPT example's groups):
    embedding   ColNorm with transpose=True: an nn.Embedding weight is (vocab × d), so each TOKEN's vector
                is normalized to unit RMS, √d·g_{i:}/‖g_{i:}‖₂ (a token with a zero gradient stays zero)
    hidden      Spectral: √(d_out/d_in)·NS5(m), Keller's 5-step Newton–Schulz in bf16 as scion.py's
                `zeropower_via_newtonschulz5` (its output singular values lie in ≈ [0.68, 1.13], not at 1);
                (`ns_dtype = "fp32"` computes it in fp32); `spectral_method = "svd"` takes the exact polar
                factor U Vᵀ instead (the paper's LMO)
    head        Sign: sign(m)/d_in
    vectors     BiasRMS: m/RMS(m)
`colnorm` without `transpose` normalizes columns, √d_out·g_{:j}/‖g_{:j}‖₂ (scion.py's ColNorm for an input
nn.Linear, whose weight is d_out × d_in).

Departures from scion.py: its ColNorm and BiasRMS divide by (RMS + 1e-8), ours by RMS with 0/0 = 0 (a zero
row, column or vector stays zero); its NS normalizes by ‖X‖_F + 1e-7, ours by max(‖X‖_F, 1e-7), and returns
the update in the parameter's dtype where scion.py keeps it in bf16; the radii ρ are our defaults after the
repository's nanoGPT example (1, 3, 10, and 1 for vectors; Scion tunes them per model; that example also takes
max(1, √(d_out/d_in)) for hidden layers where we keep Spectral's default √(d_out/d_in)); the momentum default
0.1 is the README's recommendation (scion.py's own default, 1.0, is no momentum); Scion's norm-matched
weight initialization (`Scion.init`) is left to the user.
"""

def scion_lmo(g, norm, transpose, spectral_method, ns_steps, ns_dtype):
    let d = lmo(g, "rms")
    if norm == "spectral":
        if spectral_method == "ns":
            d = scale_factor(g, "modula") * msign(g, 1e-7, steps = ns_steps, coeffs = "keller", dtype = ns_dtype)
        else:
            d = lmo(g, "rms_rms")
    elif norm == "colnorm":
        if transpose:
            d = sqrt(cols(g)) * lmo(g, "max_row_l2")      # ColNorm of gᵀ, transposed back: unit-RMS rows
        else:
            d = scale_factor(g, "scion_colnorm") * lmo(g, "max_col_l2")
    elif norm == "sign":
        d = scale_factor(g, "scion_sign") * sign(g)
    return d

step scion_step(W; lr = 1e-3 in [0, inf), momentum = 0.1 in [0, 1], radius = 1.0 in [0, inf),
                static norm = one_of("spectral", "colnorm", "sign", "bias_rms"), static transpose = false,
                static spectral_method = one_of("ns", "svd"), static ns_steps = 5, static ns_dtype = "bf16",
                static constrained = true):
    state m = zeros_like(W)
    m = lerp(m, grad, momentum)
    let d = radius * scion_lmo(m, norm, transpose, spectral_method, ns_steps, ns_dtype)
    W = (1 - lr) * W - lr * d if constrained else W - lr * d

optimizer scion:
    for embedding matrix W = scion_step(norm = "colnorm", transpose = true, radius = 1.0)
    for head matrix W = scion_step(norm = "sign", radius = 10.0)
    for matrix W = scion_step(norm = "spectral", radius = 3.0)
    for tensor p = scion_step(norm = "bias_rms", radius = 1.0)
