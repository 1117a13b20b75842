"""ROOT, the Robust Orthogonalized Optimizer: Newton–Schulz coefficients fitted per matrix shape, and outliers of
the momentum removed by a proximal (soft-thresholding) step before orthogonalization.

He, Han, Zhou, Chen, Liu, Chen, Wang, "ROOT: Robust Orthogonalized Optimizer for Neural Network Training"
(arXiv 2511.20626); as in the authors' released training script (Huawei Noah's Ark; class ROOT and root5):

    B ← μ·B + G;  M = G + μ·B if nesterov else B                  (heavy-ball momentum, not an EMA)
    τ = quantile(|M|, 0.9) + 1e-9
    O = sign(M)·max(|M| − τ, 0)        the outliers: the proximal operator of τ‖·‖₁ (soft-thresholding)
    U = NS₅(M − O; a, b, c)             Newton–Schulz on the robust part, (a, b, c) chosen by the shape
    W ← W·(1 − lr·λ) − lr·0.2·sqrt(max(m, n))·U

The coefficients are the code's table, keyed by (min(m, n), max(m, n)); other shapes use Muon's (3.4445,
−4.7750, 2.0315), as the code's fallback does. `root_coeffs` reads `rows(W)` and `cols(W)` where a static value is
needed, so the rule is compiled once per parameter shape (docs/language.md, "Static values from shapes").

Departures: Newton–Schulz normalizes by max(‖X‖_F, eps), the code by ‖X‖_F + 1e-7; it computes in the
parameter's dtype as the code does (`ns_dtype = "param"`); matrices only (the code's AdamW for the rest is a
route of its own, as in `muon_adamw`). The paper fits coefficients for more shapes than the code's table lists;
we have only the table.
"""

def root_coeffs(lo, hi):
    """The released table, (min(m, n), max(m, n)) → one (a, b, c) used at every step."""
    return ((3.4916, -4.8224, 2.1095),) if lo == 2048 and hi == 2048 else \
        ((3.1943, -3.8221, 1.5322),) if lo == 2048 and hi == 16384 else \
        ((3.4509, -4.5790, 1.9325),) if lo == 2048 and hi == 3072 else \
        ((2.9794, -3.6674, 1.6207),) if lo == 2048 and hi == 8192 else \
        ((3.4445, -4.7750, 2.0315),)

optimizer root(lr = 1e-3 in [0, inf), momentum = 0.95 in [0, 1], weight_decay = 0.1 in [0, inf),
               outlier_quantile = 0.9 in [0, 1],
               static nesterov = true, static ns_steps = 5, static ns_dtype = "param",
               static method = one_of("ns", "svd")):
    for matrix W:
        state momentum_buffer = zeros_like(W)
        momentum_buffer = momentum * momentum_buffer + grad
        let m = grad + momentum * momentum_buffer if nesterov else momentum_buffer
        let threshold = quantile(abs(m), outlier_quantile) + 1e-9
        let outliers = sign(m) * max(abs(m) - threshold, 0)
        let coeffs = root_coeffs(min(rows(W), cols(W)), max(rows(W), cols(W)))
        let o = msign(m - outliers, steps = ns_steps, coeffs = coeffs, dtype = ns_dtype, method = method)
        W = W * (1 - lr * weight_decay) - lr * 0.2 * sqrt(max(rows(W), cols(W))) * o
