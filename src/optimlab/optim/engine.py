"""The one engine that runs an update rule, for every consumer.

A rule (:mod:`optimlab.optim.rule`) says what one step computes; this module is the only
code that *applies* it to tensors. It owns state initialisation, the step counter
(:func:`~optimlab.optim.rule.advance`), ``maximize`` (:func:`~optimlab.optim.rule.call`),
complex parameters (stepped as their real view) and the write-back, and it chooses how to
run:

* **multi-tensor** (the plain path, on any device): every tensor of a group whose state has
  the same layout and step runs through the rule at once as a
  :class:`~optimlab.optim.multi_tensor.TensorList`, so the operations dispatched per step
  do not grow with the number of tensors and nothing is read back per tensor;
* **per tensor**: sparse gradients, ``foreach=False``, and rules that are not multi-tensor
  (Adafactor reads values with ``.item()``, Muon needs matrices);
* **fused**: CPU tensors through a C loop generated from the traced rule
  (:mod:`optimlab.optim.kernels`), prepared once per group as a plan;
* **batched** over a leading member axis (:class:`~optimlab.optim.population.Population`,
  landscape races, sweeps): the rule broadcasts with per-member hyperparameters, is mapped
  with ``torch.func.vmap``, or runs fused with one kernel row per member slice.

The ``torch.optim`` front end (:class:`~optimlab.optim.base.RuleOptimizer`) and
:class:`~optimlab.optim.population.Population` are thin adapters over :class:`Engine`.
"""

from __future__ import annotations

import contextlib
import operator
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import compact, kernels
from .capabilities import Capabilities
from .deferred import Graph
from .multi_tensor import Arena, Layout, TensorList
from .rule import Counters, SparseAdd, _not_a_counter, advance, call, settle

__all__ = ["Engine", "compute_dtype", "sparse_refusal"]


#: the layout of dense tensors, the only one the fused and multi-tensor paths step
_STRIDED = torch.strided


def sparse_refusal(name: str) -> str:
    """The refusal of a sparse gradient by optimizer ``name``: torch's words for Adam ("Adam
    does not support sparse gradients, please consider SparseAdam instead"), and the
    optimizers that take sparse gradients beside dense ones."""
    return (f"{name} does not support sparse gradients, please consider SparseAdam instead "
            "(or SGD or Adagrad, which take sparse and dense gradients alike)")


def real(t: Tensor) -> Tensor:
    """A complex tensor as its real view (two real numbers per element); others as they are."""
    return torch.view_as_real(t) if torch.is_complex(t) else t


