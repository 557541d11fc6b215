"""Prodigy: Adam with a learned step size d (Mishchenko & Defazio 2023)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_betas, check_bool, check_int, check_range, common_args_doc, nonzero
from .capabilities import Capabilities
from .dadaptation import starting_at_own_d0
from .engine import real, sparse_refusal
from .ops import add_scaled, addcdiv, addcmul

# Like prodigyopt.Prodigy: no ``foreach``; no fused kernel (the step size d is estimated from
# every tensor of the group between the moment updates and the step). The moments may be
# compact; the estimate's sum ``s`` and the start ``p0`` are not moments and stay as they are.
_ARGS_DOC = common_args_doc(foreach=False, fused=False)


def _number(x: Any) -> float:
    """A hyperparameter as a Python number (a 1-element tensor is read; Prodigy runs one
    optimizer per population member, so its hyperparameters are never per-member tensors)."""
    return x.item() if isinstance(x, Tensor) else float(x)


def _sliced(t: Tensor, slice_p: int) -> Tensor:
    """Every ``slice_p``-th entry of ``t`` flattened: the coordinates the d estimate reads."""
    return t.reshape(-1)[::slice_p]


def init(p: Tensor, *, betas=(0.9, 0.999), slice_p=1, **_) -> dict:
    # ``s`` and ``p0`` hold every ``slice_p``-th entry of the flattened tensor, as in
    # prodigyopt; ``p0`` is always a copy (prodigyopt stores a 0-d zero for an all-zero
    # tensor, the same numbers). Without momentum (beta1 = 0) there is no first moment:
    # ``exp_avg`` is None until a step runs with beta1 > 0 (a scheduler may raise it).
    return {
        "s": torch.zeros_like(_sliced(p, slice_p)),
        "p0": _sliced(p, slice_p).clone(),
        "exp_avg": (torch.zeros_like(p, memory_format=torch.preserve_format)
                    if nonzero(_number(betas[0])) else None),
        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def update(p, g, state, *, betas, eps, weight_decay, decouple, d, d_next, dlr, **_) -> Tensor:
    """One parameter's step, given the group's estimates: ``d`` (before this step; it scales
    the moments), ``d_next`` (after it; it scales eps) and the step size ``dlr``
    (``d * lr``, bias corrected). With ``dlr`` = 0 only the moments move."""
    beta1, beta2 = betas
    if nonzero(weight_decay) and not decouple:
        g = add_scaled(g, p, weight_decay)
    v = state["exp_avg_sq"] = addcmul(state["exp_avg_sq"] * beta2, g, g, d * d * (1 - beta2))
    m = None
    if nonzero(beta1):
        m = state["exp_avg"]
        if m is None:
            m = torch.zeros_like(p, memory_format=torch.preserve_format)
        m = state["exp_avg"] = add_scaled(m * beta1, g, d * (1 - beta1))
    if not nonzero(dlr):
        return p
    denom = v.sqrt() + d_next * eps
    if nonzero(weight_decay) and decouple:
        p = add_scaled(p, p, -weight_decay * dlr)
    if m is not None:
        return addcdiv(p, m, denom, -dlr)
    return addcdiv(p, g, denom, -dlr * d_next)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \beta_3
            \text{ (default } \sqrt{\beta_2}), \epsilon, \lambda \text{ (weight decay)},
            d_0, c \text{ (d\_coef)}, \rho \text{ (growth rate)}, \theta_0, f(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ v_0 \leftarrow 0,\ s_0 \leftarrow 0,\
            r_0 \leftarrow 0,\ d^{max}_0 \leftarrow d_0\\
       &\textbf{for}\ k = 0, 1, \ldots\\
       &\quad g_k \leftarrow \pm\nabla_\theta f_k(\theta_k)
            \ (- \text{ if maximize})\ \big(+\lambda\theta_k \text{ unless decoupled}\big)\\
       &\quad \eta_k \leftarrow \gamma\sqrt{1-\beta_2^{k+1}}/(1-\beta_1^{k+1})
            \text{ with bias correction, else } \gamma\\
       &\quad r_{k+1} \leftarrow \beta_3 r_k + \tfrac{d_k}{d_0}\,\eta_k d_k\,
            \langle g_k, \theta_0 - \theta_k\rangle\\
       &\quad s_{k+1} \leftarrow \beta_3 s_k + \tfrac{d_k}{d_0}\, d_k\, g_k
            \ (\times\,\eta_k \text{ unless safeguard\_warmup})\\
       &\quad \hat d_{k+1} \leftarrow c\, r_{k+1} / \|s_{k+1}\|_1,\quad
            d^{max}_{k+1} \leftarrow \max(d^{max}_k, \hat d_{k+1})\\
       &\quad d_{k+1} \leftarrow \min\big(d^{max}_{k+1},\ \rho\,\tilde d_k\big),\quad
            \tilde d_k = \max(d_k, \hat d_{k+1}) \text{ if } d_k = d_0
            \text{ else } d_k\\
       &\quad m_{k+1} \leftarrow \beta_1 m_k + (1-\beta_1)\, d_k g_k\\
       &\quad v_{k+1} \leftarrow \beta_2 v_k + (1-\beta_2)\, d_k^2 g_k^2\\
       &\quad \theta_{k+1} \leftarrow \theta_k (1 - \lambda\eta_k d_k
            \text{ if decoupled}) - \eta_k d_k\,
            \frac{m_{k+1}}{\sqrt{v_{k+1}} + d_{k+1}\epsilon}
            \quad \big(\beta_1 = 0:\ \eta_k d_k d_{k+1}
            \frac{g_k}{\sqrt{v_{k+1}} + d_{k+1}\epsilon}\big)
       \end{aligned}
"""


