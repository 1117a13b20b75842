# Two specs that use each other: the cycle is reported where it closes, in other.geo.
use other

optimizer main(lr = 0.1):
    for matrix W:
        W = W - lr * grad
