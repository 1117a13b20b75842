# Composed steps share hyperparameters by name; they must agree on what each one is.
step first(W; lr = 0.1, static k = 2):
    W = W - lr * grad

step second(W; lr = 0.2, k = 2.0):   # error[GEO0111]: different defaults error[GEO0111]: static in one step and runtime in another
    W = W - lr * k * grad

optimizer both = second ∘ first
