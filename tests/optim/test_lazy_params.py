"""Optimizers built on a LazyModule's parameters, before its first forward gives them a shape,
as torch's optimizers are (``nn.LazyLinear``): optimlab refused them at construction, every
rule optimizer through its parameter checks and AdamMini through its partition, and its
``state_dict`` read their shapes. Now they are checked at the first step after the forward,
and the run is the one of an optimizer built after the forward, bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import optimlab
from tests.optim.cases import CASES
from tests.problems import train_steps

FIRST = [cases[0] for cases in CASES.values()]
X = torch.randn(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def _model(lazy: bool, bias: bool) -> nn.Module:
    torch.manual_seed(1)
    if lazy:
        layers = [nn.LazyLinear(4, bias=bias, dtype=torch.float64), nn.Tanh(),
                  nn.LazyLinear(3, bias=bias, dtype=torch.float64)]
    else:
        layers = [nn.Linear(5, 4, bias=bias, dtype=torch.float64), nn.Tanh(),
                  nn.Linear(4, 3, bias=bias, dtype=torch.float64)]
    return nn.Sequential(*layers)


def _train(opt, model: nn.Module, closure_needed: bool, sparse: bool, steps: int = 3) -> None:
    train_steps(opt, list(model.parameters()), steps, use_closure=closure_needed, sparse=sparse,
                loss=lambda _: model(X).pow(2).mean())


@pytest.mark.parametrize("case", FIRST, ids=lambda c: c.id)
def test_an_optimizer_built_before_the_first_forward_steps_as_one_built_after(case):
    caps = case.capabilities
    bias = not caps.needs_matrix  # Muon takes matrices only
    lazy = _model(lazy=True, bias=bias)
    opt = case.build(lazy.parameters())
    saved = opt.state_dict()  # before the forward: no shape to record yet
    lazy(X)  # the parameters get their shape, in place
    eager = _model(lazy=False, bias=bias)
    eager.load_state_dict(lazy.state_dict())
    reference = case.build(eager.parameters())
    _train(opt, lazy, case.needs_closure, caps.sparse_only)
    _train(reference, eager, case.needs_closure, caps.sparse_only)
    for ours, theirs in zip(lazy.parameters(), eager.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    # the state_dict saved before the forward loads into another lazy model's optimizer
    again = _model(lazy=True, bias=bias)
    case.build(again.parameters()).load_state_dict(saved)


def test_a_lazy_parameter_steps_as_torchs_adam_steps_it():
    ours, theirs = _model(lazy=True, bias=True), _model(lazy=True, bias=True)
    a = optimlab.Adam(ours.parameters(), lr=0.01)
    b = torch.optim.Adam(theirs.parameters(), lr=0.01)
    ours(X), theirs(X)
    theirs.load_state_dict(ours.state_dict())
    _train(a, ours, False, False)
    _train(b, theirs, False, False)
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_lazy_parameter_the_rule_cannot_step_is_refused_at_the_first_step():
    """Muon takes matrices only: the bias of a LazyLinear is refused once it has a shape,
    before any parameter steps, saying it was a lazy module's."""
    model = _model(lazy=True, bias=True)
    opt = optimlab.Muon(model.parameters(), lr=0.02)
    model(X).pow(2).mean().backward()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"Muon only optimizes real 2-D parameters .* got a "
                                         r"parameter of shape \(4,\) .*a lazy module's parameter"):
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


def test_a_lazy_module_not_yet_run_beside_one_that_has_steps_on():
    """A head not used yet beside a module that has had its forward: the step checks the one
    with a shape and leaves the other (``list.remove`` compared them with ``==``, which an
    uninitialized parameter refuses)."""
    used, unused = nn.LazyLinear(3, dtype=torch.float64), nn.LazyLinear(2, dtype=torch.float64)
    opt = optimlab.Adam([*unused.parameters(), *used.parameters()], lr=0.01)
    used(X).pow(2).mean().backward()
    before = used.weight.detach().clone()
    opt.step()
    assert not torch.equal(used.weight, before)
    unused(X).pow(2).mean().backward()  # its turn: checked and stepped at the next step
    opt.step()
    assert set(opt.state) == set(used.parameters()) | set(unused.parameters())


def test_a_checkpoint_loads_into_an_optimizer_on_lazy_parameters_as_torchs_does():
    """Saved after steps, loaded before the forward (as torch.optim.Adam takes it): the run
    goes on as the saved one does."""
    model = _model(lazy=True, bias=True)
    opt = optimlab.Adam(model.parameters(), lr=0.01)
    model(X)
    _train(opt, model, False, False)
    saved, weights = copy.deepcopy(opt.state_dict()), copy.deepcopy(model.state_dict())
    _train(opt, model, False, False)
    again = _model(lazy=True, bias=True)
    resumed = optimlab.Adam(again.parameters(), lr=0.01)
    resumed.load_state_dict(saved)  # before the forward: no shape yet
    again(X)
    again.load_state_dict(weights)
    _train(resumed, again, False, False)
    for p, q in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)
