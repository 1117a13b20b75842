# Two binary operators in a row: the second is not the start of an expression.
optimizer doubled(lr = 0.1):
    for matrix W:
        W = W +* lr * grad   # error[GEO0001]: expected an expression, found `*`
