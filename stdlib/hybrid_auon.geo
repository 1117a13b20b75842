"""Hybrid-AuON: one Newton–Schulz orthogonalization, then AuON's cosh brake (see auon.geo for the math).

hybrid_auon follows the released code (5 Newton–Schulz steps, γ = 1.5, the unnormalized update);
hybrid_auon_paper the paper (one step, the normalized update, γ = 1). Vectors skip orthogonalization.
"""
use auon

optimizer hybrid_auon:
    for matrix W = hybrid_auon_step
    for tensor p = auon_step

optimizer hybrid_auon_paper:
    for matrix W = hybrid_auon_step(form = "paper", ns_steps = 1)
    for tensor p = auon_step(form = "paper")
