"""Sharpness-Aware Minimization (Foret et al. 2021) and its adaptive form ASAM (Kwon et al. 2021)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from ..base import (
    TorchOptimizer,
    check_bool,
    check_range,
    check_saved_name,
    check_state_dict,
    optimizer_getstate,
    saved_name,
    step_by_hand,
    step_without_global_hooks,
    takes_saved_name,
)
from ..capabilities import Capabilities
from ..ops import wide_norm
from ..sgd import SGD
from .inner import check_inner, switch_mode

_EPS = 1e-12


def _real(t: Tensor) -> Tensor:
    return torch.view_as_real(t) if torch.is_complex(t) else t


def _version(t: Tensor) -> int | None:
    """``t``'s version counter (bumped by every in-place write), or None where it keeps none
    (an inference tensor)."""
    try:
        return t._version
    except (RuntimeError, AttributeError):
        return None


#: what a closure must do, for SAM's refusals of one that does not
_CLOSURE_CONTRACT = ("SAM evaluates its closure twice per step, at the current point and at "
                     "the perturbed one, so the closure must zero the gradients, recompute the "
                     "loss, call backward() and return the loss (as torch.optim.LBFGS's must)")


_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \rho \text{ (rho)}, \text{a base optimizer } \mathcal{B},
            \theta_0, f(\theta), \epsilon = 10^{-12}\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1})\\
       &\quad T \leftarrow \begin{cases} \mathrm{diag}(|\theta_{t-1}|) & \text{adaptive}\\
            I & \text{otherwise}\end{cases}\\
       &\quad e_t \leftarrow \pm\rho\, \frac{T^2 g_t}{\lVert T g_t\rVert_2 + \epsilon}
            \quad (- \text{ if maximize; the norm runs over all parameters})\\
       &\quad \tilde g_t \leftarrow \nabla_\theta f_t(\theta_{t-1} + e_t)\\
       &\quad \theta_t \leftarrow \mathcal{B}\text{.step}(\theta_{t-1}, \tilde g_t)
       \end{aligned}
"""


