"""Several independent mistakes: the checker reports every one of them, in source order."""

def normalize(x):
    return x / (rms(x) + epsilon)   # error[GEO0101]: unknown name `epsilon`

optimizer many(lr = 0.02, momentum = 0.95, steps = 5):
    for matrix W:
        state buf = zeros_like(W)
        buf = lerp(buf, grad, 1 - momentum)
        let u = lerp(buf, grad)   # error[GEO0201]
        let o = msign(buf, steps = steps)   # error[GEO0301]
        momentum = 0.9   # error[GEO0107]
        W = W - lr * normalize(o)
    for vector b:
        let d = sgn(grad)   # error[GEO0102]: did you mean `sign`?
        let o = msign(grad)   # error[GEO0203]
        repeat steps:   # error[GEO0301]
            b = b - lr * grad
        return b   # error[GEO0108]
