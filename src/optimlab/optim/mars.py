"""MARS: variance reduction with a preconditioned step (Yuan et al. 2024), MARS-AdamW."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .adam import bias_corrected_step
from .base import (
    RuleOptimizer,
    argument_error,
    check_betas,
    check_bool,
    check_range,
    common_args_doc,
    nonzero,
    scalar_step,
)
from .capabilities import Capabilities
from .lion import _sign
from .ops import add_scaled, addcmul, norm

# MARS is not in torch.optim, so it takes no ``foreach`` argument.
_ARGS_DOC = common_args_doc(foreach=False)

#: the preconditioners: the paper's MARS-AdamW and MARS-Lion (MARS-Shampoo is not here)
#: (option values, not optimizer names: the step's preconditioner)
ADAMW_TYPE, LION_TYPE = "adamw", "lion"
MARS_TYPES = (ADAMW_TYPE, LION_TYPE)


def init(p: Tensor, *, mars_type: str = "adamw", amsgrad: bool = False, **_) -> dict:
    state = {
        "step": scalar_step(),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        # the previous step's gradient (MARS-approx); 0 before the first step
        "last_grad": torch.zeros_like(p, memory_format=torch.preserve_format),
    }
    if mars_type == ADAMW_TYPE:
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if amsgrad:
            state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state


def clip_to_unit_norm(c: Tensor) -> Tensor:
    r""":math:`c / \max(1, \|c\|_2)`, the norm (:func:`~optimlab.optim.ops.norm`) over the
    whole tensor (one per member under ``torch.func.vmap``, one per tensor of a multi-tensor
    list)."""
    return c / torch.clamp(norm(c), min=1.0)


def update(p, g, state, *, step, lr, betas, gamma, eps, weight_decay, mars_type="adamw",
           amsgrad=False, **_) -> Tensor:
    beta1, beta2 = betas
    # c = g + gamma * beta1/(1-beta1) * (g - g_prev), clipped to norm 1 per tensor
    c = clip_to_unit_norm(add_scaled(g, g - state["last_grad"], gamma * beta1 / (1 - beta1)))
    state["last_grad"] = g.clone()  # a copy: the caller may zero or reuse .grad in place
    m = state["exp_avg"] = torch.lerp(state["exp_avg"], c, 1 - beta1)
    if nonzero(weight_decay):
        p = p * (1 - lr * weight_decay)
    if mars_type == LION_TYPE:
        return p - lr * _sign(m)
    v = state["exp_avg_sq"] = addcmul(state["exp_avg_sq"] * beta2, c, c, 1 - beta2)
    if amsgrad:
        v = state["max_exp_avg_sq"] = torch.maximum(state["max_exp_avg_sq"], v)
    return bias_corrected_step(p, m, v, step=step, lr=lr, betas=betas, eps=eps)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \eta \text{ (lr)}, \beta_1, \beta_2, \gamma, \epsilon, \lambda
            \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ v_0 \leftarrow 0,\ \hat v^{max}_0 \leftarrow 0,\
            g_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad c_t \leftarrow g_t + \gamma\,\frac{\beta_1}{1-\beta_1}\,(g_t - g_{t-1})\\
       &\quad \tilde c_t \leftarrow c_t / \max(1, \|c_t\|_2)
            \quad \text{(norm per parameter tensor)}\\
       &\quad m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1)\tilde c_t\\
       &\quad \textbf{if}\ \text{lion}:\ \theta_t \leftarrow \theta_{t-1}(1 - \eta\lambda)
            - \eta\,\mathrm{sign}(m_t)\\
       &\quad \textbf{else}:\ v_t \leftarrow \beta_2 v_{t-1} + (1-\beta_2)\tilde c_t^2,\quad
            \hat v_t \leftarrow v_t;\ \textbf{if}\ \text{amsgrad}:\
            \hat v_t \leftarrow \max(\hat v^{max}_{t-1}, v_t) =: \hat v^{max}_t\\
       &\quad\quad \theta_t \leftarrow \theta_{t-1}(1 - \eta\lambda)
            - \frac{\eta}{1-\beta_1^t}\,\frac{m_t}{\sqrt{\hat v_t}/\sqrt{1-\beta_2^t} + \epsilon}
       \end{aligned}
"""


