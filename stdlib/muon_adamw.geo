"""Muon for hidden matrices, AdamW for everything else: one optimizer, one state_dict, one LR schedule.

Embeddings, the output head, biases and norm gains go to AdamW (Keller Jordan's recommendation); each
route keeps its own hyperparameters as its own param groups, so a scheduler scales both learning rates.
Pass `model.named_parameters()` so roles are known by name, or give `roles={param: "embedding"}`.

Defaults are the Muon reference recipe, `MuonWithAuxAdam` in github.com/KellerJordan/Muon (muon.py):
Muon lr 0.02, momentum 0.95, no weight decay; AdamW lr 3e-4, betas (0.9, 0.95), eps 1e-10, no weight decay.
Its Adam step is torch.optim.AdamW's math (bias-corrected moments, eps added after the square root), which
is what this route runs, bit for bit with torch.optim.AdamW.
"""
use muon, adamw

optimizer muon_adamw:
    for hidden matrix W = muon(lr = 0.02)
    for tensor p = adamw(lr = 3e-4, betas = (0.9, 0.95), eps = 1e-10, weight_decay = 0.0)
