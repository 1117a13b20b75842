# Operators and functions are called, not used as values.
def half(x):
    return 0.5 * x

optimizer uncalled(lr = 0.1):
    for matrix W:
        let m = rows   # error[GEO0101]: is an operator; call it
        let h = half   # error[GEO0101]: is a function; call it
        W = W - lr * half(grad)
