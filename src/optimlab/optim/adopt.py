"""ADOPT: Adam normalised by the previous second moment (Taniguchi et al. 2024)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_betas, check_bool, check_range, common_args_doc, nonzero, scalar_step
from .capabilities import Capabilities
from .ops import add_scaled, addcmul

# ADOPT is not in torch.optim, so it takes no ``foreach`` argument.
_ARGS_DOC = common_args_doc(foreach=False)


def init(p: Tensor, **_) -> dict:
    return {
        "step": scalar_step(),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def update(p, g, state, *, step, lr, betas, eps, weight_decay, decoupled=False, clip=True,
           **_) -> Tensor:
    beta1, beta2 = betas
    t = step - 1  # the paper's t: 0 on the first call, which only records v_0 = g_0^2
    # 1 on the first call and 0 after, by arithmetic rather than a branch: in the fused
    # kernel ``step`` is a traced scalar (C's pow(0, 0) is 1, as Python's and torch's)
    first = 0.0**t
    if nonzero(weight_decay):
        if decoupled:
            p = p * (1 - lr * weight_decay * (1 - first))
        else:
            g = add_scaled(g, p, weight_decay)
    v = state["exp_avg_sq"]
    u = g / torch.clamp(v.sqrt(), min=eps)
    if clip:
        c = t**0.25  # 0 on the first call: no move, whatever the gradient
        u = torch.clamp(u, -c, c)
    # on the first call the weight is 0 and m stays 0; b2 is 0, so v becomes g^2
    m = state["exp_avg"] = torch.lerp(state["exp_avg"], u, (1 - beta1) * (1 - first))
    b2 = beta2 * (1 - first)
    state["exp_avg_sq"] = addcmul(v * b2, g, g, 1 - b2)
    return add_scaled(p, m, -lr)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \lambda
            \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ v_0 \leftarrow g_0^2 \text{ with } g_0 \text{ as
            below at } \theta_0 \text{ (the first step; } \theta \text{ does not move)}\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad \textbf{if}\ \text{decoupled}:\
            \theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)
            \quad \textbf{else}:\ g_t \leftarrow g_t + \lambda\theta_{t-1}\\
       &\quad c_t \leftarrow t^{1/4}\ \text{if clip, else}\ \infty\\
       &\quad m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1)\,
            \mathrm{clip}\Big(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}, -c_t, c_t\Big)\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \gamma m_t\\
       &\quad v_t \leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2
       \end{aligned}
"""


class ADOPT(RuleOptimizer):
    __doc__ = rf"""ADOPT: Adam that normalises by the *previous* second moment, then averages.

    Adam divides its momentum by a second moment that already contains the current
    gradient; that correlation is why it can diverge unless :math:`\beta_2` is tuned to the
    problem. ADOPT divides the current gradient by :math:`v_{{t-1}}`, which does not contain
    it, and only then averages it into the momentum; :math:`v` is updated last. It converges
    at the optimal rate for any :math:`\beta_2`, with no bias correction. The first call of
    :meth:`step` only records :math:`v_0 = g_0^2` and leaves the parameters where they are
    (decoupled decay included), so the paper's :math:`t` is one less than the step count.
{_RULE}
    .. note::
       The clip at :math:`c_t = t^{{1/4}}` is the authors' stabiliser (added to their package
       and to the paper in November 2024): without it a coordinate whose first gradient is
       near zero gets a huge normalised gradient. It keeps the convergence guarantee;
       ``clip=False`` gives the unclipped ADOPT of the paper's first version.

    .. warning::
       optax's ``optax.contrib.adopt`` (the reference) counts steps from 0 and clips at
       ``count ** 0.25`` with the count *before* the step, which is this class's
       :math:`t = \text{{step}} - 1` (clip value 0 on the recording step, 1 on the first
       move): they agree. optax has no weight decay: the L2 form maps to
       ``add_decayed_weights(weight_decay)`` chained *before* ``scale_by_adopt`` (so
       :math:`v_0` sees it), the decoupled form to ``add_decayed_weights`` with a rate that
       is 0 at count 0 and ``weight_decay`` after, chained between ``scale_by_adopt`` and
       ``scale_by_learning_rate`` (chaining it with a constant rate would decay the weights
       on the recording step, which the authors' package does not). The first release of
       the authors' package (before the clip) differed: its first move set
       :math:`m_1` to the whole normalised gradient (no :math:`1-\beta_1` factor) and it
       decayed the weights on the recording step; this class follows the current paper and
       package, :math:`m_0 = 0`.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float], optional): decay rates of the momentum and of the second
            moment; any :math:`\beta_2` converges (default: (0.9, 0.9999)).
        eps (float, optional): floor :math:`\epsilon > 0` of :math:`\sqrt{{v_{{t-1}}}}` in the
            normalisation (a maximum, not a sum; default: 1e-6).
        weight_decay (float, optional): L2 penalty :math:`\lambda` added to the gradient, or
            decoupled if ``decoupled`` (default: 0).
        decoupled (bool, optional): decay the weights directly by :math:`\gamma\lambda`,
            AdamW style, as the authors' ``decouple=True`` (default: False).
        clip (bool, optional): clip the normalised gradient to :math:`[-t^{{1/4}}, t^{{1/4}}]`
            (default: True).
{_ARGS_DOC}

    Reference: Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any
    :math:`\beta_2` with the Optimal Rate", NeurIPS 2024, https://arxiv.org/abs/2411.02853.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.ADOPT([w], lr=0.05)
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
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.9999),
        eps: float | Tensor = 1e-6,
        weight_decay: float | Tensor = 0.0,
        decoupled: bool = False,
        clip: bool = True,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas)
        # eps floors a divisor: 0 would give 0/0 for a coordinate whose gradients are all 0
        check_range("eps", eps, 0.0, low_open=True)
        check_range("weight_decay", weight_decay, 0.0)
        check_bool("decoupled", decoupled)
        check_bool("clip", clip)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled=decoupled, clip=clip, maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)
