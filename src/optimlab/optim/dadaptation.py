"""D-Adaptation (Defazio & Mishchenko 2023): Adam and SGD that estimate their own step size."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_betas, check_bool, check_int, check_range, common_args_doc, nonzero
from .capabilities import Capabilities
from .engine import real, sparse_refusal
from .ops import add_scaled, addcdiv, addcmul
from .rule import call

# Like the ``dadaptation`` package: no ``foreach``; no fused kernel (the estimate d reads
# every tensor of the group, with a read-back, on every step). DAdaptAdam's moments may be
# compact; DAdaptSGD keeps none (its sum s and start x0 are not running averages).
_ARGS_DOC = common_args_doc(foreach=False, fused=False)
_SGD_ARGS_DOC = common_args_doc(foreach=False, fused=False, state_precision=False)

_LOG = logging.getLogger(__name__)

#: What a rule reports, per tensor and for one step only, for the group's estimate of d: the
#: tensor's share of the numerator and of the norm of s. ``_DAdapt._step_group`` takes them
#: out of the state right after the step, so no checkpoint ever holds them.
_REPORTS = ("numerator", "s_norm")


# -- DAdaptAdam's rule --------------------------------------------------------------------------
def adam_init(p: Tensor, **_) -> dict:
    # No step counter per tensor: the step k (for the bias correction) is the group's.
    return {
        "s": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def adam_update(p, g, state, *, dlr, betas, eps, weight_decay, decouple, **_) -> Tensor:
    # ``dlr`` is the group's step size d * lr (bias corrected) of this step.
    beta1, beta2 = betas
    sqrt_beta2 = beta2**0.5
    if nonzero(weight_decay) and not decouple:
        g = add_scaled(g, p, weight_decay)
    s = state["s"]
    # <g, s>_{A^-1} with the second moment before this step (the group's numerator)
    state["numerator"] = torch.dot(g.reshape(-1), (s / (state["exp_avg_sq"].sqrt() + eps))
                                   .reshape(-1))
    m = state["exp_avg"] = add_scaled(state["exp_avg"] * beta1, g, dlr * (1 - beta1))
    v = state["exp_avg_sq"] = addcmul(state["exp_avg_sq"] * beta2, g, g, 1 - beta2)
    s = state["s"] = add_scaled(s * sqrt_beta2, g, dlr * (1 - sqrt_beta2))
    state["s_norm"] = s.abs().sum()  # its share of ||s||_1
    if nonzero(weight_decay) and decouple:
        p = add_scaled(p, p, -weight_decay * dlr)
    return addcdiv(p, m, v.sqrt() + eps, -1)


# -- DAdaptSGD's rule ---------------------------------------------------------------------------
def sgd_init(p: Tensor, **_) -> dict:
    # x0 is the parameter at its first gradient; z = x0 - s is not stored (the package keeps
    # it as a third buffer, always equal to x0 - s).
    return {
        "s": torch.zeros_like(p, memory_format=torch.preserve_format),
        "x0": torch.clone(p, memory_format=torch.preserve_format),
    }


def sgd_update(p, g, state, *, dlr, momentum, weight_decay, **_) -> Tensor:
    # ``dlr`` is the group's step size d * lr / ||g_0|| of this step.
    if nonzero(weight_decay):
        g = add_scaled(g, p, weight_decay)
    s = state["s"]
    state["numerator"] = torch.dot(g.reshape(-1), s.reshape(-1))  # <g, s> before this step
    s = state["s"] = add_scaled(s, g, dlr)
    state["s_norm"] = (s * s).sum()  # its share of ||s||_2^2
    ck = 1 - momentum
    return add_scaled(p * (1 - ck), state["x0"] - s, ck)  # beta * p + (1 - beta) * z


# -- the group-level estimate, shared -----------------------------------------------------------
def grown(d: float, d_hat: float, growth_rate: float | None) -> float:
    r"""The new estimate :math:`\max(d, \min(\hat d, \rho d))`: d never shrinks and grows by at
    most the factor ``growth_rate`` (None: no limit) in one step."""
    rho = math.inf if growth_rate is None else growth_rate
    return max(d, min(d_hat, d * rho))


def _number(x: Any) -> Any:
    """A hyperparameter as a Python value (a 1-element tensor is read: D-Adaptation runs one
    optimizer per population member, so its hyperparameters are never per-member tensors)."""
    if isinstance(x, Tensor):
        return x.item()
    if isinstance(x, (tuple, list)):
        return tuple(_number(v) for v in x)
    return x


def starting_at_own_d0(param_group: Any, estimates: tuple[str, ...]) -> Any:
    """``param_group`` (as ``add_param_group`` takes it) whose own ``d0`` starts its estimate:
    each of ``estimates`` (the group-level values that start at :math:`d_0`: ``d``, and
    Prodigy's ``d_max``) that the group does not set itself is set to it. The defaults hold
    them at the constructor's ``d0``, which a group's own would otherwise not reach. A
    ``d0`` the constructor would refuse is left to the group's checks, which name it."""
    if not isinstance(param_group, dict) or "d0" not in param_group:
        return param_group
    try:
        check_range("d0", param_group["d0"], 0.0, low_open=True)
    except ValueError:
        return param_group
    d0 = float(_number(param_group["d0"]))
    return {**{key: d0 for key in estimates}, **param_group}


def _read_back(values: list[Tensor]) -> list[float]:
    """0-d tensors as Python floats (exactly, as ``.item()`` reads them), with one read-back
    where they share a device."""
    if len({v.device for v in values}) == 1:
        return torch.stack(values).tolist()  # a mix of dtypes is promoted, exactly
    return [v.item() for v in values]


class _DAdapt(RuleOptimizer):
    """What the D-Adaptation optimizers share: the step of a parameter group.

    The rule steps every tensor of the group with the step size ``dlr`` of this step and
    reports its share of the sums (:data:`_REPORTS`); the group adds them up in parameter
    order (in float64, as the package does with ``.item()``), estimates d and keeps it in
    the param group with the step count ``k``. A subclass says how the step size comes from
    d (:meth:`_step_size`) and how the sums give the estimate :math:`\\hat d`
    (:meth:`_estimate`).
    """

    # a param group may set lr = 0, which leaves it untouched (the constructor's lr is > 0)
    _groups_may_freeze = True

    def add_param_group(self, param_group: dict) -> None:  # noqa: D102 (torch's docstring)
        # a group given its own d0 starts its estimate there
        super().add_param_group(starting_at_own_d0(param_group, ("d",)))

    def _step_size(self, group: dict, hp: dict, params: list[Tensor], lr: float) -> float | None:
        raise NotImplementedError

    def _stands_still(self, group: dict, hp: dict, params: list[Tensor]) -> bool:
        """Whether this step leaves the parameters where they are (it has then done what
        else it does); False: take it."""
        return False

    def _estimate(self, group: dict, hp: dict, params: list[Tensor], dlr: float,
                  numerators: list[float], norms: list[float]) -> tuple[float, float] | None:
        raise NotImplementedError

    def _sharded(self, group: dict, params: list[Tensor]) -> bool:
        return bool(group.get("fsdp_in_use")) or any(
            getattr(p, "_fsdp_flattened", False) for p in params)

    def _all_reduce(self, group: dict, params: list[Tensor], *values: float) -> tuple:
        """The sums of ``values`` over the processes holding shards of the group (with
        ``fsdp_in_use``); the values themselves otherwise."""
        if not self._sharded(group, params):
            return values
        import torch.distributed as dist

        device = (params or group["params"])[0].device
        total = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return tuple(total.tolist())

    def _step_group(self, group: dict, hp: dict) -> None:
        # each tensor once: the group's sums (its numerator and the norm of s) read one report
        # per tensor, which a parameter listed twice (torch warns at construction) would
        # overwrite, so the group steps as if it were listed once
        params = list({id(p): p for p in group["params"] if p.grad is not None}.values())
        if any(p.grad.is_sparse for p in params):  # refused before any state or estimate moves
            raise RuntimeError(sparse_refusal(type(self).__name__))
        for p in params:
            state = self.state[p]
            if not state:  # the state (SGD's x0) is taken at the first gradient, whatever lr
                state.update(self.init(real(p), **hp))
        hp = {key: _number(value) for key, value in hp.items()}
        lr = hp["lr"]
        # a group whose lr is 0 (a scheduler's) is left alone, as the package leaves it; so
        # is a group without gradients, unless its estimate is shared across processes
        if lr == 0 or not (params or self._sharded(group, params)):
            return
        k = group["k"]
        dlr = self._step_size(group, hp, params, lr)
        if dlr is None or self._stands_still(group, {**hp, "dlr": dlr}, params):
            return
        try:
            super()._step_group(group, {**hp, "dlr": dlr}, params)
        finally:
            reports = [self.state[p].pop(key, None) for key in _REPORTS for p in params]
        values = _read_back(reports) if params else []
        numerators, norms = values[:len(params)], values[len(params):]
        estimate = self._estimate(group, hp, params, dlr, numerators, norms)
        if estimate is None:  # s = 0: no estimate, and the step does not count
            return
        numerator, d_hat = estimate
        d = grown(group["d"], d_hat, hp["growth_rate"])
        group.update(d=d, numerator_weighted=numerator, k=k + 1)
        log_every = group.get("log_every", 0)
        if log_every > 0 and k % log_every == 0:
            _LOG.info("%s k=%d: lr=%g dlr=%g d_hat=%g d=%g numerator_weighted=%g",
                      type(self).__name__, k, lr, dlr, d_hat, d, numerator)


def _check_common(lr, weight_decay, log_every, d0, growth_rate, fsdp_in_use, **flags) -> None:
    """The checks the two classes share (the package refuses lr = 0 and d0 = 0 too)."""
    check_range("lr", lr, 0.0, low_open=True)
    check_range("weight_decay", weight_decay, 0.0)
    check_int("log_every", log_every, 0)
    check_range("d0", d0, 0.0, low_open=True)
    if growth_rate is not None and not (isinstance(growth_rate, (int, float))
                                        and not isinstance(growth_rate, bool)
                                        and growth_rate == math.inf):
        check_range("growth_rate", growth_rate, 1.0)
    for name, flag in {**flags, "fsdp_in_use": fsdp_in_use}.items():
        check_bool(name, flag)
    if fsdp_in_use:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError("fsdp_in_use=True sums the estimate over the processes: it needs "
                             "an initialized torch.distributed process group")


_SHARED_ARGS_DOC = r"""
        log_every (int, optional): log the estimate (``logging.INFO``, logger
            ``optimlab.optim.dadaptation``) every this many steps; 0 never (default: 0).
        d0 (float, optional): initial estimate :math:`d_0`, a (safe) underestimate of the
            distance to a solution; rarely needs changing (default: 1e-6).
        growth_rate (float or None, optional): largest factor :math:`\rho` by which
            :math:`d` may grow in one step (values like 1.02 act as a warmup); None or
            ``float('inf')`` (the package's default) for no limit (default: None).
        fsdp_in_use (bool, optional): the group's parameters are shards spread over the
            processes of the default ``torch.distributed`` group (FSDP, ZeRO): the sums of
            the estimate are all-reduced so every process estimates the same :math:`d`.
            Parameters flattened by FSDP (``_fsdp_flattened``) turn it on by themselves, as
            in the package (default: False).""".lstrip("\n")

_SHARED_NOTE = r"""
    :math:`d` is a lower estimate of the distance :math:`\|x_0 - x_*\|` from the start to a
    solution. It starts at :math:`d_0`, never shrinks, and sets the step size
    :math:`d\gamma`, so ``lr`` stays at 1 and only scales the estimated step (a schedule on
    ``lr``, e.g. cosine decay or warmup, still helps). The estimate is per parameter group:
    the sums :math:`\sum` run over every tensor of the group (each tensor's real view for a
    complex one), and each group keeps its estimate in its ``param_groups`` entry (``d``,
    ``numerator_weighted`` for :math:`r`, ``k`` the steps taken), so a checkpoint carries
    it. A group whose ``lr`` is 0 (set by a scheduler, or in its param group dict: the
    constructor's ``lr`` must be positive, as the package's) is left untouched, as the
    package leaves it; a group that sets its own ``d0`` starts its estimate there."""

_SHARED_WARNING = r"""
       The package ``dadaptation`` 3.2 keeps **one** estimate for all groups (its sums run
       over every group, with the largest ``lr`` of all groups and the other options read
       from the first group; it refuses groups with different nonzero ``lr`` and offers a
       ``layer_scale`` group key instead). Here every parameter group has its own
       :math:`d`, ``lr`` and options, like the other optimizers of optimlab, and there is
       no ``layer_scale``: with a single parameter group and the mapping
       ``dadaptation.{name}(params, **same_arguments)`` (``growth_rate=None`` as
       ``float('inf')``) the two agree to rounding. Consequently splitting one group into
       several changes the path. The L2 term is added to a copy of the gradient, not to
       ``p.grad`` in place as the package does."""
_ADAM_WARNING = _SHARED_WARNING.format(name="DAdaptAdam")
_SGD_WARNING = _SHARED_WARNING.format(name="DAdaptSGD")


# -- the classes ------------------------------------------------------------------------------
_ADAM_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \lambda
            \text{ (weight decay)}, d_0, \rho \text{ (growth rate)}, x_0, f(x)\\
       &\textbf{init}: m_0, v_0, s_0 \leftarrow 0,\ r_0 \leftarrow 0\\
       &\textbf{for}\ k = 0, 1, \ldots\\
       &\quad g_k \leftarrow \pm\nabla f(x_k)\ (- \text{ if maximize})
            \ \big(+\lambda x_k \text{ unless decoupled}\big)\\
       &\quad \eta_k \leftarrow d_k\gamma\,\sqrt{1-\beta_2^{k+1}}\big/(1-\beta_1^{k+1})
            \text{ with bias correction, else } d_k\gamma\\
       &\quad r_{k+1} \leftarrow \sqrt{\beta_2}\, r_k + (1-\sqrt{\beta_2})\,\eta_k
            \sum \big\langle g_k, s_k / (\sqrt{v_k} + \epsilon)\big\rangle\\
       &\quad m_{k+1} \leftarrow \beta_1 m_k + (1-\beta_1)\,\eta_k g_k\\
       &\quad v_{k+1} \leftarrow \beta_2 v_k + (1-\beta_2)\, g_k^2\\
       &\quad s_{k+1} \leftarrow \sqrt{\beta_2}\, s_k + (1-\sqrt{\beta_2})\,\eta_k g_k\\
       &\quad \hat d_{k+1} \leftarrow r_{k+1} \big/ \big((1-\sqrt{\beta_2})
            \sum \|s_{k+1}\|_1\big),\quad
            d_{k+1} \leftarrow \max\big(d_k, \min(\hat d_{k+1}, \rho\, d_k)\big)\\
       &\quad x_{k+1} \leftarrow x_k (1 - \lambda\eta_k \text{ if decoupled})
            - m_{k+1} \big/ (\sqrt{v_{k+1}} + \epsilon)
       \end{aligned}
"""


class DAdaptAdam(_DAdapt):
    __doc__ = rf"""D-Adapted Adam: Adam whose step size is estimated on the fly (learning-rate free).

    Adam (in the package's form, the step size folded into the first moment) whose step
    size :math:`d\gamma` grows from the correlation :math:`r` between the gradients and
    their weighted sum :math:`s`, normalised by :math:`\|s\|_1`.
{_SHARED_NOTE}
{_ADAM_RULE}
    Drop-in for ``dadaptation.DAdaptAdam`` 3.2 (same arguments and numerics with one
    parameter group; ``growth_rate`` defaults to None, which means the package's
    ``float('inf')``). The rule is the paper's Algorithm for Adam; at their defaults the
    package's additions (bias correction, weight decay, ``growth_rate``) leave it as is.

    .. warning::
{_ADAM_WARNING}
       A step in which :math:`s` stays 0 (every gradient of the group zero so far) does
       not count, as in the package: :math:`d`, :math:`r`, :math:`k` and the parameters
       stay, only the moments move (to 0). After the first counted step that takes a group
       whose tensors with a gradient have only ever had zero gradients (the others none at
       this step): the package skips the parameter update then too, here it is taken, a
       no-op but for the decoupled decay. The state holds no per-tensor ``step`` (the
       group's ``k`` counts), so the package's checkpoints do not load here.

    Args:
        params (iterable): parameters or parameter groups to optimize; every group keeps
            its own estimate :math:`d`.
        lr (float or Tensor, optional): multiplier :math:`\gamma` of the estimated step size
            (default: 1.0; leave it at 1 unless training is unstable).
        betas (tuple[float, float], optional): decay rates of the first and second moments;
            :math:`s` and :math:`r` decay at :math:`\sqrt{{\beta_2}}` (default: (0.9, 0.999)).
        eps (float, optional): added to the denominator outside the square root
            (default: 1e-8).
        weight_decay (float, optional): weight decay :math:`\lambda`: an L2 term in the
            gradient, or with ``decouple`` a decay scaled by the step size :math:`\eta_k`
            (default: 0).
        decouple (bool, optional): AdamW-style decoupled decay (default: False).
        use_bias_correction (bool, optional): Adam's bias correction, folded into
            :math:`\eta_k` (default: False).
{_SHARED_ARGS_DOC}
{_ARGS_DOC}

    Reference: Defazio & Mishchenko, "Learning-Rate-Free Learning by D-Adaptation", ICML
    2023, https://arxiv.org/abs/2301.07733 (the Adam variant); reference implementation
    ``dadaptation`` 3.2, https://github.com/facebookresearch/dadaptation.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.DAdaptAdam([w])  # lr=1: no learning rate to tune
        >>> sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=200)
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step(); sched.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    # d is estimated from every tensor of a group (sums read back with one .item() per step)
    # and kept in the param group: one optimizer instance per population member, one tensor
    # at a time (each tensor reports its share of the sums).
    capabilities = Capabilities(batching="member", multi_tensor=False, group_coupled=True,
                                running=("d", "k", "numerator_weighted"), moments=("exp_avg",),
                                second_moments=("exp_avg_sq",))
    init = staticmethod(adam_init)
    update = staticmethod(adam_update)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1.0,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 0.0,
        log_every: int = 0,
        decouple: bool = False,
        use_bias_correction: bool = False,
        d0: float | Tensor = 1e-6,
        growth_rate: float | Tensor | None = None,
        fsdp_in_use: bool = False,
        *,
        maximize: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_betas(betas)
        check_range("eps", eps, 0.0, low_open=True)
        _check_common(lr, weight_decay, log_every, d0, growth_rate, fsdp_in_use,
                      decouple=decouple, use_bias_correction=use_bias_correction)
        # The group's estimate lives in the defaults, under the package's names, so a new
        # group starts from d0 and a checkpoint carries it.
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        log_every=log_every, decouple=decouple,
                        use_bias_correction=use_bias_correction, d0=d0,
                        growth_rate=growth_rate, fsdp_in_use=fsdp_in_use,
                        d=_number(d0), k=0, numerator_weighted=0.0, maximize=maximize)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)

    def _step_size(self, group, hp, params, lr):
        beta1, beta2 = hp["betas"]
        k = group["k"]
        if hp["use_bias_correction"]:
            bias_correction = ((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1))
        else:
            bias_correction = 1
        return group["d"] * lr * bias_correction

    def _stands_still(self, group, hp, params):
        # Before the first counted step every s is 0, so s stays 0 if every gradient is 0:
        # the package then returns before the parameter update (the moments move, to 0, and
        # k does not count). Only the decoupled decay would move the parameters in such a
        # step, so only then is the rule tried first (its reports read, its results dropped,
        # one tensor at a time) and, if s stays 0, run again for the moments alone.
        if group["k"] != 0 or not (hp["decouple"] and hp["weight_decay"] != 0):
            return False
        maximize = bool(group.get("maximize", False))

        def trial(p):
            state = dict(self.state[p])  # the rule assigns new tensors: the state stays
            call(self.update, real(p), real(p.grad), state, None, hp, maximize)
            return state

        norm = 0.0
        for share in _read_back([trial(p)["s_norm"] for p in params]) if params else []:
            norm += share
        (norm,) = self._all_reduce(group, params, norm)
        if norm != 0:
            return False
        for p in params:
            state = trial(p)
            for key in _REPORTS:
                del state[key]
            self.state[p].update(state)
        return True

    def _estimate(self, group, hp, params, dlr, numerators, norms):
        sqrt_beta2 = hp["betas"][1] ** 0.5
        step_numerator, s_norm = 0.0, 0.0
        for numerator, norm in zip(numerators, norms):  # in the package's order
            step_numerator += dlr * numerator
            s_norm += norm
        r = sqrt_beta2 * group["numerator_weighted"] + (1 - sqrt_beta2) * step_numerator
        total_r, total_norm = self._all_reduce(group, params, r, s_norm)
        if total_norm == 0:
            return None
        return r, total_r / ((1 - sqrt_beta2) * total_norm)


