"""SparseAdam: "lazy" Adam for sparse gradients, as torch.optim.SparseAdam defines it."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .adagrad import _make_sparse
from .base import RuleOptimizer, check_betas, check_range, common_args_doc, scalar_step
from .capabilities import Capabilities
from .rule import sparse_add

# torch.optim.SparseAdam has neither a foreach nor a fused implementation.
_ARGS_DOC = common_args_doc(foreach=False, fused=False, state_precision=False)

_DENSE_GRADIENT = ("SparseAdam does not support dense gradients, please consider Adam instead "
                   "(SparseAdam takes sparse gradients only, e.g. from nn.Embedding(sparse=True))")


def init(p: Tensor, **_) -> dict:
    return {
        "step": scalar_step(),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def update(p, g, state, *, step, lr, betas, eps, **_) -> Tensor:
    if not g.is_sparse:
        raise RuntimeError(_DENSE_GRADIENT)
    # Repeated indices are summed first: the update is non-linear in the gradient.
    g = g.coalesce()
    indices, values = g._indices(), g._values()
    if values.numel() == 0:
        # Nothing touched, nothing changes; the step still counts (the engine counted it),
        # as in torch.
        return p
    beta1, beta2 = betas
    if isinstance(lr, Tensor) and lr.dim() != 0 and lr.numel() == 1:
        lr = lr.squeeze()  # torch steps with a 0-d learning rate
    # The moments' old values at the touched entries, and their changes there:
    # new = old + (1 - beta) * (g - old), the order of operations torch uses.
    m_old = state["exp_avg"].sparse_mask(g)._values()
    v_old = state["exp_avg_sq"].sparse_mask(g)._values()
    m_change = (values - m_old) * (1 - beta1)
    v_change = (values.pow(2) - v_old) * (1 - beta2)
    # only the touched entries change (added in place by the engine, as torch's add_)
    state["exp_avg"] = sparse_add(state["exp_avg"], _make_sparse(g, indices, m_change))
    state["exp_avg_sq"] = sparse_add(state["exp_avg_sq"], _make_sparse(g, indices, v_change))
    m_new = m_change + m_old
    denom = (v_change + v_old).sqrt() + eps
    # Both bias corrections fold into the step size; eps stays outside them.
    step_size = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    return sparse_add(p, _make_sparse(g, indices, -step_size * (m_new / denom)))


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ v_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1}) \text{ (sparse; repeated
            indices summed)} \quad (- \text{ if maximize})\\
       &\quad S_t \leftarrow \text{the entries } g_t \text{ stores (the touched set)}\\
       &\quad \textbf{for}\ i \in S_t:\\
       &\qquad m_{t,i} \leftarrow \beta_1 m_{t-1,i} + (1-\beta_1) g_{t,i}\\
       &\qquad v_{t,i} \leftarrow \beta_2 v_{t-1,i} + (1-\beta_2) g_{t,i}^2\\
       &\qquad \theta_{t,i} \leftarrow \theta_{t-1,i} - \gamma\,
            \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,
            \frac{m_{t,i}}{\sqrt{v_{t,i}} + \epsilon}\\
       &\quad \textbf{for}\ i \notin S_t:\ m_{t,i} \leftarrow m_{t-1,i},\
            v_{t,i} \leftarrow v_{t-1,i},\ \theta_{t,i} \leftarrow \theta_{t-1,i}
       \end{aligned}
"""


