# Runtime hyperparameters are numbers; a bool or a string must be `static`.
optimizer flags(lr = 0.1, nesterov = true, adjust = "original"):   # error[GEO0302]: `nesterov` error[GEO0302]: `adjust`
    for matrix W:
        W = W - lr * grad
