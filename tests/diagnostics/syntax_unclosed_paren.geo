# An argument list that never closes: the parser reaches the end of the file.
optimizer unclosed(lr = 0.1):
    for matrix W:
        W = W - lr * lerp(W, grad,   # error[GEO0004]
