"""One optimizer over a population of members: parameters with a leading member axis.

A population of K models (or K points on a landscape) is a list of tensors of shape
``[K, ...]``. :class:`Population` steps all K members at once with the optimizer's own rule,
each member with its own hyperparameters::

    pop = Population("adam", [W, b], {"lr": [1e-3, 3e-3, 1e-2]})   # K = 3 learning rates
    loss(W, b).sum().backward()                                     # per-member losses
    pop.step()

Member k follows the path the optimizer alone takes with member k's hyperparameters
(``tests/optim/test_population.py``), bit for bit where both compute alike: float64
parameters on either path (the fused one against the optimizer's fused step, the plain one
against ``fused=False``), float32 ones on the fused path (the CPU's default: the kernel reads
every member's values in float64, as it reads the optimizer's Python numbers; float32 and
float64 parameters side by side, one kernel each, and complex ones as their real view, as
the optimizer's own fused step takes them), and ``"member"`` mode in any dtype. Not bit
for bit: vmapped matrix products (Muon's Newton-Schulz runs in bfloat16, and torch's batched
bfloat16 ``addmm`` rounds unlike a single one, and each batch entry its own way: an audit's
float64 matrices of 4x3 to 5x5 at lr 0.02 were 0.9e-3 to 2.3e-3 off the optimizer alone
after 3 steps, a few percent of their movement, the size of bfloat16's own rounding there,
and identical members of a square matrix did not stay equal; ``batching="member"`` runs
each as the optimizer alone does), NAdam
and ASGD with ``fused=None`` (their populations always take the plain path, the optimizer
alone the fused one: their state holds one value per member, NAdam's ``mu_product``,
ASGD's ``eta`` and ``mu``, which the member kernel does not take; so in float32 a member
differs from the optimizer alone as the plain path does, below: ASGD's by 1.2e-7 (a
float32 spacing at 1) after 20 steps with per-member rates; and ``fused=True`` makes their
populations' step raise, saying so, though the optimizers alone take it), a per-member
value raised to the step on the plain path (per-member ``betas``' bias corrections
``1 - beta**t`` in Adam, AdamW, AdaBelief, LaProp, RAdam, Yogi, NAdam, AdEMAMix, LAMB: a
float64 tensor power there, a Python float power alone, which can differ in the last bit,
so in float64 such members stay within float64 rounding: a few float64 spacings of
max|p| a step, and it does not build up (an audit's Adam, 8 members: 6.0e-15 at step 10 with
max|p| 3.9, about 8 spacings, and 8.9e-16 at step 10,000);
per-member rates and the fused path are exact), and float32 on the plain path, whose rule
reads the values as float32 tensors and combines them (``lr / (1 - beta1**t)``) in float32
where the optimizer alone combines Python floats in float64 and rounds once. With values
far from 1 (rates, shared betas) that changes a step's coefficients by a few units of
2**-24 and its result by about one float32 spacing of the parameter, so after T steps
member k is within about ``T * 2**-23 * max|p|`` of the optimizer alone (measured after
100 steps, in float32 spacings of max|p|: Adam 1, Adamax 0.5, NAdam 13; SGD, RMSprop,
Adagrad, RAdam and Lion bit for bit). A per-member beta close to 1 loses more: its column
holds float32(beta), off by up to half a float32 spacing, 2**-25, so ``1 - beta`` (exact
from float32(beta)) is off by up to ``rho = 2**-25 / (1 - beta)`` relative, and so are
``1 - beta**t`` and the state the rule averages with them (a second moment, RMSprop's
``square_avg``): 3e-5 for beta 0.999, 3e-4 for 0.9999, 3e-3 for 0.99999, where the
optimizer alone rounds ``1 - beta`` once from float64 (2**-24 relative). Each step's
change is then off by up to about ``rho`` of itself, the same way every step, so after T
steps member k is within ``T * (2**-23 * max|p| + rho * max|step|)`` of the optimizer
alone, ``rho`` for the per-member beta closest to 1 and ``max|step|`` the largest change
of one step (measured after 20 steps: RMSprop with alpha 0.99999 and 0.9999, 0.012 against
that bound's 0.19 and 290 times ``T * 2**-23 * max|p|``; alpha 0.999 and 0.99, 1.1e-5
against 2.0e-4 and 1.3 times; Adadelta with rho 0.99999, 2.2e-3 against 0.05). Shared
betas reach the rule as Python numbers, as alone; the fused path reads the columns in
float64 and is exact. bfloat16 and float16
parameters step in float32 (a bfloat16 beta2 of 0.999 would be 1.0), their state kept in
their own dtype. Hyperparameters are kept as float64 columns (:attr:`Population.hparams`);
each parameter reads a copy in its step's dtype, made when they are set. The rule runs
through the one :class:`~optimlab.optim.engine.Engine`, batched as the class's
:class:`~optimlab.optim.capabilities.Capabilities` record says (``batching``):

* ``"elementwise"``: the rule is called once on the batched tensors, numeric
  hyperparameters becoming tensors of shape ``[K, 1, ...]`` (most optimizers);
* ``"vmap"``: rules that reduce over a whole tensor (LAMB's trust ratio, Muon's
  orthogonalisation) are mapped over the member axis with ``torch.func.vmap``. A rule
  whose class says ``"elementwise"`` (the default of a ``Capabilities`` record, as a
  registered optimizer of your own has it) but whose ``update`` reduces over a tensor (a
  norm, a sum, a mean, a max: any operation that is not elementwise) is mapped so too: on
  the stacked tensor the reduction would take every member's values at once. The
  population sees it in one step of the rule on small stand-ins when it is built
  (:meth:`Population._look_at_rule`; cached per class), and refuses, with
  ``ValueError``, a rule vmap cannot run (one that calls ``.item()``) or whose ``init``
  reduces: declare ``Capabilities(batching="member")`` for such a rule. The built-ins
  declare their batching by hand and keep it;
* ``"member"``: one ordinary optimizer instance per member, on views of its rows (copies,
  refreshed at every step, where a row is not contiguous), so writes to the stacked
  parameters between steps count (the wrappers SAM and Lookahead, Adafactor, the
  schedule-free ones, LBFGS). Correct, but not batched. A member whose step raises does
  not stop the others: :meth:`Population.step` steps every member, then raises naming
  those that failed.

:meth:`Population.state_dict` and :meth:`Population.load_state_dict` checkpoint a population
(its state and each member's hyperparameters; the parameters are saved as the model's): a
population built alike and loaded steps on bit for bit as the original would have.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from . import kernels
from .base import RuleOptimizer, check_int, python_numbers
from .capabilities import DENSE_HERE, DRIVER_FLAGS, SPARSE_ONLY, Capabilities
from .engine import Engine, compute_dtype, real
from .probe import first_of_each_kind, kind, rule_traits, stand_in
from .registry import checked_defaults, create, probe, resolve
from .rng import keeping_rng

__all__ = ["Population", "is_per_member", "has_eval_mode"]


def is_per_member(value: Any) -> bool:
    """Whether a hyperparameter's ``value`` gives each member its own (a list or a 1-D
    tensor), rather than one value for all (a number, a 0-d tensor, or a tuple such as
    ``betas``)."""
    return isinstance(value, list) or (isinstance(value, Tensor) and value.dim() == 1)


def has_eval_mode(optimizer: Any) -> bool:
    """Whether ``optimizer`` evaluates elsewhere than it takes gradients and switches with
    ``eval()`` and ``train()`` (the schedule-free ones, and a :class:`Population`): what
    the training lab and the races call around an evaluation.

    A wrapper (its class's capability record names what it ``wraps``: Lookahead, SAM) has
    ``eval()`` and ``train()`` that forward to the optimizer it wraps (its ``wrapped``), so
    it has an eval mode where that optimizer has one (Lookahead over ScheduleFreeAdamW),
    not otherwise (Lookahead over Adam)."""
    if not (callable(getattr(optimizer, "eval", None))
            and callable(getattr(optimizer, "train", None))):
        return False
    caps = getattr(type(optimizer), "capabilities", None)
    if isinstance(caps, Capabilities) and caps.wrapper:
        return has_eval_mode(getattr(optimizer, "wrapped", None))
    return True


class Population:
    """Step K members of one optimizer at once.

    Args:
        name: a registry name (``"adam"``, ``"momentum"``, ...).
        params: a list of tensors of shape ``[K, ...]`` (all with the same K), floating point
            or complex; their ``.grad`` holds each member's gradient when :meth:`step` is
            called.
        hparams: a dict of hyperparameters. A ``list`` (or 1-D tensor or NumPy array) of
            length K gives one value per member (``betas`` as a list of pairs); anything
            else (a number, a 0-d tensor or, where K is not 1, any tensor of one element, a
            tuple such as ``betas``, a bool) is shared. ``betas=[0.9, 0.999]`` is a value
            per member: give ``(0.9, 0.999)`` for one all members share.
            Every member's values are validated by the optimizer's own constructor; a switch
            (a bool, a string, an integer such as Muon's ``ns_steps``) must be the same for
            every member, and so must the numbers a rule reads as Python values (the
            class's ``Capabilities.shared``: Muon's ``ns_coefficients``), except in
            ``"member"`` mode, where each member has its own optimizer.
            ``fused`` chooses the path as the optimizer's own flag does: None (default)
            steps every member's slice of every tensor in one generated C call where the
            kernel can take them, False always takes the plain (broadcast or vmapped)
            path, True requires the C call and makes :meth:`step` raise, saying why, where it
            cannot (a first step that creates a state buffer, SGD's momentum, runs on the
            plain path). ``skip_nonfinite=True`` works in ``"member"`` mode only: there
            each member's optimizer skips its own step when its gradient holds a non-finite
            value, the others step, and :attr:`skipped_steps` counts each member's skips;
            the batched modes refuse it (the members share one step counter).

    The mode (:attr:`mode`) is the class's ``Capabilities.batching``, except that a rule
    said to be ``"elementwise"`` whose ``update`` reduces over a tensor (a norm, a sum, a
    mean, a max, ...: anything not elementwise, seen in one probe step when the population
    is built) runs in ``"vmap"`` mode, each member's reduction over its own values; a
    population of such a rule that vmap cannot run (``.item()``), or whose ``init``
    reduces, is refused with ``ValueError`` (declare ``Capabilities(batching="member")``).
    """

    #: rebuilt after a copy (``copy.deepcopy``, ``pickle``): the engine and the fused plan,
    #: which holds raw addresses and ctypes objects (as optimlab's optimizers leave their
    #: engine out, :data:`optimlab.optim.base.NOT_COPIED`)
    _NOT_COPIED = frozenset({"engine", "_plan", "_plan_key"})

    def __init__(self, name: str, params: Iterable[Tensor], hparams: dict | None = None) -> None:
        self.entry = resolve(name)
        self.cls = self.entry.cls
        if isinstance(params, Tensor):
            raise TypeError(f"params must be a list of tensors of shape [K, ...], got one tensor "
                            f"of shape {tuple(params.shape)}; pass [tensor]")
        self.params = list(params)
        if not self.params:
            raise ValueError("a population needs at least one parameter tensor")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor):
                raise TypeError(f"parameter {i} must be a tensor of shape [K, ...], got "
                                f"{type(p).__name__}")
            if not (p.is_floating_point() or p.is_complex()):
                raise TypeError(f"parameter {i} is {p.dtype}; a population steps floating-point "
                                "or complex parameters")
        self.members = self.params[0].shape[0] if self.params[0].dim() else 0
        for i, p in enumerate(self.params):
            if p.dim() == 0 or p.shape[0] < 1 or p.shape[0] != self.members:
                raise ValueError(f"every parameter needs the same leading member axis (size >= 1):"
                                 f" parameter {i} has shape {tuple(p.shape)}"
                                 + (f", parameter 0 {tuple(self.params[0].shape)}" if i else ""))
        if hparams is not None and not isinstance(hparams, Mapping):
            raise TypeError(f"hparams must be a dict of hyperparameters, got "
                            f"{type(hparams).__name__}")
        # NumPy's scalars and arrays (``np.logspace(-4, -1, K)``) as Python numbers and lists
        hparams = {key: python_numbers(value) for key, value in (hparams or {}).items()}
        columns = {key: self._member_values(key, value) for key, value in hparams.items()}
        #: the hyperparameters as given, for the hint of a refused member value
        self._given = hparams
        self.member_hparams = [{k: v[i] for k, v in columns.items()}
                               for i in range(self.members)]
        self.capabilities: Capabilities = self.entry.capabilities
        if self.capabilities.sparse_only:
            raise ValueError(f"{self.entry.name} {SPARSE_ONLY}; {DENSE_HERE}")
        # a switch is the same for every member (checked when the values are stacked)
        self.mode = self.capabilities.batching_for(self.member_hparams[0])
        if not issubclass(self.cls, RuleOptimizer):
            self.mode = "member"
        else:
            # the class's checks on one member's shapes (complex ones included)
            for i, p in enumerate(self.params):
                problem = self.cls.param_problem(
                    torch.empty(p.shape[1:], dtype=p.dtype, device="meta"))
                if problem:
                    raise ValueError(f"parameter {i}: {problem}")
        if self.mode == "member":
            # each member's own optimizer, which validates its hyperparameters, over views of
            # the member's rows, so a write to the stacked parameters between steps counts
            # (rows that are not contiguous: copies, refreshed at every step)
            self._leaves = [[_row(p, i) for p in self.params] for i in range(self.members)]
            self._copied = [j for j, p in enumerate(self.params) if not p[0].is_contiguous()]
            self._rows_at = tuple(map(Tensor.data_ptr, self.params))
            self._optimizers = [self._build(i, leaves, given=hparams)
                                for i, leaves in enumerate(self._leaves)]
            self._plan = None
            return
        # the constructor's own checks on each member's values, without building any optimizer
        self._defaults = self._checked_all(self.member_hparams, hparams)
        self.hparams = self._stack_hparams(self._defaults)
        if any(hp.get("skip_nonfinite") for hp in self.member_hparams):  # not in defaults
            raise ValueError(f"skip_nonfinite=True is not supported by a {self.mode!r} "
                             f"population of {self.cls.__name__}: its members share one step "
                             "counter, so one cannot skip a step alone; check the gradients "
                             "before step()")
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
        self._rows_cache: dict[tuple, Tensor] = {}
        #: for each name set_hparam changed last: which members share every other value
        self._rest_ids: dict[str, list] = {}
        self._fused_refused: str | None = None
        self._plan, self._plan_key = None, None
        self._hp_version = 0
        self._refresh()
        #: the numeric hyperparameters whose zero leaves state entries as they are (SGD's
        #: ``momentum``: its buffer), each with those entries (see :meth:`_look_at_rule`)
        self._gates: dict[str, dict[int | None, frozenset[str]]] = {}
        self._look_at_rule()

    # -- construction ------------------------------------------------------------------------
    def _member_values(self, key: str, value: Any) -> list:
        """Each member's value of hyperparameter ``key``: ``value`` split if it is per member.
        A tensor of one element is one value for every member where K is not 1 (as the
        optimizer alone takes ``lr=torch.tensor([0.01])``), a 0-d view of it."""
        if isinstance(value, Tensor) and value.numel() == 1 and self.members != 1:
            return [value.reshape(())] * self.members
        if not is_per_member(value):
            return [value] * self.members
        if len(value) != self.members:
            raise ValueError(f"{key} has {len(value)} values for {self.members} members"
                             + _tuple_hint(self.entry.name, {key: value}, key))
        if isinstance(value, Tensor):
            return [v.item() for v in value]
        return list(value)

    def _build(self, index: int, params: list[Tensor], hparams: dict | None = None,
               given: Mapping | None = None) -> torch.optim.Optimizer:
        try:
            return create(self.entry.name, params,
                          **(self.member_hparams[index] if hparams is None else hparams))
        except (ValueError, TypeError) as err:
            raise self._member_error(index, err, given) from None

    def _member_error(self, index: int, err: Exception, given: Mapping | None) -> Exception:
        """``err`` (a refusal of member ``index``'s values) naming the member, with the hint
        of :func:`_tuple_hint` on ``given`` (the values as the caller gave them; no hint
        where None)."""
        return type(err)(f"member {index}: {err}" + _tuple_hint(self.entry.name, given or {}, err))

    def _checked_all(self, member_hparams: list[dict], given: Mapping | None = None) -> list[dict]:
        """Each member's full hyperparameters, checked by the class's constructor (members
        with the same values checked once); ``given``: the values as the caller gave them,
        for a hint where a list was read as one value per member."""
        seen: dict = {}
        out = []
        for index, hp in enumerate(member_hparams):
            key = _key(hp)
            if key is None or key not in seen:
                try:
                    checked = checked_defaults(self.entry.name, **hp)
                except (ValueError, TypeError) as err:
                    raise self._member_error(index, err, given) from None
                if key is None:
                    out.append(checked)
                    continue
                seen[key] = checked
            out.append(dict(seen[key]))
        return out

    def _stack_hparams(self, defaults: list[dict]) -> dict:
        return {key: self._stack(key, [d[key] for d in defaults]) for key in defaults[0]}

    def _stack(self, key: str, values: list) -> Any:
        """One hyperparameter for every member: the value they share, or float64 columns."""
        first = values[0]
        if all(_same(v, first) for v in values):
            return tuple(first) if isinstance(first, list) else first
        if isinstance(first, (bool, str)) or first is None or self._integral(key, values):
            raise ValueError(f"{key} must be the same for every member of a population "
                             f"(it changes the algorithm), got {values}")
        if key in self.capabilities.shared:
            raise ValueError(f"{key} must be the same for every member of a population of "
                             f"{self.cls.__name__} (its rule reads it as Python numbers), got "
                             f"{values}")
        if isinstance(first, (tuple, list)):
            return tuple(self._column([v[j] for v in values]) for j in range(len(first)))
        return self._column(values)

    def _integral(self, key: str, values: list) -> bool:
        """Whether ``key`` is an integer hyperparameter (Muon's ``ns_steps``): integers the
        constructor refuses as floats (``weight_decay=[0, 1]`` are numbers)."""
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return False
        try:
            checked_defaults(self.entry.name, **{**self.member_hparams[0], key: float(values[0])})
        except (ValueError, TypeError):
            return True
        return False

    def _column(self, values: list) -> Tensor:
        """Per-member values as a float64 column (each parameter gets its own dtype's copy)."""
        return torch.tensor([float(v) for v in values], dtype=torch.float64,
                            device=self.params[0].device)

    def _refresh(self, names: Sequence[str] | None = None) -> None:
        """Each parameter's hyperparameters as its step reads them, made when they are set
        (``names``: those that changed): the float64 columns in the dtype its rule computes
        in (:func:`compute_dtype`), one copy per dtype, shaped ``[K, 1, ...]`` to broadcast
        over it (its real view's shape) or left as ``[K]`` columns for vmap."""
        if names is None:
            dtypes = [compute_dtype(p) for p in self.params]
            self._typed = {dtype: {} for dtype in dtypes}
            self._vmap_hps = [self._typed[dtype] for dtype in dtypes]
            self._shaped_hps = [{} for _ in self.params]
            self._dims = [real(p).dim() for p in self.params]
            names = list(self.hparams)
        for dtype, typed in self._typed.items():
            for name in names:
                typed[name] = _cast(self.hparams[name], dtype)
        for shaped, typed, dim in zip(self._shaped_hps, self._vmap_hps, self._dims):
            for name in names:
                shaped[name] = _shaped(typed[name], dim)
        self._rows_cache.clear()
        self._hp_version += 1

    def _look_at_rule(self) -> None:
        """Look at one step of the rule on stand-ins for the parameters, as the batched modes
        call it (:func:`~optimlab.optim.probe.rule_traits`, cached per class, switches and layout).

        A rule its class batches ``"elementwise"`` (the default of a
        :class:`~optimlab.optim.capabilities.Capabilities` record) that reduces over a
        tensor in its ``update`` (a norm, a sum, a mean, a max, a matrix product: any
        operation that is not elementwise) would reduce over every member's values at once
        on the stacked tensor: its members are mapped with vmap instead (``mode`` becomes
        ``"vmap"``), and a rule vmap cannot run is refused here (``ValueError``). So is an
        ``init`` that reduces: both modes call it on the stacked tensor. The built-ins
        declare their batching by hand and reduce where they say so, so their modes stay as
        declared (``tests/optim/test_population_batching.py``).

        A rule that draws random numbers (``torch.randn_like``) is refused in the batched
        modes too: one draw for the stacked members is not the draws each makes alone.

        It also keeps, for :meth:`set_hparam`, the numeric hyperparameters whose zero leaves
        state entries as they are (SGD's and RMSprop's ``momentum``: the momentum buffer),
        see :meth:`_check_gates`.
        """
        traits = rule_traits(self.cls, self.hparams, self.params, self.members,
                              self.capabilities.shared)
        if traits is None:  # the rule cannot step a stand-in: its own step will say why
            return
        self._gates = traits.gates
        name = self.cls.__name__
        if traits.init_reductions:
            raise ValueError(
                f"{name}'s init reduces over a tensor ({', '.join(traits.init_reductions)}), "
                f"which a batched population calls on the stacked members, so every member "
                f"would start from all members' values; declare Capabilities(batching="
                f"'member') to give each member an optimizer of its own")
        if traits.draws and self.mode != "member" and self.members > 1:
            raise ValueError(
                f"{name}'s rule draws random numbers ({', '.join(traits.draws)}), and a batched "
                f"population would draw them for every member in one call, which is not what "
                f"each member draws alone (nor what torch.func.vmap runs); declare "
                f"Capabilities(batching='member') to give each member an optimizer of its own")
        if self.mode != "elementwise" or not traits.reductions:
            return
        self.mode = "vmap"
        if self.members < 2:  # one member is never vmapped (Engine._vmapped)
            return
        try:
            for index in first_of_each_kind(self.params):
                weight = stand_in(kind(self.params[index]), self.members)
                with keeping_rng(weight.device), torch.no_grad():
                    self.engine.step_members([weight], [torch.full_like(weight, 0.5)], [{}],
                                             [self._vmap_hps[index]], maximize=self.maximize,
                                             vmapped=True)
        except Exception as err:  # noqa: BLE001 - any failure: the rule cannot be vmapped
            raise ValueError(
                f"{name}'s update reduces over a tensor ({', '.join(traits.reductions)}), so "
                f"a population maps its members with torch.func.vmap (on the stacked tensor "
                f"the reduction would take every member's values at once), and vmap cannot "
                f"run it: {type(err).__name__}: {err}. Declare Capabilities(batching="
                f"'member') to give each member an optimizer of its own") from err

    def _check_gates(self, name: str, old: list, new: list) -> None:
        """Refuse a member's ``name`` (a hyperparameter whose zero leaves state entries as
        they are, :attr:`_gates`) changing from 0 to nonzero once the population holds that
        state. The optimizer alone keeps no such entry while the value is 0 (SGD's momentum
        buffer stays None and starts fresh as the gradient at the first nonzero step;
        RMSprop built with momentum 0 has none and raises ``KeyError``) or keeps the one it
        had untouched (and resumes it); the population steps the stacked entry for every
        member whenever any member's value is nonzero, so the row of a member at 0 does not
        hold what it would alone, and its path would differ from here. Before the first step
        (no state yet), and where the entry is None for every parameter (SGD whose members
        all had momentum 0: each starts fresh, as alone), the change is taken."""
        if not any(self.state):
            return
        for part, entries in self._gates[name].items():
            label = name if part is None else f"{name}[{part}]"
            for index, (before, after) in enumerate(zip(old, new)):
                if part is not None:
                    before, after = _component(before, part), _component(after, part)
                if not (_is_zero(before) and not _is_zero(after)):
                    continue
                for entry in sorted(entries):
                    held = [state[entry] for state in self.state if state and entry in state]
                    if any(state and entry not in state for state in self.state):
                        raise ValueError(
                            f"member {index}: {label} cannot change from {before!r} to "
                            f"{after!r} in this population of {self.cls.__name__}: its state "
                            f"has no {entry!r} (built while {label} was 0 for every member), "
                            f"and the optimizer alone raises KeyError({entry!r}) at its next "
                            f"step after such a change; build a new Population with {label} "
                            "nonzero")
                    if any(isinstance(value, Tensor) for value in held):
                        raise ValueError(
                            f"member {index}: {label} cannot change from {before!r} to "
                            f"{after!r} in a population of {self.cls.__name__} "
                            f"({self.mode} batching) once it has stepped: while {label} is 0 the "
                            f"optimizer alone leaves its {entry!r} as it was (none, or the one "
                            f"it had) and starts or resumes it when {label} turns nonzero, "
                            f"but the population steps the members' stacked {entry!r} for "
                            f"every member, so this member's row is not what it would hold "
                            f"alone. Give the member a nonzero {label} from the start, or "
                            f"build a new Population from here")

    # -- stepping ----------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None,
             grads: Sequence[Tensor | None] | None = None) -> Any:
        """Step every member.

        In ``"member"`` mode each member's own optimizer steps, and one that raises does not
        stop the others: every member's step is tried, then the failures raise as one error
        naming the members that failed (``members 1, 3 of 4 failed to step (the others
        stepped): member 1: ...``, its ``failed_members`` the indices, chained from the
        first failure). It has the first failure's type where that type takes a message
        alone (a ``LinAlgError`` is still a ``LinAlgError``, so a ``RuntimeError`` handler
        still catches it), else it is that failure itself with the names as a note; with
        one member it is that member's own error, as the optimizer alone raises it. A member
        that failed is left where its optimizer left it (SAM's: no second phase after a
        failed first one; where the closure between SAM's phases raises, every member is
        put back where the step found it and the closure's error goes on). In the batched
        modes the members step together, one computation per parameter tensor.

        Args:
            closure: recomputes all members' gradients into ``.grad`` and returns the loss
                (SAM needs one: it evaluates the gradient twice per step).
            grads: the gradients, one per parameter and of its shape and dtype (or None),
                instead of reading ``.grad`` (saves a race setting attributes on every step).
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
        checked = grads is None  # autograd's gradients match their parameters
        if checked:
            for i, p in enumerate(self.params):
                if not (p.is_leaf or p.retains_grad):  # as torch.optim refuses one
                    raise ValueError(
                        f"parameter {i}: can't step a non-leaf Tensor from its .grad, which "
                        "autograd never fills: pass the tensor that requires grad (or "
                        ".detach().requires_grad_() it), or its gradients with step(grads=...)")
            grads = [p.grad for p in self.params]
            self._check_dense(grads)
        elif self._plan is None or len(grads) != len(self.params):
            self._check_grads(grads)
            checked = True
        # else the fused plan checks each gradient's shape and dtype as it runs (a race's
        # tiny steps would pay for checking twice)
        if self.mode == "member":
            self._step_members(closure, grads)
            return loss
        if self.fused is not False and self.capabilities.fusable \
                and self.state_precision is None:
            refusal = self._step_fused(grads)
            if refusal is True:
                return loss
            if not checked:
                self._check_grads(grads)
            if self.fused and refusal is not None:
                why = ("; the optimizer alone may fuse this state, a population cannot: the "
                       "member kernel takes each member's slice of a parameter and its "
                       "state's, with no 0-d state but the step and none of another shape "
                       "(ASGD's eta and mu, NAdam's mu_product: one value per member), so "
                       "populations of ASGD and NAdam always take the plain path"
                       ) if "state has" in refusal else ""
                raise RuntimeError(f"{self.cls.__name__}(fused=True) cannot step this population "
                                   f"fused: {refusal}{why}; use fused=None to take the plain path "
                                   "where the kernel cannot")
        vmapped = self.mode == "vmap"
        # vmap maps per-member values as [K] columns; broadcasting wants them [K, 1, ...]
        self.engine.step_members(self.params, grads, self.state,
                                 self._vmap_hps if vmapped else self._shaped_hps,
                                 maximize=self.maximize, vmapped=vmapped,
                                 state_precision=self.state_precision)
        return loss

    def _check_grads(self, grads: Sequence) -> None:
        """Refuse gradients passed to :meth:`step` that do not match the parameters (they
        would broadcast to every member, or be left out), or that are sparse."""
        if len(grads) != len(self.params):
            raise ValueError(f"step got {len(grads)} gradients for {len(self.params)} parameters")
        self._check_dense(grads)
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if g is not None and (not isinstance(g, Tensor) or g.shape != p.shape
                                  or g.dtype != p.dtype):
                got = (f"shape {tuple(g.shape)} and dtype {g.dtype}" if isinstance(g, Tensor)
                       else type(g).__name__)
                raise ValueError(f"gradient {i} has {got}, parameter {i} shape "
                                 f"{tuple(p.shape)} and dtype {p.dtype}")

    def _check_dense(self, grads: Sequence) -> None:
        """Refuse a sparse gradient before any member steps: every path steps dense
        gradients (the kernel, broadcasting, vmap, and the member rows each member's optimizer
        is given), and one met on the way failed with an internal error."""
        for i, g in enumerate(grads):
            if isinstance(g, Tensor) and g.layout is not torch.strided:
                raise RuntimeError(
                    f"Population steps dense gradients only; {self.cls.__name__} got a sparse "
                    f"gradient ({g.layout}) for parameter {i} of shape {tuple(g.shape)}. Give "
                    "it the dense gradient (grad.to_dense()), or step each member with an "
                    "optimizer of its own (SGD and Adagrad take sparse gradients)")

    def _step_fused(self, grads) -> bool | str | None:
        """Step every member with the fused kernel: True if it did; else the plain path runs,
        and this says why: None where the state is not ready yet (SGD's momentum buffer,
        made by the plain path's first step; a later step fuses), or the reason (a phrase).

        Each member's slice of each stacked parameter is one tensor of the kernel, with its
        own row of hyperparameters (see :meth:`Engine.plan_members`). It needs dense CPU
        float32/float64 tensors (contiguous parameters, a gradient for each; float32 and
        float64 parameters take a kernel each, complex ones step as their real view), and
        state without 0-d entries other than the step (NAdam's product is per member here).

        The plan is reused while the parameters, the state tensors and the hyperparameters
        stay the same, so a step costs a few microseconds of Python whatever the rule: a
        race's one-member populations step faster than on the plain path.
        """
        if self._fused_refused is not None:
            return self._fused_refused
        plan = self._plan
        if plan is None or self._plan_key != self.engine_key():
            missing = next((i for i, g in enumerate(grads) if not isinstance(g, Tensor)), None)
            if missing is not None:
                return f"parameter {missing} has no gradient"
            # before the hyperparameters' values are read for the kernel's structure: a
            # member's values on the meta device (a model built there) have none to read
            away = next((i for i, p in enumerate(self.params) if p.device.type != "cpu"), None)
            if away is not None:
                return f"parameter {away} is on {self.params[away].device}; the kernel runs on the CPU"
            # a gradient laid out differently (vmapped autograd transposes some) is read from
            # a contiguous copy; parameters and state are written in place, so they must be
            grads = [g if g.is_contiguous() else g.contiguous() for g in grads]
            for index, p in enumerate(self.params):
                if not self.state[index]:
                    self.state[index].update(self.cls.init(real(p), **self._shaped_hps[index]))
            try:
                plan = self.engine.plan_members(self.params, grads, self.state,
                                                _widest(self.hparams), self._slot_rows,
                                                self.maximize)
            except kernels.StateNotReady:
                return None
            if plan is None:
                if self.engine.refused:  # a kernel the machine cannot build: not retried
                    self._fused_refused = self.engine.member_refusal
                return self.engine.member_refusal
            self._plan, self._plan_key = plan, self.engine_key()
        else:
            if any(not isinstance(g, Tensor) for g in grads):
                return "a parameter has no gradient"
            # a sparse gradient (given to step() unchecked) is left for the plan to turn
            # down, and the caller's check then refuses it
            grads = [g if g.is_contiguous() or g.layout is not torch.strided else g.contiguous()
                     for g in grads]
        return True if plan.run(self.params, grads, self.state) else \
            "a gradient no longer matches its parameter (sparse, or another dtype or device)"

    def engine_key(self) -> tuple:
        """What a fused plan depends on: the parameters' storage, the state tensors and
        their storage, the hyperparameters (changed by :meth:`set_hparam`). The plan keeps raw
        addresses of the state, so an entry given new storage in place (``m.data =
        torch.zeros_like(m)``, ``m.set_(...)``) must make a new plan, as a replaced entry
        does: with the tensors' ids alone the kernel went on writing into the freed buffer."""
        values = [v for state in self.state for v in state.values()]
        return (tuple(map(Tensor.data_ptr, self.params)), tuple(map(id, values)),
                tuple(v.data_ptr() for v in values
                      if isinstance(v, Tensor) and v.layout is torch.strided),
                self._hp_version)

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
        """:meth:`step` in ``"member"`` mode: every member's optimizer steps, even where
        another's raises; then the failures raise as one error (:func:`_members_failed`)."""
        if tuple(map(Tensor.data_ptr, self.params)) != self._rows_at:
            self._rebind()
        if self.capabilities.needs_closure and closure is None:
            raise RuntimeError(f"{self.entry.name} needs a closure that recomputes every "
                               "member's gradient (it evaluates the loss more than once per "
                               "step)")
        failed: dict[int, Exception] = {}
        if not self.capabilities.needs_closure:
            self._each_member(grads, lambda i, opt: opt.step(), failed)
        elif self.capabilities.two_phase:  # SAM: one closure call serves every member
            try:
                self._each_member(grads, lambda i, opt: opt.first_step(), failed)
            except BaseException:  # KeyboardInterrupt in a member's first phase (which puts
                # that member back itself): the members before it are put back too
                self._each_member(None, lambda i, opt: opt.undo_first_step(), {})
                raise
            if len(failed) < self.members:
                try:
                    with torch.enable_grad():
                        closure()
                except BaseException:  # every member back where the step found it
                    self._each_member(None, lambda i, opt: opt.undo_first_step(), failed)
                    raise
                # a member whose first phase raised takes no second
                self._each_member([p.grad for p in self.params],
                                  lambda i, opt: opt.second_step(), failed)
        else:
            self._each_member(None, lambda i, opt: opt.step(
                self._member_closure(i, self._leaves[i], closure)), failed)
        if not failed:
            return
        first = failed[min(failed)]
        if self.members == 1:  # the optimizer's own error, as it raises it alone
            _tag(first, [0])
            raise first
        error = _members_failed(failed, self.members)
        if error is first:
            raise error
        raise error from first

    def _rebind(self) -> None:
        """The members' leaves made views of the parameters' rows again, after a parameter
        was given new storage (``p.data = ...``); the optimizers keep their leaves."""
        for i, leaves in enumerate(self._leaves):
            for leaf, p in zip(leaves, self.params):
                leaf.data = _row(p, i).detach()
        self._copied = [j for j, p in enumerate(self.params) if not p[0].is_contiguous()]
        self._rows_at = tuple(map(Tensor.data_ptr, self.params))

    def _copy_in(self, index: int, leaves: list[Tensor]) -> None:
        """Member ``index``'s rows into its leaves that are copies (the others are views)."""
        for j in self._copied:
            leaves[j].copy_(self.params[j][index])

    def _copy_out(self, index: int, leaves: list[Tensor]) -> None:
        for j in self._copied:
            self.params[j][index].copy_(leaves[j])

    def _member_closure(self, index: int, leaves: list[Tensor], closure: Callable) -> Callable:
        """Member ``index``'s closure for its own optimizer (LBFGS): the population's closure
        evaluated with the member's current point in its rows, the member's gradient and
        loss taken from what it returns (every member's loss, shape ``[K]``). Each call
        evaluates every member, which is correct but not batched."""
        def member() -> Tensor:
            with torch.no_grad():  # the optimizer calls this with gradients enabled
                self._copy_out(index, leaves)
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

    def _each_member(self, grads, action: Callable[[int, torch.optim.Optimizer], Any],
                     failed: dict[int, Exception]) -> None:
        """``action(index, optimizer)`` for every member not in ``failed``, its gradients
        (``grads``: the stacked ones, or None to leave them) and rows in place; an exception
        it raises is kept in ``failed`` and the next member goes on (its rows still copied
        back: a member's copies hold what its optimizer left, as views do)."""
        for i, (leaves, opt) in enumerate(zip(self._leaves, self._optimizers)):
            if i in failed:
                continue
            if grads is not None:
                for leaf, g in zip(leaves, grads):
                    leaf.grad = None if g is None else g[i].clone()
            self._copy_in(i, leaves)
            try:
                action(i, opt)
            except Exception as err:  # noqa: BLE001 - every member steps; raised after
                failed[i] = err
            finally:
                self._copy_out(i, leaves)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the parameters' gradients, as ``torch.optim.Optimizer.zero_grad`` does."""
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                if p.grad.grad_fn is not None:
                    p.grad.detach_()
                else:
                    p.grad.requires_grad_(False)
                p.grad.zero_()

    @property
    def skipped_steps(self) -> list[int]:
        """Each member's steps skipped for a non-finite gradient (``skip_nonfinite=True``,
        ``"member"`` mode only; the batched modes refuse it, so theirs are 0)."""
        if self.mode != "member":
            return [0] * self.members
        return [getattr(opt, "skipped_steps", 0) for opt in self._optimizers]

    def set_hparam(self, name: str, value: Any) -> None:
        """Change a hyperparameter between steps (a schedule): one value, or one per member.

        The values are checked as at construction (each member's by the optimizer's
        constructor); a switch (a bool, a string, None, an integer hyperparameter) cannot
        change, nor can the driver's flags (``maximize``, ``fused``, ...): build a new
        population for those. In ``"member"`` mode the new value is written into each member
        optimizer's groups. In the batched modes a member's value that gates state (SGD's
        and RMSprop's ``momentum``: the buffer exists and moves only while it is nonzero)
        cannot change from 0 to nonzero once the population holds that state
        (``ValueError``, :meth:`_check_gates`): the optimizer alone would start the buffer
        afresh, resume the one it kept, or (RMSprop) raise ``KeyError``, where the members'
        stacked buffer has been stepped for every member. Before the first step, and where
        every member's was 0 so far (SGD: no buffer yet), the change is taken, as alone.
        """
        value = python_numbers(value)
        values = self._member_values(name, value)
        if name in DRIVER_FLAGS:
            raise ValueError(f"{name} is set when the population is built; it cannot change "
                             "between steps")
        if self.mode == "member":
            self._set_member_hparam(name, values, value)
            return
        if name not in self.hparams:
            raise ValueError(f"{self.entry.name} has no hyperparameter {name!r}")
        rest = self._rest_ids.get(name)
        if rest is None:
            rest = _group_ids([{k: v for k, v in hp.items() if k != name}
                               for hp in self.member_hparams])
        try:
            checked = self._checked_values(name, values, rest)
        except (ValueError, TypeError) as err:
            hint = _tuple_hint(self.entry.name, {name: value}, err)
            if not hint:
                raise
            raise type(err)(f"{err}{hint}") from None
        if not _plain_number(self.hparams[name]) or not all(map(_plain_number, checked)):
            for i, (old, new) in enumerate(zip(self._defaults, checked)):
                _check_switch(i, name, old[name], new)
        if name in getattr(self, "_gates", ()):  # momentum: not 0 -> nonzero once stepped
            self._check_gates(name, [defaults[name] for defaults in self._defaults], checked)
        self.hparams[name] = self._stack(name, checked)
        for hp, defaults, v, new in zip(self.member_hparams, self._defaults, values, checked):
            hp[name], defaults[name] = v, new
        self._rest_ids = {name: rest}  # the other names' groups read this one's values
        self._refresh([name])

    def _checked_values(self, name: str, values: list, rest: list) -> list:
        """Each member's new value of ``name``, checked as construction checks it.

        Members whose other values are the same (the same id in ``rest``) are checked
        together: where their new values are finite floats, only the smallest and the
        largest. A constructor's check of one float, the others fixed, accepts an interval
        (``check_range``; ``nesterov`` needs ``momentum > 0``), so the floats between pass
        where both ends do, and are kept as given where the check kept both ends as given.
        An integer (Muon's ``ns_steps``, where 2.5 between 1 and 5 is no value) and
        anything else is checked alone. A schedule sets 64 members' rates on every step:
        2 checks of about 10 us instead of 64.
        """
        checked: list = [_UNSEEN] * len(values)
        groups: dict = {}
        for i, v in enumerate(values):
            if rest[i] is not None and type(v) is float and math.isfinite(v):
                groups.setdefault(rest[i], []).append(i)
            else:
                checked[i] = self._checked_value(i, name, v)
        for members in groups.values():
            ends = {min(members, key=values.__getitem__), max(members, key=values.__getitem__)}
            kept = True
            for i in ends:
                checked[i] = self._checked_value(i, name, values[i])
                kept = kept and type(checked[i]) is type(values[i]) and checked[i] == values[i]
            for i in members:
                if checked[i] is _UNSEEN:
                    checked[i] = values[i] if kept else self._checked_value(i, name, values[i])
        return checked

    def _checked_value(self, index: int, name: str, value: Any) -> Any:
        """Member ``index``'s ``name`` set to ``value``, as its constructor checks it."""
        try:
            return checked_defaults(self.entry.name,
                                    **{**self.member_hparams[index], name: value})[name]
        except (ValueError, TypeError) as err:
            raise type(err)(f"member {index}: {err}") from None

    def _set_member_hparam(self, name: str, values: list, given: Any = None) -> None:
        groups = self._optimizers[0].param_groups[0]
        if name not in groups or name == "params" or name in self.capabilities.running:
            raise ValueError(f"{self.entry.name} has no hyperparameter {name!r} in its param "
                             "groups (what can change between steps)")
        for i, (opt, v) in enumerate(zip(self._optimizers, values)):
            _check_switch(i, name, opt.param_groups[0][name], v)
        member_hparams = [{**hp, name: v} for hp, v in zip(self.member_hparams, values)]
        given = {**self._given, name: given}
        if issubclass(self.cls, RuleOptimizer):
            self._checked_all(member_hparams, given)
        else:  # a wrapper: its constructor checks (building a throwaway instance)
            for i, hp in enumerate(member_hparams):
                self._build(i, self._leaves[i], hp, given)
        self.member_hparams = member_hparams
        for opt, v in zip(self._optimizers, values):
            for group in opt.param_groups:
                group[name] = v

    def member_optimizer(self, index: int) -> torch.optim.Optimizer | None:
        """The per-member optimizer instance (``"member"`` mode only), else None.

        ``index`` is a member's, 0 to ``members - 1`` (ValueError otherwise, in every mode: a
        negative one read from the end, and one past the end raised ``IndexError``)."""
        check_int("index", index, 0, self.members - 1)
        return self._optimizers[index] if self.mode == "member" else None

    # -- train / eval ------------------------------------------------------------------------
    @torch.no_grad()
    def eval(self) -> None:
        """Move every member whose optimizer evaluates elsewhere than it takes gradients to
        that point: a schedule-free optimizer's average :math:`x` (its ``eval()``), as its
        users do before evaluating. A no-op for every other optimizer."""
        self._switch("eval")

    @torch.no_grad()
    def train(self) -> None:
        """Undo :meth:`eval`: the schedule-free members back at their gradient point
        :math:`y` (their ``train()``), ready to step. A no-op for every other optimizer."""
        self._switch("train")

    def _switch(self, mode: str) -> None:
        if self.mode != "member":
            return
        if tuple(map(Tensor.data_ptr, self.params)) != self._rows_at:
            self._rebind()
        for i, (leaves, opt) in enumerate(zip(self._leaves, self._optimizers)):
            if has_eval_mode(opt):
                self._copy_in(i, leaves)
                getattr(opt, mode)()
                self._copy_out(i, leaves)

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The population's state as plain tensors and Python values, for ``torch.save``.

        Holds the registry ``name``, the ``mode``, the number of ``members`` (K) and of
        ``params``, each member's hyperparameters (``member_hparams``, as given or as
        :meth:`set_hparam` last set them) and ``skipped_steps`` (informative: a member
        optimizer's own state_dict carries its count); in the batched modes the
        per-parameter ``state`` (a list of dicts), in ``"member"`` mode each member
        optimizer's own ``state_dict()`` (``member_states``). Every tensor is a copy: later
        steps, which write the live buffers in place, leave it as it was.
        """
        sd: dict[str, Any] = {"name": self.entry.name, "mode": self.mode, "members": self.members,
                              "params": len(self.params),
                              "member_hparams": _cloned(self.member_hparams),
                              "skipped_steps": list(self.skipped_steps)}
        if self.mode == "member":
            sd["member_states"] = [_cloned(opt.state_dict()) for opt in self._optimizers]
        else:
            sd["state"] = _cloned(self.state)
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved, into a population built with the same
        name, parameter shapes and number of members (the parameters' values are not part
        of it: save and restore them as the model's).

        Everything is checked before anything changes, so a load that raises leaves the
        population as it was: the name, mode, K and number of parameters; in the batched
        modes each state tensor (0-d, or of the shape and dtype of its parameter's real
        view, or of the shape and dtype the rule gives that key after a step with the
        saved hyperparameters: one value per member, ``[K, 1, ...]``, for ASGD's ``eta``
        with per-member rates or NAdam's ``mu_product`` with per-member
        ``momentum_decay``; with ``state_precision``, compact moments with the member axis
        first; a key this population already holds must keep its shape and dtype); in
        ``"member"`` mode each member's parameter count and the shape and dtype of the state
        it already holds; and the hyperparameters, as construction checks them (a switch such as
        ``amsgrad``, ``fused`` or ``maximize`` cannot change). The tensors are copied (onto
        the parameters' device), and a cached fused plan is dropped: the next step rebuilds
        it.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        missing = [k for k in ("name", "mode", "members", "params", "member_hparams")
                   if k not in state_dict]
        if missing:
            raise ValueError(f"not a Population state_dict: it has no {', '.join(missing)}")
        for key, mine in (("name", self.entry.name), ("mode", self.mode),
                          ("members", self.members), ("params", len(self.params))):
            if state_dict[key] != mine:
                raise ValueError(f"state_dict has {key}={state_dict[key]!r}, this population "
                                 f"{mine!r}: load it into a Population({state_dict['name']!r}, ...) "
                                 f"with the same parameter shapes and number of members")
        member_hparams = _cloned(list(state_dict["member_hparams"]))
        if len(member_hparams) != self.members:
            raise ValueError(f"state_dict has hyperparameters for {len(member_hparams)} members, "
                             f"this population {self.members}")
        if self.mode == "member":
            self._load_members(state_dict, member_hparams)
            return
        state = state_dict.get("state")
        if not isinstance(state, (list, tuple)) or len(state) != len(self.params):
            raise ValueError(f"state_dict's state is not a list of {len(self.params)} dicts")
        for i, saved in enumerate(state):
            if not isinstance(saved, Mapping):
                raise ValueError(f"state_dict's state of parameter {i} is not a dict")
        defaults = self._checked_all(member_hparams)
        for i, (old, new) in enumerate(zip(self._defaults, defaults)):
            if set(old) != set(new):
                raise ValueError(f"member {i}: state_dict's hyperparameters {sorted(new)} are not "
                                 f"this population's {sorted(old)}")
            for name in old:
                _check_switch(i, name, old[name], new[name])
        hparams = self._stack_hparams(defaults)
        for flag in ("maximize", *DRIVER_FLAGS):
            hparams.pop(flag, None)
        for i, (p, saved, live) in enumerate(zip(self.params, state, self.state)):
            layout = functools.cache(functools.partial(self._stepped_layout, p, hparams))
            for key, value in saved.items():
                self._check_state_tensor(i, key, value, live.get(key), real(p), layout)
        # checked: now change
        self.state = [{k: _cloned(v, p.device) for k, v in saved.items()}
                      for p, saved in zip(self.params, state)]
        self.member_hparams, self._defaults, self.hparams = member_hparams, defaults, hparams
        self._rest_ids = {}
        self._plan, self._plan_key = None, None
        self._refresh()

    def _stepped_layout(self, p: Tensor, hparams: dict) -> dict:
        """The state the rule holds after one step of a stand-in for parameter ``p`` with
        ``hparams``: a tensor of ``p``'s real view's dtype and number of axes, ``K`` members
        and 2 elements along every other axis, so an entry of its shape stands for one of
        ``p``'s, and any other (``[K, 1, ...]``, ``[K]``, 0-d) is the rule's own (ASGD's
        ``eta`` with per-member rates, NAdam's ``mu_product`` with per-member
        ``momentum_decay``). Empty where the rule cannot step the stand-in."""
        weight = real(p)
        dtype, vmapped = compute_dtype(p), self.mode == "vmap"
        hp = {k: _cast(v, dtype) for k, v in hparams.items()}
        if not vmapped:
            hp = {k: _shaped(v, weight.dim()) for k, v in hp.items()}
        shape = (self.members,) + (2,) * (weight.dim() - 1)
        stand_in = torch.ones(shape, dtype=weight.dtype, device=weight.device)
        state: dict = {}
        try:
            with keeping_rng(stand_in.device), torch.no_grad():
                self.engine.step_members([stand_in], [torch.full_like(stand_in, 0.5)], [state],
                                         [hp], maximize=self.maximize, vmapped=vmapped)
        except Exception:  # noqa: BLE001 - then only the parameter's own shape and dtype fit
            return {}
        return {k: ((tuple(weight.shape) if v.shape == shape else tuple(v.shape)), v.dtype)
                for k, v in state.items() if isinstance(v, Tensor)}

    def _check_state_tensor(self, index: int, key: str, value: Any, live: Any,
                            p: Tensor | None, layout: Callable[[], dict] | None = None) -> None:
        """Refuse a saved state entry of parameter ``index`` that does not fit it: ``live``,
        this population's entry, or else ``p``, the parameter's real view (None: no check):
        0-d, ``p``'s shape and dtype, or the shape and dtype the rule gives the key after a
        step (``layout()``: see :meth:`_stepped_layout`)."""
        if not isinstance(value, Tensor):
            return
        where = f"state_dict's state of parameter {index}, key {key!r},"
        if isinstance(live, Tensor):
            counter = key == "step" and value.is_floating_point() and live.is_floating_point()
            if value.shape != live.shape or (value.dtype != live.dtype and not counter):
                # a step counter of another float dtype loads as an optimizer's does (an
                # older float32 one into SOAP's exact float64 counter)
                raise ValueError(f"{where} has shape {tuple(value.shape)} and dtype {value.dtype}; "
                                 f"this population's has {tuple(live.shape)} and {live.dtype}")
            return
        if p is None or value.dim() == 0:  # a member's own layout (Adafactor's); a counter
            return
        also = ""
        if self.state_precision is not None:  # compact moments: payload and block scales
            fits = value.shape[0] == self.members
        else:
            expected = None if layout is None else layout().get(key)
            if expected is None or expected[0] == tuple(p.shape):  # the parameter's layout
                fits = value.shape == p.shape and value.dtype in (
                    p.dtype, p.dtype if expected is None else expected[1])
            else:  # the rule's own (one value per member)
                fits = (tuple(value.shape), value.dtype) == expected
            if expected is not None and expected != (tuple(p.shape), p.dtype):
                also = f"; the rule's for this key {expected[0]} and {expected[1]}"
        if not fits:
            raise ValueError(f"{where} has shape {tuple(value.shape)} and dtype {value.dtype}; "
                             f"the parameter's (real view) {tuple(p.shape)} and {p.dtype}{also}")

    def _load_members(self, state_dict: Mapping[str, Any], member_hparams: list[dict]) -> None:
        """:meth:`load_state_dict` in ``"member"`` mode: each member optimizer's own."""
        states = state_dict.get("member_states")
        if not isinstance(states, (list, tuple)) or len(states) != self.members:
            raise ValueError(f"state_dict's member_states is not a list of {self.members} "
                             "optimizer state_dicts")
        for i, (opt, saved) in enumerate(zip(self._optimizers, states)):
            groups, mine = saved.get("param_groups", []), opt.param_groups
            if [len(g["params"]) for g in groups] != [len(g["params"]) for g in mine]:
                raise ValueError(f"member {i}: state_dict's param groups hold "
                                 f"{[len(g['params']) for g in groups]} parameters, this "
                                 f"population's {[len(g['params']) for g in mine]}")
            for name, value in groups[0].items():
                # the group's running state (a schedule-free member's train_mode) is the
                # state being loaded, not a switch
                if name != "params" and name in mine[0] and name not in self.capabilities.running:
                    _check_switch(i, name, mine[0][name], value)
            live = opt.state_dict()["state"]
            for index, entries in saved.get("state", {}).items():
                for key, value in entries.items():
                    self._check_state_tensor(index, key, value, live.get(index, {}).get(key),
                                             None)
        self._check_member_hparams(member_hparams)
        # checked: now change (the member optimizers read copies, never the state_dict's;
        # their skipped_steps come with their own state_dicts)
        for opt, saved in zip(self._optimizers, states):
            opt.load_state_dict(_cloned(saved))
        self.member_hparams = member_hparams

    def _check_member_hparams(self, member_hparams: list) -> None:
        """Refuse a ``"member"`` mode state_dict's hyperparameters unless construction would
        take them (each member's checked by its constructor; a switch cannot change). Their
        values need not equal the saved param groups': a scheduler stepping a member
        optimizer writes its groups alone, and the member optimizers load their groups."""
        for i, hp in enumerate(member_hparams):
            if not isinstance(hp, Mapping):
                raise ValueError(f"member {i}: state_dict's member_hparams is a "
                                 f"{type(hp).__name__}, not a dict of hyperparameters")
            for name in set(hp) & set(self.member_hparams[i]):
                _check_switch(i, name, self.member_hparams[i][name], hp[name])
        if issubclass(self.cls, RuleOptimizer):
            self._checked_all(member_hparams)
        else:  # a wrapper: its constructor checks (building a throwaway instance)
            for i, hp in enumerate(member_hparams):
                self._build(i, self._leaves[i], hp)

    def __getstate__(self) -> dict:
        """Every attribute but the rebuildable caches (:attr:`_NOT_COPIED`)."""
        return {k: v for k, v in self.__dict__.items() if k not in self._NOT_COPIED}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._plan, self._plan_key = None, None
        if self.mode != "member":
            self.engine = Engine(self.cls.init, self.cls.update, self.capabilities,
                                 self.cls.__name__)

    def __repr__(self) -> str:
        return f"Population({self.entry.name!r}, members={self.members}, mode={self.mode!r})"


def _component(value: Any, part: int) -> Any:
    """Component ``part`` of a tuple hyperparameter (``betas``)."""
    return value[part] if isinstance(value, (tuple, list)) and len(value) > part else value


def _is_zero(value: Any) -> bool:
    """Whether a hyperparameter's value is a number equal to 0."""
    if isinstance(value, Tensor):
        return value.numel() == 1 and value.device.type != "meta" and value.item() == 0
    return type(value) in (int, float) and value == 0


def _tuple_hint(name: str, given: Mapping, err: object) -> str:
    """A hint for a refusal (``err``, or its text) of a hyperparameter of optimizer ``name``
    given as a list of numbers (``betas=[0.9, 0.999]``): a list is one value per member, so
    where the refusal names it and the optimizer's default for it is a tuple of as many
    numbers, say that a tuple is one value every member shares. Empty otherwise
    (``lr=[0.1, -1.0]``: its default is one number)."""
    text = str(err)
    for key, value in given.items():
        if not (isinstance(value, list) and len(value) > 1
                and all(type(v) in (int, float) for v in value)
                and re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", text)):
            continue
        entry = resolve(name)
        if hasattr(entry.cls, "checked_defaults"):
            default = {**entry.info.defaults, **entry.preset}.get(key)
        else:  # a wrapper: the defaults of the optimizer it builds (on a throwaway parameter)
            shared = {k: v for k, v in given.items() if not is_per_member(v)}
            try:
                default = probe(name, **shared).defaults.get(key)
            except (ValueError, TypeError, ArithmeticError):
                continue
        if isinstance(default, tuple) and len(default) == len(value):
            return (f"; {key}: a list is read as one value per member; give a tuple "
                    f"{tuple(value)!r} for a value all members share")
    return ""


def _members_failed(failed: dict[int, Exception], members: int) -> Exception:
    """One error for the members whose step raised (``failed``: each one's exception, by
    index), naming them all and saying the others stepped: of the first failure's type
    where that type takes a message alone (so a caller catching a ``LinAlgError``, a
    ``RuntimeError`` or a ``ValueError`` from a member still does), else that failure
    itself with the names added as a note. Its ``failed_members`` lists the indices."""
    indices = sorted(failed)
    first = failed[indices[0]]
    which = (f"member {indices[0]}" if len(indices) == 1
             else f"members {', '.join(map(str, indices))}")
    others = "the others stepped" if len(indices) < members else "no member stepped"
    seen, parts = set(), []
    for i in indices:  # each distinct failure once, with the first member that had it
        text = f"{type(failed[i]).__name__}: {failed[i]}"
        if text not in seen:
            seen.add(text)
            parts.append(f"member {i}: {text}")
    message = f"{which} of {members} failed to step ({others}): {'; '.join(parts)}"
    try:
        error = type(first)(message)
    except Exception:  # noqa: BLE001 - a type that takes more than a message: keep the original
        error = first
        error.add_note(message)
    _tag(error, indices)
    return error


def _tag(error: BaseException, indices: list[int]) -> None:
    """Set ``error.failed_members`` to ``indices`` (where the exception takes attributes)."""
    try:
        error.failed_members = indices
    except AttributeError:
        pass


def _row(p: Tensor, index: int) -> Tensor:
    """Member ``index``'s leaf of ``p``: a view of its row, or a copy where the row is not
    contiguous."""
    row = p[index].detach()
    return (row if row.is_contiguous() else row.clone()).requires_grad_()


def _cloned(value: Any, device: torch.device | None = None) -> Any:
    """``value`` with its dicts, lists and tuples rebuilt and its tensors copied (onto
    ``device``), so it shares no buffer with a population."""
    if isinstance(value, Tensor):
        return value.detach().to(device=device, copy=True)
    if isinstance(value, Mapping):
        return {k: _cloned(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        out = [_cloned(v, device) for v in value]
        return out if isinstance(value, list) else tuple(out)
    return value


def _cast(value: Any, dtype: torch.dtype) -> Any:
    """A hyperparameter with its per-member columns (1-D tensors) in ``dtype``."""
    if isinstance(value, Tensor) and value.dim() == 1:
        return value.to(dtype)
    if type(value) is tuple:
        return tuple(_cast(x, dtype) for x in value)
    return value


def _shaped(value: Any, dim: int) -> Any:
    """A hyperparameter with its per-member columns shaped ``[K, 1, ...]`` to broadcast over
    a parameter with ``dim`` axes."""
    if isinstance(value, Tensor) and value.dim() == 1:
        return value.reshape((-1,) + (1,) * (dim - 1))
    if type(value) is tuple:
        return tuple(_shaped(x, dim) for x in value)
    return value


def _check_switch(index: int, name: str, old: Any, new: Any) -> None:
    """Refuse changing a switch (a bool, a string, None) between steps: it changes the
    algorithm or the state's layout (``amsgrad`` adds a buffer)."""
    switch = isinstance(old, (bool, str)) or old is None or isinstance(new, (bool, str)) \
        or new is None
    if switch and not _same(old, new):
        raise ValueError(f"member {index}: {name} cannot change between steps (from {old!r} to "
                         f"{new!r}): it changes the algorithm; build a new Population")


#: the types of values :func:`_key` and :func:`_same` compare as they are
_PLAIN = frozenset({float, int, bool, str, type(None)})


_UNSEEN = object()


def _plain(value: Any) -> bool:
    """Whether ``value`` is a plain number, string or None, or a tuple of them (hashable,
    and compared by value)."""
    kind = type(value)
    return kind in _PLAIN or (kind is tuple and all(type(x) in _PLAIN for x in value))


def _plain_number(value: Any) -> bool:
    """Whether ``value`` is a number or a per-member column, nothing that is a switch."""
    kind = type(value)
    return kind is float or kind is int or (kind is not bool and isinstance(value, Tensor))


def _group_ids(dicts: list[dict]) -> list[int | None]:
    """An id per dict, the same for equal dicts (None where :func:`_key` cannot tell)."""
    ids: dict = {}
    out = []
    for d in dicts:
        key = _key(d)
        out.append(None if key is None else ids.setdefault(key, len(ids)))
    return out


def _key(hp: dict) -> tuple | None:
    """``hp`` as a dict key, or None where a value is not a plain number, string or tuple of
    them (a tensor, a list). ``type()`` rather than ``isinstance``: a check against
    ``Tensor`` costs about half a microsecond, and a schedule sets values on every step."""
    if not all(map(_plain, hp.values())):
        return None
    return tuple(sorted(hp.items()))


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
    if type(a) in _PLAIN and type(b) in _PLAIN:
        return a == b
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return isinstance(a, Tensor) and isinstance(b, Tensor) and torch.equal(a, b)
    return a == b
