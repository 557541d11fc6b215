"""Adagrad (Duchi, Hazan & Singer 2011): per-coordinate steps from the sum of squared gradients."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import COMMON_ARGS_DOC, RuleOptimizer, check_range, nonzero, scalar_step, torch_flags_doc
from .capabilities import Capabilities
from .engine import real
from .ops import add_scaled, addcdiv
from .rule import sparse_add


def init(p: Tensor, *, initial_accumulator_value=0, **_) -> dict:
    if isinstance(initial_accumulator_value, Tensor):
        accumulator = (torch.zeros_like(p) + initial_accumulator_value).to(p.dtype)
    else:
        accumulator = torch.full_like(p, initial_accumulator_value,
                                      memory_format=torch.preserve_format)
    return {"step": scalar_step(), "sum": accumulator}


def _make_sparse(g: Tensor, indices: Tensor, values: Tensor) -> Tensor:
    # The indices come from a coalesced gradient: valid and unique.
    return torch.sparse_coo_tensor(indices, values, g.size(), check_invariants=False,
                                   is_coalesced=True)


def update(p, g, state, *, step, lr, lr_decay, eps, weight_decay, **_) -> Tensor:
    if nonzero(weight_decay):
        if g.is_sparse:
            raise RuntimeError("weight_decay option is not compatible with sparse gradients")
        g = add_scaled(g, p, weight_decay)
    clr = lr / (1 + (step - 1) * lr_decay)
    if g.is_sparse:
        # The update is non-linear, so indices must be unique; only touched rows change.
        g = g.coalesce()
        indices, values = g._indices(), g._values()
        squares = values.pow(2)
        # the sum at the touched entries, as torch reads it after its in-place add
        std_values = (state["sum"].sparse_mask(g)._values() + squares).sqrt() + eps
        state["sum"] = sparse_add(state["sum"], _make_sparse(g, indices, squares))
        step_values = values / std_values
        if isinstance(clr, Tensor):
            return sparse_add(p, _make_sparse(g, indices, -clr * step_values))
        return sparse_add(p, _make_sparse(g, indices, step_values), alpha=-clr)
    total = state["sum"] = torch.addcmul(state["sum"], g, g)
    # one addcdiv with the rate as ``value``, as torch writes it: in bfloat16 and float16 it
    # rounds once (computed in float32), where ``p - clr * g / std`` rounds after each operation
    return addcdiv(p, g, total.sqrt() + eps, -clr)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \eta \text{ (lr decay)}, \lambda
            \text{ (weight decay)}, \tau \text{ (initial accumulator value)},
            \epsilon, \theta_0, f(\theta)\\
       &\textbf{init}: s_0 \leftarrow \tau\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1}) + \lambda\theta_{t-1}
            \quad (- \text{ if maximize})\\
       &\quad \tilde\gamma \leftarrow \gamma / (1 + (t-1)\eta)\\
       &\quad s_t \leftarrow s_{t-1} + g_t^2\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \tilde\gamma\, \frac{g_t}{\sqrt{s_t} + \epsilon}
       \end{aligned}
"""


class Adagrad(RuleOptimizer):
    __doc__ = rf"""Adagrad: per-coordinate learning rates from the sum of all squared gradients.

    Drop-in for ``torch.optim.Adagrad`` (same arguments, defaults and numerics), sparse
    gradients included: with a sparse gradient (``nn.Embedding(sparse=True)``) only the
    touched entries of the accumulator and the parameter change.
{_RULE}
    .. note::
       The accumulator starts at ``initial_accumulator_value`` (0, as in torch);
       TensorFlow/Keras start it at 0.1, which damps the first steps.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-2).
        lr_decay (float, optional): learning rate decay :math:`\eta` (default: 0).
        weight_decay (float, optional): L2 penalty :math:`\lambda`; not allowed with
            sparse gradients (default: 0).
        initial_accumulator_value (float, optional): starting value :math:`\tau` of the
            sum of squared gradients (default: 0).
        eps (float, optional): added to the denominator outside the square root
            (default: 1e-10).
{COMMON_ARGS_DOC}{torch_flags_doc(capturable=False)}

    Reference: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 12 (2011),
    https://www.jmlr.org/papers/v12/duchi11a.html.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.0, -1.0], requires_grad=True)
        >>> opt = optimlab.Adagrad([w], lr=0.5)
        >>> for _ in range(100):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 1e-2)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(second_moments=("sum",), fusable=True, sparse=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        lr_decay: float | Tensor = 0,
        weight_decay: float | Tensor = 0,
        initial_accumulator_value: float | Tensor = 0,
        eps: float | Tensor = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        differentiable: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_range("lr_decay", lr_decay, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        check_range("initial_accumulator_value", initial_accumulator_value, 0.0)
        check_range("eps", eps, 0.0)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value,
                        foreach=foreach, maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite, differentiable=differentiable,
                         state_precision=state_precision)

    def share_memory(self) -> None:
        """Put every parameter's accumulator ``sum`` in shared memory, as
        ``torch.optim.Adagrad.share_memory`` does, for Hogwild training: processes that
        share the model and this optimizer (forked after this call, or sent through
        ``torch.multiprocessing``) update the same sums.

        torch creates Adagrad's state in its constructor; optimlab creates it at the first
        step, so this creates the state of every parameter that has none yet. From then on
        the groups step tensor by tensor and write the state in place (the multi-tensor path
        would move it into one buffer per group, out of the shared memory).

        Raises:
            ValueError: a group keeps compact moments (``state_precision``), whose codes
                are written anew at every step.
        """
        for group in self.param_groups:
            if group.get("state_precision") is not None:
                raise ValueError("share_memory() needs the sums in full precision; this group "
                                 f"has state_precision={group['state_precision']!r}")
        for group in self.param_groups:
            hp = self._hp(group)
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state.update(self.init(real(p), **hp))
                state["sum"].share_memory_()
        self._state_in_place = True
