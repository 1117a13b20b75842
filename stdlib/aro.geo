"""ARO, adaptively rotated optimization: normed steepest descent in a rotated frame, with the rotation chosen to make
the base step as steep as possible.

Gong, Zazo, Luo, Wang, Hensman, Ma, "ARO: A New Lens On Matrix Optimization For Large Models" (arXiv 2602.09006),
as an independent summary of the paper states it (we have not seen released code). Every matrix optimizer is
ΔW = −η·R f(RᵀM) for a rotation R ∈ SO(m) and a base map f (SOAP: R = eigenvectors of GGᵀ, f = Adam; Muon: the
same R, f = row normalization). ARO picks R by maximizing the instantaneous descent ⟨M, R f(RᵀM)⟩, decoupled
through the previous rotation into an orthogonal Procrustes problem, solved by QR (more robust to noise than the
polar factor):

    M ← lerp(M, G, 1 − β)
    R ← QR(M f(R_prevᵀ M)ᵀ)[Q]                   every `rotate_every` steps (1: every step, as the paper)
    D = R f(RᵀM);  W ← W·(1 − lr·λ) − lr·0.2·sqrt(mn)·D/‖D‖_F      (update RMS 0.2, matched to AdamW's)

with f = SinkGD (Scetbon et al., arXiv 2502.06742): `sink_steps` rounds of X ← sqrt(n)·X/‖rows‖, then
X ← sqrt(m)·X/‖columns‖ — stateless, and not rotation-equivariant (else the rotation could not help).

The rotation acts on the smaller side (a matrix is processed in its wide orientation, rows ≤ cols, and a tall one
transposed back): on the larger side M f(·)ᵀ has rank ≤ min(m, n), the QR's trailing columns are rounding noise,
and SinkGD normalizes the rows of RᵀM that should be zero up to full size (measured: the update changed by 17 % of
its size between two float64 runs that differ by rounding). The paper's transformer layout rotates the residual
dimension, which is the smaller side of the usual layers. Which side is a static choice by shape, so the rule is
compiled per parameter shape.

Departures: the QR is Householder with diag(R) ≥ 0 (`qr`), where the paper uses a shifted Cholesky QR (the same Q
for a full-rank input); a row or column of norm below 1e-12 is left unscaled instead of dividing by zero; one
rotation per matrix (the paper's chain-coupled sharing across a transformer layer is not expressed). Matrices only.
"""

def sink(x, steps):
    """SinkGD's alternating row and column normalization (each row to norm sqrt(n), then each column to sqrt(m))."""
    let y = x
    repeat steps:
        y = sqrt(cols(y)) * y / max(sqrt(sum(y * y, axis = -1)), 1e-12)
        y = sqrt(rows(y)) * y / max(sqrt(sum(y * y, axis = -2)), 1e-12)
    return y

optimizer aro(lr = 0.02 in [0, inf), momentum = 0.95 in [0, 1], weight_decay = 0.0 in [0, inf), static sink_steps = 5,
              static rotate_every = 1 in [1, inf)):
    for matrix W:
        state momentum_buffer = zeros_like(W)
        state rotation = eye(W @ W.T) if rows(W) <= cols(W) else eye(W.T @ W)
        momentum_buffer = lerp(momentum_buffer, grad, 1 - momentum)
        let wide = momentum_buffer if rows(W) <= cols(W) else momentum_buffer.T
        every rotate_every:
            rotation = qr(wide @ sink(rotation.T @ wide, sink_steps).T)[0]
        let d = rotation @ sink(rotation.T @ wide, sink_steps)
        let step = d if rows(W) <= cols(W) else d.T
        W = W * (1 - lr * weight_decay) - lr * 0.2 * sqrt(numel(W)) * step / max(sqrt(sum(step * step)), 1e-30)
