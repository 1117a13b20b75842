# A rule of any rank whose static `if` reads the rank is checked once per rank: a branch is type-checked
# against the ranks that take it (the `ndim(W) == 2` branch only as a matrix), and the other branch's error is
# reported for the ranks that reach it.
optimizer per_rank(lr = 0.1):
    for tensor W:
        let d = grad
        if ndim(W) == 2:
            d = msign(grad) + mean(grad, axis = -2)
        else:
            d = msign(grad)   # error[GEO0203]: found `vector[n]`
        W = W - lr * d
