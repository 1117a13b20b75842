# A state's initial value is computed once, before the first step: it cannot read the step's values.
optimizer early(lr = 0.1):
    for matrix W:
        state m = zeros_like(W)
        let g2 = grad * grad
        state v = g2   # error[GEO0114]: cannot read `g2`
        state w = m   # error[GEO0114]: cannot read `m`
        state g = grad   # error[GEO0114]: cannot read `grad`
        state k = t * 2   # error[GEO0114]: cannot read `t`
        W = W - lr * grad
