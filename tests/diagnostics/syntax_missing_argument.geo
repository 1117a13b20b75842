# A hole in an argument list.
optimizer holey(lr = 0.1, momentum = 0.9):
    for matrix W:
        state m = zeros_like(W)
        m = lerp(m, , grad)   # error[GEO0001]: expected an expression, found `,`
        W = W - lr * m
