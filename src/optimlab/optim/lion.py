"""Lion: evolved sign momentum (Chen et al. 2023)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_betas, check_bool, check_range, common_args_doc, nonzero
from .capabilities import Capabilities
from .cautious import cautious as cautious_mask

# Lion is not in torch.optim, so it takes no ``foreach`` argument.
_ARGS_DOC = common_args_doc(foreach=False)


def init(p: Tensor, **_) -> dict:
    # No step counter: Lion has no bias correction.
    return {"exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format)}


def _sign(x: Tensor) -> Tensor:
    """``np.sign``: -1, 0 or 1, and NaN for NaN (``torch.sign`` maps NaN to 0, which would
    silently freeze a coordinate instead of letting a non-finite gradient show)."""
    return torch.where(torch.isnan(x), x, torch.sign(x))


def update(p, g, state, *, lr, betas, weight_decay, cautious=False, **_) -> Tensor:
    beta1, beta2 = betas
    m = state["exp_avg"]
    direction = _sign(beta1 * m + (1 - beta1) * g)
    state["exp_avg"] = beta2 * m + (1 - beta2) * g
    if cautious:
        direction = cautious_mask(direction, g)
    if nonzero(weight_decay):
        p = p * (1 - lr * weight_decay)
    return p - lr * direction


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \lambda
            \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad c_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t\\
       &\quad u_t \leftarrow \mathrm{sign}(c_t)\\
       &\quad \textbf{if}\ \text{cautious}:\ \phi_t \leftarrow \mathbb{1}[u_t \odot g_t > 0],\
            u_t \leftarrow u_t \odot \phi_t\, d / (\textstyle\sum_i \phi_{t,i} + 1)\\
       &\quad \theta_t \leftarrow \theta_{t-1}(1 - \gamma\lambda) - \gamma\,u_t\\
       &\quad m_t \leftarrow \beta_2 m_{t-1} + (1-\beta_2) g_t
       \end{aligned}

    With ``cautious`` (C-Lion, :mod:`optimlab.optim.cautious`; :math:`d` is the tensor's
    size) a coordinate moves only where the sign step agrees with the gradient.
"""


class Lion(RuleOptimizer):
    __doc__ = rf"""Lion: sign of an interpolated momentum, found by program search.

    Every coordinate moves by exactly :math:`\gamma` (plus the decay), so Lion needs a
    smaller learning rate than Adam (the paper suggests 3-10x smaller) and a larger
    weight decay to keep the same effective decay :math:`\gamma\lambda`.
{_RULE}
    .. note::
       The paper writes the decay inside the step,
       :math:`\theta_t \leftarrow \theta_{{t-1}}
       - \gamma(\mathrm{{sign}}(c_t) + \lambda\theta_{{t-1}})`;
       that is the same update. The momentum used for the step (:math:`\beta_1`) differs
       from the one that is stored (:math:`\beta_2`). The sign of an exact zero is 0 and the
       sign of NaN is NaN (as ``np.sign``; ``torch.sign`` would give 0).
       Only one buffer is kept, half of Adam's optimizer memory.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-4).
        betas (tuple[float, float], optional): interpolation factor :math:`\beta_1` of the
            step direction and decay rate :math:`\beta_2` of the stored momentum
            (default: (0.9, 0.99)).
        weight_decay (float, optional): decoupled decay :math:`\lambda`, scaled by the
            learning rate (default: 0).
        cautious (bool, optional): step only where the sign step agrees with the gradient
            (C-Lion, Liang et al. 2024) (default: False).
{_ARGS_DOC}

    Reference: Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023,
    https://arxiv.org/abs/2302.06675.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.Lion([w], lr=0.02)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.1)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(moments=("exp_avg",), fusable=True, reduces_when=("cautious",))

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-4,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.99),
        weight_decay: float | Tensor = 0.0,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
        cautious: bool = False,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas)
        check_range("weight_decay", weight_decay, 0.0)
        check_bool("cautious", cautious)
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize, fused=fused,
                        cautious=cautious)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)
