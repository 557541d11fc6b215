"""Schedule-Free AdamW (Defazio et al. 2024)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import RuleOptimizer, check_betas, check_int, check_range, common_args_doc, nonzero
from .capabilities import Capabilities

# The ``foreach`` flag mirrors schedulefree.AdamWScheduleFree (not torch.optim).
_ARGS_DOC = common_args_doc(state_precision=False).replace(
    "accepted for drop-in compatibility with ``torch.optim``",
    "accepted for drop-in compatibility with ``schedulefree``",
)


def init(p: Tensor, **_) -> dict:
    # z starts at the initial point; there is no per-parameter step counter: the step k and
    # the averaging weights are per group, as in the reference implementation.
    return {
        "z": torch.clone(p, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def schedule(*, k, lr, warmup_steps, r, weight_lr_power, lr_max, weight_sum, **_):
    """The group-level part of step ``k + 1``: warmup, and the weight of the new iterate.

    Returns ``(scheduled_lr, lr_max, weight_sum, ckp1)`` where ``ckp1`` is the weight
    :math:`c_{t+1}` with which the new ``z`` enters the average ``x``.
    """
    sched = (k + 1) / warmup_steps if k < warmup_steps else 1.0
    lr_t = lr * sched
    if isinstance(lr_t, Tensor) or isinstance(lr_max, Tensor):
        lr_max = torch.maximum(torch.as_tensor(lr_t), torch.as_tensor(lr_max))
    else:
        lr_max = max(lr_t, lr_max)
    try:
        weight = ((k + 1) ** r) * (lr_max**weight_lr_power)
    except OverflowError:  # float's "Numerical result out of range", said in words
        raise OverflowError(
            f"schedule-free: the average's weight (t^r, t = {k + 1}, r = {float(r):g}) is "
            f"beyond float64 at this step (r * log10(t) must stay below 308); use a smaller "
            f"r (the paper's default is 0)") from None
    weight_sum = weight_sum + weight
    if isinstance(weight_sum, Tensor):
        ckp1 = torch.where(weight_sum != 0, weight / weight_sum, torch.zeros_like(weight_sum))
    else:
        ckp1 = weight / weight_sum if weight_sum != 0 else 0.0
    return lr_t, lr_max, weight_sum, ckp1


def update(p, g, state, *, lr, betas, eps, weight_decay, k, ckp1, **_) -> Tensor:
    # ``p`` is y (the point where the gradient is taken); ``lr`` is the warmed-up lr.
    beta1, beta2 = betas
    v = state["exp_avg_sq"] = state["exp_avg_sq"] * beta2 + (1 - beta2) * g * g
    bias_correction2 = 1 - beta2 ** (k + 1)
    direction = g / ((v / bias_correction2).sqrt() + eps)
    if nonzero(weight_decay):
        direction = direction + weight_decay * p  # decay taken at y
    z = state["z"]
    y = torch.lerp(p, z, ckp1) + direction * (lr * (beta1 * (1 - ckp1) - 1))
    state["z"] = z - lr * direction
    return y


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \epsilon, \lambda
            \text{ (weight decay)}, T_w \text{ (warmup)}, r, p \text{ (weight\_lr\_power)},
            x_1 = z_1 = y_1\\
       &\textbf{init}: v_0 \leftarrow 0,\ \gamma_{max} \leftarrow 0,\ W_0 \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla_\theta f_t(y_t)\quad (- \text{ if maximize})\\
       &\quad \gamma_t \leftarrow \gamma\min(1, t/T_w),\quad
            \gamma_{max} \leftarrow \max(\gamma_{max}, \gamma_t)\\
       &\quad w_t \leftarrow t^r\gamma_{max}^p,\quad W_t \leftarrow W_{t-1} + w_t,\quad
            c_{t+1} \leftarrow w_t / W_t\\
       &\quad v_t \leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2\\
       &\quad d_t \leftarrow g_t \big/ \big(\sqrt{v_t/(1-\beta_2^t)} + \epsilon\big)
            + \lambda y_t\\
       &\quad z_{t+1} \leftarrow z_t - \gamma_t d_t\\
       &\quad x_{t+1} \leftarrow (1-c_{t+1}) x_t + c_{t+1} z_{t+1}\\
       &\quad y_{t+1} \leftarrow (1-\beta_1) z_{t+1} + \beta_1 x_{t+1}
       \end{aligned}
"""


