# A function sees only its own parameters: the step count, the gradient and the step's other names are not
# in its scope (one definition serves every step that calls it); the diagnostic says so and how to pass them.
def debias(x, beta):
    return x / (1 - beta ^ t)   # error[GEO0101]: `t` is the step count in the step that calls `debias`

def scaled(x):
    return x * lr   # error[GEO0101]: pass it in: add `lr` to the parameters of `scaled` and to the call

def typo(value):
    return valeu * 2   # error[GEO0101]: did you mean `value`?

optimizer o(lr = 0.1, beta = 0.9):
    for tensor W:
        state m = zeros_like(W)
        m = lerp(m, grad, 1 - beta)
        W = W - lr * debias(m, beta) - scaled(grad) - typo(grad)
