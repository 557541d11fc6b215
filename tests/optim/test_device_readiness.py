"""What a step costs and refuses off the CPU, checked on a CPU-only machine.

Parameters on the ``meta`` device stand in for an accelerator's: a dispatch mode
(:class:`_DeviceCounter`) counts what would cross between host and device (a read of a device
tensor's value on the host, a host tensor copied to the device) and answers a read with a
dummy value, as the device has none. So a step that syncs with the device, or copies a table
to it, at every step shows here as a count above zero.

* ``state_precision="int8"`` copies its code tables to a device once, not at every step;
* a group on a device with an ``lr`` tensor there is not planned for the CPU's fused kernel
  (which read whether the ``lr`` was zero: one sync per group and step);
* ``skip_nonfinite`` reduces the gradients' finiteness flags per device, so parameters on
  several devices step;
* ``capturable`` and ``differentiable``, refused at True by the constructor, are refused too
  when a group gets them later (a load turns torch's ``capturable=True`` off with a warning),
  and a step inside a CUDA graph capture raises as torch's non-capturable optimizers do.
"""

from __future__ import annotations

import collections
import copy
import warnings

import pytest
import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode

import optimlab
from optimlab.optim import base, compact, engine, sophia

aten = torch.ops.aten


class _DeviceCounter(TorchDispatchMode):
    """Counts host reads of ``meta`` tensors and host-to-``meta`` copies while ``on``; a read
    gets a dummy value (True, 1 or 0.5), a copy to the host zeros."""

    def __init__(self) -> None:
        super().__init__()
        self.on = False
        self.count: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func._overloadpacket
        first = args[0] if args else None
        if packet is aten._local_scalar_dense and first.is_meta:
            self.count["read"] += self.on
            return True if first.dtype == torch.bool else 1 if not first.is_floating_point() else 0.5
        if packet is aten.equal and (args[0].is_meta or args[1].is_meta):
            self.count["read"] += self.on
            return True
        if packet is aten._to_copy and isinstance(first, torch.Tensor):
            device = kwargs.get("device")
            device = None if device is None else torch.device(device)
            if first.is_meta and device is not None and device.type == "cpu":
                self.count["read"] += self.on
                return torch.zeros(first.shape, dtype=kwargs.get("dtype") or first.dtype)
            if first.device.type == "cpu" and device is not None and device.type == "meta":
                self.count["copy"] += self.on
        if packet is aten.copy_ and isinstance(args[1], torch.Tensor):
            if first.is_meta and args[1].device.type == "cpu":
                self.count["copy"] += self.on
        return func(*args, **kwargs)


def _meta_params(count=4):
    return [torch.nn.Parameter(torch.empty(8, 300, device="meta")) for _ in range(count)]


def _run(build, params, steps=3, warmup=2):
    """The optimizer ``build(params)`` makes, and the counts of ``steps`` steps after
    ``warmup`` (the first makes the state, the second decodes a compact one)."""
    counter = _DeviceCounter()
    with counter:
        opt = build(params)  # its checks read an lr tensor's value once
        for i in range(warmup + steps):
            counter.on = i >= warmup
            for p in params:
                p.grad = torch.ones_like(p)
            opt.step()
    return opt, counter.count


@pytest.fixture
def multi_tensor(monkeypatch):
    """The multi-tensor path for ``meta`` parameters: their ``data_ptr()`` is 0, so the
    engine takes them for views of one tensor and steps them one by one."""
    monkeypatch.setattr(engine, "_overlapping", lambda params: [])


# -- state_precision="int8": tables copied to a device once ------------------------------------
@pytest.mark.parametrize("name", ["Adam", "RMSprop"])
def test_int8_state_copies_nothing_to_the_device_after_the_first_step(name):
    params = _meta_params()
    _, count = _run(lambda ps: getattr(optimlab, name)(ps, state_precision="int8"), params)
    assert count["copy"] == 0, count  # was 4 a parameter and step (2 moments, encode+decode)
    assert count["read"] == 0, count


@pytest.mark.parametrize("signed", [True, False])
def test_int8_tables_on_the_cpu_are_the_cached_ones(signed):
    """On the CPU the tables are :func:`compact.dynamic_code`'s own (bits as before), and a
    device's copy holds the same values."""
    cpu = torch.device("cpu")
    assert compact._table("code", signed, cpu) is compact.dynamic_code(signed)
    assert torch.equal(compact._table("midpoints", signed, cpu), compact._midpoints(signed))
    on_meta = compact._table("code", signed, torch.device("meta"))
    assert on_meta.is_meta and on_meta is compact._table("code", signed, torch.device("meta"))
    x = torch.randn(3, 700) * torch.logspace(-4, 1, 700)
    if not signed:
        x = x.abs()
    codes, scale = compact.encode(x, "int8", signed=signed, rows=3)
    back = compact.decode(codes, scale, "int8", signed=signed, dtype=torch.float32, rows=3)
    level = compact.dynamic_code(signed)[codes.long()]
    assert torch.equal(back, (compact._blocks(level.reshape(3, -1))
                              * scale[..., None]).reshape(3, -1)[:, :700])


