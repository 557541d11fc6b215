"""SAM's contract beyond the shared matrix: what it refuses up front, and what it says when a
closure is wrong, instead of failing inside its base optimizer later; and how the wrappers
(SAM, Lookahead) step their inner optimizer as one step, as torch's step hooks see it."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

import optimlab


def test_a_group_added_to_sam_is_checked_by_its_base_optimizer():
    weight, bias = torch.randn(3, 3, requires_grad=True), torch.randn(3, requires_grad=True)
    opt = optimlab.SAM([weight], base_optimizer=optimlab.Muon, lr=0.01)
    with pytest.raises(ValueError, match="Muon only optimizes real 2-D parameters"):
        opt.add_param_group({"params": [bias]})  # Muon alone refuses it the same way
    assert len(opt.param_groups) == 1
    opt = optimlab.SAM([weight], lr=0.01, rho=0.05)
    opt.add_param_group({"params": [bias], "lr": 0.1})
    assert opt.param_groups is opt.base_optimizer.param_groups
    assert opt.param_groups[1]["rho"] == 0.05 and opt.param_groups[1]["adaptive"] is False
    assert opt.param_groups[1]["momentum"] == 0  # the base optimizer's defaults filled in
    with pytest.raises(ValueError, match="rho"):
        opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "rho": -1.0})


@pytest.mark.parametrize("base", [torch.optim.LBFGS, optimlab.LBFGS, optimlab.Sophia])
def test_sam_refuses_a_base_optimizer_that_needs_a_closure(base):
    with pytest.raises(ValueError, match=f"SAM cannot wrap {base.__name__}: its step needs a "
                                         "closure"):
        optimlab.SAM([torch.zeros(2, requires_grad=True)], base_optimizer=base, lr=0.1)


@pytest.mark.parametrize("inner, why", [
    ("lbfgs", "its step needs a closure"), ("sam", "its step needs a closure"),
    ("sophia", "its step needs a closure"), ("sparseadam", "it takes sparse gradients only")])
def test_lookahead_refuses_an_inner_optimizer_it_cannot_step(inner, why):
    """Lookahead is stepped without a closure and on dense gradients (its record says so):
    over L-BFGS, SAM, Sophia or SparseAdam a race failed at the first step ("internal
    error"); the constructor now refuses them, naming the inner optimizer and why."""
    from optimlab.optim.registry import resolve

    w = torch.zeros(2, requires_grad=True)
    cls = resolve(inner).cls
    kwargs = {"base_optimizer": optimlab.SGD, "lr": 0.1} if inner == "sam" else {}
    with pytest.raises(ValueError, match=f"Lookahead cannot wrap {cls.__name__}: {why}"):
        optimlab.Lookahead(cls([w], **kwargs))
    with pytest.raises(ValueError, match=f"Lookahead cannot wrap {cls.__name__}: {why}"):
        optimlab.create("lookahead", [w], inner=inner)  # the registry's path, as a race's
    with pytest.raises(ValueError, match=f"Lookahead cannot wrap {cls.__name__}: {why}"):
        optimlab.race("rosenbrock", {"lookahead": {"inner": inner}}, steps=2)


def test_sam_refuses_a_sparse_only_base_optimizer():
    w = torch.zeros(2, requires_grad=True)
    match = "SAM cannot wrap SparseAdam: it takes sparse gradients only"
    with pytest.raises(ValueError, match=match):
        optimlab.SAM([w], base_optimizer=optimlab.SparseAdam, lr=0.1)
    with pytest.raises(ValueError, match=match):
        optimlab.create("sam", [w], base_optimizer="sparseadam")
    with pytest.raises(ValueError, match=match):
        optimlab.race("rosenbrock", {"sam": {"base_optimizer": "sparseadam"}}, steps=2)


def test_sam_checks_its_switch_and_says_when_the_closure_left_no_gradient():
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="adaptive must be a bool"):
        optimlab.SAM([w], adaptive="False", lr=0.1)  # bool("False") is True: ASAM unasked
    for bad in ("False", 1, None):  # maximize="False" climbed, and a race's table said False
        with pytest.raises(ValueError, match=r"^maximize must be a bool, got"):
            optimlab.SAM([w], maximize=bad, lr=0.1)
    with pytest.raises(ValueError, match=r"maximize must be a bool, got 'False'"):
        optimlab.race("booth", {"sam": {"maximize": "False", "lr": 0.01}}, steps=3)
    opt = optimlab.SAM([w], lr=0.1)
    with pytest.raises(ValueError, match=r"^param group 1: maximize must be a bool, got 'no'$"):
        opt.add_param_group({"params": [torch.ones(1, requires_grad=True)], "maximize": "no"})
    assert len(opt.param_groups) == 1
    with pytest.raises(RuntimeError, match="closure left no gradient"):
        opt.step(lambda: (w**2).sum())  # backward() forgotten
    assert torch.equal(w, torch.ones(2))


def _sam_closure(opt, w):
    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss
    return closure


