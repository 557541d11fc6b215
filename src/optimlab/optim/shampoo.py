"""Shampoo (Gupta, Koren & Singer 2018) with layer-wise grafting (Anil et al. 2020)."""

from __future__ import annotations

from typing import NoReturn

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import (
    RuleOptimizer,
    check_bool,
    check_int,
    check_items,
    check_range,
    common_args_doc,
    nonzero,
)
from .capabilities import Capabilities
from .ops import add_scaled, addcmul
from .rule import exact_step

# Shampoo is not in torch.optim and has no fused kernel (matrix roots).
_ARGS_DOC = common_args_doc(foreach=False, fused=False)


def _adagrad_sum(a: Tensor, g: Tensor, beta2) -> Tensor:
    return addcmul(a, g, g, 1)


def _rmsprop_average(a: Tensor, g: Tensor, beta2) -> Tensor:
    # weighted as the statistics are: beta2 = 1 sums (a weight 1 - beta2 = 0 would keep A at
    # 0 and the step at g / graft_eps)
    return addcmul(a * beta2, g, g, _statistics_weight(beta2))


#: where the step size comes from, with the graft's update of its sum of squares
#: :math:`A`: Adagrad's or RMSprop's diagonal step :math:`G / (\sqrt{A} + \epsilon_g)`,
#: SGD's (the gradient itself), or nowhere (Shampoo's own step, as in the 2018 paper)
SECOND_MOMENT = {"adagrad": _adagrad_sum, "rmsprop": _rmsprop_average, "sgd": None,
                 "none": None}
GRAFTS = tuple(SECOND_MOMENT)


def matrix_dtype(p: Tensor) -> torch.dtype:
    """The dtype of the statistics and inverse roots: float64 for float64 parameters,
    float32 otherwise (``torch.linalg.svd`` takes no bfloat16 or float16)."""
    return torch.float64 if p.dtype == torch.float64 else torch.float32


def preconditioned(p: Tensor, max_precondition_dim: int) -> bool:
    """Whether ``p`` gets Shampoo's factors: a matrix or a higher tensor with no dimension
    larger than ``max_precondition_dim``. The rest (vectors, 0-d tensors, large layers)
    take the graft's step."""
    return p.dim() >= 2 and all(size <= max_precondition_dim for size in p.shape)