class Engine:
    """Applies one optimizer's rule (``init``, ``update``) to tensors and their state.

    Args:
        init, update: the rule (see :mod:`optimlab.optim.rule`).
        capabilities: the optimizer's :class:`~optimlab.optim.capabilities.Capabilities`.
        name: the optimizer's name, for error messages.
    """

    def __init__(self, init: Callable[..., dict], update: Callable[..., Any],
                 capabilities: Capabilities, name: str) -> None:
        self.init, self.update = init, update
        self.capabilities, self.name = capabilities, name
        #: fused plans by the caller's key (a param group, a population)
        self.plans: dict = {}
        #: kernel structures the fused path could not take (a missing compiler, an
        #: unsupported op), so ``fused=None`` does not retry them every step
        self.refused: dict = {}
        #: the fused=True warnings given (once each)
        self._warned: set = set()
        #: the multi-tensor path's plans, by the caller's key (a param group)
        self._multi: dict = {}
        #: one fused step at a time: the kernel runs without the GIL on raw addresses its
        #: plan holds, so a second thread stepping the same optimizer (torch promises no
        #: such thing, but its own steps fail with Python errors at worst) must not replan
        #: or rewrite those addresses under a running kernel (that crashed the process)
        self._fused_lock = threading.Lock()
        #: why the last :meth:`plan_members` found no plan (a phrase), or None
        self.member_refusal: str | None = None
        #: the names 8-bit codes are saved under (``exp_avg_codes``,
        #: :func:`~optimlab.optim.compact.saved_codes`), read by :meth:`_step_one`
        self._saved_code_names = frozenset(name + compact.CODES
                                           for name in capabilities.compact_moments)

    def __getstate__(self) -> dict:
        """Every attribute but the lock (a copy gets its own)."""
        return {k: v for k, v in self.__dict__.items() if k != "_fused_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._fused_lock = threading.Lock()

    def keep_only(self, keys: set) -> None:
        """Drop the plans of callers' keys not in ``keys`` (param groups that were replaced,
        by a checkpoint load for one), with the buffers they hold."""
        for plans in (self.plans, self._multi):
            for key in [k for k in plans if k not in keys]:
                del plans[key]

    # -- the torch front end: one param group --------------------------------------------------
    def step_group(self, key: Any, params: list[Tensor], states: Any, hp: dict, *,
                   maximize: bool = False, fused: bool | None = None,
                   foreach: bool | None = None, state_precision: str | None = None,
                   in_place: bool = False) -> None:
        """Step the parameters of one group (those given have a gradient).

        ``states`` maps each parameter to its state dict (``optimizer.state``); ``key``
        identifies the group across steps for its fused plan. With ``state_precision`` the
        moments stay compact between steps (:mod:`~optimlab.optim.compact`): each tensor
        steps alone, its moments decoded for the rule and encoded after it. With
        ``in_place`` every state tensor keeps its memory (state shared between processes,
        ``Adagrad.share_memory``): the tensors step one at a time, fused or copied back.

        A sparse parameter, and a sparse gradient where the rule takes none, are refused
        before anything of the group steps or any state is made, as torch refuses them (the
        fused path would step the group's dense tensors before the loop that meets them).
        """
        given = params  # what an error counts a parameter among
        sparse = self.capabilities.sparse
        on_cpu = False  # whether the fused kernel (CPU tensors only) has anything to step
        for p in params:  # one pass, a few attribute reads: a step costs about 1 us for 6
            if p.layout is not _STRIDED or (not sparse and p.grad.layout is not _STRIDED):
                raise RuntimeError(self._layout_refusal(p))
            if not on_cpu and p.is_cpu:
                on_cpu = True
        if state_precision is not None:
            self._multi.pop(key, None)  # the moments are kept compact, out of its buffers
            for p in params:
                self._step_one(p, states[p], hp, maximize, state_precision)
            return
        if self.capabilities.fusable and fused is not False:
            if on_cpu:
                params = self._step_fused(key, params, states, hp, maximize, fused is True)
            elif key in self.plans:
                # the kernel steps CPU tensors only: a group with none is not planned (the
                # plan reads whether a tensor hyperparameter is zero, a host sync per step
                # for an ``lr`` on an accelerator), and a plan of its earlier tensors goes
                with self._fused_lock:
                    self.plans.pop(key, None)
        batched, single = [], []
        for p in params:
            grad = p.grad
            if grad.is_sparse:  # a rule that takes them (refused above where not)
                single.append(p)
            elif foreach is False or in_place or not self.capabilities.multi_tensor \
                    or p.dim() == 0:
                # a 0-d parameter's state would look like scalar state: it steps alone
                single.append(p)
            else:
                batched.append(p)
        if len(batched) >= 2:
            retired = self._step_multi(key, batched, states, hp, maximize, among=given)
        else:
            # no batch this step (the fused path took the tensors the first step batched,
            # SGD's once its momentum buffer exists): the plan and its buffers go
            single += batched
            retired = self._multi.pop(key, None)
        for p in single:
            try:
                self._step_one(p, states[p], hp, maximize, in_place=in_place)
            except RuntimeError as err:  # torch's "size of tensor a ...": say which, and why
                stale = self.stale_state([p], states, hp, among=given)
                if stale is None:
                    raise
                raise RuntimeError(stale + "; the parameters stepped one at a time before it "
                                   "have stepped, as in torch's for-loop") from err
        if retired is not None and not in_place:  # shared state stays where it is
            retired.release(states)

    def stale_state(self, params: list[Tensor], states: Any, hp: dict,
                    among: list[Tensor] | None = None) -> str | None:
        """Why ``params`` cannot step because a state was made for another shape (an error
        path, and a fused plan's parameters whose state no kernel lays out): the first
        parameter with a moment of another shape than its own, as when a parameter's
        ``.data`` is resized between steps (a vocabulary grown) while its moments keep the
        old size; or None. A moment is an entry that the capability record names
        (``moments``, ``second_moments``: SGD's momentum buffer, made at the first step) or
        that a fresh state (``init`` on a meta tensor of the parameter's shape) makes of the
        parameter's shape. Entries of other shapes (a factored moment's rows, a history that
        grows) and int8 codes are not read. The parameter is counted among ``among`` (the
        group's parameters with a gradient; ``params`` where not given)."""
        named = self.capabilities.compact_moments
        for p in params:
            state = states.get(p) if hasattr(states, "get") else states[p]
            if not state:
                continue
            weight = real(p)
            try:
                fresh = self.init(torch.empty(weight.shape, dtype=weight.dtype, device="meta"),
                                  **hp)
            except Exception:  # a rule whose init cannot run on a meta tensor: its names only
                fresh = {}
            moments = [k for k in named if k in state] + [
                k for k, v in fresh.items()
                if k not in named and isinstance(v, Tensor) and v.shape == weight.shape]
            for key in moments:
                kept = state.get(key)
                if isinstance(kept, Tensor) and kept.is_floating_point() and kept.dim() \
                        and kept.shape != weight.shape:
                    index = next(i for i, q in enumerate(among or params) if q is p)
                    return (f"{self.name}: parameter {index} of the group (counting its "
                            f"parameters that have a gradient) is of shape {tuple(p.shape)}, "
                            f"but its state {key!r} is of shape {tuple(kept.shape)}, made for "
                            f"another shape (was the parameter's .data resized?); start its "
                            f"state afresh with `del optimizer.state[p]`")
        return None

    def _layout_refusal(self, p: Tensor) -> str:
        """Why :meth:`step_group` refuses ``p`` (a sparse parameter, or a sparse gradient the
        rule does not take), saying what to do instead, as torch's messages do."""
        if p.layout is not _STRIDED:
            return (f"{self.name}: optimlab's optimizers step dense (strided) parameters; got a "
                    f"sparse one ({p.layout}, shape {tuple(p.shape)}). Keep the parameter dense: "
                    "nn.Embedding(sparse=True) keeps a dense weight and gives it sparse "
                    "gradients, which SGD, Adagrad and SparseAdam take")
        return sparse_refusal(self.name)

    def _step_one(self, p: Tensor, state: dict, hp: dict, maximize: bool,
                  state_precision: str | None = None, in_place: bool = False) -> None:
        weight, grad = real(p), p.grad
        if torch.is_complex(grad):
            grad = torch.view_as_real(grad)
        if not state:
            state.update(self.init(weight, **hp))
        if state_precision is None:
            step = advance(state)
            before = dict(state)
            new = self._run_one(weight, grad, state, step, hp, maximize)
            _unshare(state, before, weight, grad)  # before the parameter is overwritten
            _write(weight, new)
            _keep_objects(state, before, in_place)
            return
        moments = self.capabilities.compact_moments
        if not self._saved_code_names.isdisjoint(state):
            # codes in the state_dict's format, put into the state by a loader that bypassed
            # the optimizer's load_state_dict (ZeroRedundancyOptimizer writes the saved
            # entries straight into ``optim.state``): kept under the moment's name again
            kept = compact.kept_codes(state, moments)
            state.clear()
            state.update(kept)
        full = compact.unpack(state, moments, weight.dtype)
        step = advance(full)  # the counter is the state's own tensor
        new = self._run_one(weight, grad, full, step, hp, maximize)
        _unshare(full, {}, weight, grad)
        compact.pack(state, full, moments, state_precision)
        _write(weight, new)

    def _run_one(self, weight: Tensor, grad: Tensor, state: dict, step: Any, hp: dict,
                 maximize: bool) -> Any:
        """The rule on one tensor; a sparse gradient's changes to the state are added in
        place (:func:`~optimlab.optim.rule.sparse_add`)."""
        if not grad.is_sparse:
            return call(self.update, weight, grad, state, step, hp, maximize)
        before = dict(state)
        new = call(self.update, weight, grad, state, step, hp, maximize)
        for key, value in state.items():
            if isinstance(value, SparseAdd):
                state[key] = settle(value, before.get(key))
        return new

    def _step_multi(self, key: Any, params: list[Tensor], states: Any, hp: dict,
                    maximize: bool, among: list[Tensor] | None = None) -> _MultiPlan | None:
        """The multi-tensor path: one rule call per batch of tensors with the same dtype,
        device, state layout and scalar state (the step, NAdam's product, ...).

        The analysis is kept as a plan (:class:`_MultiPlan`) while the parameters, their
        storage and their state tensors stay the same. Returns the plan a new one replaced,
        for the caller to :meth:`~_MultiPlan.release` once the group has stepped.
        """
        plan = old = self._multi.get(key)
        try:
            if plan is None or not plan.fits(params, states) or not plan.uniform():
                plan = self._multi[key] = _MultiPlan(self, params, states, hp)
            else:
                old = None
            plan.run(self.update, hp, maximize)
        except RuntimeError as err:  # torch's "size of tensor a (4) must match ...": say which
            misfit = _first_misfit(self.name, params, among)
            if misfit is None:
                stale = self.stale_state(params, states, hp, among=among)
                if stale is None:
                    raise
                misfit = stale + "; its batch did not step"
            raise RuntimeError(misfit) from err
        return old

    # -- the fused path ----------------------------------------------------------------------
    def _step_fused(self, key: Any, params: list[Tensor], states: Any, hp: dict,
                    maximize: bool, required: bool) -> list[Tensor]:
        """Step what the fused kernel can take; return the parameters left for the plain path.

        A parameter qualifies when it is a contiguous CPU tensor of float32 or float64
        (complex through its real view) with a dense gradient (read from a contiguous copy if
        it is laid out differently) and its state is complete (SGD's momentum buffer exists
        only after the first step, which the plain path takes).

        Parameters whose memory overlaps another's (views of one tensor) are left to the
        plain path, which steps them one at a time, in order, as torch's for-loop does (the
        kernel steps its tensors concurrently), with ``fused=True`` too. So is a group whose
        tensor hyperparameter has a dtype other than float64 or the parameter's (a float32
        ``lr`` tensor on float64 parameters): torch and the plain path round the scalars
        derived from it in its dtype, the kernel computes them in float64 (``fused=True``
        warns once).

        The analysis is kept as a plan (:class:`_FusedPlan`) while the group's parameters,
        their storage, their state tensors and the hyperparameters' structure stay the same,
        so a step costs the kernel plus a few microseconds per tensor.
        """
        with self._fused_lock:
            plan = self.plans.get(key)
            if plan is None or not plan.run(states, params, hp, maximize):
                plan = self.plans[key] = self._plan_fused(params, states, hp, maximize,
                                                          required)
                plan.run(states, params, hp, maximize, first=True, name=self.name)
            return plan.rest

    def _plan_fused(self, params: list[Tensor], states: Any, hp: dict, maximize: bool,
                    required: bool) -> _FusedPlan:
        rest: list[Tensor] = []
        waiting: list[Tensor] = []
        plain: list[Tensor] = []  # fusable, but the plain path steps them as torch does
        unlaid: list[Tensor] = []  # those of ``rest`` whose state no kernel lays out
        batches: dict = {}
        # the kernel steps its tensors concurrently: views sharing memory step one by one
        apart = {id(p) for p in _overlapping(params)}
        narrow = _tensor_hp_dtypes(hp) - {torch.float64}
        for p in params:
            grad = p.grad
            weight = real(p)
            if (grad.is_sparse or p.device.type != "cpu" or weight.dtype not in kernels.DTYPES
                    or not p.is_contiguous()):
                rest.append(p)
                continue
            if id(p) in apart:
                plain.append(p)
                continue
            if narrow - {weight.dtype}:
                # the kernel computes every hyperparameter in float64; torch rounds what a
                # float32 lr tensor gives in float32, which a float64 parameter would show
                if required and "narrow" not in self._warned:
                    self._warned.add("narrow")
                    warnings.warn(
                        f"{self.name}(fused=True): a "
                        f"{', '.join(sorted(str(d) for d in narrow))} tensor hyperparameter "
                        f"on {weight.dtype} parameters steps on the plain multi-tensor path "
                        "(the kernel computes hyperparameters in float64; pass a float64 "
                        "tensor or a number to fuse)", stacklevel=5)
                plain.append(p)
                continue
            state = states[p]
            if not state:
                state.update(self.init(weight, **hp))
            counter = state.get("step")
            if counter is not None and not isinstance(counter, Tensor):
                raise _not_a_counter(counter)  # as the plain path raises, before any step
            layout = kernels.Layout.of(state, weight)
            if layout is None:  # a state entry of another dtype or shape (a float64 moment)
                # one made for another shape fails on the plain path: refused before the
                # kernel steps the others, and saying which
                stale = self.stale_state([p], states, hp, among=params)
                if stale is not None:
                    raise RuntimeError(stale + "; nothing of the group stepped")
                rest.append(p)
                unlaid.append(p)
                continue
            # float32 and float64 counters (a loaded float64 step) are kept in their dtypes
            # by batches of their own (a batch's counters are one buffer)
            batches.setdefault((weight.dtype, layout, None if counter is None else counter.dtype),
                               []).append(p)
        runs = []
        # every size is fused: a call costs 20-40 us, less than the plain path's operations
        # on a single 2-number tensor (benchmarks/small_step.py)
        for (dtype, layout, _), batch in batches.items():
            # 0-d parameters whose state the kernel cannot tell from a rule's per-tensor
            # scalars (ASGD's eta and mu beside its 0-d average) step on the plain path,
            # which steps them alone, fused=True or not
            scalars = all(real(p).dim() == 0 for p in batch)
            try:
                kernel = self.kernel(dtype, layout, hp, maximize, required and not scalars)
            except kernels.StateNotReady:
                waiting += batch  # the plain step creates the buffer; later steps fuse
                continue
            except (kernels.Unsupported, kernels.CompilerUnavailable):
                (plain if scalars else rest).extend(batch)
                continue
            runs.append(_FusedBatch(kernel, batch, [states[p] for p in batch]))
        # fused=True lets the tensors no kernel here takes (another device, float16 or
        # bfloat16: torch's fused=True takes them, and the constructor warned) through to the
        # plain path; what a kernel could take but not as it is laid out is refused
        refused = [p for p in rest if p.device.type == "cpu" and real(p).dtype in kernels.DTYPES]
        if required and refused:
            why = ("dense, contiguous CPU gradients and parameters of float32 or float64"
                   if len(unlaid) < len(refused) else "")
            if unlaid:
                why += ("; and " if why else "") + (
                    f"a state whose entries are of the parameter's dtype and shape, or 0-d "
                    f"({len(unlaid)} of them keep an entry of another dtype or shape)")
            first = refused[0]
            where = next(i for i, q in enumerate(params) if q is first)
            raise RuntimeError(
                f"{self.name}(fused=True) cannot fuse {len(refused)} parameter(s): they need "
                f"{why}. The first is parameter {where} of those stepped in its group, "
                f"shape {tuple(first.shape)}, strides {first.stride()}, "
                f"{str(first.dtype).removeprefix('torch.')}; fused=None (the default) steps "
                "what cannot be fused on the plain path")
        # the parameters the kernel does not step, in the group's order: views of one
        # tensor step one after another as torch's loop steps them
        left = {id(p) for p in rest + plain + waiting}
        return _FusedPlan(states, params, hp, maximize, runs,
                          [p for p in params if id(p) in left])

    def kernel(self, dtype: torch.dtype, layout: kernels.Layout, hp: dict, maximize: bool,
               required: bool = False) -> kernels.Kernel:
        """The fused kernel for this structure (remembering one the machine refused)."""
        key = (dtype, layout, maximize)
        if key in self.refused and not required:
            raise kernels.Unsupported(self.refused[key])
        try:
            return kernels.kernel(self.update, dtype, layout, hp, maximize)
        except kernels.StateNotReady:
            raise
        except (kernels.Unsupported, kernels.CompilerUnavailable) as error:
            if required:
                raise RuntimeError(f"{self.name}(fused=True): {error}") from error
            self.refused[key] = str(error)
            raise

    # -- batched over a member axis ----------------------------------------------------------
    def step_members(self, params: Sequence[Tensor], grads: Sequence[Tensor | None],
                     states: list[dict], hps: Sequence[dict], *, maximize: bool = False,
                     vmapped: bool = False, state_precision: str | None = None) -> None:
        """Step parameters with a leading member axis, each member with its own values.

        ``hps[i]`` holds parameter ``i``'s hyperparameters, per-member ones as tensors shaped
        to broadcast over it (``[K, 1, ...]``) or, with ``vmapped``, as ``[K]`` columns for
        ``torch.func.vmap``, in the dtype the step computes in (:func:`compute_dtype`).
        ``state_precision`` as in :meth:`step_group`, each member's moments encoded apart
        (blocks do not cross the member axis).

        A complex parameter steps as its real view, as :meth:`_step_one` steps it (the
        caller shapes its hyperparameters for that view). A bfloat16 or float16 parameter
        steps in float32, its state kept in its own dtype between steps: its per-member
        hyperparameters are float32 tensors (in bfloat16, Adam's beta2 0.999 would be 1.0),
        and a tensor of another dtype cannot meet it in ``torch.lerp``.
        """
        moments = self.capabilities.compact_moments
        for p, g, state, hp in zip(params, grads, states, hps):
            if g is None:
                continue
            weight, grad = real(p), real(g)
            if not state:
                state.update(self.init(weight, **hp))
            kept = state
            wide = _WIDER.get(weight.dtype)
            if state_precision is not None:
                state = compact.unpack(kept, moments, wide or weight.dtype, rows=p.shape[0])
            run = weight
            if wide is not None:
                state = _widened(state, weight.dtype, wide)
                run, grad = weight.to(wide), grad.to(wide)
            step = advance(state)
            before = dict(state)
            if vmapped:
                new = self._vmapped(run, grad, state, step, hp, maximize)
            else:
                new = call(self.update, run, grad, state, step, hp, maximize)
            _unshare(state, before, run, grad)  # state["prev_g"] = g kept as a copy
            if wide is not None:
                state = _narrowed(state, wide, weight.dtype,
                                  moments if state_precision is not None else ())
                if state_precision is None:
                    kept.update(state)
            if state_precision is not None:
                compact.pack(kept, state, moments, state_precision, rows=p.shape[0])
            weight.copy_(new)

    def _vmapped(self, p: Tensor, g: Tensor, state: dict, step, hp: dict,
                 maximize: bool) -> Tensor:
        if p.shape[0] == 1:
            # One member needs no vmap, and a plain call keeps Muon's bfloat16 matrix
            # products bit-identical to the plain optimizer's (batched ones round otherwise).
            squeezed = {k: v.squeeze(0) if isinstance(v, Tensor) and v.dim() and k != "step"
                        else v for k, v in state.items()}
            new = call(self.update, p[0], g[0], squeezed, step, _first_member(hp), maximize)
            state.update({k: v.unsqueeze(0) if isinstance(v, Tensor) and k != "step" else v
                          for k, v in squeezed.items()})
            return new.unsqueeze(0)
        per_member = {k: v for k, v in hp.items() if _is_column(v)}
        shared = {k: v for k, v in hp.items() if k not in per_member}
        buffers = {k: v for k, v in state.items() if k != "step" and isinstance(v, Tensor)}
        rest = {k: v for k, v in state.items() if k not in buffers}

        def member(p_, g_, buffers_, hp_):
            local = {**rest, **buffers_}
            new_p = call(self.update, p_, g_, local, step, {**shared, **hp_}, maximize)
            return new_p, {k: local[k] for k in local if k != "step"}

        new, new_state = torch.func.vmap(member)(p, g, buffers, per_member)
        state.update(new_state)
        return new

    def plan_members(self, params: Sequence[Tensor], grads: Sequence[Tensor],
                     states: list[dict], hp: dict, rows: Callable[[kernels.Kernel], Tensor],
                     maximize: bool = False) -> _MemberPlan | _MemberPlans | None:
        """A fused step over member slices (each member's slice of each parameter is one
        kernel tensor with its own row of hyperparameters, so a norm is per member and per
        tensor, as with vmap), or None where the kernel cannot take them, the reason (a
        phrase) then in :attr:`member_refusal`. As the optimizer's own fused step, one
        kernel per dtype and state layout (float32 and float64 parameters side by side),
        complex parameters as their real view.

        ``hp`` gives, for the kernel's structure, a value per hyperparameter that is nonzero
        where any member's is; ``rows(kernel)`` gives each member's values, one row each.

        Raises:
            kernels.StateNotReady: the rule creates a state buffer on this step (SGD's
                momentum buffer on the first): the plain path takes it, a later step fuses.
        """
        self.member_refusal = None
        groups: dict = {}  # (dtype, layout) -> the indices of the parameters it steps
        for i, (p, g, state) in enumerate(zip(params, grads, states)):
            problem = _member_problem(i, p, g)
            if problem is None:
                layout = kernels.Layout.of(state, real(p))
                if layout is None:
                    problem = f"parameter {i}'s state has entries the kernel cannot take"
                elif layout.scalar:
                    problem = (f"{self.name}'s state has 0-d entries besides the step "
                               f"({', '.join(layout.scalar)}), which the member kernel does not "
                               "take (one value for every member)")
                else:
                    groups.setdefault((real(p).dtype, layout), []).append(i)
            if problem is not None:
                self.member_refusal = problem
                return None
        plans = []
        for (dtype, layout), indices in groups.items():
            try:
                kernel = self.kernel(dtype, layout, hp, maximize)
            except kernels.StateNotReady:
                raise
            except (kernels.Unsupported, kernels.CompilerUnavailable) as error:
                self.member_refusal = str(error)
                return None
            plans.append((_MemberPlan(kernel, [real(params[i]) for i in indices],
                                      [states[i] for i in indices], rows(kernel)), indices))
        if len(plans) == 1 and not any(p.is_complex() for p in params):
            return plans[0][0]  # the usual case: one kernel, the parameters as they are
        return _MemberPlans(plans)


#: what a population's plain path widens a reduced-precision parameter's step to
_WIDER = {torch.bfloat16: torch.float32, torch.float16: torch.float32}


def compute_dtype(p: Tensor) -> torch.dtype:
    """The dtype :meth:`Engine.step_members` runs ``p``'s rule in: its real view's, float32
    for bfloat16 and float16 (per-member hyperparameters are tensors of this dtype)."""
    dtype = real(p).dtype if p.is_complex() else p.dtype
    return _WIDER.get(dtype, dtype)


def _widened(state: dict, narrow: torch.dtype, wide: torch.dtype) -> dict:
    """A copy of ``state`` with its ``narrow`` tensors in ``wide`` (the others as they are)."""
    return {k: v.to(wide) if isinstance(v, Tensor) and v.dtype == narrow else v
            for k, v in state.items()}


def _narrowed(state: dict, wide: torch.dtype, narrow: torch.dtype, keep=()) -> dict:
    """``state`` with its ``wide`` tensors (not 0-d: the step counter stays as it is, nor
    those in ``keep``: moments a compact form encodes) back in ``narrow``."""
    return {k: v.to(narrow) if isinstance(v, Tensor) and v.dtype == wide and v.dim()
            and k not in keep else v for k, v in state.items()}


def _member_problem(index: int, p: Tensor, g: Tensor | None) -> str | None:
    """Why the member kernel cannot take parameter ``index`` (a phrase), or None."""
    if g is None:
        return f"parameter {index} has no gradient"
    if real(p).dtype not in kernels.DTYPES:
        return (f"parameter {index} is {p.dtype}; the kernel takes float32 or float64 (complex "
                "ones as their real view)")
    if p.device.type != "cpu":
        return f"parameter {index} is on {p.device}; the kernel runs on the CPU"
    if not p.is_contiguous():
        return f"parameter {index} is not contiguous"
    if g.is_sparse or g.dtype != p.dtype:
        return f"gradient {index} is not a dense {p.dtype} tensor"
    return None


_MISSING = object()


def _write(weight: Tensor, new: Any) -> None:
    """Put a rule's new parameter into ``weight`` (a sparse change is added in place)."""
    if isinstance(new, SparseAdd) and new.base is weight:
        settle(new, weight)
    else:
        weight.copy_(settle(new, None))


def _repoint(old: Any, new: Tensor, in_place: bool = False) -> bool:
    """Make the state tensor ``old`` hold ``new``'s values, keeping the object: on ``new``'s
    memory (``Tensor.set_``: no copy, about a microsecond), or with ``in_place`` copied into
    its own (memory shared with other processes must stay where it is). False, and nothing
    done, where ``old`` is no plain tensor of ``new``'s dtype and device (a subclass, a
    ``DTensor``, stays as the caller finds it) or torch refuses (a sparse or inference-mode
    tensor, one that requires grad).

    torch.optim updates its state in place, so code that took ``opt.state[p]["exp_avg"]``
    reads the state of later steps; the engine keeps that true where it puts a rule's new
    tensor (:func:`_keep_objects`) or a batch's buffer (:func:`_move_into`) in the state."""
    if type(old) is not Tensor or old.dtype != new.dtype or old.device != new.device:
        return False
    try:
        if in_place:
            old.copy_(new)
        else:
            old.set_(new)
    except (RuntimeError, NotImplementedError):
        return False
    return True


def _storage(t: Tensor) -> int | None:
    """The address of ``t``'s storage, or None where it has none to compare (sparse)."""
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError, TypeError):
        return None


