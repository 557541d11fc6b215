"""Muon: momentum orthogonalized by Newton-Schulz (Jordan et al. 2024), torch's form."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_bool, check_int, check_items, check_range, common_args_doc
from .capabilities import Capabilities
from .ops import add_scaled

# Keller Jordan's quintic coefficients and defaults, as in torch.optim.Muon.
DEFAULT_A = 3.4445
DEFAULT_B = -4.7750
DEFAULT_C = 2.0315
DEFAULT_NS_STEPS = 5
EPS = 1e-7
# The dtype of the Newton-Schulz iteration; bfloat16 as in torch.optim.Muon.
NS_DTYPE = torch.bfloat16
ADJUST_LR_FNS = (None, "original", "match_rms_adamw")


def zeropower_via_newtonschulz(g: Tensor, ns_coefficients=(DEFAULT_A, DEFAULT_B, DEFAULT_C),
                               ns_steps: int = DEFAULT_NS_STEPS, eps: float = EPS) -> Tensor:
    """Approximately orthogonalize a matrix: ``U S' V^T`` for ``g = U S V^T``, ``S'`` near 1.

    ``ns_steps`` iterations of the quintic ``X <- a X + (b A + c A^2) X`` with
    ``A = X X^T``, after scaling ``g`` to Frobenius norm at most 1 (so its spectral norm is
    too). The coefficients maximise the slope at zero, so the singular values land in about
    (0.7, 1.2) rather than converging to exactly 1.

    Like torch (and the reference implementation), the iteration runs in **bfloat16**
    whatever the input dtype, and the result is returned in bfloat16: that keeps Muon's
    numerics identical to ``torch.optim.Muon`` in float32, float64 and float16. (Not on bfloat16
    parameters with ``nesterov=False``: there torch's ``grad.bfloat16()`` returns its own
    momentum buffer, which its scaling then divides in place, so torch's buffer loses its
    norm every step; optimlab keeps the buffer, as the algorithm asks.) The wide side is
    transposed so the Gram matrix is the small one.
    """
    if g.dim() != 2:
        raise ValueError(f"Newton-Schulz needs a 2-D matrix, got shape {tuple(g.shape)}")
    a, b, c = ns_coefficients
    x = g.to(NS_DTYPE)
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, poly, x, beta=a)
    return x.T if tall else x


def adjust_lr(lr, adjust_lr_fn: str | None, shape) -> float | Tensor:
    """The learning rate for a matrix of ``shape`` (m, n) under ``adjust_lr_fn``.

    ``None``/``"original"``: ``lr * sqrt(max(1, m/n))`` (Keller Jordan);
    ``"match_rms_adamw"``: ``lr * 0.2 * sqrt(max(m, n))`` (Moonshot AI), so the update has
    about the RMS of an AdamW update and AdamW's lr and weight decay carry over.
    """
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        ratio = math.sqrt(max(1, rows / cols))
    elif adjust_lr_fn == "match_rms_adamw":
        ratio = 0.2 * math.sqrt(max(rows, cols))
    else:
        ratio = 1.0
    return lr * ratio


def init(p: Tensor, **_) -> dict:
    return {"momentum_buffer": torch.zeros_like(p, memory_format=torch.preserve_format)}


def update(p, g, state, *, lr, weight_decay, momentum, nesterov, ns_coefficients, eps,
           ns_steps, adjust_lr_fn, **_) -> Tensor:
    # torch's buffer is an exponential average (lerp), not the B <- mu B + g of its docs.
    buf = state["momentum_buffer"] = torch.lerp(state["momentum_buffer"], g, 1 - momentum)
    u = torch.lerp(g, buf, momentum) if nesterov else buf
    o = zeropower_via_newtonschulz(u, ns_coefficients, ns_steps, eps)
    # torch decays unconditionally (a factor of 1 when weight_decay is 0)
    p = p * (1 - lr * weight_decay)
    # upcast before scaling, as torch's ``param.add_(o, alpha=-lr')`` does; on float16
    # parameters torch's add of a bfloat16 ``o`` computes in float32 (the two promote to it)
    # and rounds once: ``o`` is kept bfloat16 so that the sum is formed as torch forms it
    # (cast to float16 first, an entry below float16's normal range lost bits), and the
    # float32 result is rounded to float16 where it is written back
    o = o if p.dtype == torch.float16 else o.to(p.dtype)
    return add_scaled(p, o, -adjust_lr(lr, adjust_lr_fn, p.shape))


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \lambda \text{ (weight decay)}, \mu
            \text{ (momentum)}, (a, b, c) \text{ (NS coefficients)}, k \text{ (NS steps)},
            \varepsilon, \theta_0 \in \mathbb{R}^{m\times n}, f(\theta)\\
       &\textbf{init}: B_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad B_t \leftarrow \mu B_{t-1} + (1-\mu) g_t\\
       &\quad \tilde B_t \leftarrow \begin{cases} (1-\mu) g_t + \mu B_t & \text{nesterov}\\
            B_t & \text{otherwise}\end{cases}\\
       &\quad X \leftarrow \tilde B_t / \max(\lVert\tilde B_t\rVert_F, \varepsilon);\quad
            k \times:\ X \leftarrow aX + (bXX^\top + c(XX^\top)^2)X
            \quad (\text{in bfloat16})\\
       &\quad \theta_t \leftarrow \theta_{t-1}(1-\gamma\lambda)
            - \gamma' X,\quad \gamma' = \begin{cases}
            \gamma\sqrt{\max(1, m/n)} & \text{original}\\
            0.2\,\gamma\sqrt{\max(m, n)} & \text{match\_rms\_adamw}\end{cases}
       \end{aligned}
"""


