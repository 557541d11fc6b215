"""Arithmetic that rounds exactly like ``torch.optim``'s in-place updates.

On the CPU, ``x.add(y, alpha=a)``, ``x.addcmul(t1, t2, value=v)`` and ``addcdiv`` are computed
with one rounding (a fused multiply-add), while ``x + a * y`` rounds twice. One unit in the
last place per step is invisible for most paths, but where the path amplifies rounding (a
running maximum, bfloat16 Newton-Schulz, clipping, oscillating sign-like steps near a
minimum) it grows to visible drift within a few hundred steps. The rules use these helpers
wherever torch uses the fused op, so they follow torch's path bit for bit.

A coefficient may be a tensor (a hyperparameter with a member axis): then the same
expression is evaluated with tensor operations that broadcast along that axis.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["add_scaled", "addcmul", "addcdiv"]


def add_scaled(x: Tensor, y: Tensor, alpha) -> Tensor:
    """``x + alpha * y``, rounded like ``x.add(y, alpha=alpha)``."""
    if isinstance(alpha, Tensor):
        return torch.addcmul(x, y, alpha)
    return torch.add(x, y, alpha=alpha)


def addcmul(x: Tensor, t1: Tensor, t2: Tensor, value) -> Tensor:
    """``x + value * t1 * t2``, rounded like ``x.addcmul(t1, t2, value=value)``."""
    if isinstance(value, Tensor):
        # torch computes fma(value * t1, t2, x); this rounds the same way
        return torch.addcmul(x, value * t1, t2)
    return torch.addcmul(x, t1, t2, value=value)


def addcdiv(x: Tensor, t1: Tensor, t2: Tensor, value) -> Tensor:
    """``x + value * t1 / t2``, rounded like ``x.addcdiv(t1, t2, value=value)``."""
    if isinstance(value, Tensor):
        return x + (value * t1) / t2  # torch's order: x + (value * t1) / t2
    return torch.addcdiv(x, t1, t2, value=value)
