"""The ``torch.optim`` front end every optimlab optimizer shares.

An algorithm is a rule, two pure functions written once in its own module (the contract is
in :mod:`optimlab.optim.rule`), plus a class: :class:`RuleOptimizer` turns the pair into a
``torch.optim.Optimizer``. It checks hyperparameters, handles closures, the opt-in guard
against non-finite gradients and state_dict validation, and hands each param group to the
one :class:`~optimlab.optim.engine.Engine`, which runs the rule (multi-tensor, per tensor or
fused) and owns the state, the step counter, ``maximize`` and complex parameters.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import numbers
import sys
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.parameter import is_lazy
from torch.optim.optimizer import ParamsT

from . import compact
from .capabilities import DRIVER_FLAGS, Capabilities, hyperparameters
from .engine import Engine, real
from .probe import rule_traits
from .rule import nonzero, scalar_step

__all__ = [
    "ArgumentTypeError",
    "argument_error",
    "is_real",
    "TorchOptimizer",
    "RuleOptimizer",
    "nonzero",
    "check_range",
    "check_betas",
    "check_pair",
    "check_items",
    "check_int",
    "check_state_dict",
    "check_saved_name",
    "saved_shape",
    "saved_name",
    "takes_saved_name",
    "optimizer_getstate",
    "step_without_global_hooks",
    "step_by_hand",
    "scalar_step",
    "COMMON_ARGS_DOC",
    "check_torch_flag",
    "check_callable",
    "torch_flags_doc",
    "python_numbers",
    "common_args_doc",
]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong kind: a string where a number goes, ``1`` for a bool, a
    number where a pair goes.

    A ``TypeError``, as Python's convention has it (and as ``torch.optim`` fails on such
    input), and a ``ValueError``, as optimlab raised for every bad argument before: code
    that catches either keeps working. An argument of the right kind with a wrong value
    (``lr=-1``, ``betas=(1.0, 0.9)``) raises a plain ``ValueError``.

    >>> import optimlab
    >>> optimlab.Adam([], lr="0.1")
    Traceback (most recent call last):
    optimlab.optim.base.ArgumentTypeError: lr must be a number, got '0.1'
    """


def argument_error(right_kind: bool) -> type[ValueError]:
    """The exception to raise for a refused argument: ``ValueError`` where the argument is
    of the right kind with a wrong value (``steps=0``), :class:`ArgumentTypeError` (a
    ``TypeError`` too) where it is not of the right kind at all (``steps="3"``).

    >>> argument_error(is_real(-1.0)).__name__, argument_error(is_real("1")).__name__
    ('ValueError', 'ArgumentTypeError')
    """
    return ValueError if right_kind else ArgumentTypeError


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number of any size, inf and NaN included: Python's or
    NumPy's int or float (or another ``numbers.Real``), not a bool. The kind check that
    :func:`argument_error` takes; whether the value is allowed is the caller's."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


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
    """Raise ``ValueError`` naming ``name`` and the allowed interval if ``value`` is outside
    (:class:`ArgumentTypeError`, a ``TypeError`` too, if it is not a real number).

    ``value`` may be a real number (Python's, or NumPy's ``float32``/``int64``/...: what
    ``torch.optim`` takes too; not a bool) or a one-element tensor. The interval is closed at
    ``low`` and open at ``high`` unless told otherwise. Whatever the interval, a value must
    be finite and within float32's range (:data:`LARGEST`): a hyperparameter of inf, NaN or
    1e39 can only turn the weights into NaN, so it is refused up front.
    """
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]  # a 0-d array, as torch.optim takes it: its NumPy scalar
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a number or a 1-element tensor, got shape "
                             f"{tuple(value.shape)}")
        if value.is_complex():
            raise ArgumentTypeError(f"{name} must be a real number, got {_short(value)}")
        number = value.item()
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a number, got {_short(value)}")
    else:
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            number = math.inf
    if not math.isfinite(number) or abs(number) > LARGEST:
        raise ValueError(f"{name} must be a finite number of magnitude at most {LARGEST:.4g} "
                         f"(float32's largest), got {_short(value)}")
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if below or above:
        raise ValueError(f"{name} must be in {_interval(low, high, low_open, high_open)}, "
                         f"got {_short(value)}")


#: the largest magnitude a hyperparameter may have: float32's largest finite number
LARGEST = float(torch.finfo(torch.float32).max)


def _short(value: Any) -> str:
    """``repr(value)`` on one line and at most 60 characters (an int of 400 digits, a tensor)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(name: str, value: Any, low: int = 0, high: int = 2**63 - 1) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (Python's or NumPy's, not a bool;
    :class:`ArgumentTypeError` where it is not an integer at all) in ``[low, high]`` (by
    default at most 2**63 - 1, what a store or a float index can hold): "steps must be an
    integer >= 1, got 0", or "... in [2, 401] ..." with a bound (and "... in [1, 2**63)
    ..." for an integer beyond the default one).

    >>> check_int("steps", 0, 1)
    Traceback (most recent call last):
    ValueError: steps must be an integer >= 1, got 0
    """
    integer = not isinstance(value, bool) and isinstance(value, numbers.Integral)
    if not integer or not low <= value <= high:
        error = ValueError if integer else ArgumentTypeError
        if high != 2**63 - 1:
            wanted = f"in [{low}, {high}]"
        else:  # the default bound, named only to a value beyond it
            wanted = f"in [{low}, 2**63)" if integer and value > high else f">= {low}"
        raise error(f"{name} must be an integer {wanted}, got {_short(value)}")


def check_callable(name: str, value: Any, called: str = "") -> None:
    """Raise ``TypeError`` unless ``value`` is None or can be called: a callback (a progress
    tick, say) found wrong when it is first called would fail mid-run. ``called`` says
    how it is called, for the message: "progress must be a callable (called with 1 after
    each step) or None, got int".

    >>> check_callable("progress", 5)
    Traceback (most recent call last):
    TypeError: progress must be a callable or None, got int
    """
    if value is not None and not callable(value):
        how = f" ({called})" if called else ""
        raise TypeError(f"{name} must be a callable{how} or None, got {type(value).__name__}")