@pytest.mark.parametrize("kind", ["Lookahead", "SAM"])
@pytest.mark.parametrize("inner", [torch.optim.Adam, optimlab.Adam], ids=["torch", "optimlab"])
def test_global_step_hooks_fire_once_per_wrapper_step(kind, inner):
    """torch's global step hooks see one step, the wrapper's; the hooks registered on the
    inner optimizer itself still fire around its step, and a scheduler on it sees the step."""
    w = torch.randn(3, requires_grad=True)
    if kind == "Lookahead":
        opt = optimlab.Lookahead(inner([w], lr=0.1), k=2)
        base = opt.optimizer
    else:
        opt = optimlab.SAM([w], base_optimizer=inner, lr=0.1)
        base = opt.base_optimizer
    calls = []
    base.register_step_pre_hook(lambda o, args, kwargs: calls.append(("inner pre", o)))
    base.register_step_post_hook(lambda o, args, kwargs: calls.append(("inner post", o)))
    scheduler = torch.optim.lr_scheduler.StepLR(base, step_size=1)
    handles = [register_optimizer_step_pre_hook(lambda o, args, kwargs: calls.append(("pre", o))),
               register_optimizer_step_post_hook(lambda o, args, kwargs: calls.append(("post", o)))]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "lr_scheduler.step() before optimizer.step()"
            for _ in range(2):
                if kind == "Lookahead":
                    opt.zero_grad()
                    (w**2).sum().backward()
                    opt.step()
                else:
                    opt.step(_sam_closure(opt, w))
                scheduler.step()
    finally:
        for handle in handles:
            handle.remove()
    assert calls == [("pre", opt), ("inner pre", base), ("inner post", base), ("post", opt)] * 2


@pytest.mark.parametrize("kind", ["alone", "Lookahead", "SAM"])
@pytest.mark.parametrize("inner", [torch.optim.Adam, optimlab.Adam], ids=["torch", "optimlab"])
def test_the_inner_optimizers_own_hooks_see_its_arguments_as_torch_passes_them(kind, inner):
    """torch calls a step hook with ``args`` that start with the optimizer, and a pre hook may
    return them rebuilt: inside a wrapper they lacked it (a hook reading ``args[0]`` raised
    IndexError, one returning ``((args[0],), kwargs)`` stepped another object)."""
    w = torch.randn(3, requires_grad=True)
    if kind == "SAM":
        opt = optimlab.SAM([w], base_optimizer=inner, lr=0.1)
        base = opt.base_optimizer
    else:
        base = inner([w], lr=0.1)
        opt = base if kind == "alone" else optimlab.Lookahead(base, k=2)
    seen = []

    def pre(o, args, kwargs):
        seen.append(("pre", args[0] is o is base))
        # rebuilt, as torch lets a pre hook: the step is called with a closure it adds
        return (args[0], lambda: seen.append(("closure", True))), dict(kwargs)

    base.register_step_pre_hook(pre)
    base.register_step_post_hook(lambda o, args, kwargs: seen.append(("post", args[0] is o)))
    before = w.detach().clone()
    if kind == "SAM":
        opt.step(_sam_closure(opt, w))
    else:
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    assert seen == [("pre", True), ("closure", True), ("post", True)]  # the rebuilt call ran
    assert not torch.equal(w, before)


def test_sams_second_step_called_alone_is_sams_step_for_every_hook():
    """With your own two passes, the second is SAM's step, as step() is: torch's global
    hooks fire once, with SAM (they saw the base optimizer), SAM's own hooks fire (they
    did not at all), and the base optimizer's own around its step inside."""
    w = torch.randn(3, requires_grad=True)
    opt = optimlab.SAM([w], lr=0.1)
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append(("pre", args == (o, False))))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append(("post", o)))
    opt.base_optimizer.register_step_post_hook(lambda o, args, kwargs: calls.append(("base", o)))
    handle = register_optimizer_step_pre_hook(lambda o, args, kwargs: calls.append(("global", o)))
    try:
        closure = _sam_closure(opt, w)
        closure()
        opt.first_step()
        closure()
        opt.second_step()
    finally:
        handle.remove()
    assert calls == [("global", opt), ("pre", True), ("base", opt.base_optimizer), ("post", opt)]


