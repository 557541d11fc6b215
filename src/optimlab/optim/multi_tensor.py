"""A list of tensors that an update rule treats as one tensor: the multi-tensor plain path.

An optimizer's rule is written for one tensor (``m = torch.lerp(m, g, 1 - beta1)``). Called
with :class:`TensorList` arguments instead, the same code steps every tensor of a parameter
group at once: the tensors are laid end to end in one flat buffer (:class:`Layout`) and
every elementwise operation of the rule runs once on that buffer, so the operations
dispatched per step do not grow with the number of tensors, and none pays a per-tensor
overhead (on a CPU, a 5,000-number tensor costs more in dispatch than in arithmetic).

Numerics: an elementwise operation computes each element from the same inputs with the same
arithmetic whatever the element's position, so running the rule on the flat buffer gives the
bits the rule gives tensor by tensor; the parity tests against ``torch.optim`` (bit-exact in
float64 and float32) hold it to that. Python operators keep torch's spelling because they are
torch's own operators applied to the flat tensors.

Where the operations write: inside the engine's step a
:class:`~optimlab.optim.deferred.Graph` records them instead of running them, and runs them
once the rule has returned, each in place where the value it replaces is no longer read (the
state buffers, the parameters themselves), reading the gradients and parameters where they
are. Outside a graph (and for what a graph does not take) they run at once on flat buffers.

Whole-tensor reductions (LAMB's norms) run as one ``torch._foreach_norm`` over the tensors'
views and give a :class:`TensorList` of per-tensor scalars (one number per tensor), which
broadcasts back over each tensor's elements when combined with a full list. Anything else a
rule does with a list falls back to a loop over its tensors, counted in :data:`FALLBACKS` so
a test can hold the elementwise optimizers to the constant-op path.
"""

from __future__ import annotations

import operator
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from . import deferred

__all__ = ["TensorList", "Layout", "Arena", "FALLBACKS"]

#: how often each operation ran as a per-tensor loop (no multi-tensor form): name -> count
FALLBACKS: Counter = Counter()


class Layout:
    """How the tensors of one batch lie end to end in a flat buffer: their shapes and sizes."""

    __slots__ = ("shapes", "sizes", "numel", "_sizes_tensor")

    def __init__(self, shapes: Sequence[torch.Size]) -> None:
        self.shapes = list(shapes)
        self.sizes = [int(torch.Size(s).numel()) for s in self.shapes]
        self.numel = sum(self.sizes)
        self._sizes_tensor: dict = {}

    @classmethod
    def of(cls, tensors: Sequence[Tensor]) -> Layout:
        """The layout of ``tensors`` (each flattened, in order)."""
        return cls([t.shape for t in tensors])

    def __len__(self) -> int:
        return len(self.shapes)

    def split(self, flat: Tensor) -> list[Tensor]:
        """Views of ``flat``, one per tensor, each with its tensor's shape."""
        return [part.view(shape) for part, shape in zip(flat.split(self.sizes), self.shapes)]

    def repeat(self, per_tensor: Tensor) -> Tensor:
        """One value per tensor (shape ``[n]``) repeated over each tensor's elements."""
        key = per_tensor.device
        sizes = self._sizes_tensor.get(key)
        if sizes is None:
            sizes = self._sizes_tensor[key] = torch.tensor(self.sizes, device=key)
        return torch.repeat_interleave(per_tensor, sizes, output_size=self.numel)


