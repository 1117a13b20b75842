# A state slot lives as long as the optimizer: it is declared at the top of a step, not in a branch or a function.
def remember(x):
    state m = zeros_like(x)   # error[GEO0106]
    return x

optimizer nested(lr = 0.1, static warm = true):
    for matrix W:
        if warm:
            state buf = zeros_like(W)   # error[GEO0106]
        repeat 2:
            state acc = zeros_like(W)   # error[GEO0106]
        W = W - lr * remember(grad)
