"""NAdam: Adam with Nesterov momentum (Dozat 2016), with torch's momentum-decay schedule."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import (
    COMMON_ARGS_DOC,
    RuleOptimizer,
    check_betas,
    check_bool,
    check_range,
    nonzero,
    scalar_step,
    torch_flags_doc,
)
from .capabilities import Capabilities
from .ops import add_scaled, addcdiv, addcmul


def init(p: Tensor, **_) -> dict:
    step = scalar_step()
    return {
        "step": step,
        # Like torch: a scalar tensor of the step's dtype (float32 unless float64 is the
        # default dtype), kept on the CPU.
        "mu_product": torch.ones((), dtype=step.dtype),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def _f64(x) -> Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


def update(p, g, state, *, step, lr, betas, eps, weight_decay, momentum_decay,
           decoupled_weight_decay=False, **_) -> Tensor:
    beta1, beta2 = betas
    bias_correction2 = 1 - beta2**step
    if nonzero(weight_decay):
        if decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        else:
            g = add_scaled(g, p, weight_decay)
    # the momentum schedule mu_t and mu_{t+1}
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
    # The product is stored in the step's (usually float32) dtype, as torch stores it; the
    # coefficients below are then formed in float64, as torch forms them from ``.item()``.
    # ``mu`` is rounded to that dtype first, as torch rounds a Python float operand; spelled
    # out so that a traced rule (the fused kernel) rounds the same way
    product = state["mu_product"]
    if isinstance(beta1, Tensor) and beta1.dim() == 0 and not isinstance(step, Tensor):
        # A tensor beta1 (not the fused kernel's trace, whose step is a tensor input too,
        # nor a population's per-member column, which stands for Python floats):
        # torch's mu, mu_next and coefficients are then tensors of beta1's dtype (float32
        # for ``torch.tensor(0.9)``, on float64 parameters too), formed as it forms them:
        # ``mu_product *= mu`` in the two's dtype, rounded to the product's; the product
        # read with ``.item()`` into ``1 - mu_product`` (a Python float, which a tensor
        # operand rounds to its dtype) and ``mu_product * mu_next`` (likewise)
        mu_product = state["mu_product"] = (product * mu).to(product.dtype)
        numerator = -lr * (1.0 - mu)
        coef_g = numerator / (1.0 - mu_product.to(torch.float64)).to(numerator.dtype)
        coef_m = (-lr * mu_next) / (1.0 - mu_product.to(mu_next.dtype) * mu_next)
        return _nadam_step(p, g, state, beta1, beta2, eps, bias_correction2, coef_g, coef_m)
    state["mu_product"] = product * torch.as_tensor(mu, dtype=product.dtype)
    mu_product = state["mu_product"].to(torch.float64)
    mu_product_next = mu_product * mu_next
    if isinstance(lr, Tensor):
        # torch computes with a tensor lr in its dtype (float32 even on float64 parameters):
        # ``-lr * (1 - mu) / (1 - mu_product)``, each Python-float operand rounded to lr's
        # dtype, as ``.to`` rounds the float64 denominators here
        coef_g = (-lr * (1.0 - mu)) / (1.0 - mu_product).to(lr.dtype)
        coef_m = (-lr * mu_next) / (1.0 - mu_product_next).to(lr.dtype)
    else:
        # Tensor numerators keep these true divisions (``float / tensor`` would multiply by
        # a reciprocal and round differently from torch's Python-float arithmetic).
        coef_g = _f64(-lr * (1.0 - mu)) / (1.0 - mu_product)
        coef_m = _f64(-lr * mu_next) / (1.0 - mu_product_next)
    return _nadam_step(p, g, state, beta1, beta2, eps, bias_correction2, coef_g, coef_m)


def _nadam_step(p, g, state, beta1, beta2, eps, bias_correction2, coef_g, coef_m) -> Tensor:
    """The moments and the parameter's step of :func:`update`, given its coefficients."""
    m = state["exp_avg"] = torch.lerp(state["exp_avg"], g, 1 - beta1)
    v = state["exp_avg_sq"] = addcmul(state["exp_avg_sq"] * beta2, g, g, 1 - beta2)
    denom = (v / bias_correction2).sqrt() + eps
    if p.dtype in (torch.bfloat16, torch.float16) and not coef_g.dim():
        # torch passes the coefficients as Python floats (it reads the product with
        # ``.item()``): its kernel computes these dtypes in float32 and rounds once, where a
        # tensor coefficient is applied in p's dtype, rounding after each operation
        coef_g, coef_m = coef_g.item(), coef_m.item()
    # two addcdivs with the coefficients as ``value``, as torch writes them
    p = addcdiv(p, g, denom, coef_g)
    return addcdiv(p, m, denom, coef_m)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \lambda
            \text{ (weight decay)}, \psi \text{ (momentum decay)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ v_0 \leftarrow 0,\ \Pi_0 \leftarrow 1\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if maximize})\\
       &\quad \textbf{if}\ \text{decoupled}:\
            \theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)
            \quad \textbf{else}:\ g_t \leftarrow g_t + \lambda\theta_{t-1}\\
       &\quad \mu_t \leftarrow \beta_1\big(1 - \tfrac12\, 0.96^{t\psi}\big),\quad
            \mu_{t+1} \leftarrow \beta_1\big(1 - \tfrac12\, 0.96^{(t+1)\psi}\big),\quad
            \Pi_t \leftarrow \Pi_{t-1}\mu_t\\
       &\quad m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t\\
       &\quad v_t \leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2\\
       &\quad \theta_t \leftarrow \theta_{t-1} - \gamma\,
            \frac{\frac{1-\mu_t}{1-\Pi_t} g_t + \frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}} m_t}
            {\sqrt{v_t/(1-\beta_2^t)} + \epsilon}
       \end{aligned}
