"""SAM's contract beyond the shared matrix: what it refuses up front, and what it says when a
closure is wrong, instead of failing inside its base optimizer later."""

from __future__ import annotations

import pytest
import torch

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


def test_sam_checks_its_switch_and_says_when_the_closure_left_no_gradient():
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="adaptive must be a bool"):
        optimlab.SAM([w], adaptive="False", lr=0.1)  # bool("False") is True: ASAM unasked
    opt = optimlab.SAM([w], lr=0.1)
    with pytest.raises(RuntimeError, match="closure left no gradient"):
        opt.step(lambda: (w**2).sum())  # backward() forgotten
    assert torch.equal(w, torch.ones(2))
