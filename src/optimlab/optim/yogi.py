"""Yogi (Zaheer et al. 2018): Adam with an additive, sign-controlled second moment."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .adam import bias_corrected_step
from .base import RuleOptimizer, check_betas, check_range, common_args_doc, nonzero, scalar_step
from .capabilities import Capabilities
from .ops import add_scaled, addcmul

# Yogi is not in torch.optim, so it takes no ``foreach`` argument.
_ARGS_DOC = common_args_doc(foreach=False)


def init(p: Tensor, *, initial_accumulator_value=1e-6, **_) -> dict:
    if isinstance(initial_accumulator_value, Tensor):
        v0 = (torch.zeros_like(p) + initial_accumulator_value).to(p.dtype)
    else:
        v0 = torch.full_like(p, initial_accumulator_value, memory_format=torch.preserve_format)
    return {
        "step": scalar_step(),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg_sq": v0,
    }


def update(p, g, state, *, step, lr, betas, eps, weight_decay, **_) -> Tensor:
    beta1, beta2 = betas
    if nonzero(weight_decay):
        g = add_scaled(g, p, weight_decay)
    m = state["exp_avg"] = torch.lerp(state["exp_avg"], g, 1 - beta1)
    v = state["exp_avg_sq"]
    g2 = g * g
    # v - (1 - beta2) * sign(v - g^2) * g^2: moves v toward g^2 by at most (1 - beta2) g^2
    v = state["exp_avg_sq"] = addcmul(v, torch.sign(v - g2), g2, -(1 - beta2))
    return bias_corrected_step(p, m, v, step=step, lr=lr, betas=betas, eps=eps)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \lambda
            \text{ (weight decay)}, v_{init} \text{ (initial accumulator value)},
            \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ v_0 \leftarrow v_{init}\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1}) + \lambda\theta_{t-1}
            \quad (- \text{ if maximize})\\
       &\quad m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t\\
       &\quad v_t \leftarrow v_{t-1} - (1-\beta_2)\,\mathrm{sign}(v_{t-1} - g_t^2)\, g_t^2\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,
            \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}
       \end{aligned}
"""


class Yogi(RuleOptimizer):
    __doc__ = rf"""Yogi: Adam whose second moment moves additively, by at most (1-b2) g^2 a step.

    Adam's :math:`v_t = v_{{t-1}} - (1-\beta_2)(v_{{t-1}} - g_t^2)` can forget a large
    :math:`v` within a few steps of small gradients, so the effective learning rate jumps;
    Yogi replaces the difference by its sign times :math:`g_t^2`, so :math:`v` still follows
    :math:`g^2` but grows or shrinks slowly and controllably. The larger default
    :math:`\epsilon` (1e-3) is the paper's.
{_RULE}
    .. warning::
       optax (``optax.yogi``) starts the first moment at ``initial_accumulator_value`` too
       (:math:`m_0 = v_0 = 10^{{-6}}`); here :math:`m_0 = 0`, as in Adam, the paper and
       TF-Addons. To make optax agree, set ``mu`` of its ``ScaleByAdamState`` to zeros after
       ``init``. optax has no weight decay: the L2 term here is
       ``optax.chain(optax.add_decayed_weights(weight_decay), optax.scale_by_yogi(b1, b2,
       eps, initial_accumulator_value=...), optax.scale_by_learning_rate(lr))``.
       Both moments are bias corrected here as in Adam, as optax does: the paper's
       Algorithm 2 has no bias correction (its first steps are about 3x longer than these
       at the defaults), and TF-Addons corrects :math:`\gamma` by
       :math:`\sqrt{{1-\beta_2^t}}/(1-\beta_1^t)` with :math:`\epsilon` left uncorrected
       (Adam's "epsilon hat" form; it differs from this in the fourth digit). The
       correction divides :math:`v_0` too, so on the first step it weighs
       :math:`v_0/(1-\beta_2)` (1e-3 at the defaults), exactly as in optax.
       :math:`\epsilon` is outside the square root, as in the paper (optax's ``eps_root``,
       inside, is 0).

    .. note::
       The sign of an exact zero is 0 (:math:`v` is unchanged when it equals :math:`g^2`).
       A NaN gradient makes :math:`v` NaN, as in optax.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-2).
        betas (tuple[float, float], optional): decay rate of the first moment and the rate
            :math:`1-\beta_2` at which the second moment may move (default: (0.9, 0.999)).
        eps (float, optional): added to the denominator *outside* the square root
            (default: 1e-3, the paper's).
        initial_accumulator_value (float, optional): starting value :math:`v_{{init}}` of
            the second moment (default: 1e-6).
        weight_decay (float, optional): L2 penalty :math:`\lambda` added to the gradient
            (default: 0).
{_ARGS_DOC}

    Reference: Zaheer, Reddi, Sachan, Kale & Kumar, "Adaptive Methods for Nonconvex
    Optimization", NeurIPS 2018,
    https://papers.nips.cc/paper/8186-adaptive-methods-for-nonconvex-optimization
    (Algorithm 2; no arXiv version).

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.Yogi([w], lr=0.1)
        >>> for _ in range(200):
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
        lr: float | Tensor = 1e-2,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-3,
        initial_accumulator_value: float | Tensor = 1e-6,
        weight_decay: float | Tensor = 0,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas)
        check_range("eps", eps, 0.0)
        check_range("initial_accumulator_value", initial_accumulator_value, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        defaults = dict(lr=lr, betas=betas, eps=eps,
                        initial_accumulator_value=initial_accumulator_value,
                        weight_decay=weight_decay, maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)