def check_bool(name: str, value: Any) -> None:
    """Raise :class:`ArgumentTypeError` unless ``value`` is ``True`` or ``False`` (Python's or
    NumPy's ``np.bool_``, which a param group stores as Python's): a switch of the rule,
    where ``1`` or ``"False"`` would be taken for true without a word."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be a bool, got {_short(value)}")


def nonfinite_guard(value: Any) -> tuple[bool, Any]:
    """``skip_nonfinite`` read as (whether the guard is on, the process group its flag is
    reduced over or None): a bool, or a ``torch.distributed.ProcessGroup`` (the guard on,
    shared by that group's processes); anything else raises :class:`ArgumentTypeError`."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value), None
    import torch.distributed as dist

    if dist.is_available() and isinstance(value, dist.ProcessGroup):
        return True, value
    raise ArgumentTypeError(f"skip_nonfinite must be a bool or a torch.distributed "
                            f"ProcessGroup, got {_short(value)}")


def _is_process_group(value: Any) -> bool:
    """Whether ``value`` is a ``torch.distributed.ProcessGroup`` (``skip_nonfinite`` given one)."""
    if isinstance(value, (bool, int, float, str, type(None))):
        return False
    import torch.distributed as dist

    return dist.is_available() and isinstance(value, dist.ProcessGroup)


def _guard_groups_as_true(groups: list[dict]) -> None:
    """Write True for a group's ``skip_nonfinite`` that is a process group.

    ``ZeroRedundancyOptimizer`` copies its keyword arguments, ``skip_nonfinite=dist.group.WORLD``
    included, into its own param groups and this optimizer's, and after every step copies
    this optimizer's groups' keys into its own: True here makes ZeRO's groups hold True from
    the first step on, so that its consolidated ``state_dict()`` (whose groups are ZeRO's)
    can be pickled, deep-copied and loaded (``torch.optim.Optimizer.load_state_dict``
    deep-copies the saved groups). The guard reads the process group it was built with
    (``_nonfinite_group``), never the group's key.
    """
    for group in groups:
        if _is_process_group(group.get("skip_nonfinite")):
            group["skip_nonfinite"] = True


class _SharedGroup:
    """The process group of ``skip_nonfinite``: a copy of the optimizer in this process
    (``copy.deepcopy``) shares it; one meant for another process cannot carry it."""

    __slots__ = ("group",)

    def __init__(self, group: Any) -> None:
        self.group = group

    def __deepcopy__(self, memo: dict) -> _SharedGroup:
        return self

    def __reduce__(self):
        raise TypeError("an optimizer whose skip_nonfinite is a process group cannot be "
                        "pickled (a process group belongs to this process): save its "
                        "state_dict() instead")


def all_true(flags: Sequence[Tensor]) -> Tensor | None:
    """The logical and of 0-d bool ``flags`` as one 0-d tensor, None if there are none.

    Flags on several devices (parameters spread over a CPU and accelerators) are reduced on
    each device, then on the first accelerator's: ``torch.stack`` takes tensors of one
    device only, and reading one accelerator's answer costs one sync where reading each
    device's would cost one per device (the CPU's flags cross as a few bytes).
    """
    if not flags:
        return None
    device = flags[0].device
    if all(f.device == device for f in flags):
        return torch.stack(flags).all()
    by_device: dict[torch.device, list[Tensor]] = {}
    for f in flags:
        by_device.setdefault(f.device, []).append(f)
    home = next((d for d in by_device if d.type != "cpu"), device)
    return torch.stack([torch.stack(fs).all().to(home) for fs in by_device.values()]).all()


def _reduction_device(process_groups: Sequence[Any], flag: Tensor | None) -> torch.device:
    """Where a flag all-reduced over ``process_groups`` must be: on this process's CUDA
    device for NCCL (which reduces CUDA tensors only), its XPU for XCCL, else where the flag
    is (the CPU if there is none: gloo reduces CPU tensors)."""
    import torch.distributed as dist

    backends = {dist.get_backend(group) for group in process_groups}
    if "nccl" in backends:
        return torch.device("cuda", torch.cuda.current_device())
    if "xccl" in backends:  # Intel GPUs' collectives, XPU tensors only
        return torch.device("xpu", torch.xpu.current_device())
    return flag.device if flag is not None else torch.device("cpu")


def as_items(value: Any) -> list | None:
    """The items of a sequence argument (``betas``, ``etas``, ...) as a list, or None where
    ``value`` is not one: a tuple or list, and as ``torch.optim`` takes them, any other
    sequence (OmegaConf's ``ListConfig``, which Hydra's ``instantiate`` passes for a YAML
    list) or a 1-D NumPy array. A string, a tensor or a number is not a sequence here.

    >>> as_items(np.array([0.9, 0.999])), as_items("ab")
    ([0.9, 0.999], None)
    """
    if isinstance(value, np.ndarray):
        return value.tolist() if value.ndim == 1 else None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return None
    return list(value)


def check_items(name: str, value: Any, count: int, what: str) -> list:
    """The ``count`` items of the sequence argument ``value`` (:func:`as_items`): where it is
    no sequence, :class:`ArgumentTypeError`; where it holds another number of items,
    ``ValueError``; either says "``name`` must be ``what``, got ...".

    >>> check_items("betas", 0.9, 2, "a pair (beta1, beta2)")
    Traceback (most recent call last):
    optimlab.optim.base.ArgumentTypeError: betas must be a pair (beta1, beta2), got 0.9
    """
    items = as_items(value)
    if items is None or len(items) != count:
        error = ArgumentTypeError if items is None else ValueError
        raise error(f"{name} must be {what}, got {_short(value)}")
    return items


def check_pair(name: str, pair: Any, low: float | None = 0.0, high: float | None = None,
               **bounds: Any) -> None:
    """Check a pair of numbers (``(low, high)`` style arguments: Rprop's ``etas``, ...), each
    with :func:`check_range` and the same interval."""
    items = check_items(name, pair, 2, "a pair of numbers")
    for i, value in enumerate(items):
        check_range(f"{name}[{i}]", value, low, high, **bounds)


_TORCH_FLAG_USE = {
    "capturable": "a step captured in a CUDA graph",
    "differentiable": "gradients through the step itself (meta-learning)",
}


def check_torch_flag(cls_name: str, flag: str, value: Any) -> None:
    """``capturable`` or ``differentiable``, which ``torch.optim``'s classes take: accepted at
    their default (False), so code written for ``torch.optim`` runs unchanged; True raises
    ``ValueError`` saying what to use instead (optimlab's step runs under ``no_grad``, with
    host-side step counters and kernels)."""
    check_bool(flag, value)
    if value:
        raise ValueError(f"{cls_name}({flag}=True) is not supported: optimlab's step does not "
                         f"offer {_TORCH_FLAG_USE[flag]}; use torch.optim.{cls_name}"
                         f"({flag}=True) for that")


#: ``torch.optim``'s flags optimlab takes at False only (:func:`check_torch_flag`)
_TORCH_FLAGS = tuple(_TORCH_FLAG_USE)


@functools.cache
def _cuda_here() -> bool:
    """Whether this torch is built with CUDA and sees a device (once per process: a step
    asks at every call, :func:`_check_not_capturing`)."""
    return torch.backends.cuda.is_built() and torch.cuda.is_available()


def _check_not_capturing(cls_name: str) -> None:
    """Raise ``RuntimeError`` if the current CUDA stream is capturing a graph, as
    ``torch.optim`` does for a step whose ``capturable`` is False: optimlab's step counters
    are CPU tensors read on the host, which a captured step would leave where they were at
    capture. Checked as torch checks it (CUDA built and available first): nothing more than
    a flag read on a CPU-only build."""
    if _cuda_here() and not torch.compiler.is_compiling() \
            and torch.cuda.is_current_stream_capturing():
        raise RuntimeError(
            f"Attempting CUDA graph capture of step() for an instance of {cls_name}, which is "
            "not capturable: optimlab steps with host-side step counters, which a captured "
            "graph would freeze; run the step outside the capture")


def check_betas(betas: Any, name: str = "betas", *, same_kind: bool = False) -> None:
    """Check a pair of decay rates, each in [0, 1): a number or a 1-element tensor.

    With ``same_kind`` (the rule of ``torch.optim.Adam`` and ``AdamW``) the two must be
    both tensors or both numbers.
    """
    items = check_items(name, betas, 2, "a pair (beta1, beta2)")
    for i, beta in enumerate(items):
        check_range(f"{name}[{i}]", beta, 0.0, 1.0)
    if same_kind and isinstance(items[0], Tensor) != isinstance(items[1], Tensor):
        raise ArgumentTypeError(f"{name} must be either both floats or both Tensors, got {betas!r}")


_MAXIMIZE_DOC = """\
        maximize (bool, optional): maximize the objective instead of minimizing it
            (default: False)."""
_FOREACH_DOC = """
        foreach (bool, optional): None (default) or True steps the plain path over all
            tensors at once (multi-tensor), False tensor by tensor (the same results, which
            in bfloat16 and float16 are those of ``torch.optim``'s for-loop path, not of its
            foreach path); True together with ``fused=True`` is refused."""
_SKIP_NONFINITE_DOC = """
        skip_nonfinite (bool or ProcessGroup, optional): opt-in guard. When any gradient
            holds NaN or inf, skip the whole step (parameters and state untouched) and count it in
            ``skipped_steps``. The default (False) behaves like ``torch.optim``: non-finite
            gradients flow into the parameters and state. A ``torch.distributed``
            ``ProcessGroup`` turns the guard on and makes every process of that group skip
            together (the "found a non-finite gradient" flag is all-reduced over it each
            step): for ``ZeroRedundancyOptimizer``, whose processes each step their own
            partition of the parameters, pass ``skip_nonfinite=dist.group.WORLD`` (or ZeRO's
            ``process_group``). FSDP2's sharded gradients need no group."""


_FUSED_DOC = """
        fused (bool, optional): run the step as one generated C loop over all parameters
            (:mod:`optimlab.optim.kernels`). None (default) fuses what can be: CPU tensors of
            float32/float64, where a C compiler is available, the rest taking the plain path;
            True requires it for the CPU float32/float64 tensors and raises where one cannot
            be fused as laid out (float16/bfloat16 and other devices, which torch's
            ``fused=True`` takes, step on the plain path with a warning); False always takes
            the plain path."""


_STATE_PRECISION_DOC = """
        state_precision (str or None, optional): keep the moment buffers in less memory
            between steps: ``"bfloat16"`` (2 bytes per element, stochastic rounding) or
            ``"int8"`` (blockwise 8-bit, about 1 byte), decoded for the step and encoded
            after it (:mod:`optimlab.optim.compact`); None (default) keeps them in the
            parameter's dtype. Not with ``fused=True``."""


def torch_flags_doc(capturable: bool = True) -> str:
    """The documentation of ``torch.optim``'s ``capturable`` and ``differentiable`` flags,
    which the classes sharing torch's signature accept at False (``capturable``: where
    torch's class has it)."""
    names = "capturable, differentiable (bool, optional)" if capturable else \
        "differentiable (bool, optional)"
    return f"""
        {names}: accepted for drop-in compatibility with
            ``torch.optim``, at False (the default); True raises ``ValueError`` (no CUDA
            graph capture, no gradient through the step: use ``torch.optim`` for those)."""


def common_args_doc(foreach: bool = True, fused: bool = True,
                    state_precision: bool = True) -> str:
    """The documentation of the keyword arguments every optimizer shares, written once
    (``state_precision``: the class keeps moments, :attr:`Capabilities.moments`)."""
    return (_MAXIMIZE_DOC + (_FOREACH_DOC if foreach else "") + (_FUSED_DOC if fused else "")
            + _SKIP_NONFINITE_DOC + (_STATE_PRECISION_DOC if state_precision else ""))


COMMON_ARGS_DOC = common_args_doc()


#: what a copy of an optimizer (``copy.deepcopy``, ``pickle``, ``torch.save`` of the object)
#: leaves out: torch's hook registries (torch's own copies drop them too, since a hook may be
#: a lambda; ``__setstate__`` makes them empty again) and the engine, a cache of plans and
#: compiled kernels made again on first use
NOT_COPIED = frozenset({
    "_optimizer_step_pre_hooks", "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks", "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks", "_optimizer_load_state_dict_post_hooks",
    "_engine",
    # what a torch.optim.lr_scheduler puts on the instance: ``step`` wrapped around a weak
    # reference to *this* optimizer (a copy keeping it would step the original) and its flag
    "step", "_opt_called",
})


def optimizer_getstate(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``__getstate__`` for optimlab's optimizers: every attribute but :data:`NOT_COPIED`.

    ``torch.optim.Optimizer.__getstate__`` keeps only ``defaults``, ``state`` and
    ``param_groups``, which is all a torch optimizer has; optimlab's also carry the non-finite
    guard and its counter, and a wrapper its wrapped optimizer, without which a copy's first
    ``step()`` fails.
    """
    return {k: v for k, v in optimizer.__dict__.items() if k not in NOT_COPIED}


def check_state_dict(state_dict: Any) -> None:
    """Raise ``ValueError`` unless ``state_dict`` looks like an optimizer's state_dict: a
    mapping with a ``state`` mapping and a ``param_groups`` list of mappings, each with a
    ``params`` list (``load_state_dict(None)`` would otherwise fail deep inside torch)."""
    if not isinstance(state_dict, Mapping):
        raise ArgumentTypeError(f"a state_dict must be a dict, got {type(state_dict).__name__}")
    if "state" not in state_dict or "param_groups" not in state_dict:
        raise ValueError("not an optimizer state_dict: missing 'state' or 'param_groups'")
    if not isinstance(state_dict["state"], Mapping):
        raise ValueError("not an optimizer state_dict: its 'state' must be a dict, got "
                         f"{type(state_dict['state']).__name__}")
    groups = state_dict["param_groups"]
    if not isinstance(groups, (list, tuple)) or not all(
            isinstance(g, Mapping) and isinstance(g.get("params"), (list, tuple))
            for g in groups):
        raise ValueError("not an optimizer state_dict: its 'param_groups' must be a list of "
                         "dicts, each with a 'params' list")


def _named_class(cls: type) -> type:
    """The class whose name a state_dict of a ``cls`` instance carries (:func:`saved_name`)."""
    mro = cls.__mro__
    generic = (TorchOptimizer, RuleOptimizer, torch.optim.Optimizer)
    for index, klass in enumerate(mro):
        if klass in generic:  # a class of the user's own straight over a base: that class
            return mro[index - 1] if index else klass
        if not issubclass(klass, torch.optim.Optimizer):
            continue  # a mixin (of a rule's pieces, say) names no optimizer
        module = getattr(klass, "__module__", None) or ""
        if module.partition(".")[0] == "optimlab" or module.startswith("torch.optim.") \
                or "init" in vars(klass) or "update" in vars(klass):
            return klass
    return cls


def saved_name(optimizer: torch.optim.Optimizer) -> str:
    """The name optimlab's state_dicts give ``optimizer`` (the ``optimizer`` of their
    ``optimlab`` entry, a wrapper's ``inner_optimizer`` and ``base_optimizer``): the name of
    the optimizer class it is, not of its type.

    That class is the first in the type's method resolution order that optimlab (or
    ``torch.optim``) defines, or that defines a rule of its own (``init`` or ``update``):
    ``"Adam"`` for ``optimlab.Adam``, for a user's ``class MyAdam(optimlab.Adam)`` that keeps
    Adam's rule, and for what a LightningModule's ``self.optimizers()`` returns over an
    ``optimlab.Adam`` (an instance of a class ``LightningAdam`` made on the fly, a subclass
    of both Lightning's wrapper and ``optimlab.Adam``); a user's rule optimizer is named by
    its own class. So a subclass and its base load each other's state, and Adam's state is
    still refused by SGD (:func:`takes_saved_name`).
    """
    return _named_class(type(optimizer)).__name__


def takes_saved_name(optimizer: torch.optim.Optimizer, name: Any) -> bool:
    """Whether ``optimizer`` loads a state_dict whose ``optimlab`` entry names ``name`` (see
    :func:`saved_name`): its own saved name, or the name of any class in its type's method
    resolution order before that one's class, as earlier optimlab versions named a subclass
    (``"MyAdam"``) or an optimizer seen through Lightning's wrapper (``"LightningAdam"``)."""
    mro = type(optimizer).__mro__
    named = _named_class(type(optimizer))
    return any(klass.__name__ == name for klass in mro[:mro.index(named) + 1])


def saved_shape(p: Tensor) -> list[int] | None:
    """``p``'s shape as a state_dict records it (``param_shapes``, checked on loading); None
    for a LazyModule's parameter before its first forward, which has no shape yet."""
    return None if is_lazy(p) else list(p.shape)


def check_saved_name(optimizer: torch.optim.Optimizer, tag: dict | None) -> None:
    """Raise ``ValueError`` where a state_dict's ``optimlab`` entry ``tag`` names an optimizer
    ``optimizer`` does not load (:func:`takes_saved_name`): Adam's state into SGD. A
    state_dict without the entry (torch's own) is checked by its contents instead."""
    if tag is not None and not takes_saved_name(optimizer, tag.get("optimizer")):
        raise ValueError(f"this state_dict was saved by optimlab.{tag.get('optimizer')}, "
                         f"it cannot be loaded into optimlab.{saved_name(optimizer)}")


def check_saved_groups(optimizer: torch.optim.Optimizer, state_dict: dict[str, Any],
                       shapes: list | None) -> None:
    """Raise ``ValueError`` unless ``state_dict`` (checked by :func:`check_state_dict`) was
    saved for ``optimizer``'s parameters: as many groups, as many parameters in each, and,
    where ``shapes`` (its ``param_shapes``) says, each parameter of the same shape (a lazy
    one, with no shape yet, passes)."""
    name = type(optimizer).__name__
    saved_groups = state_dict["param_groups"]
    if shapes is not None and (not isinstance(shapes, (list, tuple))
                               or len(shapes) != len(saved_groups)
                               or any(not isinstance(g, (list, tuple))
                                      or len(g) != len(saved["params"])
                                      for g, saved in zip(shapes, saved_groups))):
        raise ValueError("this state_dict's optimlab param_shapes do not match its "
                         "param_groups: was it edited or damaged?")
    if len(saved_groups) != len(optimizer.param_groups):
        raise ValueError(
            f"state_dict has {len(saved_groups)} parameter group"
            f"{'' if len(saved_groups) == 1 else 's'}, {name} has "
            f"{len(optimizer.param_groups)}: was it saved for another model?"
        )
    for index, (saved, group) in enumerate(zip(saved_groups, optimizer.param_groups)):
        if len(saved["params"]) != len(group["params"]):
            have, want = len(group["params"]), len(saved["params"])
            raise ValueError(
                f"parameter group {index} has {have} parameter{'' if have == 1 else 's'} but "
                f"the state_dict has {want}: was it saved for another model?"
            )
        if shapes is not None:
            for position, (shape, p) in enumerate(zip(shapes[index], group["params"])):
                if None not in (shape, saved_shape(p)) and tuple(shape) != tuple(p.shape):
                    raise ValueError(
                        f"parameter {position} of group {index} has shape {tuple(p.shape)} "
                        f"but the state_dict was saved for shape {tuple(shape)}: was it "
                        "saved for another model?"
                    )


def _unusable(name: str, value: Any, default: Any) -> str | None:
    """Why ``value`` of hyperparameter ``name`` (whose constructor default is ``default``)
    cannot be stepped with, or None: a number's place takes a finite real number or a
    one-element real tensor, a bool's a bool, a tuple's a tuple (or list) of as many
    items, each by its default; any other default (None, a string) takes anything."""
    if isinstance(default, (bool, np.bool_)):
        return None if isinstance(value, (bool, np.bool_)) else \
            f"{name} must be a bool, got {_short(value)}"
    if isinstance(default, numbers.Real):
        try:
            check_range(name, value, None)
        except ValueError as err:
            return str(err)
        return None
    if isinstance(default, (tuple, list)):
        items = as_items(value)
        if items is None or len(items) != len(default):
            return f"{name} must be {len(default)} values, got {_short(value)}"
        for i, (item, item_default) in enumerate(zip(items, default)):
            problem = _unusable(f"{name}[{i}]", item, item_default)
            if problem:
                return problem
    return None


#: what :meth:`TorchOptimizer._constructor_defaults` (and so
#: :meth:`RuleOptimizer.checked_defaults`) passes for ``params``: check, build nothing
_CHECK_ONLY = object()


class _Checked(Exception):
    """Raised by :class:`TorchOptimizer`'s constructor given :data:`_CHECK_ONLY`: the
    subclass's checks have passed and built ``defaults``; the rest (torch's constructor, a
    wrapper's inner optimizer) does not run."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        super().__init__("checked")
        self.defaults = defaults


def _is_sharded(p: Tensor) -> bool:
    """Whether ``p`` is a DTensor split over processes (a ``Shard`` placement: FSDP2)."""
    placements = getattr(p, "placements", None)
    return placements is not None and any(pl.is_shard() for pl in placements)


def _dtensor_class() -> type:
    """torch's DTensor class: public in ``torch.distributed.tensor`` from torch 2.5, in
    ``torch.distributed._tensor`` before (torch 2.4's FSDP2 makes DTensor parameters too)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch 2.4
        from torch.distributed._tensor import DTensor
    return DTensor


def _own_storage(value: Tensor) -> Tensor:
    """A copy of the DTensor ``value`` whose local tensor has a storage of its own."""
    DTensor = _dtensor_class()  # noqa: N806 - the class, as torch names it

    return DTensor.from_local(value.to_local().clone(), value.device_mesh, value.placements,
                              run_check=False, shape=value.shape, stride=value.stride())


def _caller_level() -> int:
    """The ``stacklevel`` of a warning raised here that names the first frame outside
    optimlab and torch (the user's constructor call, through however many ``__init__``s)."""
    frame, level = sys._getframe(1), 1
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not (name.startswith("optimlab.") or name == "torch" or name.startswith("torch.")):
            return level
        frame, level = frame.f_back, level + 1
    return 1


def _check_fused_flag(cls: type, group: Mapping[str, Any]) -> bool:
    """Check a group's ``fused``, ``foreach`` and ``state_precision`` flags against ``cls``;
    True if fused."""
    compact.check_precision(group.get("state_precision"))
    if group.get("state_precision") is not None and not cls.capabilities.compact_moments:
        raise ValueError(f"{cls.__name__} keeps no moment buffers for state_precision to "
                         "compact")
    fused = group.get("fused")
    if fused not in (None, True, False):
        raise ArgumentTypeError(f"fused must be None, True or False, got {fused!r}")
    if not fused:
        return False
    if not cls.capabilities.fusable:
        raise ValueError(f"{cls.__name__} has no fused implementation; use fused=None or False")
    if group.get("foreach"):  # torch's own error, type and words, for code that catches it
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    if group.get("state_precision") is not None:
        raise ValueError("fused=True keeps the state in the parameters' dtype; use fused=None "
                         "with state_precision")
    return True


def _torch_method(name: str) -> Callable:
    """``torch.optim.Optimizer``'s method ``name``, unwrapped from ``torch._disable_dynamo``
    while ``torch._dynamo`` is not imported.

    The wrapper imports ``torch._dynamo`` on its first call, so the first optimizer a process
    builds (``add_param_group``), and the first ``zero_grad``, ``state_dict`` or
    ``load_state_dict``, paid for that import: the first ``optimlab.Adam`` of a process took
    0.91-1.10 s on a 2-core AMD EPYC, against 0.02 s now (``torch.optim.Adam`` pays it too:
    0.88-0.90 s; 3 fresh processes each, timed around the constructor). The wrapper only keeps
    dynamo from tracing into the method, and nothing can be compiled before ``torch._dynamo``
    is imported, so until then the method runs unwrapped; afterwards it is torch's as shipped.
    """
    method = getattr(torch.optim.Optimizer, name)
    if "torch._dynamo" in sys.modules:
        return method
    return getattr(method, "__wrapped__", method)


def _eager_under_compile(step: Callable) -> Callable:
    """``step`` that ``torch.compile`` runs as it is instead of tracing into it.

    An optimlab step is Python around a generated C kernel or a recorded multi-tensor graph:
    traced, it made dynamo recompile at every operation until its limit (warnings, seconds
    of compiling, then the same eager step). Under compilation the wrapper calls the step
    through ``torch._dynamo.disable`` (a graph break: it runs eagerly, as fast as outside a
    compiled region); elsewhere it costs one lookup in ``sys.modules`` and never imports
    ``torch._dynamo`` itself.
    """
    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        if "torch._dynamo" in sys.modules and torch.compiler.is_compiling():
            # made afresh under tracing: a cache read here would be a guard that the first
            # call's write fails, one recompile more
            return sys.modules["torch._dynamo"].disable(step)(self, *args, **kwargs)
        return step(self, *args, **kwargs)

    wrapper.eager_under_compile = True
    return wrapper


#: each class's hyperparameter names (:func:`~optimlab.optim.capabilities.hyperparameters`)
#: and switches (:func:`_switches`), held weakly: a class no longer used (a rule made in a
#: function, a test's) is not kept alive by them
_HPARAM_NAMES: weakref.WeakKeyDictionary[type, tuple[str, ...]] = weakref.WeakKeyDictionary()
_SWITCHES: weakref.WeakKeyDictionary[type, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _switches(cls: type) -> tuple[str, ...]:
    """The switches of ``cls``: ``maximize`` and every hyperparameter whose default is a
    bool (``amsgrad``, ``nesterov``, ``centered``, ...), which must be bools: ``"False"``
    or ``1`` would be taken for true without a word."""
    names = _SWITCHES.get(cls)
    if names is None:
        names = _SWITCHES[cls] = ("maximize", *(k for k, v in hyperparameters(cls).items()
                                                if isinstance(v, bool)))
    return names

#: types :func:`python_numbers` returns as they are
_PLAIN = frozenset({float, int, bool, str, type(None)})


def python_numbers(value: Any) -> Any:
    """A hyperparameter with NumPy's scalars made Python numbers (``np.float32(0.9)`` ->
    ``0.8999999761581421``, ``np.int64(7)`` -> ``7``; in tuples and lists too) and a NumPy
    array made a list of them (a population's per-member values); any other sequence (a
    ``ListConfig``) a list of its items, which a checkpoint can pickle without its package.
    Any other real number (``fractions.Fraction(1, 10)``, which :func:`check_range` takes as
    the ``numbers.Real`` it is) becomes Python's ``float`` (an integer, Python's ``int``):
    torch's kernels take ``int`` and ``float`` only, so the step would fail on it.

    ``torch.optim`` takes them as they come, and so do the checks here, but a rule's Python
    arithmetic on one would run in its precision (``1 - beta2 ** step`` in float32), a seed
    of ``np.int64`` overflows the probes' hash, and a checkpoint would pickle NumPy types.
    """
    if type(value) in _PLAIN:  # the usual case, checked first: every step reads every value
        return value
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        if any(type(v) not in _PLAIN and isinstance(v, (np.generic, numbers.Real)) for v in value):
            return type(value)(_python_number(v) for v in value)
        return value
    if isinstance(value, numbers.Real):  # a Fraction, an int or float subclass
        return _python_number(value)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [python_numbers(v) for v in value]  # a ListConfig, say: a list a checkpoint can hold
    return value


def _python_number(value: Any) -> Any:
    """``value`` as Python's number where it is another real one (a NumPy scalar, a
    ``Fraction``, a subclass of ``int`` or ``float``): an integer as ``int``, any other as
    ``float``; anything else (a tensor, a bool, a string) as it is."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def _as_scalar(value: Any) -> Any:
    """A 1-element tensor of one or more dimensions as a 0-d view of it (in-place edits of
    the group's tensor, a scheduler's ``fill_``, still reach it); anything else as it is.

    A tensor of an integer (or bool) dtype, ``lr=torch.tensor(1)``, which :func:`check_range`
    takes as the number it holds, becomes a copy in torch's default floating dtype, as
    ``torch.optim`` computes with it (``lr * 0.5`` is a float tensor): a rule that casts its
    coefficients to the hyperparameter's dtype (NAdam's ``(1 - mu_product).to(lr.dtype)``)
    would otherwise round them to integers. Read at every step, so an in-place edit of the
    group's tensor still reaches the rule."""
    if isinstance(value, Tensor):
        if value.dim() and value.numel() == 1:
            value = value.view(())
        if not (value.is_floating_point() or value.is_complex()):
            value = value.to(torch.get_default_dtype())
    return value


class TorchOptimizer(torch.optim.Optimizer):
    """``torch.optim.Optimizer`` whose bookkeeping does not import ``torch._dynamo``.

    The base of every optimlab optimizer: ``add_param_group``, ``zero_grad``, ``state_dict``
    and ``load_state_dict`` are torch's own, run through :func:`_torch_method`, so building
    and checkpointing an optimizer costs no second of start-up before anything is compiled.
    A subclass's ``step`` runs eagerly inside ``torch.compile`` (:func:`_eager_under_compile`).
    """

    #: whether a param group may set ``lr`` to 0 (and freeze its parameters) where the
    #: constructor asks for a positive ``lr``, as the packages of Prodigy and D-Adaptation do
    _groups_may_freeze: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None and not getattr(step, "eager_under_compile", False):
            cls.step = _eager_under_compile(step)

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        if params is _CHECK_ONLY:  # _constructor_defaults: the subclass's checks have run
            raise _Checked(defaults)
        super().__init__(params, defaults)

    @classmethod
    def _constructor_defaults(cls, **hparams: Any) -> dict[str, Any]:
        """The ``defaults`` the constructor builds from ``hparams``, checked as it checks
        them (raising as it raises), without building an optimizer: the constructor runs on
        a bare instance with no parameters (:data:`_CHECK_ONLY`) and stops where it hands
        its ``defaults`` to torch's (raising :class:`_Checked`, which a :class:`RuleOptimizer`
        raises too, so a subclass's code after ``super().__init__()`` does not run)."""
        probe = cls.__new__(cls)
        try:
            cls.__init__(probe, _CHECK_ONLY, **hparams)
        except _Checked as checked:
            return dict(checked.defaults)
        return dict(probe.defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Add a param group (torch's ``add_param_group``), checking the hyperparameters it
        sets as the constructor checks its keyword arguments: a group ``{"params": [...],
        "lr": -1.0}`` raises the constructor's error, naming the group (``param group 1:
        lr must be ...``), and is not added, instead of failing (or stepping wrongly)
        later."""
        _torch_method("add_param_group")(self, param_group)
        group = self.param_groups[-1]
        for key, value in group.items():
            if key != "params":
                group[key] = python_numbers(value)
        for key, value in self.defaults.items():
            self.defaults[key] = python_numbers(value)
        try:
            self._check_group_hparams(group)
        except (ValueError, TypeError, RuntimeError) as err:
            self.param_groups.pop()
            raise type(err)(f"param group {len(self.param_groups)}: {err}") from None
        except BaseException:
            self.param_groups.pop()
            raise

    def _check_group_hparams(self, group: dict) -> None:
        """Run the constructor's checks on the hyperparameters ``group`` sets itself (a
        group that takes every value from ``defaults`` was checked with them): the
        constructor's own code (:meth:`_constructor_defaults`), so each class's group is
        checked by the definitions its keyword arguments are."""
        if "maximize" in group:  # a driver flag, no hyperparameter: checked here
            check_bool("maximize", group["maximize"])
        cls = type(self)
        names = _HPARAM_NAMES.get(cls)
        if names is None:
            names = _HPARAM_NAMES[cls] = tuple(hyperparameters(cls))
        if all(group.get(k) is self.defaults.get(k) for k in names):
            return
        hparams = {k: group[k] for k in names if k in group}
        if self._groups_may_freeze and "lr" in hparams:
            check_range("lr", hparams["lr"], 0.0)  # 0 leaves the group's parameters as they are
            hparams["lr"] = self.defaults["lr"]  # for the constructor's other checks
        cls._constructor_defaults(**hparams)

    def zero_grad(self, set_to_none: bool = True) -> None:  # noqa: D102 (torch's docstring)
        _torch_method("zero_grad")(self, set_to_none)

    def state_dict(self) -> dict[str, Any]:  # noqa: D102 (torch's docstring)
        return _torch_method("state_dict")(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # noqa: D102
        _torch_method("load_state_dict")(self, state_dict)


_LOAD_HOOKS = ("_optimizer_load_state_dict_pre_hooks", "_optimizer_load_state_dict_post_hooks")
_SAVE_HOOKS = ("_optimizer_state_dict_pre_hooks", "_optimizer_state_dict_post_hooks")
#: the key of the skip count in a saved first param group (``skip_nonfinite``), where
#: ``torch.distributed.checkpoint``, which keeps only ``state`` and ``param_groups``, keeps it
SKIPPED_STEPS_KEY = "optimlab_skipped_steps"


@contextlib.contextmanager
def _hooks_set_aside(optimizer: TorchOptimizer, names: tuple[str, ...] = _LOAD_HOOKS):
    """torch's ``load_state_dict`` (or, with ``names=_SAVE_HOOKS``, ``state_dict``) with none
    of the optimizer's hooks of that kind: its caller runs them itself, around the whole dict.
    Yields the hooks set aside, by name."""
    kept = {name: getattr(optimizer, name) for name in names if hasattr(optimizer, name)}
    for name, hooks in kept.items():
        setattr(optimizer, name, type(hooks)())
    try:
        yield kept
    finally:
        for name, hooks in kept.items():
            setattr(optimizer, name, hooks)


def step_without_global_hooks(optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
    """``optimizer.step(*args, **kwargs)`` as a wrapper (:class:`~optimlab.Lookahead`,
    :class:`~optimlab.SAM`) takes it inside its own step: without torch's *global* step hooks
    (``torch.optim.optimizer.register_optimizer_step_pre_hook`` and ``..._post_hook``).

    torch fires those around every hooked ``step``; the wrapper's own step fires them once,
    with the wrapper, so its inner step must not fire them again. The hooks registered on
    ``optimizer`` itself (``optimizer.register_step_pre_hook``, ``..._post_hook``) are that
    instance's, asked for by whoever registered them, and still fire around its step as torch
    fires them (a pre hook may return new ``(args, kwargs)``). An lr scheduler attached to
    ``optimizer`` still sees the step (its ``_opt_called`` flag). A ``step`` torch has not
    wrapped, or one patched on the instance by anything else, is called as it is.
    """
    cls_step = type(optimizer).step
    own = optimizer.__dict__.get("step")
    plain = getattr(cls_step, "__wrapped__", None) if getattr(cls_step, "hooked", False) else None
    if plain is None or (own is not None and not getattr(own, "_wrapped_by_lr_sched", False)):
        return optimizer.step(*args, **kwargs)
    if own is not None:  # torch.optim.lr_scheduler's patch: it marks the step as taken
        optimizer._opt_called = True  # type: ignore[attr-defined]
    # the hooks see the step's arguments as torch passes them, the optimizer first:
    # (optimizer, closure) or (optimizer,), and a pre hook's new args keep it first
    args = (optimizer, *args)
    with torch.autograd.profiler.record_function(f"Optimizer.step#{type(optimizer).__name__}.step"):
        for pre_hook in list(getattr(optimizer, "_optimizer_step_pre_hooks", {}).values()):
            result = pre_hook(optimizer, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(f"{plain} must return None or a tuple of (new_args, "
                                       f"new_kwargs), but got {result}.")
                args, kwargs = result
        out = plain(*args, **kwargs)
        optimizer._optimizer_step_code()
        for post_hook in list(getattr(optimizer, "_optimizer_step_post_hooks", {}).values()):
            post_hook(optimizer, args, kwargs)
    return out


def step_by_hand(optimizer: torch.optim.Optimizer, apply: Callable[..., Any], *args: Any) -> Any:
    """``apply(optimizer, *args)`` as ``optimizer``'s step, where it is called by hand
    outside ``step()`` (a two-phase rule's ``second_step`` after your own passes): torch's
    step hooks fire around it as around ``step`` (the global ones and the optimizer's own,
    with ``args == (optimizer, *args)``), and an lr scheduler built on ``optimizer`` sees
    the step (its ``_opt_called`` flag, as its wrapper of ``step`` would set it)."""
    out = torch.optim.Optimizer.profile_hook_step(apply)(optimizer, *args)
    if getattr(optimizer.__dict__.get("step"), "_wrapped_by_lr_sched", False):
        optimizer._opt_called = True  # type: ignore[attr-defined]
    return out


#: the flags that say how a group's step runs, not what it computes: a loaded checkpoint
#: keeps the optimizer's own (see :meth:`RuleOptimizer.load_state_dict`)
_RUN_FLAGS = ("fused", "foreach")


def _complex_form(value: Tensor) -> Tensor:
    """The complex tensor whose real view is ``value`` (shape ``(..., 2)``): a view where its
    strides and offset allow one, else a copy."""
    try:
        return torch.view_as_complex(value)
    except RuntimeError:  # a view at an odd offset of a flat buffer, or odd strides
        return torch.view_as_complex(value.clone(memory_format=torch.contiguous_format))


#: what ``help()`` shows for a rule's two functions where its module gives them no docstring
#: (the math is in the class's docstring, beside them)
_RULE_DOCS = {
    "init": "The state of one parameter ``p`` before {cls}'s first step: a dict of tensors "
            "(the step counter, moments, ...).\n\nHalf of the rule (its contract: "
            ":mod:`optimlab.optim.rule`); the engine calls it, a user need not. The math is "
            "in the class's docstring.",
    "update": "One step of {cls}'s rule on one parameter: ``update(p, g, state, *, step, "
              "**hyperparameters)`` returns the new value of ``p`` and puts the new state "
              "in ``state``.\n\nHalf of the rule (its contract: :mod:`optimlab.optim.rule`); "
              "the engine calls it, a user need not. The math is in the class's docstring.",
}


class RuleOptimizer(TorchOptimizer):
    """A ``torch.optim.Optimizer`` that applies a pure rule to each param group.

    Subclasses set ``init`` and ``update`` (see :mod:`optimlab.optim.rule`) as static
    methods, describe themselves with a
    :class:`~optimlab.optim.capabilities.Capabilities` record and pass their checked
    hyperparameters as ``defaults``.
    """

    init: Callable[..., dict]
    update: Callable[..., Tensor]
    #: what this optimizer can do (read by the engine, registry, population, web and tests)
    capabilities: Capabilities = Capabilities()
    #: whether a param group holds a sharded parameter (set by :meth:`add_param_group`)
    _has_shards: bool = False
    #: whether every state tensor must keep its memory from step to step (state shared
    #: between processes: set by ``Adagrad.share_memory``); the engine then steps tensor by
    #: tensor and writes the state back in place
    _state_in_place: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, doc in _RULE_DOCS.items():
            rule = cls.__dict__.get(name)
            function = getattr(rule, "__func__", None)  # a staticmethod's function
            if function is not None and not (function.__doc__ or "").strip():
                function.__doc__ = doc.format(cls=cls.__name__)

    def __init__(
        self,
        params: ParamsT,
        defaults: dict[str, Any],
        *,
        skip_nonfinite: bool | torch.distributed.ProcessGroup = False,
        state_precision: str | None = None,
        capturable: bool | None = None,
        differentiable: bool | None = None,
    ) -> None:
        check_range("lr", defaults["lr"], 0.0)
        for switch in _switches(type(self)):  # maximize, amsgrad, nesterov, centered, ...
            if switch in defaults:
                check_bool(switch, defaults[switch])
        # torch.optim's flags, on the classes that share torch's signature: kept in the
        # groups as torch keeps them, refused where they ask for what optimlab does not do
        for flag, value in (("capturable", capturable), ("differentiable", differentiable)):
            if value is not None:
                check_torch_flag(type(self).__name__, flag, value)
                defaults[flag] = value
        if self.capabilities.compact_moments:
            # a driver flag in every group, like ``fused``, so a group may set its own
            defaults["state_precision"] = state_precision
        self.skip_nonfinite, group = nonfinite_guard(skip_nonfinite)
        #: the process group the guard's flag is reduced over (``skip_nonfinite`` given one)
        self._nonfinite_group = None if group is None else _SharedGroup(group)
        self.skipped_steps = 0
        #: the count this optimizer last wrote into its first param group (see
        #: :meth:`_absorb_skip_count`), or None
        self._skip_count_written: int | None = None
        # Given _CHECK_ONLY (checked_defaults, a group's check), TorchOptimizer's constructor
        # stops the probe by raising _Checked: a subclass's code after super().__init__()
        # (one adding a hyperparameter to self.defaults) never runs on the bare probe.
        super().__init__(params, defaults)

    @classmethod
    def checked_defaults(cls, **hparams: Any) -> dict[str, Any]:
        """The ``defaults`` the constructor builds from ``hparams``, checked as it checks them.

        No optimizer is built: torch's ``Optimizer.__init__`` does not run and no parameter
        is read, so this costs microseconds whatever the model.
        :class:`~optimlab.optim.population.Population` checks every member this way;
        checks of the parameters themselves are :meth:`param_problem`'s.

        Raises:
            ValueError, TypeError: as the constructor would.
        """
        defaults = cls._constructor_defaults(**hparams)
        _check_fused_flag(cls, defaults)
        return defaults

    @classmethod
    def param_problem(cls, p: Tensor) -> str | None:
        """Why this optimizer cannot step ``p`` (a sentence), or None if it can.

        Read by :meth:`add_param_group` and by the population engine (on one member's shape).
        The base refuses complex parameters where the capability record says so
        (``complex=False``); a subclass adds its own checks and calls this one.
        """
        if torch.is_complex(p) and not cls.capabilities.complex:
            return (f"{cls.__name__} does not support complex parameters; optimize the real "
                    "view instead (torch.view_as_real)")
        return None

    __getstate__ = optimizer_getstate

    @property
    def engine(self) -> Engine:
        """The engine that runs this optimizer's rule (made again after unpickling)."""
        engine = self.__dict__.get("_engine")
        if engine is None:
            cls = type(self)
            engine = self.__dict__["_engine"] = Engine(cls.init, cls.update, cls.capabilities,
                                                       cls.__name__)
        return engine

    def _check_fused(self, group: dict) -> None:
        if not _check_fused_flag(type(self), group):
            return
        name = type(self).__name__
        unfused = set()
        for p in group["params"]:
            weight = torch.view_as_real(p) if torch.is_complex(p) else p
            if not weight.is_floating_point():
                raise ValueError(f"{name}(fused=True) steps floating-point tensors, got a "
                                 f"{p.dtype} tensor")
            if p.device.type != "cpu" or weight.dtype not in (torch.float32, torch.float64):
                unfused.add(f"{p.dtype} tensors on {p.device.type}")
        if unfused:
            # torch's fused=True takes them (float16 and bfloat16 on a CPU, any accelerator),
            # so code written for torch must still run: on the plain multi-tensor path, said once
            warnings.warn(
                f"{name}(fused=True): optimlab's fused kernel steps CPU tensors of float32 and "
                f"float64 (complex as their real view); the {', '.join(sorted(unfused))} step "
                "on the plain multi-tensor path (fused=None does this without a warning)",
                stacklevel=_caller_level())

    # -- the step driver -------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step.

        The groups step one after another, as in ``torch.optim``. Where a group's step
        raises (a gradient that does not fit its parameter, ``KeyboardInterrupt``), its
        batch is left as the step found it (parameters, state and step counters) and the
        error names the parameter; the groups, and the batches of other dtypes or devices,
        that stepped before it keep their step.

        Args:
            closure (Callable, optional): re-evaluates the model and returns the loss.
        """
        if self.__dict__.get("_lazy_params"):
            self._check_materialized()
        self._check_shards()
        self._check_flags()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups = self.param_groups
        shared = getattr(self, "_nonfinite_group", None) is not None
        if shared:
            _guard_groups_as_true(groups)
        mirror = groups and (shared or SKIPPED_STEPS_KEY in groups[0])
        if mirror:
            self._absorb_skip_count(groups[0])
        if self.skip_nonfinite and not self._grads_are_finite():
            self.skipped_steps += 1
            if mirror:
                groups[0][SKIPPED_STEPS_KEY] = self._skip_count_written = self.skipped_steps
            return loss
        if mirror:
            groups[0][SKIPPED_STEPS_KEY] = self._skip_count_written = self.skipped_steps
        for group in self.param_groups:
            self._step_group(group, self._hp(group))
        engine = self.engine
        if len(engine.plans) + len(engine._multi) > 2 * len(self.param_groups):
            engine.keep_only({id(group) for group in self.param_groups})
        return loss

    def _absorb_skip_count(self, first: dict) -> None:
        """Take a skip count some other code put into the first param group as the count.

        ``ZeroRedundancyOptimizer`` loads a checkpoint by writing the saved param groups'
        keys into this optimizer's groups, past :meth:`load_state_dict`, so the count a
        checkpoint holds there (``optimlab_skipped_steps``) reaches :attr:`skipped_steps`
        here, at the next step. ZeRO also copies its own groups' keys into these groups
        before every step and these groups' keys into its own after it, and never removes a
        key, so the key stays in the group and :meth:`step` keeps it equal to the count
        (ZeRO's consolidated checkpoint, whose groups are ZeRO's, then carries it): a value
        other than the one this optimizer last wrote is what a load put there. The same
        holds from the first step when ``skip_nonfinite`` is a process group (the form to
        use under ZeRO), so a ZeRO checkpoint carries the count from the start.
        """
        value = first.get(SKIPPED_STEPS_KEY)
        if value is not None and value != getattr(self, "_skip_count_written", None):
            self.skipped_steps = int(value)

    def _hp(self, group: dict) -> dict:
        """The rule's hyperparameters for ``group`` as a step reads them.

        torch's ``__setstate__`` adds keys (e.g. ``differentiable``) to ``defaults`` that an
        older group may lack, so each falls back to its default value; the driver's flags
        are read apart and never reach the rule. NumPy scalars a scheduler wrote
        (``LambdaLR`` returning ``np.float32``) become Python numbers, as at construction:
        the fused kernel reads a number as a value, and takes anything else as part of its
        structure, compiled anew. A 1-element tensor (``lr=torch.tensor([0.01])``, which
        torch takes) reaches the rule as a 0-d view of itself, as torch's optimizers squeeze
        it: a rule's scalar state made from it is 0-d, as every path packs it.
        """
        return {key: _as_scalar(python_numbers(group.get(key, value)))
                for key, value in self.defaults.items() if key not in DRIVER_FLAGS}

    def add_param_group(self, param_group: dict) -> None:
        """Add a param group (torch's ``add_param_group``), checking its parameters and the
        hyperparameters it sets as the constructor checks its keyword arguments: a group
        ``{"params": [...], "betas": (1.5, 0.9)}`` raises the same ``ValueError``, naming
        the group, instead of failing (or stepping wrongly) later. A group refused by any
        check (its hyperparameters, a parameter, a shard, its ``fused``, ``foreach`` and
        ``state_precision`` flags) is not added: the optimizer steps as before."""
        super().add_param_group(param_group)  # its hyperparameters checked there
        group = self.param_groups[-1]
        index = len(self.param_groups) - 1
        try:
            lazy = []
            for p in group["params"]:
                if is_lazy(p):  # a LazyModule's before its first forward: no shape yet
                    lazy.append(p)
                    continue
                problem = self.param_problem(p)
                if problem:
                    raise ValueError(problem)
            if lazy:  # checked at the first step after the forward gives them a shape
                self.__dict__.setdefault("_lazy_params", []).extend(lazy)
            problem = self._shard_problem(group)
            if problem:
                raise ValueError(problem)
            try:
                self._check_fused(group)
            except (ValueError, TypeError, RuntimeError) as err:
                raise type(err)(f"param group {index}: {err}") from None
        except BaseException:
            self.param_groups.pop()
            raise
        if any(_is_sharded(p) for p in group["params"]):
            self._has_shards = True

    def _check_materialized(self) -> None:
        """Check the parameters that were a LazyModule's uninitialized ones when their group
        was added (torch's optimizers take them: the first forward gives them their shape
        and dtype, in place) as :meth:`add_param_group` checks the others, once each, at the
        first step after they have a shape. One still uninitialized has no gradient, and the
        step leaves it, as torch's does."""
        waiting = self.__dict__["_lazy_params"]
        for p in [p for p in waiting if not is_lazy(p)]:
            if any(p is q for group in self.param_groups for q in group["params"]):
                problem = self.param_problem(p)
                if problem:
                    raise ValueError(f"{problem} (a lazy module's parameter, checked at the "
                                     "first step after its first forward)")
        # by identity: == on a parameter still uninitialized raises
        self.__dict__["_lazy_params"] = [p for p in waiting if is_lazy(p)]

    def _check_flags(self) -> None:
        """Refuse a step, before any group steps, where a driver flag or switch set on a
        group since it was added is not one the constructor takes (``group["state_precision"]
        = "float16"`` became int8, ``group["cautious"] = "no"`` turned masking on,
        ``state_precision`` set beside ``fused=True`` went unfused); and a group whose
        ``state_precision`` was switched off since its last step has its compact moments
        decoded back to the parameters' dtype (the rule would have read 8-bit codes).

        So is a group given ``capturable=True`` or ``differentiable=True`` since, with the
        constructor's words (:func:`check_torch_flag`), and a step while a CUDA stream is
        capturing a graph, as ``torch.optim`` refuses it where ``capturable`` is False: the
        step counters are CPU tensors read on the host, which a captured step would freeze."""
        _check_not_capturing(type(self).__name__)
        switches = _switches(type(self))
        keys = ("state_precision", "fused", "foreach", *_TORCH_FLAGS, *switches)
        seen = self.__dict__.setdefault("_flags_seen", {})  # group id -> flags checked
        for i, group in enumerate(self.param_groups):
            flags = tuple(map(group.get, keys))
            if seen.get(id(group)) != flags:  # checked once per change: a step costs 1 us
                try:
                    _check_fused_flag(type(self), group)
                    for flag in _TORCH_FLAGS:
                        if group.get(flag) is not None:
                            check_torch_flag(type(self).__name__, flag, group[flag])
                    for switch in switches:
                        if switch in group:
                            check_bool(switch, group[switch])
                except ValueError as err:
                    raise type(err)(f"param group {i}: {err}") from None
                seen[id(group)] = flags
                if flags[0] is not None:
                    self._was_compact = True
            if flags[0] is None and self.__dict__.get("_was_compact"):
                self._decode_compact(group)

    def decoded_state(self, p: Tensor) -> dict[str, Any]:
        """A copy of ``p``'s state with its moments as numbers: decoded where
        ``state_precision`` keeps them compact (``"int8"``: ``state[p]["exp_avg"]`` is then
        a tensor of uint8 codes, whose norm means nothing; ``"bfloat16"``: bfloat16 values,
        given in the parameter's dtype). For logging or inspecting moments: its tensors are
        copies, so changing them leaves the optimizer's state as it was. A complex
        parameter's moments are kept (and given) as its real view, shape ``[..., 2]``.
        ``{}`` for a parameter with no state yet.

        Raises:
            ValueError: ``p`` is not one of this optimizer's parameters.
        """
        group = next((g for g in self.param_groups if any(q is p for q in g["params"])), None)
        if group is None:
            raise ValueError(f"{type(self).__name__}.decoded_state: this tensor is not one of "
                             "the optimizer's parameters")
        state = self.state.get(p)
        if not state:
            return {}
        moments = self.capabilities.compact_moments
        if moments and self._is_compact(p, group, moments):
            state = compact.unpack(state, moments, self._moment_dtype(p, group))
        return {k: v.clone() if isinstance(v, Tensor) else copy.deepcopy(v)
                for k, v in state.items()}

    def _decode_compact(self, group: dict) -> None:
        """The moments of ``group``'s parameters in their own dtype again, where a compact
        form (:mod:`~optimlab.optim.compact`) is left from steps taken with
        ``state_precision``. A group's parameters step at one precision, so the first
        parameter whose moments could be compact tells (a scale entry, or a moment of
        another dtype than a fresh state's): a few dict reads per group and step. A 0-d
        parameter's moments are never compact, so it cannot tell."""
        moments = self.capabilities.compact_moments

        def could_be_compact(state: dict | None) -> bool:
            return bool(state) and any(isinstance(state.get(m), Tensor) and state[m].dim() > 0
                                       for m in moments)

        first = next((p for p in group["params"] if could_be_compact(self.state.get(p))), None)
        if first is None or not self._is_compact(first, group, moments):
            return
        for p in group["params"]:
            state = self.state.get(p)
            if state and self._is_compact(p, group, moments):
                full = compact.unpack(state, moments, self._moment_dtype(p, group))
                state.clear()
                state.update(full)

    def _is_compact(self, p: Tensor, group: dict, moments: Mapping[str, bool]) -> bool:
        state = self.state[p]
        if any(key.endswith(compact.SCALE) for key in state):
            return True
        kept = next((state[m] for m in moments
                     if isinstance(state.get(m), Tensor) and state[m].dim()), None)
        if kept is None or kept.dtype == real(p).dtype:  # the usual case, read cheaply
            return False
        return kept.dtype != self._moment_dtype(p, group)

    def _moment_dtype(self, p: Tensor, group: dict) -> torch.dtype:
        """The dtype a fresh state keeps ``p``'s moments in (the parameter's, as a rule)."""
        fresh = self._fresh_state(p, group)
        return next((fresh[k].dtype for k in self.capabilities.compact_moments
                     if isinstance(fresh.get(k), Tensor)), real(p).dtype)

    def _check_shards(self) -> None:
        """Refuse a step, before any group steps, where a switch set on a group since it was
        added (``group["state_precision"] = "int8"``, ``group["cautious"] = True``) makes
        its sharded parameters ones this optimizer cannot step (:meth:`_shard_problem`):
        refused inside the loop, the groups before it would have stepped and the rest not."""
        if not self._has_shards:
            return
        for group in self.param_groups:
            if any(_is_sharded(p) for p in group["params"]):
                problem = self._shard_problem(group)
                if problem:
                    raise ValueError(problem)

    def _reductions(self, group: dict, p: Tensor) -> tuple[str, ...]:
        """The operations of the rule's ``update`` that are not elementwise (a norm, a sum)
        or that draw random numbers (a shard's draw is not the whole's),
        seen in one probe step on a stand-in of ``p`` (:func:`~optimlab.optim.probe.rule_traits`,
        cached per class, switches and layout): a class that says it steps shards (the default
        :class:`~optimlab.optim.capabilities.Capabilities`, as a user's registered rule may
        keep it) but reduces would reduce over one process's shard. Empty where the probe
        cannot step the rule (its own step says why)."""
        local = p.to_local() if hasattr(p, "to_local") else p
        traits = rule_traits(type(self), self._hp(group), [local], 2)
        return () if traits is None else traits.reductions + traits.draws

    def _shard_problem(self, group: dict) -> str | None:
        """Why this optimizer cannot step a sharded parameter of ``group`` (a DTensor with a
        ``Shard`` placement, as FSDP2's ``fully_shard`` makes them), or None.

        An elementwise rule steps each process's local shard as a whole tensor: every
        element's new value needs that element only. A rule that reads a parameter as a whole
        (a norm, a matrix, a sum over the group: LAMB, LARS, Muon, Adafactor, SOAP, cautious
        masking, Prodigy, ...) would compute it on the shard alone, so it is refused, naming
        the parameter, instead of stepping wrongly; so is a rule whose class says it is
        elementwise but whose ``update`` reduces (a user's rule taking a norm under the
        default record, seen by :meth:`_reductions`). So is ``state_precision``: its int8 blocks
        and bfloat16 dither are laid over a whole parameter, which a shard is not (DDP, whose
        parameters are whole, keeps it). Read when a group is added and again before each
        step (:meth:`_check_shards`: a group's switches may be set after).
        """
        sharded = next(((i, p) for i, p in enumerate(group["params"]) if _is_sharded(p)), None)
        if sharded is None:
            return None
        i, p = sharded
        if self.capabilities.shards_for(group) and not self._reductions(group, p):
            return None
        names = group.get("param_names")
        index = next((k for k, g in enumerate(self.param_groups) if g is group),
                     len(self.param_groups) - 1)
        label = repr(names[i]) if names else f"{i} of param group {index}"
        where = f"the sharded parameter {label} (shape {tuple(p.shape)}, {p.placements})"
        precision = group.get("state_precision")
        if precision is not None and self.capabilities.shards_for({**group, "state_precision": None}):
            compact.check_precision(precision)
            return (f"{type(self).__name__}(state_precision={precision!r}) cannot keep the state "
                    f"of {where}: state_precision encodes a moment in blocks (int8) and dithers "
                    "it (bfloat16) over a whole parameter, and under FSDP2 a process holds only "
                    "a shard of it. state_precision needs unsharded parameters (DDP works); use "
                    "state_precision=None with FSDP2")
        return (f"{type(self).__name__} cannot step {where}: its step reads more "
                "of a parameter than one element (a norm, a matrix, a sum, a "
                "curvature probe) or draws random numbers over it, and under FSDP2 a "
                "process holds only a shard of it. Use an elementwise optimizer "
                "(SGD, Adam, AdamW, Lion, RMSprop, ...) for sharded parameters, or "
                "leave this one unsharded")

    def _step_group(self, group: dict, hp: dict, params: list[Tensor] | None = None) -> None:
        """Step every parameter of one group (a subclass may add group-level bookkeeping):
        those of ``params`` (by default, every one with a gradient)."""
        if params is None:
            params = [p for p in group["params"] if p.grad is not None]
        if self._has_shards and any(_is_sharded(p) for p in params):  # checked by step()
            self._step_shards(group, params, hp)
            return
        self._run_engine(group, params, self.state, hp)

    def _run_engine(self, group: dict, params: list[Tensor], states: Any, hp: dict) -> None:
        """The engine's step of ``params`` (their states in ``states``) with the group's
        driver flags."""
        self.engine.step_group(id(group), params, states, hp,
                               maximize=bool(group.get("maximize", False)),
                               fused=group.get("fused"), foreach=group.get("foreach"),
                               state_precision=group.get("state_precision"),
                               in_place=self._state_in_place)

    def _step_shards(self, group: dict, params: list[Tensor], hp: dict) -> None:
        """Step sharded parameters (an elementwise rule, :meth:`_shard_problem`): the engine
        runs on each process's local shards, fused or multi-tensor as any tensors, and the
        state stays DTensors laid out as their parameters (what distributed checkpointing
        expects), each wrapping the local tensor the engine keeps. A parameter of the group
        that is no DTensor (a module left out of ``fully_shard``) is stepped as it is, beside
        the shards, its state a plain tensor as anywhere else."""
        DTensor = _dtensor_class()  # noqa: N806 - the class, as torch names it

        local_params, local_states, shards = [], {}, []
        for p in params:
            if not isinstance(p, DTensor):
                local_params.append(p)
                local_states[p] = self.state[p]  # the engine edits it as it is
                continue
            local = p.to_local()
            local.grad = p.grad.to_local() if isinstance(p.grad, DTensor) else p.grad
            local_params.append(local)
            shards.append((p, local))
            local_states[local] = {key: value.to_local() if isinstance(value, DTensor)
                                   else value for key, value in self.state[p].items()}
        try:
            self._run_engine(group, local_params, local_states, hp)
        finally:
            for _, local in shards:
                local.grad = None
        for p, local in shards:
            state = self.state[p]
            for key, value in local_states[local].items():
                kept = state.get(key)
                if isinstance(kept, DTensor) and kept.to_local() is value:
                    continue
                if isinstance(value, Tensor) and value.shape == local.shape:
                    value = DTensor.from_local(value, p.device_mesh, p.placements,
                                               run_check=False, shape=p.shape,
                                               stride=p.stride())
                state[key] = value

    def _grads_are_finite(self) -> bool:
        """Whether every gradient is finite, the same answer on every process.

        A sharded gradient (FSDP2's DTensors) shows each process its own shard only, so where
        any is sharded the flag is reduced over its device mesh (an ``all_reduce`` of the
        largest "found a non-finite value", as torch's ``ShardedGradScaler`` does): all
        processes skip or step together. Without sharded gradients no collective runs,
        unless ``skip_nonfinite`` named a process group (``ZeroRedundancyOptimizer``, whose
        processes each hold a partition of the parameters): the flag is then reduced over it
        as well, on every step, so every process of the group must step.
        """
        flags, meshes = [], []
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if type(g) is not Tensor and hasattr(g, "to_local"):  # a DTensor
                    if _is_sharded(g) and g.device_mesh not in meshes:
                        meshes.append(g.device_mesh)
                    g = g.to_local()
                g = g._values() if g.is_sparse else g
                flags.append(torch.isfinite(g).all())
        finite = all_true(flags)  # one flag, however many devices the gradients are on
        shared = getattr(self, "_nonfinite_group", None)
        if not meshes and shared is None:
            return bool(finite) if finite is not None else True
        import torch.distributed as dist

        # the meshes in the order of the parameters, the same on every process
        groups = [group for mesh in meshes for group in mesh.get_all_groups()]
        groups += [shared.group] if shared is not None else []
        # a process whose partition holds no gradient still joins the reductions, with a
        # flag where the backend reduces (NCCL: on the GPU, not the CPU)
        device = _reduction_device(groups, finite)
        found = (~finite).to(device=device, dtype=torch.int32) if finite is not None \
            else torch.zeros((), dtype=torch.int32, device=device)
        for process_group in groups:
            dist.all_reduce(found, op=dist.ReduceOp.MAX, group=process_group)
        return not bool(found)

    # -- state_dict ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Torch's state_dict plus an ``optimlab`` entry naming the optimizer class.

        The state of a complex parameter is written as ``torch.optim`` writes it: each entry
        the rule keeps parameter-shaped (the engine steps the real view, so it is kept with
        shape ``(..., 2)``) is a complex tensor of the parameter's shape and dtype, a view of
        the kept buffer; the dict loads into the matching ``torch.optim`` class. Moments kept
        compact (``state_precision``) are saved as kept, bfloat16 under their own names (the
        matching ``torch.optim`` class loads them as float moments); 8-bit codes under the
        moment's name plus ``_codes`` (``exp_avg_codes``) beside their ``_absmax`` scales, so
        that ``torch.optim`` fails on the missing moment at its first step (``KeyError:
        'exp_avg'``) instead of stepping on codes it cast to floats. ``torch.optim.SGD`` is
        the exception: it takes a missing ``momentum_buffer`` for a first step and starts
        the momentum again from the gradient, without a word; load such a checkpoint into
        ``optimlab.SGD``, or save it with ``state_precision`` None or ``"bfloat16"``.

        The state entries of sharded parameters (FSDP2's DTensors) are copies, each with a
        storage of its own: the engine keeps a group's state in one flat buffer, and since
        DTensors take their local tensor's storage offset (PyTorch PR 167597), torch 2.13's
        ``Tensor.__deepcopy__`` fails on a DTensor over any view but the first
        (``copy.deepcopy(opt.state_dict())``, as many training loops keep their best
        checkpoint). Other entries are the live state, as in ``torch.optim``.

        With ``skip_nonfinite`` (or once a step was skipped) the first param group also holds
        the skip count, under ``optimlab_skipped_steps``, beside the ``optimlab`` entry's:
        ``torch.distributed.checkpoint`` keeps only ``state`` and ``param_groups``, and the
        count goes through it there. :meth:`load_state_dict` takes it out of the groups again.
        A group's ``skip_nonfinite`` that is a process group (``ZeroRedundancyOptimizer``
        copies its keyword arguments into every group) is written as True, which pickles: a
        process group does not (``consolidate_state_dict``, ``torch.save``).

        The hooks registered with ``register_state_dict_pre_hook`` and ``..._post_hook`` run
        as torch runs them, around the whole dict: the pre hooks before anything is read, the
        post hooks on the finished dict (its ``optimlab`` entry and complex state included);
        what a post hook returns replaces the dict.
        """
        with _hooks_set_aside(self, _SAVE_HOOKS) as hooks:
            for pre_hook in list(hooks.get(_SAVE_HOOKS[0], {}).values()):
                pre_hook(self)
            sd = super().state_dict()
        owners = {pid: (p, group) for saved, group in zip(sd["param_groups"], self.param_groups)
                  for pid, p in zip(saved["params"], group["params"])}
        # torch's dict holds this optimizer's own per-parameter dicts: replace, never edit
        moments = self.capabilities.compact_moments
        sd["state"] = {pid: compact.saved_codes(
                           self._saved_entries(entries, *owners.get(pid, (None, None))), moments)
                       for pid, entries in sd["state"].items()}
        sd["optimlab"] = {
            "optimizer": saved_name(self),
            "skipped_steps": self.skipped_steps,
            # lets a load tell a different model apart even when no state tensor shows it
            "param_shapes": [[saved_shape(p) for p in g["params"]] for g in self.param_groups],
        }
        # a process group (``skip_nonfinite=dist.group.WORLD``, which ZeroRedundancyOptimizer
        # copies into every group) cannot be pickled: it is written as True, the guard on
        sd["param_groups"] = [{**saved, "skip_nonfinite": True}
                              if _is_process_group(saved.get("skip_nonfinite")) else saved
                              for saved in sd["param_groups"]]
        if (self.skip_nonfinite or self.skipped_steps) and sd["param_groups"]:
            sd["param_groups"] = [{**sd["param_groups"][0], SKIPPED_STEPS_KEY: self.skipped_steps},
                                  *sd["param_groups"][1:]]
        for post_hook in list(hooks.get(_SAVE_HOOKS[1], {}).values()):
            result = post_hook(self, sd)
            if result is not None:
                sd = result
        return sd

    def _saved_entries(self, entries: dict, p: Tensor | None, group: dict | None) -> dict:
        """One parameter's state as :meth:`state_dict` writes it: ``entries`` itself, or a new
        dict where a sharded entry is copied or a complex parameter's real-view entry is
        written in its complex form."""
        complex_keys: set = set()
        if p is not None and group is not None and torch.is_complex(p) and not _is_sharded(p):
            view = real(p)
            fresh = self._fresh_state(p, group)
            complex_keys = {key for key, value in entries.items()
                            if isinstance(value, Tensor) and not hasattr(value, "placements")
                            and value.dtype == view.dtype and value.shape == view.shape
                            and key in fresh and (fresh[key] is None or (
                                isinstance(fresh[key], Tensor) and fresh[key].shape == view.shape))}
        if not complex_keys and not any(_is_sharded(value) for value in entries.values()):
            return entries
        return {key: _complex_form(value) if key in complex_keys
                else _own_storage(value) if _is_sharded(value) else value
                for key, value in entries.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict, refusing one from another optimizer or a mismatched model.

        State saved by the matching ``torch.optim`` class loads too (same keys). The step
        counter keeps the dtype it was saved in, as torch keeps it (a float64 ``step`` counts
        on past 2**24), or the wider one the optimizer counts in (SOAP's, Shampoo's and
        Sophia's exact float64); a one-element ``step`` of shape ``[1]`` loads 0-d. The state of
        a complex parameter may come in either form: complex, of the parameter's shape (as
        torch and :meth:`state_dict` write it), or its real view (as earlier optimlab versions
        wrote it); it is kept as the real view.

        Hooks run as torch runs them, around the whole load: the
        ``register_load_state_dict_pre_hook`` hooks first (what one returns replaces the
        dict, so a hook may convert an old checkpoint before it is checked), the
        ``..._post_hook`` hooks last, once the state is fully loaded (entries back in the
        dtypes they were saved in, moments compacted), so what a post-hook sets stays.

        How each group runs (``fused``, ``foreach``) and stores its moments
        (``state_precision``) stay this optimizer's, whatever the checkpoint's groups say:
        ``RMSprop(fused=False)`` loading torch's checkpoint (no ``fused`` key) or Adam's
        (``fused: None``) keeps stepping as torch does, bit for bit.

        A group whose ``skip_nonfinite`` is a process group keeps it where the saved group
        holds True (how :meth:`state_dict` writes a process group): the load does not turn
        the guard shared by the group's processes into this process's own.
        """
        pre = getattr(self, "_optimizer_load_state_dict_pre_hooks", None) or {}
        post = getattr(self, "_optimizer_load_state_dict_post_hooks", None) or {}
        if isinstance(state_dict, dict):
            state_dict = state_dict.copy()  # as torch: a hook may change the dict it gets
        for hook in list(pre.values()):
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        check_state_dict(state_dict)
        state_dict = self._kept_codes(state_dict)
        tag = state_dict.get("optimlab")
        check_saved_name(self, tag)
        self._check_saved_state(state_dict, (tag or {}).get("param_shapes"))
        self._check_saved_hparams(state_dict)
        state_dict = self._host_counter_groups(state_dict)
        state_dict = self._real_view_state(state_dict)
        # how the moments are stored is this optimizer's choice, not the checkpoint's
        precisions = [group.get("state_precision") for group in self.param_groups]
        guards = [group.get("skip_nonfinite") for group in self.param_groups]
        # and so is how the step runs: a checkpoint of torch.optim.RMSprop has no "fused"
        # and one of torch.optim.Adam says None (torch's default: not fused), either of which
        # turned optimlab's kernel on in an optimizer built with fused=False
        engines = [{key: group[key] for key in _RUN_FLAGS if key in group}
                   for group in self.param_groups]
        with _hooks_set_aside(self):  # run here, around the whole load, not inside torch's
            super().load_state_dict(state_dict)
        for group, engine in zip(self.param_groups, engines):
            for key in _RUN_FLAGS:
                if key in engine:
                    group[key] = engine[key]
                else:
                    group.pop(key, None)
        # state_dict() writes a process group as True: a live group's process group stays
        for group, guard in zip(self.param_groups, guards):
            if _is_process_group(guard) and group.get("skip_nonfinite") is True:
                group["skip_nonfinite"] = guard
        # the count as DCP gives it back (in the first group), unless the optimlab entry has it
        counts = [group.pop(SKIPPED_STEPS_KEY) for group in self.param_groups
                  if SKIPPED_STEPS_KEY in group]
        if tag is not None:
            self.skipped_steps = int(tag.get("skipped_steps", 0))
        elif counts:
            self.skipped_steps = int(counts[0])
        self._restore_saved_dtypes(state_dict)
        if self.capabilities.compact_moments:
            self._compact_loaded_state(precisions)
        for hook in list(post.values()):
            hook(self)

    def _check_saved_hparams(self, state_dict: dict[str, Any]) -> None:
        """Refuse a saved param group holding a hyperparameter of a kind no step can use (an
        ``lr`` of ``"x"`` or ``None`` loaded, then failed deep inside the next step): where
        the constructor's default is a number, a finite number or a one-element tensor;
        where it is a bool, a bool; a tuple, a tuple of as many such items. Ranges and the
        checks between values are not applied: a scheduler may write what the constructor
        refuses and the rule still steps (an ``lr`` of 0 in a warm-up, a ``momentum`` of 0
        beside ``nesterov=True``, a tensor beside a float in ``betas``), and torch loads
        those. Keys that are no hyperparameter (``params``, ``initial_lr``) are not read."""
        defaults = hyperparameters(type(self))
        for index, group in enumerate(state_dict["param_groups"]):
            for name, default in defaults.items():
                if name in group:
                    problem = _unusable(name, group[name], default)
                    if problem:
                        raise ValueError(f"param group {index} of this state_dict: {problem}")

    def _host_counter_groups(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """``state_dict`` with its param groups' ``capturable: True`` read as False (a warning
        says so, once per optimizer); a saved ``differentiable: True`` raises ``ValueError``.

        ``torch.optim`` saves ``capturable=True`` for steps captured in CUDA graphs, whose
        step counters live on the device. optimlab's live on the host and compute the same
        numbers, so such a checkpoint resumes here as it would in torch; kept True, the
        next step would refuse the group (:meth:`_check_flags`). ``differentiable=True``
        asked for gradients through the step, which no load can give. The caller's dicts
        are not edited."""
        groups = state_dict["param_groups"]
        name = type(self).__name__
        for index, group in enumerate(groups):
            if group.get("differentiable"):
                raise ValueError(
                    f"param group {index} of this state_dict has differentiable=True: "
                    f"{name}'s step does not offer {_TORCH_FLAG_USE['differentiable']} (it "
                    "runs under no_grad); load it into torch.optim's class for that")
        if not any(group.get("capturable") for group in groups):
            return state_dict
        if not self.__dict__.get("_warned_capturable"):
            self._warned_capturable = True
            warnings.warn(
                f"{name}.load_state_dict: the state_dict's param groups have capturable=True "
                "(torch.optim's steps captured in CUDA graphs, with step counters on the "
                "device); optimlab steps with host step counters and computes the same "
                "numbers, so they load with capturable=False", UserWarning,
                stacklevel=_caller_level())
        return {**state_dict, "param_groups": [{**group, "capturable": False}
                                               if group.get("capturable") else group
                                               for group in groups]}

    def _kept_codes(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """``state_dict`` with 8-bit codes saved under ``<moment>_codes`` back under the
        moment's name, as the engine keeps them (:func:`optimlab.optim.compact.kept_codes`);
        the dict itself if it has none. The caller's dicts are not edited."""
        moments = self.capabilities.compact_moments
        if not moments:
            return state_dict
        state = {pid: compact.kept_codes(entries, moments) if isinstance(entries, dict) else entries
                 for pid, entries in state_dict["state"].items()}
        if all(state[pid] is state_dict["state"][pid] for pid in state):
            return state_dict
        return {**state_dict, "state": state}

    def _real_view_state(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """``state_dict`` with each complex state tensor of a complex parameter replaced by its
        real view, the form the engine keeps (torch's load keeps a complex parameter's state
        in its dtype); the dict itself if it has none. The caller's dicts are not edited."""
        state, changed = dict(state_dict["state"]), False
        for saved, group in zip(state_dict["param_groups"], self.param_groups):
            for pid, p in zip(saved["params"], group["params"]):
                entries = state.get(pid)
                if not entries or not p.dtype.is_complex or _is_sharded(p):  # (a lazy one too)
                    continue
                if any(isinstance(value, Tensor) and value.is_complex() for value in entries.values()):
                    state[pid] = {key: torch.view_as_real(value.resolve_conj())
                                  if isinstance(value, Tensor) and value.is_complex() else value
                                  for key, value in entries.items()}
                    changed = True
        return {**state_dict, "state": state} if changed else state_dict

    def _fresh_state(self, p: Tensor, group: dict) -> dict:
        """What ``init`` makes for ``p`` in ``group``, on the meta device where it follows the
        parameter (nothing is allocated): the dtype and device each entry is kept in."""
        hp = {key: value for key, value in group.items() if key != "params"}
        return self.init(torch.empty_like(real(p), device="meta"), **hp)

    def _restore_saved_dtypes(self, state_dict: dict[str, Any]) -> None:
        """Undo torch's cast where this optimizer keeps state in another dtype or place than
        its parameter's.

        torch's load casts every floating state tensor but ``step`` to its parameter's dtype
        and moves every one to the parameter's device, and keeps a number as it is (a step
        that torch before 1.12 saved as one becomes a tensor here). An entry that ``init`` makes in
        another dtype or on the CPU (a bfloat16 parameter's float32 factors in SOAP, Shampoo
        and PSGD-Kron, ASGD's float32 scalars, a generator's bytes, an integer counter), and
        the float32 block scales of 8-bit moments, is taken again from the checkpoint as it
        was saved. 8-bit codes (not floating, never cast) are left to
        :meth:`_compact_loaded_state`.

        The step counter keeps the dtype it was saved in, as torch keeps it (a float64
        ``step`` goes on counting past 2**24, where float32 stops), widened to the dtype
        ``init`` makes it in where that is wider (SOAP's, Shampoo's and Sophia's exact
        float64 counters load a float32 step as float64). An entry that ``init`` makes 0-d
        and the checkpoint holds as one element of another shape (a ``step`` of shape
        ``[1]``, as a resharded checkpoint may hold it, which torch steps on) is loaded 0-d.
        """
        saved_ids = [pid for group in state_dict["param_groups"] for pid in group["params"]]
        mine = [(p, group) for group in self.param_groups for p in group["params"]]
        for pid, (p, group) in zip(saved_ids, mine):
            state, kept = self.state.get(p), state_dict["state"].get(pid, {})
            if not state or is_lazy(p):  # a lazy one has no shape for init: kept as loaded
                continue
            fresh = self._fresh_state(p, group)
            for key, value in kept.items():
                like = fresh.get(key)
                if isinstance(like, Tensor) and like.dim() == 0 and type(value) in (int, float):
                    # torch before 1.12 saved the step (ASGD's eta and mu) as a number; its
                    # classes' __setstate__ make it a tensor, as this does
                    state[key] = torch.tensor(value, dtype=like.dtype,
                                              device=p.device if like.is_meta else like.device)
                    continue
                if not isinstance(value, Tensor) or not isinstance(state.get(key), Tensor):
                    continue
                shape = state[key].shape
                if isinstance(like, Tensor) and like.dim() == 0 and value.numel() == 1:
                    shape = like.shape  # one element saved as [1]: kept 0-d, as init makes it
                if key.endswith(compact.SCALE):
                    dtype, device = value.dtype, p.device
                elif isinstance(like, Tensor) and value.is_floating_point() \
                        == like.is_floating_point():
                    dtype, device = like.dtype, p.device if like.is_meta else like.device
                    if key == "step" and value.is_floating_point():
                        # torch keeps the counter's saved dtype; an exact counter stays exact
                        dtype = torch.promote_types(value.dtype, like.dtype)
                else:
                    if state[key].shape != shape:
                        state[key] = state[key].reshape(shape)
                    continue
                if state[key].dtype != dtype or state[key].device != device \
                        or state[key].shape != shape:
                    state[key] = value.reshape(shape).to(device, dtype, copy=True)

    def _compact_loaded_state(self, precisions: list) -> None:
        """Bring loaded moments to each group's ``state_precision``: torch's load casts every
        state tensor to its parameter's dtype, and a float checkpoint may be loaded into a
        compact optimizer (or the other way round). Decoding and encoding again is exact."""
        moments = self.capabilities.compact_moments
        for group, precision in zip(self.param_groups, precisions):
            group["state_precision"] = precision
            if precision is not None:  # a later switch to None decodes (_check_flags)
                self._was_compact = True
            for p in group["params"]:
                state = self.state.get(p)
                if not state or is_lazy(p):  # a lazy one has no shape for init: as loaded
                    continue
                fresh = self._fresh_state(p, group)
                dtype = next((fresh[k].dtype for k in moments if isinstance(fresh.get(k), Tensor)),
                             real(p).dtype)
                full = compact.unpack(state, moments, dtype)
                state.clear()
                if precision is None:
                    state.update(full)
                else:
                    compact.pack(state, full, moments, precision)

    def _check_saved_state(self, state_dict: dict[str, Any], shapes: list | None) -> None:
        """``state_dict`` (its form checked by :func:`check_state_dict`) saved for these
        parameters (:func:`check_saved_groups`), each one's state as this rule keeps it."""
        check_saved_groups(self, state_dict, shapes)
        for saved, group in zip(state_dict["param_groups"], self.param_groups):
            hp = {key: saved.get(key, group.get(key, value))
                  for key, value in self.defaults.items() if key not in DRIVER_FLAGS}
            for pid, p in zip(saved["params"], group["params"]):
                state = state_dict["state"].get(pid)
                if state and not is_lazy(p):  # a lazy one has no shape to check against
                    self._check_param_state(pid, p, state, hp)

    def _check_param_state(self, pid: Any, p: Tensor, state: dict, hp: dict) -> None:
        name = type(self).__name__
        meta = torch.empty_like(p, device="meta")
        if torch.is_complex(meta):
            meta = torch.view_as_real(meta)
        expected = self.init(meta, **hp)
        # an 8-bit moment's block scales sit beside it (optimlab.optim.compact)
        scales = {key + compact.SCALE for key in self.capabilities.compact_moments}
        if set(state) - scales != set(expected):
            raise ValueError(
                f"state of parameter {pid} has keys {sorted(state)} but {name} keeps "
                f"{sorted(expected)}: was this state_dict saved by a different optimizer?"
            )
        for key, want in expected.items():
            have = state[key]
            if want is None and isinstance(have, Tensor):
                want = meta  # a lazily created buffer (SGD's momentum) is parameter-shaped
            if isinstance(want, Tensor) and want.dim() == 0 and isinstance(have, Tensor) \
                    and have.numel() != 1:
                raise ValueError(
                    f"state '{key}' of parameter {pid} has shape {tuple(have.shape)} but "
                    f"{name} keeps a single number there: was this state_dict saved by a "
                    "different optimizer?")
            if isinstance(want, Tensor) and want.dim() > 0:
                shape = tuple(have.shape) if isinstance(have, Tensor) else type(have).__name__
                need = tuple(want.shape)
                if isinstance(have, Tensor) and have.is_complex() and torch.is_complex(p) \
                        and need[-1:] == (2,):
                    need = need[:-1]  # torch's form: complex, where the engine keeps the real view
                if shape != need:
                    raise ValueError(
                        f"state '{key}' of parameter {pid} has shape {shape} but the parameter "
                        f"needs {need}: was this state_dict saved for another model?"
                    )
