# Steps are composed at rule level, not called like functions.
step descend(W; lr = 0.1):
    W = W - lr * grad

optimizer calls(lr = 0.1):
    for matrix W:
        W = descend(W)   # error[GEO0110]: steps are composed, not called
