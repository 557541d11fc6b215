"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner (Vyas et al. 2024)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_betas, check_bool, check_int, check_range, common_args_doc
from .capabilities import Capabilities
from .ops import add_scaled
from .rule import exact_step, nonzero
from .shampoo import raise_for_factor

# SOAP is not in torch.optim and has no fused kernel (eigendecompositions, QR).
_ARGS_DOC = common_args_doc(foreach=False, fused=False)


def matrix_dtype(p: Tensor) -> torch.dtype:
    """The dtype of all of SOAP's state: the parameter's, at least float32
    (``torch.linalg.eigh`` and ``qr`` take no bfloat16 or float16)."""
    return p.dtype if p.dtype in (torch.float32, torch.float64) else torch.float32


def rotated_dims(p: Tensor, max_precondition_dim: int, precondition_1d: bool) -> list[bool]:
    """Which dimensions of ``p`` get a factor and an eigenbasis (the others stay unrotated):
    those of size at most ``max_precondition_dim``, and a vector's only if
    ``precondition_1d``; a 0-d tensor has none (plain Adam)."""
    if p.dim() == 1 and not precondition_1d:
        return [False]
    return [size <= max_precondition_dim for size in p.shape]


def init(p: Tensor, *, max_precondition_dim=10000, precondition_1d=False, **_) -> dict:
    dtype = matrix_dtype(p)
    state = {
        "step": exact_step(),
        "exp_avg": torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format),
    }
    for i, rotated in enumerate(rotated_dims(p, max_precondition_dim, precondition_1d)):
        if rotated:
            size = p.shape[i]
            # the factor GG^T over dimension i, and its eigenbasis (set on the first step)
            state[f"GG_{i}"] = torch.zeros(size, size, dtype=dtype, device=p.device)
            state[f"Q_{i}"] = torch.eye(size, dtype=dtype, device=p.device)
    return state


def _bases(state: dict, dims: list[bool], dtype: torch.dtype) -> list[Tensor | None]:
    return [state[f"Q_{i}"].to(dtype) if rotated else None for i, rotated in enumerate(dims)]


def project(x: Tensor, bases: list[Tensor | None], back: bool = False) -> Tensor:
    r"""``x`` in the eigenbasis (:math:`Q_L^\top X Q_R` for a matrix), or back from it
    (:math:`Q_L X Q_R^\top`): a mode product with each dimension's basis in turn, each moving
    that dimension last, so the shape comes back after a full turn. An unrotated dimension
    only moves."""
    for q in bases:
        if q is None:
            x = x.permute([*range(1, x.dim()), 0])
        else:
            x = torch.tensordot(x, q, dims=[[0], [1 if back else 0]])
    return x


def _accumulate(state: dict, g: Tensor, dims: list[bool], shampoo_beta) -> None:
    """Move each factor towards this gradient's: :math:`GG^\top` over one dimension."""
    for i, rotated in enumerate(dims):
        if not rotated:
            continue
        if g.dim() == 1:
            outer = g.unsqueeze(1) @ g.unsqueeze(0)
        else:
            others = [d for d in range(g.dim()) if d != i]
            outer = torch.tensordot(g, g, dims=[others, others])
        state[f"GG_{i}"] = torch.lerp(state[f"GG_{i}"].to(g.dtype), outer, 1 - shampoo_beta)


def _eigenbasis(gg: Tensor) -> Tensor:
    """The eigenvectors of a factor, by decreasing eigenvalue (the first step's basis)."""
    eye = torch.eye(gg.shape[0], dtype=gg.dtype, device=gg.device)
    try:
        _, q = torch.linalg.eigh(gg + 1e-30 * eye)
    except torch.linalg.LinAlgError:  # did not converge: retry in float64, as the authors do
        try:
            _, q = torch.linalg.eigh(gg.double() + 1e-30 * eye.double())
        except torch.linalg.LinAlgError as err:
            raise_for_factor(gg, err, "eigh")
        q = q.to(gg.dtype)
    return torch.flip(q, dims=[1])


