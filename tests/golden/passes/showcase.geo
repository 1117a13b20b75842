"""One spec that gives every optimization pass something to do (tests/golden/test_passes.py)."""
optimizer showcase(lr = 0.1, wd = 0.01, static beta = 0.9):
    for matrix W:
        state m = zeros_like(W)
        m = ema(m, grad, beta)
        let unused = sqrt(abs(grad)) * 3
        let o = msign(2 * m)
        let a = W * (1 - lr * wd)
        W = a * 1 - lr * o - lr * (grad * grad) * 0.5
