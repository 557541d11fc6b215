"""What the engine keeps alive between steps: the state, and on the plain multi-tensor path
at most a bounded scratch (:data:`~optimlab.optim.engine.SCRATCH_KEPT_BYTES`).

Memory is measured as the bytes of the tensor storages reachable from the optimizer (its
state, its engine and the engine's plans), found by an explicit walk that also follows a
tensor's autograd base (``t._base``: a view keeps its whole base alive, and
``gc.get_referents`` does not show it). The parameters and their gradients are left out. No
timing, no process memory: the figures are the same on every machine.
"""

from __future__ import annotations

import io
import warnings

import pytest
import torch

import optimlab
from optimlab.optim import engine

N, SIZE = 6, 2_000
#: bytes of bookkeeping allowed beside the state (the fused plan's address table, a layout's
#: tensor of sizes): far below one parameter's 8,000
SLACK = 1024


def _storages(root) -> dict[int, int]:
    """Storage address -> bytes, for every tensor storage reachable from ``root`` through
    containers, optimlab objects' attributes and tensors' autograd bases (never functions,
    modules or classes, whose globals reach the whole process)."""
    seen: set[int] = set()
    stack = [root]
    found: dict[int, int] = {}
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            if obj.layout is torch.strided:
                storage = obj.untyped_storage()
                found[storage.data_ptr()] = max(found.get(storage.data_ptr(), 0), storage.nbytes())
            if obj._base is not None:
                stack.append(obj._base)
            stack.extend(vars(obj).values())
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif type(obj).__module__.startswith("optimlab"):
            if hasattr(obj, "__dict__"):
                stack.extend(vars(obj).values())
            stack.extend(getattr(obj, name, None) for name in getattr(type(obj), "__slots__", ()))
    return found


def _without_params(found: dict[int, int], params) -> int:
    for p in params:
        found.pop(p.untyped_storage().data_ptr(), None)
        if p.grad is not None:
            found.pop(p.grad.untyped_storage().data_ptr(), None)
    return sum(found.values())


def held(opt, params) -> int:
    """Bytes the optimizer keeps alive besides the parameters and gradients."""
    return _without_params(_storages(opt), params)


def state_held(opt, params) -> int:
    """Bytes the state's tensors keep alive (their whole storages, their bases')."""
    return _without_params(_storages(list(opt.state.values())), params)


def state_numel_bytes(opt) -> int:
    """Bytes of the state's tensors themselves (what torch.optim would hold)."""
    return sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
               if isinstance(v, torch.Tensor))


def _params(n=N, size=SIZE, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(size, generator=gen).to(dtype).requires_grad_() for _ in range(n)]
    grads = [torch.randn(size, generator=gen).to(dtype) for _ in range(n)]
    for p, g in zip(params, grads):
        p.grad = g
    return params, grads


def _param_bytes(params) -> int:
    return sum(p.numel() * p.element_size() for p in params)


#: optimizers whose plain step keeps scratch of their own, from 1x (Adam) to 12x (LAMB)
PLAIN = [("Adam", {}), ("NAdam", {}), ("RAdam", {}), ("Adagrad", {}), ("RMSprop", {}),
         ("ASGD", {}), ("Rprop", {}), ("Lion", {}), ("Signum", {}), ("LAMB", {}), ("MARS", {}),
         ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True})]


