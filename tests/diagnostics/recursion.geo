# Functions are inlined, so they cannot call themselves, directly or through another.
def forever(x):
    return forever(x)   # error[GEO0109]: `forever` calls itself

def ping(x):
    return pong(x)

def pong(x):
    return ping(x)   # error[GEO0109]: `ping` calls itself

optimizer recursive(lr = 0.1):
    for matrix W:
        W = W - lr * forever(grad) - lr * ping(grad)