def _refresh(state: dict, dims: list[bool]) -> None:
    """One power iteration and a QR decomposition per factor: :math:`Q \\leftarrow
    \\mathrm{QR}(L Q)`. The columns are first put in order of decreasing estimated
    eigenvalue :math:`\\mathrm{diag}(Q^\\top L Q)`, and the second moment, which lives in
    the eigenbasis, is permuted alike so that each entry stays with its direction."""
    v = state["exp_avg_sq"]
    for i, rotated in enumerate(dims):
        if not rotated:
            continue
        gg, q = state[f"GG_{i}"].to(v.dtype), state[f"Q_{i}"].to(v.dtype)
        power = gg @ q
        order = torch.argsort((q * power).sum(dim=0), descending=True)
        v = v.index_select(i, order)
        state[f"Q_{i}"] = torch.linalg.qr(power.index_select(1, order))[0]
    state["exp_avg_sq"] = v


def _sqrt(x):
    return x.sqrt() if isinstance(x, Tensor) else math.sqrt(x)


def update(p, g, state, *, step, lr, betas, shampoo_beta, eps, weight_decay,
           precondition_frequency, max_precondition_dim, precondition_1d, correct_bias,
           **_) -> Tensor:
    beta1, beta2 = betas
    if shampoo_beta is None:
        shampoo_beta = beta2
    dims = rotated_dims(p, max_precondition_dim, precondition_1d)
    dtype = matrix_dtype(p)
    g_mat = g.to(dtype)
    if step == 1:
        # the first gradient only starts the factors and their eigenbases (authors' code)
        _accumulate(state, g_mat, dims, shampoo_beta)
        for i, rotated in enumerate(dims):
            if rotated:
                state[f"Q_{i}"] = _eigenbasis(state[f"GG_{i}"])
        return p
    t = step - 1  # the Adam steps taken, this one included
    bases = _bases(state, dims, dtype)
    g_rot = project(g_mat, bases)
    m = state["exp_avg"] = torch.lerp(state["exp_avg"].to(dtype), g_mat, 1 - beta1)
    v = state["exp_avg_sq"] = torch.lerp(state["exp_avg_sq"].to(dtype), g_rot.square(),
                                         1 - beta2)
    denom = v.sqrt() + eps
    direction = project(project(m, bases) / denom, bases, back=True).to(p.dtype)
    step_size = lr
    if correct_bias:
        step_size = lr * (_sqrt(1 - beta2**t) / (1 - beta1**t))
    p = add_scaled(p, direction, -step_size)
    if nonzero(weight_decay):
        p = p * (1 - weight_decay * lr)  # decoupled, after the step, as the authors' code
    # the factors take this gradient after the step; the bases follow every f Adam steps
    _accumulate(state, g_mat, dims, shampoo_beta)
    if t % precondition_frequency == 0:
        _refresh(state, dims)
    return p


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \beta_s \text{ (shampoo beta,
            default } \beta_2), \epsilon, \lambda \text{ (weight decay)},
            f \text{ (precondition frequency)}, \theta_0 \in \mathbb{R}^{m\times n}, f(\theta)\\
       &\textbf{init}: M \leftarrow 0,\ V \leftarrow 0,\ L \leftarrow 0,\ R \leftarrow 0\\
       &\textbf{for}\ k = 1, 2, \ldots\\
       &\quad G \leftarrow \pm\nabla_\theta f_k(\theta_{k-1})
            \quad (- \text{ if maximize})\\
       &\quad \textbf{if}\ k = 1:\ L \leftarrow (1-\beta_s) G G^\top,\
            R \leftarrow (1-\beta_s) G^\top G,\
            Q_L, Q_R \leftarrow \text{eigenvectors of } L, R
            \text{ (decreasing eigenvalues)},\ \theta_1 \leftarrow \theta_0;\
            \textbf{next}\ k\\
       &\quad t \leftarrow k - 1,\quad G' \leftarrow Q_L^\top G Q_R\\
       &\quad M \leftarrow \beta_1 M + (1-\beta_1) G\\
       &\quad V \leftarrow \beta_2 V + (1-\beta_2)\, G' \odot G'\\
       &\quad N \leftarrow Q_L \Big(\frac{Q_L^\top M Q_R}{\sqrt{V} + \epsilon}\Big) Q_R^\top\\
       &\quad \theta_k \leftarrow \Big(\theta_{k-1} - \gamma\,
            \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\, N\Big)(1 - \gamma\lambda)\\
       &\quad L \leftarrow \beta_s L + (1-\beta_s) G G^\top,\quad
            R \leftarrow \beta_s R + (1-\beta_s) G^\top G\\
       &\quad \textbf{if}\ t \bmod f = 0:\
            \pi \leftarrow \mathrm{argsort}_\downarrow \mathrm{diag}(Q_L^\top L Q_L),\
            Q_L \leftarrow \mathrm{QR}\big((L Q_L)_{:,\pi}\big),\ V \leftarrow V_{\pi,:}
            \ \text{(and } Q_R, R \text{ over the columns)}
       \end{aligned}