def _unshare(state: dict, before: dict, weight: Tensor, grad: Tensor) -> None:
    """Give a copy of its own to each new state value (not in ``before``) that is the
    parameter or the gradient the rule was given, or a view of either (``state["prev_g"] =
    g``, as Adan and MARS keep the last gradient): kept as it is, it would change with the
    parameter, which the new value is written into next, and with ``.grad``, which the
    next backward writes into (after ``zero_grad(set_to_none=False)``). The multi-tensor
    and fused paths write the state into buffers of its own, so this is the per-tensor
    path's; comparing storage addresses costs a fraction of a microsecond per entry."""
    shared = None
    for key, value in state.items():
        if value is before.get(key) or not isinstance(value, Tensor):
            continue
        if shared is None:
            shared = {_storage(weight), _storage(grad)} - {None, 0}
        if value is weight or value is grad or _storage(value) in shared:
            state[key] = value.clone()


def _keep_objects(state: dict, before: dict, in_place: bool = False) -> None:
    """Keep a state's tensor objects across a rule's step on one tensor: the rules are
    written as functions (``m = state["exp_avg"] = lerp(m, g, ...)`` puts a new tensor in
    the dict), so where the rule put a new tensor under a key that held one, the old object
    takes its values (:func:`_repoint`) and goes back in the dict. Not where the rule moved
    tensors between entries (the old tensor is still the state under another key, or the
    new one was)."""
    for key, new in state.items():
        old = before.get(key)
        if old is not new and type(new) is Tensor \
                and not any(new is kept for kept in before.values()) \
                and not any(old is now for now in state.values()) \
                and _repoint(old, new, in_place):
            state[key] = old


