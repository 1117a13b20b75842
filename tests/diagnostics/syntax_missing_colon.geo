# A rule header must end with `:`.
optimizer colonless(lr = 0.1):
    for matrix W   # error[GEO0001]: ends with `:`
        W = W - lr * grad
