# Values of the wrong kind: indexing a matrix, reducing a number, arithmetic on a string.
optimizer kinds(lr = 0.1, static adjust = "original"):
    for matrix W:
        let a = W[0]   # error[GEO0202]: only tuples can be indexed
        let b = sum(1)   # error[GEO0202]: reduces a tensor
        let c = W * adjust   # error[GEO0202]: expected a number or a tensor, found `static str`
        W = W - lr * grad
