"""Looking at what a rule does in one step, on small stand-ins for its parameters.

A rule's class says how it batches over members (``Capabilities.batching``) and whether it
steps a shard of a parameter as the whole (``Capabilities.shards_for``); the built-ins say
so by hand. A user's rule (``optimlab.register``) that takes a norm but keeps the default
record (``"elementwise"``) would reduce over every member at once on a population's stacked
tensor, or over one process's shard under FSDP2. :func:`rule_traits` runs the rule's
``init`` and ``update`` once on stand-ins under a dispatch mode that records every
operation that is not elementwise (:class:`NotElementwise`), so the population and the
torch front end can see it; :class:`~optimlab.optim.population.Population` also reads which
hyperparameters gate which state entries (SGD's ``momentum``: its buffer).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.utils import _pytree
from torch.utils._python_dispatch import TorchDispatchMode

from .engine import real
from .rng import draws, keeping_rng
from .rule import advance, call, recording_branches

__all__ = ["NotElementwise", "Traits", "first_of_each_kind", "keeping_rng", "kind", "rule_traits",
           "stand_in"]


#: aten operations that are not tagged pointwise but treat every element apart: making,
#: copying and viewing tensors (views that keep the elements' order), reading a 0-d value
#: (the step counter). With the pointwise ones they step a stacked tensor's members as each
#: alone; anything else (a norm, a sum, a mean, a max, a matrix product, a slice, a
#: transpose) on a tensor of more than one element may mix them (:func:`rule_traits`).
_ELEMENTWISE_OPS = frozenset(getattr(torch.ops.aten, name) for name in (
    "_to_copy", "copy_", "copy", "clone", "detach", "alias", "lift_fresh", "lift_fresh_copy",
    "zeros_like", "ones_like", "empty_like", "full_like", "zeros", "ones", "full", "empty",
    "empty_strided", "scalar_tensor", "new_zeros", "new_ones", "new_full", "new_empty",
    "fill_", "fill", "_local_scalar_dense", "view", "_unsafe_view", "unsqueeze", "squeeze",
    "expand", "view_as_real", "view_as_complex", "resolve_conj", "resolve_neg", "_conj"))


class NotElementwise(TorchDispatchMode):
    """Records the aten operations called on a tensor of more than one element that are
    neither pointwise nor in :data:`_ELEMENTWISE_OPS` (their names, in order, in
    :attr:`found`), and apart from them those that draw random numbers (``randn_like``,
    ``bernoulli``, ...: :attr:`drawn`): each element's draw is its own, but a draw for a
    stacked tensor is not the draws its members would make one by one."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, None] = {}
        self.drawn: dict[str, None] = {}

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch's hook (see TorchDispatchMode): left True, the mode's __torch_dispatch__ is
        # wrapped to disable Dynamo, which imports torch._dynamo (about 2 s) on a population's
        # first probe; nothing here is compiled
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if draws(func):
            self.drawn[str(func.overloadpacket)] = None
        elif torch.Tag.pointwise not in func.tags and func.overloadpacket not in _ELEMENTWISE_OPS \
                and not _masked_write(func, args) \
                and any(isinstance(t, Tensor) and t.numel() > 1
                        for t in _pytree.tree_leaves((args, kwargs))):
            self.found[str(func.overloadpacket)] = None
        return func(*args, **kwargs)


def _masked_write(func, args: tuple) -> bool:
    """Whether ``func(*args)`` writes through one boolean mask of the tensor's own shape
    (``u[u.abs() < eps] = 0``, ``index_put_``): each element's value then depends on that
    element alone."""
    if func.overloadpacket not in (torch.ops.aten.index_put_, torch.ops.aten.index_put) \
            or len(args) < 3:
        return False
    target, indices, values = args[0], args[1], args[2]
    return len(indices) == 1 and isinstance(indices[0], Tensor) \
        and indices[0].dtype == torch.bool and indices[0].shape == target.shape \
        and isinstance(values, Tensor) and values.numel() == 1


class Traits(NamedTuple):
    """What one step of a rule on a stand-in shows (:func:`rule_traits`)."""

    #: the operations of ``update`` that are not elementwise (``"aten.linalg_vector_norm"``)
    reductions: tuple[str, ...]
    #: the same for ``init``
    init_reductions: tuple[str, ...]
    #: hyperparameter name -> {component (None, or the index in a tuple such as ``betas``):
    #: the state entries its zero leaves as they are}
    gates: dict[str, dict[int | None, frozenset[str]]]
    #: the operations of ``init`` and ``update`` that draw random numbers
    #: (``"aten.randn_like"``)
    draws: tuple[str, ...] = ()


#: :func:`rule_traits`'s answers, by class, then by switches, parameter layout and K: a class
#: that is no longer used (a rule made in a loop, a test's) is not kept alive by its answers
_TRAITS: weakref.WeakKeyDictionary[type, dict[tuple, Traits]] = weakref.WeakKeyDictionary()