_SGD_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta \text{ (momentum)}, \lambda
            \text{ (weight decay)}, d_0, \rho \text{ (growth rate)}, x_0, f(x)\\
       &\textbf{init}: s_0 \leftarrow 0,\ r_0 \leftarrow 0\\
       &\textbf{for}\ k = 0, 1, \ldots\\
       &\quad g_k \leftarrow \pm\nabla f(x_k) + \lambda x_k\ (- \text{ if maximize})\\
       &\quad \eta_k \leftarrow d_k\gamma \big/ \big(\textstyle\sum \|\nabla f(x_0)\|_2^2
            \big)^{1/2}\\
       &\quad r_{k+1} \leftarrow r_k + \eta_k \sum \langle g_k, s_k\rangle\\
       &\quad s_{k+1} \leftarrow s_k + \eta_k g_k\\
       &\quad \hat d_{k+1} \leftarrow 2 r_{k+1} \big/ \big(\textstyle\sum
            \|s_{k+1}\|_2^2\big)^{1/2},\quad
            d_{k+1} \leftarrow \max\big(d_k, \min(\hat d_{k+1}, \rho\, d_k)\big)\\
       &\quad z_{k+1} \leftarrow x_0 - s_{k+1}\\
       &\quad x_{k+1} \leftarrow \beta x_k + (1-\beta) z_{k+1}
       \end{aligned}
