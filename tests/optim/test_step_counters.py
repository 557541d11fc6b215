"""The step counter in every form a checkpoint or a user may give it, on every path.

* a one-element ``step`` of shape ``[1]`` (torch loads and steps on it);
* SOAP's, Shampoo's and Sophia's exact (float64) counters, which schedule their periodic
  work past 2**24, where a float32 counter stops;
* a float64 ``step`` loaded from a checkpoint keeps its dtype, as in torch;
* a ``step`` replaced by a Python int raises the same ``TypeError`` on every path;
* RAdam and NAdam with tensor betas follow torch bit for bit on the plain path.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import optimlab
from optimlab import Population

PATHS = {
    "fused": {},
    "multi": {"fused": False},
    "plain": {"fused": False, "foreach": False},
}

#: torch-parity classes with a step counter (keyword arguments that use the step)
COUNTED = {
    "Adam": (torch.optim.Adam, optimlab.Adam, {"lr": 0.01}),
    "AdamW": (torch.optim.AdamW, optimlab.AdamW, {"lr": 0.01}),
    "NAdam": (torch.optim.NAdam, optimlab.NAdam, {"lr": 0.01}),
    "RAdam": (torch.optim.RAdam, optimlab.RAdam, {"lr": 0.01}),
    "Adamax": (torch.optim.Adamax, optimlab.Adamax, {"lr": 0.01}),
    "Adagrad": (torch.optim.Adagrad, optimlab.Adagrad, {"lr": 0.1, "lr_decay": 1e-3}),
    "ASGD": (torch.optim.ASGD, optimlab.ASGD, {"lr": 0.01, "lambd": 1e-3, "t0": 3}),
    "RMSprop": (torch.optim.RMSprop, optimlab.RMSprop, {"lr": 0.01}),
    "Rprop": (torch.optim.Rprop, optimlab.Rprop, {"lr": 0.01}),
    "Adadelta": (torch.optim.Adadelta, optimlab.Adadelta, {"lr": 1.0}),
}

SHAPES = ((5,), (3, 4), (7,))


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fused=None without a compiler says so once
        yield


def _params(dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=gen, dtype=dtype) for shape in SHAPES]


def _grads(params, k):
    gen = torch.Generator().manual_seed(1000 + k)
    return [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]


def _steps(opt, params, start, count):
    for k in range(start, start + count):
        for p, g in zip(params, _grads(params, k)):
            p.grad = g
        opt.step()


def _big_params(dtype=torch.float32):
    """The usual parameters and a larger one, where a rounding apart shows within few steps."""
    gen = torch.Generator().manual_seed(5)
    return _params(dtype) + [torch.randn(4000, generator=gen, dtype=dtype)]


def _leaves(values):
    return [v.detach().clone().requires_grad_() for v in values]


def _torch_checkpoint(Theirs, kw, dtype=torch.float32):
    """torch's model after 3 steps and its state_dict."""
    params = _leaves(_params(dtype))
    opt = Theirs(params, **kw)
    _steps(opt, params, 0, 3)
    return [p.detach().clone() for p in params], opt.state_dict()


def _same(a, b):
    return all(torch.equal(x.detach(), y.detach()) for x, y in zip(a, b))


# -- a step of shape [1] -----------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", COUNTED)
def test_a_one_element_step_in_a_checkpoint_loads_0d_and_steps_on(name, path):
    """A checkpoint whose step is a [1] tensor (torch loads and steps on it) loads 0-d, as
    the optimizer keeps it, and steps on every path: bit for bit with torch on the plain and
    multi-tensor paths, and as the same checkpoint with a 0-d step on the fused one."""
    Theirs, Ours, kw = COUNTED[name]
    weights, saved = _torch_checkpoint(Theirs, kw)
    flat = copy.deepcopy(saved)
    for entries in flat["state"].values():
        entries["step"] = entries["step"].reshape(1)
    t_params = _leaves(weights)
    t = Theirs(t_params, **kw)
    t.load_state_dict(copy.deepcopy(flat))
    _steps(t, t_params, 3, 4)
    o_params = _leaves(weights)
    o = Ours(o_params, **kw, **PATHS[path])
    o.load_state_dict(copy.deepcopy(flat))
    assert all(st["step"].dim() == 0 for st in o.state.values())
    _steps(o, o_params, 3, 4)
    assert all(float(st["step"]) == 7.0 for st in o.state.values())
    if path == "fused":
        ref_params = _leaves(weights)
        ref = Ours(ref_params, **kw, **PATHS[path])
        ref.load_state_dict(copy.deepcopy(saved))
        _steps(ref, ref_params, 3, 4)
        assert _same(o_params, ref_params)
    else:
        assert _same(o_params, t_params)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["Adam", "NAdam", "Adagrad", "ASGD"])
