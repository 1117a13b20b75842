# `one_of(...)` lists a static's values; anything else is an error naming them.
optimizer a(lr = 0.1, static mode = one_of("fast", "exact")):
    for tensor W:
        W = W - lr * grad if mode == "fast" else W - lr * sign(grad)

optimizer b = a(mode = "exakt")   # error[GEO0304]: `mode` is one of 'fast', 'exact'; found 'exakt'

optimizer c(lr = one_of(0.1, 0.2)):   # error[GEO0304]: not static
    for tensor W:
        W = W - lr * grad

optimizer d(lr = 0.1, static k = one_of(1)):   # error[GEO0304]: at least two values
    for tensor W:
        W = W - lr * grad

optimizer e(lr = 0.1, static k = one_of(1, "two")):   # error[GEO0304]: different kinds
    for tensor W:
        W = W - lr * grad

optimizer f(lr = 0.1, static k = one_of(1, 2, 1)):   # error[GEO0304]: listed twice
    for tensor W:
        W = W - lr * grad
