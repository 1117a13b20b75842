# `=` where a comparison was meant.
optimizer compare(lr = 0.1, static nesterov = true):
    for matrix W:
        if nesterov = true:   # error[GEO0001]: compare with `==`
            W = W - lr * grad