@pytest.mark.parametrize("which", ["all", "one"])
def test_a_one_element_step_put_in_the_state_is_the_counter(name, path, which):
    """``opt.state[p]["step"] = step.reshape(1)`` (for every parameter, or one beside 0-d
    ones): every path counts it as the step and keeps its shape, as torch does; the plain
    and multi-tensor paths stay bit for bit with torch (the fused path, which leaves such a
    state to the multi-tensor path, within float32's rounding)."""
    Theirs, Ours, kw = COUNTED[name]
    start = _params()
    t_params, o_params = _leaves(start), _leaves(start)
    t, o = Theirs(t_params, **kw), Ours(o_params, **kw, **PATHS[path])
    for opt, params in ((t, t_params), (o, o_params)):
        _steps(opt, params, 0, 2)
    for opt in (t, o):
        for i, st in enumerate(opt.state.values()):
            if which == "all" or i == 1:
                st["step"] = st["step"].reshape(1).clone()
    for opt, params in ((t, t_params), (o, o_params)):
        _steps(opt, params, 2, 4)
    shapes = [tuple(st["step"].shape) for st in o.state.values()]
    assert shapes == [tuple(st["step"].shape) for st in t.state.values()]
    assert [float(st["step"].reshape(())) for st in o.state.values()] == [6.0] * 3
    if path == "fused":
        for a, b in zip(o_params, t_params):
            torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-6, atol=1e-6)
    else:
        assert _same(o_params, t_params)


# -- a float64 step keeps its dtype ----------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["Adagrad", "ASGD", "Adam", "NAdam"])
def test_a_float64_step_loaded_keeps_counting_as_in_torch(name, path):
    """torch keeps a checkpoint's float64 step in float64 (it counts on past 2**24); so does
    optimlab on every path, and the plain and multi-tensor runs equal torch's bit for bit."""
    Theirs, Ours, kw = COUNTED[name]
    weights, saved = _torch_checkpoint(Theirs, kw)
    for entries in saved["state"].values():
        entries["step"] = torch.tensor(2.0**24 + 3, dtype=torch.float64)
    t_params, o_params = _leaves(weights), _leaves(weights)
    t = Theirs(t_params, **kw)
    t.load_state_dict(copy.deepcopy(saved))
    o = Ours(o_params, **kw, **PATHS[path])
    o.load_state_dict(copy.deepcopy(saved))
    assert all(st["step"].dtype == torch.float64 for st in o.state.values())
    _steps(t, t_params, 3, 20)
    _steps(o, o_params, 3, 20)
    for st, tst in zip(o.state.values(), t.state.values()):
        assert st["step"].dtype == tst["step"].dtype == torch.float64
        assert float(st["step"]) == float(tst["step"]) == 2.0**24 + 23
    if path != "fused":
        assert _same(o_params, t_params)


def test_float32_and_float64_counters_of_one_group_keep_their_dtypes():
    """Counters of two dtypes in one group step in batches of their own, each in its dtype."""
    for path in PATHS.values():
        params = _leaves(_params())
        opt = optimlab.Adam(params, lr=0.01, **path)
        _steps(opt, params, 0, 2)
        state = list(opt.state.values())
        state[0]["step"] = state[0]["step"].to(torch.float64)
        _steps(opt, params, 2, 3)
        assert [st["step"].dtype for st in opt.state.values()] == \
            [torch.float64, torch.float32, torch.float32]
        assert [float(st["step"]) for st in opt.state.values()] == [5.0] * 3


# -- a step that is no tensor ---------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["RMSprop", "Rprop", "Adadelta", "Adam"])
def test_a_python_int_step_raises_on_every_path(name, path):
    """A step replaced by a Python int by hand: torch raises; optimlab raises the same
    ``TypeError`` on every path (the fused and multi-tensor paths stepped on with the
    counter stuck), before any parameter moves."""
    Theirs, Ours, kw = COUNTED[name]
    start = _params()
    t_params = _leaves(start)
    t = Theirs(t_params, **kw)
    _steps(t, t_params, 0, 1)
    for st in t.state.values():
        st["step"] = 7
    with pytest.raises(Exception):  # noqa: B017 - torch's own error, whatever its type
        _steps(t, t_params, 1, 1)
    params = _leaves(start)
    opt = Ours(params, **kw, **PATHS[path])
    _steps(opt, params, 0, 1)
    for st in opt.state.values():
        st["step"] = 7
    before = [p.detach().clone() for p in params]
    for _ in range(2):
        with pytest.raises(TypeError, match="is int 7, not the step counter"):
            _steps(opt, params, 1, 1)
        assert _same(params, before)
        assert [st["step"] for st in opt.state.values()] == [7] * 3


