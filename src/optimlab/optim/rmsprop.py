"""RMSprop (Hinton 2012), with optional momentum and the centered variant (Graves 2013)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import COMMON_ARGS_DOC, RuleOptimizer, check_range, nonzero, scalar_step, torch_flags_doc
from .capabilities import Capabilities
from .ops import add_scaled, addcdiv, addcmul


def init(p: Tensor, *, momentum=0, centered=False, **_) -> dict:
    state = {
        "step": scalar_step(),
        "square_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
    }
    if nonzero(momentum):
        state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    if centered:
        state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state


def update(p, g, state, *, lr, alpha, eps, weight_decay, momentum, centered, **_) -> Tensor:
    if nonzero(weight_decay):
        g = add_scaled(g, p, weight_decay)
    # addcmul/addcdiv with the coefficient as ``value``, as torch writes them: in bfloat16
    # and float16 each rounds once (computed in float32), where ``a * b + c`` rounds per op
    v = state["square_avg"] = addcmul(state["square_avg"] * alpha, g, g, 1 - alpha)
    if centered:
        m = state["grad_avg"] = torch.lerp(state["grad_avg"], g, 1 - alpha)
        v = torch.addcmul(v, -m, m)
    avg = v.sqrt() + eps
    if nonzero(momentum):
        buf = state["momentum_buffer"] = addcdiv(state["momentum_buffer"] * momentum, g, avg, 1)
        if isinstance(momentum, Tensor):
            # a population's per-member column (or the fused kernel's input) may be 0 for
            # some members: those step as RMSprop(momentum=0) does alone
            return torch.where(momentum != 0, add_scaled(p, buf, -lr), addcdiv(p, g, avg, -lr))
        return add_scaled(p, buf, -lr)
    return addcdiv(p, g, avg, -lr)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \alpha \text{ (smoothing)}, \epsilon,
            \lambda \text{ (weight decay)}, \mu \text{ (momentum)}, \theta_0, f(\theta)\\
       &\textbf{init}: v_0 \leftarrow 0,\ \bar g_0 \leftarrow 0,\ b_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1}) + \lambda\theta_{t-1}
            \quad (- \text{ if maximize})\\
       &\quad v_t \leftarrow \alpha v_{t-1} + (1-\alpha) g_t^2\\
       &\quad \tilde v_t \leftarrow v_t\\
       &\quad \textbf{if}\ \text{centered}:\ \bar g_t \leftarrow \alpha \bar g_{t-1}
            + (1-\alpha) g_t,\ \tilde v_t \leftarrow v_t - \bar g_t^2\\
       &\quad \textbf{if}\ \mu > 0:\ b_t \leftarrow \mu b_{t-1}
            + g_t / (\sqrt{\tilde v_t} + \epsilon),\
            \theta_t \leftarrow \theta_{t-1} - \gamma b_t\\
       &\quad \textbf{else}:\ \theta_t \leftarrow \theta_{t-1}
            - \gamma\, g_t / (\sqrt{\tilde v_t} + \epsilon)
       \end{aligned}
"""


class RMSprop(RuleOptimizer):
    __doc__ = rf"""RMSprop: divide the gradient by a running root mean square of recent gradients.

    Drop-in for ``torch.optim.RMSprop`` (same arguments, defaults and numerics).
{_RULE}
    .. warning::
       ``eps`` is added *outside* the square root, as in torch. TensorFlow/Keras put it
       inside (:math:`\sqrt{{v_t + \epsilon}}`) and default to ``epsilon=1e-7`` with
       ``rho=0.9``, so the same numbers give a different optimizer, most visibly while
       :math:`v_t` is small. With momentum, torch (like here) applies the learning rate
       to the buffer, while TF accumulates :math:`\gamma g_t / \ldots` in it; the two
       differ when the learning rate is scheduled.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-2).
        alpha (float, optional): smoothing constant :math:`\alpha` of the running average
            of squared gradients (default: 0.99).
        eps (float, optional): added to the denominator outside the square root
            (default: 1e-8).
        weight_decay (float, optional): L2 penalty :math:`\lambda` (default: 0).
        momentum (float, optional): momentum factor :math:`\mu` (default: 0).
        centered (bool, optional): divide by an estimate of the gradient's variance
            instead of its second moment (Graves 2013) (default: False).
{COMMON_ARGS_DOC}{torch_flags_doc()}

    References: Hinton, Srivastava & Swersky, "Neural Networks for Machine Learning",
    lecture 6e (2012), https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf;
    Graves, "Generating Sequences With Recurrent Neural Networks", 2013,
    https://arxiv.org/abs/1308.0850 (centered form).

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.0, -1.0], requires_grad=True)
        >>> opt = optimlab.RMSprop([w], lr=0.01)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(moments=("momentum_buffer", "grad_avg"), second_moments=("square_avg",),
                                fusable=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        alpha: float | Tensor = 0.99,
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 0,
        momentum: float | Tensor = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        *,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_range("alpha", alpha, 0.0, None)
        check_range("eps", eps, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        check_range("momentum", momentum, 0.0)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize, foreach=foreach, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite, capturable=capturable,
                         differentiable=differentiable,
                         state_precision=state_precision)
