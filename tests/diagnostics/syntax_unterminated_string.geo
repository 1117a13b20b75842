# A string that does not end on its line.
optimizer unterminated(lr = 0.1, static ns_coeffs = "keller):   # error[GEO0002]: on the line where it starts
    for matrix W:
        W = W - lr * msign(grad, coeffs = ns_coeffs)
