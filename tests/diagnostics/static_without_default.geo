# A static hyperparameter selects the compiled code, so it needs a value when the spec is compiled.
optimizer undecided(lr = 0.1, static nesterov):   # error[GEO0303]
    for matrix W:
        W = W - lr * grad
