"""Adadelta (Zeiler 2012): steps scaled by the ratio of RMS updates to RMS gradients."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import COMMON_ARGS_DOC, RuleOptimizer, check_range, nonzero, scalar_step, torch_flags_doc
from .capabilities import Capabilities
from .ops import add_scaled, addcmul


def init(p: Tensor, **_) -> dict:
    return {
        "step": scalar_step(),
        "square_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "acc_delta": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def update(p, g, state, *, lr, rho, eps, weight_decay, **_) -> Tensor:
    if nonzero(weight_decay):
        g = add_scaled(g, p, weight_decay)
    # addcmul with 1 - rho as ``value``, as torch writes it: in bfloat16 and float16 each rounds
    # once (computed in float32), where ``(1 - rho) * g`` first rounded to the narrow dtype
    v = state["square_avg"] = addcmul(state["square_avg"] * rho, g, g, 1 - rho)
    delta = (state["acc_delta"] + eps).sqrt() / (v + eps).sqrt() * g
    state["acc_delta"] = addcmul(state["acc_delta"] * rho, delta, delta, 1 - rho)
    return add_scaled(p, delta, -lr)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \rho \text{ (decay)}, \epsilon, \lambda
            \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: v_0 \leftarrow 0,\ u_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1}) + \lambda\theta_{t-1}
            \quad (- \text{ if maximize})\\
       &\quad v_t \leftarrow \rho v_{t-1} + (1-\rho) g_t^2\\
       &\quad \Delta x_t \leftarrow \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t\\
       &\quad u_t \leftarrow \rho u_{t-1} + (1-\rho) \Delta x_t^2\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \gamma \Delta x_t
       \end{aligned}
"""


class Adadelta(RuleOptimizer):
    __doc__ = rf"""Adadelta: an adaptive method whose step has the units of the parameter.

    Drop-in for ``torch.optim.Adadelta`` (same arguments, defaults and numerics).
{_RULE}
    .. note::
       The paper has no learning rate (it is 1 here, the default). As in torch, ``eps``
       sits inside both square roots, and it also sets the size of the very first steps
       (:math:`\sqrt{{\epsilon}}` in the numerator), so it matters more than in Adam.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): coefficient :math:`\gamma` that scales the delta
            before it is applied (default: 1.0).
        rho (float, optional): decay :math:`\rho` of the running averages of squared
            gradients and squared updates (default: 0.9).
        eps (float, optional): term :math:`\epsilon` inside the square roots
            (default: 1e-6).
        weight_decay (float, optional): L2 penalty :math:`\lambda` (default: 0).
{COMMON_ARGS_DOC}{torch_flags_doc()}

    Reference: Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012,
    https://arxiv.org/abs/1212.5701.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.0, -1.0], requires_grad=True)
        >>> opt = optimlab.Adadelta([w], lr=1.0, eps=1e-3)
        >>> for _ in range(300):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.1)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(second_moments=("square_avg", "acc_delta"), fusable=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1.0,
        rho: float | Tensor = 0.9,
        eps: float | Tensor = 1e-6,
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
        check_range("rho", rho, 0.0, 1.0, high_open=False)
        check_range("eps", eps, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite, capturable=capturable,
                         differentiable=differentiable,
                         state_precision=state_precision)
