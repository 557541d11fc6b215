"""PSGD-Kron: preconditioned SGD with a Kronecker-factored preconditioner (Li 2015, 2018)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import (
    RuleOptimizer,
    check_bool,
    check_int,
    check_range,
    common_args_doc,
    nonzero,
    scalar_step,
)
from .capabilities import Capabilities
from .ops import add_scaled

# PSGD-Kron is not in torch.optim (no ``foreach``) and has no fused kernel (no ``fused``).
_ARGS_DOC = common_args_doc(foreach=False, fused=False)

#: the ways ``memory_save_mode`` may make factors diagonal (None: none forced)
MEMORY_SAVE_MODES = (None, "one_diag", "smart_one_diag", "all_diag")

#: the step is rescaled to an RMS of at most this (kron_torch's and the reference's clip)
RMS_CLIP = 1.1
#: added to the update's RMS before the clip
RMS_EPS = 1e-6
#: added to the normaliser of a factor's update (bfloat16's smallest normal number, as the
#: reference)
NORM_EPS = float(torch.finfo(torch.bfloat16).tiny)


def _precondition_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the preconditioner is kept and applied in: the parameter's, at least float32."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _factor_shape(shape) -> tuple[int, ...]:
    """The dimensions with one factor each (a 0-d parameter has one factor of size 1)."""
    return tuple(shape) if len(shape) else (1,)


def _triangular(shape: tuple[int, ...], max_size_triangular: int, min_ndim_triangular: int,
                memory_save_mode: str | None) -> list[bool]:
    """For each dimension, whether its factor is an upper-triangular matrix (else diagonal)."""
    ndim = len(shape)
    diagonal = [False] * ndim
    largest = max(range(ndim), key=lambda i: (shape[i], i))  # the last of equal largest
    if memory_save_mode == "all_diag":
        diagonal = [True] * ndim
    elif memory_save_mode == "one_diag" or (
            memory_save_mode == "smart_one_diag" and ndim >= 2
            and sorted(shape)[-1] > sorted(shape)[-2]):
        diagonal[largest] = True
    return [not diag and 1 < size <= max_size_triangular and ndim >= min_ndim_triangular
            for size, diag in zip(shape, diagonal)]


def init(p: Tensor, *, precondition_init_scale=1.0, max_size_triangular=8192,
         min_ndim_triangular=2, memory_save_mode=None, seed=0, **_) -> dict:
    shape = _factor_shape(p.shape)
    dtype = _precondition_dtype(p.dtype)
    scale = math.pow(precondition_init_scale, 1.0 / len(shape))
    state = {
        "step": scalar_step(),
        # steps since the preconditioner was last updated
        "update_counter": torch.zeros((), dtype=torch.int64),
        "momentum_buffer": torch.zeros_like(p, memory_format=torch.preserve_format),
        # this tensor's own noise generator, so the noise does not depend on the grouping
        "rng_state": torch.Generator().manual_seed(seed).get_state(),
    }
    kinds = _triangular(shape, max_size_triangular, min_ndim_triangular, memory_save_mode)
    for i, (size, triangular) in enumerate(zip(shape, kinds)):
        if triangular:
            state[f"Q{i}"] = scale * torch.eye(size, dtype=dtype, device=p.device)
        else:
            state[f"Q{i}"] = scale * torch.ones(size, dtype=dtype, device=p.device)
    return state


# -- the Kronecker product, one dimension at a time -------------------------------------------
def _apply(x: Tensor, q: Tensor, i: int, transpose: bool = False) -> Tensor:
    """``x`` with factor ``q`` (or its transpose) multiplied into dimension ``i``."""
    if q.dim() == 1:
        return x * q.reshape([-1] + [1] * (x.dim() - 1 - i))
    return torch.movedim(torch.tensordot(q.T if transpose else q, x, dims=([1], [i])), 0, i)


def _solve(x: Tensor, q: Tensor, i: int) -> Tensor:
    """``x`` with the inverse transpose of factor ``q`` multiplied into dimension ``i``."""
    if q.dim() == 1:
        return x / q.reshape([-1] + [1] * (x.dim() - 1 - i))
    y = torch.movedim(x, i, -1)
    y = torch.linalg.solve_triangular(q, y.reshape(-1, y.shape[-1]), upper=True, left=False)
    return torch.movedim(y.reshape(torch.movedim(x, i, -1).shape), -1, i)


def _gram(x: Tensor, i: int, triangular: bool) -> Tensor:
    """:math:`X_{(i)} X_{(i)}^\\top` of the dimension-``i`` unfolding (its diagonal only for
    a diagonal factor)."""
    rows = torch.movedim(x, i, 0).reshape(x.shape[i], -1)
    return rows @ rows.T if triangular else (rows * rows).sum(dim=1)


def _upper(x: Tensor) -> Tensor:
    """The upper triangle of the matrix ``x``, as ``torch.triu`` (which can take milliseconds
    on a small matrix when the CPU's threads are contended)."""
    index = torch.arange(x.shape[0], device=x.device)
    return torch.where(index[:, None] <= index[None, :], x, 0.0)


def norm_lower_bound(a: Tensor) -> Tensor:
    """A cheap lower bound of the spectral norm of the symmetric matrix ``a`` (Li's): the
    norm of ``a`` applied to its largest row or column, normalised."""
    max_abs = a.abs().max()
    tiny = torch.finfo(a.dtype).tiny
    a = a / torch.where(max_abs > 0, max_abs, 1.0)
    aa = a * a
    value0, i = torch.max(torch.sum(aa, dim=0), 0)
    value1, j = torch.max(torch.sum(aa, dim=1), 0)
    x0 = a.index_select(1, i.reshape(1)).flatten() @ a
    bound0 = torch.linalg.vector_norm((x0 / torch.linalg.vector_norm(x0).clamp_min(tiny)) @ a.T)
    x1 = a @ a.index_select(0, j.reshape(1)).flatten()
    bound1 = torch.linalg.vector_norm(a.T @ (x1 / torch.linalg.vector_norm(x1).clamp_min(tiny)))
    return max_abs * torch.where(value0 > value1, bound0, bound1)


def _balance(qs: list[Tensor]) -> list[Tensor]:
    """The factors rescaled to the geometric mean of their largest entries (their product,
    the preconditioner, is unchanged: this only keeps the factors' ranges alike)."""
    norms = torch.stack([q.abs().max() for q in qs])
    scales = norms.prod() ** (1 / len(qs)) / norms
    return [q * scales[i] for i, q in enumerate(qs)]


def _fit(qs: list[Tensor], h: Tensor, v: Tensor, precondition_lr) -> list[Tensor]:
    """One step of every factor towards :math:`P h h^\\top P = v v^\\top` in expectation
    (Li's criterion), on the group of upper-triangular (or diagonal) matrices."""
    a, b = h, v
    for i, q in enumerate(qs):
        a = _apply(a, q, i)
        b = _solve(b, q, i)
    new = []
    for i, q in enumerate(qs):
        triangular = q.dim() == 2
        term1, term2 = _gram(a, i, triangular), _gram(b, i, triangular)
        if triangular:
            step = _upper((term1 - term2) * precondition_lr)
            step = step / (norm_lower_bound(term1 + term2) + NORM_EPS)
            new.append(q - step @ q)
        else:
            step = (term1 - term2) * precondition_lr * q
            new.append(q - step / ((term1 + term2).abs().max() + NORM_EPS))
    return new


def update_probability(n) -> Tensor:
    """The default schedule of the preconditioner update probability after ``n`` steps:
    1 for 500 steps, then decaying as :math:`e^{-0.001(n-500)}` to a floor of 0.03 (the
    reference's ``precondition_update_prob_schedule()``, in float32 as it computes it)."""
    prob = torch.exp(-0.001 * (torch.tensor(n, dtype=torch.float32) - 500))
    return prob.clamp(min=0.03, max=1.0)


def _noise(state: dict, shape, dtype: torch.dtype, device) -> Tensor:
    """A standard normal tensor from this tensor's own generator (drawn on the CPU, so the
    same on every device), whose new state is kept."""
    generator = torch.Generator()
    generator.set_state(state["rng_state"].to("cpu", torch.uint8))
    v = torch.randn(shape, generator=generator, dtype=dtype)
    state["rng_state"] = generator.get_state()
    return v.to(device)


def update(p, g, state, *, step, lr, momentum, weight_decay, weight_decouple=True,
           pre_conditioner_update_probability=None, momentum_into_precondition_update=True,
           precondition_lr=0.1, **_) -> Tensor:
    matrix = p.dim() >= 2  # weight decay and balancing apply to matrices and beyond
    if matrix and not weight_decouple and nonzero(weight_decay):
        g = add_scaled(g, p, weight_decay)
    m = state["momentum_buffer"] = add_scaled(state["momentum_buffer"] * momentum, g,
                                              1 - momentum)
    if p.numel() == 0:
        return p
    dtype = _precondition_dtype(p.dtype)
    shape = _factor_shape(p.shape)
    m_hat = (m / (1 - momentum**step)).to(dtype).reshape(shape)
    qs = [state[f"Q{i}"].to(dtype) for i in range(len(shape))]

    prob = pre_conditioner_update_probability
    if prob is None:
        prob = update_probability(step - 1)
    counter = int(state["update_counter"]) + 1
    refit = bool(prob > 0 and counter >= 1 / prob)
    state["update_counter"] = torch.tensor(0 if refit else counter)
    if refit:
        if matrix:
            qs = _balance(qs)
        v = _noise(state, shape, dtype, p.device)
        h = m_hat if momentum_into_precondition_update else g.to(dtype).reshape(shape)
        qs = _fit(qs, h, v, precondition_lr)
        for i, q in enumerate(qs):
            state[f"Q{i}"] = q

    u = m_hat
    for i, q in enumerate(qs):
        u = _apply(u, q, i)
    for i, q in enumerate(qs):
        u = _apply(u, q, i, transpose=True)
    u = u.reshape(p.shape).to(p.dtype)
    u = u * torch.clamp(RMS_CLIP / (u.square().mean().sqrt() + RMS_EPS), max=1.0)
    if matrix and weight_decouple and nonzero(weight_decay):
        u = add_scaled(u, p, weight_decay)
    return add_scaled(p, u, -lr)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \mu \text{ (momentum)}, \lambda
            \text{ (weight decay)}, \eta \text{ (precondition lr)}, s
            \text{ (precondition init scale)}, p_t \text{ (update probability)},
            \theta_0 \in \mathbb{R}^{n_1 \times \cdots \times n_k}, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ c_0 \leftarrow 0,\
            Q_i \leftarrow s^{1/k} I_{n_i} \text{ (upper triangular) or }
            s^{1/k} \mathbf{1}_{n_i} \text{ (diagonal)},\ i = 1, \ldots, k\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \ (+\lambda\theta_{t-1} \text{ if not decoupled and } k \ge 2)
            \quad (- \text{ if maximize})\\
       &\quad m_t \leftarrow \mu m_{t-1} + (1-\mu) g_t,\quad
            \hat m_t \leftarrow m_t / (1-\mu^t)\\
       &\quad c_t \leftarrow c_{t-1} + 1;\ \textbf{if}\ c_t \ge 1/p_t:\ c_t \leftarrow 0,\
            v \sim \mathcal{N}(0, I),\ h \leftarrow \hat m_t
            \ (g_t \text{ if not momentum into precondition update})\\
       &\quad\quad A \leftarrow h \times_1 Q_1 \cdots \times_k Q_k,\quad
            B \leftarrow v \times_1 Q_1^{-\top} \cdots \times_k Q_k^{-\top},\quad
            E_i \leftarrow A_{(i)} A_{(i)}^\top - B_{(i)} B_{(i)}^\top,\
            S_i \leftarrow A_{(i)} A_{(i)}^\top + B_{(i)} B_{(i)}^\top\\
       &\quad\quad Q_i \leftarrow Q_i - \frac{\eta}{\lVert S_i \rVert_2 + \epsilon}\,
            \mathrm{triu}(E_i)\, Q_i \ \text{(triangular)},\quad
            Q_i \leftarrow Q_i - \frac{\eta}{\lVert \mathrm{diag}\,S_i \rVert_\infty
            + \epsilon}\, \mathrm{diag}(E_i) \odot Q_i \ \text{(diagonal)}\\
       &\quad u_t \leftarrow \hat m_t \times_1 Q_1^\top Q_1 \cdots \times_k Q_k^\top Q_k,\quad
            u_t \leftarrow u_t \min\big(1, 1.1 / (\mathrm{RMS}(u_t) + 10^{-6})\big)\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \gamma\,\big(u_t
            + \lambda\theta_{t-1} \text{ if decoupled and } k \ge 2\big)
       \end{aligned}
"""


class PSGDKron(RuleOptimizer):
    __doc__ = rf"""PSGD-Kron: SGD with momentum, preconditioned by a fitted Kronecker product.

    Preconditioned SGD fits a preconditioner :math:`P = Q^\top Q` on the fly from pairs of
    a probe :math:`v` and a response :math:`h`, by Li's criterion
    :math:`E[P h h^\top P] = E[v v^\top]`. With :math:`h` the Hessian-vector response to a
    perturbation :math:`v` (the 2015 paper), :math:`P` approaches the inverse Hessian; here,
    as in ``kron_torch``, :math:`h` is the (averaged) gradient and :math:`v` Gaussian noise,
    so :math:`P` approaches :math:`E[h h^\top]^{{-1/2}}` (the "whitening" preconditioner,
    Shampoo's target), found by cheap steps on a group of triangular matrices instead of
    matrix roots. For a tensor with dimensions
    :math:`n_1 \times \cdots \times n_k`, :math:`Q = Q_1 \otimes \cdots \otimes Q_k`
    with each :math:`Q_i` an :math:`n_i \times n_i` upper-triangular matrix, or a
    diagonal one (a vector) for a dimension larger than ``max_size_triangular``, of size 1,
    of a tensor with fewer than ``min_ndim_triangular`` dimensions, or chosen by
    ``memory_save_mode``. :math:`X \times_i M` multiplies :math:`M` into dimension
    :math:`i` of :math:`X`, :math:`X_{{(i)}}` is the :math:`n_i \times (\text{{rest}})`
    unfolding of :math:`X` along dimension :math:`i`, :math:`\lVert\cdot\rVert_2` is
    estimated from below as in Li's code, and :math:`\epsilon` is bfloat16's smallest
    normal number.

    The factors are refitted with probability :math:`p_t`, deterministically: every
    :math:`\lceil 1/p_t \rceil`-th step. By default
    :math:`p_t = \min(1, \max(0.03, e^{{-0.001(t-501)}}))`: every step up to step 501, then
    less and less often, down to one step in 34. On each refit the factors of a tensor with
    two or more dimensions are first rescaled to the geometric mean of their largest
    entries, which leaves :math:`Q` unchanged and keeps their ranges alike. Each tensor draws
    :math:`v` from its own generator, seeded with ``seed`` and kept in its state
    (``rng_state``): a run is reproducible, resumes exactly from a state_dict, and does not
    depend on how the tensors are grouped or on torch's global generator. The stream is
    drawn on the CPU (the same numbers on every device) and copied to the parameter's: on a
    GPU each refit costs a host-to-device copy the size of the parameter (every step for
    the first 500 steps).
{_RULE}
    .. warning::
       This is the Kronecker form of Evan Walters' ``kron_torch`` and of the reference,
       ``pytorch_optimizer.Kron`` (same argument names and defaults where both have them);
       the momentum, the RMS clip at 1.1, the refit schedule and the decay are their
       choices, not the 2015 paper's. It differs from the reference where noted here, and
       these settings make the reference agree:

       * noise: the reference draws :math:`v` from torch's global generator, tensor after
         tensor; here from each tensor's own stream. Agreement: one ``Kron`` per tensor,
         each stepped with torch's global generator state set to its own stream (started by
         ``torch.manual_seed(seed)``).
       * balancing: the reference rescales the factors on a refit with probability
         ``balance_prob=0.01``, drawn from NumPy's global generator; here on every refit
         (exact arithmetic is unchanged either way). Agreement: ``balance_prob=1.0``.
       * precision: the reference keeps the preconditioner in float32
         (``precondition_dtype=torch.float32``) and always solves the triangular systems in
         float32; here it is kept and applied in the parameter's dtype, at least float32
         (the same for float32 and bfloat16 parameters). Agreement for float64:
         ``precondition_dtype=None`` and a float64 solve.
       * schedule: the reference decides once per step, for every group, from the first
         group's step and counter; here each tensor keeps its own step and counter (the
         same while every tensor gets a gradient every step). A callable
         ``pre_conditioner_update_probability`` is not taken (a float or None is).
       * ``precondition_lr`` and ``precondition_init_scale`` are arguments here; in the
         reference they are only param-group entries (set them in the group).
         ``mu_dtype`` is not offered: the momentum is kept in the parameter's dtype (or
         with ``state_precision``).

    .. note::
       As in the reference, weight decay applies only to tensors with two or more
       dimensions (biases and norms are not decayed), decoupled decay is scaled by the
       learning rate, and the noise is drawn on the CPU and moved to the parameter's
       device. Every tensor's generator starts from the same ``seed``. Memory: the
       momentum plus :math:`\sum_i n_i^2` numbers for the triangular factors (three
       parameter-sized buffers for a square matrix) and :math:`n_i` for the diagonal ones.

    Args:
        params (iterable): parameters or parameter groups to optimize (real only).
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-3).
        momentum (float, optional): decay rate :math:`\mu` of the (bias-corrected) gradient
            average that is preconditioned (default: 0.9).
        weight_decay (float, optional): decay :math:`\lambda` of tensors with two or more
            dimensions (default: 0.0).
        weight_decouple (bool, optional): add :math:`\lambda\theta` to the preconditioned
            step (True) or to the gradient (False) (default: True).
        pre_conditioner_update_probability (float or None, optional): the fraction
            :math:`p_t` of steps that refit the preconditioner, in [0, 1]; None follows the
            schedule above (default: None).
        max_size_triangular (int, optional): dimensions larger than this get a diagonal
            factor (default: 8192).
        min_ndim_triangular (int, optional): tensors with fewer dimensions get diagonal
            factors only (default: 2).
        memory_save_mode (str or None, optional): None (triangular factors wherever the
            sizes allow), ``"one_diag"`` (the largest dimension's factor diagonal, the last
            of equal ones), ``"smart_one_diag"`` (the same only where that dimension is
            strictly the largest) or ``"all_diag"`` (default: None).
        momentum_into_precondition_update (bool, optional): fit the preconditioner to
            :math:`\hat m_t` (True) or to :math:`g_t` (default: True).
        precondition_lr (float, optional): normalised step :math:`\eta` of a refit, in
            [0, 1), which keeps every factor invertible (default: 0.1).
        precondition_init_scale (float, optional): :math:`s > 0`, the starting
            preconditioner :math:`P_0 = s^2 I` (default: 1.0).
        seed (int, optional): seed of every tensor's noise generator (default: 0).
{_ARGS_DOC}

    Reference: Li, "Preconditioned Stochastic Gradient Descent", IEEE TNNLS 2018,
    https://arxiv.org/abs/1512.04202; the Kronecker factors on the group of triangular
    matrices: Li, "Preconditioner on Matrix Lie Group for SGD", ICLR 2019,
    https://arxiv.org/abs/1809.10232; the form here: Walters, ``kron_torch``,
    https://github.com/evanatyourservice/kron_torch.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.PSGDKron([w], lr=0.05)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.1)
        True
    """

    # Tensor by tensor: the factors follow each tensor's own shape, a refit is a Python
    # decision with its own generator, and triangular solves do not batch over members; so
    # one optimizer instance per member of a population.
    capabilities = Capabilities(batching="member", multi_tensor=False, complex=False,
                                moments=("momentum_buffer",))
    init = staticmethod(init)
    update = staticmethod(update)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        momentum: float | Tensor = 0.9,
        weight_decay: float | Tensor = 0.0,
        weight_decouple: bool = True,
        pre_conditioner_update_probability: float | Tensor | None = None,
        max_size_triangular: int = 8192,
        min_ndim_triangular: int = 2,
        memory_save_mode: str | None = None,
        momentum_into_precondition_update: bool = True,
        precondition_lr: float | Tensor = 0.1,
        precondition_init_scale: float | Tensor = 1.0,
        seed: int = 0,
        *,
        maximize: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_range("momentum", momentum, 0.0, 1.0)
        check_range("weight_decay", weight_decay, 0.0)
        check_bool("weight_decouple", weight_decouple)
        if pre_conditioner_update_probability is not None:
            check_range("pre_conditioner_update_probability",
                        pre_conditioner_update_probability, 0.0, 1.0, high_open=False)
        check_int("max_size_triangular", max_size_triangular, 0)
        check_int("min_ndim_triangular", min_ndim_triangular, 0)
        if memory_save_mode not in MEMORY_SAVE_MODES:
            raise ValueError(f"memory_save_mode must be one of {MEMORY_SAVE_MODES}, got "
                             f"{memory_save_mode!r:.60}")
        check_bool("momentum_into_precondition_update", momentum_into_precondition_update)
        check_range("precondition_lr", precondition_lr, 0.0, 1.0)
        check_range("precondition_init_scale", precondition_init_scale, 0.0, low_open=True)
        check_int("seed", seed, 0)
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        weight_decouple=weight_decouple,
                        pre_conditioner_update_probability=pre_conditioner_update_probability,
                        max_size_triangular=max_size_triangular,
                        min_ndim_triangular=min_ndim_triangular,
                        memory_save_mode=memory_save_mode,
                        momentum_into_precondition_update=momentum_into_precondition_update,
                        precondition_lr=precondition_lr,
                        precondition_init_scale=precondition_init_scale, seed=seed,
                        maximize=maximize)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)



