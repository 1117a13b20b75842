# Selector words come from a registry; patterns belong to `name`; one rank at a time.
optimizer selectors(lr = 0.1):
    for matrx W:   # error[GEO0112]: did you mean `matrix`?
        W = W - lr * grad
    for hidden "*.weight" W:   # error[GEO0112]: only `name` takes a pattern
        W = W - lr * grad
    for matrix vector W:   # error[GEO0112]: two different ranks
        W = W - lr * grad