class TensorList:
    """Tensors of one parameter group, stepped together by one rule.

    A list is held as a flat buffer with its :class:`Layout` (elementwise operations run on
    the buffer) or as separate tensors (:attr:`items`); each form is made from the other on
    first use. A list of *per-tensor scalars* (``scalars``: one 0-d tensor per tensor, as a
    norm gives) is held as a vector with one entry per tensor.
    """

    __slots__ = ("layout", "scalars", "_items", "_flat", "_node")

    def __init__(self, items: Sequence[Tensor] | None = None, *, flat: Tensor | None = None,
                 layout: Layout | None = None, scalars: bool = False,
                 node: deferred.Node | None = None) -> None:
        if items is None and node is None and (flat is None or layout is None):
            raise ValueError("a TensorList needs its tensors, or a flat buffer and a layout")
        if node is not None and layout is None:
            raise ValueError("a deferred TensorList needs its layout")
        # a list given as a list is kept as that object (the engine recognises its own)
        self._items = items if isinstance(items, list) else \
            (list(items) if items is not None else None)
        self._flat = flat
        #: a value the recording graph (:mod:`optimlab.optim.deferred`) has not computed yet
        self._node = node
        self.scalars = scalars
        self.layout = layout if layout is not None else Layout.of(self._items)

    # -- the two forms -------------------------------------------------------------------------
    @property
    def items(self) -> list[Tensor]:
        """The tensors, one per tensor of the group (views of the flat buffer if made from it)."""
        if self._items is None:
            flat = self.flat()
            self._items = list(flat.unbind()) if self.scalars else self.layout.split(flat)
        return self._items

    def flat(self) -> Tensor:
        """All elements as one 1-D tensor (kept, so later operations reuse it). A deferred
        value is computed now."""
        if self._flat is None and self._node is not None:
            graph = deferred.recording()
            if graph is None:
                raise RuntimeError("a deferred TensorList was used after its step")
            self._flat = graph.force(self._node)
        if self._flat is None:
            if self.scalars:
                self._flat = torch.stack(self._items)
            else:
                self._flat = torch.cat([t.reshape(-1) for t in self._items])
        return self._flat

    def _spread(self, like: TensorList) -> Tensor:
        """This list's elements laid out as ``like``'s: per-tensor scalars repeat over each of
        ``like``'s tensors."""
        if self.scalars and not like.scalars:
            return self.layout.repeat(self.flat())
        if self.layout is not like.layout and self.layout.sizes != like.layout.sizes:
            raise ValueError("lists of different layouts cannot be combined elementwise")
        return self.flat()

    def _new(self, flat: Tensor) -> TensorList:
        return TensorList(flat=flat, layout=self.layout, scalars=self.scalars)

    # -- plumbing ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.layout)

    def __repr__(self) -> str:
        kind = "scalars" if self.scalars else "tensors"
        shapes = ", ".join(str(tuple(s)) for s in self.layout.shapes[:4])
        more = ", ..." if len(self.layout) > 4 else ""
        return f"TensorList({len(self)} {kind}: {shapes}{more})"

    @property
    def is_sparse(self) -> bool:
        """False: a list of dense tensors (as ``Tensor.is_sparse``, for the rules' checks)."""
        return False

    @property
    def dtype(self) -> torch.dtype:
        """The tensors' dtype (one for the whole list)."""
        if self._flat is None and self._node is not None:
            return self._node.dtype
        return (self._flat if self._flat is not None else self._items[0]).dtype

    @property
    def device(self) -> torch.device:
        """The tensors' device (one for the whole list)."""
        if self._flat is None and self._node is not None:
            return deferred.recording().device
        return (self._flat if self._flat is not None else self._items[0]).device

    def operand(self, graph: deferred.Graph) -> Any:
        """This list as ``graph`` sees it: its deferred node, its flat buffer, or (held as
        separate tensors) a reference to them."""
        if self._flat is None and self._node is not None:
            return self._node
        if self._flat is not None:
            return self._flat
        return graph.list_ref(self, self._items)

    # -- arithmetic: torch's own operators on the flat buffers ----------------------------------
    def __add__(self, other):
        return _elementwise(operator.add, self, other)

    def __radd__(self, other):
        return _elementwise(operator.add, other, self)

    def __sub__(self, other):
        return _elementwise(operator.sub, self, other)

    def __rsub__(self, other):
        return _elementwise(operator.sub, other, self)

    def __mul__(self, other):
        return _elementwise(operator.mul, self, other)

    def __rmul__(self, other):
        return _elementwise(operator.mul, other, self)

    def __truediv__(self, other):
        return _elementwise(operator.truediv, self, other)

    def __rtruediv__(self, other):
        return _elementwise(operator.truediv, other, self)

    def __pow__(self, other):
        return _elementwise(operator.pow, self, other)

    def __rpow__(self, other):
        return _elementwise(operator.pow, other, self)

    def __neg__(self):
        return _elementwise(operator.neg, self)

    def __gt__(self, other):
        return _elementwise(operator.gt, self, other)

    def __lt__(self, other):
        return _elementwise(operator.lt, self, other)

    def __ge__(self, other):
        return _elementwise(operator.ge, self, other)

    def __le__(self, other):
        return _elementwise(operator.le, self, other)

    def __eq__(self, other):  # type: ignore[override]
        return _elementwise(operator.eq, self, other)

    def __ne__(self, other):  # type: ignore[override]
        return _elementwise(operator.ne, self, other)

    def __and__(self, other):
        return _elementwise(operator.and_, self, other)

    def __rand__(self, other):
        return _elementwise(operator.and_, other, self)

    __hash__ = None  # type: ignore[assignment]

    def __getattr__(self, name: str):
        # Only for a name no class attribute or slot answers (normal lookups never come
        # here): a rule run over a whole group asked for what a list does not offer.
        if name.startswith("__") or name in TensorList.__slots__:
            raise AttributeError(f"'TensorList' object has no attribute {name!r}")
        raise AttributeError(
            f"'TensorList' object has no attribute {name!r}: the optimizer's rule runs over a "
            "whole param group at once (a TensorList of its tensors), where it may use only "
            "elementwise arithmetic (+ - * / **, comparisons, torch.lerp, addcmul, addcdiv, "
            "where, clamp, maximum, sqrt, exp, ...; the methods sqrt, rsqrt, abs, sign, "
            "reciprocal, square, clone, to) and whole-tensor norms (torch.linalg.vector_norm), "
            "never .item(), other reductions, in-place operations or Python branches on "
            "values: see the contract in optimlab.optim.rule. A rule that needs more steps "
            "tensor by tensor with Capabilities(multi_tensor=False, fusable=False)")

    # -- methods ------------------------------------------------------------------------------
    def sqrt(self):
        """``torch.sqrt`` of every tensor of the list."""
        return _elementwise(torch.sqrt, self)

    def rsqrt(self):
        """``torch.rsqrt`` of every tensor of the list."""
        return _elementwise(torch.rsqrt, self)

    def abs(self):
        """``torch.abs`` of every tensor of the list."""
        return _elementwise(torch.abs, self)

    def sign(self):
        """``torch.sign`` of every tensor of the list."""
        return _elementwise(torch.sign, self)

    def reciprocal(self):
        """``torch.reciprocal`` of every tensor of the list."""
        return _elementwise(torch.reciprocal, self)

    def square(self):
        """``torch.square`` of every tensor of the list."""
        return _elementwise(torch.square, self)

    def clone(self):
        """``torch.clone`` of every tensor of the list."""
        return _elementwise(torch.clone, self)

    def to(self, dtype: torch.dtype):
        """Each element converted to ``dtype`` (a 0/1 mask from a comparison, for one)."""
        return _elementwise(Tensor.to, self, dtype)

    # -- torch functions ----------------------------------------------------------------------
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _ELEMENTWISE and kwargs.get("out") is None:
            return _elementwise(func, *args, **kwargs)
        handler = _SPECIAL.get(func)
        if handler is not None:
            result = handler(*args, **kwargs)
            if result is not NotImplemented:
                return result
        return _loop(func, args, kwargs)


