"""The one engine: the multi-tensor plain path, the capability records, the module graph.

The multi-tensor path must (1) dispatch a number of operations that does not depend on how
many tensors a group has, (2) give the very bits the rule gives tensor by tensor, and (3) keep
the state a user or a checkpoint sees as ordinary per-parameter tensors.
"""

from __future__ import annotations

import ast
import copy
import pathlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import optimlab
from optimlab.optim import multi_tensor
from optimlab.optim.base import RuleOptimizer
from optimlab.optim.capabilities import BATCHING, DRIVER_FLAGS, Capabilities, hyperparameters
from optimlab.optim.multi_tensor import Layout, TensorList
from optimlab.optim.rule import Counters, advance, nonzero, recording_branches, scalar_step
from tests.graphs import find_cycle
from tests.optim.cases import ALL_CASES
from tests.problems import train_steps

OPTIM = pathlib.Path(optimlab.__file__).parent / "optim"

#: cases whose rule runs over a whole group at once
MULTI_CASES = [c for c in ALL_CASES
               if getattr(optimlab, c.cls_name).capabilities.multi_tensor
               and not getattr(optimlab, c.cls_name).capabilities.wraps]


def _plain(case, params, **extra):
    caps = getattr(optimlab, case.cls_name).capabilities
    return case.build(params, **({"fused": False} if caps.fusable else {}), **extra)


def _descend(opt, params, steps=1):
    """``steps`` steps of ``opt`` on the sum of squares of ``params``."""
    for _ in range(steps):
        opt.zero_grad()
        sum((p.abs() ** 2).sum() for p in params).backward()
        opt.step()


def _train(case, shapes, dtype, foreach, steps=30, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
              for s in shapes]
    opt = _plain(case, params, foreach=foreach) if "foreach" in _signature(case) \
        else _plain(case, params)
    train_steps(opt, params, steps, -1.0 if case.maximize else 1.0, case.needs_closure,
                loss=lambda ps: sum(((p - 0.3) ** 2).sum() + 0.1 * (p**4).sum() for p in ps))
    return params, opt


def _signature(case):
    import inspect

    return inspect.signature(getattr(optimlab, case.cls_name).__init__).parameters


class _Count(TorchDispatchMode):
    """aten operations touching a tensor of ``numel`` elements, views left out."""

    def __init__(self, numel):
        super().__init__()
        self.numel, self.ops = numel, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view and not func.__name__.startswith(("split", "unbind", "detach")):
            leaves = tree_flatten((args, kwargs, out))[0]
            if any(isinstance(t, torch.Tensor) and t.numel() >= self.numel for t in leaves):
                self.ops += 1
        return out


def _ops_per_step(case, n_tensors, numel=48):
    params = [torch.randn(numel, requires_grad=True) for _ in range(n_tensors)]
    opt = _plain(case, params)
    sign = -1.0 if case.maximize else 1.0
    for _ in range(3):
        opt.zero_grad()
        (sign * sum((p * p).sum() for p in params)).backward()
        if _ == 2:
            counter = _Count(numel)
            with counter:
                opt.step()
            return counter.ops
        opt.step()


# (a closure optimizer's step evaluates the model too, whose ops grow with the tensors)
@pytest.mark.parametrize("case", [c for c in MULTI_CASES if not c.needs_closure],
                         ids=lambda c: c.id)
def test_the_ops_dispatched_per_step_do_not_grow_with_the_tensors(case):
    few, many = _ops_per_step(case, 3), _ops_per_step(case, 40)
    assert few > 0
    assert many <= 1.5 * few, f"{few} ops for 3 tensors, {many} for 40"


@pytest.mark.parametrize("case", MULTI_CASES, ids=lambda c: c.id)
def test_no_operation_falls_back_to_a_loop(case):
    multi_tensor.FALLBACKS.clear()
    _train(case, [(3, 4), (5,), (2, 2, 2)], torch.float64, None, steps=3)
    assert not multi_tensor.FALLBACKS, dict(multi_tensor.FALLBACKS)


