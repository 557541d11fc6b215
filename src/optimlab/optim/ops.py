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

__all__ = ["add_scaled", "addcmul", "addcdiv", "norm"]


def add_scaled(x: Tensor, y: Tensor, alpha) -> Tensor:
    """``x + alpha * y``, rounded like ``x.add(y, alpha=alpha)``.

    A sparse ``y`` with a 0-d tensor ``alpha`` (``SGD(lr=torch.tensor(0.1))`` on an
    embedding's gradient) adds with ``alpha`` read as a number, as torch's
    ``add_(grad, alpha=-lr)`` reads it: ``addcmul`` takes no sparse tensor. The read syncs
    with the device, on the sparse path only."""
    if isinstance(alpha, Tensor):
        if y.layout is not torch.strided and x.layout is torch.strided and alpha.dim() == 0:
            return torch.add(x, y, alpha=alpha.item())
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


def norm(x: Tensor) -> Tensor:
    r"""The 2-norm :math:`\|x\|_2` of the whole tensor, in ``x``'s dtype, its squares summed in
    float64.

    In float32 the squares of numbers beyond about 1.8e19 overflow and those below about
    1e-23 vanish, so a float32 sum gives an infinite or zero norm where the true one is
    finite and nonzero (a trust ratio of 0 or 1 in LARS and LAMB, no clipping or no step in
    MARS). Summed in float64 it is right over float32's whole range, and it is what the
    fused kernel computes, which accumulates its norms in double: the plain, multi-tensor
    (one ``torch._foreach_norm`` with ``dtype``), fused and population paths agree. A
    float64 tensor's norm is ``torch.linalg.vector_norm``'s own.
    """
    return torch.linalg.vector_norm(x, dtype=torch.float64).to(x.dtype)

