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

__all__ = ["add_scaled", "addcmul", "addcdiv", "norm", "wide_norm"]


def add_scaled(x: Tensor, y: Tensor, alpha) -> Tensor:
    """``x + alpha * y``, rounded like ``x.add(y, alpha=alpha)``.

    A sparse ``y`` with a 0-d tensor ``alpha`` (``SGD(lr=torch.tensor(0.1))`` on an
    embedding's gradient) adds with ``alpha`` read as a number, as torch's
    ``add_(grad, alpha=-lr)`` reads it: ``addcmul`` takes no sparse tensor. The read syncs
    with the device, on the sparse path only."""
    if isinstance(alpha, Tensor):
        if y.layout is not torch.strided and x.layout is torch.strided and alpha.dim() == 0:
            return torch.add(x, y, alpha=alpha.item())
        return torch.addcmul(x, y, _coefficient(alpha, y))
    return torch.add(x, y, alpha=alpha)


def addcmul(x: Tensor, t1: Tensor, t2: Tensor, value) -> Tensor:
    """``x + value * t1 * t2``, rounded like ``x.addcmul(t1, t2, value=value)``."""
    if isinstance(value, Tensor):
        # torch computes fma(value * t1, t2, x); this rounds the same way
        return torch.addcmul(x, _coefficient(value, t1) * t1, t2)
    return torch.addcmul(x, t1, t2, value=value)


def addcdiv(x: Tensor, t1: Tensor, t2: Tensor, value) -> Tensor:
    """``x + value * t1 / t2``, rounded like ``x.addcdiv(t1, t2, value=value)``."""
    if isinstance(value, Tensor):
        return x + (_coefficient(value, t1) * t1) / t2  # torch's order: x + (value * t1) / t2
    return torch.addcdiv(x, t1, t2, value=value)


def _coefficient(value: Tensor, t) -> Tensor:
    """A 0-d tensor coefficient as it applies to ``t``: in ``t``'s dtype where ``t`` is a 0-d
    float32 or float64 tensor too.

    Against a tensor with dimensions a 0-d coefficient does not promote (a float64 one
    multiplies a float32 tensor in float32), but between two 0-d tensors the wider dtype
    wins: a 0-d float32 parameter (a scalar ``nn.Parameter``) would take NAdam's float64
    coefficients and round its step once in float64, one unit in the last place away from
    torch's step, and from the same parameter shaped ``(1,)``. Cast here, it steps as a
    one-element tensor does. (bfloat16 and float16 are left alone: the kernels compute
    them in float32, and the rules that need it read their coefficients as numbers.)"""
    if value.dim() == 0 and isinstance(t, Tensor) and t.dim() == 0 and value.dtype != t.dtype \
            and value.dtype.is_floating_point and t.dtype in (torch.float32, torch.float64):
        return value.to(t.dtype)
    return value


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
    return wide_norm(x).to(x.dtype)


def wide_norm(x: Tensor) -> Tensor:
    r""":math:`\|x\|_2` of the whole tensor as a float64 tensor, its squares summed in float64
    (:func:`norm` gives it back in ``x``'s dtype): where the norm itself may pass ``x``'s
    range (SAM's global norm of float16 gradients past 65504) or feeds a float64 formula
    (Sophia's finite-difference step)."""
    return torch.linalg.vector_norm(x, dtype=torch.float64)

