# Names declared twice at the top level or in one header.
step descend(W; lr = 0.1):
    W = W - lr * grad

step descend(W; lr = 0.2):   # error[GEO0104]: `descend` is defined twice
    W = W - lr * grad

def lerp(a, b, w):   # error[GEO0104]: `lerp` is an operator
    return a + w * (b - a)

optimizer twice(lr = 0.1, lr = 0.2):   # error[GEO0104]: hyperparameter `lr` is declared twice
    for matrix W:
        W = W - lr * grad

optimizer builtin(lr = 0.1, t = 3):   # error[GEO0104]: `t` is a builtin
    for matrix W:
        W = W - lr * grad
