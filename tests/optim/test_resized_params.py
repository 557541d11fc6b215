"""A parameter whose ``.data`` is resized between steps (a vocabulary grown) while its state
keeps the old size: the step is refused naming the parameter and its state, where torch and
optimlab said only "split_with_sizes expects ..." or "The size of tensor a (3) must match";
on the default path the kernel had already stepped the group's other parameters and their
counters. Now the default and the multi-tensor paths leave the whole group as the step
found it; the one-at-a-time path (``foreach=False``) steps the parameters before it, as
torch's for-loop does. ``del optimizer.state[p]`` then starts the resized one afresh."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import optimlab

CLASSES = [(optimlab.Adam, {"lr": 0.01}), (optimlab.SGD, {"lr": 0.1, "momentum": 0.9}),
           (optimlab.RMSprop, {"lr": 0.01}), (optimlab.Adagrad, {"lr": 0.1}),
           (optimlab.Lion, {"lr": 0.001}), (optimlab.LAMB, {"lr": 0.01})]
PATHS = [{}, {"fused": False}, {"fused": False, "foreach": False}]
X = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))


def _grown(cls, hp, path):
    """A two-layer model stepped twice, then its second layer given one more output row."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3))
    opt = cls(model.parameters(), **hp, **path)
    for _ in range(2):
        opt.zero_grad()
        model(X).sum().backward()
        opt.step()
    last = model[1]
    last.weight.data = torch.cat([last.weight.data, torch.zeros(1, 4)])
    last.bias.data = torch.cat([last.bias.data, torch.zeros(1)])
    opt.zero_grad()
    model(X).sum().backward()
    return model, opt


def _snapshot(model, opt):
    params = [p.detach().clone() for p in model.parameters()]
    states = [{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in opt.state[p].items()}
              for p in model.parameters()]
    return params, states


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "default")
@pytest.mark.parametrize("cls, hp", CLASSES, ids=lambda c: getattr(c, "__name__", ""))
def test_a_resized_parameter_is_refused_naming_it_and_its_state(cls, hp, path):
    if "foreach" in path and "foreach" not in inspect.signature(cls).parameters:
        pytest.skip(f"{cls.__name__} has no foreach switch")
    model, opt = _grown(cls, hp, path)
    params, states = _snapshot(model, opt)
    with pytest.raises(RuntimeError, match=rf"^{cls.__name__}: parameter 2 of the group .* is of "
                                           r"shape \(4, 4\), but its state '\w+' is of shape "
                                           r"\(3, 4\), made for another shape .*del optimizer\.state"):
        opt.step()
    if path.get("foreach") is not False:  # the whole group as the step found it
        after_params, after_states = _snapshot(model, opt)
        assert _same(params, after_params)
        for before, after in zip(states, after_states, strict=True):
            assert before.keys() == after.keys()
            assert all(torch.equal(torch.as_tensor(before[k]), torch.as_tensor(after[k]))
                       for k in before)
    # the way out the message gives: the resized parameters start their state afresh
    for p in model[1].parameters():
        del opt.state[p]
    opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("path", PATHS[:2], ids=["default", "fused=False"])
def test_the_parameter_is_counted_among_its_group_not_its_batch(path):
    """A 0-d parameter steps apart from the batch: the resized one is still named by its
    place in the group (the batched path counted within its batch: 'parameter 2')."""
    torch.manual_seed(0)
    scale = nn.Parameter(torch.tensor(1.0))
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3))
    opt = optimlab.Adam([scale, *model.parameters()], lr=0.01, **path)

    def backward():
        opt.zero_grad()
        (scale * model(X)).sum().backward()

    backward()
    opt.step()
    last = model[1]
    last.weight.data = torch.cat([last.weight.data, torch.zeros(1, 4)])
    last.bias.data = torch.cat([last.bias.data, torch.zeros(1)])
    backward()
    with pytest.raises(RuntimeError, match=r"^Adam: parameter 3 of the group .* is of shape \(4, 4\)"):
        opt.step()


def test_a_gradient_that_does_not_fit_is_counted_among_its_group_too():
    torch.manual_seed(0)
    scale = nn.Parameter(torch.tensor(1.0))
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3))
    opt = optimlab.Adam([scale, *model.parameters()], lr=0.01, fused=False)
    (scale * model(X)).sum().backward()
    model[1].weight.grad.data = torch.ones(5, 4)  # (torch refuses it as .grad)
    with pytest.raises(RuntimeError, match=r"^Adam: parameter 3 of the group .* is of shape \(3, 4\)"):
        opt.step()
