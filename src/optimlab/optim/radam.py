"""RAdam: Adam with a rectified adaptive learning rate (Liu et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import (
    COMMON_ARGS_DOC,
    RuleOptimizer,
    check_betas,
    check_bool,
    check_range,
    nonzero,
    scalar_step,
    torch_flags_doc,
)
from .capabilities import Capabilities
from .ops import add_scaled, addcmul


def init(p: Tensor, **_) -> dict:
    return {
        "step": scalar_step(),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def update(p, g, state, *, step, lr, betas, eps, weight_decay, decoupled_weight_decay=False,
           **_) -> Tensor:
    beta1, beta2 = betas
    if nonzero(weight_decay):
        if decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        else:
            g = add_scaled(g, p, weight_decay)
    m = state["exp_avg"] = torch.lerp(state["exp_avg"], g, 1 - beta1)
    v = state["exp_avg_sq"] = addcmul(state["exp_avg_sq"] * beta2, g, g, 1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    bias_corrected_m = m / bias_correction1
    # length of the approximated simple moving average, and its limit
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2

    def rect():
        return ((rho_t - 4) * (rho_t - 2) * rho_inf
                / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5

    def adaptive_lr():
        return (bias_correction2**0.5) / (v.sqrt() + eps)

    if isinstance(step, Tensor):
        # the fused kernel's trace (its step is a tensor input): select instead of branching
        # (the discarded branch may be NaN, which ``where`` drops)
        return p - bias_corrected_m * lr * torch.where(rho_t > 5.0, rect() * adaptive_lr(), 1.0)
    if isinstance(rho_t, Tensor):
        # a tensor beta2 (per member in a population): selected as above, each branch
        # rounded in torch's order, ``((m_hat * lr) * adaptive) * rect``
        scaled = bias_corrected_m * lr
        return p - torch.where(rho_t > 5.0, scaled * adaptive_lr() * rect(), scaled)
    if rho_t > 5.0:
        return p - bias_corrected_m * lr * adaptive_lr() * rect()
    return p - bias_corrected_m * lr


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \lambda
            \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ v_0 \leftarrow 0,\
            \rho_\infty \leftarrow 2/(1-\beta_2) - 1\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad \textbf{if}\ \text{decoupled}:\
            \theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)
            \quad \textbf{else}:\ g_t \leftarrow g_t + \lambda\theta_{t-1}\\
       &\quad m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
            \hat m_t \leftarrow m_t/(1-\beta_1^t)\\
       &\quad v_t \leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2\\
       &\quad \rho_t \leftarrow \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)\\
       &\quad \textbf{if}\ \rho_t > 5:\
            r_t \leftarrow \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}
            {(\rho_\infty-4)(\rho_\infty-2)\rho_t}},\quad
            \theta_t \leftarrow \theta_{t-1} - \gamma\,\hat m_t\, r_t\,
            \frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t} + \epsilon}\\
       &\quad \textbf{else}:\ \theta_t \leftarrow \theta_{t-1} - \gamma\,\hat m_t
       \end{aligned}
"""


class RAdam(RuleOptimizer):
    __doc__ = rf"""RAdam: Adam whose adaptive step is switched on and rectified by its variance.

    Drop-in for ``torch.optim.RAdam`` (same arguments, defaults and numerics).
{_RULE}
    .. note::
       While :math:`\rho_t \le 5` (the first few steps; about 5 with the default
       :math:`\beta_2`) the step is plain SGD with momentum on the bias-corrected
       :math:`\hat m_t`. The adaptive step needs :math:`\rho_t > 5`, as in torch; the
       authors' code takes it from :math:`\rho_t \ge 5` (the two differ only where
       :math:`\rho_t` is exactly 5), the paper's algorithm box from :math:`\rho_t > 4`,
       and some implementations (e.g. optax's ``threshold``) make it an argument.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float], optional): decay rates of the first and second moment
            estimates (default: (0.9, 0.999)).
        eps (float, optional): added to the denominator outside the square root
            (default: 1e-8).
        weight_decay (float, optional): L2 penalty :math:`\lambda` added to the gradient, or
            decoupled if ``decoupled_weight_decay`` (default: 0).
        decoupled_weight_decay (bool, optional): decay the weights directly by
            :math:`\gamma\lambda` (RAdamW) (default: False).
{COMMON_ARGS_DOC}{torch_flags_doc()}

    Reference: Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond",
    ICLR 2020, https://arxiv.org/abs/1908.03265.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.RAdam([w], lr=0.1)
        >>> for _ in range(300):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(moments=("exp_avg",), second_moments=("exp_avg_sq",), fusable=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
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
        check_bool("decoupled_weight_decay", decoupled_weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite, capturable=capturable,
                         differentiable=differentiable,
                         state_precision=state_precision)
