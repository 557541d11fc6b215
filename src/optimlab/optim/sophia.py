"""Sophia (Liu et al. 2023): clipped momentum preconditioned by a Hutchinson estimate of the
Hessian's diagonal."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import (
    RuleOptimizer,
    all_true,
    check_betas,
    check_int,
    check_range,
    common_args_doc,
    step_by_hand,
)
from .capabilities import Capabilities
from .engine import sparse_refusal
from .ops import add_scaled, wide_norm
from .rule import exact_step, nonzero

__all__ = ["Sophia", "probe", "difference_step"]

# Sophia is not in torch.optim, so it takes no ``foreach`` argument.
_ARGS_DOC = common_args_doc(foreach=False)

#: the probe distributions of the Hutchinson estimator
DISTRIBUTIONS = ("gaussian", "rademacher")


def init(p: Tensor, **_) -> dict:
    """Sophia's state of ``p``: its step, first moment and Hessian-diagonal estimate."""
    # the step counter schedules the Hessian estimates (and seeds their probes); the step
    # itself needs no bias correction
    return {
        "step": exact_step(),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "hessian": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def update(p, g, state, *, lr, betas, gamma, eps, weight_decay, **_) -> Tensor:
    """One Sophia step of ``p`` (the class's docstring gives the rule): the clipped ratio
    of the first moment to the Hessian estimate."""
    # state["hessian"] is h_t: the optimizer averages the new estimate into it before the rule
    # runs (on a Hessian step), because the estimate needs the closure, not just g
    beta1, _ = betas
    m = state["exp_avg"] = torch.lerp(state["exp_avg"], g, 1 - beta1)
    if nonzero(weight_decay):
        p = p * (1 - lr * weight_decay)
    ratio = m / torch.clamp(gamma * state["hessian"], min=eps)
    return add_scaled(p, torch.clamp(ratio, -1.0, 1.0), -lr)


# -- the Hutchinson estimate -----------------------------------------------------------------
_MASK64 = (1 << 64) - 1


def _seed(*values: int) -> int:
    """A generator seed from integers (splitmix64 over them), below 2**63."""
    x = 0
    for value in values:
        x = (x + 0x9E3779B97F4A7C15 + (value & _MASK64)) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
    return x >> 1


def probe(p: Tensor, *, seed: int, index: int, step: int, distribution: str) -> Tensor:
    """The probe :math:`u` of parameter ``index`` (its position in the optimizer, over all
    groups) on its step ``step``: standard normal or Rademacher entries, shaped like ``p``.

    It is drawn from a generator seeded with ``(seed, index, step)`` alone, so a resumed run,
    a population member and a run whose parameters are split into other groups draw the same
    probes, and no generator state needs checkpointing.
    """
    gen = torch.Generator(device=p.device)
    gen.manual_seed(_seed(seed, index, step))
    if distribution == "rademacher":
        u = torch.empty(p.shape, dtype=p.dtype, device=p.device).bernoulli_(0.5, generator=gen)
        return u * 2 - 1
    return torch.randn(p.shape, generator=gen, dtype=p.dtype, device=p.device)


def difference_step(p: Tensor) -> Tensor:
    r"""The finite-difference step :math:`\delta = \sqrt{\epsilon_{mach}}\max(1, \mathrm{rms}(p))`
    of parameter ``p`` (a 0-d tensor of its dtype). The squares are summed in float64: in
    float32 those of entries beyond about 1.8e19 overflow, and an infinite step turned the
    Hessian estimate (inf / inf) and then the parameter into NaN."""
    rms = wide_norm(p) / math.sqrt(max(p.numel(), 1))
    return (rms.clamp(min=1.0) * math.sqrt(torch.finfo(p.dtype).eps)).to(p.dtype)


@dataclass
class _Probed:
    """One parameter between :meth:`Sophia.first_step` and :meth:`Sophia.second_step`."""

    group: dict
    param: Tensor
    index: int
    step: int
    grad: Tensor  # the gradient at theta (the step's own)
    origin: Tensor | None = None  # theta, on a Hessian step (the parameter holds theta + du)
    delta: Tensor | None = None


def _rng_state() -> tuple:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda


def _set_rng_state(saved: tuple) -> None:
    cpu, cuda = saved
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \eta \text{ (lr)}, \beta_1, \beta_2, \gamma, \epsilon, \lambda
            \text{ (weight decay)}, k \text{ (update interval)}, \theta_1, L(\theta)\\
       &\textbf{init}: m_0 \leftarrow 0,\ h_{0} \leftarrow 0\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \pm\nabla L_t(\theta_t)
            \quad (- \text{ if maximize, for } \hat h_t \text{ too})\\
       &\quad m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t\\
       &\quad \textbf{if}\ (t - 1) \bmod k = 0:\quad u \sim \mathcal{N}(0, I)
            \text{ or Rademacher},\quad
            \delta = \sqrt{\epsilon_{mach}}\max(1, \mathrm{rms}(\theta_t))\\
       &\quad\quad \hat h_t \leftarrow u \odot
            \frac{\nabla L_t(\theta_t + \delta u) - \nabla L_t(\theta_t)}{\delta}
            \quad (\approx u \odot \nabla^2 L_t(\theta_t)\, u)\\
       &\quad\quad h_t \leftarrow \beta_2 h_{t-1} + (1-\beta_2) \hat h_t
            \quad \textbf{else}\ h_t \leftarrow h_{t-1}\\
       &\quad \theta_{t+1} \leftarrow \theta_t(1 - \eta\lambda) - \eta\,
            \mathrm{clip}\Big(\frac{m_t}{\max(\gamma h_t, \epsilon)}, 1\Big),
            \quad \mathrm{clip}(z, 1) = \max(\min(z, 1), -1)
       \end{aligned}
"""


class Sophia(RuleOptimizer):
    __doc__ = rf"""Sophia-H: momentum divided by a running Hutchinson estimate of the Hessian's
    diagonal, clipped coordinate by coordinate.

    Each coordinate moves by the momentum over its curvature, :math:`m/(\gamma h)` (a
    Newton step on a diagonal model), but never by more than :math:`\eta`: where the
    estimate is small, negative or noisy the clip turns the step into
    :math:`\eta\,\mathrm{{sign}}(m)`, so a wrong curvature costs at most a sign-momentum
    step. The curvature :math:`h` is an exponential average of Hutchinson estimates
    :math:`u \odot Hu` (unbiased for the diagonal, :math:`E[u u^\top] = I`), refreshed every
    ``update_interval`` steps, so on average a step costs little more than the gradient.
    This is Sophia-H (the paper's Hutchinson estimator); Sophia-G's Gauss-Newton-Bartlett
    estimator needs labels sampled from the model, which an optimizer cannot do.
{_RULE}
    :meth:`step` needs a closure that zeroes the gradients, computes the loss on the current
    batch, calls ``backward()`` and returns the loss (as for ``torch.optim.LBFGS``). On a
    Hessian step (the first, then every ``update_interval``-th) it is evaluated a second
    time, at :math:`\theta + \delta u`, and the Hessian-vector product is the difference of
    the two gradients; the step itself uses the gradient at :math:`\theta`. The second
    evaluation restores torch's random number generators (CPU and CUDA) to their state
    before the first, so dropout draws the same masks; the closure must evaluate the same
    batch both times. A Hessian step thus costs one more forward and backward pass, and
    holds a copy of the parameters and the second gradient while it runs. Because the
    product comes from gradients alone, it needs nothing of the model beyond its gradient
    (no double backward, which fused attention kernels lack); under DDP the averaged
    gradients and the shared probes give every rank the same estimate; and in a population
    the second evaluation serves every member at once (:meth:`first_step` and
    :meth:`second_step`, the two phases around it, as for SAM). Like SAM's, they can be
    called around your own second pass instead of :meth:`step`.

    .. warning::
       Three differences from the paper (Liu et al., Algorithm 3) and its references:

       * The paper computes :math:`Hu` by automatic differentiation (a second backward
         pass). Here it is a forward difference of two gradients, whose error is about
         :math:`\sqrt{{\epsilon_{{mach}}}}` relative (1e-8 in float64, 3e-4 in float32),
         far below the estimator's own noise; gradient clipping inside the closure enters
         the estimate (it differences the clipped gradients). The tests therefore give
         ``pytorch_optimizer.SophiaH`` (which differentiates twice) this very estimate,
         through its ``step(hessian=...)``, with the same probes.
       * ``pytorch_optimizer.SophiaH`` clips at a threshold ``p`` instead of scaling by
         :math:`\gamma`: its step ``lr' * clip(m / max(h, eps'), p)`` is this one with
         ``lr' = lr / gamma``,
         ``p = gamma``, ``eps' = eps / gamma`` and ``weight_decay' = weight_decay * gamma``
         (its decoupled decay is scaled by ``lr'``); its default ``lr=6e-2, p=1e-2`` is
         ``lr=6e-4`` here.
       * ``optax.contrib.sophia`` bias-corrects the momentum (:math:`m_t/(1-\beta_1^t)`),
         steps with the Hessian average of the previous step (the new estimate enters after
         the update), draws Rademacher probes by default and has ``b1=0.965``,
         ``eps=1e-8``, ``weight_decay=1e-4``; no setting of it gives this path.

       The probes are the paper's standard normal vectors by default
       (``distribution="rademacher"`` for optax's; their estimate has lower variance). They
       come from a generator seeded by ``(seed, parameter index, step)``, the index
       counting over all groups: a resumed run, a population member and a run with the same
       parameters in the same order, however grouped, draw the same ones.

    .. note::
       With no bias correction the first Hessian average is :math:`(1-\beta_2)\hat h_1`, so
       the first steps are mostly clipped to :math:`\eta\,\mathrm{{sign}}(m)`, as in the
       paper. A parameter that gets no gradient keeps its state and its own step count
       (which schedules its estimates), an exact float64 ``state["step"]`` (a float32 one,
       torch's, stops counting at ``2**24``, which would stop the estimates; a checkpoint's
       float32 step is loaded as float64). The difference step :math:`\delta` is per tensor,
       and the estimate is negated to maximize (the curvature of :math:`-L`).
       ``state_precision`` compacts the momentum only: the Hessian average is updated
       outside the rule and stays in the parameter's dtype.

    Args:
        params (iterable): parameters or parameter groups to optimize (real tensors).
        lr (float or Tensor, optional): learning rate :math:`\eta`, the largest step of any
            coordinate (default: 6e-4).
        betas (tuple[float, float], optional): decay rates of the gradient average and of
            the Hessian average; the latter is applied once per ``update_interval`` steps
            (default: (0.96, 0.99), the paper's).
        gamma (float, optional): scale :math:`\gamma` of the Hessian in the denominator;
            larger means smaller unclipped steps and more of them unclipped (default: 0.01,
            the paper's for Sophia-H).
        eps (float, optional): floor :math:`\epsilon > 0` of the denominator (default: 1e-12).
        weight_decay (float, optional): decoupled decay :math:`\lambda`, scaled by the
            learning rate (default: 0).
        update_interval (int, optional): :math:`k \ge 1`, steps between two Hessian
            estimates (default: 10).
        distribution (str, optional): the probes' distribution, ``"gaussian"`` or
            ``"rademacher"`` (default: ``"gaussian"``).
        seed (int, optional): seed of the probes, at least 0 (default: 0).
{_ARGS_DOC}

    Reference: Liu, Li, Hall, Liang & Ma, "Sophia: A Scalable Stochastic Second-order
    Optimizer for Language Model Pre-training", ICLR 2024,
    https://arxiv.org/abs/2305.14342 (Algorithm 3, with Hutchinson's estimator).

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.Sophia([w], lr=0.1, betas=(0.9, 0.9), gamma=0.1)
        >>> def closure():
        ...     opt.zero_grad(); loss = (w ** 2).sum(); loss.backward(); return loss
        >>> for _ in range(200):
        ...     loss = opt.step(closure)
        >>> bool(w.abs().max() < 0.01)
        True
    """

    init = staticmethod(init)
    update = staticmethod(update)
    #: a Hessian step evaluates the closure twice (two phases, as SAM's), so a population runs
    #: one optimizer per member and evaluates every member's second gradient at once
    capabilities = Capabilities(batching="member", needs_closure=True, two_phase=True,
                                complex=False, moments=("exp_avg",), fusable=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 6e-4,
        betas: tuple[float | Tensor, float | Tensor] = (0.96, 0.99),
        gamma: float | Tensor = 0.01,
        eps: float | Tensor = 1e-12,
        weight_decay: float | Tensor = 0.0,
        update_interval: int = 10,
        distribution: str = "gaussian",
        seed: int = 0,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_betas(betas)
        check_range("gamma", gamma, 0.0)
        check_range("eps", eps, 0.0, low_open=True)
        check_range("weight_decay", weight_decay, 0.0)
        check_int("update_interval", update_interval, 1)
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got "
                             f"{distribution!r}")
        check_int("seed", seed, 0)
        defaults = dict(lr=lr, betas=betas, gamma=gamma, eps=eps, weight_decay=weight_decay,
                        update_interval=update_interval, distribution=distribution, seed=seed,
                        maximize=maximize, fused=fused)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite,
                         state_precision=state_precision)


    # -- the two phases ----------------------------------------------------------------------
    def _next_step(self, p: Tensor) -> int:
        state = self.state.get(p)
        return int(state["step"]) + 1 if state and "step" in state else 1

    @torch.no_grad()
    def first_step(self) -> bool:
        """Before the second evaluation: on a Hessian step, move each parameter with a
        gradient from :math:`\\theta` to :math:`\\theta + \\delta u` (keeping :math:`\\theta`
        and the gradient there for :meth:`second_step`).

        Returns whether any parameter moved (whether the closure must be evaluated again).
        Where anything raises part way (``KeyboardInterrupt`` while a probe is drawn), the
        parameters already moved are put back and the error goes on: nothing is left at
        the probe point.
        """
        self._restore()  # a step interrupted between the phases leaves nothing behind
        self._check_flags()  # a flag set on a group since: refused before anything moves
        if any(p.grad is not None and p.grad.is_sparse
               for group in self.param_groups for p in group["params"]):
            raise RuntimeError(sparse_refusal("Sophia"))
        skip = self.skip_nonfinite and not self._grads_are_finite()
        probed: list[_Probed] = []
        # recorded before anything moves and filled as the parameters move, so that
        # _restore() (here on an exception, or at the next first_step) finds every one
        self._probed = (probed, skip)
        index = -1
        try:
            for group in self.param_groups:
                for p in group["params"]:
                    index += 1
                    if p.grad is None:
                        continue
                    step = self._next_step(p)
                    entry = _Probed(group, p, index, step, p.grad)
                    if not skip and (step - 1) % group["update_interval"] == 0:
                        delta = difference_step(p)
                        u = probe(p, seed=group["seed"], index=index, step=step,
                                  distribution=group["distribution"])
                        entry.origin, entry.delta = p.detach().clone(), delta
                        probed.append(entry)  # recorded (with theta) before p moves
                        p.add_(u * delta)
                    else:
                        probed.append(entry)
        except BaseException:  # back to theta, every gradient as it was, then on
            self._restore()
            raise
        return any(entry.origin is not None for entry in probed)

    def _restore(self) -> tuple | None:
        """Put back every parameter and gradient :meth:`first_step` kept. Returns its entries,
        the gradients the second evaluation left and whether the step is skipped (None if
        nothing was kept)."""
        kept = self.__dict__.pop("_probed", None)
        if kept is None:
            return None
        probed, skip = kept
        moved = []
        for entry in probed:
            moved.append(entry.param.grad)
            entry.param.grad = entry.grad
            if entry.origin is not None:
                entry.param.copy_(entry.origin)
        return probed, moved, skip

    @torch.no_grad()
    def undo_first_step(self) -> bool:
        """Put every parameter and gradient :meth:`first_step` moved back at :math:`\\theta`,
        without stepping (for a second evaluation that failed); whether a first step was
        pending."""
        return self._restore() is not None

    def second_step(self) -> None:
        """After the second evaluation: move back to :math:`\\theta`, average the estimate
        :math:`u \\odot (\\nabla L(\\theta + \\delta u) - \\nabla L(\\theta)) / \\delta` into the
        Hessian, and take the step with the gradient at :math:`\\theta`.

        Called by itself (your own two passes, as under a ``GradScaler``), this is the one
        optimizer step taken: the step hooks fire around it as around :meth:`step` (torch's
        global ones and this optimizer's own, with ``args == (self,)``), and an lr scheduler
        built on this optimizer sees the step (no "``lr_scheduler.step()`` before
        ``optimizer.step()``" warning). Within :meth:`step` they fire around :meth:`step`.
        The hooks see what the step steps with: the parameters back at :math:`\\theta`, each
        gradient the one taken there (the second evaluation's, at the probe point, goes to
        the curvature estimate alone).
        """
        with torch.no_grad():
            kept = self._restore()  # before the hooks: they see theta and its gradients
        if kept is None:
            raise RuntimeError("Sophia.second_step() called without first_step()")
        step_by_hand(self, lambda optimizer: optimizer._apply_second_step(kept))  # args: (self,)

    @torch.no_grad()
    def _second_step(self) -> None:
        """:meth:`second_step` within :meth:`step`, whose hooks fire around the whole step."""
        kept = self._restore()
        if kept is None:
            raise RuntimeError("Sophia.second_step() called without first_step()")
        self._apply_second_step(kept)

    @torch.no_grad()
    def _apply_second_step(self, kept: tuple) -> None:
        probed, moved, skip = kept
        estimates = []
        for entry, grad in zip(probed, moved):
            if entry.origin is None:
                continue
            if grad is None:
                raise RuntimeError(
                    f"Sophia: the closure gave parameter {entry.index} a gradient at theta but "
                    "none at the probe point theta + delta u")
            u = probe(entry.param, seed=entry.group["seed"], index=entry.index,
                      step=entry.step, distribution=entry.group["distribution"])
            estimate = u * (grad - entry.grad) / entry.delta
            if entry.group.get("maximize", False):
                estimate = -estimate  # the curvature of the objective minimized, -L
            estimates.append((entry, estimate))
        if self.skip_nonfinite and (skip or estimates and not bool(
                all_true([torch.isfinite(e).all() for _, e in estimates]))):
            self.skipped_steps += 1
            return
        for entry, estimate in estimates:
            state = self.state[entry.param]
            hp = self._hp(entry.group)
            if not state:
                state.update(self.init(entry.param, **hp))
            state["hessian"].lerp_(estimate.to(state["hessian"].dtype), 1 - hp["betas"][1])
        for group in self.param_groups:
            self._step_group(group, self._hp(group))
        engine = self.engine
        if len(engine.plans) + len(engine._multi) > 2 * len(self.param_groups):
            engine.keep_only({id(group) for group in self.param_groups})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one Sophia step; returns the loss at :math:`\\theta`.

        Args:
            closure (Callable): zeroes the gradients, computes the loss, calls
                ``backward()`` and returns the loss. It is evaluated twice on a Hessian step.
        """
        if closure is None:
            raise RuntimeError(
                "Sophia.step() needs a closure that zeroes the gradients, computes the loss, "
                "calls backward() and returns the loss (it is evaluated a second time, at a "
                "nearby point, every update_interval steps to estimate the curvature); or "
                "call first_step() and second_step() around your own second pass")
        # a probe a failed earlier step left pending: undone before the first evaluation,
        # whose gradient must be taken at theta
        self._restore()
        rng = _rng_state()
        with torch.enable_grad():
            loss = closure()
        if self.first_step():
            for entry in self._probed[0]:
                entry.param.grad = None  # the second evaluation starts from no gradient
            _set_rng_state(rng)  # the same dropout masks (and other draws) as the first
            try:
                with torch.enable_grad():
                    closure()
            except BaseException:
                self._restore()
                raise
        self._second_step()  # step's own hooks fire around it (torch's wrapper of step)
        return loss
