"""Lookahead (Zhang et al. 2019): k fast steps forward, one step back."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..base import (
    TorchOptimizer,
    check_int,
    check_range,
    check_state_dict,
    optimizer_getstate,
    python_numbers,
    saved_name,
    step_without_global_hooks,
    takes_saved_name,
)
from ..capabilities import Capabilities
from .inner import check_inner, switch_mode

_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: k \text{ (sync period)}, \alpha \text{ (slow step size)},
            \text{an inner optimizer } \mathcal{A}, \theta_0, f(\theta)\\
       &\textbf{init}: \phi \leftarrow \theta_0 \text{ (slow weights)}\\
       &\textbf{for}\ t = 1, 2, \ldots\\
       &\quad \theta_t \leftarrow \mathcal{A}\text{.step}(\theta_{t-1},
            \nabla_\theta f_t(\theta_{t-1})) \quad \text{(fast weights)}\\
       &\quad \textbf{if}\ t \bmod k = 0:\\
       &\quad\quad \phi \leftarrow \phi + \alpha(\theta_t - \phi)\\
       &\quad\quad \theta_t \leftarrow \phi
       \end{aligned}
"""


class Lookahead(TorchOptimizer):
    __doc__ = rf"""Lookahead: wrap any optimizer; every ``k`` steps pull back towards slow weights.

    The inner optimizer takes ``k`` ordinary ("fast") steps; then the slow weights move a
    fraction :math:`\alpha` of the way to the fast weights, and the fast weights restart
    from there. This damps the oscillation of the inner optimizer at the cost of one extra
    parameter-sized buffer.
{_RULE}
    ``param_groups`` *is* the inner optimizer's list (so an lr scheduler attached to the
    Lookahead drives the inner optimizer), and ``defaults`` are (a copy of) the inner optimizer's.
    The inner optimizer must step on the gradient alone: one whose step needs a closure
    (:class:`~optimlab.SAM`, L-BFGS) or sparse gradients only (SparseAdam) is refused with a
    ``ValueError``; sparse gradients step through an inner optimizer that takes them beside
    dense ones (Adagrad, SGD). A closure given to :meth:`step` is optional, as for any such
    optimizer: it is handed to the inner optimizer's ``step``, which calls it once for the
    loss it returns.

    .. note::
       The slow weights start at the initial parameters (:math:`\phi_0 = \theta_0`, as in
       Algorithm 1 of the paper): they are taken at the first :meth:`step`, before the inner
       optimizer moves. Some implementations copy them at the first synchronisation
       instead, which skips the first pull-back. :meth:`state_dict` carries the inner
       optimizer's state, the slow weights and the step counter, so a resumed run is
       bit-identical to an uninterrupted one (several implementations save only the inner
       state and silently restart the cycle).

    :meth:`eval` and :meth:`train` forward to the inner optimizer where it has them (a
    schedule-free one: its parameters move between the gradient point :math:`y` and the
    average :math:`x`), and do nothing otherwise; the slow weights are left as they are.

    Args:
        optimizer (torch.optim.Optimizer): the inner optimizer instance.
        k (int, optional): synchronisation period, an integer :math:`\ge 1` (default: 5).
        alpha (float, optional): slow-weight step size in :math:`[0, 1]`; 1 gives the inner
            optimizer, 0 puts the parameters back to their starting values every ``k`` steps
            (default: 0.5).

    Reference: Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step
    back", NeurIPS 2019, https://arxiv.org/abs/1907.08610.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([1.5, -2.0], requires_grad=True)
        >>> opt = optimlab.Lookahead(optimlab.Adam([w], lr=0.1), k=5, alpha=0.5)
        >>> for _ in range(300):
        ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
        >>> bool(w.abs().max() < 0.05)
        True
    """

    #: one instance per member in a population
    #: sparse gradients step where the inner optimizer takes them (Adagrad, SGD): the slow
    #: weights are dense and pulled towards the parameters as they are
    capabilities = Capabilities(batching="member", wraps="inner", sparse=True)
    __getstate__ = optimizer_getstate

    # The inner optimizer is kept as ``_inner`` and read as that, never as ``optimizer``:
    # a proxy of this Lookahead whose class has a property ``optimizer`` of its own
    # (Lightning's LightningOptimizer, what ``self.optimizers()`` returns, gives the
    # optimizer it wraps: this Lookahead) would make the Lookahead its own inner optimizer.
    # ``k``, ``alpha`` and the step counter live in one dict (``_cycle``), which such a proxy
    # shares with the Lookahead (it copies or forwards the attributes), so the counter it
    # reads is the one the steps count, not the one the proxy was made with.
    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The inner optimizer: what this Lookahead steps through (also :attr:`wrapped`)."""
        return self._inner

    @optimizer.setter
    def optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self._inner = optimizer

    @property
    def k(self) -> int:
        """The synchronisation period: a synchronisation every ``k`` steps."""
        return self._cycle["k"]

    @k.setter
    def k(self, k: int) -> None:
        self._cycle["k"] = k

    @property
    def alpha(self) -> float | Tensor:
        """The slow-weight step size."""
        return self._cycle["alpha"]

    @alpha.setter
    def alpha(self, alpha: float | Tensor) -> None:
        self._cycle["alpha"] = alpha

    @property
    def la_steps(self) -> int:
        """The steps taken so far (a synchronisation after step ``la_steps`` where it is a
        multiple of ``k``)."""
        return self._cycle["steps"]

    @la_steps.setter
    def la_steps(self, steps: int) -> None:
        self._cycle["steps"] = steps

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a copy (``copy.deepcopy``, ``pickle``), one written by an earlier optimlab
        version too (which kept the inner optimizer, ``k``, ``alpha`` and ``la_steps`` as
        attributes of their own)."""
        state = dict(state)
        if "_inner" not in state and "optimizer" in state:
            state["_inner"] = state.pop("optimizer")
        if "_cycle" not in state and "k" in state:
            state["_cycle"] = {"k": state.pop("k"), "alpha": state.pop("alpha", 0.5),
                               "steps": state.pop("la_steps", 0)}
        super().__setstate__(state)

    @property
    def skipped_steps(self) -> int:
        """Steps skipped by the wrapped optimizer's non-finite guard (``skip_nonfinite=True``
        on it), as ``opt.skipped_steps`` counts them for any optimlab optimizer."""
        return getattr(self._inner, "skipped_steps", 0)

    @property
    def wrapped(self) -> torch.optim.Optimizer:
        """The inner optimizer (``optimizer``): what this Lookahead steps through."""
        return self._inner

    @classmethod
    def from_registry(cls, params, resolve: Callable, create: Callable, **kwargs) -> Lookahead:
        """Build from registry names: the ``inner`` optimizer (a name, default ``"adam"``) gets
        every keyword argument but ``k`` and ``alpha``."""
        inner = kwargs.pop("inner", "adam")
        own = {key: kwargs.pop(key) for key in ("k", "alpha") if key in kwargs}
        return cls(create(inner, params, **kwargs), **own)

    def __init__(self, optimizer: torch.optim.Optimizer, k: int = 5, alpha: float | Tensor = 0.5) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"Lookahead wraps an optimizer instance, got {type(optimizer).__name__}"
            )
        check_inner("Lookahead", type(optimizer),
                    closure="Lookahead is stepped without one (wrap an optimizer that steps on "
                            "the gradient alone)",
                    sparse="Lookahead's inner optimizer must step the dense gradients races "
                           "and populations give too (for sparse gradients wrap Adagrad or SGD, "
                           "which take both)")
        check_int("k", k, 1)
        check_range("alpha", alpha, 0.0, 1.0, high_open=False)
        self._inner = optimizer
        # a Fraction as its float: lerp_ takes no other
        self._cycle = {"k": k, "alpha": python_numbers(alpha), "steps": 0}
        # torch's constructor sets up hooks and state; the groups it would add are the inner
        # optimizer's, so adding is skipped and the inner list is then shared. The defaults
        # are a copy: torch's load_state_dict adds keys to ``self.defaults``.
        self._sharing = True
        super().__init__(optimizer.param_groups, dict(optimizer.defaults))
        self._sharing = False
        self.param_groups = optimizer.param_groups

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group to the inner optimizer (and so to this one)."""
        if getattr(self, "_sharing", False):
            return
        self._inner.add_param_group(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients through the inner optimizer (torch's ``zero_grad``)."""
        self._inner.zero_grad(set_to_none=set_to_none)

    # -- train / eval ----------------------------------------------------------------------
    def eval(self) -> None:
        """The inner optimizer's ``eval()`` where it has one (a schedule-free optimizer's
        parameters move to its average :math:`x`), else nothing.

        Only the parameters (the fast weights) move: the slow weights stay as they are, and
        the inner optimizer refuses a step until :meth:`train` (a refused step takes no slow
        weights at the evaluation point), so a synchronisation never reads :math:`x`."""
        switch_mode(self._inner, "eval")

    def train(self) -> None:
        """Undo :meth:`eval`: the inner optimizer's ``train()`` where it has one (a
        schedule-free optimizer's parameters back at its gradient point :math:`y`), else
        nothing. The slow weights are left as they are."""
        switch_mode(self._inner, "train")

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One inner step, and a synchronisation every ``k`` steps.

        torch's global step hooks (``register_optimizer_step_pre_hook`` and ``..._post_hook``)
        fire once per step, around this Lookahead's; the hooks registered on the inner
        optimizer itself still fire around its step
        (:func:`~optimlab.optim.base.step_without_global_hooks`).

        Args:
            closure (Callable, optional): handed to the inner optimizer's ``step``, which
                calls it once (to recompute the loss and gradients) and returns its loss. No
                inner optimizer here needs one: those whose step does (SAM, L-BFGS) are
                refused when the Lookahead is built.
        """
        taken = []  # slow weights taken now: dropped if the inner step raises
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if "slow_param" not in state:
                    state["slow_param"] = p.detach().clone(memory_format=torch.preserve_format)
                    taken.append(p)
        try:
            loss = step_without_global_hooks(self._inner) if closure is None else \
                step_without_global_hooks(self._inner, closure)
        except Exception:
            # a refused step (a schedule-free inner one in eval mode) takes no slow weights:
            # the first step that runs takes them where it starts
            for p in taken:
                del self.state[p]["slow_param"]
                if not self.state[p]:
                    del self.state[p]
            raise
        if (self.la_steps + 1) % self.k == 0:
            self._synchronize()
        # counted once the step (and its synchronisation) succeeded: a synchronisation
        # refused is taken again by the next step
        self.la_steps += 1
        return loss

    def _synchronize(self) -> None:
        """Pull the slow weights towards the fast ones and put the fast ones there: every
        pair is checked before any is written, so a refused synchronisation changes none."""
        pairs = []
        for i, p in enumerate(p for group in self.param_groups for p in group["params"]):
            slow: Tensor = self.state[p]["slow_param"]
            if slow.shape != p.shape or slow.dtype != p.dtype or slow.device != p.device:
                raise RuntimeError(
                    f"Lookahead cannot synchronise: parameter {i} (over all groups) is now of "
                    f"shape {tuple(p.shape)}, {p.dtype} on {p.device}, but its slow weight, "
                    f"taken at the first step, is of shape {tuple(slow.shape)}, {slow.dtype} "
                    f"on {slow.device} (was the model cast or moved after stepping? Move it "
                    "before building the optimizer, or load a state_dict into a new one). "
                    "Nothing was synchronised")
            pairs.append((slow, p))
        for slow, p in pairs:
            # slow + alpha (fast - slow), exact at alpha = 0 and alpha = 1; a complex pair as
            # its real view, as the inner optimizer steps it (torch's complex lerp rounds
            # unlike the real one: 1.4e-17 apart at alpha 0.8)
            fast = p.detach()
            if slow.is_complex():
                slow_real, fast_real = torch.view_as_real(slow), torch.view_as_real(fast)
                slow_real.lerp_(fast_real, self.alpha)
            else:
                slow.lerp_(fast, self.alpha)
            p.copy_(slow)

    # -- state_dict ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _own_hooks_held(self):
        """torch's own (de)serialisation without this optimizer's hooks: they run around the
        whole dict instead (see :meth:`state_dict`)."""
        names = ("_optimizer_state_dict_pre_hooks", "_optimizer_state_dict_post_hooks",
                 "_optimizer_load_state_dict_pre_hooks", "_optimizer_load_state_dict_post_hooks")
        held = {name: getattr(self, name) for name in names}
        for name, hooks in held.items():
            setattr(self, name, type(hooks)())
        try:
            yield held
        finally:
            for name, hooks in held.items():
                setattr(self, name, hooks)

    def state_dict(self) -> dict[str, Any]:
        """The inner optimizer's state_dict with this Lookahead's own entries beside its own.

        One flat dict, as ``torch.optim`` writes and ``torch.distributed.checkpoint`` keeps
        (it keeps ``state`` and ``param_groups`` alone, keyed by parameter name): each
        parameter's entry holds the inner optimizer's state and the slow weights
        (``lookahead_slow_param``), and each group the inner group's values and ``k``,
        ``alpha`` and the step counter (``lookahead_k``, ``lookahead_alpha``,
        ``lookahead_steps``). Over another Lookahead, this one's keys take an ``outer_``
        prefix. ``optimlab`` names the two optimizers and holds the inner one's own entry.

        The state_dict hooks registered on this Lookahead run as in ``torch.optim``, around
        the whole dict: a post hook sees every entry and may return a replacement.
        """
        with self._own_hooks_held() as hooks:
            for pre_hook in hooks["_optimizer_state_dict_pre_hooks"].values():
                pre_hook(self)
            own = super().state_dict()  # the slow weights, keyed as the inner state is
        inner = self._inner.state_dict()
        slow, keys = _own_keys(inner)
        state = {pid: dict(entries) for pid, entries in inner["state"].items()}
        for pid, entries in own["state"].items():
            state.setdefault(pid, {})[slow] = entries["slow_param"]
        values = {"k": self.k, "alpha": self.alpha, "steps": self.la_steps}
        groups = [{**group, **{keys[name]: value for name, value in values.items()}}
                  for group in inner["param_groups"]]
        state_dict = {"state": state, "param_groups": groups,
                      "optimlab": {"optimizer": saved_name(self),
                                   "inner_optimizer": saved_name(self._inner),
                                   "inner": inner.get("optimlab")}}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the inner optimizer, the slow weights and the step counter exactly.

        Takes what :meth:`state_dict` writes, with or without its ``optimlab`` entry (as
        ``torch.distributed.checkpoint`` gives it back), and the nested form that earlier
        optimlab versions wrote (``inner`` and ``lookahead`` entries). As in ``torch.optim``,
        the load pre hooks get a shallow copy of the whole dict first (one may edit it or
        return a replacement) and the post hooks run once all is loaded.
        """
        check_state_dict(state_dict)
        state_dict = state_dict.copy()
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        tag = state_dict.get("optimlab")
        nested = all(key in state_dict for key in _NESTED_KEYS)
        slow, keys = _saved_keys(state_dict["param_groups"])
        if (tag is not None and not takes_saved_name(self, tag.get("optimizer"))) or \
                (nested and tag is None) or (not nested and slow is None):
            saved_by = f"optimlab.{tag.get('optimizer')}" if tag else "another optimizer"
            raise ValueError(
                f"this state_dict was saved by {saved_by}, it cannot be loaded into "
                f"optimlab.{saved_name(self)} (load an inner optimizer's state with "
                f"lookahead.optimizer.load_state_dict)"
            )
        inner_name = tag.get("inner_optimizer") if tag is not None else None
        if inner_name is not None and not takes_saved_name(self._inner, inner_name):
            raise ValueError(
                f"this state_dict was saved by Lookahead over {inner_name}, "
                f"this Lookahead wraps {saved_name(self._inner)}"
            )
        if nested:
            inner, groups = state_dict["inner"], state_dict["param_groups"]
            slow_state = state_dict["state"]
            meta = state_dict["lookahead"]
            values = (meta["k"], meta["alpha"], meta["la_steps"])
        else:
            groups = [{key: value for key, value in group.items() if key not in keys.values()}
                      for group in state_dict["param_groups"]]
            inner_state, slow_state = {}, {}
            for pid, entries in state_dict["state"].items():
                rest = {key: value for key, value in entries.items() if key != slow}
                if rest:
                    inner_state[pid] = rest
                if slow in entries:
                    slow_state[pid] = {"slow_param": entries[slow]}
            inner = {"state": inner_state, "param_groups": groups}
            if tag is not None and tag.get("inner") is not None:
                inner["optimlab"] = tag["inner"]
            first = state_dict["param_groups"][0] if state_dict["param_groups"] else {}
            values = tuple(first.get(keys[k], default) for k, default in
                           (("k", self.k), ("alpha", self.alpha), ("steps", 0)))
        self._check_slow(groups, slow_state)
        self._inner.load_state_dict(inner)
        # torch's loader casts the slow weights to each parameter's dtype and device; it
        # rebuilds param_groups, so share the inner list again afterwards.
        with self._own_hooks_held():
            super().load_state_dict({"state": slow_state, "param_groups": groups})
        self.param_groups = self._inner.param_groups
        self.k, self.alpha, self.la_steps = values
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    def _check_slow(self, saved_groups: list, slow_state: dict) -> None:
        if len(saved_groups) != len(self.param_groups) or any(
            len(s["params"]) != len(g["params"]) for s, g in zip(saved_groups, self.param_groups)
        ):
            raise ValueError("the slow weights were saved for another model: "
                             "parameter groups or counts differ")
        for saved, group in zip(saved_groups, self.param_groups):
            for pid, p in zip(saved["params"], group["params"]):
                slow = slow_state.get(pid, {}).get("slow_param")
                if slow is not None and tuple(slow.shape) != tuple(p.shape):
                    raise ValueError(
                        f"slow weights of parameter {pid} have shape {tuple(slow.shape)} but "
                        f"the parameter has {tuple(p.shape)}: was this state_dict saved for "
                        f"another model?"
                    )

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, optimizer={self._inner!r})"


