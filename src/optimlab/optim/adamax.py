"""Adamax: Adam with the infinity norm (Kingma & Ba 2015, section 7.1)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import (
    COMMON_ARGS_DOC,
    RuleOptimizer,
    check_betas,
    check_range,
    nonzero,
    scalar_step,
    torch_flags_doc,
)
from .capabilities import Capabilities
from .ops import add_scaled, addcdiv


def init(p: Tensor, **_) -> dict:
    return {
        "step": scalar_step(),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_inf": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def update(p, g, state, *, step, lr, betas, eps, weight_decay, **_) -> Tensor:
    beta1, beta2 = betas
    if nonzero(weight_decay):
        g = add_scaled(g, p, weight_decay)
    m = state["exp_avg"] = torch.lerp(state["exp_avg"], g, 1 - beta1)
    # As in torch, eps is added to |g| inside the maximum, not to the denominator.
    u = state["exp_inf"] = torch.maximum(state["exp_inf"] * beta2, g.abs() + eps)
    bias_correction = 1 - beta1**step
    # one addcdiv, as torch: in bfloat16/float16 it rounds once where ``p - c * m / u`` rounds
    # after each operation
    return addcdiv(p, m, u, -(lr / bias_correction))


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \lambda
            \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ u_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1}) + \lambda\theta_{t-1}
            \quad (- \text{ if maximize})\\
       &\quad m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t\\
       &\quad u_t \leftarrow \max(\beta_2 u_{t-1},\ |g_t| + \epsilon)\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,\frac{m_t}{u_t}
       \end{aligned}
"""


class Adamax(RuleOptimizer):
    __doc__ = rf"""Adamax: the infinity-norm variant of Adam.

    Drop-in for ``torch.optim.Adamax`` (same arguments, defaults and numerics).
{_RULE}
    .. note::
       The paper writes :math:`u_t = \max(\beta_2 u_{{t-1}}, |g_t|)` with no epsilon; torch
       (and this class) add :math:`\epsilon` to :math:`|g_t|` inside the maximum, so
       :math:`u_t \ge \epsilon` and the division is always safe, as optax does; Keras adds
       it to the denominator instead.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 2e-3).
        betas (tuple[float, float], optional): decay rates of the first moment and of the
            infinity norm (default: (0.9, 0.999)).
        eps (float, optional): added to :math:`|g_t|` inside the maximum (default: 1e-8).
        weight_decay (float, optional): L2 penalty :math:`\lambda` added to the gradient
            (default: 0).
{COMMON_ARGS_DOC}{torch_flags_doc()}

    Reference: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
    section 7.1, https://arxiv.org/abs/1412.6980.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.Adamax([w], lr=0.1)
        >>> for _ in range(300):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(moments=("exp_avg",), second_moments=("exp_inf",), fusable=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 2e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas)
        check_range("eps", eps, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite, capturable=capturable,
                         differentiable=differentiable,
                         state_precision=state_precision)
