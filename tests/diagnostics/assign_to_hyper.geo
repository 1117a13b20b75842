# Hyperparameters, the gradient and the step count are read-only inside a step.
optimizer readonly(lr = 0.1, static nesterov = true):
    for matrix W:
        lr = 0.5 * lr   # error[GEO0107]: cannot assign to the runtime hyperparameter `lr`
        nesterov = false   # error[GEO0107]: the static hyperparameter
        grad = grad / rms(grad)   # error[GEO0107]: the gradient
        t = t + 1   # error[GEO0107]: the step count
        W = W - lr * grad
