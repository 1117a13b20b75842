# An optimizer defined as a composition with itself.
step descend(W; lr = 0.1):
    W = W - lr * grad

optimizer again = descend ∘ again   # error[GEO0109]: refers to itself
