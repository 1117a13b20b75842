"""Muon for hidden matrices, AdamW for everything else: one optimizer, one state_dict, one LR schedule.

Embeddings, the output head, biases and norm gains go to AdamW (Keller Jordan's recommendation); each
route keeps its own hyperparameters as its own param groups, so a scheduler scales both learning rates.
Pass `model.named_parameters()` so roles are known by name, or give `roles={param: "embedding"}`.
"""
use muon, adamw

optimizer muon_adamw:
    for hidden matrix W = muon(lr = 0.02)
    for tensor p = adamw(lr = 3e-4, weight_decay = 0.1)