#: The arguments every schedule-free optimizer shares, and its reference, for docstrings.
SCHEDULE_ARGS_DOC = """\
        warmup_steps (int, optional): linear warmup over this many steps (default: 0).
        r (float, optional): polynomial weighting power of the average (default: 0); the
            weight t^r must stay within float64 (r * log10(t) < 308: 1,000 steps allow r up
            to about 100), else the step raises ``OverflowError``.
        weight_lr_power (float, optional): the weight of an iterate in the average is the
            (maximum so far) learning rate to this power, which discounts warmup
            (default: 2.0)."""
SCHEDULE_REFERENCE = """\
    Reference: Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less
    Scheduled", NeurIPS 2024, https://arxiv.org/abs/2405.15682; reference implementation
    https://github.com/facebookresearch/schedule_free."""


class ScheduleFree(RuleOptimizer):
    r"""What the schedule-free optimizers share: train/eval switching between the gradient
    point :math:`y` and the average :math:`x`, the per-group schedule, and a step refused in
    eval mode. A subclass sets ``init``, ``update``, ``schedule`` and says, in
    :meth:`_interpolation`, the weight :math:`\beta` of :math:`y = (1-\beta) z + \beta x`
    (AdamW's :math:`\beta_1`, SGD's momentum)."""

    # its warmup and averaging weights are per group, so a population runs one per member
    capabilities = Capabilities(batching="member", fusable=True, shards=True,
                                running=("k", "train_mode", "weight_sum", "lr_max", "scheduled_lr"))
    schedule = staticmethod(schedule)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The gradient points y that eval() replaced, by group index (see _switch): one dict,
        # made here and only ever changed in place, never replaced, so that a proxy of this
        # optimizer (Lightning's LightningOptimizer, what a LightningModule's
        # ``self.optimizers()`` returns, copies or forwards the attributes and takes the ones
        # a method sets) keeps them where the optimizer reads them: eval() through the proxy,
        # then a checkpoint of the optimizer itself (as Lightning saves it) holds them.
        self._train_points: dict[int, list[Tensor | None]] = {}
        super().__init__(*args, **kwargs)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a copy (``copy.deepcopy``, ``pickle``), one without the kept gradient
        points (earlier optimlab versions) too; torch's ``load_state_dict`` calls this with the
        loaded state."""
        super().__setstate__(state)
        self._points()  # made here, on the optimizer itself, not later through a proxy

    def _points(self) -> dict[int, list[Tensor | None]]:
        """The gradient points kept by eval(), by group index (the one dict, see __init__)."""
        kept = getattr(self, "_train_points", None)
        if kept is None:  # an instance built without ScheduleFree.__init__ (a subclass's own)
            kept = self._train_points = {}
        return kept

    def _interpolation(self, group: dict) -> float:
        raise NotImplementedError

    # -- train / eval ----------------------------------------------------------------------
    @torch.no_grad()
    def eval(self) -> None:
        """Switch the parameters to the average :math:`x` (for evaluation and checkpoints).

        The gradient point :math:`y` is kept (a copy of the parameters, until
        :meth:`train`), so that switching back restores it bit for bit: an evaluation
        must not change what is trained (``lerp`` to :math:`x` and back rounds, and a run
        switched after every step would drift by an ulp or so from one never switched)."""
        self._switch(train=False)

    @torch.no_grad()
    def train(self) -> None:
        """Switch the parameters to the gradient point :math:`y` (for training steps): the
        :math:`y` that :meth:`eval` left, exactly, where the parameters and :math:`z` are
        still what it made them; else (new weights or state loaded in eval mode, a changed
        interpolation weight) recomputed from them, :math:`y = \\mathrm{lerp}(x, z, 1-\\beta)`."""
        self._switch(train=True)

    # -- checkpoints taken in eval mode -----------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The state_dict of :class:`~optimlab.optim.base.RuleOptimizer`; in eval mode each
        parameter's entry also holds the gradient point :math:`y` that :meth:`train` will put
        back (under ``train_point``), so that a checkpoint taken in eval mode, as the reference
        recommends, resumes to the same bits: recomputing :math:`y` from :math:`x` and
        :math:`z` rounds. ``torch.optim`` has no schedule-free class to load it."""
        kept = self._points()
        # read by _saved_entries, which base's state_dict calls for every parameter's entry
        # before its post-hooks see the dict
        self._saving = {id(p): y for index, points in kept.items()
                        if index < len(self.param_groups)
                        for p, y in zip(self.param_groups[index]["params"], points)
                        if y is not None}
        try:
            return super().state_dict()
        finally:
            del self._saving

    def _saved_entries(self, entries: dict, p: Tensor | None, group: dict | None) -> dict:
        entries = super()._saved_entries(entries, p, group)
        y = getattr(self, "_saving", {}).get(id(p))
        return entries if y is None else {**entries, TRAIN_POINT: y}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict; the gradient points a checkpoint taken in eval mode holds
        (``train_point``, see :meth:`state_dict`) are kept for :meth:`train`, which puts
        them back where the loaded weights are the average they were saved with, and
        recomputes :math:`y` otherwise."""
        points: dict[int, Tensor] = {}
        if isinstance(state_dict, dict) and isinstance(state_dict.get("state"), dict) \
                and any(isinstance(e, dict) and TRAIN_POINT in e
                        for e in state_dict["state"].values()):
            state = {}
            for pid, entries in state_dict["state"].items():
                if isinstance(entries, dict) and TRAIN_POINT in entries:
                    entries = dict(entries)
                    points[pid] = entries.pop(TRAIN_POINT)
                state[pid] = entries
            state_dict = {**state_dict, "state": state}
        super().load_state_dict(state_dict)
        # the points kept before this load belong to other weights; the checkpoint's, by
        # group, for the groups it left in eval mode (the same dict, emptied and filled)
        kept = self._points()
        kept.clear()
        for index, (saved, group) in enumerate(zip(state_dict["param_groups"], self.param_groups)):
            if not group["train_mode"]:
                kept[index] = [
                    _kept_point(points.get(pid), p) for pid, p in zip(saved["params"], group["params"])]

    def _switch(self, train: bool) -> None:
        # the train points y that eval() replaced, by group index (None: a parameter without
        # z, which stays where it is); state_dict() writes them in eval mode
        kept = self._points()
        for index, group in enumerate(self.param_groups):
            if group["train_mode"] == train:
                continue
            beta = self._interpolation(group)
            # x -> y: y = lerp(x, z, 1 - beta);  y -> x: x = lerp(y, z, 1 - 1/beta)
            to_x = 1 - 1 / beta
            points = kept.pop(index, None)
            if train and points is not None and len(points) != len(group["params"]):
                points = None
            made: list[Tensor | None] = []
            for j, p in enumerate(group["params"]):
                state = self.state[p]
                if "z" not in state:
                    made.append(None)
                    continue
                w = torch.view_as_real(p) if torch.is_complex(p) else p
                z = state["z"].to(w.device)
                if not train:
                    y = w.clone()
                    torch.lerp(y, z, to_x, out=w)
                    made.append(y)
                    continue
                y = None if points is None else points[j]
                # y back as it was, unless x is no longer the point eval() made from it and z
                if y is not None and y.shape == w.shape and y.dtype == w.dtype \
                        and torch.equal(torch.lerp(y, z, to_x), w):
                    w.copy_(y)
                else:
                    w.lerp_(z, 1 - beta)
            if not train:
                kept[index] = made
            group["train_mode"] = train

    # -- the step --------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step (in train mode only).

        Args:
            closure (Callable, optional): re-evaluates the model and returns the loss.
        """
        if not all(group["train_mode"] for group in self.param_groups):
            raise RuntimeError(
                f"{type(self).__name__}.step() was called in eval mode: call "
                "optimizer.train() before training steps and optimizer.eval() before "
                "evaluation")
        return super().step(closure)

    def _step_group(self, group: dict, hp: dict) -> None:
        # warmup and the averaging weight are per group, computed once per step; the group's
        # running fields are written once the step has succeeded, so a step that raises
        # (a gradient that does not fit, KeyboardInterrupt) leaves them as they were and a
        # retried step is the one that would have been taken
        lr_t, lr_max, weight_sum, ckp1 = self.schedule(**hp)
        super()._step_group(group, {**hp, "lr": lr_t, "ckp1": ckp1})
        group["scheduled_lr"], group["lr_max"], group["weight_sum"] = lr_t, lr_max, weight_sum
        group["k"] = hp["k"] + 1


