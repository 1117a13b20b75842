# The same at the top level.
optimiser typo(lr = 0.1):   # error[GEO0001]: did you mean `optimizer`?
    for matrix W:
        W = W - lr * grad
