# Too few and too many arguments, for operators and for user functions.
def scale(x, by):
    return by * x

optimizer counts(lr = 0.1):
    for matrix W:
        let a = lerp(W)   # error[GEO0201]: missing the arguments `b` and `w`
        let b = lerp(W, grad, 0.5, 0.5)   # error[GEO0201]: takes at most 3 arguments, found 4
        let c = scale(W)   # error[GEO0201]: missing the argument `by`
        let d = sqrt()   # error[GEO0201]
        W = W - lr * grad