class SparseAdam(RuleOptimizer):
    __doc__ = rf"""SparseAdam: Adam that updates only the entries a sparse gradient touches.

    Drop-in for ``torch.optim.SparseAdam`` (same arguments, defaults, refusals and
    numerics). It takes sparse gradients only, such as ``nn.Embedding(sparse=True)``'s,
    whose rows are the ones looked up in the batch: the two moments and the parameter
    change at the entries the gradient stores and nowhere else.
{_RULE}
    .. note::
       How it differs from :class:`.Adam`: the moments are *lazy*. Adam decays every
       coordinate's :math:`m` and :math:`v` on every step, a zero gradient included, so a
       row it has not seen for a while still moves (its momentum carries on) and its
       :math:`v` shrinks. Here an untouched coordinate's moments do not decay and its
       parameter does not move; when it is touched again, its old moments are averaged with
       the new gradient as if no step had passed, while the bias correction uses the global
       step count :math:`t` (every step counts, an empty gradient's too). With a gradient
       that touches everything it is Adam, up to where :math:`\epsilon` sits: it is added
       to :math:`\sqrt{{v_t}}` before the correction :math:`\sqrt{{1-\beta_2^t}}` (the
       paper's efficient form), Adam's after. An entry is touched when the gradient
       *stores* it, even with the value 0. The gradient must be sparse: a dense one raises
       ``RuntimeError`` (use :class:`.Adam`), and sparse or complex parameters raise
       ``ValueError``, as in torch.

    Args:
        params (iterable): parameters or parameter groups to optimize (dense, real).
        lr (float or Tensor, optional): learning rate :math:`\gamma`, greater than 0
            (default: 1e-3).
        betas (tuple[float, float], optional): decay rates of the first and second moment
            estimates, applied at touched entries only (default: (0.9, 0.999)).
        eps (float, optional): added to :math:`\sqrt{{v_t}}`, greater than 0 (default: 1e-8).
{_ARGS_DOC}

    Reference: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
    https://arxiv.org/abs/1412.6980; the lazy variant is the one ``torch.optim.SparseAdam``
    defines, https://pytorch.org/docs/stable/generated/torch.optim.SparseAdam.html.

    Example:
        >>> import torch, optimlab
        >>> emb = torch.nn.Embedding(10, 3, sparse=True)
        >>> before = emb.weight.detach().clone()
        >>> opt = optimlab.SparseAdam(emb.parameters(), lr=0.1)
        >>> for _ in range(5):
        ...     opt.zero_grad(); (emb(torch.tensor([1, 4, 4])) ** 2).sum().backward(); opt.step()
        >>> changed = (emb.weight != before).any(dim=1)
        >>> changed.nonzero().flatten().tolist()  # only the rows looked up moved
        [1, 4]
        >>> bool(emb.weight[[1, 4]].abs().sum() < before[[1, 4]].abs().sum())
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    # complex=False: complex parameters are refused, as torch refuses them
    capabilities = Capabilities(sparse=True, sparse_only=True, multi_tensor=False,
                                fusable=False, complex=False)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-8,
        maximize: bool = False,
        *,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
    ) -> None:
        check_range("lr", lr, 0.0, low_open=True)
        check_range("eps", eps, 0.0, low_open=True)
        check_betas(betas)
        defaults = dict(lr=lr, betas=betas, eps=eps, maximize=maximize)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite)

    @classmethod
    def param_problem(cls, p: Tensor) -> str | None:  # noqa: D102 (RuleOptimizer's)
        if p.is_sparse:
            return "SparseAdam requires dense parameter tensors, got a sparse one (as in torch)"
        return super().param_problem(p)

    def _step_group(self, group: dict, hp: dict) -> None:
        # Refuse a dense gradient before anything of the group changes.
        if any(p.grad is not None and not p.grad.is_sparse for p in group["params"]):
            raise RuntimeError(_DENSE_GRADIENT)
        super()._step_group(group, hp)

    # -- state_dict: torch keeps SparseAdam's step as a Python int ----------------------------
    def state_dict(self) -> dict[str, Any]:
        """Torch's state_dict (the step as an ``int``, as torch stores it) plus optimlab's tag.

        With the step an ``int``, ``torch.optim.SparseAdam`` resumes from this state_dict
        with the same numbers as from its own (a tensor step would round its bias
        corrections to float32).
        """
        sd = super().state_dict()
        sd["state"] = {key: _with_int_step(value) for key, value in sd["state"].items()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict saved by this class or by ``torch.optim.SparseAdam``."""
        super().load_state_dict(state_dict)
        for state in self.state.values():
            step = state.get("step")
            if step is not None and not isinstance(step, Tensor):
                state["step"] = scalar_step().fill_(step)


def _with_int_step(state: Any) -> Any:
    """A copy of one parameter's state with its step counter as an ``int``."""
    if not isinstance(state, dict) or not isinstance(state.get("step"), Tensor):
        return state
    return {**state, "step": int(state["step"].item())}
