# Used by main.geo; its step has an error.
step helper_step(W; lr = 0.1):
    W = W - lr * msign(grad)   # error[GEO0203]
