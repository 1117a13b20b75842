# A routing optimizer (several rules) cannot be composed as a step.
use muon_adamw

step descend(W; lr = 0.1):
    W = W - lr * grad

optimizer routed = descend ∘ muon_adamw   # error[GEO0110]: routes parameters with several rules
