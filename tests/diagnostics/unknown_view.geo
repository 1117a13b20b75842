# Matrix views come from a registry too, and check their arguments.
optimizer views(lr = 0.1):
    for matrix W as head(4):   # error[GEO0113]: did you mean `heads`?
        W = W - lr * grad
    for matrix W as heads(0):   # error[GEO0113]: a static positive integer
        W = W - lr * grad
    for matrix W as heads(2, 3):   # error[GEO0201]: takes 1 argument
        W = W - lr * grad
    for vector b as matrix:   # error[GEO0113]: needs parameters of rank ≥ 2
        b = b - lr * grad
