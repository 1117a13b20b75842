# A step's runtime hyperparameter bound to a string at composition.
step plain(W; lr = 0.1):
    W = W - lr * grad

optimizer wrong = plain(lr = "fast")   # error[GEO0302]: takes a number, found str
