"""The fused fast path (optimlab.optim.kernels): parity with the plain path, the switch, fallbacks.

Every other optimizer test runs with the default ``fused=None``, which leaves their small test
problems to the plain path; the parity test here ties the kernel (``fused=True``) to the plain
path (``fused=False``) for every case of the capability table, so both stay checked against
torch and the oracles.
"""

import pytest
import torch

import optimlab
from optimlab.optim import kernels
from optimlab.optim.base import RuleOptimizer
from optimlab.optim.kernels import build
from tests.optim.cases import ALL_CASES
from tests.problems import assert_params_close, loss_fn, make_params, run_torch, train_steps


@pytest.fixture(autouse=True)
def fuse_even_tiny_tensors(monkeypatch):
    """The test problems are small; fused=None would leave them to the plain path."""
    monkeypatch.setattr(kernels, "MIN_NUMEL", 0)


FUSED_CASES = [c for c in ALL_CASES if getattr(getattr(optimlab, c.cls_name), "supports_fused", False)]
FUSED_CLASSES = sorted({c.cls_name for c in FUSED_CASES})


def test_every_elementwise_optimizer_has_a_fused_path():
    expected = {"SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam",
                "RAdam", "Lion", "AdaBelief", "ScheduleFreeAdamW", "LAMB", "ASGD", "Rprop"}
    assert expected <= set(FUSED_CLASSES)
    # the rules that reduce over whole matrices or read step sizes on the host do not
    assert not optimlab.Adafactor.supports_fused and not optimlab.Muon.supports_fused


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("case", FUSED_CASES, ids=lambda c: c.id)
def test_fused_matches_plain(case, dtype, rtol):
    """100 steps fused (required) and plain agree (the issue's contract: float32 1e-5)."""
    fused = run_torch(lambda ps: case.build(ps, fused=True), 100, dtype, case.shapes,
                      maximize=case.maximize)
    plain = run_torch(lambda ps: case.build(ps, fused=False), 100, dtype, case.shapes,
                      maximize=case.maximize)
    start = make_params(dtype, case.shapes)
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(fused, start)), "did not move"
    assert_params_close(fused, plain, rtol)


def test_fused_path_is_the_default_and_really_runs(monkeypatch):
    calls = []
    original = kernels.Kernel.call

    def spy(self, ptrs, numel, scalars, out):
        calls.append(numel.numel())
        return original(self, ptrs, numel, scalars, out)

    monkeypatch.setattr(kernels.Kernel, "call", spy)
    params = make_params(torch.float32)
    opt = optimlab.Adam(params, lr=0.01)
    assert opt.param_groups[0]["fused"] is None
    train_steps(opt, params, 3)
    assert calls == [len(params)] * 3  # one kernel call steps every tensor
    calls.clear()
    train_steps(optimlab.Adam(params, lr=0.01, fused=False), params, 2)
    assert calls == []


def test_sgd_momentum_creates_its_buffer_on_a_plain_first_step():
    params = make_params(torch.float32)
    opt = optimlab.SGD(params, lr=0.05, momentum=0.9, fused=True)
    train_steps(opt, params, 1)
    assert all(opt.state[p]["momentum_buffer"] is not None for p in params)
    train_steps(opt, params, 5)  # fused from here on, no error
    expected = run_torch(lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), 6, torch.float32)
    assert_params_close(params, expected, 1e-6)


def test_complex_parameters_are_fused_through_their_real_view():
    torch.manual_seed(0)
    start = torch.randn(5, 3, dtype=torch.complex64)
    runs = []
    for fused in (True, False):
        z = start.clone().requires_grad_()
        opt = optimlab.Adam([z], lr=0.05, fused=fused)
        for _ in range(20):
            opt.zero_grad()
            (z.abs() ** 2).sum().backward()
            opt.step()
        runs.append(z.detach())
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-6, atol=1e-7)


