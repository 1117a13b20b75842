# Used by main.geo, and using it back.
use main   # error[GEO0502]: main -> other -> main

step other_step(W; lr = 0.1):
    W = W - lr * grad
