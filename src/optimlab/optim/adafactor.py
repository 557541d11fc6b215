"""Adafactor: adaptive steps with a factored second moment (Shazeer & Stern 2018), torch's form."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import (
    RuleOptimizer,
    check_items,
    check_range,
    common_args_doc,
    nonzero,
    scalar_step,
)
from .capabilities import Capabilities
from .ops import add_scaled


def init(p: Tensor, **_) -> dict:
    state = {"step": scalar_step()}
    if p.dim() > 1:
        # Row and column factors: the mean of g^2 over the last and over the
        # second-to-last dimension (the leading dimensions are batch dimensions).
        row_shape = list(p.shape)
        row_shape[-1] = 1
        col_shape = list(p.shape)
        col_shape[-2] = 1
        state["row_var"] = p.new_zeros(row_shape)
        state["col_var"] = p.new_zeros(col_shape)
    else:
        state["variance"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state


def _min(a, b):
    return torch.clamp(a, max=b) if isinstance(a, Tensor) else min(a, b)


def update(p, g, state, *, step, lr, beta2_decay, eps, d, weight_decay, **_) -> Tensor:
    if p.numel() == 0:  # nothing to step (torch's Adafactor divides by the size here)
        return p
    eps1, eps2 = eps
    if eps1 is None:
        eps1 = torch.finfo(p.dtype).eps
    one_minus_beta2 = step**beta2_decay
    rho = _min(lr, 1 / (step**0.5))
    # Like torch, the step-size scalars are Python floats read with ``.item()`` (the relative
    # step uses the RMS of the parameter *before* weight decay).
    alpha = max(eps2, p.norm(2).item() / (p.numel() ** 0.5)) * rho
    if nonzero(weight_decay):
        p = p * (1 - lr * weight_decay)
    if g.dim() > 1:
        row_mean = torch.norm(g, dim=-1, keepdim=True).square() / g.size(-1)
        row_var = state["row_var"] = torch.lerp(state["row_var"], row_mean, one_minus_beta2)
        col_mean = torch.norm(g, dim=-2, keepdim=True).square() / g.size(-2)
        col_var = state["col_var"] = torch.lerp(state["col_var"], col_mean, one_minus_beta2)
        var_estimate = (row_var @ col_var) / row_var.mean(dim=-2, keepdim=True).clamp(min=eps1)
    else:
        var_estimate = state["variance"] = torch.lerp(state["variance"], g * g, one_minus_beta2)
    u = var_estimate.clamp(min=eps1 * eps1).rsqrt() * g
    # clip the update to RMS at most d
    denom = max(1.0, u.norm(2).item() / ((u.numel() ** 0.5) * d))
    return add_scaled(p, u, -alpha / denom)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \tau \text{ (beta2 decay)},
            \epsilon_1, \epsilon_2, d \text{ (clipping threshold)}, \lambda
            \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: R_0 \leftarrow 0,\ C_0 \leftarrow 0
            \text{ (matrices)},\ V_0 \leftarrow 0 \text{ (vectors)}\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad G_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad \hat\beta_{2,t} \leftarrow 1 - t^{\tau},\quad
            \rho_t \leftarrow \min(\gamma, 1/\sqrt t),\quad
            \alpha_t \leftarrow \max(\epsilon_2, \mathrm{RMS}(\theta_{t-1}))\,\rho_t\\
       &\quad \theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)\\
       &\quad \textbf{if}\ \dim G_t > 1:\
            R_t \leftarrow \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\,
            \mathrm{mean}_{\text{cols}}(G_t^2),\
            C_t \leftarrow \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\,
            \mathrm{mean}_{\text{rows}}(G_t^2)\\
       &\quad\quad \hat V_t \leftarrow R_t C_t / \max(\mathrm{mean}(R_t), \epsilon_1)\\
       &\quad \textbf{else}:\
            \hat V_t \leftarrow \hat\beta_{2,t} \hat V_{t-1} + (1-\hat\beta_{2,t}) G_t^2\\
       &\quad U_t \leftarrow G_t / \sqrt{\max(\hat V_t, \epsilon_1^2)},\quad
            \hat U_t \leftarrow U_t / \max(1, \mathrm{RMS}(U_t)/d)\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \alpha_t \hat U_t
       \end{aligned}
"""


class Adafactor(RuleOptimizer):
    __doc__ = rf"""Adafactor: Adam-like steps with a factored (sublinear-memory) second moment.

    Drop-in for ``torch.optim.Adafactor`` (same arguments, defaults and numerics). For a
    parameter with two or more dimensions the second moment is kept as a row factor
    ``row_var`` and a column factor ``col_var`` over the last two dimensions (the leading
    ones are batch dimensions); a vector keeps a full ``variance``. There is no first
    moment (the paper's :math:`\beta_1 = 0` setting).
{_RULE}
    .. warning::
       This is torch's Adafactor, which differs from the paper and from other
       frameworks (HF ``transformers``, optax): ``lr`` caps the relative step size
       :math:`\rho_t` (the paper fixes the cap at 0.01) and scales the decoupled weight
       decay; :math:`\epsilon_1` is applied when forming :math:`\hat V_t` and :math:`U_t`,
       not added to :math:`G_t^2`; the factors hold means rather than sums of
       :math:`G_t^2`. The same hyperparameters therefore give a different path elsewhere.

    Args:
        params (iterable): parameters or parameter groups to optimize (real only).
        lr (float or Tensor, optional): cap :math:`\gamma` on the relative step size and the
            weight-decay scale (default: 1e-2).
        beta2_decay (float, optional): :math:`\tau \le 0`; the second-moment rate is
            :math:`1 - t^\tau` (default: -0.8).
        eps (tuple[float or None, float], optional): :math:`(\epsilon_1, \epsilon_2)`:
            the floor of the variance estimate (None: the machine epsilon of the parameter's
            dtype) and the floor of the parameter RMS in :math:`\alpha_t`
            (default: (None, 1e-3)).
        d (float, optional): clipping threshold on the update RMS, at least 1 (default: 1.0).
        weight_decay (float, optional): decoupled decay coefficient :math:`\lambda`
            (default: 0.0).
{common_args_doc(fused=False, state_precision=False)}

    Reference: Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory
    Cost", ICML 2018, https://arxiv.org/abs/1804.04235.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([[1.5, -2.0], [0.5, 1.0]], requires_grad=True)
        >>> opt = optimlab.Adafactor([w], lr=0.1)
        >>> for _ in range(300):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.1)
        True
    """

    # reads step sizes with .item(), as torch does: one tensor at a time, one instance per member
    capabilities = Capabilities(batching="member", multi_tensor=False, complex=False)
    init = staticmethod(init)
    update = staticmethod(update)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        beta2_decay: float | Tensor = -0.8,
        eps: tuple[float | Tensor | None, float | Tensor] = (None, 1e-3),
        d: float | Tensor = 1.0,
        weight_decay: float | Tensor = 0.0,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_range("beta2_decay", beta2_decay, None, 0.0, high_open=False)
        check_items("eps", eps, 2, "a pair (eps1 or None, eps2)")
        if eps[0] is not None:
            check_range("eps[0]", eps[0], 0.0)
        check_range("eps[1]", eps[1], 0.0)
        check_range("d", d, 1.0)
        check_range("weight_decay", weight_decay, 0.0)
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d,
                        weight_decay=weight_decay, foreach=foreach, maximize=maximize)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite)

