# A `when` condition chooses which compiled step runs, before any kernel: it must be known on the host.
optimizer gated(lr = 0.1, static k = 0):
    for tensor W:
        when rms(grad) > 1:   # error[GEO0307]: must be known on the host
            W = W - lr * grad
        every rms(W):   # error[GEO0307]: an `every` period must be known on the host
            W = 0.5 * W
        every k:   # error[GEO0308]: a positive integer period
            W = W - lr * grad
        every 2.5:   # error[GEO0308]: found 2.5
            W = W - lr * grad