def test_a_python_int_step_raises_with_fused_true():
    params = _leaves(_params())
    opt = optimlab.Adam(params, lr=0.01, fused=True)
    _steps(opt, params, 0, 1)
    for st in opt.state.values():
        st["step"] = 3
    with pytest.raises(TypeError, match="not the step counter"):
        _steps(opt, params, 1, 1)


# -- exact counters: SOAP, Shampoo, Sophia ---------------------------------------------------
def _matrix_run(cls, start_step, steps=40, key="Q_0", **kw):
    """How often ``state[key]`` changes in ``steps`` steps from ``start_step``."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, generator=gen, requires_grad=True)
    opt = cls([w], **kw)
    w.grad = torch.randn(4, 3, generator=gen)
    opt.step()
    opt.state[w]["step"].fill_(float(start_step))
    changed = 0
    for _ in range(steps):
        before = opt.state[w][key].clone()
        w.grad = torch.randn(4, 3, generator=gen)
        opt.step()
        changed += not torch.equal(before, opt.state[w][key])
    return changed, opt.state[w]["step"]


@pytest.mark.parametrize("cls, key, kw", [
    (optimlab.SOAP, "Q_0", {"precondition_frequency": 5, "lr": 1e-3}),
    (optimlab.Shampoo, "inverse_root_0", {"precondition_frequency": 5,
                                          "start_preconditioning_step": 1}),
], ids=["SOAP", "Shampoo"])
def test_soap_and_shampoo_refresh_on_schedule_past_2_to_24(cls, key, kw):
    """Their ``step % frequency`` refreshes run every 5th step past 2**24 as before it (a
    float32 counter stops at 2**24: SOAP then refreshed on every step, Shampoo never)."""
    early, _ = _matrix_run(cls, 1000, key=key, **kw)
    late, counter = _matrix_run(cls, 2**24 - 10, key=key, **kw)
    assert early == late == 8
    assert counter.dtype == torch.float64 and float(counter) == 2**24 + 30


def _sophia_run(start_step, **kw):
    """Closure evaluations of 40 Sophia steps from ``start_step`` (a Hessian step costs two)."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, generator=gen, requires_grad=True)
    target = torch.randn(6, generator=gen)
    calls = 0

    def closure():
        nonlocal calls
        calls += 1
        w.grad = None
        loss = ((w - target) ** 4).sum()
        loss.backward()
        return loss

    opt = optimlab.Sophia([w], update_interval=5, **kw)
    opt.step(closure)
    opt.state[w]["step"].fill_(float(start_step))
    calls = 0
    for _ in range(40):
        opt.step(closure)
    return calls - 40, opt.state[w]["step"]


@pytest.mark.parametrize("path", ["fused", "plain"])
def test_sophia_estimates_the_hessian_on_schedule_past_2_to_24(path):
    kw = {} if path == "fused" else {"fused": False}
    early, _ = _sophia_run(1000, **kw)
    late, counter = _sophia_run(2**24 - 10, **kw)
    assert early == late == 8
    assert counter.dtype == torch.float64 and float(counter) == 2**24 + 30