def _layout(weight: Tensor, state: dict) -> tuple:
    """What a multi-tensor batch shares: device, dtype, and each state entry's kind.

    The step counter is the counter whatever its shape, if it holds one number (a ``[1]``
    step, which torch steps on), and its dtype and shape are part of its kind (float32 and
    float64 counters step in batches of their own, each kept in its dtype). A counter that
    is no tensor (a Python int put there by hand) raises the ``TypeError`` that the
    per-tensor path raises, before anything steps."""
    kinds = []
    for key, value in state.items():
        if key == "step" and value is not None:
            if not isinstance(value, Tensor):
                raise _not_a_counter(value)
            if value.numel() == 1:
                kinds.append((key, "step" if value.dim() == 0 and value.dtype == torch.float32
                              else f"step:{value.dtype}:{tuple(value.shape)}"))
                continue
        if value is None:
            kinds.append((key, "none"))
        elif isinstance(value, Tensor) and value.dim() == 0:
            kinds.append((key, "scalar"))
        elif isinstance(value, Tensor):
            # a state tensor elsewhere than its parameter (or of another dtype) steps apart
            same = value.device == weight.device and value.dtype == weight.dtype
            kinds.append((key, "tensor" if same else f"tensor:{value.device}:{value.dtype}"))
        else:
            kinds.append((key, f"value:{value!r}"))
    return (weight.device, weight.dtype, tuple(kinds))