def init(p: Tensor, *, eps=1e-6, graft="adagrad", max_precondition_dim=4096, **_) -> dict:
    state = {
        "step": exact_step(),
        "momentum_buffer": torch.zeros_like(p, memory_format=torch.preserve_format),
        "graft_momentum_buffer": torch.zeros_like(p, memory_format=torch.preserve_format),
    }
    if SECOND_MOMENT[graft] is not None:
        state["graft_sum_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    if preconditioned(p, max_precondition_dim):
        dtype = matrix_dtype(p)
        for i, size in enumerate(p.shape):
            eye = torch.eye(size, dtype=dtype, device=p.device)
            state[f"statistic_{i}"] = eps * eye  # L_0 = eps I, as in the paper
            state[f"inverse_root_{i}"] = eye  # until the first root is computed
    return state


def raise_for_factor(matrix: Tensor, err: Exception, what: str) -> NoReturn:
    """Raise ``err``, a decomposition of the preconditioner factor ``matrix`` that failed
    (Shampoo's SVD, SOAP's eigh): as it is where the factor is finite, else an error of its
    kind that says why. A gradient with inf or NaN entries, or finite entries whose products
    overflow the factor's dtype (past about 1.8e19 in float32), fills the factor with inf or
    NaN, and LAPACK's own words ("the input matrix is ill-conditioned") named neither."""
    if bool(torch.isfinite(matrix).all()):
        raise err
    raise type(err)(
        f"{what} of a preconditioner factor failed: the factor holds inf or NaN, from a "
        f"gradient with inf or NaN entries or with entries whose products overflow "
        f"{str(matrix.dtype).removeprefix('torch.')}, this step's or an earlier one's (the "
        "factor keeps it until the parameter's state is reset: del opt.state[p]). "
        "skip_nonfinite=True skips the steps whose gradients are not finite; scale the loss "
        "down where they are finite but this large") from err


def inverse_root(matrix: Tensor, power: int) -> Tensor:
    r""":math:`A^{-1/p}` of a symmetric positive definite matrix, through its SVD.

    A singular value that rounds to zero (a statistic whose :math:`\epsilon I` start has
    decayed away along a direction no gradient took) is raised to the dtype's smallest
    normal number, so the root stays finite instead of turning the step into NaN."""
    try:
        u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    except torch.linalg.LinAlgError as err:
        raise_for_factor(matrix, err, "the SVD")
    s = s.clamp_min(torch.finfo(s.dtype).tiny)
    return (u * s.pow(-1.0 / power).unsqueeze(-2)) @ vh


def _statistics_weight(beta2):
    """The weight of a new gradient's statistic: :math:`1-\\beta_2`, or 1 when
    :math:`\\beta_2 = 1` (sums, as in the 2018 paper)."""
    if isinstance(beta2, Tensor):
        return torch.where(beta2 == 1, torch.ones_like(beta2), 1 - beta2)
    return 1.0 if beta2 == 1 else 1 - beta2


def shampoo_direction(g: Tensor, state: dict, step, *, beta2, precondition_frequency) -> Tensor:
    r"""Update the factors with ``g`` and return :math:`L^{-1/4} G R^{-1/4}` (for a matrix;
    a tensor of order :math:`k` gets a :math:`-1/2k` root per dimension). The roots are
    recomputed every ``precondition_frequency`` steps."""
    order = g.dim()
    dtype = matrix_dtype(g)
    g_mat = g.to(dtype)
    weight = _statistics_weight(beta2)
    for i in range(order):
        others = [d for d in range(order) if d != i]
        outer = torch.tensordot(g_mat, g_mat, dims=[others, others])
        statistic = state[f"statistic_{i}"] = add_scaled(
            state[f"statistic_{i}"].to(dtype) * beta2, outer, weight)
        if step % precondition_frequency == 0:
            state[f"inverse_root_{i}"] = inverse_root(statistic, 2 * order)
    direction = g_mat
    for i in range(order):  # a mode product per dimension, each moving it last
        root = state[f"inverse_root_{i}"].to(dtype)
        direction = torch.tensordot(direction, root, dims=[[0], [0]])
    return direction.to(g.dtype)


def update(p, g, state, *, step, lr, betas, eps, graft, graft_eps, weight_decay,
           decoupled_weight_decay, nesterov, start_preconditioning_step,
           precondition_frequency, max_precondition_dim, **_) -> Tensor:
    beta1, beta2 = betas
    # the graft: a diagonal method's step, whose size each layer's Shampoo step takes
    second_moment = SECOND_MOMENT[graft]
    if second_moment is not None:
        a = state["graft_sum_sq"] = second_moment(state["graft_sum_sq"], g, beta2)
        graft_step = g / (a.sqrt() + graft_eps)
    else:
        graft_step = g
    if preconditioned(p, max_precondition_dim):
        shampoo_step = shampoo_direction(g, state, step, beta2=beta2,
                                         precondition_frequency=precondition_frequency)
    else:
        shampoo_step = graft_step
    if graft != "none":
        norm = torch.linalg.norm(shampoo_step)
        shampoo_step = shampoo_step * (torch.linalg.norm(graft_step) / (norm + 1e-16))
    if nonzero(weight_decay):
        if decoupled_weight_decay:
            p = p * (1 - weight_decay * lr)
        else:  # L2, added to both directions after grafting, as the authors' code
            graft_step = add_scaled(graft_step, p, weight_decay)
            shampoo_step = add_scaled(shampoo_step, p, weight_decay)
    # heavy-ball momentum of both directions; the graft's own until preconditioning starts
    m = state["momentum_buffer"] = state["momentum_buffer"] * beta1 + shampoo_step
    m_graft = state["graft_momentum_buffer"] = state["graft_momentum_buffer"] * beta1 + graft_step
    started = step >= start_preconditioning_step
    direction = m if started else m_graft
    if nesterov:
        direction = direction * beta1 + (shampoo_step if started else graft_step)
    return add_scaled(p, direction, -lr)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \epsilon_g
            \text{ (graft eps)}, \lambda \text{ (weight decay)}, T \text{ (start
            preconditioning step)}, f \text{ (precondition frequency)},
            \theta_0 \in \mathbb{R}^{m\times n}, f(\theta)\\
       &\textbf{init}: L \leftarrow \epsilon I_m,\ R \leftarrow \epsilon I_n,\
            P_L \leftarrow I_m,\ P_R \leftarrow I_n,\ A \leftarrow 0,\ M \leftarrow 0,\
            M_g \leftarrow 0;\quad w \leftarrow 1-\beta_2 \text{ if } \beta_2 < 1
            \text{ else } 1\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad G \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad A \leftarrow A + G \odot G\ \text{(adagrad)},\quad
            A \leftarrow \beta_2 A + w\, G \odot G\ \text{(rmsprop)}\\
       &\quad D_g \leftarrow G / (\sqrt{A} + \epsilon_g)\ \text{(adagrad, rmsprop)},\quad
            D_g \leftarrow G\ \text{(sgd, none)}\\
       &\quad L \leftarrow \beta_2 L + w\, G G^\top,\quad R \leftarrow \beta_2 R + w\, G^\top G\\
       &\quad \textbf{if}\ t \bmod f = 0:\ P_L \leftarrow L^{-1/4},\ P_R \leftarrow R^{-1/4}\\
       &\quad D \leftarrow P_L G P_R,\quad
            \textbf{if}\ \text{graft} \ne \text{none}:\
            D \leftarrow D\, \|D_g\|_F / (\|D\|_F + 10^{-16})\\
       &\quad \textbf{if}\ \text{decoupled}:\ \theta_{t-1} \leftarrow \theta_{t-1}(1-\gamma\lambda)
            \quad \textbf{else}:\ D \leftarrow D + \lambda\theta_{t-1},\
            D_g \leftarrow D_g + \lambda\theta_{t-1}\\
       &\quad M \leftarrow \beta_1 M + D,\quad M_g \leftarrow \beta_1 M_g + D_g\\
       &\quad U \leftarrow \begin{cases} M\ (\beta_1 M + D \text{ if nesterov}) & t \ge T\\
            M_g\ (\beta_1 M_g + D_g \text{ if nesterov}) & t < T \end{cases}\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \gamma U
       \end{aligned}
"""


class Shampoo(RuleOptimizer):
    __doc__ = rf"""Shampoo with grafting: Kronecker-factored full-matrix Adagrad, sized by a graft.

    For a matrix gradient :math:`G`, Shampoo keeps the factors :math:`L = \sum GG^\top`
    and :math:`R = \sum G^\top G` (or their running averages) and steps along
    :math:`L^{{-1/4}} G R^{{-1/4}}`, the Kronecker approximation of full-matrix Adagrad's
    :math:`(\sum g g^\top)^{{-1/2}} g`. A tensor of order :math:`k` keeps a factor per
    dimension and takes its :math:`-1/2k` root. Anil et al. made it practical: running
    averages of the factors, roots recomputed only every ``precondition_frequency`` steps,
    the first ``start_preconditioning_step - 1`` steps taken by the graft alone, momentum,
    and *grafting*: each layer's step keeps Shampoo's direction but takes the norm of a
    diagonal method's step (Adagrad, RMSprop or SGD), so a learning rate tuned for that
    method carries over. Vectors, 0-d tensors and layers with a dimension larger than
    ``max_precondition_dim`` take the graft's step.
{_RULE}
    .. warning::
       The reference is ``pytorch_optimizer.ScalableShampoo`` (4.1.0), the port of the
       authors' ``distributed_shampoo`` (google-research, scalable_shampoo), which has
       grafting (``pytorch_optimizer.Shampoo`` is the 2018 algorithm without it). It agrees
       with ``ScalableShampoo(params, lr, betas, weight_decay, decoupled_weight_decay,
       start_preconditioning_step=T, preconditioning_compute_steps=f, graft_type=...,
       nesterov, diagonal_eps=graft_eps, matrix_eps=eps, no_preconditioning_for_layers_with_
       dim_gt=max_precondition_dim, use_svd=True, shape_interpretation=False,
       block_size=<at least the largest dimension>)``. Its other defaults differ: it merges
       small dimensions (``shape_interpretation=True``, which turns a small matrix into a
       vector and so off its preconditioning), splits dimensions into blocks of 512, and
       computes roots by a coupled Newton iteration whose power iteration starts from a
       random vector and adds a ridge :math:`\epsilon\lambda_{{max}}` (``use_svd=False``);
       here the roots come from an SVD of :math:`L` itself (whose :math:`\epsilon I` start
       decays with :math:`\beta_2`), and no dimension is merged or blocked. The defaults
       ``start_preconditioning_step=5``, ``precondition_frequency=1`` and the limit 4096
       are those of the authors' ``distributed_shampoo`` (``pytorch_optimizer``'s: 25,
       1000, 8192); both default to SGD grafting, where this class grafts from Adagrad, the
       diagonal method of which Shampoo is the Kronecker-factored full-matrix form. Its
       constructor refuses :math:`\beta_2 = 1`, though its code then sums the statistics
       as here (the oracle sets it after construction); its RMSprop graft then keeps a sum
       of squares of weight :math:`1-\beta_2 = 0`, which stays 0, where here it sums too.
       Its step count is per param group, here per parameter, as torch's (the same while
       every parameter gets a gradient on every step), a Python int there, an exact
       float64 counter here (``state["step"]``; torch's float32 one stops counting at
       ``2**24``, which would stop the root refreshes there; a checkpoint's float32 step is
       loaded as float64).

    .. note::
       Memory: two momentum buffers (Shampoo's and the graft's), Adagrad's or RMSprop's
       sum of squares, and a statistic and an inverse root, :math:`d \times d` each, for
       every dimension :math:`d` of a preconditioned tensor. Those of a bfloat16 or float16
       parameter are kept in float32 (a checkpoint loads them back in float32).
       ``state_precision`` compacts the momenta and the sum of squares; the statistics and
       roots stay in full precision. With
       ``betas=(0, 1)`` (no momentum, sums for :math:`L, R`), ``graft="none"`` and
       ``start_preconditioning_step=1`` this is the 2018 algorithm,
       :math:`\theta \leftarrow \theta - \gamma L^{{-1/4}} G R^{{-1/4}}` (``nesterov``
       then adds nothing, since :math:`\beta_1 = 0`).

    Args:
        params (iterable): parameters or parameter groups to optimize (real only).
        lr (float or Tensor, optional): learning rate :math:`\gamma`, on the graft's scale
            (default: 1e-2).
        betas (tuple[float, float], optional): momentum :math:`\beta_1` (heavy ball, no
            dampening) and decay rate :math:`\beta_2 \in [0, 1]` of the statistics and of
            RMSprop's graft; :math:`\beta_2 = 1` sums them (the statistics as the 2018
            paper, RMSprop's graft as Adagrad's) (default: (0.9, 0.999)).
        eps (float, optional): :math:`\epsilon`, the start :math:`\epsilon I` of every
            statistic, which keeps the roots finite (default: 1e-6).
        graft (str, optional): the step size's source, one of ``"adagrad"``, ``"rmsprop"``,
            ``"sgd"`` or ``"none"`` (Shampoo's own step). RMSprop's has no bias
            correction, so its first steps are up to :math:`1/\sqrt{{1-\beta_2}}` (about
            30) times its later ones (default: "adagrad").
        graft_eps (float, optional): :math:`\epsilon_g`, added to Adagrad's or RMSprop's
            :math:`\sqrt{{A}}` (default: 1e-10).
        weight_decay (float, optional): weight decay :math:`\lambda` (default: 0).
        decoupled_weight_decay (bool, optional): decay the weights by :math:`\gamma\lambda`
            instead of adding :math:`\lambda\theta` to both directions after grafting
            (default: False).
        nesterov (bool, optional): Nesterov's form of the momentum (default: True).
        start_preconditioning_step (int, optional): the first step :math:`T` that takes
            Shampoo's direction; the steps before take the graft's (default: 5).
        precondition_frequency (int, optional): steps :math:`f` between two computations of
            the inverse roots (default: 1).
        max_precondition_dim (int, optional): a tensor with a dimension larger than this
            takes the graft's step (there is no blocking) (default: 4096).
{_ARGS_DOC}

    Reference: Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor
    Optimization", ICML 2018, https://arxiv.org/abs/1802.09568; grafting, running averages
    and the other practical changes from Anil, Gupta, Koren, Regan & Singer, "Scalable
    Second Order Optimization for Deep Learning", https://arxiv.org/abs/2002.09018.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([[1.5, -2.0], [0.5, 1.0]], requires_grad=True)
        >>> opt = optimlab.Shampoo([w], lr=0.1)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    # matrix roots on each tensor's own shape: one tensor at a time, one instance per member
    capabilities = Capabilities(batching="member", multi_tensor=False, complex=False,
                                moments=("momentum_buffer", "graft_momentum_buffer"),
                                second_moments=("graft_sum_sq",))
    init = staticmethod(init)
    update = staticmethod(update)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-6,
        graft: str = "adagrad",
        graft_eps: float | Tensor = 1e-10,
        weight_decay: float | Tensor = 0.0,
        decoupled_weight_decay: bool = False,
        nesterov: bool = True,
        start_preconditioning_step: int = 5,
        precondition_frequency: int = 1,
        max_precondition_dim: int = 4096,
        *,
        maximize: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_items("betas", betas, 2, "a pair (beta1, beta2)")
        check_range("betas[0]", betas[0], 0.0, 1.0)
        check_range("betas[1]", betas[1], 0.0, 1.0, high_open=False)
        check_range("eps", eps, 0.0, low_open=True)
        if graft not in GRAFTS:
            raise ValueError(f"graft must be one of {', '.join(GRAFTS)}, got {graft!r}")
        check_range("graft_eps", graft_eps, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        check_bool("decoupled_weight_decay", decoupled_weight_decay)
        check_bool("nesterov", nesterov)
        check_int("start_preconditioning_step", start_preconditioning_step, 1)
        check_int("precondition_frequency", precondition_frequency, 1)
        check_int("max_precondition_dim", max_precondition_dim, 1)
        defaults = dict(lr=lr, betas=betas, eps=eps, graft=graft, graft_eps=graft_eps,
                        weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
                        nesterov=nesterov, start_preconditioning_step=start_preconditioning_step,
                        precondition_frequency=precondition_frequency,
                        max_precondition_dim=max_precondition_dim, maximize=maximize)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)



