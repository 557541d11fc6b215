"""Signum: signSGD with momentum (Bernstein et al. 2018)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_range, common_args_doc, nonzero
from .capabilities import Capabilities
from .lion import _sign

# Signum is not in torch.optim, so it takes no ``foreach`` argument.
_ARGS_DOC = common_args_doc(foreach=False)


def init(p: Tensor, **_) -> dict:
    # No step counter: the sign of the average needs no bias correction.
    return {"momentum_buffer": torch.zeros_like(p, memory_format=torch.preserve_format)}


def update(p, g, state, *, lr, momentum, weight_decay, **_) -> Tensor:
    m = state["momentum_buffer"] = torch.lerp(state["momentum_buffer"], g, 1 - momentum)
    if nonzero(weight_decay):
        p = p * (1 - lr * weight_decay)
    return p - lr * _sign(m)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta \text{ (momentum)}, \lambda
            \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad m_t \leftarrow \beta m_{t-1} + (1-\beta) g_t\\
       &\quad \theta_t \leftarrow \theta_{t-1}(1 - \gamma\lambda) - \gamma\,\mathrm{sign}(m_t)
       \end{aligned}
"""


class Signum(RuleOptimizer):
    __doc__ = rf"""Signum: the sign of a momentum average of the gradients (signSGD with momentum).

    Every coordinate moves by exactly :math:`\gamma` (plus the decay), whatever the size of
    its gradient: the step is the 1-bit compression of the momentum, which is what made it
    attractive for distributed training (one bit per coordinate to communicate, majority
    vote to combine). With ``momentum=0`` it is signSGD.
{_RULE}
    .. note::
       Lion (``optimlab.Lion``) differs in one place: it takes the sign of an interpolation
       between the stored momentum and the new gradient (:math:`\beta_1`) and stores an
       average with another rate (:math:`\beta_2`); Signum signs the stored average itself.
       The sign of an exact zero is 0 and the sign of NaN is NaN (as ``np.sign``).

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma`, the size of every
            coordinate's step (default: 1e-4).
        momentum (float, optional): decay rate :math:`\beta` of the gradient average; 0 gives
            signSGD (default: 0.9).
        weight_decay (float, optional): decoupled decay :math:`\lambda`, scaled by the
            learning rate (default: 0).
{_ARGS_DOC}

    Reference: Bernstein, Wang, Azizzadenesheli & Anandkumar, "signSGD: Compressed
    Optimisation for Non-Convex Problems", ICML 2018, https://arxiv.org/abs/1802.04434
    (Algorithm 3, Signum).

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.Signum([w], lr=0.02)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.1)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(moments=("momentum_buffer",), fusable=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-4,
        momentum: float | Tensor = 0.9,
        weight_decay: float | Tensor = 0.0,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_range("momentum", momentum, 0.0, 1.0)
        check_range("weight_decay", weight_decay, 0.0)
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)
