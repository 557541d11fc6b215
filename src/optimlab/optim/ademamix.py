"""AdEMAMix: Adam with a mixture of a fast and a slow momentum (Pagliardini et al. 2025)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import (
    RuleOptimizer,
    check_items,
    check_range,
    common_args_doc,
    nonzero,
    scalar_step,
)
from .capabilities import Capabilities
from .ops import add_scaled, addcdiv, addcmul

# AdEMAMix is not in torch.optim, so it takes no ``foreach`` argument.
_ARGS_DOC = common_args_doc(foreach=False)


def init(p: Tensor, **_) -> dict:
    return {
        "step": scalar_step(),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg_slow": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def _minimum(x, high):
    """``min(x, high)`` of numbers or tensors (traced ones included); ``high`` where ``x``
    is NaN (only a 0/0 of degenerate betas can make it NaN, and then ``high`` is right)."""
    if not isinstance(x, Tensor) and not isinstance(high, Tensor):
        return x if x < high else high  # plain numbers: a constant of the step
    if not isinstance(high, Tensor):
        high = torch.full_like(x, high)
    if not isinstance(x, Tensor):
        x = torch.full_like(high, x)
    return torch.where(x < high, x, high)


def _inv_log(beta):
    """``1 / ln(beta)``, ``-0`` for ``beta = 0`` (its limit: no memory, half-life 0)."""
    if isinstance(beta, Tensor):
        return 1 / torch.log(beta)  # log(0) = -inf gives -0 by itself
    if not nonzero(beta):
        return -0.0
    return 1 / math.log(beta)


def schedules(step, *, betas, alpha, t_alpha_beta3):
    """``(alpha_t, beta3_t)`` at step ``step`` (1 on the first step): the paper's warm-up
    over ``t_alpha_beta3`` steps, or the constants when it is None."""
    beta1, _, beta3 = betas
    if t_alpha_beta3 is None:
        return alpha, beta3
    alpha_t = _minimum(step * alpha / t_alpha_beta3, alpha)
    # exp(ln b1 ln b3 / ((1-a) ln b3 + a ln b1)) written as b3 ** (1/ln b3 / ((1-a)/ln b1 +
    # a/ln b3)): the same number, exactly b3 once a = 1, and finite for b1 = 0. The fraction
    # a stops at 1 (the paper's t/T does not; it makes no difference unless b1 > b3, where
    # the paper's denominator reaches 0 after the warm-up).
    if not nonzero(beta3):
        return alpha_t, beta3  # min(., 0): no slow memory, whatever the warm-up
    a = _minimum(step / t_alpha_beta3, 1.0)
    inv1, inv3 = _inv_log(beta1), _inv_log(beta3)
    beta3_t = _minimum(beta3 ** (inv3 / ((1 - a) * inv1 + a * inv3)), beta3)
    return alpha_t, beta3_t


def update(p, g, state, *, step, lr, betas, alpha, t_alpha_beta3, eps, weight_decay,
           **_) -> Tensor:
    beta1, beta2, _ = betas
    alpha_t, beta3_t = schedules(step, betas=betas, alpha=alpha, t_alpha_beta3=t_alpha_beta3)
    if nonzero(weight_decay):
        p = p * (1 - lr * weight_decay)
    m1 = state["exp_avg"] = torch.lerp(state["exp_avg"], g, 1 - beta1)
    m2 = state["exp_avg_slow"] = torch.lerp(state["exp_avg_slow"], g, 1 - beta3_t)
    v = state["exp_avg_sq"] = addcmul(state["exp_avg_sq"] * beta2, g, g, 1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    denom = v.sqrt() / bias_correction2**0.5 + eps
    return addcdiv(p, add_scaled(m1 / bias_correction1, m2, alpha_t), denom, -lr)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \beta_3, \alpha, T
            \text{ (t\_alpha\_beta3)}, \epsilon, \lambda \text{ (weight decay)},
            \theta_0, f(\theta)\\
       &\textbf{init}: m^{(1)}_0 \leftarrow 0,\ m^{(2)}_0 \leftarrow 0,\ v_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad \textbf{if}\ T:\ \alpha_t \leftarrow \min(t\alpha/T, \alpha),\quad
            \beta_{3,t} \leftarrow \min\Big(\exp\Big(\frac{\ln\beta_1 \ln\beta_3}
            {(1-t/T)\ln\beta_3 + (t/T)\ln\beta_1}\Big), \beta_3\Big)\\
       &\quad \textbf{else}:\ \alpha_t \leftarrow \alpha,\quad \beta_{3,t} \leftarrow \beta_3\\
       &\quad \theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)\\
       &\quad m^{(1)}_t \leftarrow \beta_1 m^{(1)}_{t-1} + (1-\beta_1) g_t\\
       &\quad m^{(2)}_t \leftarrow \beta_{3,t} m^{(2)}_{t-1} + (1-\beta_{3,t}) g_t\\
       &\quad v_t \leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \gamma\,
            \frac{m^{(1)}_t/(1-\beta_1^t) + \alpha_t m^{(2)}_t}
            {\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}
       \end{aligned}
"""


