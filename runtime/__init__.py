"""The runtime: compiled specs as torch.optim.Optimizer subclasses."""
