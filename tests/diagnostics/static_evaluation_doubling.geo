# A string doubled in a `repeat` stops at the size bound, in the body too.
optimizer doubling(lr = 0.1, static s = "ab"):
    for matrix W:
        let x = s
        repeat 40:
            x = x + x   # error[GEO0207]: would hold 131,072 characters
        W = W - lr * grad
