# Assignment changes an existing name; new names come from `let` or `state`.
optimizer undeclared(lr = 0.1):
    for matrix W:
        u = grad   # error[GEO0101]: declare it with `let u = ...`
        W = W - lr * grad
