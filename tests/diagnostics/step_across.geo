# An optimizer whose rules read its `across` block's values cannot be used as a step of another.
optimizer chooser(lr = 0.1):
    across layers:
        let update = subset(layers, 1)
    for tensor W:
        when update > 0:
            W = W - lr * grad

optimizer wrapped = chooser   # error[GEO0110]: decides across parameters
