# msign's iteration count is part of the compiled kernel: it must be static.
optimizer muonish(lr = 0.02, ns_steps = 5):
    for matrix W:
        W = W - lr * msign(grad, steps = ns_steps)   # error[GEO0301]: argument `steps` of `msign` must be static
