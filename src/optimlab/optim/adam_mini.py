"""Adam-mini: one second-moment scalar per block of parameters (Zhang et al. 2024)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.nn.parameter import is_lazy
from torch.optim.optimizer import ParamsT

from .base import (
    RuleOptimizer,
    check_betas,
    check_int,
    check_range,
    common_args_doc,
    nonzero,
    scalar_step,
)
from .capabilities import Capabilities
from .ops import add_scaled

# Adam-mini is not in torch.optim (no ``foreach``) and has no fused kernel (no ``fused``).
_ARGS_DOC = common_args_doc(foreach=False, fused=False, state_precision=False)

#: the partitions named by a word; a positive int ``n`` means blocks of ``n`` elements
PARTITIONS = ("row", "tensor", "element")


def check_partition(partition: Any) -> None:
    """Raise ``ValueError`` unless ``partition`` is one of :data:`PARTITIONS` or an int >= 1."""
    if isinstance(partition, str):
        if partition not in PARTITIONS:
            raise ValueError(f"partition must be 'row', 'tensor', 'element' or a positive "
                             f"integer (elements per block), got {partition!r}")
        return
    try:
        check_int("partition", partition, 1)
    except ValueError:
        raise ValueError(f"partition must be 'row', 'tensor', 'element' or a positive integer "
                         f"(elements per block), got {partition!r:.60}") from None


def num_blocks(shape: torch.Size | tuple, partition: str | int) -> int:
    """How many blocks ``partition`` makes of a tensor of ``shape`` (each block is a run of
    consecutive elements in row-major order, all of one size).

    ``"row"``: one per slice along the first dimension of a tensor of two or more dimensions
    (a row of a matrix), one for a vector or a scalar; ``"tensor"``: one; ``"element"``: one
    per element; an int ``n``: ``numel / n`` (``ValueError`` unless ``n`` divides ``numel``).
    """
    numel = math.prod(shape)
    if partition == "row":
        return shape[0] if len(shape) >= 2 else 1
    if partition == "tensor":
        return 1
    if partition == "element":
        return numel
    if numel % partition:
        raise ValueError(f"partition={partition} (elements per block) does not divide a "
                         f"parameter of shape {tuple(shape)} ({numel} elements)")
    return numel // partition


def init(p: Tensor, *, partition="row", **_) -> dict:
    return {
        "step": scalar_step(),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        # one second moment per block, in block order
        "exp_avg_sq": p.new_zeros(num_blocks(p.shape, partition)),
    }


def update(p, g, state, *, step, lr, betas, eps, weight_decay, partition="row", **_) -> Tensor:
    beta1, beta2 = betas
    blocks = num_blocks(p.shape, partition)
    if nonzero(weight_decay):
        p = p * (1 - lr * weight_decay)
    m = state["exp_avg"] = torch.lerp(state["exp_avg"], g, 1 - beta1)
    if p.numel() == 0:
        return p
    block_mean = (g * g).reshape(blocks, -1).mean(dim=1)
    v = state["exp_avg_sq"] = add_scaled(state["exp_avg_sq"] * beta2, block_mean, 1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    denom = v.sqrt() / bias_correction2**0.5 + eps
    # as the authors' package rounds it: (1/bc1)/denom per block, times m, times lr
    step_size = (1 / bias_correction1) / denom
    return p - (m.reshape(blocks, -1) * step_size[:, None] * lr).reshape(p.shape)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \lambda
            \text{ (weight decay)}, \text{blocks } B_1, \ldots, B_K
            \text{ (partition)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ v_{0,b} \leftarrow 0
            \text{ (one number per block } b)\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad \theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)\\
       &\quad m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t\\
       &\quad v_{t,b} \leftarrow \beta_2 v_{t-1,b} + (1-\beta_2)\,
            \frac{1}{|B_b|}\sum_{i \in B_b} g_{t,i}^2 \quad (b = 1, \ldots, K)\\
       &\quad \theta_{t,i} \leftarrow \theta_{t-1,i} - \frac{\gamma}{1-\beta_1^t}\,
            \frac{m_{t,i}}{\sqrt{v_{t,b}}/\sqrt{1-\beta_2^t} + \epsilon}
            \quad (i \in B_b)
       \end{aligned}
"""


