# C's conditional operator is not geo's.
optimizer ternary(lr = 0.1, static nesterov = true):
    for matrix W:
        let u = nesterov ? grad : W   # error[GEO0002]: `a if cond else b`
        W = W - lr * u
