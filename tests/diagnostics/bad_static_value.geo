# Static arguments with values the operator does not accept.
optimizer statics(lr = 0.1):
    for matrix W:
        state buf: fp8 = zeros_like(W)   # error[GEO0206]: unknown storage dtype `fp8`
        let o = msign(grad, steps = 500)   # error[GEO0206]: `steps` must be a static integer
        let p = msign(grad, coeffs = "kellr")   # error[GEO0206]: unknown coefficient schedule
        let e = (0.9, 0.999)[2]   # error[GEO0206]: out of range
        W = W - lr * o
