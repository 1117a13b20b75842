# A trailing comma is allowed in an argument list, so `lerp(m, grad, )` is a call with two arguments.
optimizer trailing(lr = 0.1, momentum = 0.9):
    for matrix W:
        state m = zeros_like(W)
        m = lerp(m, grad, )   # error[GEO0201]: `lerp` is missing the argument `w`
        W = W - lr * m
