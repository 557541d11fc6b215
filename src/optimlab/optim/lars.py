"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_bool, check_range, common_args_doc, nonzero
from .capabilities import Capabilities
from .ops import add_scaled, norm

# LARS is not in torch.optim, so it takes no ``foreach`` argument.
_ARGS_DOC = common_args_doc(foreach=False)


def init(p: Tensor, **_) -> dict:
    # No step counter: the rule needs no bias correction.
    return {"momentum_buffer": torch.zeros_like(p, memory_format=torch.preserve_format)}


def local_lr(p: Tensor, g: Tensor, trust_coefficient, weight_decay, eps) -> Tensor:
    r"""The paper's local learning rate :math:`\eta\|w\| / (\|g\| + \lambda\|w\| + \epsilon)`.

    The norms are taken over the whole tensor (one "layer"), their squares summed in float64
    (:func:`~optimlab.optim.ops.norm`); the ratio is 1 where
    :math:`\|w\|` or the denominator is 0 (as optax). No data-dependent Python branch, so it
    is vmap- and compile-friendly, like LAMB's ``trust_ratio``.
    """
    w_norm = norm(p)
    denom = norm(g)
    if nonzero(weight_decay):
        denom = denom + weight_decay * w_norm
    if nonzero(eps):
        denom = denom + eps
    ok = (w_norm > 0) & (denom > 0)
    ratio = trust_coefficient * w_norm / torch.where(ok, denom, 1)
    return torch.where(ok, ratio, torch.ones_like(w_norm))


def update(p, g, state, *, lr, momentum, weight_decay, trust_coefficient, eps, nesterov,
           **_) -> Tensor:
    ratio = local_lr(p, g, trust_coefficient, weight_decay, eps)
    if nonzero(weight_decay):
        g = add_scaled(g, p, weight_decay)
    u = ratio * g
    buf = state["momentum_buffer"] = add_scaled(u, state["momentum_buffer"], momentum)
    d = add_scaled(u, buf, momentum) if nesterov else buf
    return add_scaled(p, d, -lr)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \mu \text{ (momentum)}, \lambda
            \text{ (weight decay)}, \eta \text{ (trust coefficient)}, \epsilon,
            \theta_0, f(\theta)\\
       &\textbf{init}: b_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad r_t \leftarrow \begin{cases} \dfrac{\eta\,\|\theta_{t-1}\|}
            {\|g_t\| + \lambda\|\theta_{t-1}\| + \epsilon} &
            \|\theta_{t-1}\| > 0 \text{ and the denominator} > 0\\
            1 & \text{otherwise}\end{cases}
            \quad \text{(norms per parameter tensor)}\\
       &\quad u_t \leftarrow r_t\,(g_t + \lambda\theta_{t-1})\\
       &\quad b_t \leftarrow \mu b_{t-1} + u_t\\
       &\quad d_t \leftarrow \begin{cases} u_t + \mu b_t & \text{nesterov}\\
            b_t & \text{otherwise}\end{cases}\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \gamma\, d_t
       \end{aligned}
"""


class LARS(RuleOptimizer):
    __doc__ = rf"""LARS: SGD with momentum and a layer-wise trust ratio, for large batches.

    Each parameter tensor is one "layer": its gradient plus the weight decay is rescaled by
    the paper's local learning rate, so that the step's size is about
    :math:`\gamma\eta\|\theta\|` whatever the gradient's scale, then accumulated in a
    heavy-ball (or Nesterov) momentum buffer.
{_RULE}
    .. warning::
       The paper (Algorithm 1) leaves implementations room in the order of the operations.
       This class takes optax's order (``optax.lars``): the decay is added to the gradient,
       the trust ratio scales that sum, and momentum accumulates the scaled update; the
       learning rate then multiplies the buffer, and the ratio's denominator is the
       paper's (both differences below). Other implementations order them differently
       (some apply the ratio to the momentum-averaged direction, i.e. momentum before the
       ratio), which changes the trajectory. optax (and the paper) put the learning rate
       *inside* the momentum buffer (:math:`b_t = \mu b_{{t-1}} + \gamma r_t u_t`); here,
       as in ``torch.optim.SGD``, it multiplies the buffer. The two agree exactly for a
       constant learning rate and differ only when it changes during training.

    .. warning::
       The ratio's denominator is the paper's (eq. 6),
       :math:`\|g\| + \lambda\|\theta\| + \epsilon`. optax's ``scale_by_trust_ratio``
       uses the norm of the decayed gradient, :math:`\|g + \lambda\theta\| + \epsilon`.
       The two agree when ``weight_decay=0`` (then
       ``optax.lars(lr, 0.0, trust_coefficient=η, eps=ε, momentum=μ, nesterov=...)`` is
       this rule); with decay, optax's ratio must be replaced by the paper's to agree.
       optax's ``weight_decay_mask`` and ``trust_ratio_mask`` (commonly used to exclude
       biases and normalisation layers) are not options here: every tensor gets the
       decay and the ratio; use parameter groups (e.g. ``weight_decay=0`` for biases) to
       exclude the decay.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): global learning rate :math:`\gamma` (default: 1.0).
        momentum (float, optional): momentum factor :math:`\mu` (default: 0.9).
        weight_decay (float, optional): L2 penalty :math:`\lambda`, added to the gradient
            before the trust ratio scales it, and part of the ratio's denominator
            (default: 0).
        trust_coefficient (float, optional): the trust coefficient :math:`\eta`, how far
            one step moves relative to the weight norm (default: 0.001).
        eps (float, optional): added to the ratio's denominator (default: 0).
        nesterov (bool, optional): Nesterov momentum; needs momentum > 0 (default: False).
{_ARGS_DOC}

    Reference: You, Gitman & Ginsburg, "Large Batch Training of Convolutional Networks",
    2017, https://arxiv.org/abs/1708.03888 (Algorithm 1).

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.LARS([w], lr=10.0)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.1)
        True
    """

    # per-tensor trust ratio: vmapped over a population's members
    capabilities = Capabilities(moments=("momentum_buffer",), batching="vmap", fusable=True)
    init = staticmethod(init)
    update = staticmethod(update)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1.0,
        momentum: float | Tensor = 0.9,
        weight_decay: float | Tensor = 0.0,
        trust_coefficient: float | Tensor = 0.001,
        eps: float | Tensor = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_range("momentum", momentum, 0.0, 1.0)
        check_range("weight_decay", weight_decay, 0.0)
        check_range("trust_coefficient", trust_coefficient, 0.0, low_open=True)
        check_range("eps", eps, 0.0)
        check_bool("nesterov", nesterov)
        if nesterov and not (isinstance(momentum, Tensor) or momentum > 0):
            raise ValueError("nesterov=True needs momentum > 0")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        trust_coefficient=trust_coefficient, eps=eps, nesterov=nesterov,
                        maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)
