"""The optimizer library: every algorithm as a ``torch.optim.Optimizer``.

Depends on torch only; nothing here imports plotting, web or database code.
"""
from .adam import Adam, AdamW
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW"]