# -- an lr tensor on the device: no fused planning, no sync -----------------------------------
@pytest.mark.parametrize("fused", [None, True])
def test_a_device_lr_tensor_costs_no_sync_per_step(multi_tensor, fused):
    params = _meta_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fused=True on a device: the plain path, said once
        opt, count = _run(lambda ps: optimlab.Adam(ps, lr=torch.tensor(1e-3, device="meta"),
                                                   fused=fused), params)
    assert count["read"] == 0, count  # was 1 a group and step: bool(lr == 0)
    assert not opt.engine.plans  # the fused kernel steps CPU tensors only


def test_a_cpu_group_is_still_fused_with_an_lr_tensor():
    params = [torch.nn.Parameter(torch.randn(5, 3)) for _ in range(3)]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opt = optimlab.Adam(params, lr=torch.tensor(1e-2, dtype=torch.float64))
    torch_opt = torch.optim.Adam(ref, lr=1e-2)
    for _ in range(3):
        for p, q in zip(params, ref):
            p.grad = torch.ones_like(p)
            q.grad = torch.ones_like(q)
        opt.step()
        torch_opt.step()
    (plan,) = opt.engine.plans.values()
    assert plan.batches and not plan.rest
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q)


# -- skip_nonfinite over several devices ------------------------------------------------------
@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_skip_nonfinite_steps_parameters_on_two_devices(name):
    cpu = torch.nn.Parameter(torch.zeros(3))
    device = torch.nn.Parameter(torch.zeros(3, device="meta"))
    opt, _ = _run(lambda ps: getattr(optimlab, name)(ps, lr=0.1, skip_nonfinite=True, fused=False),
                  [cpu, device], steps=1, warmup=1)  # raised: "Tensor on device meta is not on ... cpu"
    assert opt.skipped_steps == 0
    torch.testing.assert_close(cpu.detach(), torch.full((3,), -0.2))  # two steps of 0.1


def test_sophia_skip_nonfinite_steps_parameters_on_two_devices(monkeypatch):
    def probe(p, *, seed, index, step, distribution):  # a generator of the parameter's device
        return torch.ones(p.shape, dtype=p.dtype, device=p.device)

    monkeypatch.setattr(sophia, "probe", probe)
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3, device="meta"))]
    opt = optimlab.Sophia(params, lr=0.1, skip_nonfinite=True)

    def closure():
        for p in params:
            p.grad = torch.ones_like(p)
        return torch.zeros(())

    with _DeviceCounter():
        for _ in range(2):
            opt.step(closure)  # raised: the gradients' flags, then the estimates', on two devices
    assert opt.skipped_steps == 0 and opt.state[params[0]]["step"] == 2


def test_finiteness_flags_meet_on_the_accelerator():
    yes, no = torch.tensor(True), torch.tensor(False)
    assert base.all_true([]) is None
    assert not base.all_true([yes, no]) and base.all_true([yes, yes])
    assert base.all_true([yes, torch.tensor(True, device="meta"), no]).is_meta


def test_a_process_without_gradients_makes_its_flag_where_the_backend_reduces(monkeypatch):
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert base._reduction_device([object()], None) == torch.device("cuda", 1)
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "xccl")
    monkeypatch.setattr(torch.xpu, "current_device", lambda: 0)
    assert base._reduction_device([object()], None) == torch.device("xpu", 0)
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "gloo")
    assert base._reduction_device([object()], None) == torch.device("cpu")
    meta = torch.tensor(True, device="meta")
    assert base._reduction_device([object()], meta) == meta.device


def test_a_process_without_gradients_joins_the_gloo_reduction_on_the_cpu(process_group,
                                                                        monkeypatch):
    reduced = []
    all_reduce = dist.all_reduce

    def recorded(tensor, *args, **kwargs):
        reduced.append(tensor.device)
        return all_reduce(tensor, *args, **kwargs)

    monkeypatch.setattr(dist, "all_reduce", recorded)
    p = torch.nn.Parameter(torch.zeros(3))
    opt = optimlab.Adam([p], skip_nonfinite=dist.group.WORLD)
    opt.step()
    assert reduced == [torch.device("cpu")] and opt.skipped_steps == 0


