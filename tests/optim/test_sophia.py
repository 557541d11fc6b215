"""Sophia's two phases called by hand (``first_step``/``second_step`` around your own second
pass, as under a ``GradScaler``): the second phase is the optimizer step taken, for the step
hooks and an lr scheduler as for :meth:`~optimlab.Sophia.step`."""

from __future__ import annotations

import warnings

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

import optimlab


def _loss(w):
    return ((w - 1) ** 2).sum() + (w**4).sum()


def test_a_second_step_by_hand_is_the_step_for_hooks_and_schedulers():
    """It fired no hook and the scheduler warned "lr_scheduler.step() before
    optimizer.step()" on every run, where SAM's second_step did neither."""
    w = torch.randn(3, requires_grad=True)
    opt = optimlab.Sophia([w], lr=0.1, update_interval=1)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append(("pre", args == (o,))))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append(("post", args == (o,))))
    handles = [register_optimizer_step_pre_hook(lambda o, a, k: calls.append(("global pre", o))),
               register_optimizer_step_post_hook(lambda o, a, k: calls.append(("global post", o)))]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for _ in range(2):
                opt.zero_grad()
                _loss(w).backward()
                assert opt.first_step()  # a Hessian step: the probe point moved
                w.grad = None
                _loss(w).backward()
                opt.second_step()
                scheduler.step()
    finally:
        for handle in handles:
            handle.remove()
    once = [("global pre", opt), ("pre", True), ("post", True), ("global post", opt)]
    assert calls == once * 2
    assert opt.param_groups[0]["lr"] == 0.1 * 0.5**2  # the scheduler stepped twice
    assert int(opt.state[w]["step"]) == 2


def test_step_fires_the_hooks_once_not_again_for_its_second_phase():
    w = torch.randn(3, requires_grad=True)
    opt = optimlab.Sophia([w], lr=0.1, update_interval=1)
    calls = []
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append(len(args)))

    def closure():
        opt.zero_grad()
        loss = _loss(w)
        loss.backward()
        return loss

    opt.step(closure)
    assert calls == [2]  # (opt, closure): step's own call, not second_step's (opt,)


def test_the_hooks_of_a_second_step_by_hand_see_what_it_steps_with():
    """Its pre hooks saw the probe point theta + delta u and the gradient there (the one the
    curvature estimate reads), not theta and the gradient the step uses."""
    w = torch.zeros(3, requires_grad=True)
    opt = optimlab.Sophia([w], lr=0.1, update_interval=1)
    seen = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append(
        (w.detach().clone(), w.grad.clone())))
    opt.zero_grad()
    _loss(w).backward()
    at_theta = w.grad.clone()
    assert opt.first_step()
    assert not torch.equal(w.detach(), torch.zeros(3))  # at the probe point
    w.grad = None
    _loss(w).backward()
    opt.second_step()
    ((weights, grad),) = seen
    assert torch.equal(weights, torch.zeros(3)) and torch.equal(grad, at_theta)