def rule_traits(cls: type, hparams: dict, params: Sequence[Tensor], members: int,
                 shared: Sequence[str] = ()) -> Traits | None:
    """What ``cls``'s rule does in one batched step, seen on stand-ins for ``params`` (one
    per number of axes, dtype and device; ``members`` rows; 0.75 everywhere, gradient 0.5):
    its ``init`` and ``update`` run under a dispatch mode that records the operations that
    are not elementwise (:class:`NotElementwise`), and :func:`~optimlab.optim.rule.nonzero`
    reports the hyperparameters the rule branches on. Every numeric hyperparameter is given
    as a per-member column (``[K, 1, ...]``; not those in ``shared``, which the rule reads
    as Python numbers), so that every branch runs, whatever the values; where the rule
    cannot step so, integers stay numbers, then every value is given as the population
    gives it. Each hyperparameter the rule branches on is then set to 0 alone: the state
    entries it rebinds when nonzero and not at 0 are gated by it (SGD's ``momentum``:
    ``momentum_buffer``). None where the rule steps no stand-in (its own step will say why).
    The answer is cached by class, switches, layout and K (not where it read values)."""
    switches = tuple(sorted((k, v) for k, v in hparams.items()
                            if type(v) in (bool, str, type(None))))
    kinds = tuple(dict.fromkeys(map(kind, params)))
    key = (switches, kinds, members, tuple(shared))
    traits = _TRAITS.get(cls, {}).get(key)
    if traits is not None:
        return traits
    reductions: dict[str, None] = {}
    init_reductions: dict[str, None] = {}
    draws: dict[str, None] = {}
    gates: dict[str, dict[int | None, frozenset[str]]] = {}
    cacheable = True
    for dim, dtype, device in kinds:
        weight = stand_in((dim, dtype, device), members)
        grad = torch.full_like(weight, 0.5)
        for widen in ("all", "floats", None):
            names: dict[int, tuple[str, int | None]] = {}
            hp = {k: _probe_value(v, None if k in shared else widen, weight, k, names)
                  for k, v in hparams.items()}
            try:
                at_init, at_update, drawn, asked, first, state = _probe_step(cls, weight, grad,
                                                                             hp)
            except Exception:  # noqa: BLE001 - try the values as the population gives them
                continue
            break
        else:
            return None
        cacheable = cacheable and widen is not None
        init_reductions.update(dict.fromkeys(at_init))
        reductions.update(dict.fromkeys(at_update))
        draws.update(dict.fromkeys(drawn))
        for where in dict.fromkeys(names[i] for i in asked if i in names):
            name, part = where
            zero = dict(hp)
            zero[name] = 0.0 if part is None else \
                tuple(0.0 if j == part else x for j, x in enumerate(hp[name]))
            try:
                _, _, _, _, zero_first, zero_state = _probe_step(cls, weight, grad, zero)
            except Exception:  # noqa: BLE001 - a rule that cannot take 0 there: no gate seen
                continue
            entries = _rebound(first, state) - _rebound(zero_first, zero_state)
            if entries:
                parts = gates.setdefault(name, {})
                parts[part] = parts.get(part, frozenset()) | entries
    traits = Traits(tuple(reductions), tuple(init_reductions), gates, tuple(draws))
    if cacheable:
        _TRAITS.setdefault(cls, {})[key] = traits
    return traits


def _probe_step(cls: type, weight: Tensor, grad: Tensor, hp: dict) -> tuple:
    """One step of ``cls``'s rule from its ``init``: the operations of ``init`` and of
    ``update`` that are not elementwise, those of both that draw random numbers, the ids of
    the values ``nonzero()`` was asked about, the state ``init`` made and the state after
    the step."""
    asked: list[int] = []
    with keeping_rng(weight.device), torch.no_grad():
        with NotElementwise() as at_init:
            state = cls.init(weight, **hp)
        first = dict(state)
        with NotElementwise() as at_update, recording_branches(lambda x: asked.append(id(x))):
            call(cls.update, weight, grad, state, advance(state), hp)
    return (tuple(at_init.found), tuple(at_update.found),
            tuple({**at_init.drawn, **at_update.drawn}), asked, first, state)


def _probe_value(value: Any, widen: str | None, weight: Tensor, key: str,
                 names: dict, part: int | None = None) -> Any:
    """Hyperparameter ``key`` for a probe step on ``weight`` (:func:`rule_traits`): a
    column ``[K, 1, ...]`` in ``weight``'s dtype for a per-member value, and with ``widen``
    for a float (``"floats"``) or any number (``"all"``); else as it is. Each column's id is
    noted in ``names`` as ``(key, part)``."""
    if type(value) is tuple:
        return tuple(_probe_value(x, widen, weight, key, names, j) for j, x in enumerate(value))
    shape = (weight.shape[0],) + (1,) * (weight.dim() - 1)
    if widen is not None and (type(value) is float or (widen == "all" and type(value) is int)):
        column = torch.full(shape, float(value), dtype=weight.dtype, device=weight.device)
    elif isinstance(value, Tensor) and value.dim() == 1:
        column = value.to(device=weight.device, dtype=weight.dtype).reshape(shape)
    else:
        return value
    names[id(column)] = (key, part)
    return column


def _rebound(first: dict, state: dict) -> frozenset[str]:
    """The entries of ``state`` that a step set to a new tensor (``first``: before it)."""
    return frozenset(k for k, v in state.items()
                     if isinstance(v, Tensor) and v is not first.get(k))


def kind(p: Tensor) -> tuple:
    """What a probe of the rule needs of parameter ``p``: its real view's number of axes and
    dtype, and its device."""
    weight = real(p)
    return weight.dim(), weight.dtype, p.device


def first_of_each_kind(params: Sequence[Tensor]) -> list[int]:
    """The index of the first parameter of each :func:`kind`."""
    return list(dict((kind(p), i) for i, p in reversed(list(enumerate(params)))).values())


def stand_in(of: tuple, members: int) -> Tensor:
    """A small tensor standing for parameters of kind ``of`` (:func:`kind`): ``members``
    rows, 2 elements along every other axis, 0.75 everywhere, in the dtype they step in
    (bfloat16 and float16 ones step in float32)."""
    dim, dtype, device = of
    return torch.full((members,) + (2,) * (dim - 1), 0.75, device=device,
                      dtype=torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype)
