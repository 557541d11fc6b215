"""The fused fast path (optimlab.optim.kernels): parity with the plain path, the switch, fallbacks.

Every other optimizer test runs with the default ``fused=None``, which leaves their small test
problems to the plain path; the parity test here ties the kernel (``fused=True``) to the plain
path (``fused=False``) for every case of the capability table, so both stay checked against
torch and the oracles.

float32 parity is not a fixed tolerance: torch's CPU kernels are compiled per instruction set
(AVX2, AVX-512) and round differently in places, so a bound tuned on one machine fails on
another. Each float32 check instead measures how far the plain path is from the exact result
on this machine and requires the fused path to be about as close (see
:func:`assert_as_accurate_as_plain`).
"""

import functools
import math
import warnings

import pytest
import torch

import optimlab
from optimlab.optim import kernels
from optimlab.optim.base import RuleOptimizer
from optimlab.optim.capabilities import Capabilities
from optimlab.optim.kernels import build
from optimlab.optim.population import Population
from tests.optim.cases import ALL_CASES
from tests.problems import (
    assert_as_accurate_as,
    assert_params_close,
    loss_fn,
    make_params,
    run_torch,
    train_steps,
)

FUSED_CASES = [c for c in ALL_CASES if getattr(optimlab, c.cls_name).capabilities.fusable]
FUSED_CLASSES = sorted({c.cls_name for c in FUSED_CASES})

# -- parity within rounding ------------------------------------------------------------------
# Both paths round every operation to the working precision once: the C code is compiled
# without fast-math and with -ffp-contract=off, and torch's kernels are correctly rounded per
# operation, though an ISA-specific kernel may fuse a multiply-add where another does not.
# Over many steps each path's rounding is amplified by the same dynamics, so the two paths end
# up at the same distance from the exact result, not at a fixed distance from each other. The
# exact result is stood in for by the plain path in float64: its rounding (1e-16) amplified
# the same way stays about 1e9 times below float32's, so it measures each run's float32
# error, not its own.
#
# One run's error is one sample of a spread-out quantity where the dynamics amplify rounding
# strongly: in centered RMSprop with momentum, the plain float32 run started one ulp above or
# below the same point ends 1.7e-6 and 2.8e-5 from the exact result on one tensor (torch's
# scalar kernels, ATEN_CPU_CAPABILITY=default). So where it matters (the 100-step parity test)
# the plain error is the largest over the plain run and those two nudged runs: a difference
# of one ulp is what a single different rounding makes.
# The bound itself (ROUNDING_FACTOR times the plain error plus FLOOR_ULPS ulps) is shared with
# the float32 parity against torch: see tests/problems.py.


def assert_as_accurate_as_plain(fused, plain, exact, nudged=()):
    """The fused run is within ``ROUNDING_FACTOR`` times the plain run's error (plus a floor
    of ``FLOOR_ULPS`` ulps) of ``exact``, the plain path's float64 result, tensor by tensor
    (:func:`tests.problems.assert_as_accurate_as`). ``nudged`` are more plain runs, started
    one ulp away: the plain error is the largest of them all."""
    assert_as_accurate_as(fused, [plain, *nudged], exact, ("fused run", "plain run"))


def test_every_elementwise_optimizer_has_a_fused_path():
    expected = {"SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam",
                "RAdam", "Lion", "AdaBelief", "ScheduleFreeAdamW", "LAMB", "ASGD", "Rprop",
                # issue 15
                "Signum", "Yogi", "ADOPT", "AdEMAMix", "LARS", "ScheduleFreeSGD", "LaProp",
                "NovoGrad", "MARS", "Sophia"}
    assert expected <= set(FUSED_CLASSES)
    # the rules that reduce over whole matrices or read step sizes on the host do not
    assert not optimlab.Adafactor.capabilities.fusable
    assert not optimlab.Muon.capabilities.fusable


_CASES_BY_ID = {c.id: c for c in FUSED_CASES}


@functools.lru_cache(maxsize=None)
def _parity_run(case_id: str, fused: bool, dtype: torch.dtype, nudge: int = 0) -> tuple:
    """100 steps of a parity case (the float64 plain run serves both dtypes' tests), started
    ``nudge`` ulps (-1, 0 or 1) away from the problem's starting point."""
    case = _CASES_BY_ID[case_id]
    params = make_params(dtype, case.shapes)
    if nudge:
        with torch.no_grad():
            for p in params:
                p.copy_(torch.nextafter(p, torch.full_like(p, math.copysign(math.inf, nudge))))
    train_steps(case.build(params, fused=fused), params, 100, -1.0 if case.maximize else 1.0,
                use_closure=case.needs_closure)
    return tuple(p.detach().clone() for p in params)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", FUSED_CASES, ids=lambda c: c.id)
def test_fused_matches_plain(case, dtype):
    """100 steps fused (required) and plain agree: float64 to 1e-10; float32 as accurately as
    the plain path on this machine (see :func:`assert_as_accurate_as_plain`)."""
    fused = _parity_run(case.id, True, dtype)
    start = make_params(dtype, case.shapes)
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(fused, start)), "did not move"
    if dtype == torch.float64:
        assert_params_close(fused, _parity_run(case.id, False, dtype), 1e-10)
    else:
        assert_as_accurate_as_plain(fused, _parity_run(case.id, False, dtype),
                                    _parity_run(case.id, False, torch.float64),
                                    [_parity_run(case.id, False, dtype, n) for n in (1, -1)])