#: the most bytes of scratch (:attr:`_MultiBatch.pool`, its :class:`Arena`'s buffers) a CPU
#: group keeps from one step to the next, its batches (:data:`BATCH_BYTES`) together. A fresh
#: CPU buffer costs the operating system's page faults when first written, about as much as
#: the arithmetic that fills it (RMSprop's and
#: Adagrad's plain step on 200 tensors of 5,000 numbers took twice as long with none kept, so
#: ``benchmarks/multi_tensor_speed.py`` fell behind torch's foreach path); kept without bound,
#: the scratch cost up to 12 times the parameters' memory (LAMB) where torch holds none. Up to
#: this much the scratch is kept (a small model's step stays fast), beyond it the rest is let
#: go after each step. Off the CPU (no arena) none is kept: the caching allocator reuses freed
#: blocks.
SCRATCH_KEPT_BYTES = 16 << 20

#: the most bytes of parameters one multi-tensor batch steps at once on a CPU: a larger group
#: steps in batches of about this size, each tensor whole (one larger than this is a batch
#: alone). The scratch a step writes is a few of its batch's buffers, so a batch of the whole
#: model wrote buffers of the whole model: a 20M-number model's plain step peaked at 8 times
#: the parameters' memory for ASGD and 7 for NAdam where torch's foreach path holds 1, and
#: took 3 times as long, its fresh buffers faulting in page by page. In batches of this size
#: the scratch is a few batches' worth and the allocator reuses it batch after batch
#: (``benchmarks/step_memory.py --plain``, docs/performance-log.md). Below
#: it (``benchmarks/dispatch_count.py``'s 1,000 tensors of 2,048 numbers, 8 MB) a group is
#: one batch, and the operations dispatched do not grow with its tensors. Off the CPU a group
#: is one batch: each operation there is a kernel launch per batch.
BATCH_BYTES = 16 << 20


class _MultiBatch:
    """Tensors of a group that one rule call steps at once (multi-tensor path).

    The parameter-shaped state entries each live in one flat buffer whose views are the
    tensors in the state dicts, the 0-d entries (the step, NAdam's product) in one vector
    each. The rule runs on :class:`~optimlab.optim.multi_tensor.TensorList` arguments while a
    :class:`~optimlab.optim.deferred.Graph` records it; the graph then computes each result
    where it belongs (a state buffer, the parameters, in place where the old value is no
    longer read), reading the gradients and parameters where they are. On a CPU, scratch
    buffers are kept from step to step (:attr:`pool`), and the buffers of what runs eagerly
    too (:class:`~optimlab.optim.multi_tensor.Arena`), up to :data:`SCRATCH_KEPT_BYTES`.
    New state is written into the state buffers, so a tensor taken from ``opt.state``
    follows the state from step to step as it does with ``torch.optim``, and across a new
    batch too (a plan formed again after a
    missing gradient, ``add_param_group`` or an edited entry): the state dicts' tensors are
    moved into the new buffers in place (:func:`_move_into`), not replaced.
    """

    def __init__(self, members: list, kinds: tuple) -> None:
        self.params = [p for p, _, _ in members]
        self.states = [s for _, _, s in members]
        self.weights = [w for _, w, _ in members]
        self.complex = any(torch.is_complex(p) for p in self.params)
        self.layout = Layout.of(self.weights)
        self._views: dict[int, tuple[Tensor, list[Tensor]]] = {}
        self.pool: list[Tensor] = []
        self.kinds = kinds
        self.tensors: dict[str, Tensor] = {}
        self.scalars: dict[str, Tensor] = {}
        moved: set[int] = set()
        for name, kind in kinds:
            if kind.startswith("tensor"):
                flat = torch.cat([s[name].reshape(-1) for s in self.states])
                self.tensors[name] = flat
                _move_into(self.states, name, self.views(flat), moved)
            elif kind == "scalar" or kind.startswith("step"):
                buffer = torch.stack([s[name] for s in self.states])
                _move_into(self.states, name, buffer.unbind(), moved)
                self.scalars[name] = buffer
        # kept result buffers save the CPU's page faults; a GPU's caching allocator already
        # reuses freed blocks, and keeping every intermediate there would cost memory
        w = self.weights[0]
        self.device = w.device
        self.arena = Arena() if w.device.type == "cpu" else None

    def views(self, flat: Tensor) -> list[Tensor]:
        """Views of ``flat`` shaped like the batch's tensors (made once per buffer and step;
        a state buffer's are kept from step to step, see :meth:`_forget`).

        An entry holds its buffer, so the ``id`` it is filed under cannot be another
        tensor's while it is kept (an ``id`` is reused only after its object is freed), and
        the entry is taken only for that very object."""
        kept = self._views.get(id(flat))
        if kept is None or kept[0] is not flat:
            kept = self._views[id(flat)] = (flat, self.layout.split(flat))
        return kept[1]

    def _forget(self, budget: list[int] | None = None) -> None:
        """Let go of what one step used and the state does not hold, after the step: the
        scratch pool's and the arena's buffers beyond :data:`SCRATCH_KEPT_BYTES` (all of
        them off the CPU), and the views of every buffer but the state's and the scratch
        kept (an entry holds its whole buffer; without an arena, on a GPU, every step brings
        new ones)."""
        if budget is None:
            budget = [SCRATCH_KEPT_BYTES]
        if self.arena is None:
            budget = [0]

        def fits(buf: Tensor) -> bool:
            size = buf.numel() * buf.element_size()
            if 0 < size <= budget[0]:
                budget[0] -= size
                return True
            return False

        self.pool[:] = [buf for buf in self.pool if fits(buf)]
        kept = [*self.tensors.values(), *self.pool]
        if self.arena is not None:
            slots = self.arena.slots
            slots[:] = [buf if buf is not None and fits(buf) else None for buf in slots]
            while slots and slots[-1] is None:
                slots.pop()
            kept += [buf for buf in slots if buf is not None]
        views = self._views
        self._views = {id(buf): views[id(buf)] for buf in kept
                       if id(buf) in views and views[id(buf)][0] is buf}

    def _adopt(self, name: str, flat: Tensor) -> None:
        """Make ``flat`` the buffer of state entry ``name``; the state dicts get views (as
        :func:`_move_into` gives them: not autograd views, whose base would keep ``flat``
        alive after the entry moved to other memory)."""
        self.tensors[name] = flat
        for s, view in zip(self.states, self.views(flat)):
            s[name] = view.detach()

    def uniform(self) -> bool:
        """Whether the batch's tensors still hold the same scalar state (the step, NAdam's
        product, ...): the rule reads the first one's for all, and an edit in place of one
        tensor's (``opt.state[p]["step"].zero_()``, to restart its bias correction) makes
        them differ."""
        if len(self.states) < 2:
            return True
        return all(torch.equal(buffer, buffer[:1].expand_as(buffer))
                   for buffer in self.scalars.values())

    def run(self, update: Callable, hp: dict, maximize: bool,
            budget: list[int] | None = None) -> bool:
        """One step of every tensor of the batch; True if it put new tensors in the state
        dicts (a buffer created on this step, a rebound entry). What the step used besides
        the state is let go after it (:meth:`_forget`), but for the scratch ``budget``
        allows (``[bytes]``, shared by the batches of a group and decreased by what this
        one keeps; :data:`SCRATCH_KEPT_BYTES` by default)."""
        try:
            return self._step(update, hp, maximize)
        finally:
            self._forget(budget)

    def _step(self, update: Callable, hp: dict, maximize: bool) -> bool:
        layout = self.layout
        grads = [p.grad for p in self.params]
        if self.complex:
            grads = [real(g) for g in grads]
        counter = self.scalars.get("step")
        step = None
        if counter is not None:
            counter.add_(1)
            step = counter[0].item()
        try:
            state: dict[str, Any] = {}
            for name, _ in self.kinds:
                if name in self.tensors:
                    state[name] = TensorList(flat=self.tensors[name], layout=layout)
                else:  # the step or a scalar the batch shares, or None
                    state[name] = self.states[0][name]
            before = dict(state)
            graph = Graph(layout.numel, self.device, self.views, self.pool, self.arena)
            weights = TensorList(self.weights, layout=layout)
            graph.param = graph.list_ref(weights, self.weights, "param")
            gradients = TensorList(grads, layout=layout)
            graph.list_ref(gradients, grads, "grad")
            with self.arena.active() if self.arena is not None else contextlib.nullcontext(), \
                    graph.recording():
                new = call(update, weights, gradients, state, step, hp, maximize)
                if not isinstance(new, TensorList):
                    raise TypeError(f"the rule returned {type(new).__name__}, not the new "
                                    "parameters")
                outputs: dict[str, Any] = {}
                scalars: dict[str, Any] = {}
                others: dict[str, Any] = {}  # entries the batch keeps as they are, set below
                for name, value in state.items():
                    if name == "step" or value is before.get(name, _MISSING):
                        continue
                    if isinstance(value, TensorList) and not value.scalars:
                        outputs[name] = value.operand(graph)
                    elif name in self.scalars:
                        scalars[name] = value.flat() if isinstance(value, TensorList) else value
                    else:
                        others[name] = value
                param = new.operand(graph)
                homes = {name: self.tensors[name] for name in outputs if name in self.tensors}
                created = graph.run(param, outputs, homes, self.weights)
        except BaseException:
            # the rule or the graph raised (a gradient that does not fit its parameter is
            # met where the graph gathers the gradients, before anything is written): the
            # counters go back, as the step did not happen (exact wherever the add was)
            if counter is not None:
                counter.sub_(1)
            raise
        # written once the graph ran: a step that raised leaves the state dicts as they were
        for name, value in others.items():
            for s in self.states:
                s[name] = value
        rebound = bool(others)
        for name, flat in created.items():
            self._adopt(name, flat)
            rebound = True
        for name, value in scalars.items():  # after the graph ran: its nodes may read them
            buffer = self.scalars[name]
            buffer.copy_(value.expand(buffer.shape))
        return rebound


