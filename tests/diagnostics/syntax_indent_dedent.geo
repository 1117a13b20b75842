# A line dedented to a column that no enclosing block starts at.
optimizer dedented(lr = 0.1):
    for matrix W:
        let u = grad
      W = W - lr * u   # error[GEO0003]
