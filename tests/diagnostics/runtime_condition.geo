# `if` and `a if c else b` choose code when compiling; runtime choices use `where`.
optimizer choose(lr = 0.1, momentum = 0.9):
    for matrix W:
        if momentum > 0:   # error[GEO0301]: use `where(cond, a, b)`
            W = W - lr * grad
        let u = grad if lr > 0.01 else W   # error[GEO0301]
        let c = (lr, 1)   # error[GEO0301]: a tuple must be made of static values
        W = W - lr * u