# -- capturable and differentiable given after construction -----------------------------------
def _torch_checkpoint(p, **flags):
    ref = torch.optim.Adam([p], lr=0.1)
    for _ in range(2):
        p.grad = torch.ones_like(p)
        ref.step()
    saved = copy.deepcopy(ref.state_dict())
    saved["param_groups"][0].update(flags)
    return ref, saved


def test_a_torch_checkpoint_saved_capturable_loads_and_steps_the_same():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(4))
    q = torch.nn.Parameter(p.detach().clone())
    ref, saved = _torch_checkpoint(p)
    _, capturable = _torch_checkpoint(q, capturable=True)
    opt = optimlab.Adam([q], lr=0.1)
    with pytest.warns(UserWarning, match="host step counters.*same numbers"):
        opt.load_state_dict(capturable)
    assert opt.param_groups[0]["capturable"] is False
    assert capturable["param_groups"][0]["capturable"] is True  # the caller's dict as it was
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.load_state_dict(capturable)  # said once
    for _ in range(2):
        p.grad, q.grad = torch.ones(4), torch.ones(4)
        ref.step()
        opt.step()
    assert torch.equal(p, q)


def test_a_fresh_torch_checkpoint_saved_capturable_loads():
    p = torch.nn.Parameter(torch.zeros(3))
    saved = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], capturable=True).state_dict()
    opt = optimlab.Adam([p])
    with pytest.warns(UserWarning, match="capturable=False"):
        opt.load_state_dict(saved)
    p.grad = torch.ones(3)
    opt.step()


def test_a_checkpoint_saved_differentiable_is_refused():
    p = torch.nn.Parameter(torch.zeros(3))
    _, saved = _torch_checkpoint(torch.nn.Parameter(torch.zeros(3)), differentiable=True)
    opt = optimlab.Adam([p])
    with pytest.raises(ValueError, match="param group 0 of this state_dict has differentiable=True"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["differentiable"] is False and not opt.state


@pytest.mark.parametrize("name, flag", [("Adam", "capturable"), ("Adam", "differentiable"),
                                        ("SGD", "differentiable")])  # torch's SGD: no capturable
def test_a_group_given_a_torch_flag_later_is_refused_at_the_step(name, flag):
    p = torch.nn.Parameter(torch.zeros(3))
    opt = getattr(optimlab, name)([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    opt.param_groups[0][flag] = True
    with pytest.raises(ValueError, match=rf"param group 0: {name}\({flag}=True\) is not supported"):
        opt.step()
    torch.testing.assert_close(p.detach(), torch.full((3,), -0.1))  # not stepped again
    opt.param_groups[0][flag] = False
    opt.step()


@pytest.fixture
def cuda_asked_again():
    """Whether CUDA is here is asked once per process (:func:`base._cuda_here`): asked again
    for a test that pretends, and after it."""
    base._cuda_here.cache_clear()
    yield
    base._cuda_here.cache_clear()


@pytest.fixture
def capturing(monkeypatch, cuda_asked_again):
    """A CUDA stream capturing a graph, as far as the checks can tell."""
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)


@pytest.mark.parametrize("name", ["Adam", "SGD", "Lion"])
def test_a_step_under_cuda_graph_capture_is_refused(name, capturing):
    p = torch.nn.Parameter(torch.zeros(3))
    opt = getattr(optimlab, name)([p], lr=0.1)
    p.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match=f"graph capture of step\\(\\) for an instance of {name}, "
                                           "which is not capturable"):
        opt.step()
    assert torch.equal(p.detach(), torch.zeros(3)) and not opt.state


def test_a_sophia_step_under_cuda_graph_capture_is_refused(capturing):
    p = torch.nn.Parameter(torch.zeros(3))
    opt = optimlab.Sophia([p])

    def closure():
        p.grad = torch.ones(3)
        return torch.zeros(())

    with pytest.raises(RuntimeError, match="not capturable"):
        opt.step(closure)
    assert torch.equal(p.detach(), torch.zeros(3))


def test_the_capture_check_is_asked_only_where_cuda_is(monkeypatch, cuda_asked_again):
    asked = []
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: asked.append(1))
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    p = torch.nn.Parameter(torch.zeros(3))
    opt = optimlab.Adam([p])
    p.grad = torch.ones(3)
    opt.step()
    assert not asked
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    base._cuda_here.cache_clear()  # a process that has CUDA
    opt.step()  # not capturing: steps
    assert asked and opt.state[p]["step"] == 2
    # inside torch.compile's tracing the check is left to the compiled code, as torch's is
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    asked.clear()
    opt.step()
    assert not asked