def test_mixed_groups_fuse_what_can_be_fused():
    """float32, float64, bfloat16 and a non-contiguous tensor in one optimizer."""
    torch.manual_seed(0)
    tensors = [torch.randn(4, 3), torch.randn(6, dtype=torch.float64),
               torch.randn(5, dtype=torch.bfloat16), torch.randn(3, 4).t()]
    results = []
    for fused in (None, False):
        ps = [t.clone().requires_grad_() for t in tensors]
        opt = optimlab.AdamW(ps, lr=0.1, fused=fused)
        for _ in range(10):
            for p in ps:
                p.grad = torch.sin(p.detach())  # same strides as p: non-contiguous for the last
            opt.step()
        assert not ps[3].is_contiguous() and not ps[3].grad.is_contiguous()
        results.append([p.detach() for p in ps])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_fused_true_refuses_what_it_cannot_fuse():
    bf16 = torch.zeros(3, dtype=torch.bfloat16, requires_grad=True)
    with pytest.raises(ValueError, match="fused=True.*float32 and float64"):
        optimlab.Adam([bf16], fused=True)
    with pytest.raises(ValueError, match="cannot be `True` together"):
        optimlab.Adam([torch.zeros(3, requires_grad=True)], fused=True, foreach=True)
    with pytest.raises(ValueError, match="fused must be None, True or False"):
        optimlab.Adam([torch.zeros(3, requires_grad=True)], fused="yes")
    opt = optimlab.Adam([torch.zeros(3, requires_grad=True)], fused=True)
    with pytest.raises(ValueError, match="fused=True"):
        opt.add_param_group({"params": [bf16]})
    # a non-contiguous parameter is only found at step time
    w = torch.zeros(3, 4).t().requires_grad_()
    opt = optimlab.Adam([w], fused=True)
    w.grad = torch.ones(4, 3)
    with pytest.raises(RuntimeError, match="cannot fuse 1 parameter"):
        opt.step()
    # fused=None takes the plain path for the same tensor
    opt = optimlab.Adam([w], lr=0.1)
    opt.step()
    assert torch.allclose(w, torch.full((4, 3), -0.1))


def test_a_transposed_gradient_is_fused_from_a_contiguous_copy():
    runs = []
    for fused in (True, False):
        w = torch.arange(12.0).reshape(4, 3).requires_grad_()
        opt = optimlab.Adam([w], lr=0.1, fused=fused)
        for _ in range(3):
            w.grad = torch.sin(w.detach()).t().contiguous().t()  # same shape, other strides
            assert not w.grad.is_contiguous()
            opt.step()
        runs.append(w.detach())
    assert torch.equal(runs[0], runs[1])


class _Tanh(RuleOptimizer):
    """A rule with an operation the code generator does not know (tanh)."""

    supports_fused = True

    @staticmethod
    def init(p, **_):
        return {}

    @staticmethod
    def update(p, g, state, *, lr, **_):
        return p - lr * torch.tanh(g)

    def __init__(self, params, lr=0.1, *, fused=None):
        super().__init__(params, dict(lr=lr, fused=fused, maximize=False))


def test_an_unsupported_rule_falls_back_or_says_why():
    w = torch.ones(3, requires_grad=True)
    w.grad = torch.ones(3)
    _Tanh([w]).step()  # fused=None: the plain path, no error
    torch.testing.assert_close(w.detach(), torch.full((3,), 1 - 0.1 * torch.tanh(torch.tensor(1.0)).item()))
    opt = _Tanh([w], fused=True)
    with pytest.raises(RuntimeError, match="no C form for aten.tanh"):
        opt.step()


