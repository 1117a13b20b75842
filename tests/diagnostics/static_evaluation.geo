# Static arithmetic is evaluated when the spec is checked; it can fail there.
optimizer folding(lr = 0.1, static steps = 4 / 0):   # error[GEO0207]: division by zero
    for matrix W:
        W = W - lr * grad
