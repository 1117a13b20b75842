"""Backends: each lowers a `Program` to a step function with one calling convention.

    step(param, grad, state, hypers, t) -> (new_param, {state name: new value})
    init(param, hypers) -> {state name: initial value}

`param`/`grad` are seen through the rule's view; `state` maps slot names to tensors (or floats for scalar
slots); `hypers` maps names to floats (tuples for tuple hyperparameters); `t` is the step count (float).
"""
