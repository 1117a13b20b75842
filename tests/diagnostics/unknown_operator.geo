# A typo in an operator's name: "did you mean" looks through the operator registry.
optimizer typo(lr = 0.1, momentum = 0.9):
    for matrix W:
        state buf = zeros_like(W)
        buf = lerpp(buf, grad, 1 - momentum)   # error[GEO0102]: did you mean `lerp`?
        W = W - lr * msing(buf)   # error[GEO0102]: did you mean `msign`?
