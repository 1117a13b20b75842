# `in [lo, hi)` declares the values a number may take: the default must be one of them, and so must any
# default a composition or an optimizer's header gives it.
step clipped(W; lr = 0.1 in [0, 1), betas = (0.9, 0.999) in [0, 1)):
    W = W - lr * betas[0] * grad

optimizer below(lr = -0.1 in [0, inf)):   # error[GEO0306]: the default of `lr`, -0.1, is outside its range [0, inf)
    for tensor W:
        W = W - lr * grad

optimizer pair(lr = 0.1, betas = (0.9, 1.5) in [0, 1)):   # error[GEO0306]: `betas[1]`, 1.5
    for tensor W:
        W = W - lr * betas[0] * grad

optimizer backwards(lr = 0.1 in [1, 0)):   # error[GEO0306]: holds no value
    for tensor W:
        W = W - lr * grad

optimizer words(lr = 0.1, static mode = "fast" in [0, 1]):   # error[GEO0306]: a range bounds a number
    for tensor W:
        W = W - lr * grad

optimizer ends(lr = 0.1 in [0, "inf")):   # error[GEO0306]: the ends of a range are numbers
    for tensor W:
        W = W - lr * grad

optimizer composed = clipped(lr = 2.0)   # error[GEO0306]: `lr` takes values in [0, 1); found 2.0

optimizer header(lr = 5.0) = clipped   # error[GEO0306]: the default of `lr`, 5.0, is outside its range [0, 1)

optimizer ok(lr = 0.5) = clipped
