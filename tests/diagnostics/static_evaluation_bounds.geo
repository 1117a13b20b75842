# Static evaluation is bounded: no string or tuple longer than 100 000, no complex numbers.
optimizer huge(lr = 0.1, static k = "a" * 1000000000 == "b"):   # error[GEO0207]: would hold 1,000,000,000 characters
    for matrix W:
        W = W - lr * grad

optimizer many(lr = 0.1, static k = ((1, 2) * 1000000000)[0]):   # error[GEO0207]: would hold 2,000,000,000 items
    for matrix W:
        W = W - lr * grad

optimizer root(lr = 0.1, static k = (-1) ^ 0.5):   # error[GEO0207]: not a real number
    for matrix W:
        W = W - lr * grad

optimizer cube(lr = 0.1, static k = (-8.0) ^ (1 / 3)):   # error[GEO0207]: not a real number
    for matrix W:
        W = W - lr * grad

optimizer corrected(lr = 0.1, static k = bias_correction(-2, 0.5)):   # error[GEO0207]: not a real number
    for matrix W:
        W = W - lr * grad
