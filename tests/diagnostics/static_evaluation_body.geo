# The same inside a body, with the names of the static values' kinds.
optimizer folding(lr = 0.1, static adjust = "original"):
    for matrix W:
        let s = adjust + 1   # error[GEO0207]: cannot be applied to `static str` and `static int`
        let big = 10 ^ 400   # error[GEO0207]: the result is too large
        W = W - lr * grad