def _move_into(states: list[dict], name: str, homes: Sequence[Tensor], moved: set[int]) -> None:
    """Give each state's entry ``name`` its place in a batch's buffer: ``homes[i]`` (a view
    of the buffer, holding the entry's value) for ``states[i]``. The tensor already in the
    entry is moved there (:func:`_repoint`), so a tensor taken from ``opt.state`` before the
    batch was formed keeps following the state; one that cannot be (:func:`_repoint`, or
    already moved for another entry: ``moved`` holds their ids, one object cannot live at
    two places) is replaced by the view, detached: an autograd view keeps its base, the
    whole buffer, alive even once :func:`_repoint` has moved it to memory of its own (a new
    batch's buffer, :meth:`_MultiPlan.release`), where a detached one lets it go."""
    for state, home in zip(states, homes):
        old = state.get(name)
        if id(old) not in moved and _repoint(old, home):
            moved.add(id(old))
        else:
            state[name] = home.detach()


class _MultiPlan:
    """A group's multi-tensor batches, valid while what they were built from stays the same."""

    def __init__(self, engine: Engine, params: list[Tensor], states: Any, hp: dict) -> None:
        self.engine = engine
        # parameters whose memory may overlap another's (views of one tensor): the batched
        # rule writes each result where the old value is no longer read, judged tensor by
        # tensor, so one's write could change another's input; they step one by one, in
        # order, as torch's for-loop steps them
        self.apart = _overlapping(params)
        by_layout: dict[tuple, list] = {}
        for p in params:
            if any(p is q for q in self.apart):
                continue
            weight = real(p)
            state = states[p]
            if not state:
                state.update(engine.init(weight, **hp))
            by_layout.setdefault(_layout(weight, state), []).append((p, weight, state))
        self.batches = []
        for layout, members in by_layout.items():
            scalar_keys = [k for k, kind in layout[2] if kind == "scalar" or kind.startswith("step")]
            parts = [members]
            if scalar_keys and len(members) > 1:
                # tensors whose scalar state differs (a group extended later) step apart
                values = zip(*[torch.stack([m[2][k].reshape(()) for m in members]).tolist()
                               for k in scalar_keys])
                split: dict = {}
                for member, value in zip(members, values):
                    split.setdefault(value, []).append(member)
                parts = list(split.values())
            self.batches += [_MultiBatch(chunk, layout[2]) for part in parts
                             for chunk in _chunks(part)]
        self.mapping, self.params = states, params
        self.ptrs = [p.data_ptr() for p in params]
        self.state_key = _state_key(states, params)

    def fits(self, params: list[Tensor], states: Any) -> bool:
        """Whether the plan still describes these parameters: the same parameters, storage,
        state mapping, state dicts and state tensors with their storage (a checkpoint load,
        ``opt.state.clear()``, a replaced entry or ``v.data = ...`` makes a new plan)."""
        return (states is self.mapping and len(params) == len(self.params)
                and all(map(operator.is_, params, self.params))
                and [p.data_ptr() for p in params] == self.ptrs
                and _state_key(states, params) == self.state_key)

    def uniform(self) -> bool:
        """Whether every batch's tensors still share their scalar state (else the plan is
        built again, which splits them by value)."""
        return all(batch.uniform() for batch in self.batches)

    def release(self, states: Any) -> None:
        """Let go of this plan's buffers, the plan being replaced or dropped: the state
        entries still in a buffer that others have left (moved into a new plan's buffers,
        or stepped alone) get storage of their own, a copy, so the old buffer is freed
        (a parameter without a gradient since, a frozen head, would keep the whole group's
        buffer alive, and a checkpoint would save it whole). A buffer still wholly the
        state's stays as it is (the fused path steps SGD's momentum buffers in place)."""
        if states is not self.mapping:  # a loaded checkpoint replaced the state
            return
        for batch in self.batches:
            live = [s for p, s in zip(batch.params, batch.states) if states.get(p) is s]
            for name, flat in (*batch.tensors.items(), *batch.scalars.items()):
                if not flat.numel() or flat.is_shared():  # other processes may read it there
                    continue
                ptr = flat.untyped_storage().data_ptr()
                inside = [s for s in live if _stored_in(s.get(name), ptr)]
                if not inside or len(inside) == len(batch.states):
                    continue
                for s in inside:
                    old = s[name]
                    own = old.clone()
                    # an autograd view (not one the engine made) keeps its base: replaced
                    if old._base is not None or not _repoint(old, own):
                        s[name] = own

    def run(self, update: Callable, hp: dict, maximize: bool) -> None:
        """One step of every batch (and of each overlapping parameter on its own). The
        batches keep :data:`SCRATCH_KEPT_BYTES` of scratch between steps in all."""
        budget = [SCRATCH_KEPT_BYTES]
        rebound = [batch.run(update, hp, maximize, budget) for batch in self.batches]
        for p in self.apart:
            self.engine._step_one(p, self.mapping[p], hp, maximize)
        if any(rebound) or self.apart:  # SGD's momentum buffer, created on the first step
            self.state_key = _state_key(self.mapping, self.params)


def _stored_in(value: Any, ptr: int) -> bool:
    """Whether ``value`` is a dense tensor on the storage at address ``ptr``."""
    return isinstance(value, Tensor) and value.layout is torch.strided \
        and value.untyped_storage().data_ptr() == ptr


def _tensor_hp_dtypes(hp: dict) -> set:
    """The dtypes of the hyperparameters (or their tuples' items) given as tensors."""
    found = set()
    for key, value in hp.items():
        if key in kernels.DRIVER_KEYS:
            continue
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, Tensor):
                found.add(v.dtype)
    return found