# -- helpers --------------------------------------------------------------------------------
class Arena:
    """Reusable output buffers for the operations of one batch's step.

    A rule runs the same operations step after step, so the flat result of its ``i``-th
    operation is written into the buffer the ``i``-th operation filled last step (``out=``)
    instead of a fresh allocation: a large fresh buffer costs the operating system's page
    faults, often more than the arithmetic. While an arena is :meth:`active` (the engine
    holds it around the rule) :func:`_elementwise` takes its outputs from it. A buffer that
    outlives the step (it became state) is given up with :meth:`release`.
    """

    def __init__(self) -> None:
        self.slots: list[Tensor | None] = []
        self.cursor = 0

    def active(self) -> Arena:
        """Use as ``with arena.active():`` around one step."""
        self.cursor = 0
        return self

    def __enter__(self) -> Arena:
        self._previous = getattr(_ARENA, "current", None)
        _ARENA.current = self
        return self

    def __exit__(self, *exc) -> None:
        _ARENA.current = self._previous

    def take(self, like_numel: int, dtype: torch.dtype, device: torch.device) -> Tensor | None:
        """The buffer of the next operation if one of this size and type is kept, else None
        (the operation then allocates, and :meth:`keep` files its result)."""
        index = self.cursor
        self.cursor += 1
        if index < len(self.slots):
            buf = self.slots[index]
            if buf is not None and buf.numel() == like_numel and buf.dtype == dtype \
                    and buf.device == device:
                return buf
        return None

    def keep(self, result: Tensor) -> None:
        """File the result of the operation just taken (see :meth:`take`)."""
        index = self.cursor - 1
        self.slots.extend([None] * (index + 1 - len(self.slots)))
        self.slots[index] = result

    def release(self, buf: Tensor) -> None:
        """Never hand ``buf`` out again (it now holds state)."""
        self.slots = [None if s is buf else s for s in self.slots]


