"""The fused fast path: one C loop per optimizer step, generated from the rule itself.

An optimizer step is memory-bound: Adam reads parameter, gradient and two moments and writes
three of them back (28 bytes per float32 parameter). The plain path runs the rule as a chain
of tensor operations, each a pass over memory; the fused path runs it as a single pass.

How: :func:`kernel` traces the optimizer's own ``update`` function (see
:mod:`optimlab.optim.kernels.codegen`) with its structural options fixed (``amsgrad``,
``nesterov``, which hyperparameters are exactly zero, the dtype) and its numbers as inputs,
writes the traced graph as a C loop, and compiles it once per machine
(:mod:`optimlab.optim.kernels.build`). The generated C source is kept on disk too
(:func:`_cached_source`), so a warm process neither traces nor compiles: tracing imports
``torch._inductor`` and ``torch._dynamo``, 1.5 s of a short command's start-up. The same
kernel steps a list of tensors, each with its own scalars (step, scalar state,
hyperparameters), so it serves both a ``torch.optim`` param group and a population whose
members have different learning rates.

Supported: CPU tensors of float32 or float64 (complex ones as their real view), contiguous,
dense gradients, rules whose update is elementwise plus whole-tensor norms (LAMB). Anything
else runs the plain path; ``fused=True`` turns the fallback into an error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..._files import write_atomically
from .. import rule as rules
from ..capabilities import DRIVER_FLAGS
from ..rng import keeping_rng
from .build import (
    BuildFailed,
    CompilerUnavailable,
    _discard_loose,
    _distrusted,
    _make_private,
    _untrusted_folder,
    cache_dir,
    compiler,
    load,
    untrusted,
)
from .codegen import CHUNK, Unsupported, to_c, trace_rule

__all__ = ["Layout", "Kernel", "Launch", "kernel", "Unsupported", "StateNotReady", "CompilerUnavailable",
           "BuildFailed", "FusedUnavailableWarning",
           "cache_dir",
           "compiler", "DTYPES", "DRIVER_KEYS"]

#: a fused step over fewer numbers than this runs on one thread (one chunk of work)
SMALL_STEP = CHUNK

#: the element types the generated C handles
DTYPES = (torch.float32, torch.float64)
#: options of the driver, not of the rule: they never reach the kernel (one definition, in
#: :mod:`optimlab.optim.capabilities`)
DRIVER_KEYS = DRIVER_FLAGS


class StateNotReady(Unsupported):
    """The rule creates a state buffer on this step (SGD's momentum buffer on the first)."""


@dataclass(frozen=True)
class Layout:
    """Which state entries are parameter-shaped, 0-d (besides the step) or None."""

    vector: tuple[str, ...]
    scalar: tuple[str, ...]
    step: bool
    #: entries that are None: unused (SGD without momentum) or not created yet
    none: tuple[str, ...] = ()
    #: the dtypes of the ``scalar`` entries (NAdam keeps a float32 product)
    scalar_dtypes: tuple[torch.dtype, ...] = ()

    @staticmethod
    def of(state: dict, like: Tensor) -> Layout | None:
        """The layout of one parameter's state, or None if the kernel cannot take it.

        A 0-d entry is scalar state (the step, NAdam's product), except beside a 0-d
        parameter: there the moments are 0-d too, so an entry of the parameter's dtype is
        parameter-shaped state (a vector of one element), as the plain path steps it.
        """
        vector, scalar, none = [], [], []
        for key, value in state.items():
            if key == "step":
                if not (isinstance(value, Tensor) and value.dim() == 0):
                    return None
            elif value is None:
                none.append(key)
            elif not isinstance(value, Tensor):
                return None
            elif value.dim() == 0 and not (like.dim() == 0 and value.dtype == like.dtype
                                           and value.device == like.device):
                scalar.append(key)
            elif (value.shape != like.shape or value.dtype != like.dtype
                  or value.device != like.device or not value.is_contiguous()):
                return None
            else:
                vector.append(key)
        return Layout(tuple(vector), tuple(scalar), "step" in state, tuple(none),
                      tuple(state[k].dtype for k in scalar))


def _number(value) -> bool:
    if isinstance(value, Tensor):
        return value.numel() == 1 and value.dtype.is_floating_point
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _split(hp: dict) -> tuple[list[str], dict]:
    """Numeric hyperparameter slots (``name`` or ``name[i]``) and the structural rest."""
    slots, structure = [], {}
    for key in sorted(hp):
        value = hp[key]
        if key in DRIVER_KEYS:
            continue
        if _number(value):
            slots.append(key)
        elif isinstance(value, (tuple, list)) and value and all(_number(v) for v in value):
            slots += [f"{key}[{i}]" for i in range(len(value))]
        else:
            try:
                hash(value)
            except TypeError as error:
                raise Unsupported(f"hyperparameter {key}={value!r} is not a number or a "
                                  "hashable option") from error
            structure[key] = value
    return slots, structure


def _parse(slot: str) -> tuple[str, int | None]:
    """``"betas[1]"`` -> ``("betas", 1)``; ``"lr"`` -> ``("lr", None)``."""
    if slot.endswith("]"):
        key, index = slot[:-1].split("[")
        return key, int(index)
    return slot, None


def slot_value(hp: dict, slot: str):
    """The value of one numeric slot of ``hp`` as stored (a number or a tensor column)."""
    key, index = _parse(slot)
    return hp[key] if index is None else hp[key][index]


def slot_values(hp: dict, slots: Sequence[str]) -> list[float]:
    """The numbers of ``hp`` in slot order (see :func:`_split`)."""
    return [float(slot_value(hp, slot)) for slot in slots]


def _rebuild(hp: dict, slots: Sequence[str], values: dict[str, object]) -> dict:
    """``hp`` with each numeric slot replaced by ``values[slot]``."""
    out = {k: v for k, v in hp.items() if k not in DRIVER_KEYS}
    for slot in slots:
        key, index = _parse(slot)
        if index is None:
            out[key] = values[slot]
        else:
            items = list(out[key])
            items[index] = values[slot]
            out[key] = tuple(items)
    return out


class _Probe(float):
    """A hyperparameter value that remembers its slot (arithmetic gives plain floats)."""

    slot: str


def _probe_value(value: float, slot: str) -> _Probe:
    probe = _Probe(value)
    probe.slot = slot
    return probe


def _branched_slots(update: Callable, layout: Layout, hp: dict, slots: list[str]) -> frozenset:
    """The slots the rule branches on with :func:`~optimlab.optim.rule.nonzero`.

    Those slots are structural when exactly zero (SGD without momentum keeps no buffer), so
    a kernel is specialised for which of them are zero; every other number is an input.
    The probe runs the plain rule once on a tiny example with the actual values. A tensor
    hyperparameter goes in as itself: ``nonzero`` calls it "maybe nonzero" whatever it holds
    now (a schedule may write into it), so it is never a slot branched on, as on the plain path.
    """
    values = {slot: value if isinstance(value := slot_value(hp, slot), Tensor)
              else _probe_value(float(value), slot) for slot in slots}
    seen: list = []
    # a private generator: a step must not move the process's random numbers (a seeded
    # script's dropout masks would depend on whether a kernel was built earlier)
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(4, dtype=torch.float64, generator=gen)
    state = {k: torch.rand(4, dtype=torch.float64, generator=gen) for k in layout.vector}
    state.update({k: torch.tensor(0.5, dtype=d) for k, d in zip(layout.scalar, layout.scalar_dtypes)})
    state.update({k: None for k in layout.none})
    step = 3.0 if layout.step else None
    if layout.step:
        state["step"] = torch.tensor(step, dtype=torch.float64)
    grad = torch.rand(4, dtype=torch.float64, generator=gen)
    # and the rule's own draws (a noisy rule's randn_like) are undone (not another thread's)
    with rules.recording_branches(seen.append), keeping_rng():
        try:
            update(p, grad, state, step=step, **_rebuild(hp, slots, values))
        except Exception as error:
            raise Unsupported(f"the rule did not run on a probe: {error}") from error
    return frozenset(x.slot for x in seen if isinstance(x, _Probe))


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """A digest of every source file of :mod:`optimlab.optim` and of torch's version: what a
    generated kernel of one of its rules can depend on (the rules, their helpers, this
    generator)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _identity(update: Callable, dtype, layout: Layout, hp: dict, slots: list[str],
              zero: frozenset, maximize: bool) -> str | None:
    """The name a kernel's generated source is kept under, or None where it cannot be named
    safely: only the library's own module-level rules, whose code :func:`_code_digest`
    covers, with structural options whose ``repr`` is a value (not an object's address)."""
    module, name = getattr(update, "__module__", ""), getattr(update, "__qualname__", "<")
    if not module.startswith("optimlab.optim.") or "<" in name:
        return None
    structure = repr(sorted((k, v) for k, v in hp.items()
                            if k not in DRIVER_KEYS and not any(
                                s == k or s.startswith(k + "[") for s in slots)))
    if " at 0x" in structure:
        return None
    text = "\n".join([_code_digest(), module, name, str(dtype), repr(layout), structure,
                      repr(list(slots)), repr(sorted(zero)), repr(bool(maximize))])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _sources_dir() -> Path:
    return cache_dir().parent / "kernel-sources"


def _cached_source(identity: str | None) -> tuple[str, int] | None:
    """The kept ``(C source, scalar outputs)`` of a kernel, or None (then it is traced).

    A kept source is compiled and loaded as it is, so one that another user could have
    written (:func:`~optimlab.optim.kernels.build.untrusted`: the file, its folder or the
    cache folder above it not this user's alone) is not read: a warning says so once."""
    if identity is None:
        return None
    folder = _sources_dir()
    path = folder / f"{identity}.json"
    if not os.path.lexists(path):  # nothing kept (a link counts, to be refused)
        return None
    if _discard_loose(path):  # this user's, left writable by an older optimlab: traced anew
        return None
    try:
        _make_private(folder)  # this user's folder, left writable by an older optimlab
    except OSError:
        pass  # examined as it is
    reason = _untrusted_folder(folder) or untrusted(path)
    if reason is not None:
        _distrusted(reason)
        return None
    try:
        kept = json.loads(path.read_text())
        return str(kept["source"]), int(kept["n_scalar_out"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _keep_source(identity: str | None, source: str, n_scalar_out: int) -> None:
    """Keep a generated source for the next process (atomically; best effort)."""
    if identity is None:
        return
    folder = _sources_dir()
    try:
        _make_private(folder)
        reason = _untrusted_folder(folder)
        if reason is not None:  # not read back either: kept for no one
            _distrusted(reason)
            return
        write_atomically(folder / f"{identity}.json",
                         json.dumps({"source": source, "n_scalar_out": n_scalar_out}),
                         prefix=f"{identity}.")
    except OSError:
        pass  # keeping is optional: OPTIMLAB_CACHE naming a regular file, a full disk


class Kernel:
    """A compiled fused step for one rule structure.

    :meth:`call` takes, per tensor, the addresses of ``[param, grad, *vector_state]``
    (contiguous, same dtype), its number of elements and a row of float64 scalars (``step``,
    the scalar state, then the numeric hyperparameters in :attr:`slots` order). It updates
    the tensors in place and writes the new scalar state, one row per tensor. Callers hold
    those buffers in a :class:`Launch`.
    """

    def __init__(self, update: Callable, dtype: torch.dtype, layout: Layout, hp: dict,
                 maximize: bool, zero: frozenset, slots: list[str]) -> None:
        self.layout, self.dtype = layout, dtype
        self.slots = [s for s in slots if s not in zero]
        constants = {s: 0.0 for s in zero}
        n_vector = 2 + len(layout.vector)
        head = (["step"] if layout.step else []) + list(layout.scalar)
        self.n_scalar_in = len(head) + len(self.slots)

        def rule(*args):
            p, g, *vectors = args[:n_vector]
            # by position: a scalar state entry may share a hyperparameter's name ("lr")
            kept = dict(zip(head, args[n_vector:n_vector + len(head)]))
            state = dict(zip(layout.vector, vectors))
            state.update({k: kept[k] for k in layout.scalar})
            state.update({k: None for k in layout.none})
            step = kept.get("step")
            if step is not None:
                state["step"] = step
            numbers = {**constants, **dict(zip(self.slots, args[n_vector + len(head):]))}
            inputs = {id(a) for a in args}
            with rules.recording_branches(functools.partial(_raw_only, inputs)):
                new = rules.call(update, p, g, state, step, _rebuild(hp, slots, numbers),
                                 maximize)
            if any(state[k] is not None for k in layout.none):
                raise StateNotReady("the rule creates a state buffer on this step")
            return (new, *[state[k] for k in layout.vector], *[state[k] for k in layout.scalar])

        compiler()  # raises first where there is none: tracing costs a second for nothing
        scalar_dtypes = ([torch.float64] if layout.step else []) + list(layout.scalar_dtypes) \
            + [torch.float64] * len(self.slots)
        identity = _identity(update, dtype, layout, hp, slots, zero, maximize)
        cached = _cached_source(identity)
        traced = cached is None
        if traced:
            program = trace_rule(rule, n_vector, scalar_dtypes, dtype)
            cached = to_c(program), max(program.n_scalar_out, 1)
        self.source, self.n_scalar_out = cached
        self._fn = load(self.source)
        if traced:  # only a source that built is kept for the next process
            _keep_source(identity, *cached)

    def check(self, ptrs: Tensor, numel: Tensor, scalars: Tensor, out: Tensor) -> None:
        """Raise ``ValueError`` unless the buffers fit this kernel (see :meth:`call`)."""
        nt = numel.numel()
        if scalars.dtype != torch.float64 or not scalars.is_contiguous() \
                or scalars.shape != (nt, self.n_scalar_in):
            raise ValueError(f"expected scalars of shape {(nt, self.n_scalar_in)}, "
                             f"got {tuple(scalars.shape)}")
        if ptrs.numel() != nt * (2 + len(self.layout.vector)) or ptrs.dtype != torch.int64 \
                or not ptrs.is_contiguous() or numel.dtype != torch.int64:
            raise ValueError(f"expected {nt * (2 + len(self.layout.vector))} contiguous int64 "
                             f"pointers and int64 sizes, got {ptrs.numel()} {ptrs.dtype}")
        if out.shape != (nt, self.n_scalar_out) or out.dtype != torch.float64 \
                or not out.is_contiguous():
            raise ValueError(f"out must be contiguous float64 of shape {(nt, self.n_scalar_out)}")

    def call(self, ptrs: Tensor, numel: Tensor, scalars: Tensor, out: Tensor,
             threads: int | None = None) -> Tensor:
        """Step in place, unchecked: for buffers that passed :meth:`check` (see :class:`Launch`).
        ``threads`` defaults to torch's intra-op thread count."""
        self.call_addresses(_addresses(ptrs, numel, scalars, out), threads)
        return out

    def call_addresses(self, addresses: tuple, threads: int | None = None) -> None:
        """:meth:`call` on buffers given by :func:`_addresses` (a :class:`Launch` keeps them)."""
        code = self._fn(*addresses, torch.get_num_threads() if threads is None else threads)
        if code != 0:
            raise MemoryError("the fused optimizer step could not allocate its work lists")


def _raw_only(inputs: set[int], value) -> None:
    """While a rule is traced: refuse a :func:`~optimlab.optim.rule.nonzero` asked about a
    tensor that is no input of the rule (a value derived from a hyperparameter, such as
    ``nonzero(1 - beta)``). The kernel is specialised only on which raw hyperparameters are
    zero (:func:`_branched_slots`), so it would always take the "nonzero" branch, where the
    plain path takes the branch of the actual value: the plain path runs such a rule."""
    if isinstance(value, Tensor) and id(value) not in inputs:
        raise Unsupported("the rule calls nonzero() on a value computed from hyperparameters; "
                          "the fused kernel branches only on a hyperparameter itself "
                          "(nonzero(beta), not nonzero(1 - beta): see optimlab.optim.rule)")


def _addresses(ptrs: Tensor, numel: Tensor, scalars: Tensor, out: Tensor) -> tuple:
    """The kernel's arguments before the thread count: the number of tensors, then the
    addresses of the sizes, the pointer rows, the scalar rows and the output rows."""
    return (numel.numel(), numel.data_ptr(), ptrs.data_ptr(), scalars.data_ptr(),
            out.data_ptr())


class Launch:
    """The buffers of repeated calls of one kernel over the same tensors, checked once.

    ``ptrs`` has one row of addresses per tensor (parameter, gradient, vector state) and
    ``numel`` its sizes. Between calls a caller sets what changes (the gradients' column of
    :attr:`ptrs_np`, the step and hyperparameters in :attr:`scalars_np`) through NumPy
    views, which cost about a microsecond where a torch indexing op costs ten.
    """

    def __init__(self, kernel: Kernel, ptrs: Tensor, numel: Tensor) -> None:
        self.kernel = kernel
        self.ptrs = ptrs.contiguous()
        self.ptrs_np = self.ptrs.numpy()
        self.numel = numel
        self.scalars = torch.zeros(numel.numel(), kernel.n_scalar_in, dtype=torch.float64)
        self.scalars_np = self.scalars.numpy()
        self.out = torch.zeros(numel.numel(), kernel.n_scalar_out, dtype=torch.float64)
        kernel.check(self.ptrs, self.numel, self.scalars, self.out)
        # A step smaller than one chunk of work runs on this thread alone: waking OpenMP
        # workers for a race's few numbers cost more than the step (16x slower exhibits on
        # 2 busy cores), and the result does not depend on the thread count.
        self.alone = int(numel.sum()) < SMALL_STEP
        self._addresses = _addresses(self.ptrs, self.numel, self.scalars, self.out)

    def __call__(self) -> Tensor:
        """One step; returns the new scalar state (one row per tensor)."""
        self.kernel.call_addresses(self._addresses, 1 if self.alone else None)
        return self.out


_KERNELS: dict = {}
_PROBES: dict = {}
_LOCK = threading.Lock()
#: whether this process said that no kernel builds here (once: every optimizer would say it)
_WARNED = False


def kernel(update: Callable, dtype: torch.dtype, layout: Layout, hp: dict,
           maximize: bool = False) -> Kernel:
    """The fused kernel of ``update`` for this dtype, state layout and hyperparameters.

    Built (traced, generated, compiled or loaded from the disk cache) on first use and kept
    for the process. Raises :class:`Unsupported` or :class:`CompilerUnavailable` when the
    rule or the machine cannot have one; the first time the machine cannot (no compiler, or
    a build failed), a ``UserWarning`` says so, once per process.
    """
    if dtype not in DTYPES:
        raise Unsupported(f"the fused path handles float32 and float64, not {dtype}")
    slots, structure = _split(hp)
    numbers = slot_values(hp, slots)
    # which branches the rule takes depends on the structure and on which numbers are zero
    probe_key = (update, layout, tuple(sorted(structure.items())), tuple(slots),
                 frozenset(s for s, v in zip(slots, numbers) if v == 0))
    if probe_key not in _PROBES:
        _PROBES[probe_key] = _branched_slots(update, layout, hp, slots)
    branched = _PROBES[probe_key]
    zero = frozenset(s for s, v in zip(slots, numbers) if s in branched and v == 0)
    key = probe_key[:4] + (dtype, bool(maximize), zero)
    with _LOCK:
        if key not in _KERNELS:
            try:
                _KERNELS[key] = Kernel(update, dtype, layout, hp, maximize, zero, slots)
            except (Unsupported, BuildFailed) as refusal:
                # A refusal is a property of the key too (SGD's first step with momentum
                # creates its buffer, on every race), and so is a source the compiler
                # rejected: remembered, not traced or compiled again by the next optimizer.
                # (A missing compiler is remembered by build.compiler.)
                _KERNELS[key] = refusal
                if isinstance(refusal, BuildFailed):
                    _warn_unavailable(refusal)
            except CompilerUnavailable as missing:
                _warn_unavailable(missing)
                raise
        found = _KERNELS[key]
    if isinstance(found, (Unsupported, BuildFailed)):
        raise type(found)(*found.args)
    return found


class FusedUnavailableWarning(UserWarning):
    """The fused step cannot be built on this machine (no C compiler, or it refused every
    kernel): ``fused=None`` steps on the plain path. Filter it by this class to silence it."""


def _warn_unavailable(error: CompilerUnavailable) -> None:
    """Say once per process that the fused path is out of reach here (``fused=None`` fell
    back without a word, several times slower, and a Mac without OpenMP never knew why).

    Said in the middle of a step (its state made, its parameters not yet moved): where
    warnings are errors (``-W error``, pytest's ``filterwarnings = error``) the raised warning
    is dropped rather than let abort the step half done, as the fallback is what the user's
    ``fused=None`` asked for."""
    global _WARNED
    if _WARNED:
        return
    _WARNED = True
    try:
        warnings.warn("optimlab's fused optimizer step is unavailable here, so fused=None steps "
                      "on the plain path, more slowly (said once per process; fused=False "
                      f"chooses the plain path without a word): {error}",
                      FusedUnavailableWarning, stacklevel=2)
    except Warning:
        pass