def _chunks(members: list) -> list[list]:
    """``members`` (``(p, weight, state)`` of one batch's layout) in runs of consecutive
    tensors of at most :data:`BATCH_BYTES` of weights each (a larger tensor alone), on a
    CPU; one run elsewhere."""
    if members[0][1].device.type != "cpu":
        return [members]
    chunks: list[list] = [[]]
    size = 0
    for member in members:
        weight = member[1]
        nbytes = weight.numel() * weight.element_size()
        if chunks[-1] and size + nbytes > BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(member)
        size += nbytes
    return chunks


def _overlapping(params: list[Tensor]) -> list[Tensor]:
    """The parameters whose memory may overlap another's: same storage and intersecting
    spans (from the first to the last element a view can reach; interleaved views that do
    not share an element count too, which only costs them the batched path)."""
    spans: dict[int, list] = {}
    for p in params:
        if p.numel() == 0:
            continue
        start = p.storage_offset()
        end = start + sum((size - 1) * abs(stride) for size, stride in zip(p.shape, p.stride()))
        spans.setdefault(p.untyped_storage().data_ptr(), []).append((start, end, p))
    apart = []
    for views in spans.values():
        if len(views) < 2:
            continue
        views.sort(key=lambda v: v[0])
        reach = -1
        for i, (start, end, p) in enumerate(views):
            if start <= reach or (i + 1 < len(views) and views[i + 1][0] <= end):
                apart.append(p)
            reach = max(reach, end)
    return [p for p in params if any(p is q for q in apart)]


#: whether this torch's ``increment_version`` takes a list (2.5 and later): found at the
#: first fused step, so torch 2.4 does not raise and catch at every one
_LIST_VERSIONS = True


def _bump_versions(tensors: Sequence[Tensor]) -> None:
    """Tell autograd that the kernel wrote ``tensors`` in place, as an in-place torch
    operation does (its version counter): a graph that saved a parameter before the step
    then refuses to backward through it ("modified by an inplace operation"), as with
    ``torch.optim``, instead of using the new values silently. The kernel writes through raw
    addresses, which autograd cannot see. (torch before 2.5 takes one tensor at a time, and
    says so with a RuntimeError.)"""
    global _LIST_VERSIONS
    if _LIST_VERSIONS:
        try:
            torch.autograd.graph.increment_version(tensors)
            return
        except (TypeError, RuntimeError):
            _LIST_VERSIONS = False
    for t in tensors:
        torch.autograd.graph.increment_version(t)


class _FusedBatch:
    """One kernel call's worth of a group: the tensors of one dtype and state layout.

    Everything but the gradients' addresses, the step and the hyperparameters' values is set
    up once. The 0-d state entries (the step, NAdam's product) become views into one buffer
    per entry, so a step advances every counter with one operation and the kernel reads
    them as one column.
    """

    def __init__(self, kernel: kernels.Kernel, params: list[Tensor], states: list[dict]) -> None:
        layout = kernel.layout
        self.kernel, self.params = kernel, params
        #: the shapes the kernel's sizes were read from (a parameter given new data since,
        #: ``p.data = p.data[:k]``, keeps its address: the plan must not step it)
        self.shapes = [p.shape for p in params]
        weights = [real(p) for p in params]
        self.complex = [torch.is_complex(p) for p in params]
        self.buffers: dict[str, Tensor] = {}
        moved: set[int] = set()
        for key in (("step",) if layout.step else ()) + layout.scalar:
            values = [state[key] for state in states]
            buffer = torch.stack([v.to(values[0].dtype) for v in values])
            _move_into(states, key, buffer.unbind(), moved)
            self.buffers[key] = buffer
        self.slot_column = len(self.buffers)
        ptrs = torch.tensor([[w.data_ptr(), 0, *[st[k].data_ptr() for k in layout.vector]]
                             for w, st in zip(weights, states)], dtype=torch.int64)
        self.launch = kernels.Launch(kernel, ptrs,
                                     torch.tensor([w.numel() for w in weights], dtype=torch.int64))

    def gradients(self) -> list[Tensor] | None:
        """This step's gradients as the kernel reads them, or None if one no longer fits
        (or a parameter no longer has the shape and contiguous layout it was planned with:
        the kernel would read and write its old extent)."""
        grads = []
        for p, shape, is_complex in zip(self.params, self.shapes, self.complex):
            g = p.grad
            if g is None or g.layout is not torch.strided or g.shape != shape \
                    or p.shape != shape or not p.is_contiguous() \
                    or g.dtype != p.dtype or g.device != p.device:
                return None
            if is_complex:
                g = torch.view_as_real(g)
            # a gradient laid out differently (autograd may transpose one) is read from a
            # contiguous copy; the parameter and state are written in place, so they must be
            grads.append(g if g.is_contiguous() else g.contiguous())
        return grads

    def run(self, grads: list[Tensor], hp: dict) -> None:
        """One step with ``grads`` (from :meth:`gradients`, kept alive by the caller)."""
        launch = self.launch
        launch.ptrs_np[:, 1] = [g.data_ptr() for g in grads]
        step = self.buffers.get("step")
        if step is not None:
            step.add_(1)
        for column, buffer in enumerate(self.buffers.values()):
            launch.scalars_np[:, column] = buffer.numpy()
        launch.scalars_np[:, self.slot_column:] = kernels.slot_values(hp, self.kernel.slots)
        out = launch()
        _bump_versions(self.params)
        for j, key in enumerate(self.kernel.layout.scalar):
            self.buffers[key].copy_(out[:, j])


class _FusedPlan:
    """A group's fused step, valid while what it was built from stays the same."""

    def __init__(self, states: Any, params: list[Tensor], hp: dict, maximize: bool,
                 batches: list[_FusedBatch], rest: list[Tensor]) -> None:
        self.batches, self.rest, self.maximize = batches, rest, maximize
        self.key = self._key(states, params)
        self.structure = self._structure(hp)

    @staticmethod
    def _key(states: Any, params: list[Tensor]) -> tuple:
        """The parameters, their storage and their state (:func:`_state_key`): the kernel
        holds raw addresses, so a state tensor moved to new storage must make a new plan."""
        return (tuple(map(id, params)), tuple(p.data_ptr() for p in params),
                _state_key(states, params))

    @staticmethod
    def _structure(hp: dict) -> tuple:
        """What selects the kernel: the options, and which numbers are zero."""
        out = []
        for key, value in hp.items():
            if isinstance(value, (tuple, list)):
                # a tensor item is kept itself (the same object compares equal without
                # reading its value) with its dtype, which may send the group to the plain path
                out.append((key, tuple(v == 0 if isinstance(v, (int, float))
                                       else (v.dtype, v) if isinstance(v, Tensor)
                                       else v for v in value)))
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append((key, value == 0))
            elif isinstance(value, Tensor):  # its dtype may send the group to the plain path
                out.append((key, value.numel() == 1 and bool(value == 0), value.dtype))
            else:
                out.append((key, value))
        return tuple(out)

    def run(self, states: Any, params: list[Tensor], hp: dict, maximize: bool,
            first: bool = False, name: str = "the optimizer") -> bool:
        """Step the planned batches; False (nothing stepped) if the plan no longer fits (the
        kernels were chosen for this ``maximize`` and these hyperparameters' structure).

        With ``first`` (the plan was just made from these parameters) a gradient that does
        not fit its parameter (another shape, dtype or device: ``p.grad.data`` replaced)
        raises, naming it (``name``: the optimizer's), before anything steps."""
        if not first and (maximize != self.maximize or self._key(states, params) != self.key
                          or self._structure(hp) != self.structure):
            return False
        grads = [batch.gradients() for batch in self.batches]
        if any(g is None for g in grads):  # checked for every batch before any steps
            if first:  # the plan was just made: a gradient does not fit its parameter
                raise RuntimeError(_misfit(name, self.batches, params))
            return False
        for batch, batch_grads in zip(self.batches, grads):
            batch.run(batch_grads, hp)
        if first:
            self.key = self._key(states, params)  # the 0-d state entries became views
        return True