"""


class NAdam(RuleOptimizer):
    __doc__ = rf"""NAdam: Adam with Nesterov momentum and a warming momentum schedule.

    Drop-in for ``torch.optim.NAdam`` (same arguments, defaults and numerics).
{_RULE}
    .. note::
       This is torch's NAdam: the momentum coefficient follows Dozat's schedule
       :math:`\mu_t = \beta_1(1 - \frac12 0.96^{{t\psi}})` and the bias correction uses the
       running product :math:`\Pi_t` of the :math:`\mu`. Keras's ``Nadam`` follows Dozat's
       schedule too, with :math:`\psi` fixed (0.004, torch's default, in the older
       ``tf.keras`` ``optimizer_v2``; 1 in Keras 3, whose :math:`\mu_t` takes
       :math:`0.96^t`); optax's ``nadam`` has none (a constant :math:`\beta_1`). Where the
       momentum differs, so do the steps, most in the first few hundred steps. The product
       :math:`\Pi_t` is kept as a scalar tensor in ``state["mu_product"]`` in the step
       counter's dtype (float32 unless float64 is the default), exactly as torch keeps it,
       so torch state_dicts load and the paths agree.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma` (default: 2e-3).
        betas (tuple[float, float], optional): decay rates of the first and second moment
            estimates (default: (0.9, 0.999)).
        eps (float, optional): added to the denominator outside the square root
            (default: 1e-8).
        weight_decay (float, optional): L2 penalty :math:`\lambda` added to the gradient, or
            decoupled if ``decoupled_weight_decay`` (default: 0).
        momentum_decay (float, optional): :math:`\psi` of the momentum schedule
            (default: 4e-3).
        decoupled_weight_decay (bool, optional): decay the weights directly by
            :math:`\gamma\lambda` (NAdamW) (default: False).
{COMMON_ARGS_DOC}{torch_flags_doc()}

    Reference: Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop,
    https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.NAdam([w], lr=0.1)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    capabilities = Capabilities(moments=("exp_avg",), second_moments=("exp_avg_sq",), fusable=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 2e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 0,
        momentum_decay: float | Tensor = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas)
        check_range("eps", eps, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        check_range("momentum_decay", momentum_decay, 0.0)
        check_bool("decoupled_weight_decay", decoupled_weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite, capturable=capturable,
                         differentiable=differentiable,
                         state_precision=state_precision)
