"""NovoGrad: SGD with momentum of gradients normalised per layer (Ginsburg et al. 2019)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_betas, check_bool, check_range, common_args_doc, nonzero, scalar_step
from .capabilities import Capabilities
from .ops import add_scaled

# NovoGrad is not in torch.optim, so it takes no ``foreach`` argument.
_ARGS_DOC = common_args_doc(foreach=False)


def init(p: Tensor, **_) -> dict:
    return {
        "step": scalar_step(),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        # one number per tensor (per "layer"): the average of the squared gradient norm
        "exp_avg_sq": p.new_zeros(()),
    }


def update(p, g, state, *, step, lr, betas, eps, weight_decay, grad_averaging=False,
           **_) -> Tensor:
    beta1, beta2 = betas
    # 1 on the first step and 0 after, by arithmetic rather than a branch (in the fused
    # kernel ``step`` is a traced scalar): the first step sets v to ||g||^2 itself
    first = 0.0 ** (step - 1)
    b2 = beta2 * (1 - first)
    v = state["exp_avg_sq"] = state["exp_avg_sq"] * b2 + (1 - b2) * (g * g).sum()
    u = g / (v + eps).sqrt()
    if nonzero(weight_decay):
        u = add_scaled(u, p, weight_decay)
    m = state["exp_avg"] * beta1
    m = state["exp_avg"] = add_scaled(m, u, 1 - beta1) if grad_averaging else m + u
    return add_scaled(p, m, -lr)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \lambda
            \text{ (weight decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0\quad
            (v \text{: one number per parameter tensor } \theta^l)\\
       &\textbf{for}\ t = 1, 2, \ldots\ \textbf{and each tensor}\ l\\
       &\quad g^l_t \leftarrow \pm\nabla_{\theta^l} f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad v^l_t \leftarrow \begin{cases} \|g^l_t\|^2 & t = 1\\
            \beta_2 v^l_{t-1} + (1-\beta_2)\,\|g^l_t\|^2 & t > 1\end{cases}\\
       &\quad u^l_t \leftarrow \frac{g^l_t}{\sqrt{v^l_t + \epsilon}} + \lambda\theta^l_{t-1}\\
       &\quad m^l_t \leftarrow \beta_1 m^l_{t-1} + c\, u^l_t
            \quad (c = 1-\beta_1 \text{ if grad\_averaging, else } 1)\\
       &\quad \theta^l_t \leftarrow \theta^l_{t-1} - \gamma\, m^l_t
       \end{aligned}
"""


class NovoGrad(RuleOptimizer):
    __doc__ = rf"""NovoGrad: momentum SGD on gradients normalised by a per-layer second moment.

    Each parameter tensor (a "layer") keeps a single number, a running average of its
    squared gradient norm, and its gradient is divided by the root of it before entering
    a heavy-ball momentum; the decay is added to the normalised gradient, so it is
    decoupled from the gradient's scale. The step is invariant to rescaling a layer's
    gradient, which makes training robust to the learning rate and weight initialisation
    without warm-up, and the state is one buffer per parameter: half of Adam's memory. The
    first step initialises :math:`v` with :math:`\|g_1\|^2` instead of a bias correction.
{_RULE}
    .. warning::
       optax (``optax.novograd``, the reference) adds its ``eps`` *outside* the root and
       takes ``eps_root`` inside; here :math:`\epsilon` is inside the root, as in the
       authors' code (NVIDIA OpenSeq2Seq) and their description of the algorithm. The two
       agree with optax's ``eps=0, eps_root=eps``. NVIDIA's later PyTorch ``Novograd`` (as in
       NeMo) and pytorch_optimizer's put :math:`\epsilon` outside. optax's defaults differ too
       (``b1=0.9, b2=0.25, eps=1e-6``); the ones here are the authors' (0.95, 0.98, 1e-8).
       optax has no ``grad_averaging``: it is optax's transformation followed by
       ``optax.scale(1 - b1)``, since scaling every :math:`u` scales :math:`m` alike. The
       authors' code initialises :math:`v` where it is still exactly 0 (a tensor whose
       first gradients are all zero is initialised later); here, as in optax, on step 1.

    .. note::
       The norms are per tensor (the paper's per-layer norms, with a layer's weight and
       bias as two tensors), so the optimizer steps tensor by tensor and a population runs
       one optimizer per member (the per-tensor second moment is state no broadcast rule
       can shape for a member axis). The decay :math:`\lambda\theta` joins the momentum,
       so it is scaled by :math:`\gamma` and accumulated with :math:`\beta_1`, as in the
       paper.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float], optional): the momentum :math:`\beta_1` and the decay
            rate :math:`\beta_2` of the per-tensor second moment (default: (0.95, 0.98)).
        eps (float, optional): :math:`\epsilon > 0`, added to :math:`v` *inside* the square
            root (default: 1e-8).
        weight_decay (float, optional): decay :math:`\lambda`, added to the normalised
            gradient (default: 0).
        grad_averaging (bool, optional): average the normalised gradients into the
            momentum, :math:`m_t = \beta_1 m_{{t-1}} + (1-\beta_1) u_t`, as Adam does
            (default: False, the paper's heavy ball).
{_ARGS_DOC}

    Reference: Ginsburg et al., "Stochastic Gradient Methods with Layer-wise Adaptive
    Moments for Training of Deep Networks", 2019, https://arxiv.org/abs/1905.11286
    (Algorithm 1).

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.NovoGrad([w], lr=0.01)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    # per-tensor norms and a per-tensor (0-d) second moment: tensor by tensor, and one
    # optimizer per member in a population
    capabilities = Capabilities(batching="member", multi_tensor=False, fusable=True,
                                moments=("exp_avg",))

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.95, 0.98),
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 0.0,
        grad_averaging: bool = False,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas)
        # the root's only floor: 0 would give 0/0 for a tensor whose gradient is all zero
        check_range("eps", eps, 0.0, low_open=True)
        check_range("weight_decay", weight_decay, 0.0)
        check_bool("grad_averaging", grad_averaging)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        grad_averaging=grad_averaging, maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)