def test_no_compiler_means_plain_path_or_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("OPTIMLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(kernels, "_KERNELS", {})
    build.compiler.cache_clear()
    try:
        params = make_params(torch.float32)
        opt = optimlab.RAdam(params, lr=0.01)
        train_steps(opt, params, 3)  # falls back, remembers, keeps working
        assert list(opt._fused_refused.values())[0].startswith("the fused optimizer step needs")
        expected = run_torch(lambda ps: torch.optim.RAdam(ps, lr=0.01), 3, torch.float32)
        assert_params_close(params, expected, 1e-6)
        with pytest.raises(RuntimeError, match="needs a C compiler"):
            train_steps(optimlab.RAdam(params, lr=0.01, fused=True), params, 1)
    finally:
        build.compiler.cache_clear()


def test_kernels_are_cached_on_disk_and_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTIMLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels, "_KERNELS", {})
    monkeypatch.setattr(build, "_LOADED", {})
    params = make_params(torch.float64)
    train_steps(optimlab.Adamax(params, fused=True), params, 1)
    libraries = list((tmp_path / "kernels").glob("step-*.so"))
    assert len(libraries) == 1
    stamp = libraries[0].stat().st_mtime_ns
    monkeypatch.setattr(kernels, "_KERNELS", {})
    monkeypatch.setattr(build, "_LOADED", {})
    train_steps(optimlab.Adamax(params, fused=True), params, 1)
    assert [p.stat().st_mtime_ns for p in (tmp_path / "kernels").glob("step-*.so")] == [stamp]
    assert not list((tmp_path / "kernels").glob("*.c"))  # no build leftovers


def test_a_lr_schedule_does_not_rebuild_the_kernel(monkeypatch):
    monkeypatch.setattr(kernels, "_KERNELS", {})
    params = make_params(torch.float32)
    opt = optimlab.Adam(params, lr=0.1, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.0, total_iters=4)
    for _ in range(6):  # the lr reaches 0: still one kernel, lr is an input
        train_steps(opt, params, 1)
        sched.step()
    assert len(kernels._KERNELS) == 1
    # weight decay switched on is a different structure (the rule branches on it)
    opt.param_groups[0]["weight_decay"] = 0.01
    train_steps(opt, params, 1)
    assert len(kernels._KERNELS) == 2


def test_lamb_norms_are_per_tensor():
    """The two-pass kernel gives each tensor its own trust ratio (as the plain rule)."""
    torch.manual_seed(0)
    tensors = [torch.randn(40_000), torch.randn(3) * 100, torch.randn(70_001) * 1e-3]
    runs = []
    for fused in (True, False):
        ps = [t.clone().requires_grad_() for t in tensors]
        opt = optimlab.LAMB(ps, lr=0.01, weight_decay=0.01, fused=fused)
        for _ in range(5):
            for p in ps:
                p.grad = torch.sin(p.detach() * 3)
            opt.step()
        runs.append([p.detach() for p in ps])
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_generated_source_reads_each_input_once():
    """Adam's loop loads p, g, m, v once and stores p, m, v: the 28 bytes of the floor."""
    from optimlab.optim import adam

    p = torch.zeros(4)
    layout = kernels.Layout.of(adam.init(p), p)
    hp = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
              decoupled_weight_decay=False)
    source = kernels.kernel(adam.update, torch.float32, layout, hp).source
    loop = source[source.index("for (int64_t i = lo"):]
    loads = [line for line in loop.splitlines() if "= b" in line and "[i];" in line]
    stores = [line for line in loop.splitlines() if line.strip().startswith("b") and "[i] =" in line]
    assert len(loads) == 4 and len(stores) == 3
    assert source.count("#pragma omp parallel for") == 1  # one pass


def test_fused_none_leaves_small_groups_to_the_plain_path(monkeypatch):
    monkeypatch.setattr(kernels, "MIN_NUMEL", 1000)
    calls = []
    original = kernels.Kernel.call
    monkeypatch.setattr(kernels.Kernel, "call",
                        lambda self, p, n, s, o: calls.append(n.numel()) or original(self, p, n, s, o))
    small = [torch.zeros(10, 10, requires_grad=True)]
    big = [torch.zeros(40, 40, requires_grad=True)]
    for params, fused, expected in ((small, None, []), (small, True, [1]), (big, None, [1])):
        calls.clear()
        params[0].grad = torch.ones_like(params[0])
        optimlab.Adam(params, fused=fused).step()
        assert calls == expected


