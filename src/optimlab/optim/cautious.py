r"""Cautious masking (Liang et al. 2024): step only where the update agrees with the gradient.

An option of the Adam family and Lion (``cautious=True``). The update direction :math:`u_t`
(the one subtracted, :math:`\theta_t = \theta_{t-1} - \gamma u_t`) is kept only in the
coordinates where it points the same way as the current gradient, and the kept coordinates
are scaled up so that the step keeps its size:

.. math::
   \phi_t = \mathbb{1}[u_t \odot g_t > 0], \qquad
   u_t \leftarrow u_t \odot \phi_t \, \frac{d}{\textstyle\sum_i \phi_{t,i} + 1}

with :math:`d` the number of elements of the tensor (the count and the scale are per
parameter tensor). The decoupled weight decay is not masked.

This is the paper's Algorithm 1 as its authors' code writes it
(``mask * (mask.numel() / (mask.sum() + 1))``), which ``pytorch_optimizer`` also uses.

.. warning::
   timm's ``caution=True`` divides by ``max(mean(phi), 1e-3)`` instead of
   ``(sum(phi) + 1) / d``: the two differ by the ``+ 1`` (a relative ``1 / sum(phi)``,
   visible on small tensors) and where fewer than 0.1% of the coordinates agree.

Reference: Liang, Chen, Liu & Liu, "Cautious Optimizers: Improving Training with One Line of
Code", 2024, https://arxiv.org/abs/2411.16085.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cautious"]


def cautious(u: Tensor, g: Tensor) -> Tensor:
    """``u`` masked to the coordinates where ``u * g > 0`` and rescaled by
    ``numel / (kept + 1)``, per tensor (see the module docstring).

    The counts are whole-tensor reductions, so a rule that calls this is not elementwise: a
    population maps its members with vmap (``Capabilities.reduces_when``), and the fused
    kernel accumulates the counts in its first pass. A count is written as the 1-norm of a
    0/1 tensor, which is its sum: torch has a multi-tensor norm (``_foreach_norm``) but no
    multi-tensor sum, so a whole parameter group is counted in one operation. The counts are
    exact integers while a tensor has fewer than 2**24 elements in float32.
    """
    mask = (u * g > 0).to(u.dtype)
    kept = torch.linalg.vector_norm(mask, 1)
    size = torch.linalg.vector_norm(torch.ones_like(mask), 1)
    return u * (mask * (size / (kept + 1)))