SHAPES = [(3, 4), (5,), (), (1,), (7, 1, 2), (33,)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", MULTI_CASES, ids=lambda c: c.id)
def test_the_group_at_once_gives_the_bits_of_tensor_by_tensor(case, dtype):
    together, _ = _train(case, SHAPES, dtype, None)
    apart, _ = _train(case, SHAPES, dtype, False)
    for a, b in zip(together, apart):
        assert torch.equal(a, b), (a - b).abs().max()


def test_a_tensor_added_later_steps_with_its_own_count():
    """Parameters whose step counters differ are batched apart, each with its own count."""
    a = torch.randn(4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    ref_a, ref_b = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    opt = optimlab.Adam([a], lr=0.1, fused=False)
    ref = torch.optim.Adam([ref_a], lr=0.1, foreach=False)
    for step in range(6):
        if step == 3:
            opt.param_groups[0]["params"].append(b)
            ref.param_groups[0]["params"].append(ref_b)
        for o, ps in ((opt, (a, b)), (ref, (ref_a, ref_b))):
            o.zero_grad()
            sum((p**2).sum() for p in ps).backward()
            o.step()
    assert torch.equal(a, ref_a) and torch.equal(b, ref_b)
    assert opt.state[a]["step"].item() == 6 and opt.state[b]["step"].item() == 3


def test_state_stays_per_parameter_and_edits_to_it_are_seen():
    params = [torch.randn(3, 2, requires_grad=True), torch.randn(5, requires_grad=True)]
    opt = optimlab.Adam(params, lr=0.1, fused=False)
    _descend(opt, params, 2)
    m = opt.state[params[1]]["exp_avg"]
    assert m.shape == (5,)
    # an edit in place and a replaced tensor are both what the next step reads
    m.zero_()
    opt.state[params[0]]["exp_avg"] = torch.full((3, 2), 7.0)
    twin = [p.detach().clone().requires_grad_() for p in params]
    ref = torch.optim.Adam(twin, lr=0.1)
    ref.load_state_dict(copy.deepcopy(opt.state_dict()))
    for o, ps in ((opt, params), (ref, twin)):
        _descend(o, ps)
    for p, q in zip(params, twin):
        assert torch.equal(p, q)


def test_lists_behave_like_the_tensor_they_stand_for():
    xs = [torch.randn(3, 2, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
    ys = [torch.rand(3, 2, dtype=torch.float64) + 0.5, torch.rand(4, dtype=torch.float64) + 0.5]
    x, y = TensorList(xs), TensorList(ys, layout=Layout.of(xs))
    c = torch.tensor(0.7, dtype=torch.float64)
    checks = {
        "arith": (lambda a, b: 2.0 - a * b / 3.0 + (-a) ** 2),
        "lerp": (lambda a, b: torch.lerp(a, b, 0.3)),
        "addcmul": (lambda a, b: torch.addcmul(a, a, b, value=0.5)),
        "addcdiv": (lambda a, b: torch.addcdiv(a, a, b, value=-0.1)),
        "max/where": (lambda a, b: torch.where(a > 0, torch.maximum(a, b), b.sqrt())),
        "0-d tensor": (lambda a, b: c * a - c + 1.0 / b),
        "clamp/sign": (lambda a, b: torch.clamp(a, -0.5, 0.5) + a.sign() * b.abs()),
    }
    for name, fn in checks.items():
        got = fn(x, y).items
        for i in range(2):
            assert torch.equal(got[i], fn(xs[i], ys[i])), name
    norms = torch.linalg.vector_norm(x)
    assert norms.scalars and len(norms) == 2
    scaled = (norms * x).items
    for i in range(2):
        assert torch.equal(scaled[i], torch.linalg.vector_norm(xs[i]) * xs[i])


def test_a_list_refuses_a_list_of_another_layout():
    x = TensorList([torch.ones(3), torch.ones(2)])
    y = TensorList([torch.ones(2), torch.ones(3)])
    with pytest.raises(ValueError, match="different layouts"):
        x + y


# -- capability records and hyperparameter kinds ----------------------------------------------
def test_every_optimizer_has_one_capability_record():
    for entry in optimlab.available():
        caps = entry.capabilities
        assert isinstance(caps, Capabilities)
        assert caps is entry.cls.capabilities is entry.info.capabilities
        assert caps.batching in BATCHING
        if caps.wraps:
            assert hasattr(entry.cls, "from_registry")
            assert entry.info.wrapper
        assert entry.info.needs_closure == caps.needs_closure


def test_capabilities_reject_an_unknown_batching():
    with pytest.raises(ValueError, match="batching"):
        Capabilities(batching="sometimes")


def test_hyperparameters_leave_out_driver_flags_and_running_state():
    for entry in optimlab.available():
        names = set(hyperparameters(entry.cls))
        assert not names & DRIVER_FLAGS
        assert not names & set(entry.capabilities.running)
    assert "k" not in hyperparameters(optimlab.ScheduleFreeAdamW)


def test_nothing_outside_the_records_checks_an_optimizers_name():
    """A decision on what an optimizer can do reads its record, never its name."""
    src = OPTIM.parent
    names = {e.name for e in optimlab.available()}
    offenders = []
    for path in src.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In))
                                                     for op in node.ops):
                for side in [node.left, *node.comparators]:
                    if isinstance(side, ast.Constant) and side.value in names:
                        offenders.append(f"{path.relative_to(src)}:{node.lineno}")
    assert not offenders, offenders


def test_recording_branches_reports_and_restores():
    seen = []
    with recording_branches(seen.append):
        nonzero(0.5)
        with recording_branches(lambda x: None):
            nonzero(1.0)
        nonzero(0.0)
    nonzero(2.0)
    assert seen == [0.5, 0.0]


def test_no_import_cycle_inside_optim():
    """The imports inside optimlab.optim form no cycle: those at the top of a module and
    those inside its functions alike (an import deferred into a function still makes the
    two modules depend on each other, as the palette and the registry once did)."""
    graph = {}
    for path in OPTIM.rglob("*.py"):
        module = ".".join(path.relative_to(OPTIM.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                deps.add(target)
                for alias in node.names:
                    deps.add(f"{target}.{alias.name}")
        graph[module] = deps
    modules = set(graph)
    graph = {m: {d for d in deps if d in modules and d != m} for m, deps in graph.items()}
    # a package's __init__ may import its own submodules (that is how it exports them)
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_non_contiguous_and_complex_parameters_step_with_the_group():
    def build(seed):
        gen = torch.Generator().manual_seed(seed)
        return [torch.randn(3, 4, generator=gen).t().detach().requires_grad_(),  # transposed
                torch.randn(5, generator=gen, dtype=torch.complex64).requires_grad_(),
                torch.randn(6, generator=gen).requires_grad_()]

    results = []
    for foreach in (None, False):
        params = build(0)
        opt = optimlab.Adam(params, lr=0.05, fused=False, foreach=foreach)
        _descend(opt, params, 5)
        results.append(params)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_a_state_tensor_taken_from_the_optimizer_follows_the_state():
    """As with torch.optim, state is updated in place: a reference keeps up."""
    params = [torch.randn(4, requires_grad=True), torch.randn(3, requires_grad=True)]
    opt = optimlab.Adam(params, lr=0.1, fused=False)
    _descend(opt, params, 2)
    taken = opt.state[params[0]]["exp_avg"]
    _descend(opt, params, 2)
    assert taken is opt.state[params[0]]["exp_avg"]
    assert opt.state[params[0]]["step"].item() == 4


def _state_tensors(opt):
    return [(p, key, value) for p, state in opt.state.items() for key, value in state.items()
            if torch.is_tensor(value)]


@pytest.mark.parametrize("foreach", [None, False], ids=["group", "per-tensor"])
@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_every_optimizers_state_tensors_are_updated_where_they_are(case, foreach):
    """torch.optim updates its state in place, so a tensor taken from ``opt.state`` reads
    the state of later steps. The rules are written as functions that return new tensors;
    the engine must keep the dict's objects (the per-tensor path put new ones in every
    step)."""
    if foreach is False and "foreach" not in _signature(case):
        pytest.skip("no foreach flag")
    if not issubclass(getattr(optimlab, case.cls_name), RuleOptimizer):
        pytest.skip("not stepped by the engine (L-BFGS rebinds its state as torch's does)")
    shapes = [(3, 4), (5, 2)] if foreach is None else [(3, 4)]
    params, opt = _train(case, shapes, torch.float64, foreach, steps=2)
    held = _state_tensors(opt)
    if not held:
        pytest.skip("no state tensor to hold")
    train_steps(opt, params, 2, -1.0 if case.maximize else 1.0, case.needs_closure,
                loss=lambda ps: sum(((p - 0.3) ** 2).sum() for p in ps))
    for p, key, value in held:
        assert opt.state[p].get(key) is value, key


def _skip_one_gradient(opt, params):
    params[1].grad = None  # this step's plan leaves it out; the next step's takes it back


def _add_a_group(opt, params):
    extra = torch.ones(5, dtype=torch.float64, requires_grad=True)
    extra.grad = torch.ones_like(extra)
    opt.add_param_group({"params": [extra]})


def _replace_an_entry(opt, params):
    state = opt.state[params[1]]
    state["exp_avg_sq"] = state["exp_avg_sq"].clone()


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("event", [_skip_one_gradient, _add_a_group, _replace_an_entry],
                         ids=lambda f: f.__name__)
def test_a_state_tensor_taken_from_the_optimizer_follows_the_state_across_a_new_plan(event,
                                                                                        fused):
    """A missing gradient, a new group or an edited entry makes the group's batches anew;
    tensors taken from ``opt.state`` before must still be the live state afterwards, as
    torch.optim's are (an audit found a held ``step`` reading 2 against a live 4)."""
    runs = []
    for cls, hp in ((optimlab.Adam, {"fused": fused}), (torch.optim.Adam, {})):
        params = [torch.linspace(-1, 1, 6, dtype=torch.float64).requires_grad_(),
                  torch.linspace(0, 2, 4, dtype=torch.float64).requires_grad_()]
        opt = cls(params, lr=0.1, **hp)
        held = []
        for t in range(6):
            for i, p in enumerate(params):
                p.grad = p.detach() * (i + 1) + t
            if t == 2:
                held = [(p, key, opt.state[p][key]) for p in params for key in opt.state[p]]
                event(opt, params)
            opt.step()
        for p, key, value in held:
            live = opt.state[p][key]
            assert value is live or (event is _replace_an_entry and p is params[1]
                                     and key == "exp_avg_sq"), (key, value, live)
        runs.append([value.clone() for _, _, value in held])
    for ours, theirs in zip(*runs):
        assert torch.equal(ours, theirs)


def test_plans_of_replaced_groups_are_dropped():
    """A checkpoint load replaces the param groups; their plans (and buffers) must go."""
    params = [torch.randn(4, requires_grad=True), torch.randn(3, requires_grad=True)]
    opt = optimlab.Adam(params, lr=0.1, fused=False)
    for _ in range(5):
        _descend(opt, params)
        opt.load_state_dict(opt.state_dict())
    engine = opt.engine
    assert len(engine.plans) + len(engine._multi) <= 2 * len(opt.param_groups)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_counters_count_as_advance_does(dtype):
    """The fused member plan's counters (NumPy views) keep advance's convention: the
    state's own 0-d tensor, counted in its dtype, read back as the new count."""
    big = 2.0 ** 24  # float32 stops counting exactly here, as torch's float32 counter does
    ours = [{"step": torch.tensor(v, dtype=dtype)} for v in (0.0, 5.0, big)]
    theirs = copy.deepcopy(ours)
    tensors = [s["step"] for s in ours]
    counters = Counters(ours)
    for _ in range(3):
        assert counters.advance() == [advance(s) for s in theirs]
    assert [s["step"] for s in ours] == tensors  # the same tensors, counted in place
    assert all(torch.equal(a["step"], b["step"]) and a["step"].dtype == dtype
               for a, b in zip(ours, theirs))


def test_counters_refuse_states_without_a_cpu_counter():
    with pytest.raises(ValueError, match="0-d CPU step"):
        Counters([{"step": scalar_step()}, {"exp_avg": torch.zeros(2)}])
    with pytest.raises(ValueError, match="0-d CPU step"):
        Counters([{"step": torch.zeros(3)}])


# -- edits between steps that a plan must see (fused and multi-tensor alike) -----------------
_EDITED = [("SGD", {"lr": 0.1, "momentum": 0.9}), ("Adam", {"lr": 0.1}),
           ("RMSprop", {"lr": 0.01, "momentum": 0.5})]


def _edited_run(cls, hp, edit, steps=6, at=3):
    """``steps`` steps of ``cls`` on two tensors with fixed gradients, ``edit(opt, params)``
    applied before step ``at``; the parameters and the state_dict's state after."""
    params = [torch.zeros(1000, dtype=torch.float64, requires_grad=True),
              torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)]
    opt = cls(params, **hp)
    for t in range(steps):
        if t == at:
            edit(opt, params)
        for i, p in enumerate(params):
            p.grad = torch.full_like(p, t + 1.0 + i)
        opt.step()
    return [p.detach() for p in params], opt.state_dict()["state"]


def _rebind_storage(opt, params):
    # code that moves an optimizer between devices does this: same tensor, new storage
    for state in opt.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                value.data = value.data.clone()


def _clear(opt, params):
    opt.state.clear()


def _maximize(opt, params):
    opt.param_groups[0]["maximize"] = True


def _restart_one_count(opt, params):
    # restart one tensor's bias correction in place: the multi-tensor path read the first
    # tensor's count for the whole batch (its plan was split by count only when built)
    state = opt.state[params[1]]
    if "step" in state:
        state["step"].zero_()


_EDITS = [_rebind_storage, _clear, _maximize, _restart_one_count]


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("edit", _EDITS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("name, hp", _EDITED + [("NAdam", {"lr": 0.1}), ("RAdam", {"lr": 0.1}),
                                                ("Adamax", {"lr": 0.1})],
                         ids=[n for n, _ in _EDITED] + ["NAdam", "RAdam", "Adamax"])
def test_an_edit_between_steps_is_followed_as_torch_follows_it(name, hp, edit, fused):
    """A kept plan holds the state's views and raw addresses and the kernel chosen for
    ``maximize``: a cleared state, a state tensor given new storage (``v.data = ...``), or
    ``maximize`` switched must each make a new plan, and nothing may be written to freed
    memory. The very bits of torch.optim's own step, and its checkpoint."""
    ours, our_state = _edited_run(getattr(optimlab, name), {**hp, "fused": fused}, edit)
    theirs, their_state = _edited_run(getattr(torch.optim, name), hp, edit)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    assert our_state.keys() == their_state.keys()
    for pid, entries in their_state.items():
        assert our_state[pid].keys() == entries.keys()
        for key, value in entries.items():
            assert torch.equal(our_state[pid][key], value), (pid, key)


def test_a_numpy_learning_rate_from_a_scheduler_does_not_compile_a_kernel_a_step():
    """``LambdaLR`` returning ``np.float32`` writes NumPy scalars into the group; the fused
    kernel reads a Python number as a value, so the step must see one (a NumPy scalar would
    be taken for structure and compiled anew on every step), and the numbers are those of
    the same rates given as Python floats."""
    import numpy as np

    from optimlab.optim import kernels

    def run(rates=None):
        w = torch.zeros(50, dtype=torch.float64, requires_grad=True)
        opt = optimlab.Adam([w], lr=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: np.float32(0.9) ** e)
        seen = []
        for t in range(6):
            if rates is not None:
                opt.param_groups[0]["lr"] = rates[t]
            seen.append(opt.param_groups[0]["lr"])
            w.grad = torch.full_like(w, 1.0 + t)
            opt.step()
            sched.step()
        return w.detach(), seen

    compiled = len(kernels._KERNELS)
    ours, seen = run()
    assert len(kernels._KERNELS) <= compiled + 1  # Adam's kernel, if no test compiled it yet
    assert all(isinstance(rate, np.float32) for rate in seen[1:])
    reference, _ = run([float(rate) for rate in seen])
    assert torch.equal(ours, reference)


@pytest.mark.parametrize("name", ["ASGD", "Adam", "SGD"])
def test_parameters_that_overlap_in_memory_step_as_torchs_for_loop(name):
    """Two parameters that are overlapping views of one tensor: the batched rule wrote one's
    result where the other still read its old value (ASGD 0.049 off torch's for-loop); they
    now step one by one on the multi-tensor path, bit-identical to foreach=False and to
    torch's for-loop (the same operations on the same tensors, rounded alike on any CPU)."""
    import optimlab

    def run(make):
        torch.manual_seed(0)
        base = torch.randn(6, 4)
        params = [torch.nn.Parameter(base[:, ::2]), torch.nn.Parameter(base[1:3]),
                  torch.nn.Parameter(torch.randn(5))]  # and one of its own, batched
        opt = make(params)
        for i in range(4):
            torch.manual_seed(100 + i)
            for p in params:
                p.grad = torch.randn(p.shape)
            opt.step()
        return base, params[2].detach()

    kwargs = {"lr": 0.01} if name != "SGD" else {"lr": 0.01, "momentum": 0.9}
    multi = run(lambda ps: getattr(optimlab, name)(ps, fused=False, **kwargs))
    loop = run(lambda ps: getattr(optimlab, name)(ps, fused=False, foreach=False, **kwargs))
    reference = run(lambda ps: getattr(torch.optim, name)(ps, foreach=False, **kwargs))
    for a, b, c in zip(multi, loop, reference):
        assert torch.equal(a, b) and torch.equal(a, c)
