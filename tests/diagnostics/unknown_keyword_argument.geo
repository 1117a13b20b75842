# Keyword arguments the operator does not have, or gives twice.
optimizer kwargs(lr = 0.1):
    for matrix W:
        let o = msign(grad, stepz = 3)   # error[GEO0103]: did you mean `steps`?
        let u = lerp(W, grad, w = 0.5, w = 0.6)   # error[GEO0103]: given twice
        let v = lerp(W, grad, 0.5, a = W)   # error[GEO0103]: argument `a` of `lerp` is given twice
        W = W - lr * o

optimizer meant(lr = 0.1, beta = 0.9):
    for tensor W:
        let m = lerp(W, grad, weight = 1 - beta)   # error[GEO0103]: did you mean `w`? (`lerp` still needs it)
        W = W - lr * m
