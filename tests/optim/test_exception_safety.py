"""Nothing lost when something fails: a step that raises part way (a gradient that does not
fit its parameter, a closure that raises on a later call, ``KeyboardInterrupt``) leaves the
parameters and the optimizer's state as the step found them, and a retried step gives, bit
for bit, what a run without the failure gives.

Each test injects the failure at the k-th parameter (a patched function, a gradient of the
wrong shape through ``.grad.data``, a closure that raises on its n-th call), compares with a
snapshot taken before the failed step, then retries and compares with a clean run.
"""

from __future__ import annotations

import pytest
import torch

import optimlab
import optimlab.optim.sophia as sophia_mod
import optimlab.optim.wrappers.sam as sam_mod
from optimlab import Population
from optimlab.optim.engine import Engine

SHAPES = [(4, 3), (5,), (3, 3), (2, 4), (6,)]


def _params(seed: int = 0, shapes=SHAPES, dtype=torch.float32) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in shapes]


def _targets(params, seed: int = 1) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]


def _copy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _same(a, b) -> bool:
    """Bit for bit (tensors: shape, dtype and values; NaN equal to NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.shape == b.shape and a.dtype == b.dtype
                and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
                and torch.equal(a.isnan(), b.isnan()))
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _snapshot(opt, params) -> tuple:
    """The parameters, each parameter's state and the groups' entries (but ``params``)."""
    states = [_copy(dict(opt.state[p])) if p in opt.state else None for p in params]
    groups = [{k: _copy(v) for k, v in g.items() if k != "params"} for g in opt.param_groups]
    return [p.detach().clone() for p in params], states, groups


def _assert_same_snapshot(a, b) -> None:
    pa, sa, ga = a
    pb, sb, gb = b
    moved = [i for i, (x, y) in enumerate(zip(pa, pb)) if not _same(x, y)]
    assert not moved, f"parameters {moved} changed"
    changed = [i for i, (x, y) in enumerate(zip(sa, sb)) if not _same(x, y)]
    assert not changed, f"the state of parameters {changed} changed"
    assert _same(ga, gb), f"the groups changed: {ga} != {gb}"


def _assert_params_equal(params, reference) -> None:
    for i, (p, r) in enumerate(zip(params, reference)):
        assert torch.equal(p.detach(), r.detach()), f"parameter {i} differs from the clean run"


def _closure(opt, params, targets, fail=None):
    """zero_grad, a quadratic loss, backward; ``fail(call_number)`` runs after backward."""
    calls = {"n": 0}

    def closure():
        calls["n"] += 1
        opt.zero_grad()
        loss = sum(((p - t) ** 2 * (1 + i)).sum() for i, (p, t) in enumerate(zip(params, targets)))
        loss.backward()
        if fail is not None:
            fail(calls["n"])
        return loss

    return closure


# -- 1. SAM -----------------------------------------------------------------------------------
def _sam(params, **kw):
    return optimlab.SAM(params, base_optimizer=optimlab.SGD, lr=0.1, rho=0.5, momentum=0.9, **kw)


def _sam_reference(steps: int, **kw) -> list[torch.Tensor]:
    params = _params()
    opt = _sam(params, **kw)
    closure = _closure(opt, params, _targets(params))
    for _ in range(steps):
        opt.step(closure)
    return params


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_first_step_interrupted_at_the_third_parameter_rolls_back(monkeypatch, error, adaptive):
    params = _params()
    opt = _sam(params, adaptive=adaptive)
    closure = _closure(opt, params, _targets(params))
    opt.step(closure)
    before = _snapshot(opt, params)
    real = sam_mod._real
    raised = []
    seen = []
    # ASAM reads |theta| of each parameter for the norm first: the interrupt comes in the
    # perturbation's loop, after parameters 0 and 1 moved
    at = 2 if adaptive else 1

    def interrupting(t):
        if t is params[2] and not raised:
            seen.append(t)
            if len(seen) == at:
                raised.append(t)
                raise error("interrupted")
        return real(t)

    monkeypatch.setattr(sam_mod, "_real", interrupting)
    with pytest.raises(error, match="interrupted"):
        opt.step(closure)
    monkeypatch.setattr(sam_mod, "_real", real)
    assert raised
    _assert_same_snapshot(before, _snapshot(opt, params))
    assert not any("old_p" in s for s in opt.state.values())
    assert opt.undo_first_step() is False  # nothing left pending
    opt.train()  # refused while a perturbation is pending
    opt.eval()
    opt.step(closure)  # the retry
    _assert_params_equal(params, _sam_reference(2, adaptive=adaptive))


def test_sam_first_step_with_a_misfit_gradient_rolls_back():
    """The closure leaves parameter 2 a gradient of the wrong shape: first_step raises at it
    (the perturbation of parameters 0 and 1 is undone) and nothing is lost."""
    params = _params()
    opt = _sam(params)
    targets = _targets(params)
    opt.step(_closure(opt, params, targets))
    before = _snapshot(opt, params)

    def misfit(call):
        if call == 1:
            params[2].grad.data = torch.ones(7)

    with pytest.raises(RuntimeError):
        opt.step(_closure(opt, params, targets, fail=misfit))
    _assert_same_snapshot(before, _snapshot(opt, params))
    assert not any("old_p" in s for s in opt.state.values())
    opt.step(_closure(opt, params, targets))
    _assert_params_equal(params, _sam_reference(2))


def test_sam_step_undoes_a_pending_perturbation_first():
    """A first_step left without its second_step (a manual two-pass loop that failed): the
    next step starts from the original point, not from the perturbed one (whose values the
    old code kept as the 'original')."""
    params = _params()
    opt = _sam(params)
    closure = _closure(opt, params, _targets(params))
    opt.step(closure)
    before = _snapshot(opt, params)
    closure()
    opt.first_step()  # pending: the parameters are at theta + e
    assert not torch.equal(params[0].detach(), before[0][0])
    opt.first_step()  # again: the original point is kept, not overwritten
    opt.undo_first_step()
    _assert_same_snapshot(before, _snapshot(opt, params))
    closure()
    opt.first_step()
    opt.step(closure)
    _assert_params_equal(params, _sam_reference(2))


# -- SAM and Sophia in a population (member mode, through the same first_step) ----------------
def _population_closure(Ws, scale):
    def closure():
        for W in Ws:
            W.grad = None
        loss = sum((scale[:, None] * (W - 0.25) ** 2).sum(1) for W in Ws)
        loss.sum().backward()
        return loss.detach()
    return closure


@pytest.mark.parametrize("name", ["sam", "sophia"])
def test_a_population_member_whose_first_phase_raises_is_left_where_it_was(monkeypatch, name):
    gen = torch.Generator().manual_seed(3)
    starts = [torch.randn(3, 4, dtype=torch.float64, generator=gen),
              torch.randn(3, 5, dtype=torch.float64, generator=gen)]
    scale = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    lrs = [0.01, 0.02, 0.03]
    hparams = {"lr": lrs, "rho": 0.5} if name == "sam" else {"lr": lrs}
    Ws = [s.clone().requires_grad_() for s in starts]
    pop = Population(name, Ws, hparams)
    closure = _population_closure(Ws, scale)
    victim = pop._leaves[1][1]  # member 1's second parameter
    raised = []
    if name == "sam":
        real = sam_mod._real

        def failing(t):
            if t is victim and not raised:
                raised.append(t)
                raise FloatingPointError("member 1 fails")
            return real(t)
        monkeypatch.setattr(sam_mod, "_real", failing)
    else:
        real = sophia_mod.probe

        def failing(p, **kw):
            if p is victim and not raised:
                raised.append(p)
                raise FloatingPointError("member 1 fails")
            return real(p, **kw)
        monkeypatch.setattr(sophia_mod, "probe", failing)
    with pytest.raises(FloatingPointError, match="member 1 fails"):
        pop.step(closure)
    assert raised
    for W, start in zip(Ws, starts):  # member 1 left where the step found it
        assert torch.equal(W[1].detach(), start[1])
    pop.step(closure)  # the retry: member 1 takes the one step it takes alone
    ps = [s[1].clone().requires_grad_() for s in starts]
    alone = optimlab.create(name, ps, **{k: v[1] if isinstance(v, list) else v
                                         for k, v in hparams.items()})

    def closure_alone():
        alone.zero_grad()
        loss = sum((scale[1] * (p - 0.25) ** 2).sum() for p in ps)
        loss.backward()
        return loss

    alone.step(closure_alone)
    for W, p in zip(Ws, ps):
        assert torch.equal(W[1].detach(), p.detach())


# -- 2. Sophia --------------------------------------------------------------------------------
def _sophia_reference(steps: int) -> list[torch.Tensor]:
    params = _params()
    opt = optimlab.Sophia(params, lr=0.1)
    closure = _closure(opt, params, _targets(params))
    for _ in range(steps):
        opt.step(closure)
    return params


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
@pytest.mark.parametrize("at_step", [1, 2])
def test_sophia_first_step_interrupted_at_the_third_probe_rolls_back(monkeypatch, error, at_step):
    params = _params()
    opt = optimlab.Sophia(params, lr=0.1)  # update_interval 10: steps 1 and 11 probe
    closure = _closure(opt, params, _targets(params))
    for _ in range(at_step - 1):
        for _ in range(10):
            opt.step(closure)
    before = _snapshot(opt, params)
    real, calls = sophia_mod.probe, {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise error("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(sophia_mod, "probe", interrupting)
    with pytest.raises(error, match="interrupted"):
        opt.step(closure)
    monkeypatch.setattr(sophia_mod, "probe", real)
    _assert_same_snapshot(before, _snapshot(opt, params))
    assert opt.undo_first_step() is False  # nothing pending, nothing left moved
    opt.step(closure)
    _assert_params_equal(params, _sophia_reference(10 * (at_step - 1) + 1))


def test_sophia_manual_first_step_interrupted_restores_params_and_grads(monkeypatch):
    params = _params()
    opt = optimlab.Sophia(params, lr=0.1)
    closure = _closure(opt, params, _targets(params))
    closure()
    before = [p.detach().clone() for p in params]
    grads = [p.grad for p in params]
    real, calls = sophia_mod.probe, {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sophia_mod, "probe", interrupting)
    with pytest.raises(KeyboardInterrupt):
        opt.first_step()
    _assert_params_equal(params, before)
    assert all(p.grad is g for p, g in zip(params, grads))
    assert "_probed" not in opt.__dict__


# -- 3. schedule-free --------------------------------------------------------------------------
def _sf(name, params, **kw):
    return optimlab.create(name, params, lr=0.1, warmup_steps=0, **kw)


def _sf_grads(params, seed=5):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=gen) for p in params]


@pytest.mark.parametrize("name", ["schedulefreeadamw", "schedulefreesgd"])
@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("how", ["interrupt", "misfit"])
def test_schedule_free_failed_step_leaves_group_fields(monkeypatch, name, fused, how):
    kw = {} if fused is None else {"fused": fused}
    ref_params = _params(shapes=SHAPES[:3])
    ref = _sf(name, ref_params, **kw)
    grads = _sf_grads(ref_params)
    for _ in range(3):
        for p, g in zip(ref_params, grads):
            p.grad = g.clone()
        ref.step()

    params = _params(shapes=SHAPES[:3])
    opt = _sf(name, params, **kw)
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt.step()
    for p, g in zip(params, grads):
        p.grad = g.clone()
    before = _snapshot(opt, params)
    if how == "interrupt":
        def interrupted(self, *args, **kwargs):
            raise KeyboardInterrupt
        monkeypatch.setattr(Engine, "step_group", interrupted)
        with pytest.raises(KeyboardInterrupt):
            opt.step()
        monkeypatch.undo()
    else:
        params[2].grad.data = torch.ones(7)
        with pytest.raises(RuntimeError):
            opt.step()
    _assert_same_snapshot(before, _snapshot(opt, params))
    for _ in range(2):
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    _assert_params_equal(params, ref_params)
    for key in ("k", "weight_sum", "lr_max", "scheduled_lr"):
        assert opt.param_groups[0][key] == ref.param_groups[0][key], key


# -- 4. Lookahead ------------------------------------------------------------------------------
def _lookahead_params():
    # values and steps exact in float32, so a retried step on a reshaped tensor is the same
    return [torch.tensor([1.0, -2.0, 0.5], requires_grad=True),
            torch.tensor([0.25, 3.0, -1.5], requires_grad=True),
            torch.tensor([2.0, -0.75], requires_grad=True)]


def _lookahead_step(la, params):
    for p in params:
        p.grad = torch.ones_like(p)
    return la.step()


def test_lookahead_sync_that_fails_part_way_changes_nothing():
    """Parameter 1 was given another shape after its slow weight was taken: the sync is
    refused before any parameter is pulled back, and the step is not counted, so the next
    step (once the shape is back) synchronises."""
    params = _lookahead_params()
    la = optimlab.Lookahead(optimlab.SGD(params, lr=0.25), k=2, alpha=0.5)
    _lookahead_step(la, params)
    params[1].data = params[1].data.reshape(1, 3)
    for p in params:
        p.grad = torch.ones_like(p)
    slow_before = [la.state[p]["slow_param"].clone() for p in params]
    expected = [(p.detach() - 0.25).clone() for p in params]  # the inner SGD step alone
    with pytest.raises(RuntimeError, match="parameter 1"):
        la.step()
    assert la.la_steps == 1
    for p, slow, want in zip(params, slow_before, expected):
        assert torch.equal(la.state[p]["slow_param"], slow)
        assert torch.equal(p.detach(), want)  # param 0 not pulled back to its slow weight
    params[1].data = params[1].data.reshape(3)
    _lookahead_step(la, params)  # the retry synchronises
    assert la.la_steps == 2
    # the same three inner steps and one synchronisation, without the failure
    ref_params = _lookahead_params()
    ref = optimlab.Lookahead(optimlab.SGD(ref_params, lr=0.25), k=3, alpha=0.5)
    for _ in range(3):
        _lookahead_step(ref, ref_params)
    _assert_params_equal(params, ref_params)
    for p, q in zip(params, ref_params):
        assert torch.equal(la.state[p]["slow_param"], ref.state[q]["slow_param"])


# -- 5. LBFGS ----------------------------------------------------------------------------------
def _rosenbrock_closure(opt, w, fail_at=None):
    calls = {"n": 0}

    def closure():
        calls["n"] += 1
        if fail_at is not None and calls["n"] == fail_at:
            raise ValueError("closure failed")
        opt.zero_grad()
        loss = (1 - w[0]) ** 2 + 10 * (w[1] - w[0] ** 2) ** 2 + (w[2:] ** 2).sum()
        loss.backward()
        return loss

    return closure


def _lbfgs(w, line_search):
    return optimlab.LBFGS([w], lr=0.5, max_iter=5, history_size=3, line_search_fn=line_search)


def _w():
    return torch.tensor([-1.5, 2.0, 0.5, -0.25], requires_grad=True)


@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
@pytest.mark.parametrize("fail_step", [0, 1, 3])
@pytest.mark.parametrize("fail_at", [1, 3])
def test_lbfgs_closure_raising_restores_params_and_state(line_search, fail_step, fail_at):
    ref_w = _w()
    ref = _lbfgs(ref_w, line_search)
    for _ in range(5):
        ref.step(_rosenbrock_closure(ref, ref_w))

    w = _w()
    opt = _lbfgs(w, line_search)
    for _ in range(fail_step):
        opt.step(_rosenbrock_closure(opt, w))
    before = _snapshot(opt, [w])
    had_state = w in opt.state
    with pytest.raises(ValueError, match="closure failed"):
        opt.step(_rosenbrock_closure(opt, w, fail_at=fail_at))
    _assert_same_snapshot(before, _snapshot(opt, [w]))
    assert (w in opt.state) == had_state
    for _ in range(5 - fail_step):
        opt.step(_rosenbrock_closure(opt, w))
    assert torch.equal(w.detach(), ref_w.detach())
    assert _same(_copy(dict(opt.state[w])), _copy(dict(ref.state[ref_w])))


def test_lbfgs_keyboard_interrupt_in_the_line_search_restores(monkeypatch):
    w = _w()
    opt = _lbfgs(w, "strong_wolfe")
    opt.step(_rosenbrock_closure(opt, w))
    before = _snapshot(opt, [w])
    calls = {"n": 0}
    inner = _rosenbrock_closure(opt, w)

    def closure():
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return inner()

    with pytest.raises(KeyboardInterrupt):
        opt.step(closure)
    _assert_same_snapshot(before, _snapshot(opt, [w]))


# -- 6. the engine -----------------------------------------------------------------------------
def _engine_run(name, fused, fail):
    """Two steps of ``name`` on five tensors; on the second, parameter 2's gradient has the
    wrong shape (``fail``): returns (params, opt, error)."""
    params = _params()
    kw = {"fused": fused} if fused is not None else {}
    opt = optimlab.create(name, params, lr=0.01, **kw)
    grads = _sf_grads(params)
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt.step()
    for p, g in zip(params, grads):
        p.grad = (2 * g).clone()
    error = None
    if fail:
        before = _snapshot(opt, params)
        params[2].grad.data = torch.ones(7)
        with pytest.raises(RuntimeError) as info:
            opt.step()
        error = info.value
        _assert_same_snapshot(before, _snapshot(opt, params))
        for p, g in zip(params, grads):
            p.grad = (2 * g).clone()
    opt.step()
    return params, opt, error


@pytest.mark.parametrize("name", ["adam", "nadam", "rmsprop", "adagrad"])
def test_multi_tensor_step_counters_not_advanced_by_a_failed_batch(name):
    params, opt, _ = _engine_run(name, False, fail=True)
    ref_params, ref, _ = _engine_run(name, False, fail=False)
    _assert_params_equal(params, ref_params)
    for p, q in zip(params, ref_params):
        assert _same(_copy(dict(opt.state[p])), _copy(dict(ref.state[q])))


@pytest.mark.parametrize("fused", [None, True])
@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_fused_misfit_gradient_names_the_parameter(name, fused):
    params, opt, error = _engine_run(name, fused, fail=True)
    message = str(error)
    assert "changed between the fused plan" not in message
    assert "parameter 2 " in message
    assert "(3, 3)" in message and "(7,)" in message
    assert "float32" in message and "cpu" in message
    ref_params, _, _ = _engine_run(name, fused, fail=False)
    _assert_params_equal(params, ref_params)


def test_fused_misfit_gradient_dtype_is_named():
    params = _params()
    opt = optimlab.Adam(params, lr=0.01)
    for p in params:
        p.grad = torch.ones_like(p)
    params[3].grad.data = torch.ones(2, 4, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"parameter 3 .*\(2, 4\), torch\.float32 .* "
                                           r"\(2, 4\), torch\.float64"):
        opt.step()
    assert all(not opt.state[p] or opt.state[p]["step"] == 0 for p in params)


@pytest.mark.parametrize("name", ["sam", "sophia"])
def test_a_keyboard_interrupt_in_one_members_first_phase_puts_every_member_back(
        monkeypatch, name):
    """A KeyboardInterrupt is no member's own failure: it stops the step, and the members
    whose first phase had already moved them go back too (else the next step's closure
    evaluated them at their perturbed points)."""
    gen = torch.Generator().manual_seed(5)
    starts = [torch.randn(3, 4, dtype=torch.float64, generator=gen),
              torch.randn(3, 5, dtype=torch.float64, generator=gen)]
    scale = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    lrs = [0.01, 0.02, 0.03]
    Ws = [s.clone().requires_grad_() for s in starts]
    pop = Population(name, Ws, {"lr": lrs, "rho": 0.5} if name == "sam" else {"lr": lrs})
    closure = _population_closure(Ws, scale)
    victim = pop._leaves[2][0]  # the last member's first parameter: 0 and 1 have moved
    module, attr = (sam_mod, "_real") if name == "sam" else (sophia_mod, "probe")
    real = getattr(module, attr)

    def interrupted(t, **kw):
        if t is victim:
            raise KeyboardInterrupt
        return real(t, **kw)
    monkeypatch.setattr(module, attr, interrupted)
    with pytest.raises(KeyboardInterrupt):
        pop.step(closure)
    for W, start in zip(Ws, starts):
        assert torch.equal(W.detach(), start)


class _KeepsTheRate(optimlab.optim.base.RuleOptimizer):
    """Keeps the last rate it used: a state entry the multi-tensor batch keeps as it is."""

    capabilities = optimlab.optim.capabilities.Capabilities()

    def __init__(self, params, lr=0.1, *, maximize=False, foreach=None, fused=None):
        super().__init__(params, dict(lr=lr, maximize=maximize, foreach=foreach, fused=fused))

    @staticmethod
    def init(p, **_):
        return {"last_lr": None}

    @staticmethod
    def update(p, g, state, *, lr, **_):
        state["last_lr"] = lr
        return p - lr * g


def test_a_multi_tensor_step_that_raises_keeps_the_state_entries_and_names_the_misfit():
    """A gradient that fits no broadcast (shape (5,) on a (4,) parameter): the multi-tensor
    path raised torch's 'size of tensor a (4) must match' after writing the rule's other
    state entries (last_lr read the failed step's 0.5)."""
    a, b = torch.zeros(3, requires_grad=True), torch.zeros(4, requires_grad=True)
    opt = _KeepsTheRate([a, b], lr=0.1)
    a.grad, b.grad = torch.ones(3), torch.ones(4)
    opt.step()
    opt.param_groups[0]["lr"] = 0.5
    b.grad.data = torch.ones(5)
    with pytest.raises(RuntimeError, match=r"parameter 1 of the group .* shape \(4,\).* "
                                           r"gradient of shape \(5,\)"):
        opt.step()
    assert opt.state[a]["last_lr"] == opt.state[b]["last_lr"] == 0.1
    assert torch.equal(a.detach(), torch.full((3,), -0.1))