class SAM(TorchOptimizer):
    __doc__ = rf"""Sharpness-Aware Minimization: step with the gradient at a nearby worst point.

    SAM seeks parameters whose whole neighbourhood has low loss. Each step evaluates the
    gradient at :math:`\theta`, moves to the (first-order) worst point
    :math:`\theta + e` of the ball of radius :math:`\rho`, evaluates the gradient there,
    moves back to :math:`\theta` and lets the base optimizer step with that second
    gradient. It therefore costs two forward/backward passes per step, and
    :meth:`step` needs a closure that zeroes the gradients, computes the loss, calls
    ``backward()`` and returns the loss (as for ``torch.optim.LBFGS``); it returns the loss
    at :math:`\theta`.
{_RULE}
    With ``adaptive=True`` this is ASAM: the neighbourhood is scaled by
    :math:`T = \mathrm{{diag}}(|\theta|)`, which makes the sharpness measure invariant to
    rescaling the weights; ASAM usually wants a larger ``rho`` (the paper uses 0.5-2 with
    SGD).

    The base optimizer is built on the *same* parameter groups (``self.param_groups`` is
    ``self.base_optimizer.param_groups``), so an lr scheduler attached to SAM drives the
    base optimizer, and ``rho`` can differ per group. The state lives in the base optimizer;
    :meth:`state_dict` is the base optimizer's (tagged as SAM's) and loads back exactly.
    For your own two passes (for example with gradient accumulation or AMP) call
    :meth:`first_step` after the first ``backward()`` and :meth:`second_step` after the
    second, instead of :meth:`step`. :meth:`eval` and :meth:`train` forward to the base
    optimizer where it has them (a schedule-free one: its parameters move between the
    gradient point :math:`y` and the average :math:`x`), and do nothing otherwise.

    .. note::
       This follows the widely used implementation of D. Samuel (github.com/davda54/sam):
       the norm is global over all parameters, :math:`\epsilon = 10^{{-12}}` guards it, and
       ASAM's :math:`T` is :math:`|\theta|` for every tensor, with no additive :math:`\eta`
       (Kwon et al.'s code uses :math:`|\theta| + \eta` for weight tensors and leaves
       biases unscaled, :math:`T = I`; here a bias at zero is not perturbed). The original SAM paper computes
       :math:`e` per data shard (``m``-sharpness); here it uses whatever batch the closure
       evaluates.

    Args:
        params (iterable): parameters or parameter groups to optimize.
        base_optimizer (type, optional): the optimizer class (optimlab or ``torch.optim``)
            that takes the actual step (default: :class:`optimlab.SGD`).
        rho (float, optional): radius :math:`\rho \ge 0` of the neighbourhood; 0 gives the
            base optimizer at twice the cost (default: 0.05).
        adaptive (bool, optional): ASAM's scale-invariant neighbourhood (default: False).
        maximize (bool, optional): maximize the objective: the perturbation then descends
            (the worst point for a maximizer) and the base optimizer is built with
            ``maximize=True`` (default: False).
        **base_kwargs: hyperparameters of the base optimizer (``lr``, ``momentum``, ...).

    References: Foret, Kleiner, Mobahi & Neyshabur, "Sharpness-Aware Minimization for
    Efficiently Improving Generalization", ICLR 2021, https://arxiv.org/abs/2010.01412;
    Kwon, Kim, Park & Choi, "ASAM: Adaptive Sharpness-Aware Minimization for
    Scale-Invariant Learning of Deep Neural Networks", ICML 2021,
    https://arxiv.org/abs/2102.11600.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.SAM([w], base_optimizer=optimlab.SGD, rho=0.05, lr=0.1)
        >>> def closure():
        ...     opt.zero_grad(); loss = (w ** 2).sum(); loss.backward(); return loss
        >>> for _ in range(100):
        ...     loss = opt.step(closure)
        >>> bool(w.abs().max() < 0.01)  # SAM hovers within about lr * rho of the minimum
        True
    """

    #: one instance per member in a population; a closure evaluates the loss twice
    capabilities = Capabilities(batching="member", needs_closure=True, two_phase=True,
                                wraps="base_optimizer")
    __getstate__ = optimizer_getstate

    @property
    def skipped_steps(self) -> int:
        """Steps skipped by the wrapped optimizer's non-finite guard (``skip_nonfinite=True``
        on it), as ``opt.skipped_steps`` counts them for any optimlab optimizer."""
        return getattr(self.base_optimizer, "skipped_steps", 0)

    @property
    def wrapped(self) -> torch.optim.Optimizer:
        """The base optimizer (``base_optimizer``): what this SAM steps through."""
        return self.base_optimizer

    @classmethod
    def from_registry(cls, params, resolve: Callable, create: Callable, **kwargs) -> SAM:
        """Build from registry names: ``base_optimizer`` may be a name (``"momentum"``), whose
        preset hyperparameters apply under the ones given."""
        base = kwargs.pop("base_optimizer", "sgd")
        if isinstance(base, str):
            entry = resolve(base)
            kwargs = {**entry.preset, **kwargs}
            base = entry.cls
        return cls(params, base_optimizer=base, **kwargs)

    def __init__(
        self,
        params: ParamsT,
        base_optimizer: type[torch.optim.Optimizer] = SGD,
        rho: float | Tensor = 0.05,
        adaptive: bool = False,
        *,
        maximize: bool = False,
        **base_kwargs: Any,
    ) -> None:
        check_range("rho", rho, 0.0)
        check_bool("adaptive", adaptive)
        check_bool("maximize", maximize)
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, torch.optim.Optimizer)):
            raise TypeError(
                "base_optimizer must be an optimizer class such as optimlab.SGD or "
                "torch.optim.Adam (SAM builds it on its parameter groups), got an object of "
                f"type {type(base_optimizer).__name__}"
            )
        check_inner("SAM", base_optimizer,
                    closure="SAM steps its base optimizer without one (SAM evaluates the "
                            "closure itself)",
                    sparse="SAM's perturbation needs dense ones (SAM refuses sparse gradients)",
                    nested="SAM builds its base optimizer on its parameter groups (pass the "
                           "optimizer that steps, such as optimlab.Adam)")
        defaults = dict(rho=rho, adaptive=bool(adaptive), maximize=bool(maximize), **base_kwargs)
        super().__init__(params, defaults)
        if maximize:
            base_kwargs["maximize"] = True
        # Built on the very same group dicts, so schedulers and per-group options reach it.
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)
        self.defaults.update(rho=rho, adaptive=bool(adaptive), maximize=bool(maximize))

    def add_param_group(self, param_group: dict) -> None:
        """Add a parameter group: to the base optimizer, which checks it as its own (SAM's
        ``rho`` and ``adaptive`` default to SAM's), and so to this SAM, whose groups are
        the base optimizer's."""
        base = self.__dict__.get("base_optimizer")
        if base is None:  # SAM's constructor: the groups the base optimizer is built on
            super().add_param_group(param_group)
            return
        for key in ("rho", "adaptive", "maximize"):
            param_group.setdefault(key, self.defaults[key])
        try:  # named as the base optimizer names its own group's errors
            check_range("rho", param_group["rho"], 0.0)
            check_bool("adaptive", param_group["adaptive"])
            check_bool("maximize", param_group["maximize"])
        except (ValueError, TypeError) as err:
            raise type(err)(f"param group {len(self.param_groups)}: {err}") from None
        base.add_param_group(param_group)

    # -- train / eval ----------------------------------------------------------------------
    def eval(self) -> None:
        """The base optimizer's ``eval()`` where it has one (a schedule-free optimizer's
        parameters move to its average :math:`x`), else nothing. Call it between steps,
        not between :meth:`first_step` and :meth:`second_step` (that raises)."""
        self._switch("eval")

    def train(self) -> None:
        """Undo :meth:`eval`: the base optimizer's ``train()`` where it has one (a
        schedule-free optimizer's parameters back at its gradient point :math:`y`), else
        nothing."""
        self._switch("train")

    def _switch(self, mode: str) -> None:
        if any("old_p" in s for s in self.state.values()):
            raise RuntimeError(f"SAM.{mode}() called between first_step() and second_step(): "
                               "the parameters are at the perturbed point")
        switch_mode(self.base_optimizer, mode)

    # -- the two passes --------------------------------------------------------------------
    @torch.no_grad()
    def _grad_norm(self, original: bool = False) -> Tensor:
        if any(p.grad is not None and p.grad.is_sparse
               for group in self.param_groups for p in group["params"]):
            # refused before anything moves, as every optimizer without sparse support does
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients, whatever "
                               "its base optimizer (the perturbation needs the whole gradient); "
                               "step them with SGD or Adagrad alone, which take sparse gradients")
        norms = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    g = _real(p.grad)
                    if group["adaptive"]:
                        # original: |theta| at the point first_step() moved p from
                        point = self.state.get(p, {}).get("old_p", p) if original else p
                        g = _real(point).abs() * g
                    # squares summed in float64: in the gradient's dtype a norm past its
                    # range (65504 in float16, 1.8e19 for float32 entries) was inf and the
                    # perturbation rho * g / inf silently 0
                    norms.append(wide_norm(g))
        if not norms:
            return torch.zeros((), dtype=torch.float64)
        device = norms[0].device
        return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]), 2)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move every parameter with a gradient to the perturbed point :math:`\\theta + e`.

        Call after the first ``backward()``; the original point is kept for
        :meth:`second_step`. A perturbation still pending (a first step without its second:
        a second pass that raised, a step interrupted) is undone first, as
        :meth:`undo_first_step` does, so the original point is never overwritten by a
        perturbed one. Where anything raises part way (a gradient that does not fit its
        parameter, ``KeyboardInterrupt``), the parameters already moved are put back and
        the error goes on: nothing is left perturbed.
        """
        self._perturb()
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def _perturb(self) -> Tensor:
        """:meth:`first_step`'s move; returns the gradient norm the perturbation was scaled by."""
        self.undo_first_step()  # a step interrupted between the phases leaves nothing behind
        grad_norm = self._grad_norm()
        try:
            for group in self.param_groups:
                scale = group["rho"] / (grad_norm + _EPS)
                if group["maximize"]:
                    scale = -scale
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    # kept before p moves: an exception from here on is undone with it
                    self.state[p]["old_p"] = p.detach().clone()
                    w, g = _real(p), _real(p.grad)
                    # formed in float32 at least and rounded once, by the add: rho / |g| is
                    # often below float16's normal range (5e-7 kept 3 significant bits
                    # there), and a 0-d scale on a GPU is cast to the operand's dtype
                    # (float32 and float64 parameters compute as before: the casts are no-ops)
                    wide = torch.promote_types(w.dtype, torch.float32)
                    ww = w.to(wide)
                    e_w = (ww * ww if group["adaptive"] else 1.0) \
                        * g.to(wide) * scale.to(device=w.device, dtype=wide)
                    w.add_(e_w)
        except BaseException:  # back to the point the step started from, then on
            self.undo_first_step()
            raise
        return grad_norm

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore the original point and let the base optimizer step with the current
        gradient (the one taken at the perturbed point).

        Called by itself (your own two passes), this is SAM's step, as :meth:`step` is:
        the step hooks fire around it as around :meth:`step` (torch's global ones, once, and
        this SAM's own, with ``args == (self, zero_grad)``), those registered on the base
        optimizer around its step inside; and an lr scheduler built on this SAM sees the
        step (no "``lr_scheduler.step()`` before ``optimizer.step()``" warning). Its pre
        hooks see the parameters at the perturbed point and the gradients taken there, the
        ones the base optimizer steps with once they are put back.
        """
        step_by_hand(self, type(self)._second_step_alone, zero_grad)

    def _second_step_alone(self, zero_grad: bool) -> None:
        self._second_step(zero_grad, lambda: step_without_global_hooks(self.base_optimizer))

    def _second_step(self, zero_grad: bool, base_step: Callable[[], Any]) -> None:
        if not self.undo_first_step():
            raise RuntimeError("SAM.second_step() called without first_step()")
        base_step()
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def undo_first_step(self) -> bool:
        """Put every parameter :meth:`first_step` moved back at its original point, without
        stepping (for a second pass that failed); whether any had moved."""
        saved = [p for p, s in self.state.items() if "old_p" in s]
        for p in saved:
            p.copy_(self.state.pop(p)["old_p"])
        return bool(saved)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one SAM step; returns the loss at the current point.

        torch's global step hooks (``register_optimizer_step_pre_hook`` and ``..._post_hook``)
        fire once per step, around this SAM's; the hooks registered on the base optimizer
        itself still fire around its step
        (:func:`~optimlab.optim.base.step_without_global_hooks`).

        Args:
            closure (Callable): zeroes the gradients, computes the loss, calls
                ``backward()`` and returns the loss. It is evaluated twice; where the second
                evaluation raises, the parameters are put back where the step found them
                (nothing stepped) and the error goes on; so they are where anything in
                :meth:`first_step` raises.

        Raises:
            RuntimeError: without a closure; where the closure leaves no gradient, or
                its second evaluation leaves every gradient as the first left it (a closure
                that computes nothing, such as the one Lightning's manual optimization
                passes for ``opt.step()``, or a loss computed before the step returned
                again: SAM would step as its base optimizer alone; the parameters are put
                back and nothing is stepped). A closure that does its work and returns
                None steps (``step`` then returns None). For gradients you compute yourself, call
                :meth:`first_step` and :meth:`second_step` around your two passes.
        """
        if closure is None:
            raise RuntimeError(
                "SAM.step() needs a closure that zeroes the gradients, computes the loss, "
                "calls backward() and returns the loss (SAM evaluates it twice per step); "
                "or call first_step() and second_step() around your own two passes"
            )
        # a perturbation a failed earlier step left pending: undone before the first pass,
        # whose gradient must be taken at the original point
        self.undo_first_step()
        with torch.enable_grad():
            loss = closure()
        if not any(p.grad is not None for group in self.param_groups for p in group["params"]):
            raise RuntimeError(
                "SAM.step(): the closure left no gradient on any parameter: it must call "
                "backward() on the loss it returns (and the parameters must require grad)")
        marks = [(p, p.grad, None if p.grad is None else _version(p.grad))
                 for group in self.param_groups for p in group["params"]]
        grad_norm = self._perturb()
        try:
            with torch.enable_grad():
                closure()
        except BaseException:  # the second pass raised: back to the point it started from
            self.undo_first_step()
            raise
        if self._recomputed_nothing(marks, grad_norm):
            self.undo_first_step()
            raise RuntimeError(
                "SAM.step(): the closure's second evaluation left every gradient as its "
                f"first left it, so it recomputes nothing. {_CLOSURE_CONTRACT}, not return a "
                "loss computed before the step; or call first_step() and second_step() "
                "around your own two passes. Nothing was stepped: the parameters are back "
                "where the step found them")
        self._second_step(False, lambda: step_without_global_hooks(self.base_optimizer))
        return loss

    @torch.no_grad()
    def _recomputed_nothing(self, marks: list, grad_norm: Tensor) -> bool:
        """Whether the second pass of :meth:`step` left the gradients exactly as the first
        left them (``marks``: each parameter, its gradient and that gradient's version after
        the first pass), where the perturbation moved a parameter (with none moved, the
        first pass's gradients are those at the perturbed point).

        Every gradient must be the same tensor, with no in-place write counted on it
        (``backward()`` writes a new one or adds into it, either of which shows) and the
        same norm as the perturbation was scaled by: a write no version counter sees (a
        CUDA graph replayed into the gradients) changes it. Where anything cannot be told,
        the pass counts as recomputed: this refuses no closure that did its work."""
        for p, grad, version in marks:
            if p.grad is not grad or (grad is not None and (
                    version is None or _version(grad) != version)):
                return False
        try:
            if not torch.equal(self._grad_norm(original=True), grad_norm):
                return False
            return any(not torch.equal(state["old_p"], p)
                       for p, state in self.state.items() if "old_p" in state)
        except Exception:  # a comparison a tensor subclass does not take: not refused
            return False

    # -- state_dict ------------------------------------------------------------------------
    # The dicts are the base optimizer's, so torch.optim.Optimizer.state_dict and
    # load_state_dict are not called; these run the hooks registered on SAM
    # (register_state_dict_pre_hook and the three others) the way torch's do.
    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state_dict, tagged as SAM's (SAM keeps no state of its own
        between steps; the groups carry ``rho``/``adaptive``).

        The state_dict hooks registered on this SAM run as in ``torch.optim``: the pre
        hooks before anything is read, the post hooks on the finished dict (a post hook
        may return a replacement, which is what this returns).
        """
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        base = self.base_optimizer.state_dict()
        tag = {"optimizer": saved_name(self),
               "base_optimizer": saved_name(self.base_optimizer),
               "base": base.get("optimlab")}
        state_dict = {"state": base["state"], "param_groups": base["param_groups"],
                      "optimlab": tag}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict saved by :meth:`state_dict` (same base optimizer class).

        As in ``torch.optim``, the load_state_dict pre hooks registered on this SAM get a
        shallow copy of ``state_dict`` first (one may change it or return a replacement,
        which is then loaded), and the post hooks run once it is loaded.
        """
        check_state_dict(state_dict)
        state_dict = state_dict.copy()  # shallow, as torch's: the pre hooks may edit it
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        tag = state_dict.get("optimlab")
        check_saved_name(self, tag)
        base_name = tag.get("base_optimizer") if tag is not None else None
        if base_name is not None and not takes_saved_name(self.base_optimizer, base_name):
            raise ValueError(
                f"this state_dict was saved by SAM over {base_name}, "
                f"this SAM wraps {saved_name(self.base_optimizer)}"
            )
        if "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("not an optimizer state_dict: missing 'state' or 'param_groups'")
        base = {"state": state_dict["state"], "param_groups": state_dict["param_groups"]}
        if tag is not None and tag.get("base") is not None:
            base["optimlab"] = tag["base"]
        self.base_optimizer.load_state_dict(base)
        self.param_groups = self.base_optimizer.param_groups
        self.state.clear()
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)
