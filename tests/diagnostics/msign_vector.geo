# msign orthogonalizes matrices; a vector has no singular values to flatten.
optimizer vecmuon(lr = 0.02, momentum = 0.95):
    for vector b:
        state buf = zeros_like(b)
        buf = lerp(buf, grad, 1 - momentum)
        let o = msign(buf)   # error[GEO0203]
        b = b - lr * o