class MARS(RuleOptimizer):
    __doc__ = rf"""MARS: AdamW on a variance-reduced gradient (scaled recursive momentum).

    MARS ("Make vAriance Reduction Shine") corrects each gradient with the change since the
    previous step, :math:`c_t = g_t + \gamma\frac{{\beta_1}}{{1-\beta_1}}(g_t - g_{{t-1}})`, a
    STORM-style estimator scaled by :math:`\gamma`, clips it to norm 1 per tensor, and feeds it
    to AdamW's moments (MARS-AdamW, the paper's Algorithm 2) or takes the sign of its average
    (MARS-Lion). This is the practical "MARS-approx": :math:`g_{{t-1}}` is the previous
    step's gradient (on the previous batch), so a step costs one gradient, like AdamW, and one
    more buffer. With ``gamma=0`` it is AdamW on the norm-clipped gradient.
{_RULE}
    .. warning::
       The reference ``pytorch_optimizer.MARS`` differs in three places. (1) By default
       (``optimize_1d=False``) it steps 1-D parameters (biases, norms) with plain AdamW and
       separate ``lr_1d``, ``betas_1d`` and ``weight_decay_1d`` (0.1), as the authors' code
       does; here every tensor takes the MARS step of the paper's algorithm. Set
       ``optimize_1d=True`` there to agree, or give the 1-D parameters to
       :class:`~optimlab.AdamW` here. (2) Its denominator is
       :math:`(\sqrt{{v_t + 10^{{-15}}}} + \epsilon)/\sqrt{{1-\beta_2^t}}`, so its
       :math:`\epsilon` is divided by :math:`\sqrt{{1-\beta_2^t}}` (ten times larger on the
       first step at :math:`\beta_2 = 0.99`); here :math:`\epsilon` is outside the corrected
       root, as in the paper and the authors' code. Setting its ``eps`` to
       :math:`\epsilon\sqrt{{1-\beta_2^t}}` before each step makes the two agree (up to the
       :math:`10^{{-15}}` inside its root). (3) Its ``ams_bound`` is ``amsgrad`` here, and
       its ``cautious`` option and the MARS-Shampoo variant (``mars_type="shampoo"``) are
       not offered.

    .. note::
       :math:`g_0 = 0`, as in the authors' code and ``pytorch_optimizer``, so the first
       correction is :math:`\gamma\frac{{\beta_1}}{{1-\beta_1}} g_1` (the paper's exact form,
       which evaluates two gradients per step, has none at :math:`t = 1`; timm's ``Mars``
       takes :math:`c_1 = g_1`, unclipped). The clip bounds the corrected gradient, not the
       step: as in Adam, the step's size is set by :math:`\eta`. MARS-Lion keeps no
       :math:`v`; its ``eps``, ``amsgrad`` and :math:`\beta_2` are unused. Weight decay is
       decoupled and scaled by the learning rate, as in AdamW.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\eta` (default: 3e-3, the
            authors').
        betas (tuple[float, float], optional): decay rates of the first and second moment
            (default: (0.95, 0.99), the authors').
        gamma (float, optional): scale :math:`\gamma` of the gradient correction; 0 turns
            it off (default: 0.025, the authors').
        mars_type (str, optional): the preconditioner, ``"adamw"`` (MARS-AdamW) or
            ``"lion"`` (MARS-Lion: the step is :math:`\mathrm{{sign}}(m_t)`)
            (default: "adamw").
        eps (float, optional): added to the denominator *outside* the square root
            (default: 1e-8).
        weight_decay (float, optional): decoupled decay :math:`\lambda`, scaled by the
            learning rate (default: 0).
        amsgrad (bool, optional): divide by the running maximum of :math:`v_t`, as in
            AMSGrad (MARS-AdamW only) (default: False).
{_ARGS_DOC}

    Reference: Yuan, Liu, Wu, Zhou & Gu, "MARS: Unleashing the Power of Variance Reduction
    for Training Large Models", ICML 2025, https://arxiv.org/abs/2411.10438 (Algorithm 2,
    with the "MARS-approx" correction that reuses the previous step's gradient); the
    authors' code is https://github.com/AGI-Arena/MARS.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.MARS([w], lr=0.05)
        >>> for _ in range(300):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    # the clip takes the norm of a whole tensor: populations map the rule with vmap
    capabilities = Capabilities(batching="vmap", moments=("exp_avg",),
                                second_moments=("exp_avg_sq", "max_exp_avg_sq"), fusable=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 3e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.95, 0.99),
        gamma: float | Tensor = 0.025,
        mars_type: str = "adamw",
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas)
        check_range("gamma", gamma, 0.0)
        if not isinstance(mars_type, str) or mars_type not in MARS_TYPES:
            raise argument_error(isinstance(mars_type, str))(
                f"mars_type must be one of {', '.join(map(repr, MARS_TYPES))}, got {mars_type!r}")
        check_range("eps", eps, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        check_bool("amsgrad", amsgrad)
        defaults = dict(lr=lr, betas=betas, gamma=gamma, mars_type=mars_type, eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)