class AdEMAMix(RuleOptimizer):
    __doc__ = rf"""AdEMAMix: Adam whose numerator mixes a fast and a slow momentum.

    A single EMA cannot weigh the last few gradients heavily and still keep a useful share of
    gradients thousands of steps old. AdEMAMix keeps Adam's bias-corrected fast average
    :math:`m^{{(1)}}` (:math:`\beta_1`) and adds :math:`\alpha` times a slow one
    :math:`m^{{(2)}}` (:math:`\beta_3` close to 1, not bias-corrected, so it fills slowly).
    A slow average with a large :math:`\alpha` destabilises the first steps; the paper warms
    :math:`\alpha` up linearly and :math:`\beta_3` up from :math:`\beta_1` (its half-life
    grows linearly) over ``t_alpha_beta3`` steps, about the length of training.
{_RULE}
    .. warning::
       optax (``optax.contrib.ademamix``, the reference) has no built-in warm-up: ``b3`` and
       ``alpha`` take schedules, which optax calls with its count *before* the step (0 on
       the first step), while the paper (and this class) evaluates them at :math:`t` = 1 on
       the first step. The mapping that agrees is the paper's formulas above passed as
       ``alpha=lambda c: f_alpha(c + 1)`` and ``b3=lambda c: f_beta3(c + 1)``. optax's
       default ``alpha`` is 5.0 for ``ademamix`` (6.0 for ``scale_by_ademamix``); its
       ``eps_root`` (inside the root) must stay 0, and its decay adds
       :math:`\lambda\theta_{{t-1}}` to the update before scaling by :math:`\gamma`, the
       same step. The authors' PyTorch code uses :math:`t` = 1 on the first step as here
       (their optax code is one step behind, like optax), but computes the
       :math:`\beta_3` schedule with :math:`\ln(\beta + 10^{{-8}})`; it also allows
       separate warm-ups for :math:`\alpha` and :math:`\beta_3`, which the paper's
       experiments set equal (one ``t_alpha_beta3`` here).

    .. note::
       The warm-up fraction :math:`t/T` is capped at 1 before it enters the
       :math:`\beta_3` formula; the value is the paper's unless :math:`\beta_1 > \beta_3`,
       where the paper's denominator would reach 0 after the warm-up (here
       :math:`\beta_{{3,t}} = \beta_3`). With ``t_alpha_beta3=None`` (the default),
       :math:`\alpha` and :math:`\beta_3` are constant from the first step. The step keeps
       three parameter-sized buffers, one more than Adam.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float, float], optional): decay rates :math:`\beta_1` of the
            fast average, :math:`\beta_2` of the second moment and :math:`\beta_3` of the
            slow average (default: (0.9, 0.999, 0.9999)).
        alpha (float, optional): weight :math:`\alpha` of the slow average in the
            numerator (default: 5.0, optax's; the authors' PyTorch code defaults to 2.0.
            Without a warm-up, :math:`\alpha` = 5 weighs the slow average fully from the
            first step: set ``t_alpha_beta3`` or a smaller ``alpha`` for short runs).
        t_alpha_beta3 (float, optional): warm-up length :math:`T` in steps of both
            :math:`\alpha` and :math:`\beta_3`; None for no warm-up (default: None).
        eps (float, optional): added to the denominator outside the square root
            (default: 1e-8).
        weight_decay (float, optional): decoupled decay :math:`\lambda`, scaled by the
            learning rate (AdamW style) (default: 0).
{_ARGS_DOC}

    Reference: Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster,
    Older", ICLR 2025, https://arxiv.org/abs/2409.03137 (Algorithm 1).

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.AdEMAMix([w], lr=0.05, betas=(0.9, 0.999, 0.99), alpha=2.0)
        >>> for _ in range(300):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(moments=("exp_avg", "exp_avg_slow"), second_moments=("exp_avg_sq",),
                                fusable=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor, float | Tensor] = (0.9, 0.999, 0.9999),
        alpha: float | Tensor = 5.0,
        t_alpha_beta3: float | Tensor | None = None,
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 0.0,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_items("betas", betas, 3, "a triple (beta1, beta2, beta3)")
        for i, beta in enumerate(betas):
            check_range(f"betas[{i}]", beta, 0.0, 1.0)
        check_range("alpha", alpha, 0.0)
        if t_alpha_beta3 is not None:
            check_range("t_alpha_beta3", t_alpha_beta3, 0.0, low_open=True)
        check_range("eps", eps, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        defaults = dict(lr=lr, betas=betas, alpha=alpha, t_alpha_beta3=t_alpha_beta3,
                        eps=eps, weight_decay=weight_decay, maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)
