# Hyperparameters and the step count are read-only inside a step (`grad` may be transformed: see chain.geo).
optimizer readonly(lr = 0.1, static nesterov = true):
    for matrix W:
        lr = 0.5 * lr   # error[GEO0107]: cannot assign to the runtime hyperparameter `lr`
        nesterov = false   # error[GEO0107]: the static hyperparameter
        t = t + 1   # error[GEO0107]: the step count
        W = W - lr * grad
