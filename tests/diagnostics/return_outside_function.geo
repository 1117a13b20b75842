# `return` ends a function; a step's result is the value assigned to its parameter.
def clipped(x):   # error[GEO0108]: function `clipped` ends without `return`
    let y = clamp(x, -1, 1)

optimizer returns(lr = 0.1):
    for matrix W:
        return W - lr * clipped(grad)   # error[GEO0108]: `return` outside a function
