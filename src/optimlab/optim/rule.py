"""The contract between an update rule and everything that runs it.

An algorithm is two pure functions, written once in its own module:

* ``init(p, **hp) -> dict``: the state of one parameter before its first step;
* ``update(p, g, state, *, step, **hp) -> Tensor``: one step of the rule. It receives the
  parameter ``p`` and the (already sign-adjusted) gradient ``g``, rebinds the entries of
  ``state`` to their new values and returns the new parameter. It never mutates ``p``,
  ``g`` or a state tensor in place.

Because the rule only uses elementwise arithmetic (and whole-tensor norms) on whatever it
is given, the same function runs unchanged when ``p`` is a
:class:`~optimlab.optim.multi_tensor.TensorList` (every tensor of a group at once), when
``p`` carries a leading member axis and the hyperparameters are tensors broadcast along it
(populations, landscape races), and when it is traced into a fused kernel. Two conventions
keep that true:

* numeric hyperparameters are only used arithmetically; a branch on a value goes through
  :func:`nonzero`, which treats a tensor hyperparameter as "maybe nonzero";
* Python ``bool`` options (``amsgrad``, ``nesterov``, ...) may branch freely: they are
  structural and shared by every tensor and member.

What a rule of your own (a :class:`~optimlab.optim.base.RuleOptimizer` subclass, written as
``lion.py`` is) may do, in full:

* **Operations over a group.** With ``Capabilities(multi_tensor=True)`` (the default) ``p``,
  ``g`` and the state tensors may be :class:`~optimlab.optim.multi_tensor.TensorList` objects:
  use elementwise arithmetic (``+ - * / **``, comparisons, ``&``), the elementwise torch
  functions (``torch.lerp``, ``addcmul``, ``addcdiv``, ``where``, ``clamp``, ``maximum``,
  ``minimum``, ``sqrt``, ``rsqrt``, ``exp``, ``log``, ``sign``, ``abs``, ``zeros_like``, ...;
  others run tensor by tensor, more slowly), the methods ``sqrt``, ``rsqrt``, ``abs``,
  ``sign``, ``reciprocal``, ``square``, ``clone`` and ``to``, and whole-tensor norms with
  ``torch.linalg.vector_norm`` (one per tensor). Not ``.item()``, ``.max()``, ``.all()``,
  ``.norm()``, other reductions or in-place methods.
* **Branches.** Call :func:`nonzero` on a hyperparameter itself (``nonzero(weight_decay)``,
  ``beta1, beta2 = betas; nonzero(beta1)``), not on a value computed from one
  (``nonzero(1 - beta)``, ``nonzero(lr * wd)``): the fused kernel is specialised on which
  raw hyperparameters are zero, so it cannot run such a rule (the plain path runs it, and
  ``fused=True`` raises). ``.item()`` and Python branches on tensor values are for a class
  whose ``Capabilities`` say ``multi_tensor=False`` and ``fusable=False`` only.
* **Keeping ``p`` or ``g``.** A rule may keep the parameter or the gradient it was given in
  its state (``state["prev_g"] = g``, as Adan and MARS do): the engine copies it, so the
  state does not change with ``.grad`` or with the parameter written after the step.
* **Purity.** A rule is a pure function of its arguments: no in-place change of ``p``,
  ``g`` or a state tensor, no global it reads that changes after its first step (a fused
  kernel is traced once), no random numbers.

A rule for sparse gradients (``capabilities.sparse``: SparseAdam, Adagrad) changes only the
entries a gradient stores. Where a dense sum would copy the whole tensor on every step, it
gives the new value as :func:`sparse_add` (``x`` plus a sparse change, not computed); the
engine adds the change into ``x`` in place, as ``torch.optim``'s ``add_`` does, so a step
costs what the gradient stores, not the tensor's size.

The step counter has one convention, :func:`advance`: a 0-d tensor ``state["step"]``
(stored as torch stores it) counted up *before* the update, whose value reaches the rule as
the Python number ``step``. :func:`call` is the one way a rule is applied: the gradient is
negated for ``maximize``, then ``update`` runs.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["nonzero", "scalar_step", "exact_step", "advance", "Counters", "call",
           "recording_branches", "SparseAdd", "sparse_add", "settle"]

Hyper = float | Tensor

_LOCAL = threading.local()


def nonzero(x: Hyper) -> bool:
    """Whether a hyperparameter may be nonzero (a tensor counts as "maybe").

    Inside :func:`recording_branches` every value asked about is reported, which is how the
    fused path learns the hyperparameters a rule branches on.
    """
    recorder = getattr(_LOCAL, "recorder", None)
    if recorder is not None:
        recorder(x)
    return isinstance(x, Tensor) or x != 0


@contextlib.contextmanager
def recording_branches(callback: Callable[[Hyper], None]) -> Iterator[None]:
    """Report every value :func:`nonzero` is asked about in this thread to ``callback``."""
    previous = getattr(_LOCAL, "recorder", None)
    _LOCAL.recorder = callback
    try:
        yield
    finally:
        _LOCAL.recorder = previous


def scalar_step() -> Tensor:
    """A fresh step counter, stored like torch does (float32 unless float64 is default)."""
    dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    return torch.tensor(0.0, dtype=dtype)


def exact_step() -> Tensor:
    """A fresh step counter that counts exactly (float64, to 2**53), for a rule not in
    ``torch.optim`` that schedules work by the count (``step % frequency``: SOAP's and
    Shampoo's preconditioner refreshes, Sophia's Hessian estimates), as its reference code's
    Python int does. :func:`scalar_step`'s float32 counter stops counting at 2**24 (its
    ``+ 1`` rounds back), which would stop such work, or run it on every step, from there.
    A float32 counter loaded from an older checkpoint is widened to float64 by
    :meth:`~optimlab.optim.base.RuleOptimizer.load_state_dict`."""
    return torch.tensor(0.0, dtype=torch.float64)


def advance(state: dict) -> float | None:
    """Count one step in ``state`` (if the rule keeps a counter); the new count, or None.
    Raises ``TypeError`` where ``state["step"]`` is not a tensor (a user's edit), as the
    multi-tensor and fused paths raise it before they step; a deleted counter is a
    ``KeyError`` from :func:`call`, once the rule asks for the step."""
    counter = state.get("step")
    if counter is None:
        return None
    try:
        counter += 1
        return counter.item()
    except AttributeError as error:  # only here, on failure: a step costs no type check
        raise _not_a_counter(state["step"]) from error


def _not_a_counter(counter: Any) -> TypeError:
    """The error for a ``state["step"]`` that is not the 0-d tensor :func:`advance` counts
    (every path raises it: the per-tensor one from :func:`advance`, the multi-tensor and
    fused ones when they lay out the state)."""
    return TypeError(f"state['step'] is {type(counter).__name__} {counter!r}, not the step "
                     "counter, a 0-d tensor (restore it as torch.tensor(float(steps)))")


def _counts_steps(update: Callable) -> bool:
    """Whether ``update`` takes the step count (a rule with a counter)."""
    try:
        return "step" in inspect.signature(update).parameters
    except (TypeError, ValueError):
        return False


class Counters:
    """The step counters of several CPU states, advanced together by :func:`advance`'s
    convention through NumPy views of the counter tensors.

    For a fused step that runs thousands of times on tiny tensors (a race): adding one
    through a view costs about a microsecond, where the tensor op and ``.item()`` of
    :func:`advance` cost several. The counters stay the state's tensors (the views share
    their memory), so ``state["step"]`` reads the same either way. Raises ``ValueError``
    unless every state has a 0-d CPU counter.
    """

    def __init__(self, states: list[dict]) -> None:
        counters = [state.get("step") for state in states]
        if any(not isinstance(c, Tensor) or c.dim() != 0 or c.device.type != "cpu"
               or c.requires_grad for c in counters):
            raise ValueError("Counters needs a 0-d CPU step tensor in every state")
        self._views = [c.numpy() for c in counters]

    def advance(self) -> list[float]:
        """Count one step in every state; the new counts."""
        counts = []
        for view in self._views:
            view += 1  # in place: the state's tensor, in its own dtype (float32 as torch)
            counts.append(float(view))
        return counts


class SparseAdd:
    """``base + alpha * delta`` for a sparse ``delta``, not computed yet (:func:`sparse_add`)."""

    __slots__ = ("base", "delta", "alpha")

    def __init__(self, base: Tensor, delta: Tensor, alpha: float = 1) -> None:
        self.base, self.delta, self.alpha = base, delta, alpha

    def dense(self) -> Tensor:
        """The sum as a new dense tensor (``base`` unchanged)."""
        return self.base.add(self.delta, alpha=self.alpha)


def sparse_add(base: Tensor, delta: Tensor, alpha: float = 1) -> SparseAdd:
    """``base + alpha * delta`` (``delta`` sparse) as a rule for sparse gradients gives a new
    parameter or state entry: :func:`settle` adds ``delta`` into ``base`` in place where
    ``base`` is the tensor being replaced, touching only the entries ``delta`` stores. The
    bits are those of ``base.add(delta, alpha=alpha)``."""
    return SparseAdd(base, delta, alpha)


def settle(value: Any, old: Tensor | None) -> Any:
    """The tensor a rule's result stands for, given the tensor ``old`` it replaces: a
    :class:`SparseAdd` onto ``old`` is added into ``old`` in place (and ``old`` returned);
    onto anything else it is computed as a new tensor; any other value is itself."""
    if not isinstance(value, SparseAdd):
        return value
    if value.base is old:
        return old.add_(value.delta, alpha=value.alpha)
    return value.dense()


def call(update: Callable[..., Any], p: Any, g: Any, state: dict, step: Any, hp: dict,
         maximize: bool = False) -> Any:
    """Apply ``update`` once: negate the gradient to maximize, then step. Returns the new
    parameter; ``state`` holds the new state."""
    if maximize:
        g = -g
    try:
        return update(p, g, state, step=step, **hp)
    except TypeError as error:
        # A rule that counts steps given none: its counter was deleted, or replaced by a
        # value that is not a tensor (``None ** x`` would be all the user saw). Looked into
        # only here, on failure, so that a step costs no check.
        if step is None and _counts_steps(update):
            if "step" not in state:
                missing = KeyError("step")
                missing.add_note("the parameter's state has no step counter 'step' (deleted?); "
                                 "restore it as torch.tensor(float(steps))")
                raise missing from error
            raise _not_a_counter(state["step"]) from error
        raise