"""


class SOAP(RuleOptimizer):
    __doc__ = rf"""SOAP: Adam run in the eigenbasis of Shampoo's preconditioner.

    Shampoo preconditions a matrix gradient :math:`G` with the Kronecker factors
    :math:`L = \mathbb{{E}}[GG^\top]` and :math:`R = \mathbb{{E}}[G^\top G]`. SOAP rotates
    the gradient into their eigenbases :math:`Q_L, Q_R`, runs Adam there (the second moment
    :math:`V` is per entry of the rotated gradient), and rotates the step back. The bases are
    refreshed only every ``precondition_frequency`` steps, by one power iteration and a QR
    decomposition warm-started from the previous basis, since Adam's per-coordinate scaling
    keeps adapting between refreshes (which is what makes infrequent refreshes cheap and
    stable, where Shampoo's stale inverse roots hurt). A tensor with more dimensions gets a
    factor and a basis per dimension; a dimension larger than ``max_precondition_dim``, a
    vector (unless ``precondition_1d``) and a 0-d tensor stay unrotated, which makes them
    plain Adam with SOAP's first-step rule.
{_RULE}
    .. warning::
       The paper's algorithm leaves out initialisation and bias correction; they follow the
       authors' code (github.com/nikhilvyas/SOAP), as does ``pytorch_optimizer.SOAP``
       (4.1.0): the first step only starts :math:`L, R` and takes their eigenvectors (the
       weights do not move), the Adam step count :math:`t` starts on the second, the bias
       correction is the scalar :math:`\sqrt{{1-\beta_2^t}}/(1-\beta_1^t)` outside
       :math:`\epsilon`, and the decoupled decay :math:`1-\gamma\lambda` follows the step.
       ``pytorch_optimizer.SOAP`` differs in two places. Its QR runs in float32 whatever the
       parameter's dtype (``power_iter.to(torch.float32)``); here it runs in the
       factor's dtype, so float64 parameters keep float64 bases (both agree in float32; the
       oracle test pins float64 by running its QR in float64). Its step count is per param
       group, here per parameter, as torch's (the same while every parameter gets a
       gradient on every step), a Python int there, an exact float64 counter here
       (``state["step"]``; torch's float32 one stops counting at ``2**24``, which would stop
       the basis refreshes there; a checkpoint's float32 step is loaded as float64). Its
       ``merge_dims``, ``normalize_gradient`` and ``data_format`` options are not offered
       (its ``merge_dims`` reshapes a tensor whose dimensions all merge into one, such as
       (3,), (4, 3) or (2, 2, 2), to ``[1]`` and fails).

    .. note::
       Memory: the two Adam moments, plus a :math:`d \times d` factor and a
       :math:`d \times d` basis for every rotated dimension of size :math:`d`. The state of
       a bfloat16 or float16 parameter is kept in float32: the eigendecompositions need it,
       and a moment rounded to 8 bits in one basis is noise far larger than the small
       second moments of the other (the step diverges), and a checkpoint loads it back in
       float32. ``state_precision`` compacts the two moments only; the factors and bases
       stay in full precision. An eigendecomposition that fails to converge is retried in
       float64, as in the authors' code.

    .. note::
       The path depends on the gradients' rounding wherever a factor is rank-deficient. The
       first :math:`GG^\top` of an :math:`m \times n` gradient with :math:`m > n + 1` has a
       null space of dimension :math:`m - n`, and any orthonormal basis of it is a set of
       eigenvectors: ``eigh`` returns one chosen by rounding noise, and Adam's
       per-coordinate scaling depends on the choice (a refresh while the factor is still
       rank-deficient does the same). So two runs whose gradients differ in the last bit
       (a batched forward pass, another device or BLAS) part ways; a change of
       :math:`10^{{-15}}` in the gradients of an 8-16-3 network changes its loss by
       :math:`5 \times 10^{{-3}}` (relative) within six steps, here and in
       ``pytorch_optimizer.SOAP`` alike. Runs with identical gradients are identical.

    Args:
        params (iterable): parameters or parameter groups to optimize (real only).
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 3e-3).
        betas (tuple[float, float], optional): decay rates :math:`\beta_1, \beta_2` of the
            Adam moments (default: (0.95, 0.95), the paper's).
        shampoo_beta (float, optional): decay rate :math:`\beta_s` of the factors
            :math:`L, R`; None uses :math:`\beta_2` (default: None).
        eps (float, optional): added to :math:`\sqrt{{V}}` before dividing (default: 1e-8).
        weight_decay (float, optional): decoupled decay :math:`\lambda`, scaled by the
            learning rate and applied after the step (default: 1e-2).
        precondition_frequency (int, optional): Adam steps :math:`f` between two refreshes
            of the eigenbases (default: 10).
        max_precondition_dim (int, optional): a dimension larger than this gets no factor
            and stays unrotated (default: 10000).
        precondition_1d (bool, optional): rotate vectors too, with one :math:`d \times d`
            factor (default: False).
        correct_bias (bool, optional): scale the step by
            :math:`\sqrt{{1-\beta_2^t}}/(1-\beta_1^t)` (default: True).
{_ARGS_DOC}

    Reference: Vyas, Morwani, Zhao, Kwun, Shapira, Brandfonbrener, Janson & Kakade, "SOAP:
    Improving and Stabilizing Shampoo using Adam", ICLR 2025,
    https://arxiv.org/abs/2409.11321 (Algorithms 3 and 4).

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([[1.5, -2.0], [0.5, 1.0]], requires_grad=True)
        >>> opt = optimlab.SOAP([w], lr=0.05, weight_decay=0.0)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    # eigendecompositions and data-dependent sorting on each tensor's own matrix shape:
    # one tensor at a time, one instance per population member. Only the second moment may
    # be kept compact: exp_avg lives in the parameters' basis and is projected onto the
    # eigenbasis each step, where exp_avg_sq can be nearly zero along some directions, so
    # its rounding error there is divided by about eps (a float64 quadratic moved 81.8 in
    # one step with exp_avg in bfloat16, 0.0104 at most without)
    capabilities = Capabilities(batching="member", multi_tensor=False, complex=False,
                                second_moments=("exp_avg_sq",))
    init = staticmethod(init)
    update = staticmethod(update)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 3e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.95, 0.95),
        shampoo_beta: float | Tensor | None = None,
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 1e-2,
        precondition_frequency: int = 10,
        max_precondition_dim: int = 10000,
        precondition_1d: bool = False,
        correct_bias: bool = True,
        *,
        maximize: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas)
        if shampoo_beta is not None:
            check_range("shampoo_beta", shampoo_beta, 0.0, 1.0)
        check_range("eps", eps, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        check_int("precondition_frequency", precondition_frequency, 1)
        check_int("max_precondition_dim", max_precondition_dim, 1)
        check_bool("precondition_1d", precondition_1d)
        check_bool("correct_bias", correct_bias)
        defaults = dict(lr=lr, betas=betas, shampoo_beta=shampoo_beta, eps=eps,
                        weight_decay=weight_decay, precondition_frequency=precondition_frequency,
                        max_precondition_dim=max_precondition_dim,
                        precondition_1d=precondition_1d, correct_bias=correct_bias,
                        maximize=maximize)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)