_ARENA = threading.local()

#: the operators and torch functions whose result can be written into a kept buffer, as the
#: torch function (with ``out=``) that computes exactly what the operator does
_OUT = {
    # the operators, spelled as the torch function that computes exactly what each does
    operator.add: torch.add, operator.sub: torch.sub, operator.mul: torch.mul,
    operator.truediv: torch.div, operator.pow: torch.pow, operator.neg: torch.neg,
    # torch functions that take ``out=`` themselves
    **{fn: fn for fn in (torch.lerp, torch.addcmul, torch.addcdiv, torch.add, torch.sub,
                         torch.mul, torch.div, torch.maximum, torch.minimum, torch.clamp,
                         torch.sqrt, torch.rsqrt, torch.abs, torch.sign, torch.neg,
                         torch.reciprocal, torch.square, torch.exp, torch.log, torch.pow)},
}
#: commutative operators: a number or 0-d tensor first is the same operation swapped
_SWAP = {operator.add, operator.mul}


def _elementwise(fn: Callable, *args: Any, **kwargs: Any) -> TensorList:
    """``fn`` once on the flat buffers of the lists among ``args`` (numbers and tensors pass
    as they are); the result is laid out as the widest list. While a graph is recording
    (:mod:`optimlab.optim.deferred`) the operation is recorded instead where it can be."""
    lists = [a for a in args if isinstance(a, TensorList)]
    like = next((a for a in lists if not a.scalars), lists[0])
    graph = deferred.recording()
    if graph is not None:
        node = _record(graph, fn, args, kwargs, like)
        if node is not None:
            return TensorList(node=node, layout=like.layout)
    flat_args = [a._spread(like) if isinstance(a, TensorList) else a for a in args]
    arena = getattr(_ARENA, "current", None)
    out_fn = _OUT.get(fn)
    if arena is None or out_fn is None:
        return like._new(fn(*flat_args, **kwargs))
    if fn in _SWAP and not isinstance(flat_args[0], Tensor):
        flat_args.reverse()
    elif not isinstance(flat_args[0], Tensor):
        return like._new(fn(*flat_args, **kwargs))  # ``s - x``, ``s / x``: as torch spells them
    dtype = deferred.result_dtype(flat_args)
    if dtype is None:
        return like._new(fn(*flat_args, **kwargs))
    first = flat_args[0]
    buf = arena.take(like.layout.numel if not like.scalars else len(like), dtype, first.device)
    if buf is not None:
        return like._new(out_fn(*flat_args, **kwargs, out=buf))
    result = out_fn(*flat_args, **kwargs)
    if result.dtype != dtype or result.dim() != 1:  # not what was foreseen: never reuse it
        return like._new(result)
    arena.keep(result)
    return like._new(result)