_SLOW, _GROUP_KEYS = "lookahead_slow_param", ("k", "alpha", "steps")
#: the top-level entries of the nested state_dict that earlier optimlab versions wrote
_NESTED_KEYS = ("inner", "lookahead")


def _with_prefix(prefix: str) -> tuple[str, dict[str, str]]:
    return prefix + _SLOW, {name: f"{prefix}lookahead_{name}" for name in _GROUP_KEYS}


def _own_keys(inner: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The keys a Lookahead over an optimizer with state_dict ``inner`` writes its entries
    under: ``lookahead_...``, with one more ``outer_`` prefix than any the inner dict uses
    (a Lookahead inside)."""
    taken = {key for group in inner["param_groups"] for key in group}
    prefix = ""
    while _with_prefix(prefix)[1]["steps"] in taken:
        prefix = "outer_" + prefix
    return _with_prefix(prefix)


def _saved_keys(groups: list) -> tuple[str | None, dict[str, str]]:
    """The outermost Lookahead's keys in saved ``groups`` (the longest ``outer_`` prefix), or
    None and the plain keys where no group has them."""
    steps = [key for group in groups[:1] for key in group
             if re.fullmatch(r"(outer_)*lookahead_steps", key)]
    if not steps:
        return None, _with_prefix("")[1]
    return _with_prefix(max(steps, key=len)[:-len("lookahead_steps")])
