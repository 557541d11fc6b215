"""AdaBelief: adapting stepsizes by the belief in observed gradients (Zhuang et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_betas, check_range, common_args_doc, nonzero, scalar_step
from .capabilities import Capabilities

# AdaBelief is not in torch.optim, so it takes no ``foreach`` argument.
_ARGS_DOC = common_args_doc(foreach=False)


def init(p: Tensor, **_) -> dict:
    # Key names follow the authors' adabelief-pytorch package.
    return {
        "step": scalar_step(),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg_var": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def update(p, g, state, *, step, lr, betas, eps, weight_decay, **_) -> Tensor:
    beta1, beta2 = betas
    if nonzero(weight_decay):
        p = p * (1 - lr * weight_decay)
    m = state["exp_avg"] = torch.lerp(state["exp_avg"], g, 1 - beta1)
    residual = g - m
    s = state["exp_avg_var"] = (state["exp_avg_var"] * beta2
                                + (1 - beta2) * residual * residual + eps)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    denom = s.sqrt() / bias_correction2**0.5 + eps
    return p - (lr / bias_correction1) * m / denom


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \lambda
            \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ s_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad \theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)\\
       &\quad m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t\\
       &\quad s_t \leftarrow \beta_2 s_{t-1} + (1-\beta_2)(g_t - m_t)^2 + \epsilon\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,
            \frac{m_t}{\sqrt{s_t}/\sqrt{1-\beta_2^t} + \epsilon}
       \end{aligned}
"""


class AdaBelief(RuleOptimizer):
    __doc__ = rf"""AdaBelief: Adam whose second moment tracks the gradient's deviation from m.

    The denominator uses the variance of the gradient around its running mean (the
    "belief") instead of the raw second moment: a gradient close to the prediction
    earns a large step, a surprising one a small step.
{_RULE}
    .. note::
       This is Algorithm 2 of the paper: :math:`\epsilon` is added inside :math:`s_t` at
       every step *and* to the denominator, so the default ``eps=1e-16`` plays the role of
       Adam's 1e-8. The authors' ``adabelief-pytorch`` package matches this with
       ``weight_decouple=True``, ``rectify=False``, ``amsgrad=False``; its own defaults have
       changed between versions (``rectify=True`` and ``eps=1e-16`` since 0.1.0), and the
       rectified (RAdam-style) variant is not offered here.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float], optional): decay rates of the mean and of the belief
            (default: (0.9, 0.999)).
        eps (float, optional): added to :math:`s_t` at every step and to the denominator
            (default: 1e-16).
        weight_decay (float, optional): decoupled (AdamW-style) decay :math:`\lambda`,
            scaled by the learning rate (default: 0).
{_ARGS_DOC}

    Reference: Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
    Observed Gradients", NeurIPS 2020, https://arxiv.org/abs/2010.07468.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.AdaBelief([w], lr=0.1)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(moments=("exp_avg",), second_moments=("exp_avg_var", "max_exp_avg_var"),
                                fusable=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-16,
        weight_decay: float | Tensor = 0.0,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas)
        check_range("eps", eps, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)