def test_a_scheduler_on_sam_sees_the_two_pass_step():
    """``first_step``/``second_step`` (the docstring's way for AMP and accumulation) is SAM's
    step: a scheduler built on SAM must not warn that it stepped before the optimizer."""
    w = torch.randn(3, requires_grad=True)
    sam = optimlab.SAM([w], base_optimizer=optimlab.SGD, lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(sam, 1, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            (w ** 2).sum().backward()
            sam.first_step(zero_grad=True)
            (w ** 2).sum().backward()
            sam.second_step(zero_grad=True)
            scheduler.step()
    assert sam.param_groups[0]["lr"] == pytest.approx(0.025)


@pytest.mark.parametrize("base", [optimlab.SGD, torch.optim.SGD], ids=["optimlab", "torch"])
def test_sam_refuses_sparse_gradients_as_the_other_optimizers_do(base):
    torch.manual_seed(0)
    emb = torch.nn.Embedding(10, 3, sparse=True)
    before = emb.weight.detach().clone()
    opt = optimlab.SAM(emb.parameters(), base_optimizer=base, lr=0.1)
    assert not opt.capabilities.sparse

    def closure():
        opt.zero_grad()
        loss = emb(torch.tensor([1, 2])).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="^SAM does not support sparse gradients"):
        opt.step(closure)
    assert torch.equal(emb.weight, before)  # refused before anything moved
    with pytest.raises(RuntimeError,
                       match="^Adam does not support sparse gradients, please consider SparseAdam"):
        emb.weight.grad = emb.weight.grad.clone()  # the message every other optimizer gives
        optimlab.Adam(emb.parameters()).step()


def test_a_second_pass_that_raises_leaves_sam_where_its_step_started():
    """SAM's closure raising on its second evaluation: the parameters are back at the point
    the step started from, nothing stepped, and the next step is the first one."""
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = optimlab.SAM([w], lr=0.1, rho=0.5)
    calls = []

    def failing():
        calls.append(w.detach().clone())
        if len(calls) == 2:
            raise FloatingPointError("second pass")
        return _sam_closure(opt, w)()

    with pytest.raises(FloatingPointError, match="second pass"):
        opt.step(failing)
    assert not torch.equal(calls[1], calls[0])  # the second pass was at the perturbed point
    assert torch.equal(w.detach(), torch.tensor([1.0, -2.0])) and not opt.state
    assert not opt.undo_first_step()  # nothing left to undo
    with pytest.raises(RuntimeError, match="without first_step"):
        opt.second_step()
    fresh = torch.tensor([1.0, -2.0], requires_grad=True)
    other = optimlab.SAM([fresh], lr=0.1, rho=0.5)
    opt.step(_sam_closure(opt, w))
    other.step(_sam_closure(other, fresh))
    assert torch.equal(w, fresh)


def test_sophia_undoes_its_first_step_on_request():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = optimlab.create("sophia", [w], lr=0.1)
    (w**2).sum().backward()
    assert opt.first_step()  # a Hessian step: w moved to the probe point
    assert not torch.equal(w.detach(), torch.tensor([1.0, -2.0]))
    assert opt.undo_first_step() and not opt.undo_first_step()
    assert torch.equal(w.detach(), torch.tensor([1.0, -2.0]))
    assert torch.equal(w.grad, torch.tensor([2.0, -4.0]))


@pytest.mark.parametrize("fused", [False, None])
def test_lookahead_steps_a_complex_parameter_as_its_real_view(fused):
    """The inner optimizer steps a complex parameter as its real view, bit for bit; the
    synchronisation lerped the complex tensors, which torch rounds unlike the real ones
    (20 of 2,000 numbers 1.4e-17 apart after 3 steps, alpha 0.8)."""
    torch.manual_seed(0)
    start, target = (torch.randn(1000, 2, dtype=torch.float64) for _ in range(2))
    real = start.clone().requires_grad_()
    cplx = torch.view_as_complex(start.clone()).requires_grad_()
    opts = [optimlab.Lookahead(optimlab.Adam([p], lr=0.01, fused=fused), k=3, alpha=0.8)
            for p in (real, cplx)]
    for _ in range(6):
        real.grad = real.detach() - target
        cplx.grad = torch.view_as_complex((torch.view_as_real(cplx.detach()) - target).contiguous())
        for opt in opts:
            opt.step()
    assert torch.equal(real.detach(), torch.view_as_real(cplx.detach()))
    slow = opts[1].state[cplx]["slow_param"]
    assert torch.equal(opts[0].state[real]["slow_param"], torch.view_as_real(slow))


@pytest.mark.parametrize("dtype, entry", [(torch.float16, 1e4), (torch.bfloat16, 1e19),
                                          (torch.float32, 1e20)], ids=["fp16", "bf16", "f32"])
def test_sams_perturbation_holds_where_the_gradients_norm_is_past_its_dtypes_range(dtype, entry):
    """100 entries of ``entry``: the global norm (10 * entry) is past the dtype's range
    (float16's 65504; float32's squares past 3.4e38), its true value is not. The norm was
    summed in the gradient's dtype: inf, and the perturbation rho * g / inf silently 0 (SAM
    stepped as its base optimizer). Now e = rho / sqrt(100) = 0.005 in every entry, to the
    dtype's rounding: the scale is formed in float32 or wider (one rounding, below float16's
    and bfloat16's) and the product rounded once to the dtype, so within two of its ulps.
    (Squares are summed in float64, so entries past 1e154 still overflow.)"""
    w = torch.nn.Parameter(torch.zeros(100, dtype=dtype))
    opt = optimlab.SAM([w], optimlab.SGD, rho=0.05, lr=0.1)
    w.grad = torch.full((100,), entry, dtype=dtype)
    opt.first_step()
    assert torch.allclose(w.double(), torch.full((100,), 0.005, dtype=torch.float64),
                          rtol=2 * torch.finfo(dtype).eps, atol=0)
