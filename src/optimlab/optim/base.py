"""The step driver every optimlab optimizer shares.

An algorithm is two pure functions, written once in its own module:

* ``init(p, **hp) -> dict``: the state of one parameter before its first step;
* ``update(p, g, state, *, step, **hp) -> Tensor``: one step of the rule. It receives the
  parameter ``p`` and the (already sign-adjusted) gradient ``g``, rebinds the entries of
  ``state`` to their new values and returns the new parameter. It never mutates ``p``,
  ``g`` or a state tensor in place.

Because the rule only uses elementwise arithmetic on whatever it is given, the same function
runs unchanged when ``p`` carries a leading member axis and the hyperparameters are tensors
broadcast along it (populations, landscape races) and can be compiled into a fused kernel.
Two conventions keep that true:

* numeric hyperparameters are only used arithmetically; a branch on a value goes through
  :func:`nonzero`, which treats a tensor hyperparameter as "maybe nonzero";
* Python ``bool`` options (``amsgrad``, ``nesterov``, ...) may branch freely: they are
  structural and shared by every member of a population.

:class:`RuleOptimizer` turns such a pair into a ``torch.optim.Optimizer``: it handles
closures, ``maximize``, the step counter, lazy state, complex parameters, the opt-in guard
against non-finite gradients and state_dict validation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "RuleOptimizer",
    "nonzero",
    "check_range",
    "check_betas",
    "scalar_step",
    "COMMON_ARGS_DOC",
    "common_args_doc",
]

Hyper = float | Tensor


#: set by :mod:`optimlab.optim.kernels` while it probes which hyperparameters a rule
#: branches on (those are structural for a fused kernel when exactly zero)
_NONZERO_PROBE: Callable[[Hyper], None] | None = None


def nonzero(x: Hyper) -> bool:
    """Whether a hyperparameter may be nonzero (a tensor counts as "maybe")."""
    if _NONZERO_PROBE is not None:
        _NONZERO_PROBE(x)
    return isinstance(x, Tensor) or x != 0


def scalar_step() -> Tensor:
    """A fresh step counter, stored like torch does (float32 unless float64 is default)."""
    dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    return torch.tensor(0.0, dtype=dtype)


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"


def check_range(
    name: str,
    value: Any,
    low: float | None = 0.0,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = True,
) -> None:
    """Raise ``ValueError`` naming ``name`` and the allowed interval if ``value`` is outside.

    ``value`` may be a Python number or a one-element tensor. The interval is closed at
    ``low`` and open at ``high`` unless told otherwise.
    """
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a number or a 1-element tensor, got shape {tuple(value.shape)}")
        number = value.item()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    else:
        number = float(value)
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if math.isnan(number) or below or above:
        raise ValueError(f"{name} must be in {_interval(low, high, low_open, high_open)}, got {value!r}")


def check_betas(betas: Any, name: str = "betas") -> None:
    """Check a pair of decay rates, each in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        check_range(f"{name}[{i}]", beta, 0.0, 1.0)


_MAXIMIZE_DOC = """\
        maximize (bool, optional): maximize the objective instead of minimizing it
            (default: False)."""
_FOREACH_DOC = """
        foreach (bool, optional): accepted for drop-in compatibility with ``torch.optim``;
            the plain path ignores it (default: None)."""
_SKIP_NONFINITE_DOC = """
        skip_nonfinite (bool, optional): opt-in guard. When any gradient holds NaN or inf,
            skip the whole step (parameters and state untouched) and count it in
            ``skipped_steps``. The default (False) behaves like ``torch.optim``: non-finite
            gradients flow into the parameters and state."""


_FUSED_DOC = """
        fused (bool, optional): run the step as one generated C loop over all parameters
            (:mod:`optimlab.optim.kernels`). None (default) fuses what can be: CPU tensors of
            float32/float64, where a C compiler is available, the rest taking the plain path;
            True requires it and raises otherwise; False always takes the plain path."""


