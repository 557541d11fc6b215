"""LAMB: layer-wise adaptive moments for large batches (You et al. 2019)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_betas, check_range, common_args_doc, nonzero, scalar_step
from .capabilities import Capabilities
from .ops import norm

# LAMB is not in torch.optim, so it takes no ``foreach`` argument.
_ARGS_DOC = common_args_doc(foreach=False)


def init(p: Tensor, **_) -> dict:
    return {
        "step": scalar_step(),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def trust_ratio(p: Tensor, u: Tensor) -> Tensor:
    r"""The layer-wise trust ratio :math:`\|w\| / \|u\|`, 1 where either norm is 0.

    The norms are taken over the whole tensor (one "layer"), their squares summed in float64
    (:func:`~optimlab.optim.ops.norm`). A population whose ``p``
    carries a leading member axis maps this function over that axis with
    ``torch.func.vmap(trust_ratio)(p, u)``, which gives each member its own ratio (shape
    ``(members,)``, to be broadcast back over the trailing axes). It uses no data-dependent
    Python branch, so it is vmap- and compile-friendly.
    """
    w_norm = norm(p)
    u_norm = norm(u)
    ok = (w_norm > 0) & (u_norm > 0)
    return torch.where(ok, w_norm / torch.where(ok, u_norm, 1), torch.ones_like(w_norm))


def update(p, g, state, *, step, lr, betas, eps, weight_decay, **_) -> Tensor:
    beta1, beta2 = betas
    m = state["exp_avg"] = torch.lerp(state["exp_avg"], g, 1 - beta1)
    v = state["exp_avg_sq"] = state["exp_avg_sq"] * beta2 + (1 - beta2) * g * g
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    u = (m / bias_correction1) / (v.sqrt() / bias_correction2**0.5 + eps)
    if nonzero(weight_decay):
        u = u + weight_decay * p
    return p - lr * trust_ratio(p, u) * u


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \lambda
            \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ v_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t\\
       &\quad v_t \leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2\\
       &\quad u_t \leftarrow \frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}
            + \lambda\theta_{t-1}\\
       &\quad r_t \leftarrow \begin{cases} \|\theta_{t-1}\| / \|u_t\| &
            \|\theta_{t-1}\| > 0 \text{ and } \|u_t\| > 0\\ 1 & \text{otherwise}\end{cases}
            \quad \text{(norms per parameter tensor)}\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \gamma\, r_t\, u_t
       \end{aligned}
"""


class LAMB(RuleOptimizer):
    __doc__ = rf"""LAMB: Adam with a layer-wise trust ratio, for large-batch training.

    Each parameter tensor is one "layer": its bias-corrected Adam direction plus the
    decoupled weight decay is rescaled so that the step's size is
    :math:`\gamma\|\theta\|`, whatever the gradient's scale.
{_RULE}
    .. note::
       This is Algorithm 2 of the paper with the scaling function :math:`\phi` the identity
       and bias correction on both moments. Other implementations differ: NVIDIA apex's
       ``FusedLAMB`` clips the global gradient norm first (``max_grad_norm=1.0``), timm's
       ``Lamb`` can clip the ratio (``trust_clip``), TensorFlow Addons can exclude layers
       from the decay and the adaptation, and the paper's first arXiv version had no bias
       correction. None of those is done here.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float], optional): decay rates of the first and second moment
            estimates (default: (0.9, 0.999)).
        eps (float, optional): added to the denominator outside the square root
            (default: 1e-6).
        weight_decay (float, optional): decoupled decay :math:`\lambda`, added to the Adam
            direction *before* the trust ratio (default: 0).
{_ARGS_DOC}

    Reference: You et al., "Large Batch Optimization for Deep Learning: Training BERT in
    76 minutes", ICLR 2020, https://arxiv.org/abs/1904.00962.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.LAMB([w], lr=0.05)
        >>> for _ in range(200):
        ...     opt.zero_grad(); ((w - 1.0) ** 2).sum().backward(); opt.step()
        >>> bool((w - 1.0).abs().max() < 0.1)
        True
    """

    capabilities = Capabilities(moments=("exp_avg",), second_moments=("exp_avg_sq",), batching="vmap",
                                fusable=True)  # per-tensor trust ratio
    init = staticmethod(init)
    update = staticmethod(update)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-6,
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