def test_training_with_the_fused_path_still_descends():
    params = make_params(torch.float32)
    start = loss_fn(params).item()
    train_steps(optimlab.Lion(params, lr=0.01), params, 50)
    assert loss_fn(params).item() < start


@pytest.mark.parametrize("name, hparams", [
    ("adam", {"lr": [0.01, 0.02, 0.05], "weight_decay": [0.0, 0.1, 0.0]}),
    ("momentum", {"lr": [0.01, 0.02, 0.05], "momentum": [0.0, 0.5, 0.9]}),
    ("lamb", {"lr": [0.01, 0.02, 0.05], "weight_decay": 0.01}),
])
def test_population_fused_matches_plain(name, hparams):
    """A population steps each member's slice as one kernel tensor with its own numbers."""
    torch.manual_seed(0)
    start = [torch.randn(3, 7, 5), torch.randn(3, 11)]
    runs, kinds = [], []
    for refuse in (False, True):
        ps = [t.clone() for t in start]
        pop = optimlab.Population(name, ps, hparams)
        pop._fused_refused = refuse
        for _ in range(20):
            for p in ps:
                p.grad = torch.sin(3 * p)
            pop.step()
        runs.append(ps)
        kinds.append(pop._fused_refused)
    assert kinds == [False, True]
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_population_plan_follows_schedules_and_state_changes():
    """The prepared fused step is rebuilt when hyperparameters or state tensors change."""
    torch.manual_seed(0)
    start = torch.randn(4, 2)
    runs = []
    for refuse in (False, True):
        p = start.clone()
        pop = optimlab.Population("adam", [p], {"lr": [0.1, 0.2, 0.3, 0.4]})
        pop._fused_refused = refuse
        for step in range(30):
            if step == 10:
                pop.set_hparam("lr", [0.01, 0.02, 0.03, 0.04])
            if step == 20:  # state replaced from outside (a reload): the plan must follow
                pop.state[0]["exp_avg"] = pop.state[0]["exp_avg"].clone() * 0.5
            pop.step(grads=[torch.cos(3 * p)])
        assert (pop._plan is None) == refuse  # the fused run planned, the plain one did not
        runs.append(p)
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["adam", "nadam", "lamb", "asgd"])
def test_fused_plan_survives_state_dict_and_storage_changes(name):
    """The prepared plan turns 0-d state into views of one buffer; saving, loading and moving
    a parameter's storage must all behave as on the plain path."""
    import copy

    def run(fused, interrupt):
        params = make_params(torch.float32)
        opt = optimlab.create(name, params, lr=0.01, fused=fused)
        train_steps(opt, params, 10)
        if interrupt:
            saved = copy.deepcopy(opt.state_dict())
            opt = optimlab.create(name, params, lr=0.01, fused=fused)
            opt.load_state_dict(saved)
            params[0].data = params[0].data.clone()  # new storage, same parameter object
        train_steps(opt, params, 10)
        return params, opt

    plain, _ = run(False, False)
    resumed, opt = run(True, True)
    assert opt._fused_plans  # the fused path ran
    step = opt.state[resumed[0]].get("step")
    assert step is None or float(step) == 20
    assert_params_close(resumed, plain, 1e-6)


def test_a_gradient_turning_sparse_moves_its_parameter_to_the_plain_path():
    runs = []
    for fused in (None, False):
        params = [torch.ones(6, 4, requires_grad=True), torch.ones(5, requires_grad=True)]
        opt = optimlab.Adagrad(params, lr=0.1, fused=fused)
        for step in range(8):
            dense = torch.full((6, 4), 0.5 + step)
            params[0].grad = dense.to_sparse() if step >= 4 else dense
            params[1].grad = torch.full((5,), -1.0 - step)
            opt.step()
        runs.append([p.detach().clone() for p in params])
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
