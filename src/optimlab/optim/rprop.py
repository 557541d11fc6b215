"""Rprop (Riedmiller & Braun 1993): sign-based steps with per-coordinate adaptive sizes."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_pair, check_range, common_args_doc, scalar_step, torch_flags_doc
from .capabilities import Capabilities


def init(p: Tensor, *, lr, **_) -> dict:
    if isinstance(lr, Tensor):
        step_size = (torch.zeros_like(p) + lr).to(p.dtype)
    else:
        step_size = torch.full_like(p, lr, memory_format=torch.preserve_format)
    return {
        "step": scalar_step(),
        "prev": torch.zeros_like(p, memory_format=torch.preserve_format),
        "step_size": step_size,
    }


def update(p, g, state, *, etas, step_sizes, **_) -> Tensor:
    etaminus, etaplus = etas
    step_size_min, step_size_max = step_sizes
    sign = (g * state["prev"]).sign()
    # Same sign: grow the step; sign change: shrink it; a zero product (or NaN) keeps it.
    factor = torch.where(sign > 0, etaplus,
                         torch.where(sign < 0, etaminus, torch.where(sign == 0, 1.0, sign)))
    step_size = state["step_size"] = torch.clamp(state["step_size"] * factor,
                                                 step_size_min, step_size_max)
    # After a sign change the gradient counts as zero: no move now, no shrink next step.
    g = torch.where(sign < 0, 0.0, g)
    state["prev"] = g
    return p - g.sign() * step_size


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, (\eta_-, \eta_+) \text{ (etas)},
            (\Gamma_{min}, \Gamma_{max}) \text{ (step sizes)}, \theta_0, f(\theta)\\
       &\textbf{init}: g_0^{prev} \leftarrow 0,\ \eta_0 \leftarrow \gamma\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad \eta_t \leftarrow \begin{cases}
            \min(\eta_{t-1}\eta_+, \Gamma_{max}) & g_t g_{t-1}^{prev} > 0\\
            \max(\eta_{t-1}\eta_-, \Gamma_{min}),\ g_t \leftarrow 0 & g_t g_{t-1}^{prev} < 0\\
            \eta_{t-1} & \text{otherwise}\end{cases}\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \eta_t \operatorname{sign}(g_t)\\
       &\quad g_t^{prev} \leftarrow g_t
       \end{aligned}
"""


class Rprop(RuleOptimizer):
    __doc__ = rf"""Rprop: resilient backpropagation, steps of adaptive size along the gradient's sign.

    Drop-in for ``torch.optim.Rprop`` (same arguments, defaults, state and numerics).
{_RULE}
    .. note::
       This is the variant torch implements (Rprop without weight backtracking, often
       called Rprop-): after a sign change the step is not undone, the gradient is just
       treated as zero. Rprop relies on the gradient's sign being reliable, so it suits
       full-batch training; with noisy mini-batch gradients use RMSprop instead.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): initial step size :math:`\gamma` of every
            coordinate (default: 1e-2).
        etas (tuple[float, float], optional): multiplicative decrease and increase
            factors :math:`(\eta_-, \eta_+)`, with :math:`0 < \eta_- < 1 < \eta_+`
            (default: (0.5, 1.2)).
        step_sizes (tuple[float, float], optional): minimal and maximal step size
            (default: (1e-6, 50)).
{common_args_doc(state_precision=False)}{torch_flags_doc()}

    Reference: Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation
    Learning: The RPROP Algorithm", IEEE ICNN 1993, https://doi.org/10.1109/ICNN.1993.298623.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.0, -1.0], requires_grad=True)
        >>> opt = optimlab.Rprop([w], lr=0.1)
        >>> for _ in range(100):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 1e-3)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(fusable=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        etas: tuple[float | Tensor, float | Tensor] = (0.5, 1.2),
        step_sizes: tuple[float | Tensor, float | Tensor] = (1e-6, 50),
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_pair("etas", etas, None)
        check_range("etas[0]", etas[0], 0.0, 1.0, low_open=True)
        check_range("etas[1]", etas[1], 1.0, None, low_open=True)
        # torch leaves the step bounds unchecked; a negative or inverted pair flips the steps
        check_pair("step_sizes", step_sizes, 0.0)
        if step_sizes[0] > step_sizes[1]:
            raise ValueError(f"step_sizes must be (min, max) with min <= max, got {step_sizes!r}")
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach,
                        maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite, capturable=capturable,
                         differentiable=differentiable)
