# The step must give the parameter (and each state) a value of its own type.
optimizer retype(lr = 0.1, static mode = "sgd"):
    for matrix W:
        state norm = 0.0
        norm = grad   # error[GEO0205]: `norm` is
        W = mode   # error[GEO0205]: `W` is
