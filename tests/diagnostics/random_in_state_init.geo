# A state's initial value is built once, before any step: it has no step count to key a random draw.
optimizer noisy(lr = 0.1):
    for tensor W:
        state z = normal(W)   # error[GEO0114]: cannot draw random numbers
        W = W - lr * (grad + z)
