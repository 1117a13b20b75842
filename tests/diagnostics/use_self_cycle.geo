# A spec that uses itself.
use use_self_cycle   # error[GEO0502]: use_self_cycle -> use_self_cycle

optimizer loop(lr = 0.1):
    for matrix W:
        W = W - lr * grad