def common_args_doc(foreach: bool = True, fused: bool = True) -> str:
    """The documentation of the keyword arguments every optimizer shares, written once."""
    return (_MAXIMIZE_DOC + (_FOREACH_DOC if foreach else "") + (_FUSED_DOC if fused else "")
            + _SKIP_NONFINITE_DOC)


COMMON_ARGS_DOC = common_args_doc()


class _FusedBatch:
    """One kernel call's worth of a group: the tensors of one dtype and state layout.

    Everything but the gradients' addresses, the step and the hyperparameters' values is set
    up once. The 0-d state entries (the step, NAdam's product) become views into one buffer
    per entry, so a step advances every counter with one operation and the kernel reads
    them as one column.
    """

    def __init__(self, kernel, params: list[Tensor], states: list[dict]):
        layout = kernel.layout
        self.kernel, self.params = kernel, params
        weights = [torch.view_as_real(p) if torch.is_complex(p) else p for p in params]
        self.complex = [torch.is_complex(p) for p in params]
        self.buffers: dict[str, Tensor] = {}
        for key in (("step",) if layout.step else ()) + layout.scalar:
            values = [state[key] for state in states]
            buffer = torch.stack([v.to(values[0].dtype) for v in values])
            for i, state in enumerate(states):
                state[key] = buffer[i]
            self.buffers[key] = buffer
        from .kernels import Launch

        self.slot_column = len(self.buffers)
        ptrs = torch.tensor([[w.data_ptr(), 0, *[st[k].data_ptr() for k in layout.vector]]
                             for w, st in zip(weights, states)], dtype=torch.int64)
        self.launch = Launch(kernel, ptrs,
                             torch.tensor([w.numel() for w in weights], dtype=torch.int64))

    def gradients(self) -> list[Tensor] | None:
        """This step's gradients as the kernel reads them, or None if one no longer fits."""
        grads = []
        for p, is_complex in zip(self.params, self.complex):
            g = p.grad
            if g is None or g.layout is not torch.strided or g.shape != p.shape \
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
        from .kernels import slot_values

        launch = self.launch
        launch.ptrs_np[:, 1] = [g.data_ptr() for g in grads]
        step = self.buffers.get("step")
        if step is not None:
            step.add_(1)
        for column, buffer in enumerate(self.buffers.values()):
            launch.scalars_np[:, column] = buffer.numpy()
        launch.scalars_np[:, self.slot_column:] = slot_values(hp, self.kernel.slots)
        out = launch()
        for j, key in enumerate(self.kernel.layout.scalar):
            self.buffers[key].copy_(out[:, j])


class _FusedPlan:
    """A group's fused step, valid while what it was built from stays the same."""

    def __init__(self, opt: RuleOptimizer, params: list[Tensor], hp: dict,
                 batches: list[_FusedBatch], rest: list[Tensor]):
        self.batches, self.rest = batches, rest
        self.key = self._key(opt, params)
        self.structure = self._structure(hp)

    @staticmethod
    def _key(opt: RuleOptimizer, params: list[Tensor]) -> tuple:
        state = opt.state
        return (tuple(map(id, params)), tuple(p.data_ptr() for p in params),
                tuple(id(v) for p in params if p in state for v in state[p].values()))

    @staticmethod
    def _structure(hp: dict) -> tuple:
        """What selects the kernel: the options, and which numbers are zero."""
        out = []
        for key, value in hp.items():
            if isinstance(value, (tuple, list)):
                out.append((key, tuple(v == 0 if isinstance(v, (int, float)) else v
                                       for v in value)))
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append((key, value == 0))
            elif isinstance(value, Tensor):
                out.append((key, value.numel() == 1 and bool(value == 0)))
            else:
                out.append((key, value))
        return tuple(out)

    def run(self, opt: RuleOptimizer, params: list[Tensor], hp: dict, first: bool = False) -> bool:
        """Step the planned batches; False (nothing stepped) if the plan no longer fits."""
        if not first and (self._key(opt, params) != self.key
                          or self._structure(hp) != self.structure):
            return False
        grads = [batch.gradients() for batch in self.batches]
        if any(g is None for g in grads):  # checked for every batch before any steps
            if first:  # cannot happen: the analysis that built the plan checked them
                raise RuntimeError("a gradient changed between the fused plan and its step")
            return False
        for batch, batch_grads in zip(self.batches, grads):
            batch.run(batch_grads, hp)
        if first:
            self.key = self._key(opt, params)  # the 0-d state entries became views
        return True


class RuleOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` that applies a pure rule to each parameter.

    Subclasses set ``init`` and ``update`` (see the module docstring) as static methods
    and pass their checked hyperparameters as ``defaults``.
    """

    init: Callable[..., dict]
    update: Callable[..., Tensor]
    #: whether ``update`` accepts sparse gradients (see :class:`optimlab.Adagrad`).
    supports_sparse: bool = False
    #: how :class:`optimlab.optim.population.Population` runs the rule over a member axis:
    #: ``"elementwise"`` (the rule broadcasts as is), ``"vmap"`` (it reduces over whole
    #: tensors, so it is mapped over members) or ``"member"`` (one instance per member).
    population: str = "elementwise"
    #: whether every parameter must be a matrix (Muon).
    needs_matrix: bool = False
    #: whether the rule can run as a fused kernel (:mod:`optimlab.optim.kernels`); such a
    #: class takes ``fused=None`` (auto), ``True`` or ``False`` like ``torch.optim.Adam``.
    supports_fused: bool = False

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        defaults: dict[str, Any],
        *,
        skip_nonfinite: bool = False,
    ) -> None:
        check_range("lr", defaults["lr"], 0.0)
        self.skip_nonfinite = bool(skip_nonfinite)
        self.skipped_steps = 0
        #: structures the fused path could not take (a missing compiler, an unsupported op),
        #: so ``fused=None`` does not retry them every step
        self._fused_refused: dict = {}
        super().__init__(params, defaults)

    def _check_fused(self, group: dict) -> None:
        fused = group.get("fused")
        if fused not in (None, True, False):
            raise ValueError(f"fused must be None, True or False, got {fused!r}")
        if not fused:
            return
        name = type(self).__name__
        if not self.supports_fused:
            raise ValueError(f"{name} has no fused implementation; use fused=None or False")
        if group.get("foreach"):
            raise ValueError("`fused` and `foreach` cannot be `True` together.")
        for p in group["params"]:
            weight = torch.view_as_real(p) if torch.is_complex(p) else p
            if p.device.type != "cpu" or weight.dtype not in (torch.float32, torch.float64):
                raise ValueError(
                    f"{name}(fused=True) supports CPU tensors of float32 and float64 (complex "
                    f"as their real view), got a {p.dtype} tensor on {p.device}; use "
                    "fused=None to fuse what can be and run the rest on the plain path")

    # -- the step driver -------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step.

        Args:
            closure (Callable, optional): re-evaluates the model and returns the loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.skip_nonfinite and not self._grads_are_finite():
            self.skipped_steps += 1
            return loss
        for group in self.param_groups:
            # torch's __setstate__ adds keys (e.g. ``differentiable``) to ``defaults`` that an
            # older group may lack, so fall back to the default value.
            hp = {key: group.get(key, value) for key, value in self.defaults.items()}
            self._step_group(group, hp)
        return loss

    def add_param_group(self, param_group: dict) -> None:  # noqa: D102 (torch's docstring)
        super().add_param_group(param_group)
        self._check_fused(self.param_groups[-1])

    def _step_group(self, group: dict, hp: dict) -> None:
        """Step every parameter of one group (a subclass may add group-level bookkeeping)."""
        params = [p for p in group["params"] if p.grad is not None]
        if self.supports_fused and group.get("fused") is not False:
            params = self._step_fused(params, group, hp)
        for p in params:
            self._step_param(p, p.grad, group, hp)

    def _step_fused(self, params: list[Tensor], group: dict, hp: dict) -> list[Tensor]:
        """Step what the fused kernel can take; return the parameters left for the plain path.

        A parameter qualifies when it is a contiguous CPU tensor of float32 or float64
        (complex through its real view) with a dense gradient (read from a contiguous copy if
        it is laid out differently) and its state is complete (SGD's momentum buffer exists
        only after the first step, which the plain path takes).

        The analysis is kept as a plan (:class:`_FusedPlan`) while the group's parameters,
        their storage, their state tensors and the hyperparameters' structure stay the same,
        so a step costs the kernel plus a few microseconds per tensor.
        """
        plans = self.__dict__.setdefault("_fused_plans", {})  # absent after unpickling
        plan = plans.get(id(group))
        if plan is None or not plan.run(self, params, hp):
            plan = plans[id(group)] = self._plan_fused(params, group, hp)
            plan.run(self, params, hp, first=True)
        return plan.rest

    def _plan_fused(self, params: list[Tensor], group: dict, hp: dict) -> _FusedPlan:
        from . import kernels  # the fast path is loaded only by those who step with it

        required = group.get("fused") is True
        rest: list[Tensor] = []
        waiting: list[Tensor] = []
        batches: dict = {}
        for p in params:
            grad = p.grad
            weight = torch.view_as_real(p) if torch.is_complex(p) else p
            if (grad.is_sparse or p.device.type != "cpu" or weight.dtype not in kernels.DTYPES
                    or not p.is_contiguous()):
                rest.append(p)
                continue
            state = self.state[p]
            if not state:
                state.update(self.init(weight, **hp))
            layout = kernels.Layout.of(state, weight)
            if layout is None:
                rest.append(p)
                continue
            batches.setdefault((weight.dtype, layout), []).append(p)
        maximize = bool(group.get("maximize", False))
        runs = []
        for (dtype, layout), batch in batches.items():
            if not required and sum(p.numel() for p in batch) < kernels.MIN_NUMEL:
                rest += batch  # too small for the call to pay for itself
                continue
            try:
                kernel = self._fused_kernel(dtype, layout, hp, maximize, required)
            except kernels.StateNotReady:
                waiting += batch  # the plain step creates the buffer; later steps fuse
                continue
            except (kernels.Unsupported, kernels.CompilerUnavailable):
                rest += batch
                continue
            runs.append(_FusedBatch(kernel, batch, [self.state[p] for p in batch]))
        if required and rest:
            raise RuntimeError(
                f"{type(self).__name__}(fused=True) cannot fuse {len(rest)} parameter(s): they "
                "need dense, contiguous CPU gradients and parameters of float32 or float64")
        return _FusedPlan(self, params, hp, runs, rest + waiting)

    def _fused_kernel(self, dtype, layout, hp: dict, maximize: bool, required: bool):
        from . import kernels

        key = (dtype, layout, maximize)
        refused = self.__dict__.setdefault("_fused_refused", {})  # absent after unpickling
        if key in refused and not required:
            raise kernels.Unsupported(refused[key])
        try:
            return kernels.kernel(self.update, dtype, layout, hp, maximize)
        except kernels.StateNotReady:
            raise
        except (kernels.Unsupported, kernels.CompilerUnavailable) as error:
            if required:
                raise RuntimeError(f"{type(self).__name__}(fused=True): {error}") from error
            refused[key] = str(error)
            raise

    def _step_param(self, p: Tensor, grad: Tensor, group: dict, hp: dict) -> None:
        if grad.is_sparse and not self.supports_sparse:
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        if group.get("maximize", False):
            grad = -grad
        weight = p
        if torch.is_complex(p):
            # Treat a complex number as two real ones, as torch.optim does.
            weight, grad = torch.view_as_real(p), torch.view_as_real(grad)
        state = self.state[p]
        if not state:
            state.update(self.init(weight, **hp))
        step = None
        if "step" in state:
            state["step"] += 1
            step = state["step"].item()
        new = self.update(weight, grad, state, step=step, **hp)
        weight.copy_(new)

    def _grads_are_finite(self) -> bool:
        flags = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    g = p.grad._values() if p.grad.is_sparse else p.grad
                    flags.append(torch.isfinite(g).all())
        return bool(torch.stack(flags).all()) if flags else True

    # -- state_dict ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Torch's state_dict plus an ``optimlab`` entry naming the optimizer class."""
        sd = super().state_dict()
        sd["optimlab"] = {
            "optimizer": type(self).__name__,
            "skipped_steps": self.skipped_steps,
            # lets a load tell a different model apart even when no state tensor shows it
            "param_shapes": [[list(p.shape) for p in g["params"]] for g in self.param_groups],
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict, refusing one from another optimizer or a mismatched model.

        State saved by the matching ``torch.optim`` class loads too (same keys).
        """
        tag = state_dict.get("optimlab")
        name = type(self).__name__
        if tag is not None and tag.get("optimizer") != name:
            raise ValueError(
                f"this state_dict was saved by optimlab.{tag.get('optimizer')}, "
                f"it cannot be loaded into optimlab.{name}"
            )
        self._check_saved_state(state_dict, (tag or {}).get("param_shapes"))
        super().load_state_dict(state_dict)
        if tag is not None:
            self.skipped_steps = int(tag.get("skipped_steps", 0))

    def _check_saved_state(self, state_dict: dict[str, Any], shapes: list | None) -> None:
        name = type(self).__name__
        saved_groups = state_dict.get("param_groups")
        if saved_groups is None or "state" not in state_dict:
            raise ValueError("not an optimizer state_dict: missing 'state' or 'param_groups'")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"state_dict has {len(saved_groups)} parameter groups, "
                f"{name} has {len(self.param_groups)}: was it saved for another model?"
            )
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"parameter group {index} has {len(group['params'])} parameters but the "
                    f"state_dict has {len(saved['params'])}: was it saved for another model?"
                )
            if shapes is not None:
                for position, (shape, p) in enumerate(zip(shapes[index], group["params"])):
                    if tuple(shape) != tuple(p.shape):
                        raise ValueError(
                            f"parameter {position} of group {index} has shape {tuple(p.shape)} "
                            f"but the state_dict was saved for shape {tuple(shape)}: was it "
                            "saved for another model?"
                        )
            hp = {key: saved.get(key, group.get(key, value))
                  for key, value in self.defaults.items()}
            for pid, p in zip(saved["params"], group["params"]):
                state = state_dict["state"].get(pid)
                if state:
                    self._check_param_state(pid, p, state, hp)

    def _check_param_state(self, pid: Any, p: Tensor, state: dict, hp: dict) -> None:
        name = type(self).__name__
        meta = torch.empty_like(p, device="meta")
        if torch.is_complex(meta):
            meta = torch.view_as_real(meta)
        expected = self.init(meta, **hp)
        if set(state) != set(expected):
            raise ValueError(
                f"state of parameter {pid} has keys {sorted(state)} but {name} keeps "
                f"{sorted(expected)}: was this state_dict saved by a different optimizer?"
            )
        for key, want in expected.items():
            have = state[key]
            if want is None and isinstance(have, Tensor):
                want = meta  # a lazily created buffer (SGD's momentum) is parameter-shaped
            if isinstance(want, Tensor) and want.dim() > 0:
                shape = tuple(have.shape) if isinstance(have, Tensor) else type(have).__name__
                if shape != tuple(want.shape):
                    raise ValueError(
                        f"state '{key}' of parameter {pid} has shape {shape} but the parameter "
                        f"needs {tuple(want.shape)}: was this state_dict saved for another model?"
                    )