#: a parameter's state entry in a checkpoint taken in eval mode: its gradient point y
TRAIN_POINT = "train_point"


def _kept_point(y: Any, p: Tensor) -> Tensor | None:
    """A loaded gradient point for ``p`` (its real view's shape, on its device), or None
    where the checkpoint has none that fits (then :meth:`ScheduleFree.train` recomputes it)."""
    if not isinstance(y, Tensor):
        return None
    if torch.is_complex(y):
        y = torch.view_as_real(y)
    w = torch.view_as_real(p) if torch.is_complex(p) else p
    if y.shape != w.shape:
        return None
    return y.to(device=w.device, dtype=w.dtype, copy=True)


class ScheduleFreeAdamW(ScheduleFree):
    __doc__ = rf"""Schedule-Free AdamW: no learning-rate schedule, the averaging replaces it.

    Keeps two sequences: :math:`z` takes AdamW-style steps, :math:`x` is a weighted running
    average of the :math:`z` iterates, and the gradient is evaluated at their interpolation
    :math:`y`. The parameters hold :math:`y` in train mode and :math:`x` in eval mode: call
    :meth:`train` before training steps and :meth:`eval` before evaluating or saving a
    checkpoint, as with the reference implementation. Only ``y`` and ``z`` are stored
    (:math:`x` is recovered from them), plus :math:`v`: two buffers, no momentum buffer.
{_RULE}
    The implementation updates :math:`y` in place without forming :math:`x`
    (:math:`y \leftarrow \mathrm{{lerp}}(y, z_t, c_{{t+1}}) + \gamma_t(\beta_1(1-c_{{t+1}})-1)d_t`),
    exactly like ``schedulefree.AdamWScheduleFree`` 1.4.1, which it matches numerically.

    .. note::
       Unlike ``schedulefree.AdamWScheduleFree``, a new optimizer starts in train mode, so
       it drops into an ordinary training loop; calling :meth:`train` first, as the
       reference requires, changes nothing. :meth:`step` in eval mode raises
       ``RuntimeError``, as the reference does. The warmup, step count and averaging
       weights are per parameter group (``k``, ``lr_max``, ``weight_sum``,
       ``scheduled_lr`` in ``param_groups``), as in the reference; a scheduler that
       changes ``lr`` changes :math:`\gamma`, but none is needed. Weight decay is taken at
       :math:`y` and scaled by the learning rate.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        lr (float or Tensor, optional): learning rate :math:`\gamma`; schedule-free runs
            usually need a larger one than AdamW (default: 0.0025).
        betas (tuple[float, float], optional): interpolation :math:`\beta_1` between the
            average and the base sequence, and the decay rate :math:`\beta_2` of the second
            moment (default: (0.9, 0.999)).
        eps (float, optional): added to the denominator outside the root (default: 1e-8).
        weight_decay (float, optional): weight decay :math:`\lambda`, evaluated at
            :math:`y` (default: 0).
{SCHEDULE_ARGS_DOC}
{_ARGS_DOC}

{SCHEDULE_REFERENCE}

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.ScheduleFreeAdamW([w], lr=0.1)
        >>> opt.train()
        >>> for _ in range(200):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> opt.eval()  # the parameters now hold the average x
        >>> bool(w.abs().max() < 0.05)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 0.0025,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float | Tensor = 1e-8,
        weight_decay: float | Tensor = 0.0,
        warmup_steps: int = 0,
        r: float | Tensor = 0.0,
        weight_lr_power: float | Tensor = 2.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas)
        # x is recovered from y and z by dividing by beta1 (eval()): 0 cannot be undone
        check_range("betas[0]", betas[0], 0.0, 1.0, low_open=True)
        check_range("eps", eps, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        check_int("warmup_steps", warmup_steps, 0)
        check_range("r", r, 0.0)
        check_range("weight_lr_power", weight_lr_power, 0.0)
        # Group-level bookkeeping lives in the defaults, under the reference's names, so a
        # scheduler sees it and a checkpoint carries it.
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
                        k=0, train_mode=True, weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0,
                        maximize=maximize, foreach=foreach, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite)

    def _interpolation(self, group: dict) -> float:
        return group["betas"][0]

