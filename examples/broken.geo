"""A spec with two mistakes, for examples/train_small.py: `geo check examples/broken.geo` reports both."""
optimizer broken(lr = 0.02, steps = 5):
    for vector b:
        b = b - lr * msign(grad, steps = steps)
