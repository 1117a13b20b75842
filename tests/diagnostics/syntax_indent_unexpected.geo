# A statement indented deeper than the block it belongs to.
optimizer indented(lr = 0.1):
    for matrix W:
        let u = grad
            W = W - lr * u   # error[GEO0003]
