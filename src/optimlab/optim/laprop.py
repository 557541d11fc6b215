"""LaProp: momentum of the normalised gradient (Ziyin, Wang & Ueda 2020)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .adam import init as adam_init
from .base import RuleOptimizer, check_betas, check_bool, check_range, common_args_doc, nonzero
from .capabilities import Capabilities
from .cautious import cautious as cautious_mask
from .ops import add_scaled, addcmul

# LaProp is not in torch.optim, so it takes no ``foreach`` argument.
_ARGS_DOC = common_args_doc(foreach=False)


# the state is Adam's: m, v, and v's running maximum with amsgrad
init = adam_init


def update(p, g, state, *, step, lr, betas, eps, weight_decay, decoupled_weight_decay=True,
           amsgrad=False, cautious=False, **_) -> Tensor:
    beta1, beta2 = betas
    decay = nonzero(weight_decay)
    if decay and not decoupled_weight_decay:
        g = add_scaled(g, p, weight_decay)
    v = state["exp_avg_sq"] = addcmul(state["exp_avg_sq"] * beta2, g, g, 1 - beta2)
    if amsgrad:
        v = state["max_exp_avg_sq"] = torch.maximum(state["max_exp_avg_sq"], v)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    # the gradient is normalised first (eps outside the root, after the bias correction),
    # and the momentum averages the normalised gradients: Adam's two steps swapped
    denom = v.sqrt() / bias_correction2**0.5 + eps
    m = state["exp_avg"] = torch.lerp(state["exp_avg"], g / denom, 1 - beta1)
    if cautious:
        m = cautious_mask(m, g)  # for the step only: the stored momentum is not masked
    p = add_scaled(p, m, -lr / bias_correction1)
    if decay and decoupled_weight_decay:
        # after the step, as the authors' code and pytorch_optimizer decay the weights
        p = p * (1 - lr * weight_decay)
    return p


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \lambda
            \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ v_0 \leftarrow 0,\ v^{max}_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad \textbf{if not}\ \text{decoupled}:\ g_t \leftarrow g_t + \lambda\theta_{t-1}\\
       &\quad v_t \leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
            \hat v_t \leftarrow v_t\\
       &\quad \textbf{if}\ \text{amsgrad}:\ \hat v_t \leftarrow \max(v^{max}_{t-1}, v_t)
            =: v^{max}_t\\
       &\quad m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1)\,
            \frac{g_t}{\sqrt{\hat v_t/(1-\beta_2^t)} + \epsilon}\\
       &\quad u_t \leftarrow m_t;\quad \textbf{if}\ \text{cautious}:\
            \phi_t \leftarrow \mathbb{1}[m_t \odot g_t > 0],\
            u_t \leftarrow m_t \odot \phi_t\, d / (\textstyle\sum_i \phi_{t,i} + 1)\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\, u_t\\
       &\quad \textbf{if}\ \text{decoupled}:\ \theta_t \leftarrow \theta_t(1 - \gamma\lambda)
       \end{aligned}
"""


class LaProp(RuleOptimizer):
    __doc__ = rf"""LaProp: a momentum average of RMSprop-normalised gradients.

    Adam averages the raw gradients and divides the average by :math:`\sqrt{{v_t}}`; LaProp
    divides each gradient by :math:`\sqrt{{v_t}}` first and averages the normalised
    gradients, as SGD with momentum averages gradients. The two rates no longer interact:
    the step is bounded for any :math:`\beta_1, \beta_2 < 1` (Adam's only while
    :math:`\beta_1 < \sqrt{{\beta_2}}`), and :math:`\beta_2 \to 0` turns it into
    signed-gradient descent with momentum. Its state and memory are Adam's.
{_RULE}
    .. warning::
       The reference, ``pytorch_optimizer.LaProp`` (4.1.0), differs in four places (the
       tests' mapping, ``tests/oracles/package_reference.py``, pins the second and third):

       * Learning rate: the reference (as the authors' code) keeps it *inside* the momentum
         and divides by a running average of the rates; here, as in the paper,
         :math:`\gamma_t` multiplies the bias-corrected momentum. Identical at a constant
         rate; under a schedule the reference weighs past normalised gradients by the rates
         they were taken with.
       * :math:`\epsilon`: the reference adds it before the bias correction,
         :math:`(\sqrt{{v_t + 10^{{-15}}}} + \epsilon)/\sqrt{{1-\beta_2^t}}`; here it is added
         after, as in the authors' code. Setting the reference's ``eps`` to
         :math:`\epsilon\sqrt{{1-\beta_2^t}}` before each step makes them agree, but for its
         :math:`10^{{-15}}` inside the root (a relative :math:`10^{{-15}}/2v`, seen in float64
         only where :math:`v \lesssim 10^{{-5}}`).
       * L2 decay: the reference's ``weight_decouple=False`` adds :math:`\lambda\theta` to
         ``p.grad`` *after* the step has used it, so it has no effect on the update;
         ``decoupled_weight_decay=False`` here adds it to the gradient before both moments
         (the reference with ``weight_decay=0`` fed :math:`g_t + \lambda\theta_{{t-1}}`).
       * Its ``foreach`` path rounds the step size :math:`1/(1-\beta_1^t)` to float32;
         compare with ``foreach=False``.

       The decoupled decay (the default, as in the reference) is applied after the step,
       as the reference and the authors' code do, and scaled by :math:`\gamma` as the
       reference's default (the authors' code does not scale it: the reference's
       ``fixed_decay=True``). The reference's ``centered`` option (the second moment minus
       the squared mean after 10 steps) is an extra of the authors' code, not of the paper,
       and is not offered.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 4e-4, the
            authors').
        betas (tuple[float, float], optional): decay rates of the momentum and of the
            second moment, :math:`(\beta_1, \beta_2)`, free of Adam's constraint
            (default: (0.9, 0.999)).
        eps (float, optional): :math:`\epsilon > 0`, added to the bias-corrected root
            (default: 1e-15, the authors').
        weight_decay (float, optional): decay :math:`\lambda`: decoupled (scaled by
            :math:`\gamma`) or, with ``decoupled_weight_decay=False``, an L2 term added to the
            gradient (default: 0).
        decoupled_weight_decay (bool, optional): decay the weights directly after the step
            rather than through the gradient (default: True).
        amsgrad (bool, optional): normalise by the running maximum of :math:`v_t`
            (default: False).
        cautious (bool, optional): step only where the momentum agrees in sign with the
            gradient (Liang et al. 2024, :mod:`optimlab.optim.cautious`) (default: False).
{_ARGS_DOC}

    Reference: Ziyin, Wang & Ueda, "LaProp: Separating Momentum and Adaptivity in Adam",
    2020, https://arxiv.org/abs/2002.04839 (Algorithm 1).

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.LaProp([w], lr=0.05)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(moments=("exp_avg",),
                                second_moments=("exp_avg_sq", "max_exp_avg_sq"), fusable=True,
                                reduces_when=("cautious",))

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 4e-4,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-15,
        weight_decay: float | Tensor = 0.0,
        decoupled_weight_decay: bool = True,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
        cautious: bool = False,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas)
        # eps is the only floor of the divisor: 0 would give 0/0 where every gradient so far
        # has been 0 (the reference has a 1e-15 inside its root for that)
        check_range("eps", eps, 0.0, low_open=True)
        check_range("weight_decay", weight_decay, 0.0)
        check_bool("decoupled_weight_decay", decoupled_weight_decay)
        check_bool("amsgrad", amsgrad)
        check_bool("cautious", cautious)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, amsgrad=amsgrad,
                        maximize=maximize, fused=fused, cautious=cautious)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)
