# `.T` is the only attribute.
optimizer attribute(lr = 0.1):
    for matrix W:
        let m = rows(W) * W.shape   # error[GEO0105]: `.T` (transpose) is the only attribute
        W = W - lr * grad.T.T
