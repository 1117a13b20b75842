# A reduction along an axis needs to know the rank; `tensor` rules select any rank.
optimizer rowwise(lr = 0.1):
    for tensor p:
        let s = sum(grad * grad, axis = 1)   # error[GEO0204]
        p = p - lr * grad / sqrt(s)