def test_fused_path_is_the_default_and_really_runs(monkeypatch):
    calls = []
    original = kernels.Kernel.call_addresses

    def spy(self, addresses, *rest):
        calls.append(addresses[0])  # the number of tensors
        return original(self, addresses, *rest)

    monkeypatch.setattr(kernels.Kernel, "call_addresses", spy)
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

    def torch_sgd(dtype):
        return run_torch(lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), 6, dtype)

    assert_as_accurate_as_plain([p.detach() for p in params], torch_sgd(torch.float32),
                                torch_sgd(torch.float64))


def test_complex_parameters_are_fused_through_their_real_view():
    torch.manual_seed(0)
    start = torch.randn(5, 3, dtype=torch.complex64)
    runs = []
    for fused, dtype in ((True, torch.complex64), (False, torch.complex64),
                         (False, torch.complex128)):
        z = start.to(dtype, copy=True).requires_grad_()
        opt = optimlab.Adam([z], lr=0.05, fused=fused)
        for _ in range(20):
            opt.zero_grad()
            (z.abs() ** 2).sum().backward()
            opt.step()
        runs.append([z.detach()])
    assert_as_accurate_as_plain(*runs)


def test_mixed_groups_fuse_what_can_be_fused():
    """float32, float64, bfloat16 and a non-contiguous tensor in one optimizer."""
    torch.manual_seed(0)
    tensors = [torch.randn(4, 3), torch.randn(6, dtype=torch.float64),
               torch.randn(5, dtype=torch.bfloat16), torch.randn(3, 4).t()]
    results = []
    for fused, exact in ((None, False), (False, False), (False, True)):
        ps = [(t.to(torch.float64, copy=True) if exact else t.clone()).requires_grad_()
              for t in tensors]
        opt = optimlab.AdamW(ps, lr=0.1, fused=fused)
        for _ in range(10):
            for p in ps:
                p.grad = torch.sin(p.detach())  # same strides as p: non-contiguous for the last
            opt.step()
        assert not ps[3].is_contiguous() and not ps[3].grad.is_contiguous()
        results.append([p.detach() for p in ps])
    fused, plain, _ = results
    torch.testing.assert_close(fused[1], plain[1], rtol=1e-10, atol=1e-10)  # the float64 one
    others = [0, 2, 3]
    assert_as_accurate_as_plain(*[[run[i] for i in others] for run in results])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_true_steps_half_precision_on_the_plain_path_as_torch_takes_it(dtype):
    """torch's ``fused=True`` takes float16 and bfloat16 CPU tensors (and any accelerator's):
    code written for it runs, the tensors stepped on the plain path, with a warning."""
    torch.optim.Adam([torch.zeros(3, dtype=dtype, requires_grad=True)], fused=True)
    half = torch.linspace(-1, 1, 5, dtype=dtype).requires_grad_()
    twin = half.detach().clone().requires_grad_()
    with pytest.warns(UserWarning, match=rf"Adam\(fused=True\).*{dtype}.*plain multi-tensor path"):
        fused = optimlab.Adam([half], fused=True, lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = optimlab.Adam([twin], lr=0.1)  # fused=None: no warning
    for _ in range(3):
        half.grad = torch.ones_like(half)
        twin.grad = torch.ones_like(twin)
        fused.step()
        plain.step()
    assert torch.equal(half, twin)
    opt = optimlab.Adam([torch.zeros(3, requires_grad=True)], fused=True)
    with pytest.warns(UserWarning, match="plain multi-tensor path"):
        opt.add_param_group({"params": [torch.zeros(2, dtype=dtype, requires_grad=True)]})


def test_fused_true_refuses_what_it_cannot_fuse():
    with pytest.raises(ValueError, match=r"fused=True\) steps floating-point tensors"):
        optimlab.Adam([torch.zeros(3, dtype=torch.int64)], fused=True)
    for module in (optimlab, torch.optim):  # torch's error type, for code that catches it
        with pytest.raises(RuntimeError, match="cannot be `True` together"):
            module.Adam([torch.zeros(3, requires_grad=True)], fused=True, foreach=True)
    with pytest.raises(ValueError, match="fused must be None, True or False"):
        optimlab.Adam([torch.zeros(3, requires_grad=True)], fused="yes")
    # a non-contiguous parameter is only found at step time
    w = torch.zeros(3, 4).t().requires_grad_()
    opt = optimlab.Adam([w], fused=True)
    w.grad = torch.ones(4, 3)
    with pytest.raises(RuntimeError, match=r"cannot fuse 1 parameter.*\. The first is parameter 0 "
                                           r"of those stepped in its group, shape \(4, 3\), "
                                           r"strides \(1, 4\), float32; fused=None \(the "
                                           r"default\) steps what cannot be fused"):
        opt.step()
    # fused=None takes the plain path for the same tensor
    opt = optimlab.Adam([w], lr=0.1)
    opt.step()
    assert torch.allclose(w, torch.full((4, 3), -0.1))


def test_a_transposed_gradient_is_fused_from_a_contiguous_copy():
    runs = []
    for fused, dtype in ((True, torch.float32), (False, torch.float32), (False, torch.float64)):
        w = torch.arange(12.0, dtype=dtype).reshape(4, 3).requires_grad_()
        opt = optimlab.Adam([w], lr=0.1, fused=fused)
        for _ in range(3):
            w.grad = torch.sin(w.detach()).t().contiguous().t()  # same shape, other strides
            assert not w.grad.is_contiguous()
            opt.step()
        runs.append([w.detach()])
    assert_as_accurate_as_plain(*runs)


class _Tanh(RuleOptimizer):
    """A rule with an operation the code generator does not know (tanh)."""

    capabilities = Capabilities(fusable=True)

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
        assert list(opt.engine.refused.values())[0].startswith("the fused optimizer step needs")
        expected = run_torch(lambda ps: torch.optim.RAdam(ps, lr=0.01), 3, torch.float32)
        # the plain path runs torch's operations in torch's order: bit for bit
        assert all(torch.equal(a, b) for a, b in zip(params, expected, strict=True))
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


def test_generated_sources_are_kept_so_a_warm_process_does_not_trace(monkeypatch, tmp_path):
    """The C source generated from a rule is kept beside the builds: a new process (here: the
    in-memory kernels forgotten) finds it and does not trace the rule again (tracing imports
    torch._inductor and torch._dynamo, 1.5 s); a damaged file is traced again."""
    monkeypatch.setenv("OPTIMLAB_CACHE", str(tmp_path))
    calls = []
    real_trace = kernels.trace_rule
    monkeypatch.setattr(kernels, "trace_rule", lambda *a: calls.append(1) or real_trace(*a))
    params = make_params(torch.float64)
    expected = run_torch(lambda ps: torch.optim.Adamax(ps, lr=0.01), 2, torch.float64)

    def run() -> int:
        """Two fused Adamax steps in a fresh 'process'; how many rules were traced."""
        monkeypatch.setattr(kernels, "_KERNELS", {})
        monkeypatch.setattr(build, "_LOADED", {})
        calls.clear()
        ps = [p.detach().clone().requires_grad_() for p in params]
        train_steps(optimlab.Adamax(ps, lr=0.01, fused=True), ps, 2)
        assert_params_close(ps, expected, 1e-12)  # the kept source steps as the traced one
        return len(calls)

    assert run() == 1  # a cold cache: traced, kept
    kept = list((tmp_path / "kernel-sources").glob("*.json"))
    assert len(kept) == 1 and "optimlab_step" in kept[0].read_text()
    assert run() == 0  # warm: read back
    kept[0].write_text("{not json")
    assert run() == 1  # damaged: traced again and rewritten
    assert run() == 0


def test_only_the_librarys_own_rules_are_kept(monkeypatch):
    layout = kernels.Layout(vector=(), scalar=(), step=False)

    def local_rule(p, g, state, step, lr):
        return p - lr * g

    assert kernels._identity(local_rule, torch.float32, layout, {"lr": 0.1}, ["lr"],
                             frozenset(), False) is None
    adam = optimlab.Adam.update
    one = kernels._identity(adam, torch.float32, layout, {"lr": 0.1, "amsgrad": False},
                            ["lr"], frozenset(), False)
    assert one and one == kernels._identity(adam, torch.float32, layout,
                                            {"lr": 0.5, "amsgrad": False}, ["lr"],
                                            frozenset(), False)  # numbers are inputs
    assert one != kernels._identity(adam, torch.float32, layout, {"lr": 0.1, "amsgrad": True},
                                    ["lr"], frozenset(), False)
    assert one != kernels._identity(adam, torch.float64, layout, {"lr": 0.1, "amsgrad": False},
                                    ["lr"], frozenset(), False)


def test_the_cache_key_names_the_cpu(monkeypatch, tmp_path):
    """-march=native builds for one instruction set: a cache folder shared by machines (a
    network home) keeps one library per CPU and never loads another machine's."""
    identity = build.cpu_identity()
    assert identity == build.cpu_identity() and len(identity) == 16  # computed once, a hash
    source = ("#include <stdint.h>\nint optimlab_step(int64_t nt, const int64_t *n, "
              "void *const *p, const double *i, double *o, int t) { return 7; }\n")
    keys = {}
    monkeypatch.setenv("OPTIMLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(build, "_LOADED", {})
    for cpu in ("avx2-machine", "avx512-machine", "avx2-machine"):
        monkeypatch.setattr(build, "cpu_identity", lambda cpu=cpu: cpu)
        keys.setdefault(cpu, build.cache_key(source))
        assert build.cache_key(source) == keys[cpu]
        assert build.load(source)(0, None, None, None, None, 1) == 7
    assert keys["avx2-machine"] != keys["avx512-machine"]
    built = sorted(f.name for f in (tmp_path / "kernels").glob("step-*.so"))
    assert built == sorted(f"step-{key}.so" for key in keys.values())


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
    for fused, dtype in ((True, torch.float32), (False, torch.float32), (False, torch.float64)):
        ps = [t.to(dtype, copy=True).requires_grad_() for t in tensors]
        opt = optimlab.LAMB(ps, lr=0.01, weight_decay=0.01, fused=fused)
        for _ in range(5):
            for p in ps:
                p.grad = torch.sin(p.detach() * 3)
            opt.step()
        runs.append([p.detach() for p in ps])
    assert_as_accurate_as_plain(*runs)


@pytest.mark.parametrize("name, scale", [("lars", 1e30), ("lars", 1e-40), ("lamb", 1e-40),
                                         ("mars", 1e30)])
def test_whole_tensor_norms_hold_over_float32s_range(name, scale):
    """LARS's, LAMB's and MARS's norms sum their squares in float64 on every path: in float32
    the squares of 1e30 overflow and those of 1e-40 vanish, and the plain path took no step
    at all (a trust ratio of 0 or 1 times a vanishing update, a clip by an infinite norm)
    where the fused kernel, which sums in double, stepped as float64 does."""
    torch.manual_seed(0)
    start = [torch.randn(6, 4), torch.randn(5)]
    grads = [torch.randn(3, *t.shape) * scale for t in start]  # float32: 1e-40 is subnormal

    def run(dtype, fused=None, members=0):
        ps = [(t.expand(members, *t.shape) if members else t).to(dtype, copy=True)
              for t in start]
        if members:
            opt = optimlab.Population(name, ps, {"lr": [0.1] * members, "fused": fused})
        else:
            ps = [p.requires_grad_() for p in ps]
            opt = optimlab.create(name, ps, lr=0.1, fused=fused)
        for step in range(3):
            for p, g in zip(ps, grads):
                p.grad = g[step].to(dtype).expand_as(p).clone()
            opt.step()
        out = [p.detach()[0] if members else p.detach() for p in ps]
        moved = [bool((o.double() != t.double()).any()) for o, t in zip(out, start)]
        assert all(moved), f"{name} with fused={fused}, members={members}: no step"
        return out

    exact = run(torch.float64, fused=False)
    fused, plain = run(torch.float32, fused=True), run(torch.float32, fused=False)
    population = run(torch.float32, fused=False, members=2)
    assert_as_accurate_as(plain, [fused], exact, ("plain run", "fused run"))
    assert_as_accurate_as(population, [fused], exact, ("population's plain run", "fused run"))
    assert_as_accurate_as_plain(fused, plain, exact)


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
    assert source.count("#pragma omp parallel") == 1  # one pass


def _thread_shares(source: str, sizes: list[int], threads: int, tmp_path) -> list[int]:
    """The elements each of ``threads`` threads steps in a call over tensors of ``sizes``:
    the generated ``first_chunk`` compiled into a harness that prints each thread's range of
    chunks, checked here to be contiguous and to cover every chunk once."""
    import subprocess

    chunk = kernels.CHUNK
    lengths = [min(chunk, n - s) for n in sizes for s in range(0, n, chunk)]
    before = [0]
    for n in lengths:
        before.append(before[-1] + n)
    helper = source[source.index("static int64_t first_chunk"):source.index("int optimlab_step")]
    harness = tmp_path / "shares.c"
    harness.write_text("#include <stdint.h>\n#include <stdio.h>\n" + helper + f"""
int main(void) {{
    static const int64_t before[] = {{{", ".join(map(str, before))}}};
    const int64_t n = {len(lengths)}, nth = {threads};
    for (int64_t id = 0; id < nth; ++id)
        printf("%lld %lld\\n", (long long)first_chunk(before, n, nth, id),
               (long long)first_chunk(before, n, nth, id + 1));
    return 0;
}}""")
    cc, _ = build.compiler()
    subprocess.run([cc, "-O1", str(harness), "-o", str(tmp_path / "shares")], check=True)
    out = subprocess.run([str(tmp_path / "shares")], capture_output=True, text=True, check=True)
    ranges = [tuple(map(int, line.split())) for line in out.stdout.splitlines()]
    assert ranges[0][0] == 0 and ranges[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous, each chunk once
    return [before[hi] - before[lo] for lo, hi in ranges]


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_threads_share_the_elements_not_the_chunk_count(threads, tmp_path):
    """A population's member slices are one chunk each: 64 slices of the MNIST-1D MLP's
    parameters, last layer first, as the member plan orders them. Split by chunk count one of
    2 threads got 93% of the elements; split by elements each gets its fair share within
    one chunk. A tensor larger than a chunk is cut into chunks that threads share alike."""
    p = torch.zeros(4)
    layout = kernels.Layout.of(optimlab.optim.adam.init(p), p)
    hp = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
              decoupled_weight_decay=False)
    try:
        source = kernels.kernel(optimlab.optim.adam.update, torch.float32, layout, hp).source
    except kernels.CompilerUnavailable:
        pytest.skip("no C compiler")
    for sizes in ([n for n in (10, 1000, 100, 10000, 100, 4000) for _ in range(64)],
                  [3_000_000, 7, 500_000]):
        shares = _thread_shares(source, sizes, threads, tmp_path)
        assert sum(shares) == sum(sizes)
        # each thread starts at the first chunk at or past its 1/nth mark: its share is
        # within one chunk of the fair one
        assert all(abs(share - sum(sizes) / threads) <= kernels.CHUNK for share in shares), \
            shares


def test_fused_none_fuses_groups_of_any_size(monkeypatch):
    # the call costs less than the plain path's operations even on a 2-number tensor
    # (benchmarks/small_step.py), so the default takes the kernel whatever the size
    calls = []
    original = kernels.Kernel.call_addresses
    monkeypatch.setattr(kernels.Kernel, "call_addresses",
                        lambda self, addresses, *rest: calls.append(addresses[0])
                        or original(self, addresses, *rest))
    for shape in ((2,), (10, 10), (40, 40)):
        for fused, expected in ((None, [1]), (True, [1]), (False, [])):
            calls.clear()
            param = torch.zeros(shape, requires_grad=True)
            param.grad = torch.ones_like(param)
            optimlab.Adam([param], fused=fused).step()
            assert calls == expected, (shape, fused)


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
    for fused, dtype in ((None, torch.float32), (False, torch.float32), (False, torch.float64)):
        ps = [t.to(dtype, copy=True) for t in start]
        pop = optimlab.Population(name, ps, {**hparams, "fused": fused})
        for _ in range(20):
            for p in ps:
                p.grad = torch.sin(3 * p)
            pop.step()
        runs.append(ps)
        kinds.append(pop._plan is not None)
    assert kinds == [True, False, False]
    assert_as_accurate_as_plain(*runs)


def test_population_fused_flag_is_the_optimizers(monkeypatch):
    """``fused`` in a population's hyperparameters means what it means to the optimizer:
    False never calls the kernel, True calls it or raises where it cannot."""
    calls = []
    original = kernels.Kernel.call_addresses

    def counted(self, *args):
        calls.append(1)
        return original(self, *args)

    def run(fused, params):
        calls.clear()
        pop = Population("adam", params, {"lr": [0.1, 0.2], "fused": fused})
        for _ in range(3):
            pop.step(grads=[torch.ones_like(p) for p in params])
        return len(calls)

    monkeypatch.setattr(kernels.Kernel, "call_addresses", counted)
    assert run(None, [torch.zeros(2, 5, 3)]) == 3
    assert run(True, [torch.zeros(2, 5, 3)]) == 3
    assert run(False, [torch.zeros(2, 5, 3)]) == 0
    with pytest.raises(RuntimeError, match=r"Adam\(fused=True\) cannot step this "
                                           r"population fused"):
        run(True, [torch.zeros(2, 5, 3).transpose(1, 2)])  # not contiguous
    assert run(None, [torch.zeros(2, 5, 3).transpose(1, 2)]) == 0  # the plain path


@pytest.mark.parametrize("name", ["adam", "lamb"])
def test_population_plan_steps_the_last_parameter_first_with_the_same_numbers(name, monkeypatch):
    """The member plan's kernel rows start with the last parameter (the first layer's weights
    are then the freshest in cache for the next forward); the order changes no number."""
    from optimlab.optim import engine

    torch.manual_seed(0)
    start = [torch.randn(3, 7, 5), torch.randn(3, 11), torch.randn(3, 4)]
    runs = []
    for reversed_ in (True, False):
        monkeypatch.setattr(engine._MemberPlan, "REVERSED", reversed_)
        ps = [t.clone() for t in start]
        pop = Population(name, ps, {"lr": [0.01, 0.02, 0.05]})
        for _ in range(5):
            pop.step(grads=[torch.sin(3 * p) for p in ps])
        rows = pop._plan.launch.ptrs_np[:, 0]  # each row's parameter address
        order = ps[::-1] if reversed_ else ps
        assert list(rows[::3]) == [p.data_ptr() for p in order]  # 3 member rows each
        runs.append(ps)
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_population_plan_follows_schedules_and_state_changes():
    """The prepared fused step is rebuilt when hyperparameters or state tensors change."""
    torch.manual_seed(0)
    start = torch.randn(4, 2)
    runs = []
    for refuse, dtype in ((False, torch.float32), (True, torch.float32), (True, torch.float64)):
        p = start.to(dtype, copy=True)
        pop = optimlab.Population("adam", [p], {"lr": [0.1, 0.2, 0.3, 0.4],
                                                "fused": False if refuse else None})
        for step in range(30):
            if step == 10:
                pop.set_hparam("lr", [0.01, 0.02, 0.03, 0.04])
            if step == 20:  # state replaced from outside (a reload): the plan must follow
                pop.state[0]["exp_avg"] = pop.state[0]["exp_avg"].clone() * 0.5
            pop.step(grads=[torch.cos(3 * p)])
        assert (pop._plan is None) == refuse  # the fused run planned, the plain one did not
        runs.append([p])
    assert_as_accurate_as_plain(*runs)


@pytest.mark.parametrize("name", ["adam", "nadam", "lamb", "asgd"])
def test_fused_plan_survives_state_dict_and_storage_changes(name):
    """The prepared plan turns 0-d state into views of one buffer; saving, loading and moving
    a parameter's storage must all behave as on the plain path."""
    import copy

    def run(fused, interrupt, dtype=torch.float32):
        params = make_params(dtype)
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
    exact, _ = run(False, False, torch.float64)
    resumed, opt = run(True, True)
    assert opt.engine.plans  # the fused path ran
    step = opt.state[resumed[0]].get("step")
    assert step is None or float(step) == 20
    assert_as_accurate_as_plain([p.detach() for p in resumed], [p.detach() for p in plain],
                                [p.detach() for p in exact])


def test_a_gradient_turning_sparse_moves_its_parameter_to_the_plain_path():
    runs = []
    for fused, dtype in ((None, torch.float32), (False, torch.float32), (False, torch.float64)):
        params = [torch.ones(6, 4, dtype=dtype, requires_grad=True),
                  torch.ones(5, dtype=dtype, requires_grad=True)]
        opt = optimlab.Adagrad(params, lr=0.1, fused=fused)
        for step in range(8):
            dense = torch.full((6, 4), 0.5 + step, dtype=dtype)
            params[0].grad = dense.to_sparse() if step >= 4 else dense
            params[1].grad = torch.full((5,), -1.0 - step, dtype=dtype)
            opt.step()
        runs.append([p.detach().clone() for p in params])
    assert_as_accurate_as_plain(*runs)


def test_a_step_smaller_than_one_chunk_runs_on_the_calling_thread(monkeypatch):
    """Waking OpenMP workers for a few numbers cost more than the step; the thread count
    never changes the result, so small launches ask for one thread, big ones for torch's."""
    seen = []
    original = kernels.Kernel.call_addresses

    def spy(self, addresses, threads=None):
        seen.append((addresses[0], threads))
        return original(self, addresses, threads)

    monkeypatch.setattr(kernels.Kernel, "call_addresses", spy)
    for n in (10, kernels.SMALL_STEP):  # one tensor of n numbers each
        p = torch.zeros(n, requires_grad=True)
        opt = optimlab.Adam([p], lr=0.1, fused=True)
        p.grad = torch.ones_like(p)
        opt.step()
    assert seen == [(1, 1), (1, None)]


def test_a_refused_structure_is_traced_once(monkeypatch):
    """SGD with momentum creates its buffer on the first step, so that step's structure has
    no kernel; the refusal is remembered like a kernel (a race met it on every request)."""
    monkeypatch.setattr(kernels, "_KERNELS", {})
    traced = []
    original = kernels.trace_rule
    monkeypatch.setattr(kernels, "trace_rule", lambda *a, **k: traced.append(1) or original(*a, **k))
    monkeypatch.setattr(kernels, "_cached_source", lambda identity: None)  # trace every kernel
    monkeypatch.setattr(kernels, "_keep_source", lambda *a: None)
    for _ in range(3):
        pop = Population("sgd", [torch.zeros(2, 3)], {"lr": [0.1, 0.2], "momentum": 0.9})
        for _ in range(2):
            pop.step(grads=[torch.ones(2, 3)])
    refused = [v for v in kernels._KERNELS.values() if isinstance(v, kernels.Unsupported)]
    assert len(refused) == 1 and isinstance(refused[0], kernels.StateNotReady)
    assert len(traced) == 2  # the refused first step, and the kernel of the steps after it
    with pytest.raises(kernels.StateNotReady):  # asked again: the same refusal, not a trace
        pop.engine.kernel(torch.float32, kernels.Layout(vector=(), scalar=(), step=False,
                                                        none=("momentum_buffer",),
                                                        scalar_dtypes=()),
                          {"lr": 0.1, "momentum": 0.9, "dampening": 0, "weight_decay": 0,
                           "nesterov": False}, False)
    assert len(traced) == 2


def _shared_memory_params(kind: str, n: int = 4000) -> list[torch.nn.Parameter]:
    buf = torch.linspace(-2, 2, 2 * n, dtype=torch.float64)
    if kind == "view":  # two parameters, one memory
        return [torch.nn.Parameter(buf), torch.nn.Parameter(buf.view(2 * n // 40, 40))]
    # partly overlapping slices, and a third parameter apart from them
    return [torch.nn.Parameter(buf[: n + n // 2]), torch.nn.Parameter(buf[n // 2: n + n // 4]),
            torch.nn.Parameter(torch.linspace(-1, 1, 30, dtype=torch.float64))]


@pytest.mark.parametrize("kind", ["view", "slices"])
@pytest.mark.parametrize("name", ["Adam", "LAMB", "ScheduleFreeAdamW"])
def test_parameters_sharing_memory_step_one_at_a_time(name, kind, monkeypatch):
    """The kernel steps its tensors concurrently (and declares them ``restrict``): views of
    one memory step on the plain path, one by one in order, as torch's for-loop steps them,
    with fused=True too; the others still fuse."""
    stepped = []
    original = kernels.Kernel.call_addresses
    monkeypatch.setattr(kernels.Kernel, "call_addresses",
                        lambda self, a, *r: stepped.append(a[0]) or original(self, a, *r))
    results, apart = [], []
    for fused in (True, None, False):
        params = _shared_memory_params(kind)
        opt = getattr(optimlab, name)(params, lr=0.01, fused=fused)
        for step in range(4):
            for i, p in enumerate(params):
                p.grad = torch.cos(torch.arange(p.numel(), dtype=torch.float64) * (i + 1)
                                   + step).view(p.shape)
            opt.step()
        results.append(torch.cat([p.detach().flatten() for p in params[:2]]))
        apart.append(params[-1].detach())
    assert torch.equal(results[0], results[2]) and torch.equal(results[1], results[2])
    for other in apart[:2]:  # fused where it stands apart: LAMB's norms may round apart
        torch.testing.assert_close(other, apart[2], rtol=1e-12, atol=1e-12)
    assert stepped == ([1] * 8 if kind == "slices" else [])  # the third parameter alone
    if name == "Adam":  # the plain path is torch's
        params = _shared_memory_params(kind)
        opt = torch.optim.Adam(params, lr=0.01, foreach=False)
        for step in range(4):
            for i, p in enumerate(params):
                p.grad = torch.cos(torch.arange(p.numel(), dtype=torch.float64) * (i + 1)
                                   + step).view(p.shape)
            opt.step()
        assert torch.equal(results[0], torch.cat([p.detach().flatten() for p in params[:2]]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_zero_dim_parameters_fuse(dtype, monkeypatch):
    """A 0-d parameter's moments are 0-d too: parameter-shaped state of one element, not
    scalar state (torch.optim.Adam(fused=True) takes 0-d parameters as well)."""
    stepped = []
    original = kernels.Kernel.call_addresses
    monkeypatch.setattr(kernels.Kernel, "call_addresses",
                        lambda self, a, *r: stepped.append(a[0]) or original(self, a, *r))
    def run(mode, dtype):
        params = [torch.tensor(1.5, dtype=dtype, requires_grad=True),
                  torch.tensor(-0.25, dtype=dtype, requires_grad=True)]
        opt = (torch.optim.Adam(params, lr=0.1, weight_decay=0.01, foreach=False)
               if mode == "torch" else
               optimlab.Adam(params, lr=0.1, weight_decay=0.01, fused=mode))
        for step in range(5):
            for i, p in enumerate(params):
                p.grad = torch.tensor(0.5 - 0.3 * step + i, dtype=dtype)
            opt.step()
        return torch.stack([p.detach() for p in params])

    results = {mode: run(mode, dtype) for mode in (True, None, False, "torch")}
    assert stepped == [2] * 10  # fused=True and fused=None: one kernel call a step
    if dtype == torch.float64:
        assert torch.equal(results[True], results["torch"])
        assert torch.equal(results[None], results["torch"])
    else:  # as accurate as torch's float32 run, against torch's float64 one (the bound above)
        exact = run("torch", torch.float64)
        for mode in (True, None):
            assert_as_accurate_as([results[mode]], [[results["torch"]]], [exact],
                                  ("fused run", "torch run"))
    assert torch.equal(results[False], results["torch"])


def test_a_failed_build_is_remembered_and_its_source_not_kept(monkeypatch, tmp_path):
    """A source the compiler rejects is not kept for the next process, and the next
    optimizer of the process does not run the compiler again just to fail."""
    monkeypatch.setenv("OPTIMLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels, "_KERNELS", {})
    builds = []

    def failing_load(source, *rest):
        builds.append(source)
        raise build.BuildFailed("cc could not build a fused optimizer kernel")

    monkeypatch.setattr(kernels, "load", failing_load)
    for _ in range(3):
        params = make_params(torch.float64)
        opt = optimlab.Adamax(params, lr=0.01)
        train_steps(opt, params, 2)  # the plain path, no error
        assert list(opt.engine.refused.values())[0].startswith("cc could not build")
    assert len(builds) == 1
    assert not list(tmp_path.rglob("*.json"))
    with pytest.raises(RuntimeError, match="could not build"):
        train_steps(optimlab.Adamax(params, lr=0.01, fused=True), params, 1)
    assert len(builds) == 1


def test_a_float32_tensor_lr_on_float64_parameters_keeps_torchs_rounding(monkeypatch):
    """torch rounds what a float32 ``lr`` tensor gives (``lr * weight_decay``, the step
    size) in float32; the kernel computes hyperparameters in float64, so such a group
    steps on the plain path (fused=True warns), bit for bit torch's."""
    results = {}
    for mode in (None, True, False, "torch"):
        torch.manual_seed(1)
        p = torch.randn(300, dtype=torch.float64, requires_grad=True)
        kw = dict(lr=torch.tensor(0.0123), weight_decay=0.1)
        if mode == "torch":
            opt = torch.optim.AdamW([p], foreach=False, **kw)
        elif mode is True:
            with pytest.warns(UserWarning, match=r"AdamW\(fused=True\).*torch.float32 tensor"):
                opt = optimlab.AdamW([p], fused=True, **kw)
                p.grad = torch.sin(p.detach())
                opt.step()
        else:
            opt = optimlab.AdamW([p], fused=mode, **kw)
        for _ in range(6 - (mode is True)):
            p.grad = torch.sin(p.detach())
            opt.step()
        results[mode] = p.detach()
    for mode in (None, True, False):
        assert torch.equal(results[mode], results["torch"]), mode
    # a float64 tensor (or a float32 one on float32 parameters) still fuses
    stepped = []
    original = kernels.Kernel.call_addresses
    monkeypatch.setattr(kernels.Kernel, "call_addresses",
                        lambda self, a, *r: stepped.append(a[0]) or original(self, a, *r))
    for dtype in (torch.float64, torch.float32):
        p = torch.ones(5, dtype=dtype, requires_grad=True)
        opt = optimlab.AdamW([p], lr=torch.tensor(0.01, dtype=dtype), fused=True)
        p.grad = torch.ones_like(p)
        opt.step()
    assert stepped == [1, 1]


def test_norms_are_summed_in_fixed_lanes_not_an_omp_reduction():
    """``omp simd reduction`` splits a sum into as many lanes as the CPU's vector registers
    hold (-march=native), so LAMB's norms would round differently on AVX2 and AVX-512: the
    loop adds into a fixed number of partial sums, combined in a fixed order."""
    from optimlab.optim import lamb

    p = torch.zeros(4)
    layout = kernels.Layout.of(lamb.init(p), p)
    opt = optimlab.LAMB([torch.zeros(3, requires_grad=True)])
    hp = {k: v for k, v in opt.param_groups[0].items() if k not in ("params",)}
    for dtype in (torch.float32, torch.float64):
        source = kernels.kernel(lamb.update, dtype, layout, hp).source
        assert "reduction(" not in source
        assert f"[{kernels.codegen.LANES}] = {{0}}" in source


def test_views_one_contiguous_one_not_step_in_the_groups_order():
    """A contiguous view A and a transposed view B of one tensor: B (which the kernel cannot
    take) stepped before A, where torch's loop steps A first; with weight decay the
    results differed by 0.024."""
    def run(build):
        base = torch.arange(16.0, dtype=torch.float64).reshape(4, 4) / 10
        params = [base[:2].requires_grad_(), base.t().requires_grad_()]
        opt = build(params)
        gen = torch.Generator().manual_seed(0)
        for _ in range(3):
            for p in params:
                p.grad = torch.randn(p.shape, dtype=torch.float64, generator=gen)
            opt.step()
        return base

    want = run(lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=0.5, foreach=False))
    for fused in (None, False):
        got = run(lambda ps: optimlab.AdamW(ps, lr=0.1, weight_decay=0.5, fused=fused))
        assert torch.equal(got, want), fused


@pytest.mark.parametrize("fused", [None, False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_asgd_steps_a_0d_parameter_as_torch_does(fused, dtype):
    """A 0-d parameter's state looks like ASGD's per-tensor scalars (eta, mu) to the kernel:
    fused=True failed at its first step, after the groups before it had stepped; it steps
    on the plain path instead. There its 0-d scalars met the 0-d parameter and promoted a
    float32 parameter and average to float64 (two 0-d tensors promote to the wider), where
    torch rounds its Python float to the parameter's dtype: now bit-identical to torch."""
    ours = [torch.nn.Parameter(torch.ones(3, dtype=dtype)),
            torch.nn.Parameter(torch.tensor(1.3, dtype=dtype))]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt = optimlab.ASGD([{"params": ours[:1]}, {"params": ours[1:]}], lr=0.1, t0=2, lambd=0.01,
                        fused=fused)
    ref = torch.optim.ASGD([{"params": theirs[:1]}, {"params": theirs[1:]}], lr=0.1, t0=2,
                           lambd=0.01)
    for i in range(6):
        for p, q in zip(ours, theirs):
            p.grad = torch.full_like(p, 0.7 + i)
            q.grad = p.grad.clone()
        opt.step()
        ref.step()
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)
        assert opt.state[p]["ax"].dtype == dtype
        assert torch.equal(opt.state[p]["ax"], ref.state[q]["ax"])


@pytest.mark.parametrize("fused", [True, None])
def test_a_fused_step_bumps_the_parameters_version_as_torch_does(fused):
    """The kernel writes through raw addresses, which autograd cannot see: a graph that
    saved a parameter before the step went on to backward through the new values silently.
    torch.optim's in-place step bumps the version counter, and that backward raises."""
    p = torch.randn(4, dtype=torch.float64, requires_grad=True)
    opt = optimlab.Adam([p], lr=0.1, fused=fused)
    (p * p).sum().backward()
    saved = (p * p).sum()  # saves p for its backward
    before = p._version
    opt.step()
    assert p._version > before
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.backward()


def test_a_population_fused_step_bumps_the_parameters_version():
    w = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    pop = Population("adam", [w], {"lr": [1e-3, 1e-2, 1e-1]})
    for _ in range(2):  # the plan is built on the first step and run on the second
        w.grad = torch.randn_like(w)
        before = w._version
        pop.step()
        assert w._version > before


def test_two_threads_stepping_one_optimizer_take_turns_in_the_kernel(monkeypatch):
    """The kernel runs without the GIL on addresses its plan holds; a second thread stepping
    the same optimizer replanned and rewrote them under a running kernel, which crashed the
    process (a segfault, or glibc's "corrupted double-linked list") in about half of the
    runs of 8 threads stepping one fused LAMB. The engine lets one fused step run at a
    time: here the kernel call sleeps (releasing the GIL), and no two calls overlap."""
    import threading
    import time

    from optimlab.optim.kernels import Kernel

    inside, most, guard = [0], [0], threading.Lock()
    real = Kernel.call_addresses

    def slow(self, addresses, threads=None):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.005)  # the GIL released, as a real kernel call releases it
        try:
            return real(self, addresses, threads)
        finally:
            with guard:
                inside[0] -= 1

    torch.manual_seed(0)
    params = [torch.randn(64, requires_grad=True), torch.randn(8, 8, requires_grad=True)]
    opt = optimlab.LAMB(params, lr=0.01, fused=True)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()  # the kernel built and the plan formed before the threads start
    monkeypatch.setattr(Kernel, "call_addresses", slow)
    errors = []

    def stepper():
        try:
            for _ in range(10):
                opt.step()
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=stepper) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert most[0] == 1
    assert int(opt.state[params[0]]["step"]) == 41  # every step taken, one after another