def _misfit(name: str, batches: list[_FusedBatch], params: list[Tensor]) -> str:
    """Why a fused plan just made cannot step (an error path only): the first parameter
    whose gradient does not fit it, by its index among ``params`` (the group's parameters
    with a gradient, in the group's order), with both tensors' shape, dtype and device."""
    for batch in batches:
        for p, shape in zip(batch.params, batch.shapes):
            g = p.grad
            if g is not None and g.layout is torch.strided and g.shape == shape \
                    and p.shape == shape and p.is_contiguous() and g.dtype == p.dtype \
                    and g.device == p.device:
                continue
            index = next((i for i, q in enumerate(params) if q is p), None)
            return _misfit_text(name, index, p, g)
    return f"{name}: a gradient changed between the fused plan and its step"


def _misfit_text(name: str, index: int | None, p: Tensor, g: Tensor | None,
                 stepped: str = "nothing of the group stepped") -> str:
    """The error for parameter ``index`` of a group whose gradient ``g`` does not fit it,
    ending with what ``stepped``."""
    if g is None:
        got = "no gradient"
    else:
        got = (f"a gradient of shape {tuple(g.shape)}, {g.dtype} on {g.device}"
               + ("" if g.layout is torch.strided else f" ({g.layout})"))
    return (f"{name}: parameter {index} of the group (counting its parameters that "
            f"have a gradient) is of shape {tuple(p.shape)}, {p.dtype} on {p.device}, "
            f"but has {got}; a gradient must have its parameter's shape, dtype and "
            f"device (was .grad or .grad.data replaced?); {stepped}")


def _first_misfit(name: str, params: list[Tensor],
                  among: list[Tensor] | None = None) -> str | None:
    """Why the multi-tensor path could not step ``params`` (an error path only): the first
    parameter whose gradient has another shape, dtype or device, counted among ``among``
    (the group's parameters with a gradient; ``params`` where not given), or None."""
    for p in params:
        g = p.grad
        if g is not None and (g.shape != p.shape or g.dtype != p.dtype or g.device != p.device):
            index = next(i for i, q in enumerate(among or params) if q is p)
            return _misfit_text(name, index, p, g, "its batch did not step (the group's "
                                "parameters of other dtypes or devices step in batches of "
                                "their own, and those before it have)")
    return None


class _MemberPlan:
    """A prepared fused step over member slices: the kernel's buffers and every address but
    the gradients'. Valid while the parameters' storage and the state tensors stay."""

    #: step the parameters last to first (see :meth:`run`)
    REVERSED = True

    def __init__(self, kernel: kernels.Kernel, params: Sequence[Tensor], states: list[dict],
                 rows: Tensor) -> None:
        layout = kernel.layout
        self.layout = layout
        self.reversed = self.REVERSED
        params, states = self._ordered(params), self._ordered(states)
        k = params[0].shape[0]
        base = torch.tensor([[t.data_ptr() for t in (p, p, *[states[i][n] for n in layout.vector])]
                             for i, p in enumerate(params)], dtype=torch.int64)
        size = torch.tensor([p[0].numel() for p in params], dtype=torch.int64)
        offsets = torch.arange(k, dtype=torch.int64)[None, :] \
            * (size * params[0].element_size())[:, None]
        # one row per member slice, parameter-major: (params, members, buffers) flattened
        ptrs = (base[:, None, :] + offsets[:, :, None]).reshape(-1, base.shape[1])
        self.launch = kernels.Launch(kernel, ptrs, size.repeat_interleave(k))
        # the hyperparameters after the step column (set on every step)
        self.launch.scalars_np[:, int(layout.step):] = rows.repeat(len(params), 1).numpy()
        self.offsets_np = offsets.numpy()
        self.members, self.n_params = k, len(params)
        # views set on every step: the gradients' addresses and the step column
        self._grad_ptrs = self.launch.ptrs_np.reshape(self.n_params, k, -1)[:, :, 1]
        self._steps = self.launch.scalars_np[:, 0].reshape(self.n_params, k)
        self._counters = Counters(states) if layout.step else None
        assert np.shares_memory(self._grad_ptrs, self.launch.ptrs_np) \
            and np.shares_memory(self._steps, self.launch.scalars_np)

    def run(self, params: Sequence[Tensor], grads: Sequence[Tensor], states: list[dict]) -> bool:
        """One fused step of every member; False (nothing stepped) if a gradient no longer
        fits. The step counters advance by the one convention, in the state.

        The kernel steps the parameters in reverse order, the first last: a network's
        first layer is what the next forward reads first, and its weights and state are
        then the ones still in cache (``train_population`` on the population benchmark's
        members ran about 4% faster for it: 2.48 s against 2.59 s, medians of 8 alternating
        pairs). Every member slice is stepped alike in any order."""
        params, grads = self._ordered(params), self._ordered(grads)
        if not _fit(params, grads):
            return False
        self._launch(params, grads)
        return True

    def _launch(self, params: list[Tensor], grads: list[Tensor]) -> None:
        """The step of :meth:`run`, on gradients that fit (in the plan's order)."""
        np.add(self.offsets_np, np.array([[g.data_ptr()] for g in grads], dtype=np.int64),
               out=self._grad_ptrs)
        if self._counters is not None:
            self._steps[...] = np.array(self._counters.advance())[:, None]
        self.launch()
        _bump_versions(params)

    def _ordered(self, items: Sequence) -> list:
        return list(items)[::-1] if self.reversed else list(items)


def _fit(params: Sequence[Tensor], grads: Sequence[Tensor]) -> bool:
    """Whether each gradient is a dense tensor of its parameter's shape, dtype and device."""
    return all(g.dtype == p.dtype and g.shape == p.shape and g.device == p.device
               and g.layout is _STRIDED for p, g in zip(params, grads))


class _MemberPlans:
    """Member plans of a population whose parameters take more than one kernel (float32
    and float64 ones) or are complex (stepped as their real view): every gradient is
    checked before any plan steps, so a gradient that no longer fits steps nothing."""

    def __init__(self, plans: list[tuple[_MemberPlan, list[int]]]) -> None:
        self.plans = plans

    def run(self, params: Sequence[Tensor], grads: Sequence[Tensor], states: list[dict]) -> bool:
        """One fused step of every member, as :meth:`_MemberPlan.run`."""
        parts = []
        for plan, indices in self.plans:
            ps = plan._ordered([real(params[i]) for i in indices])
            gs = plan._ordered([real(grads[i]) if grads[i].layout is torch.strided else grads[i]
                                for i in indices])
            if not _fit(ps, gs):
                return False
            parts.append((plan, ps, gs))
        for plan, ps, gs in parts:
            plan._launch(ps, gs)
        return True


def _state_key(states: Any, params: list[Tensor]) -> tuple:
    """What a plan read of the parameters' state: each parameter's state dict, its entries
    and the storage of each tensor entry. A plan keeps views and raw addresses of the state,
    so ``opt.state.clear()``, a replaced entry and an entry given new storage in place
    (``v.data = v.data.to(...)``, as code that moves an optimizer between devices does) must
    each make a new plan."""
    dicts = list(map(states.get, params))
    values = [value for state in dicts if state for value in state.values()]
    try:  # read every step: no per-entry layout test on the usual, all-strided state
        ptrs = [value.data_ptr() for value in values if isinstance(value, Tensor)]
    except RuntimeError:  # a sparse entry (SGD's buffer for a sparse gradient) has no pointer
        ptrs = [value.data_ptr() for value in values
                if isinstance(value, Tensor) and value.layout is torch.strided]
    return tuple(map(id, dicts)), tuple(map(id, values)), tuple(ptrs)


def _first_member(hparams: dict) -> dict:
    def first(v):
        if _is_column(v):
            return v[0]
        if isinstance(v, tuple):
            return tuple(first(x) for x in v)
        return v
    return {k: first(v) for k, v in hparams.items()}


def _is_column(value: Any) -> bool:
    """Whether a hyperparameter holds per-member values for vmap: a tensor with a member axis
    (a ``[K]`` column), or a tuple with one; a 0-d tensor is one value for every member."""
    if isinstance(value, tuple):
        return any(_is_column(v) for v in value)
    return isinstance(value, Tensor) and value.dim() > 0
