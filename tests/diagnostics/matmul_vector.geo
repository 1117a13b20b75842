# `@` multiplies matrices; vectors use `dot`, and transposing needs a matrix too.
optimizer vecmul(lr = 0.1):
    for vector b:
        let g = b @ grad   # error[GEO0203]: for vectors use `dot(a, b)`
        let h = grad.T   # error[GEO0203]
        b = b - lr * grad
