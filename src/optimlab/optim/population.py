"""One optimizer over a population of members: parameters with a leading member axis.

A population of K models (or K points on a landscape) is a list of tensors of shape
``[K, ...]``. :class:`Population` steps all K members at once with the optimizer's own rule,
each member with its own hyperparameters::

    pop = Population("adam", [W, b], {"lr": [1e-3, 3e-3, 1e-2]})   # K = 3 learning rates
    loss(W, b).sum().backward()                                     # per-member losses
    pop.step()

Member k follows exactly the path the plain optimizer takes with member k's hyperparameters
(``tests/optim/test_population.py``). The rule runs through the one
:class:`~optimlab.optim.engine.Engine`, batched as the class's
:class:`~optimlab.optim.capabilities.Capabilities` record says (``batching``):

* ``"elementwise"``: the rule is called once on the batched tensors, numeric
  hyperparameters becoming tensors of shape ``[K, 1, ...]`` (most optimizers);
* ``"vmap"``: rules that reduce over a whole tensor (LAMB's trust ratio, Muon's
  orthogonalisation) are mapped over the member axis with ``torch.func.vmap``;
* ``"member"``: one ordinary optimizer instance per member, on copies of its slices (the
  wrappers SAM and Lookahead, Adafactor, the schedule-free ones, LBFGS). Correct, but not
  batched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from . import kernels
from .base import RuleOptimizer, python_numbers
from .capabilities import DRIVER_FLAGS, Capabilities
from .engine import Engine
from .registry import checked_defaults, create, resolve

__all__ = ["Population", "is_per_member"]


def is_per_member(value: Any) -> bool:
    """Whether a hyperparameter's ``value`` gives each member its own (a list or a 1-D
    tensor), rather than one value for all (a number, or a tuple such as ``betas``)."""
    return isinstance(value, list) or (isinstance(value, Tensor) and value.dim() == 1)


class Population:
    """Step K members of one optimizer at once.

    Args:
        name: a registry name (``"adam"``, ``"momentum"``, ...).
        params: tensors of shape ``[K, ...]`` (all with the same K); their ``.grad`` holds
            each member's gradient when :meth:`step` is called.
        hparams: hyperparameters. A ``list`` (or 1-D tensor or NumPy array) of length K gives
            one value per member; anything else (a number, a tuple such as ``betas``, a bool) is shared.
            Every member's values are validated by the optimizer's own constructor.
            ``fused`` chooses the path as the optimizer's own flag does: None (default)
            steps every member's slice of every tensor in one generated C call where the
            kernel can take them, False always takes the plain (broadcast or vmapped)
            path, True requires the C call and makes :meth:`step` raise where it cannot.
    """

    def __init__(self, name: str, params: Sequence[Tensor], hparams: dict | None = None) -> None:
        self.entry = resolve(name)
        self.cls = self.entry.cls
        self.params = list(params)
        if not self.params:
            raise ValueError("a population needs at least one parameter tensor")
        self.members = self.params[0].shape[0] if self.params[0].dim() else 0
        if self.members < 1 or any(p.dim() == 0 or p.shape[0] != self.members for p in self.params):
            raise ValueError("every parameter needs the same leading member axis (size >= 1)")
        # NumPy's scalars and arrays (``np.logspace(-4, -1, K)``) as Python numbers and lists
        hparams = {key: python_numbers(value) for key, value in (hparams or {}).items()}
        for key, value in hparams.items():
            if is_per_member(value) and len(value) != self.members:
                raise ValueError(f"{key} has {len(value)} values for {self.members} members")
        self.member_hparams = [
            {k: (v[i].item() if isinstance(v, Tensor) else v[i]) if is_per_member(v) else v
             for k, v in hparams.items()}
            for i in range(self.members)
        ]
        self.capabilities: Capabilities = self.entry.capabilities
        if self.capabilities.sparse_only:
            raise ValueError(f"{self.entry.name} takes sparse gradients only (nn.Embedding("
                             f"sparse=True)); races, the playground and populations give "
                             f"dense ones")
        # a switch is the same for every member (checked when the values are stacked)
        self.mode = self.capabilities.batching_for(self.member_hparams[0])
        if not issubclass(self.cls, RuleOptimizer):
            self.mode = "member"
        if self.mode == "member":
            # each member's own optimizer, which validates its hyperparameters
            self._leaves = [[p[i].detach().clone().requires_grad_() for p in self.params]
                            for i in range(self.members)]
            self._optimizers = [self._build(i, leaves) for i, leaves in enumerate(self._leaves)]
        else:
            # the constructor's own checks on each member's values, and the class's checks
            # on one member's shapes, without building any optimizer
            for p in self.params:
                problem = self.cls.param_problem(
                    torch.empty(p.shape[1:], dtype=p.dtype, device="meta"))
                if problem:
                    raise ValueError(problem)
            self.hparams = self._stack_hparams(
                [self._checked(i) for i in range(self.members)])
            self.state: list[dict] = [{} for _ in self.params]
            self.engine = Engine(self.cls.init, self.cls.update, self.capabilities,
                                 self.cls.__name__)
            self.maximize = bool(self.hparams.pop("maximize", False))
            #: ``fused`` as the optimizer takes it: None fuses what can be, False never,
            #: True requires it (the step raises where the kernel cannot take the members)
            self.fused = self.hparams.get("fused")
            #: the moments' compact form between steps (optimlab.optim.compact), or None
            self.state_precision = self.hparams.get("state_precision")
            for flag in DRIVER_FLAGS:
                self.hparams.pop(flag, None)
            self._shaped_cache: dict[int, dict] = {}
            self._rows_cache: dict[tuple, Tensor] = {}
            self._fused_refused = False
            self._plan, self._plan_key = None, None
            self._hp_version = 0

    # -- construction ------------------------------------------------------------------------
    def _build(self, index: int, params: list[Tensor]) -> torch.optim.Optimizer:
        try:
            return create(self.entry.name, params, **self.member_hparams[index])
        except (ValueError, TypeError) as err:
            raise type(err)(f"member {index}: {err}") from None

    def _checked(self, index: int) -> dict:
        """Member ``index``'s full hyperparameters, checked by the class's constructor."""
        try:
            return checked_defaults(self.entry.name, **self.member_hparams[index])
        except (ValueError, TypeError) as err:
            raise type(err)(f"member {index}: {err}") from None

    def _stack_hparams(self, defaults: list[dict]) -> dict:
        stacked = {}
        for key, first in defaults[0].items():
            values = [d[key] for d in defaults]
            if all(_same(v, first) for v in values):
                stacked[key] = first
            elif isinstance(first, bool) or isinstance(first, str) or first is None:
                raise ValueError(f"{key} must be the same for every member of a population "
                                 f"(it changes the algorithm), got {values}")
            elif isinstance(first, tuple):
                stacked[key] = tuple(self._column([v[j] for v in values])
                                     for j in range(len(first)))
            else:
                stacked[key] = self._column(values)
        return stacked

    def _column(self, values: list) -> Tensor:
        p = self.params[0]
        dtype = p.dtype if p.dtype.is_floating_point else torch.float64
        return torch.tensor([float(v) for v in values], dtype=dtype, device=p.device)

    @staticmethod
    def _shaped(hp: dict, dim: int) -> dict:
        """Per-member tensors reshaped to broadcast over a parameter with ``dim`` axes."""
        def reshape(v):
            if isinstance(v, Tensor):
                return v.reshape((-1,) + (1,) * (dim - 1))
            if isinstance(v, tuple):
                return tuple(reshape(x) for x in v)
            return v
        return {k: reshape(v) for k, v in hp.items()}

    # -- stepping ----------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None,
             grads: Sequence[Tensor | None] | None = None) -> Any:
        """Step every member.

        Args:
            closure: recomputes all members' gradients into ``.grad`` and returns the loss
                (SAM needs one: it evaluates the gradient twice per step).
            grads: the gradients, one per parameter, instead of reading ``.grad`` (saves
                a race setting attributes on every step).
        """
        if torch.is_grad_enabled():  # cheaper than a decorator on the hot path of a race
            with torch.no_grad():
                return self._step(closure, grads)
        return self._step(closure, grads)

    def _step(self, closure, grads) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if grads is None:
            grads = [p.grad for p in self.params]
        if self.mode == "member":
            self._step_members(closure, grads)
            return loss
        if self.fused is not False and self.capabilities.fusable \
                and self.state_precision is None and self._step_fused(grads):
            return loss
        if self.fused:
            raise RuntimeError(
                f"{self.cls.__name__}(fused=True) cannot step this population fused: it needs "
                "dense, contiguous CPU parameters of float32 or float64 with a gradient for "
                "each, and a C compiler; use fused=None to fall back to the plain path")
        vmapped = self.mode == "vmap"
        # vmap maps per-member values as [K] columns; broadcasting wants them [K, 1, ...]
        hps = [self.hparams if vmapped else self._hp(i, p) for i, p in enumerate(self.params)]
        self.engine.step_members(self.params, grads, self.state, hps, maximize=self.maximize,
                                 vmapped=vmapped, state_precision=self.state_precision)
        return loss

    def _hp(self, index: int, p: Tensor) -> dict:
        hp = self._shaped_cache.get(index)
        if hp is None:
            hp = self._shaped_cache[index] = self._shaped(self.hparams, p.dim())
        return hp

    def _step_fused(self, grads) -> bool:
        """Step every member with the fused kernel; False if it cannot (the plain path runs).

        Each member's slice of each stacked parameter is one tensor of the kernel, with its
        own row of hyperparameters (see :meth:`Engine.plan_members`). It needs dense CPU
        float32/float64 tensors (contiguous parameters, a gradient for each), and state
        without 0-d entries other than the step (NAdam's product is per member here).

        The plan is reused while the parameters, the state tensors and the hyperparameters
        stay the same, so a step costs a few microseconds of Python whatever the rule: a
        race's one-member populations step faster than on the plain path.
        """
        if self._fused_refused or any(g is None for g in grads):
            return False
        # a gradient laid out differently (vmapped autograd transposes some) is read from a
        # contiguous copy; parameters and state are written in place, so they must be
        grads = [g if g.is_contiguous() else g.contiguous() for g in grads]
        plan = self._plan
        if plan is None or self._plan_key != self.engine_key():
            for index, p in enumerate(self.params):
                if not self.state[index]:
                    self.state[index].update(self.cls.init(p, **self._hp(index, p)))
            plan = self.engine.plan_members(self.params, grads, self.state,
                                            _widest(self.hparams), self._slot_rows,
                                            self.maximize)
            if plan is None:
                self._fused_refused = self.engine.refused != {} or self._fused_refused
                return False
            self._plan, self._plan_key = plan, self.engine_key()
        return plan.run(self.params, grads, self.state)

    def engine_key(self) -> tuple:
        """What a fused plan depends on: the parameters' storage, the state tensors, the
        hyperparameters (changed by :meth:`set_hparam`)."""
        return (tuple(map(Tensor.data_ptr, self.params)),
                tuple(id(v) for state in self.state for v in state.values()), self._hp_version)

    def _slot_rows(self, kernel) -> Tensor:
        """Each member's values of the kernel's numeric hyperparameters, one row each."""
        key = tuple(kernel.slots)
        if key not in self._rows_cache:
            columns = []
            for slot in kernel.slots:
                value = kernels.slot_value(self.hparams, slot)
                columns.append(value.to(torch.float64).reshape(-1).expand(self.members)
                               if isinstance(value, Tensor) else
                               torch.full((self.members,), float(value), dtype=torch.float64))
            self._rows_cache[key] = torch.stack(columns, 1) if columns else \
                torch.zeros(self.members, 0, dtype=torch.float64)
        return self._rows_cache[key]

    def _step_members(self, closure, grads) -> None:
        if not self.capabilities.needs_closure:
            self._each_member(grads, lambda opt: opt.step())
            return
        if closure is None:
            raise RuntimeError(f"{self.entry.name} needs a closure that recomputes every "
                               "member's gradient (it evaluates the loss more than once per "
                               "step)")
        if self.capabilities.two_phase:  # SAM: one closure call serves every member
            self._each_member(grads, lambda opt: opt.first_step())
            with torch.enable_grad():
                closure()
            self._each_member([p.grad for p in self.params], lambda opt: opt.second_step())
            return
        for i, (leaves, opt) in enumerate(zip(self._leaves, self._optimizers)):
            opt.step(self._member_closure(i, leaves, closure))
            for leaf, p in zip(leaves, self.params):
                p[i].copy_(leaf)

    def _member_closure(self, index: int, leaves: list[Tensor], closure: Callable) -> Callable:
        """Member ``index``'s closure for its own optimizer (LBFGS): the population's closure
        evaluated with the member's current point in its rows, the member's gradient and
        loss taken from what it returns (every member's loss, shape ``[K]``). Each call
        evaluates every member, which is correct but not batched."""
        def member() -> Tensor:
            with torch.no_grad():  # the optimizer calls this with gradients enabled
                for leaf, p in zip(leaves, self.params):
                    p[index].copy_(leaf)
            with torch.enable_grad():
                losses = closure()
            if not isinstance(losses, Tensor) or losses.shape != (self.members,):
                raise RuntimeError(f"{self.entry.name} in a population needs a closure that "
                                   f"returns every member's loss as a tensor of shape "
                                   f"[{self.members}], got {losses!r:.80}")
            for leaf, p in zip(leaves, self.params):
                leaf.grad = None if p.grad is None else p.grad[index].clone()
            return losses[index].detach()
        return member

    def _each_member(self, grads, action: Callable[[torch.optim.Optimizer], Any]) -> None:
        for i, (leaves, opt) in enumerate(zip(self._leaves, self._optimizers)):
            for leaf, g in zip(leaves, grads):
                leaf.grad = None if g is None else g[i].clone()
            action(opt)
            for leaf, p in zip(leaves, self.params):
                p[i].copy_(leaf)

    def set_hparam(self, name: str, value: Any) -> None:
        """Change a hyperparameter between steps (a schedule): one value, or one per member.

        In ``"member"`` mode the new value is written into each member optimizer's groups.
        """
        values = list(value) if is_per_member(value) else [value] * self.members
        if len(values) != self.members:
            raise ValueError(f"{name} has {len(values)} values for {self.members} members")
        if self.mode == "member":
            for opt, v in zip(self._optimizers, values):
                for group in opt.param_groups:
                    group[name] = v.item() if isinstance(v, Tensor) else v
            return
        if name not in self.hparams:
            raise ValueError(f"{self.entry.name} has no hyperparameter {name!r}")
        self.hparams[name] = self._column([float(v) for v in values]) \
            if is_per_member(value) else value
        self._shaped_cache.clear()
        self._rows_cache.clear()
        self._hp_version += 1

    def member_optimizer(self, index: int) -> torch.optim.Optimizer | None:
        """The per-member optimizer instance (``"member"`` mode only), else None."""
        return self._optimizers[index] if self.mode == "member" else None

    def __repr__(self) -> str:
        return f"Population({self.entry.name!r}, members={self.members}, mode={self.mode!r})"


def _widest(hparams: dict) -> dict:
    """One value per hyperparameter that is nonzero if any member's is (for a kernel's
    structure: a branch any member needs is kept; the members' own values are inputs)."""
    def widest(v):
        if isinstance(v, Tensor):
            return float(v.abs().max()) if v.numel() else 0.0
        if isinstance(v, tuple):
            return tuple(widest(x) for x in v)
        return v
    return {k: widest(v) for k, v in hparams.items()}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return isinstance(a, Tensor) and isinstance(b, Tensor) and torch.equal(a, b)
    return a == b