class AdamMini(RuleOptimizer):
    __doc__ = rf"""Adam-mini: AdamW with one second moment (one learning rate) per block.

    Adam keeps a second moment :math:`v` per coordinate; Adam-mini cuts the parameters into
    blocks and keeps one :math:`v` per block, the running mean of :math:`g^2` over the
    block, which saves almost all of :math:`v`'s memory (about half of AdamW's state). The
    paper takes its blocks from the Hessian's near-block-diagonal structure: one per output
    neuron of a linear layer (a row of its ``(out, in)`` weight), one per token of an
    embedding or output layer (a row), one per head for the queries and keys.

    ``partition`` says how each tensor of a group is cut, always into runs of consecutive
    elements (row-major):

    * ``"row"`` (default): one block per slice along the first dimension of a tensor with
      two or more dimensions (an output neuron of ``nn.Linear``, a token of
      ``nn.Embedding``, an output channel of a convolution); a vector or a scalar is one
      block (as the package treats a tensor whose name it does not recognise: LayerNorm
      weights);
    * ``"tensor"``: one block per tensor (the "default PyTorch partition" of the paper);
    * ``"element"``: one block per element, which makes this AdamW (the package's
      choice for biases);
    * an int ``n``: blocks of ``n`` consecutive elements, which must divide every tensor
      of the group: ``head_dim * dim`` gives the paper's one block per head of a
      ``(n_heads * head_dim, dim)`` query or key weight.

    Set it per parameter group to follow the paper's partition of a Transformer, e.g.
    ``[{{"params": q_and_k_weights, "partition": head_dim * dim}}, {{"params":
    biases_and_norms, "weight_decay": 0.0}}, {{"params": other_weights}}]``.
{_RULE}
    .. warning::
       The authors' package (``adam_mini.Adam_mini``) takes ``named_parameters`` and picks
       each tensor's blocks from its *name*; here the partition is given explicitly and the
       same rule is applied. The mapping that makes the two agree: a name containing
       ``mlp``/``linear``/``embed``/``v_proj``/... (the package's per-row blocks, matrices
       only) is ``partition="row"``; a name containing ``q_proj``/``k_proj``/... is
       ``partition=dim * dim // n_heads`` (its blocks of that many consecutive elements); a
       name containing ``bias`` is ``partition="element"`` (Adam); any other name is one
       block per tensor, ``partition="tensor"`` (and ``"row"`` for vectors). The package
       also turns weight decay off for names containing ``norm``, ``ln`` or ``bias``;
       here the group's ``weight_decay`` applies to all of its tensors, so give those a
       group with ``weight_decay=0``. The package's docstring says ``eps`` defaults to
       1e-6, but its code (and this class) uses 1e-8. The update rule itself (decay before
       the step and scaled by the learning rate, both moments bias corrected,
       :math:`\epsilon` outside the square root) is the paper's and the package's, which
       agree. Under model parallelism the package all-reduces a whole-tensor block's sum of
       squares across GPUs; this class has no communication of its own.

    Args:
        params (iterable): parameters or parameter groups to optimize (real only).
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 1e-3).
        betas (tuple[float, float], optional): decay rates of the first moment and of the
            block second moments (default: (0.9, 0.999)).
        eps (float, optional): added to the denominator *outside* the square root
            (default: 1e-8).
        weight_decay (float, optional): decoupled decay :math:`\lambda`, scaled by the
            learning rate as in AdamW (default: 0.0).
        partition (str or int, optional): the blocks of each tensor: ``"row"``,
            ``"tensor"``, ``"element"`` or a number of elements per block (see above); may
            differ per parameter group (default: ``"row"``).
{_ARGS_DOC}

    Reference: Zhang, Chen, Li, Ding, Wu, Kingma, Ye, Luo & Sun, "Adam-mini: Use Fewer
    Learning Rates To Gain More", ICLR 2025, https://arxiv.org/abs/2406.16793.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([[1.5, -2.0], [0.5, 1.0]], requires_grad=True)
        >>> opt = optimlab.AdamMini([w], lr=0.1)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    # The blocks follow each tensor's own shape: a population's stacked [K, ...] tensor
    # hides which axis is the parameter's first (init sees the stacked tensor), and the
    # multi-tensor path flattens a group into one buffer with parameter-shaped state; so
    # one tensor at a time, one optimizer instance per member.
    capabilities = Capabilities(batching="member", multi_tensor=False, complex=False)
    init = staticmethod(init)
    update = staticmethod(update)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 0.0,
        *,
        partition: str | int = "row",
        maximize: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas)
        check_range("eps", eps, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        check_partition(partition)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        partition=partition, maximize=maximize)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite)

    def add_param_group(self, param_group: dict) -> None:
        """Add a param group (torch's ``add_param_group``), checked as the constructor checks
        its arguments; a group may set its own ``partition``, which must split each of its
        parameters into blocks."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            check_partition(group["partition"])  # a group may set its own
            for p in group["params"]:
                if not is_lazy(p):  # a LazyModule's before its first forward: no shape yet
                    num_blocks(p.shape, group["partition"])
        except ValueError:
            self.param_groups.pop()
            raise