def _record(graph: deferred.Graph, fn: Callable, args: tuple, kwargs: dict,
            like: TensorList) -> deferred.Node | None:
    """``fn(*args, **kwargs)`` as a node of ``graph``, or None where it runs eagerly."""
    out_fn = _OUT.get(fn)
    if out_fn is None or like.scalars or like.layout.numel != graph.numel:
        return None
    operands = []
    for a in args:
        if isinstance(a, TensorList):
            if a.scalars:
                operands.append(a._spread(like))  # per-tensor numbers: spread now
                continue
            if a.layout is not like.layout and a.layout.sizes != like.layout.sizes:
                return None
            operands.append(a.operand(graph))
        else:
            operands.append(a)
    first = operands[0]
    if fn in _SWAP and len(operands) == 2 and first is not None and deferred.is_scalar(first):
        operands.reverse()  # ``s * x`` is ``x * s``, bit for bit
    return graph.record(out_fn, operands, kwargs)


def _loop(func: Callable, args: tuple, kwargs: dict) -> Any:
    """The last resort: ``func`` tensor by tensor (counted in :data:`FALLBACKS`)."""
    lists = [a for a in list(args) + list(kwargs.values()) if isinstance(a, TensorList)]
    FALLBACKS[getattr(func, "__name__", str(func))] += 1
    graph = deferred.recording()
    if graph is not None:
        graph.unsafe = True  # its result may alias a parameter or a state tensor

    def pick(x, i):
        if isinstance(x, TensorList):
            return x.items[i]
        if isinstance(x, (tuple, list)):
            return type(x)(pick(v, i) for v in x)
        return x

    out = [func(*[pick(a, i) for a in args], **{k: pick(v, i) for k, v in kwargs.items()})
           for i in range(len(lists[0]))]
    if not all(isinstance(t, Tensor) for t in out):
        return out
    base = lists[0]
    if all(t.dim() == 0 for t in out) and any(len(s) for s in base.layout.shapes):
        return TensorList(out, layout=base.layout, scalars=True)  # one number per tensor
    return TensorList(out)


def _vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None):  # noqa: A002
    if dim is not None or keepdim or out is not None \
            or not isinstance(x, TensorList) or x.scalars:
        return NotImplemented
    # ``dtype``: the squares summed in it (``ops.norm``'s float64), the norms given in it
    norms = torch._foreach_norm(x.items, ord, dtype=dtype)
    return TensorList(flat=torch.stack(norms), layout=x.layout, scalars=True)


#: torch functions that act element by element: they run once on the flat buffers
_ELEMENTWISE = frozenset({
    torch.lerp, torch.addcmul, torch.addcdiv, torch.add, torch.sub, torch.mul, torch.div,
    torch.maximum, torch.minimum, torch.clamp, torch.clamp_min, torch.clamp_max, torch.where,
    torch.isnan, torch.isfinite, torch.logical_and, torch.logical_or, torch.logical_not,
    torch.sqrt, torch.rsqrt, torch.abs, torch.sign, torch.neg, torch.reciprocal, torch.square,
    torch.exp, torch.log, torch.pow, torch.ones_like, torch.zeros_like, torch.full_like,
    torch.clone,
    Tensor.add, Tensor.sub, Tensor.mul, Tensor.div, Tensor.__and__, Tensor.__or__,
    Tensor.__gt__, Tensor.__lt__, Tensor.__ge__, Tensor.__le__, Tensor.__eq__, Tensor.__ne__,
    Tensor.__radd__, Tensor.__rsub__, Tensor.__rmul__, Tensor.__rtruediv__, Tensor.__rdiv__,
    Tensor.__pow__, Tensor.__rpow__, Tensor.sqrt, Tensor.abs, Tensor.sign, Tensor.neg,
    Tensor.clamp, Tensor.lerp, Tensor.addcmul, Tensor.addcdiv, Tensor.maximum, Tensor.minimum,
})

#: torch functions with a multi-tensor form of their own
_SPECIAL: dict[Any, Callable] = {
    torch.linalg.vector_norm: _vector_norm,
}