@pytest.mark.parametrize("cls, kw", [
    (optimlab.SOAP, {"precondition_frequency": 2, "lr": 1e-2}),
    (optimlab.Shampoo, {"precondition_frequency": 2, "start_preconditioning_step": 1}),
    (optimlab.Sophia, {"update_interval": 2}),
    (optimlab.Sophia, {"update_interval": 2, "fused": False}),
], ids=["SOAP", "Shampoo", "Sophia", "Sophia-plain"])
def test_exact_counters_resume_from_a_float32_checkpoint(cls, kw):
    """A checkpoint with a float32 step (as earlier versions wrote it) loads as float64 and
    resumes bit for bit as the run that was not interrupted."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(4, 3, generator=gen)
    target = torch.randn(4, 3, generator=gen)

    def run(opt, w, steps):
        def closure():
            w.grad = None
            loss = ((w - target) ** 4).sum()
            loss.backward()
            return loss
        for _ in range(steps):
            if cls is optimlab.Sophia:
                opt.step(closure)
            else:
                closure()
                opt.step()

    w = start.clone().requires_grad_()
    opt = cls([w], **kw)
    assert opt.state_dict()["state"] == {}
    run(opt, w, 5)
    assert opt.state[w]["step"].dtype == torch.float64
    saved = copy.deepcopy(opt.state_dict())
    for entries in saved["state"].values():
        entries["step"] = entries["step"].to(torch.float32)
    mid = w.detach().clone()
    run(opt, w, 6)
    resumed = mid.clone().requires_grad_()
    again = cls([resumed], **kw)
    again.load_state_dict(saved)
    assert again.state[resumed]["step"].dtype == torch.float64
    run(again, resumed, 6)
    assert torch.equal(resumed.detach(), w.detach())
    assert float(again.state[resumed]["step"]) == 11.0


@pytest.mark.parametrize("stepped", [False, True], ids=["fresh", "stepped"])
def test_a_soap_population_counts_exactly_and_resumes(stepped):
    """A SOAP population's counters are float64; a checkpoint whose counters are float32,
    as an earlier version saved them, loads into a fresh population, or one that has
    stepped (its own counters float64 already), and resumes as the one saved."""
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(2, 4, 3, generator=gen)
    grads = [torch.randn(2, 4, 3, generator=gen) for _ in range(6)]
    pop = Population("soap", [W], {"precondition_frequency": 2, "lr": [1e-2, 3e-3]})
    for g in grads[:3]:
        pop.step(grads=[g])
    saved = copy.deepcopy(pop.state_dict())
    steps = [st["step"] for member in saved["member_states"] for st in member["state"].values()]
    assert steps and all(s.dtype == torch.float64 and float(s) == 3.0 for s in steps)
    for member in saved["member_states"]:  # as an earlier version saved it
        for st in member["state"].values():
            st["step"] = st["step"].to(torch.float32)
    mid = W.clone()
    for g in grads[3:]:
        pop.step(grads=[g])
    other = mid.clone()
    again = Population("soap", [other], {"precondition_frequency": 2, "lr": [1e-2, 3e-3]})
    if stepped:
        again.step(grads=[grads[0]])  # its counters exist, float64
        other.copy_(mid)
    again.load_state_dict(saved)
    for g in grads[3:]:
        again.step(grads=[g])
    assert torch.equal(other, W)


# -- tensor betas: RAdam and NAdam on the plain path ----------------------------------------
def _beta_pair(kind, dtype):
    b1, b2 = 0.9, 0.999
    if dtype is None:
        return b1, b2
    return (torch.tensor(b1, dtype=dtype) if kind[0] == "t" else b1,
            torch.tensor(b2, dtype=dtype) if kind[1] == "t" else b2)


@pytest.mark.parametrize("path", ["plain", "multi"])
@pytest.mark.parametrize("lr", ["float", "tensor"])
@pytest.mark.parametrize("kind, beta_dtype", [
    ("ff", None), ("tt", torch.float32), ("ft", torch.float32), ("tf", torch.float32),
    ("tt", torch.float64), ("tf", torch.float64),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["RAdam", "NAdam"])
def test_tensor_betas_follow_torch_bit_for_bit(name, dtype, kind, beta_dtype, lr, path):
    Theirs, Ours, _ = COUNTED[name]
    betas = _beta_pair(kind, beta_dtype)
    rate = 0.01 if lr == "float" else torch.tensor(0.01)
    start = _big_params(dtype)
    for extra in ({}, {"weight_decay": 0.1, "decoupled_weight_decay": True}):
        t_params, o_params = _leaves(start), _leaves(start)
        t = Theirs(t_params, lr=rate, betas=betas, **extra)
        o = Ours(o_params, lr=rate, betas=betas, **extra, **PATHS[path])
        _steps(t, t_params, 0, 25)
        _steps(o, o_params, 0, 25)
        assert _same(o_params, t_params), extra


@pytest.mark.parametrize("name", ["RAdam", "NAdam"])
def test_tensor_betas_under_one_cycle_follow_torch(name):
    """OneCycleLR with ``cycle_momentum`` writes ``(float, tensor)`` betas where the
    optimizer was built with tensor betas."""
    Theirs, Ours, _ = COUNTED[name]
    start = _big_params()
    runs = []
    for cls, path in ((Theirs, {}), (Ours, PATHS["plain"]), (Ours, PATHS["multi"])):
        params = _leaves(start)
        opt = cls(params, lr=0.01, betas=(torch.tensor(0.9), torch.tensor(0.999)), **path)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=40)
        for k in range(30):
            for p, g in zip(params, _grads(params, k)):
                p.grad = g
            opt.step()
            sched.step()
        runs.append(params)
    assert _same(runs[1], runs[0])
    assert _same(runs[2], runs[0])