def _plain(name, params, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(optimlab, name)(params, fused=False, **kw)


@pytest.mark.parametrize("name,kw", [("Lion", {}), ("NAdam", {}), ("LAMB", {}), ("Rprop", {})])
def test_no_arena_views_cache_does_not_grow(monkeypatch, name, kw):
    """Off the CPU a batch has no :class:`~optimlab.optim.multi_tensor.Arena`, so every step
    brings new scratch buffers; the views cache filed each under ``id(buffer)`` and kept up
    to 64 whole-group buffers alive (Lion: 3x the parameters after one step, 40x after 100).
    Simulated on the CPU, as the audit did: the batch's arena is set to None after it is
    made, the branch a CUDA device takes. The cache then holds the state's buffers only, and
    the optimizer holds the state alone, step after step."""
    original = engine._MultiBatch.__init__

    def no_arena(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.arena = None  # what a non-CPU device gets

    monkeypatch.setattr(engine._MultiBatch, "__init__", no_arena)
    params, _ = _params()
    opt = _plain(name, params, **kw)
    figures = []
    for step in range(12):
        opt.step()
        if step in (1, 11):
            figures.append(held(opt, params))
    assert figures[0] == figures[1] <= state_numel_bytes(opt) + SLACK
    batches = [b for plan in opt.engine._multi.values() for b in plan.batches]
    assert batches
    for batch in batches:
        current = list(batch.tensors.values())
        for key, (flat, _views) in batch._views.items():
            assert key == id(flat) and any(flat is t for t in current)
        # an entry filed under another tensor's id (an id the allocator reused) never
        # answers for it: the views are of the very tensor asked about
        other = torch.arange(float(batch.layout.numel))
        batch._views[id(other)] = (current[0], batch.layout.split(current[0]))
        assert all(v.untyped_storage().data_ptr() == other.untyped_storage().data_ptr()
                   for v in batch.views(other))


@pytest.mark.parametrize("name,kw", PLAIN)
def test_plain_path_scratch_is_bounded(monkeypatch, name, kw):
    """The plain path kept its scratch (pool, arena, views) between steps without bound:
    1x the parameters for Adam, 7x ASGD, 12x LAMB, where torch's foreach path keeps none.
    It keeps at most ``SCRATCH_KEPT_BYTES`` per batch: none with a bound of 0, and no more
    than the bound with one (here the size of the parameters)."""
    params, _ = _params()
    monkeypatch.setattr(engine, "SCRATCH_KEPT_BYTES", 0, raising=False)
    opt = _plain(name, params, **kw)
    for _ in range(3):
        opt.step()
    assert held(opt, params) <= state_numel_bytes(opt) + SLACK

    bound = _param_bytes(params)
    monkeypatch.setattr(engine, "SCRATCH_KEPT_BYTES", bound, raising=False)
    params, _ = _params(seed=1)
    opt = _plain(name, params, **kw)
    for _ in range(3):
        opt.step()
    assert held(opt, params) - state_numel_bytes(opt) <= bound + SLACK


def test_reduced_precision_default_path_keeps_no_scratch(monkeypatch):
    """bfloat16 parameters take the plain path by default (the kernel takes float32 and
    float64): the same bound holds there."""
    monkeypatch.setattr(engine, "SCRATCH_KEPT_BYTES", 0, raising=False)
    params, _ = _params(dtype=torch.bfloat16)
    opt = optimlab.Adam(params)
    for _ in range(3):
        opt.step()
    assert opt.engine._multi  # the plain path stepped them
    assert held(opt, params) <= state_numel_bytes(opt) + SLACK


def test_frozen_parameter_lets_the_old_buffers_go():
    """A parameter that stops getting gradients (a frozen head) was left in the old batch's
    buffers when the batch was formed again without it: its state entries, views, kept the
    whole group's old buffers alive (Adam: 4x the parameters instead of 2x), and a
    checkpoint saved them whole. Its entries now get memory of their own, the same tensor
    objects with the same values."""
    params, grads = _params()
    head = torch.randn(10, requires_grad=True)
    params.append(head)
    grads.append(torch.randn(10))
    opt = optimlab.Adam(params, fused=False)
    for step in range(6):
        for p, g in zip(params, grads):
            p.grad = None if (step >= 3 and p is head) else g
        opt.step()
        if step == 2:
            kept = opt.state[head]["exp_avg"]
            values = kept.clone()
    assert opt.state[head]["exp_avg"] is kept and torch.equal(kept, values)
    assert state_held(opt, params) == state_numel_bytes(opt) <= 2 * _param_bytes(params) + SLACK
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    assert buffer.tell() < 2.2 * _param_bytes(params)


@pytest.mark.parametrize("name,kw", [("Adam", {"fused": False}),
                                     ("SGD", {"fused": False, "lr": 0.1, "momentum": 0.9}),
                                     ("Lion", {"fused": False})])
def test_gradient_missing_on_alternate_steps_keeps_state_bounded(name, kw):
    """A gradient missing on every other step forms the batch again each step. The old
    buffers went with the old batch only in part: a parameter left out pinned them, and
    state entries made as autograd views (SGD's momentum buffer, created on the first step)
    kept their base, the first buffer, alive after they moved (SGD: 2.9x the parameters).
    The state holds its own size, step after step."""
    params, grads = _params()
    opt = getattr(optimlab, name)(params, **kw)
    for step in range(7):
        for i, (p, g) in enumerate(zip(params, grads)):
            p.grad = None if (step % 2 == 1 and i == 0) else g
        opt.step()
        assert state_held(opt, params) == state_numel_bytes(opt), step


def test_sgd_momentum_fused_drops_its_first_plain_step():
    """SGD's first step runs on the plain path (the momentum buffer does not exist yet);
    once the fused path steps the group, the plain plan and its scratch went on being
    kept (1x the parameters for good)."""
    params, _ = _params()
    opt = optimlab.SGD(params, lr=0.1, momentum=0.9)
    for _ in range(3):
        opt.step()
    if not any(plan.batches for plan in opt.engine.plans.values()):
        pytest.skip("no fused kernel here (no C compiler)")
    assert not opt.engine._multi
    assert held(opt, params) <= state_numel_bytes(opt) + SLACK == _param_bytes(params) + SLACK


@pytest.mark.parametrize("name,kw", PLAIN)
def test_a_large_group_steps_in_batches_of_bounded_size(monkeypatch, name, kw):
    """A group larger than ``BATCH_BYTES`` steps in batches of consecutive whole tensors
    (a tensor larger than the bound alone): a batch of the whole model wrote scratch of the
    whole model (a 20M-number ASGD step peaked at 8 times the parameters, where torch's
    foreach holds 1). The steps are those of one batch, bit for bit (float64: every
    operation is elementwise or per tensor, so a batch's bounds change no number), and the
    scratch kept between steps is ``SCRATCH_KEPT_BYTES`` for the group, not per batch."""
    params, _ = _params(n=7, size=1000, dtype=torch.float64)
    params.insert(3, torch.randn(3000, dtype=torch.float64, requires_grad=True))  # > bound
    params[3].grad = torch.randn(3000, dtype=torch.float64)

    def run(bound, kept):
        monkeypatch.setattr(engine, "BATCH_BYTES", bound)
        monkeypatch.setattr(engine, "SCRATCH_KEPT_BYTES", kept)
        ours = [p.detach().clone().requires_grad_() for p in params]
        for p, q in zip(ours, params):
            p.grad = q.grad.clone()
        opt = _plain(name, ours, **kw)
        for _ in range(4):
            opt.step()
        (plan,) = opt.engine._multi.values()
        return opt, ours, [len(batch.params) for batch in plan.batches]

    whole, whole_params, sizes = run(1 << 40, 1 << 40)
    assert sizes == [8]
    bound = 2 * 1000 * 8  # two of the small tensors
    kept = _param_bytes(whole_params) // 4
    split, split_params, sizes = run(bound, kept)
    assert sizes == [2, 1, 1, 2, 2]  # 2 small, the small one the large one would pass, the
    # large one alone, then the rest in twos
    for p, q in zip(split_params, whole_params):
        assert torch.equal(p, q)
    for p, q in zip(split_params, whole_params):
        for key, value in whole.state[q].items():
            assert torch.equal(split.state[p][key], value), key
    assert held(split, split_params) - state_numel_bytes(split) <= kept + SLACK
