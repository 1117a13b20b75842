"""geo's version: a leaf module, so that any layer (checkpoints, the kernel cache) can read it without importing
the package root, which imports the runtime."""
__version__ = "0.1.0"