"""


class DAdaptSGD(_DAdapt):
    __doc__ = rf"""D-Adapted SGD: dual averaging with momentum whose step size is estimated on the fly.

    The iterate :math:`z` is the start minus the weighted gradient sum :math:`s` (dual
    averaging); the parameters follow it as a running average with momentum
    :math:`\beta`. The step size :math:`d\gamma/\|g_0\|` grows from the correlation
    :math:`r` between the gradients and :math:`s`, normalised by :math:`\|s\|_2`.
{_SHARED_NOTE}
{_SGD_RULE}
    Drop-in for ``dadaptation.DAdaptSGD`` 3.2 (same arguments and numerics with one
    parameter group; ``growth_rate`` defaults to None, which means the package's
    ``float('inf')``); the rule is the paper's Algorithm for SGD with momentum. Two
    buffers: :math:`s` and :math:`x_0` (the package also stores :math:`z = x_0 - s`).

    .. warning::
{_SGD_WARNING}
       As in the package, the norm :math:`\|g_0\|` that scales the step size is taken
       from the group's first gradient *without* the L2 term :math:`\lambda x_0` (the
       package's ``grad.add`` that would add it is not in place); every :math:`g_k`
       otherwise includes it.
       Where the package fails (a first gradient of norm 0, or
       :math:`\sum\|s_{{k+1}}\|_2 = 0`: ``ZeroDivisionError``; ``lr`` = 0: ``NameError``),
       here the step changes nothing (:math:`\|g_0\|` is measured again at the next one)
       and is not counted.

    Args:
        params (iterable): parameters or parameter groups to optimize; every group keeps
            its own estimate :math:`d`.
        lr (float or Tensor, optional): multiplier :math:`\gamma` of the estimated step size
            (default: 1.0; leave it at 1 unless training is unstable).
        momentum (float, optional): weight :math:`\beta` of the running average of the
            iterates, in [0, 1) (default: 0).
        weight_decay (float, optional): L2 penalty :math:`\lambda` added to the gradient
            (default: 0).
{_SHARED_ARGS_DOC}
{_SGD_ARGS_DOC}

    Reference: Defazio & Mishchenko, "Learning-Rate-Free Learning by D-Adaptation", ICML
    2023, https://arxiv.org/abs/2301.07733 (the SGD variant); reference implementation
    ``dadaptation`` 3.2, https://github.com/facebookresearch/dadaptation.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.DAdaptSGD([w], momentum=0.9)  # lr=1: no learning rate to tune
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    # as DAdaptAdam's: the estimate reads every tensor of a group and lives in the group
    capabilities = Capabilities(batching="member", multi_tensor=False, group_coupled=True,
                                running=("d", "k", "numerator_weighted", "g0_norm"))
    init = staticmethod(sgd_init)
    update = staticmethod(sgd_update)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1.0,
        momentum: float | Tensor = 0.0,
        weight_decay: float | Tensor = 0.0,
        log_every: int = 0,
        d0: float | Tensor = 1e-6,
        growth_rate: float | Tensor | None = None,
        fsdp_in_use: bool = False,
        *,
        maximize: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
    ) -> None:
        # momentum 1 would leave the parameters where they start
        check_range("momentum", momentum, 0.0, 1.0)
        _check_common(lr, weight_decay, log_every, d0, growth_rate, fsdp_in_use)
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        log_every=log_every, d0=d0, growth_rate=growth_rate,
                        fsdp_in_use=fsdp_in_use, d=_number(d0), k=0, numerator_weighted=0.0,
                        g0_norm=0.0, maximize=maximize)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite)

    def _step_size(self, group, hp, params, lr):
        if group["k"] == 0:  # the norm of the first gradient (without the L2 term)
            squares = [(g * g).sum() for g in (real(p.grad) for p in params)]
            total = 0.0
            for square in _read_back(squares) if squares else []:
                total += square
            (total,) = self._all_reduce(group, params, total)
            if total == 0:
                return None
            group["g0_norm"] = math.sqrt(total)
        return group["d"] * lr / group["g0_norm"]

    def _estimate(self, group, hp, params, dlr, numerators, norms):
        r, s_norm = group["numerator_weighted"], 0.0
        for numerator, norm in zip(numerators, norms):  # in the package's order
            r += dlr * numerator
            s_norm += norm
        total_norm, total_r = self._all_reduce(group, params, s_norm, r)
        if total_norm == 0:
            return None
        return r, 2 * total_r / math.sqrt(total_norm)
