"""Schedule-Free SGD with momentum (Defazio et al. 2024)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import check_int, check_range, common_args_doc, nonzero
from .schedule_free import SCHEDULE_ARGS_DOC, SCHEDULE_REFERENCE, ScheduleFree

# Like ScheduleFreeAdamW, it follows the ``schedulefree`` package, not torch.optim; it takes
# no ``foreach`` argument (the engine picks the multi-tensor path itself).
_ARGS_DOC = common_args_doc(foreach=False, state_precision=False)


def init(p: Tensor, **_) -> dict:
    # z starts at the initial point; the step k and the averaging weights are per group (see
    # schedule_free.schedule), so there is no per-parameter step counter and one buffer only.
    return {"z": torch.clone(p, memory_format=torch.preserve_format)}


def update(p, g, state, *, lr, momentum, weight_decay, ckp1, **_) -> Tensor:
    # ``p`` is y (the point where the gradient is taken); ``lr`` is the warmed-up lr.
    direction = g
    if nonzero(weight_decay):
        direction = direction + weight_decay * p  # decay taken at y
    z = state["z"]
    y = torch.lerp(p, z, ckp1) + direction * (lr * (momentum * (1 - ckp1) - 1))
    state["z"] = z - lr * direction
    return y


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta \text{ (momentum)}, \lambda
            \text{ (weight decay)}, T_w \text{ (warmup)}, r, p \text{ (weight\_lr\_power)},
            x_1 = z_1 = y_1\\
       &\textbf{init}: \gamma_{max} \leftarrow 0,\ W_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(y_t)\quad (- \text{ if maximize})\\
       &\quad \gamma_t \leftarrow \gamma\min(1, t/T_w),\quad
            \gamma_{max} \leftarrow \max(\gamma_{max}, \gamma_t)\\
       &\quad w_t \leftarrow t^r\gamma_{max}^p,\quad W_t \leftarrow W_{t-1} + w_t,\quad
            c_{t+1} \leftarrow w_t / W_t\\
       &\quad d_t \leftarrow g_t + \lambda y_t\\
       &\quad z_{t+1} \leftarrow z_t - \gamma_t d_t\\
       &\quad x_{t+1} \leftarrow (1-c_{t+1}) x_t + c_{t+1} z_{t+1}\\
       &\quad y_{t+1} \leftarrow (1-\beta) z_{t+1} + \beta x_{t+1}
       \end{aligned}
"""


class ScheduleFreeSGD(ScheduleFree):
    __doc__ = rf"""Schedule-Free SGD: SGD with momentum, no learning-rate schedule.

    The SGD counterpart of :class:`~optimlab.ScheduleFreeAdamW`. Keeps two sequences:
    :math:`z` takes plain SGD steps, :math:`x` is a weighted running average of the
    :math:`z` iterates, and the gradient is evaluated at their interpolation :math:`y`; the
    interpolation plays the part of momentum (it is the primal-averaging form of heavy-ball
    momentum). The parameters hold :math:`y` in train mode and :math:`x` in eval mode: call
    :meth:`train` before training steps and :meth:`eval` before evaluating or saving a
    checkpoint, as with the reference implementation. Only ``z`` is stored (:math:`x` is
    recovered from :math:`y` and :math:`z`): one buffer, as for SGD with momentum.
{_RULE}
    The implementation updates :math:`y` in place without forming :math:`x`
    (:math:`y \leftarrow \mathrm{{lerp}}(y, z_t, c_{{t+1}}) + \gamma_t(\beta(1-c_{{t+1}})-1)d_t`),
    exactly like ``schedulefree.SGDScheduleFree`` 1.4.1, which it matches numerically.

    .. note::
       Unlike ``schedulefree.SGDScheduleFree``, a new optimizer starts in train mode, so it
       drops into an ordinary training loop; calling :meth:`train` first, as the reference
       requires, changes nothing. :meth:`step` in eval mode raises ``RuntimeError``, as the
       reference does. The warmup, step count and averaging weights are per parameter group
       (``k``, ``lr_max``, ``weight_sum``, ``scheduled_lr`` in ``param_groups``), as in the
       reference. Weight decay is an L2 term taken at :math:`y` (scaled by the learning rate
       through :math:`d_t`); unlike the reference, ``p.grad`` is left unchanged.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma`; schedule-free runs
            usually need a larger one than scheduled SGD (default: 1.0, the reference's).
        momentum (float, optional): interpolation :math:`\beta` between the average and the
            base sequence, in (0, 1) (default: 0.9).
        weight_decay (float, optional): L2 penalty :math:`\lambda`, evaluated at :math:`y`
            (default: 0).
{SCHEDULE_ARGS_DOC}
{_ARGS_DOC}

{SCHEDULE_REFERENCE}

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.ScheduleFreeSGD([w], lr=0.1)
        >>> opt.train()
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> opt.eval()  # the parameters now hold the average x
        >>> bool(w.abs().max() < 0.05)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1.0,
        momentum: float | Tensor = 0.9,
        weight_decay: float | Tensor = 0.0,
        warmup_steps: int = 0,
        r: float | Tensor = 0.0,
        weight_lr_power: float | Tensor = 2.0,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
    ) -> None:
        check_range("lr", lr, 0.0)
        # 0 would make x unrecoverable from y and z (eval divides by it), as in the reference
        check_range("momentum", momentum, 0.0, 1.0, low_open=True)
        check_range("weight_decay", weight_decay, 0.0)
        check_int("warmup_steps", warmup_steps, 0)
        check_range("r", r, 0.0)
        check_range("weight_lr_power", weight_lr_power, 0.0)
        # Group-level bookkeeping lives in the defaults, under the reference's names, so a
        # scheduler sees it and a checkpoint carries it.
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
                        k=0, train_mode=True, weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0,
                        maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite)

    def _interpolation(self, group: dict) -> float:
        return group["momentum"]