class Prodigy(RuleOptimizer):
    __doc__ = rf"""Prodigy: Adam whose step size d is estimated on the fly (learning-rate free).

    A D-Adaptation method: :math:`d` is a lower estimate of the distance
    :math:`\|\theta_0 - \theta_*\|` from the start to a solution, grown (never shrunk) from
    the correlation :math:`r` between the gradients and the distance travelled, normalised
    by the weighted gradient sum :math:`s`. The Adam step is taken with step size
    :math:`\gamma d`, so ``lr`` stays at 1 and only scales the estimate (a schedule on
    ``lr``, e.g. cosine decay, still helps). The estimate is per parameter group and reads
    every tensor of the group: :math:`\langle\cdot,\cdot\rangle` and
    :math:`\|\cdot\|_1` run over all of the group's parameters (with ``slice_p`` > 1 over
    every ``slice_p``-th entry of each, which saves memory and approximates the estimate).
{_RULE}
    Drop-in for ``prodigyopt.Prodigy`` 1.1.2 (same arguments, defaults and numerics with one
    parameter group; see the warning). :math:`r` and :math:`s` are kept without the paper's
    :math:`(1-\beta_3)` factor and divided by :math:`d_0`, as in prodigyopt: the factors
    cancel in :math:`\hat d`. Each group keeps its estimate in its ``param_groups`` entry
    (``d``, ``d_max``, ``d_numerator`` for :math:`r`, ``k`` the steps taken, and after a
    step ``d_hat`` and ``d_denom`` for :math:`\|s\|_1`), so a checkpoint carries it. When
    :math:`\|s_{{k+1}}\|_1 = 0` (no gradient yet) the moments move but nothing else does,
    and :math:`k` does not advance; a group whose ``lr`` is 0 (set by a scheduler, or in its
    param group dict: the constructor's ``lr`` must be positive, as prodigyopt's) is left
    untouched, as prodigyopt does. A group that sets its own ``d0`` starts its estimate
    there. A state_dict saved by ``prodigyopt.Prodigy`` loads (its per-parameter ``step``,
    which nothing here reads, is dropped, and the 0-d ``p0`` it keeps for an all-zero tensor
    is made that tensor's zeros) and continues its path.

    .. warning::
       prodigyopt keeps **one** estimate for all parameter groups (read from the first
       group, its sums taken over every group, with the largest ``lr`` of all groups) and
       refuses groups with different nonzero ``lr``; here every group has its own
       :math:`d` and uses its own ``lr``, like every other optimlab optimizer, so splitting
       a group into several changes the path. With one parameter group the two agree bit
       for bit (mapping: ``prodigyopt.Prodigy(params, **same_arguments)``, with
       ``growth_rate=float('inf')`` where this class has None). The coupled weight decay
       (``decouple=False``) is added to a copy of the gradient, not to ``p.grad`` in
       place as prodigyopt does.

       Where prodigyopt departs from the paper's Adam version (Section 5), this class
       follows prodigyopt: :math:`\epsilon` is scaled by the *new* estimate
       :math:`d_{{k+1}}` (the paper: :math:`d_k`; the two agree as :math:`\epsilon \to 0`),
       and without momentum (:math:`\beta_1 = 0`) the step is scaled by
       :math:`d_k d_{{k+1}}` (the paper's :math:`m_{{k+1}} = d_k g_k` gives
       :math:`d_k^2`). ``beta3``, ``d_coef``, ``growth_rate``, ``safeguard_warmup``,
       ``use_bias_correction``, the weight decay and ``slice_p`` are the package's
       additions; at their defaults they leave the paper's method.

       Parameters in float16 turn to NaN in the first steps, here as in prodigyopt: the
       second moment starts at :math:`d_0^2 (1-\beta_2) g^2` (1e-15 for the defaults and a
       unit gradient), below float16's smallest number, and so does
       :math:`d_{{k+1}} \epsilon`, so the step divides by zero. bfloat16 parameters stay
       finite but do not train: the first steps, of size about :math:`\gamma d_0`, round
       away (bfloat16 keeps 8 bits), so :math:`\theta_0 - \theta_k` stays 0 and
       :math:`d` never grows from :math:`d_0`. Keep float32 parameters (mixed precision
       keeps float32 masters), or raise ``d0`` to a step bfloat16 can take.

    Args:
        params (iterable): parameters or parameter groups to optimize; every group keeps
            its own estimate :math:`d`.
        lr (float or Tensor, optional): multiplier :math:`\gamma` of the estimated step size
            (default: 1.0; leave it at 1 unless training is unstable).
        betas (tuple[float, float], optional): decay rates of the first and second moments;
            :math:`\beta_1 = 0` keeps no first moment (default: (0.9, 0.999)).
        beta3 (float or None, optional): decay rate of :math:`r` and :math:`s`; None uses
            :math:`\sqrt{{\beta_2}}` (default: None).
        eps (float, optional): added to the denominator outside the square root, scaled by
            :math:`d_{{k+1}}` (default: 1e-8).
        weight_decay (float, optional): weight decay :math:`\lambda` (default: 0).
        decouple (bool, optional): AdamW-style decay, scaled by the step size
            :math:`\eta_k d_k`; False adds :math:`\lambda\theta` to the gradient
            (default: True).
        use_bias_correction (bool, optional): Adam's bias correction, folded into
            :math:`\eta_k` (default: False).
        safeguard_warmup (bool, optional): leave :math:`\eta_k` out of :math:`s`, which
            keeps a warmup (small ``lr``) from inflating :math:`d` (default: False).
        d0 (float, optional): initial estimate :math:`d_0`, a (safe) underestimate
            (default: 1e-6).
        d_coef (float, optional): multiplier :math:`c` of the estimate; the preferred knob
            (0.5 or 2 work too) (default: 1.0).
        growth_rate (float or None, optional): largest factor :math:`\rho` by which
            :math:`d` may grow in one step (e.g. 1.02 for a warmup-like start); None or
            ``float('inf')`` (prodigyopt's default) for no limit (default: None).
        fsdp_in_use (bool, optional): accepted for drop-in compatibility; True (sharded
            parameters, whose estimate needs an all-reduce) is refused (default: False).
        slice_p (int, optional): estimate :math:`d` from every ``slice_p``-th entry of each
            tensor only: :math:`s` and :math:`\theta_0` then take 1/``slice_p`` of a
            parameter's memory (default: 1, exact).
{_ARGS_DOC}

    Reference: Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free
    Learner", ICML 2024, https://arxiv.org/abs/2306.06101 (Section 5, the Adam version);
    reference implementation ``prodigyopt`` 1.1.2, https://github.com/konstmish/prodigy.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.Prodigy([w])  # lr=1: no learning rate to tune
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.1)
        True
    """

    # The step size d is estimated from every tensor of a group (a sum of dot products and
    # of |s|, read with .item()) between the moment updates and the step, and kept in the
    # param group: one optimizer instance per population member, one tensor at a time (s and
    # p0 are flattened, sliced copies, not parameter-shaped).
    capabilities = Capabilities(batching="member", multi_tensor=False, group_coupled=True,
                                running=("d", "d_max", "d_numerator", "k", "d_hat", "d_denom"),
                                moments=("exp_avg",), second_moments=("exp_avg_sq",))
    init = staticmethod(init)
    update = staticmethod(update)
    # a param group may set lr = 0, which leaves it untouched (the constructor's lr is > 0)
    _groups_may_freeze = True

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1.0,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        beta3: float | Tensor | None = None,
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 0.0,
        decouple: bool = True,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
        d0: float | Tensor = 1e-6,
        d_coef: float | Tensor = 1.0,
        growth_rate: float | Tensor | None = None,
        fsdp_in_use: bool = False,
        slice_p: int = 1,
        *,
        maximize: bool = False,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        # prodigyopt refuses lr = 0, eps = 0 and d0 = 0 too
        check_range("lr", lr, 0.0, low_open=True)
        check_betas(betas)
        if beta3 is not None:
            check_range("beta3", beta3, 0.0, 1.0)
        check_range("eps", eps, 0.0, low_open=True)
        check_range("weight_decay", weight_decay, 0.0)
        check_range("d0", d0, 0.0, low_open=True)
        check_range("d_coef", d_coef, 0.0, low_open=True)
        if growth_rate is not None and not _is_inf(growth_rate):
            check_range("growth_rate", growth_rate, 1.0)
        for name, flag in (("decouple", decouple), ("use_bias_correction", use_bias_correction),
                           ("safeguard_warmup", safeguard_warmup),
                           ("fsdp_in_use", fsdp_in_use)):
            check_bool(name, flag)
        if fsdp_in_use:
            raise ValueError("fsdp_in_use=True is not supported: optimlab.Prodigy estimates d "
                             "from the parameters this process holds (no all-reduce of the "
                             "estimate across shards)")
        check_int("slice_p", slice_p, 1)
        # The group-level estimate lives in the defaults, under prodigyopt's names, so a new
        # group starts from d0 and a checkpoint carries it; d_hat and d_denom join after a step.
        defaults = dict(lr=lr, betas=betas, beta3=beta3, eps=eps, weight_decay=weight_decay,
                        decouple=decouple, use_bias_correction=use_bias_correction,
                        safeguard_warmup=safeguard_warmup, d0=d0, d_coef=d_coef,
                        growth_rate=growth_rate, fsdp_in_use=fsdp_in_use, slice_p=slice_p,
                        d=_number(d0), d_max=_number(d0), d_numerator=0.0, k=0,
                        maximize=maximize)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)

    def add_param_group(self, param_group: dict) -> None:
        """Add a param group (torch's ``add_param_group``); a group given its own ``d0``
        starts its estimate of d there."""
        super().add_param_group(starting_at_own_d0(param_group, ("d", "d_max")))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict of optimlab's Prodigy, or of prodigyopt's (converted: its
        per-parameter ``step`` dropped, a 0-d ``p0`` expanded), then as torch does."""
        super().load_state_dict(self._from_prodigyopt(state_dict))

    def _from_prodigyopt(self, state_dict: Any) -> Any:
        """``state_dict`` as this class keeps it, if ``prodigyopt.Prodigy`` saved it (no
        ``optimlab`` tag, a ``step`` in the per-parameter state): without that ``step``, with
        the 0-d ``p0`` of an all-zero tensor made its sliced zeros, and with ``exp_avg``
        None where prodigyopt keeps none (beta1 = 0). Anything else is returned as it is."""
        if not isinstance(state_dict, dict) or "optimlab" in state_dict \
                or not isinstance(state_dict.get("state"), dict) \
                or not isinstance(state_dict.get("param_groups"), list) \
                or not any(isinstance(entry, dict) and "step" in entry
                           for entry in state_dict["state"].values()):
            return state_dict
        shapes = {}  # saved id -> the p0 shape of this optimizer's parameter in its place
        for saved, group in zip(state_dict["param_groups"], self.param_groups):
            slice_p = saved.get("slice_p", 1) if isinstance(saved, dict) else 1
            for pid, p in zip(saved.get("params", ()) if isinstance(saved, dict) else (),
                              group["params"]):
                shapes[pid] = _sliced(torch.empty_like(real(p), device="meta"), slice_p).shape
        state = {}
        for pid, entry in state_dict["state"].items():
            if not isinstance(entry, dict) or "step" not in entry:
                state[pid] = entry
                continue
            entry = {key: value for key, value in entry.items() if key != "step"}
            entry.setdefault("exp_avg", None)
            p0 = entry.get("p0")
            if isinstance(p0, Tensor) and p0.dim() == 0 and pid in shapes:
                entry["p0"] = p0.expand(shapes[pid]).clone()
            state[pid] = entry
        return {**state_dict, "state": state}

    @classmethod
    def param_problem(cls, p: Tensor) -> str | None:  # noqa: D102 (RuleOptimizer's)
        if getattr(p, "_fsdp_flattened", False):
            return ("Prodigy does not support FSDP-sharded parameters: its estimate of d "
                    "would need an all-reduce across shards (prodigyopt's fsdp_in_use)")
        return None

    def _step_group(self, group: dict, hp: dict) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        if any(p.grad.is_sparse for p in params):  # refused before any state is made
            raise RuntimeError(sparse_refusal("Prodigy"))
        for p in params:
            state = self.state[p]
            if not state:  # p0 is the parameter at its first gradient, whatever the lr
                state.update(self.init(real(p), **hp))
        lr = _number(hp["lr"])
        if not params or lr == 0:
            return
        beta1, beta2 = (_number(b) for b in hp["betas"])
        beta3 = math.sqrt(beta2) if hp["beta3"] is None else _number(hp["beta3"])
        d0, weight_decay = _number(hp["d0"]), _number(hp["weight_decay"])
        growth_rate = math.inf if hp["growth_rate"] is None else _number(hp["growth_rate"])
        decouple, slice_p = hp["decouple"], hp["slice_p"]
        k, d, d_max = group["k"], group["d"], group["d_max"]
        if hp["use_bias_correction"]:
            bias_correction = ((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1))
        else:
            bias_correction = 1
        dlr = d * lr * bias_correction

        # the estimate's sums over the group, with the d of this step (prodigyopt's order)
        numerator_weight = (d / d0) * dlr
        s_weight = (d / d0) * d if hp["safeguard_warmup"] else numerator_weight
        maximize = bool(group.get("maximize", False))
        sums = []
        for p in params:
            state = self.state[p]
            w, g = real(p), real(p.grad)
            if maximize:
                g = -g
            if weight_decay != 0 and not decouple:
                g = add_scaled(g, w, weight_decay)
            g = _sliced(g, slice_p)
            dot = torch.dot(g, state["p0"] - _sliced(w, slice_p))
            s = state["s"]  # written in place, as torch.optim's state is: a held s follows
            s.copy_(add_scaled(s * beta3, g, s_weight))
            pair = torch.stack((dot, s.abs().sum()))
            sums.append(pair.to(device=sums[0].device if sums else pair.device,
                                dtype=torch.float64))
        delta_numerator, d_denom = 0.0, 0.0
        for dot, abs_sum in torch.stack(sums).tolist():  # one read-back per group and step
            delta_numerator += numerator_weight * dot
            d_denom += abs_sum

        rule_hp = {**hp, "betas": (beta1, beta2), "eps": _number(hp["eps"]),
                   "weight_decay": weight_decay, "d": d}
        if d_denom == 0:  # no gradient yet: no estimate, no step (the moments still move)
            super()._step_group(group, {**rule_hp, "d_next": d, "dlr": 0.0})
            return
        d_numerator = group["d_numerator"] * beta3 + delta_numerator
        d_hat = _number(hp["d_coef"]) * d_numerator / d_denom
        d_next = max(d, d_hat) if d == d0 else d
        d_max = max(d_max, d_hat)
        d_next = min(d_max, d_next * growth_rate)
        group.update(d_numerator=d_numerator, d_denom=d_denom, d=d_next, d_max=d_max,
                     d_hat=d_hat)
        super()._step_group(group, {**rule_hp, "d_next": d_next, "dlr": dlr})
        group["k"] = k + 1


def _is_inf(value: Any) -> bool:
    """Whether ``value`` is +inf (``growth_rate``'s "no limit", as prodigyopt spells it)."""
    try:
        return _number(value) == math.inf
    except (TypeError, ValueError, RuntimeError):
        return False