class Muon(RuleOptimizer):
    __doc__ = rf"""Muon: SGD-momentum whose update matrix is orthogonalized by Newton-Schulz.

    Drop-in for ``torch.optim.Muon`` (same arguments, defaults and numerics), plus
    ``maximize``, which torch's Muon lacks (like torch, there is no ``foreach``). For 2-D
    parameters only (the hidden layers' weight matrices); give biases, norms, embeddings
    and output heads to another optimizer such as AdamW.
{_RULE}
    .. note::
       As in torch, the momentum buffer is an exponential average
       (:math:`B_t = \mu B_{{t-1}} + (1-\mu) g_t`; torch's docstring writes
       :math:`\mu B_{{t-1}} + g_t`, Keller Jordan's code has used both), the weight decay is
       decoupled and scaled by the unadjusted :math:`\gamma`, and the
       Newton-Schulz iteration runs in **bfloat16** for every parameter dtype (see
       :func:`zeropower_via_newtonschulz`). So the update direction carries only about three
       significant digits, even for float64 parameters; that is the reference behaviour,
       not a loss of precision of this class.

    Args:
        params (iterable): 2-D parameters or parameter groups to optimize; any other shape
            raises ``ValueError`` at construction.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-3).
        weight_decay (float, optional): decoupled decay :math:`\lambda`, scaled by the
            unadjusted lr (default: 0.1).
        momentum (float, optional): momentum :math:`\mu \in [0, 1)` (default: 0.95).
        nesterov (bool, optional): orthogonalize the Nesterov look-ahead instead of the
            buffer (default: True).
        ns_coefficients (tuple[float, float, float], optional): quintic coefficients
            :math:`(a, b, c)` (default: ({DEFAULT_A}, {DEFAULT_B}, {DEFAULT_C})).
        eps (float, optional): floor of the norm the matrix is divided by (default: {EPS}).
        ns_steps (int, optional): Newton-Schulz iterations :math:`k`, below 100
            (default: {DEFAULT_NS_STEPS}).
        adjust_lr_fn (str or None, optional): ``"original"`` (the default, also None) or
            ``"match_rms_adamw"``, see :func:`adjust_lr` (default: None).
{common_args_doc(foreach=False, fused=False)}

    References: Jordan et al., "Muon: An optimizer for hidden layers in neural networks"
    (2024), https://kellerjordan.github.io/posts/muon/; Liu et al., "Muon is Scalable for
    LLM Training" (2025), https://arxiv.org/abs/2502.16982.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([[1.5, -2.0], [0.5, 1.0]], requires_grad=True)
        >>> opt = optimlab.Muon([w], lr=0.05, weight_decay=0.0)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.1)
        True
    """

    # Newton-Schulz orthogonalises each matrix: one at a time, mapped over members; its
    # coefficients are the matrix products' beta and alpha (Python numbers): shared
    capabilities = Capabilities(moments=("momentum_buffer",), batching="vmap", multi_tensor=False,
                                needs_matrix=True, shared=("ns_coefficients",))
    init = staticmethod(init)
    update = staticmethod(update)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        weight_decay: float | Tensor = 0.1,
        momentum: float | Tensor = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float | Tensor, float | Tensor, float | Tensor] = (
            DEFAULT_A, DEFAULT_B, DEFAULT_C),
        eps: float | Tensor = EPS,
        ns_steps: int = DEFAULT_NS_STEPS,
        adjust_lr_fn: str | None = None,
        *,
        maximize: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        check_range("momentum", momentum, 0.0, 1.0)
        check_bool("nesterov", nesterov)
        check_range("eps", eps, 0.0)
        check_items("ns_coefficients", ns_coefficients, 3, "three numbers (a, b, c)")
        # the iteration runs in bfloat16: a coefficient it cannot hold overflows there (to
        # NaN, or a RuntimeError where vmap batches members), so it is refused here
        biggest = torch.finfo(NS_DTYPE).max
        for i, coefficient in enumerate(ns_coefficients):
            check_range(f"ns_coefficients[{i}]", coefficient, -biggest, biggest, high_open=False)
        check_int("ns_steps", ns_steps, 0, 99)
        if adjust_lr_fn not in ADJUST_LR_FNS:
            raise ValueError(f"adjust_lr_fn must be one of {ADJUST_LR_FNS}, got {adjust_lr_fn!r}")
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps,
                        adjust_lr_fn=adjust_lr_fn, maximize=maximize)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)

    @classmethod
    def param_problem(cls, p: Tensor) -> str | None:  # noqa: D102 (RuleOptimizer's)
        problem = None
        if p.dim() != 2:
            problem = f"a parameter of shape {tuple(p.shape)} ({p.dim()}-D)"
        elif torch.is_complex(p):
            problem = f"a complex parameter of shape {tuple(p.shape)}"
        if problem is None:
            return None
        return (f"Muon only optimizes real 2-D parameters (weight matrices), got {problem}; "
                "optimize biases, norms and embeddings with another optimizer such as AdamW")
