"""The multi-tensor step, deferred: record what the rule computes, then run it in place.

A rule is written functionally (``m = torch.lerp(m, g, 1 - beta1)`` makes a new tensor), and
the multi-tensor path (:mod:`optimlab.optim.multi_tensor`) runs it on whole parameter groups.
Run eagerly, every operation would write a fresh buffer, the gradients and parameters would
first be copied into flat buffers and the results copied back: three or four extra passes
over memory per step, which is what ``torch.optim``'s in-place ``foreach`` code does not pay.

While a :class:`Graph` is :meth:`~Graph.recording`, an elementwise operation on
:class:`~optimlab.optim.multi_tensor.TensorList` arguments is not computed; it becomes a
:class:`Node`. When the rule has returned, :meth:`Graph.run` knows every operation, who reads
each value last and where each result must end up (a state entry's buffer, the parameters),
and runs the nodes in the order the rule made them, choosing where each result goes:

* into its **home** (the state buffer it becomes, or the parameters themselves) when the old
  contents there are read by nothing later: ``m`` is updated in ``m``'s buffer, the new
  parameters are written into the parameters, as ``torch.optim`` does by hand;
* a value whose only reader is the next operation on its way home goes home early (Adam's
  ``v * beta2`` is computed in ``v``'s buffer, then ``addcmul`` runs there in place);
* otherwise into the buffer of an argument read for the last time, or a kept scratch buffer.

The gradients and parameters stay the user's tensors: an operation that reads them runs as a
``torch._foreach_*`` operation over them and views of the flat buffers (a gradient read more
than once is gathered once into a flat buffer). The arithmetic is the same operation on the
same values in the same order, only its destination changes, so the result is bit-identical
to the eager path (the parity tests hold it to ``torch.optim``).

Anything the recorder does not take (a norm, a comparison, a number first in ``s - x``) runs
eagerly at once, computing the nodes it needs into fresh buffers; what follows is recorded as
before. A rule that falls back to a per-tensor loop disables the in-place homes for that step
(a loop's result might alias a parameter or a state tensor).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["Graph", "Node", "ListRef", "recording"]

_LOCAL = threading.local()


def recording() -> Graph | None:
    """The graph recording in this thread, or None (operations then run eagerly)."""
    return getattr(_LOCAL, "graph", None)


def is_number(x: Any) -> bool:
    """A Python int or float (not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def is_scalar(x: Any) -> bool:
    """None, a number or a 0-d tensor: what an operation takes as a scalar."""
    return x is None or is_number(x) or (isinstance(x, Tensor) and x.dim() == 0)


def result_dtype(operands: Any, numel: int | None = None,
                 device: torch.device | None = None) -> torch.dtype | None:
    """The dtype of an elementwise operation on ``operands`` where it is plain to see: every
    operand with dimensions (a flat buffer, a :class:`Node`, a :class:`ListRef`) of one
    floating dtype, 0-d tensors floating (they do not promote a dimensioned tensor of their
    category), numbers anything. None where unsure, or where a flat buffer is not ``numel``
    long on ``device`` (when given)."""
    dtype = None
    for a in operands:
        if isinstance(a, (Node, ListRef)):
            this = a.dtype
        elif isinstance(a, Tensor):
            if not a.dtype.is_floating_point:
                return None
            if a.dim() == 0:
                continue
            if (numel is not None and a.numel() != numel) or \
                    (device is not None and a.device != device):
                return None
            this = a.dtype
        elif is_number(a) or a is None:
            continue
        else:
            return None
        if not this.is_floating_point or (dtype is not None and this != dtype):
            return None
        dtype = this
    return dtype


class ListRef:
    """A list operand: tensors the graph reads as they are (the gradients, the parameters,
    a list a per-tensor loop returned), one per tensor of the batch."""

    __slots__ = ("items", "name", "flat")

    def __init__(self, items: list[Tensor], name: str) -> None:
        self.items, self.name = items, name
        #: the tensors gathered into one flat buffer, once the graph decided to
        self.flat: Tensor | None = None

    @property
    def dtype(self) -> torch.dtype:
        """The listed tensors' dtype (the first's: one for the whole list)."""
        return self.items[0].dtype


class Node:
    """One recorded operation: ``fn(*args, **kwargs)`` (``fn`` takes ``out=``), its result's
    dtype, and its value once computed (None until then)."""

    __slots__ = ("fn", "args", "kwargs", "dtype", "value")

    def __init__(self, fn: Callable, args: tuple, kwargs: dict, dtype: torch.dtype) -> None:
        self.fn, self.args, self.kwargs, self.dtype = fn, args, kwargs, dtype
        self.value: Tensor | None = None

    def __repr__(self) -> str:
        return f"Node({getattr(self.fn, '__name__', self.fn)})"


def _foreach(name: str, kwargs: tuple = ()) -> Callable | None:
    """The in-place multi-tensor form of an operation, taking the keyword arguments named;
    None where this torch has none (``_foreach_rsqrt_`` came after torch 2.4): the operation
    then runs on the flat buffers, as any operation without a list form does."""
    fn = getattr(torch, f"_foreach_{name}_", None)
    if fn is None:
        return None

    def run(dest: list, *rest: Any, **kw: Any) -> None:
        fn(dest, *rest, **kw)
    run.accepts = frozenset(kwargs)  # type: ignore[attr-defined]
    return run


#: torch functions whose in-place ``foreach`` form computes exactly what they compute, with
#: the first argument as the destination (each list element runs the same kernel)
FOREACH: dict[Callable, Callable] = {fn: form for fn, form in {
    torch.add: _foreach("add", ("alpha",)), torch.sub: _foreach("sub", ("alpha",)),
    torch.mul: _foreach("mul"), torch.div: _foreach("div"), torch.lerp: _foreach("lerp"),
    torch.addcmul: _foreach("addcmul", ("value",)), torch.addcdiv: _foreach("addcdiv", ("value",)),
    torch.maximum: _foreach("maximum"), torch.minimum: _foreach("minimum"),
    torch.pow: _foreach("pow"), torch.sqrt: _foreach("sqrt"), torch.rsqrt: _foreach("rsqrt"),
    torch.abs: _foreach("abs"), torch.sign: _foreach("sign"), torch.neg: _foreach("neg"),
    torch.reciprocal: _foreach("reciprocal"), torch.exp: _foreach("exp"),
    torch.log: _foreach("log"),
}.items() if form is not None}


def _foreachable(node: Node) -> bool:
    """Whether ``node`` can run as its in-place ``foreach`` form over lists: every argument
    after the first a list, a flat buffer or a number (a 0-d tensor is not taken), and only
    keyword arguments the form accepts."""
    form = FOREACH.get(node.fn)
    if form is None or not set(node.kwargs) <= form.accepts:
        return False
    rest = node.args[1:]
    if any(isinstance(a, Tensor) and a.dim() == 0 for a in rest) or any(a is None for a in rest):
        return False
    if node.kwargs and any(is_number(a) for a in rest):
        return False  # ``add(x, 2.0, alpha=...)`` has no list form
    if node.fn is torch.mul and node.dtype in _NARROW and any(is_number(a) for a in rest):
        return False  # ``_foreach_mul_`` rounds the number to the narrow dtype, ``mul_`` does not
    return True


#: dtypes whose CPU kernels round differently by position: ``x.add(y, alpha=a)`` in float16
#: rounds ``a * y`` first in a tensor's remainder past its vectorized body, not in the body
#: (torch 2.13), so these lists are not gathered into flat buffers
#: (:meth:`Graph._lists_to_gather`), and an operation with a ``foreach`` form runs over the
#: tensors' views of a flat buffer (an intermediate value: SGD's ``buf * momentum``), not
#: over the buffer (:meth:`Graph._execute`): tensor by tensor, at the positions torch's own
#: per-tensor step runs them
_NARROW = (torch.bfloat16, torch.float16)


class Graph:
    """The operations of one step of one multi-tensor batch (see the module docstring).

    Args:
        numel: the number of elements in the batch (every value is that long).
        device: where the batch lives.
        views: ``views(flat)`` gives a flat buffer's views shaped like the batch's tensors.
        pool: the batch's scratch buffers (a list the graph appends to; kept across steps up
            to the engine's :data:`~optimlab.optim.engine.SCRATCH_KEPT_BYTES` on a CPU, so a
            small model's step writes the buffers the last one did and pays no fresh
            allocation).
        arena: where what runs at once (:meth:`force`) takes its buffers, step after step
            (an :class:`~optimlab.optim.multi_tensor.Arena`), or None to allocate them.
    """

    def __init__(self, numel: int, device: torch.device, views: Callable[[Tensor], list],
                 pool: list[Tensor], arena: Any = None) -> None:
        self.numel, self.device, self.views, self.pool = numel, device, views, pool
        self.arena = arena
        self.nodes: list[Node] = []
        self.lists: dict[int, ListRef] = {}
        self.param: ListRef | None = None
        #: a per-tensor loop ran while recording: homes are off for this step
        self.unsafe = False

    @contextlib.contextmanager
    def recording(self) -> Iterator[Graph]:
        """Record the elementwise operations on lists in this thread while the block runs."""
        previous = recording()
        _LOCAL.graph = self
        try:
            yield self
        finally:
            _LOCAL.graph = previous

    def list_ref(self, owner: Any, items: list[Tensor], name: str = "list") -> ListRef:
        """The operand for a list (``owner`` is the object that holds it, kept as its key)."""
        ref = self.lists.get(id(owner))
        if ref is None or ref.items is not items:
            ref = self.lists[id(owner)] = ListRef(items, name)
        return ref

    # -- recording ---------------------------------------------------------------------------
    def record(self, fn: Callable, operands: list, kwargs: dict) -> Node | None:
        """A node for ``fn(*operands, **kwargs)`` (``fn`` takes ``out=``; operands are nodes,
        list references, flat buffers, numbers and 0-d tensors), or None where it must run
        eagerly (a result of unsure dtype, a number first)."""
        if not all(is_number(v) or v is None for v in kwargs.values()):
            return None
        if not operands or is_scalar(operands[0]):
            return None
        dtype = result_dtype(operands, self.numel, self.device)
        if dtype is None:
            return None
        node = Node(fn, tuple(operands), dict(kwargs), dtype)
        self.nodes.append(node)
        return node

    def force(self, node: Node) -> Tensor:
        """Compute ``node`` now (and what it needs), into fresh buffers: an eager operation
        needs its value. Later operations read it like any other concrete buffer."""
        if node.value is None:
            args = [self._eager(a) for a in node.args]
            buf = self._fresh(node.dtype)
            node.value = node.fn(*args, **node.kwargs, out=buf)
        return node.value

    def _fresh(self, dtype: torch.dtype) -> Tensor:
        """A buffer for a value computed at once: the arena's for this point of the step."""
        if self.arena is None:
            return torch.empty(self.numel, dtype=dtype, device=self.device)
        buf = self.arena.take(self.numel, dtype, self.device)
        if buf is None:
            buf = torch.empty(self.numel, dtype=dtype, device=self.device)
            self.arena.keep(buf)
        return buf

    def _eager(self, a: Any) -> Any:
        if isinstance(a, Node):
            return self.force(a)
        if isinstance(a, ListRef):
            if a.flat is None:
                a.flat = self._fresh(a.dtype)
                torch._foreach_copy_(self.views(a.flat), a.items)
            return a.flat
        return a

    # -- running -----------------------------------------------------------------------------
    def run(self, param: Any, outputs: dict[str, Any], homes: dict[str, Tensor],
            weights: list[Tensor]) -> dict[str, Tensor]:
        """Compute what the rule recorded and put it where it belongs.

        ``param`` is the rule's new parameters (an operand), ``outputs`` the new values of the
        state entries that changed, ``homes`` the flat buffers those entries live in (an entry
        without one is new), ``weights`` the parameters' tensors, written in place. Returns
        the new entries' buffers (the caller adopts them as state).
        """
        # an old state buffer or the parameters given as a new value are read at the end,
        # after homes may have been written: take them now
        protected = {id(b) for b in homes.values()}
        for name, value in list(outputs.items()):
            if isinstance(value, Tensor) and id(value) in protected:
                outputs[name] = value.clone()
        order, last, readers = self._liveness(param, outputs)
        target = self._targets(order, readers, param, outputs, homes)
        # what each place holds now (by id): the old state in its buffer, the parameters
        holder: dict[int, Any] = {id(buf): buf for buf in homes.values()}
        if self.param is not None:
            holder[id(weights)] = self.param
        where: dict[int, Any] = {}  # node -> the flat buffer or the weights list it is in
        free_slots = list(range(len(self.pool)))
        slot_of: dict[int, int] = {}
        owner: dict[int, Any] = {}  # pool slot -> the value in it
        for ref in self._lists_to_gather(readers):
            slot = self._free_slot(free_slots, ref.dtype)
            owner[slot] = ref
            ref.flat = self.pool[slot]
            torch._foreach_copy_(self.views(ref.flat), ref.items)

        def dead(value: Any, i: int, node: Node) -> bool:
            end = last.get(id(value), -1)
            if end < i:
                return True
            return end == i and node.args[0] is value and \
                not any(a is value for a in node.args[1:])

        for i, node in enumerate(order):
            # release pool slots whose values were read for the last time before this node
            for slot, value in list(owner.items()):
                if last.get(id(value), -1) < i:
                    del owner[slot]
                    free_slots.append(slot)
            dest = None
            home = target.get(id(node))
            if home is not None and not self.unsafe:
                place = weights if home is self.param else home
                if (place is not weights or _foreachable(node)) \
                        and dead(holder.get(id(place)), i, node):
                    dest = place
            if dest is None:
                first = node.args[0]
                slot = slot_of.get(id(first)) if isinstance(first, (Node, ListRef)) else None
                if slot is not None and dead(first, i, node) and \
                        self.pool[slot].dtype == node.dtype:
                    del owner[slot]
                else:
                    slot = self._free_slot(free_slots, node.dtype)
                owner[slot] = node
                slot_of[id(node)] = slot
                dest = self.pool[slot]
            self._execute(node, dest, where, weights)
            holder[id(dest)] = node
            where[id(node)] = dest
        # the outputs not computed in their homes
        adopted: dict[str, Tensor] = {}
        for name, value in outputs.items():
            buf = homes.get(name)
            if buf is not None:
                if where.get(id(value)) is not buf:
                    self._copy_into(buf, self._resolve(value, where, weights))
                continue
            source = self._resolve(value, where, weights)
            if isinstance(value, Node) and id(value) in slot_of and \
                    sum(1 for v in outputs.values() if v is value) == 1 and \
                    where.get(id(value)) is self.pool[slot_of[id(value)]]:
                slot = slot_of[id(value)]
                adopted[name] = self.pool[slot]  # the scratch buffer becomes state
                self.pool[slot] = torch.empty(0, dtype=value.dtype, device=self.device)
            else:
                flat = torch.empty(self.numel, dtype=value.dtype, device=self.device)
                self._copy_into(flat, source)
                adopted[name] = flat
        if param is not self.param and where.get(id(param)) is not weights:
            source = self._resolve(param, where, weights)
            torch._foreach_copy_(weights, source if isinstance(source, list)
                                 else self.views(source))
        return adopted

    def _liveness(self, param: Any, outputs: dict) -> tuple[list[Node], dict, dict]:
        """The nodes to run (those the outputs need, not yet computed) in the order they were
        made; each value's last reader (outputs: read at the end); each value's readers."""
        needed: set[int] = set()
        stack = [v for v in (param, *outputs.values()) if isinstance(v, Node)]
        while stack:
            node = stack.pop()
            if id(node) in needed or node.value is not None:
                continue
            needed.add(id(node))
            stack += [a for a in node.args if isinstance(a, Node)]
        order = [n for n in self.nodes if id(n) in needed]
        last: dict[int, int] = {}
        readers: dict[int, list[Node]] = {}
        for i, node in enumerate(order):
            for a in node.args:
                if isinstance(a, (Node, ListRef, Tensor)):
                    last[id(a)] = i
                    readers.setdefault(id(a), []).append(node)
        end = len(order)
        for value in (param, *outputs.values()):
            last[id(value)] = end
        return order, last, readers

    def _targets(self, order: list[Node], readers: dict, param: Any, outputs: dict,
                 homes: dict) -> dict[int, Any]:
        """Where each node would best end up: an output's home, or the home of the one node
        that reads it, as that node's first argument (the value then goes home early)."""
        target: dict[int, Any] = {}
        for name, value in outputs.items():
            home = homes.get(name)
            if isinstance(value, Node) and home is not None and home.dtype == value.dtype \
                    and id(value) not in target:
                target[id(value)] = home
        if isinstance(param, Node) and self.param is not None and id(param) not in target:
            target[id(param)] = self.param
        for node in reversed(order):
            if id(node) in target:
                continue
            reads = readers.get(id(node), [])
            if len(reads) == 1 and reads[0].args[0] is node and id(reads[0]) in target \
                    and sum(a is node for a in reads[0].args) == 1:
                home = target[id(reads[0])]
                if home is self.param or home.dtype == node.dtype:
                    target[id(node)] = home
        return target

    def _lists_to_gather(self, readers: dict) -> list[ListRef]:
        """The lists to gather into a flat buffer first: those two or more operations read
        (an operation on a flat buffer costs a third of its ``foreach`` form on a CPU), and
        those an operation without a ``foreach`` form reads; never lists of :data:`_NARROW`
        dtypes."""
        return [ref for ref in self.lists.values()
                if ref.flat is None and ref.dtype not in _NARROW and (reads := readers.get(id(ref)))
                and (len(reads) >= 2 or not all(_foreachable(n) for n in reads))]

    def _free_slot(self, free: list[int], dtype: torch.dtype) -> int:
        for k, slot in enumerate(free):
            buf = self.pool[slot]
            if buf.dtype == dtype and buf.numel() == self.numel:
                return free.pop(k)
        for k, slot in enumerate(free):
            if self.pool[slot].numel() != self.numel or self.pool[slot].dtype != dtype:
                free.pop(k)
                self.pool[slot] = torch.empty(self.numel, dtype=dtype, device=self.device)
                return slot
        self.pool.append(torch.empty(self.numel, dtype=dtype, device=self.device))
        return len(self.pool) - 1

    def _resolve(self, a: Any, where: dict, weights: list[Tensor]) -> Any:
        """An operand as a tensor or list to compute with."""
        if isinstance(a, Node):
            return a.value if a.value is not None else where[id(a)]
        if isinstance(a, ListRef):
            return a.flat if a.flat is not None else a.items
        return a

    def _copy_into(self, flat: Tensor, source: Any) -> None:
        if isinstance(source, list):
            torch._foreach_copy_(self.views(flat), source)
        else:
            flat.copy_(source)

    def _execute(self, node: Node, dest: Any, where: dict, weights: list[Tensor]) -> None:
        """Run ``node`` with its result in ``dest`` (a flat buffer, or ``weights``)."""
        args = [self._resolve(a, where, weights) for a in node.args]
        lists = any(isinstance(a, list) for a in args)
        flat_dest = dest is not weights
        # a narrow dtype's operation runs over each tensor's view (see _NARROW), on the
        # buffers of intermediate values too, where it has a list form
        by_tensor = node.dtype in _NARROW and _foreachable(node)
        if flat_dest and not lists and not by_tensor:
            node.fn(*args, **node.kwargs, out=dest)
            return
        if not (by_tensor or _foreachable(node)):
            # no list form: gather the lists into fresh buffers, compute, write back
            args = [torch.cat([t.reshape(-1) for t in a]) if isinstance(a, list) else a
                    for a in args]
            result = node.fn(*args, **node.kwargs)
            self._copy_into(dest, result) if flat_dest else \
                torch._foreach_copy_(weights, self.views(result))
            return
        first, rest = args[0], args[1:]
        dest_list = self.views(dest) if flat_dest else weights
        if first is not dest:  # bring the first argument to the destination, then in place
            if flat_dest and not isinstance(first, list):
                dest.copy_(first)
            else:
                torch._foreach_copy_(dest_list, first if isinstance(first, list)
                                     else self.views(first))
        if flat_dest and not by_tensor and not any(isinstance(a, list) for a in rest):
            node.fn(dest, *rest, **node.kwargs, out=dest)
            return
        FOREACH[node.fn](dest_list, *[self.views(a) if isinstance(a, Tensor) and a.dim()
                                      else a for a in rest], **node.kwargs)

