# A misspelt keyword reads as a name followed by junk; the help names the keyword.
optimizer typo(lr = 0.1):
    for matrix W:
        lett u = grad   # error[GEO0001]: did you mean `let`?
        W = W - lr * u
