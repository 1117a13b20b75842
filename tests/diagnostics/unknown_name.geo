# A typo in a name: "did you mean" looks through the names in scope.
optimizer typo(lr = 0.1, momentum = 0.9):
    for matrix W:
        state buf = zeros_like(W)
        buf = lerp(buf, grad, 1 - momentum)
        W = W - lr * buff   # error[GEO0101]: did you mean `buf`?
