# Local names declared twice, or hiding what a step is given.
optimizer locals(lr = 0.1):
    for matrix W:
        state buf = zeros_like(W)
        state buf = zeros_like(W)   # error[GEO0104]: `buf` is already defined
        let u = grad
        let u = 2 * grad   # error[GEO0104]: `u` is already defined in this block
        let W = grad   # error[GEO0104]: would hide the parameter `W`
        let grad = u   # error[GEO0104]: would hide the gradient `grad`
        let lr = 0.5   # error[GEO0104]: would hide the runtime hyperparameter `lr`
        W = W - lr * u
