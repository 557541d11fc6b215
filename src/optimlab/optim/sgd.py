"""Stochastic gradient descent with heavy-ball or Nesterov momentum."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import COMMON_ARGS_DOC, RuleOptimizer, check_bool, check_range, nonzero, torch_flags_doc
from .capabilities import Capabilities
from .ops import add_scaled


def init(p: Tensor, **_) -> dict:
    # Like torch, the buffer is created from the first gradient (no zero start).
    return {"momentum_buffer": None}


def update(p, g, state, *, lr, momentum, dampening, weight_decay, nesterov, **_) -> Tensor:
    if nonzero(weight_decay):
        if g.is_sparse:  # torch.optim.SGD fails here too, on add(sparse, dense)
            raise RuntimeError("SGD's weight_decay is not compatible with sparse gradients")
        g = add_scaled(g, p, weight_decay)
    if nonzero(momentum):
        buf = state["momentum_buffer"]
        if buf is None:  # a dense tensor's copy is contiguous whatever the gradient's layout
            # (autograd may transpose one), so that the fused kernel can step it in place later
            dense = isinstance(g, Tensor) and not g.is_sparse  # not a TensorList: flat already
            buf = g.clone(memory_format=torch.contiguous_format) if dense else g.clone()
        else:
            buf = add_scaled(buf * momentum, g, 1 - dampening)
        state["momentum_buffer"] = buf
        if nesterov and g.is_sparse and not buf.is_sparse:
            # a buffer kept compact (state_precision) is decoded dense, and torch adds no
            # dense tensor to a sparse one: the gradient steps as the dense tensor it stands for
            g = g.to_dense()
        stepped = add_scaled(g, buf, momentum) if nesterov else buf
        # A tensor momentum (a population's per-member column, or the fused kernel's input)
        # may be 0 for some members: those step with g, as SGD(momentum=0) does alone.
        if not isinstance(momentum, Tensor):
            g = stepped
        elif g.is_sparse:  # one optimizer's one-element momentum (where() takes no sparse)
            g = stepped if momentum.item() != 0 else g
        else:
            g = torch.where(momentum != 0, stepped, g)
    return add_scaled(p, g, -lr)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \mu \text{ (momentum)}, \tau
            \text{ (dampening)}, \lambda \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1}) + \lambda\theta_{t-1}\\
       &\quad \textbf{if}\ \mu \neq 0:\ b_t \leftarrow
            \begin{cases} g_t & t = 1\\ \mu b_{t-1} + (1-\tau) g_t & t > 1\end{cases}\\
       &\quad\quad g_t \leftarrow \begin{cases} g_t + \mu b_t & \text{nesterov}\\
            b_t & \text{otherwise}\end{cases}\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \gamma g_t
       \end{aligned}
"""


class SGD(RuleOptimizer):
    __doc__ = rf"""Stochastic gradient descent, optionally with momentum (heavy ball or Nesterov).

    Drop-in for ``torch.optim.SGD``. Registry aliases: ``gd``/``sgd`` (plain),
    ``momentum`` (momentum 0.9), ``nag`` (Nesterov, momentum 0.9). Sparse gradients
    (``nn.Embedding(sparse=True)``) step as in torch: the momentum buffer is then a sparse
    tensor too, and weight decay is refused.

{_RULE}
    .. note::
       This is the PyTorch form of momentum: the learning rate multiplies the buffer
       (:math:`\theta \leftarrow \theta - \gamma b`). Sutskever et al. and some frameworks
       put it inside (:math:`b \leftarrow \mu b + \gamma g`); the two agree for a constant
       learning rate but differ when it is scheduled.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-3).
        momentum (float, optional): momentum factor :math:`\mu` (default: 0).
        dampening (float, optional): dampening :math:`\tau` for momentum (default: 0).
        weight_decay (float, optional): L2 penalty :math:`\lambda` (default: 0).
        nesterov (bool, optional): Nesterov momentum; needs momentum > 0 and zero
            dampening (default: False).
{COMMON_ARGS_DOC}{torch_flags_doc(capturable=False)}

    References: Robbins & Monro, "A Stochastic Approximation Method", 1951,
    https://doi.org/10.1214/aoms/1177729586; Polyak 1964 (heavy ball); Sutskever et al., "On
    the importance of initialization and momentum in deep learning", ICML 2013 (Nesterov form).

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.0, -1.0], requires_grad=True)
        >>> opt = optimlab.SGD([w], lr=0.1, momentum=0.9)
        >>> for _ in range(100):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 1e-2)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(moments=("momentum_buffer",), fusable=True, sparse=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        momentum: float | Tensor = 0,
        dampening: float | Tensor = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_range("momentum", momentum, 0.0)
        check_range("dampening", dampening, None)
        check_range("weight_decay", weight_decay, 0.0)
        check_bool("nesterov", nesterov)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite, differentiable=differentiable,
                         state_precision=state_precision)
