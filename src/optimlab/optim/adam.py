"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), AMSGrad (Reddi et al. 2018)."""

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
from .cautious import cautious as cautious_mask
from .ops import add_scaled, addcdiv, addcmul


def init(p: Tensor, *, amsgrad: bool = False, **_) -> dict:
    state = {
        "step": scalar_step(),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
    }
    if amsgrad:
        state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state


def update(p, g, state, *, step, lr, betas, eps, weight_decay, amsgrad=False,
           decoupled_weight_decay=False, cautious=False, **_) -> Tensor:
    beta1, beta2 = betas
    if nonzero(weight_decay):
        if decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        else:
            g = add_scaled(g, p, weight_decay)
    m = state["exp_avg"] = torch.lerp(state["exp_avg"], g, 1 - beta1)
    v = state["exp_avg_sq"] = addcmul(state["exp_avg_sq"] * beta2, g, g, 1 - beta2)
    if amsgrad:
        v = state["max_exp_avg_sq"] = torch.maximum(state["max_exp_avg_sq"], v)
    if cautious:
        # the step's sign is m's (its denominator is positive): mask m where it disagrees
        m = cautious_mask(m, g)
    return bias_corrected_step(p, m, v, step=step, lr=lr, betas=betas, eps=eps)


def bias_corrected_step(p, m, v, *, step, lr, betas, eps) -> Tensor:
    """Adam's step from its two moments: ``p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``,
    rounded as torch's Adam rounds it (Yogi shares it: only its ``v`` differs)."""
    beta1, beta2 = betas
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    denom = v.sqrt() / bias_correction2**0.5 + eps
    return addcdiv(p, m, denom, -lr / bias_correction1)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \lambda
            \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ v_0 \leftarrow 0,\ \hat v^{max}_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad \textbf{if}\ \text{decoupled}:\ \theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)
            \quad \textbf{else}:\ g_t \leftarrow g_t + \lambda\theta_{t-1}\\
       &\quad m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t\\
       &\quad v_t \leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2\\
       &\quad \hat v_t \leftarrow v_t;\quad \textbf{if}\ \text{amsgrad}:\
            \hat v_t \leftarrow \max(\hat v^{max}_{t-1}, v_t) =: \hat v^{max}_t
            \quad (v_t \text{ itself is kept})\\
       &\quad \textbf{if}\ \text{cautious}:\ \phi_t \leftarrow \mathbb{1}[m_t \odot g_t > 0],\
            m_t \leftarrow m_t \odot \phi_t\, d / (\textstyle\sum_i \phi_{t,i} + 1)
            \quad \text{(for the step only)}\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,
            \frac{m_t}{\sqrt{\hat v_t}/\sqrt{1-\beta_2^t} + \epsilon}
       \end{aligned}

    With ``cautious`` (:mod:`optimlab.optim.cautious`; :math:`d` is the tensor's size) the
    step is taken only where it agrees in sign with the gradient; the stored :math:`m_t` is
    not masked.
"""


class Adam(RuleOptimizer):
    __doc__ = rf"""Adam: adaptive moment estimation, with optional AMSGrad and decoupled decay.

    Drop-in for ``torch.optim.Adam`` (same arguments, defaults and numerics).
{_RULE}
    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float], optional): decay rates of the first and second moment
            estimates (default: (0.9, 0.999)).
        eps (float, optional): added to the denominator *outside* the square root, as in
            the paper and torch (optax's ``eps_root`` is the one inside) (default: 1e-8).
        weight_decay (float, optional): L2 penalty :math:`\lambda` added to the gradient, or
            decoupled if ``decoupled_weight_decay`` (default: 0).
        amsgrad (bool, optional): use the running maximum of :math:`v_t` (Reddi et al. 2018,
            "On the Convergence of Adam and Beyond") (default: False).
        decoupled_weight_decay (bool, optional): decay the weights directly by
            :math:`\gamma\lambda`, which makes this AdamW (default: False).
        cautious (bool, optional): step only where the update agrees in sign with the
            gradient (Liang et al. 2024, C-AdamW); not in ``torch.optim`` (default: False).
{COMMON_ARGS_DOC}{torch_flags_doc()}

    Reference: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
    https://arxiv.org/abs/1412.6980.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.Adam([w], lr=0.1)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(moments=("exp_avg",), second_moments=("exp_avg_sq", "max_exp_avg_sq"),
                                fusable=True, reduces_when=("cautious",))

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
        cautious: bool = False,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas, same_kind=True)  # as torch.optim.Adam and AdamW
        check_range("eps", eps, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        check_bool("cautious", cautious)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach,
                        decoupled_weight_decay=decoupled_weight_decay, fused=fused,
                        cautious=cautious)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision, capturable=capturable,
                         differentiable=differentiable)


class AdamW(Adam):
    __doc__ = rf"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019).

    Drop-in for ``torch.optim.AdamW``: it is :class:`Adam` with
    ``decoupled_weight_decay=True`` and a default ``weight_decay`` of 1e-2.
{_RULE}
    .. warning::
       As in torch, the decay is scaled by the learning rate
       (:math:`\theta \leftarrow \theta(1-\gamma\lambda)`); the paper and some frameworks
       scale it by a separate schedule multiplier only, so the same ``weight_decay`` means a
       different strength there.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float], optional): moment decay rates (default: (0.9, 0.999)).
        eps (float, optional): denominator term outside the root (default: 1e-8).
        weight_decay (float, optional): decoupled decay coefficient :math:`\lambda`
            (default: 1e-2).
        amsgrad (bool, optional): use the running maximum of :math:`v_t` (default: False).
        cautious (bool, optional): step only where the update agrees in sign with the
            gradient (C-AdamW, Liang et al. 2024); not in ``torch.optim`` (default: False).
{COMMON_ARGS_DOC}{torch_flags_doc()}

    Reference: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019,
    https://arxiv.org/abs/1711.05101.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.0], requires_grad=True)
        >>> opt = optimlab.AdamW([w], lr=0.1, weight_decay=0.1)
        >>> w.grad = torch.zeros(1)  # no gradient: only the decoupled decay moves w
        >>> opt.step()
        >>> round(w.item(), 6)  # 1 - lr * weight_decay
        0.99
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
        cautious: bool = False,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, foreach=foreach, maximize=maximize, fused=fused,
                         decoupled_weight_decay=True, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision, cautious=cautious,
                         capturable=capturable, differentiable=differentiable)
