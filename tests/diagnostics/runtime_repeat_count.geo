# A runtime hyperparameter (changeable by a scheduler) cannot decide how often a loop unrolls.
optimizer unrolled(lr = 0.1, steps = 5):
    for matrix W:
        let u = grad
        repeat steps:   # error[GEO0301]: a `repeat` count must be static
            u = 1.5 * u - 0.5 * u @ u.T @ u
        W = W - lr * u
