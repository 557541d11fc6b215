"""The deferred multi-tensor step: results computed where they belong, the rule's bits kept.

:mod:`optimlab.optim.deferred` changes only *where* each operation writes (a state buffer,
the parameters, a scratch buffer); these tests hold it to the rule's values on rules written
to trip a careless planner (a value read after its home was written, state entries swapped,
the parameters returned unchanged, a norm or a per-tensor loop in the middle), and hold the
common optimizers to the in-place passes ``torch.optim`` makes by hand.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import optimlab
from optimlab.optim.capabilities import Capabilities
from optimlab.optim.engine import Engine

SHAPES = [(3, 4), (5,), (2, 3, 2), (7,)]


def _zeros(p, **_):
    return {"a": torch.ones_like(p), "b": torch.full_like(p, 2.0)}


def _swap(p, g, state, *, lr, **_):
    a, b = state["a"], state["b"]
    state["a"] = b * 0.5 + g
    state["b"] = a  # the old ``a``, whose buffer was just given a new value
    return p - lr * (state["a"] + a)


def _old_read_late(p, g, state, *, lr, **_):
    old = state["a"]
    new = state["a"] = old * 0.9 + g
    return p - lr * (new + old)  # the old value is read after the new one exists


def _param_read_late(p, g, state, *, lr, **_):
    half = p * 0.5  # on its way to the parameters' home, but p is read again below
    state["a"] = state["a"] + half
    return half + p * lr + g


def _param_unchanged(p, g, state, **_):
    state["a"] = g * 2.0
    state["b"] = state["a"]  # one value, two entries
    return p


def _returns_gradient(p, g, state, **_):
    state["b"] = p * 1.0  # read before the parameters are overwritten with the gradient
    return g


def _norm_in_the_middle(p, g, state, *, lr, **_):
    m = state["a"] = torch.lerp(state["a"], g, 0.1)
    scale = torch.linalg.vector_norm(p) / (torch.linalg.vector_norm(m) + 1.0)  # forces m
    return p - lr * scale * m


def _loop_in_the_middle(p, g, state, *, lr, **_):
    bent = torch.atan(state["a"])  # no multi-tensor form: a per-tensor loop
    state["a"] = state["a"] * 0.5 + g
    return p - lr * (bent + state["a"])


def _loop_aliases_the_parameters(p, g, state, *, lr, **_):
    same = torch.detach(p)  # a per-tensor loop whose results are the parameters' storage
    new = p - lr * g
    state["a"] = same * 2.0  # made after the new parameters, must read the old ones
    return new


def _created_on_first_step(p, g, state, *, lr, **_):
    buf = state["c"]
    buf = g.clone() if buf is None else buf * 0.9 + g
    state["c"] = buf
    return torch.addcmul(p, buf, buf, value=-lr)


def _with_c(p, **kw):
    return {**_zeros(p), "c": None}


RULES = {
    "swap": (_zeros, _swap), "old_read_late": (_zeros, _old_read_late),
    "param_read_late": (_zeros, _param_read_late), "param_unchanged": (_zeros, _param_unchanged),
    "returns_gradient": (_zeros, _returns_gradient),
    "norm_in_the_middle": (_zeros, _norm_in_the_middle),
    "loop_in_the_middle": (_zeros, _loop_in_the_middle),
    "loop_aliases_the_parameters": (_zeros, _loop_aliases_the_parameters),
    "created_on_first_step": (_with_c, _created_on_first_step),
}


def _run(init, update, foreach, steps=4, maximize=False):
    engine = Engine(init, update, Capabilities(), "toy")
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]
    states = {p: {} for p in params}
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
        engine.step_group("group", params, states, {"lr": 0.1}, maximize=maximize,
                          foreach=foreach)
    return params, states


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_the_deferred_step_gives_the_bits_of_the_eager_one(rule, maximize):
    init, update = RULES[rule]
    group, group_states = _run(init, update, foreach=None, maximize=maximize)
    alone, alone_states = _run(init, update, foreach=False, maximize=maximize)
    for p, q in zip(group, alone):
        assert torch.equal(p, q), rule
        for key, value in alone_states[q].items():
            assert torch.equal(group_states[p][key], value), (rule, key)


class _Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name, hp", [
    ("momentum", {"lr": 0.01}), ("adam", {"lr": 1e-3}), ("adamw", {"lr": 1e-3}),
    ("rmsprop", {"lr": 1e-3}), ("adagrad", {"lr": 1e-2}),
])
def test_results_are_written_where_they_belong(name, hp):
    """After the first steps no result is copied into the state or the parameters: each is
    computed in place, as torch.optim's foreach code does by hand. The one copy allowed is
    the gathering of a gradient read more than once."""
    params = [torch.randn(50, requires_grad=True) for _ in range(10)]
    for p in params:
        p.grad = torch.randn(50)
    opt = optimlab.create(name, params, fused=False, **hp)
    for _ in range(3):
        opt.step()
    with _Ops() as seen:
        opt.step()
    assert seen.ops["copy_"] == 0, dict(seen.ops)
    assert seen.ops["_foreach_copy_"] <= 1, dict(seen.ops)
    assert seen.ops["cat"] == 0, dict(seen.ops)
    # the parameters are updated by one in-place multi-tensor operation
    param_writes = [op for op in seen.ops if op.startswith("_foreach_") and op.endswith("_")
                    and op != "_foreach_copy_"]
    assert param_writes, dict(seen.ops)


def test_scratch_buffers_are_kept_from_step_to_step():
    params = [torch.randn(40, requires_grad=True) for _ in range(6)]
    for p in params:
        p.grad = torch.randn(40)
    opt = optimlab.create("adam", params, fused=False, lr=1e-3)
    for _ in range(2):
        opt.step()
    (plan,) = opt.engine._multi.values()
    batch = plan.batches[0]
    before = [t.data_ptr() for t in batch.pool]
    for _ in range(3):
        opt.step()
    assert before and [t.data_ptr() for t in batch.pool] == before
