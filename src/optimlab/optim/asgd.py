"""Averaged SGD (Polyak & Juditsky 1992), in the form of Bottou's ASGD with a decaying step."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_range, common_args_doc, nonzero, scalar_step, torch_flags_doc
from .capabilities import Capabilities
from .ops import add_scaled


def _scalar(value, like: Tensor) -> Tensor:
    """``value`` stored into ``like`` the way torch updates ``eta`` and ``mu``.

    torch makes a tensor of the default dtype first (a Python float rounds to float32
    there), then copies it into the state tensor, whatever that one's dtype.
    """
    made = torch.as_tensor(value, dtype=torch.get_default_dtype())  # explicit, so a trace sees it
    return made.to(dtype=like.dtype, device=like.device)



def init(p: Tensor, *, lr, **_) -> dict:
    step = scalar_step()
    device = p.device
    return {
        "step": step,
        "eta": torch.as_tensor(lr, dtype=step.dtype, device=device).clone().detach(),
        "mu": torch.ones((), dtype=step.dtype, device=device),
        "ax": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def update(p, g, state, *, step, lr, lambd, alpha, t0, weight_decay, **_) -> Tensor:
    if nonzero(weight_decay):
        g = add_scaled(g, p, weight_decay)
    # torch reads eta (float32 unless float64 is the default dtype) into a Python float and
    # does the scalar arithmetic in double; a float64 copy of the tensor does the same
    # without a host sync.
    eta = state["eta"].to(torch.float64)
    decay, rate, mu = 1 - lambd * eta, -eta, state["mu"]
    if p.dtype in (torch.bfloat16, torch.float16) and not eta.dim():
        # torch applies eta as a Python float. Its CPU kernel for ``x.add(y, alpha=a)`` in
        # these dtypes rounds once in its vectorized body but twice (``a * y`` first) in the
        # remainder of each tensor, so no tensor spelling matches it: the same kernel with the
        # same float does (torch reads eta and mu with ``.item()`` too). The product keeps
        # its 0-d tensor, which rounds as torch's float does, unless p is 0-d (two 0-d
        # tensors would promote).
        rate, weight = rate.item(), mu.item()
        if isinstance(p, Tensor) and not p.dim():
            decay = decay.item()
    else:
        # a population's per-member columns ([K, 1, ...]) in p's dtype, as a 0-d value is
        # used: in float64 they would turn a float32 p and ax into float64; so would the 0-d
        # values meeting a 0-d float32 p (two 0-d tensors promote to the wider), where torch
        # rounds its Python float to float32, the opmath of float32 (a 0-d p steps alone)
        if eta.dim() or (isinstance(p, Tensor) and not p.dim() and p.dtype == torch.float32):
            decay, rate = decay.to(p.dtype), rate.to(p.dtype)
        weight = mu.to(p.dtype) if mu.dim() else mu
    # theta (1 - lambd eta) - eta g: a product, then one add with -eta as ``alpha``, as torch
    p = add_scaled(p * decay, g, rate)
    ax = state["ax"]
    # mu == 1 copies the parameter exactly (ax + (p - ax) would round).
    if isinstance(weight, float):
        # torch's branch, as torch takes it (a ``where`` would run at once on the multi-tensor
        # path's flat buffers, and the add above with it, off torch's per-tensor remainders);
        # ``p * 1`` is an exact copy that the multi-tensor path records
        state["ax"] = p * 1 if weight == 1 else ax + (p - ax) * weight
    else:
        state["ax"] = torch.where(mu == 1, p, ax + (p - ax) * weight)
    # Both schedules are computed in double, then rounded and stored as torch does.
    state["eta"] = _scalar(lr / ((1 + lambd * lr * step) ** alpha), state["eta"])
    if isinstance(t0, Tensor):
        state["mu"] = _scalar(1 / torch.clamp(step - t0, min=1), mu)
    else:
        state["mu"] = _scalar(1 / max(1, step - t0), mu)
    return p


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \lambda_d \text{ (lambd)}, \alpha
            \text{ (power)}, t_0, \lambda \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: \eta_0 \leftarrow \gamma,\ \mu_0 \leftarrow 1,\ a_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1}) + \lambda\theta_{t-1}
            \quad (- \text{ if maximize})\\
       &\quad \theta_t \leftarrow \theta_{t-1}(1 - \lambda_d \eta_{t-1})
            - \eta_{t-1} g_t\\
       &\quad a_t \leftarrow \begin{cases} \theta_t & \mu_{t-1} = 1\\
            a_{t-1} + \mu_{t-1}(\theta_t - a_{t-1}) & \text{otherwise}\end{cases}\\
       &\quad \eta_t \leftarrow \gamma / (1 + \lambda_d \gamma t)^{\alpha}\\
       &\quad \mu_t \leftarrow 1 / \max(1, t - t_0)
       \end{aligned}
"""


class ASGD(RuleOptimizer):
    __doc__ = rf"""ASGD: SGD with a decaying step size and a running (Polyak) average of the iterates.

    Drop-in for ``torch.optim.ASGD`` (same arguments, defaults, state and numerics:
    ``eta`` and ``mu`` are scalar tensors in the step's dtype, ``ax`` is the average).
{_RULE}
    .. note::
       The parameters follow the plain SGD path; the averaged iterate is kept in
       ``optimizer.state[p]["ax"]`` and is *not* copied into the parameters. Evaluate
       with ``ax`` yourself (swap it in) to get the averaging benefit. Averaging starts
       after ``t0`` steps (default 1e6, i.e. effectively never).

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): initial learning rate :math:`\gamma`
            (default: 1e-2).
        lambd (float, optional): decay term :math:`\lambda_d` (default: 1e-4).
        alpha (float, optional): power :math:`\alpha` of the step-size decay
            (default: 0.75).
        t0 (float, optional): step at which averaging starts (default: 1e6).
        weight_decay (float, optional): L2 penalty :math:`\lambda` (default: 0).
{common_args_doc(state_precision=False)}{torch_flags_doc()}

    References: Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging",
    SIAM J. Control Optim. 30(4), 1992, https://doi.org/10.1137/0330046; Bottou,
    "Stochastic Gradient Descent Tricks", 2012 (the step-size schedule).

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.0, -1.0], requires_grad=True)
        >>> opt = optimlab.ASGD([w], lr=0.1, t0=10)
        >>> for _ in range(100):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(opt.state[w]["ax"].abs().max() < 0.05)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(fusable=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        lambd: float | Tensor = 1e-4,
        alpha: float | Tensor = 0.75,
        t0: float | Tensor = 1e6,
        weight_decay: float | Tensor = 0,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
        *,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
    ) -> None:
        check_range("lr", lr, 0.0)
        # torch leaves lambd and alpha unchecked; negative values make the step grow.
        check_range("lambd", lambd, 0.0)
        check_range("alpha", alpha, 0.0)
        check_range("t0", t0, None)
        check_range("weight_decay", weight_decay, 0.0)
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite, capturable=capturable,
                         differentiable=differentiable)
