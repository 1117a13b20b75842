# `repeat` unrolls a whole number of times, and not too many.
optimizer loops(lr = 0.1, static n = 2.5):
    for matrix W:
        repeat n:   # error[GEO0305]: found 2.5
            W = W - lr * grad
        repeat -1:   # error[GEO0305]: found -1
            W = W - lr * grad
        repeat 1000:
            repeat 1000:   # error[GEO0305]: more than 10000 iterations
                W = W - lr * grad
