"""Evaluating a schedule-free run only observes it: ``eval()`` (the parameters to the average
x) then ``train()`` (back to the gradient point y) leaves the training point bit for bit
where it was, in a :class:`~optimlab.Population` and in the optimizer alone, so a run's path
does not depend on how often it is evaluated (the training lab's ``eval_every``).

An audit found the final loss of a schedule-free run on digits changing with ``eval_every``
in the population engine: the switch recomputed y as ``lerp(x, z, 1 - beta)`` from
``x = lerp(y, z, 1 - 1/beta)``, which rounds, so every evaluation moved y by an ulp or so.
"""

import pytest
import torch

import optimlab
from optimlab import Population

K = 3
STEPS = 12
CLASSES = {"schedulefreesgd": optimlab.ScheduleFreeSGD,
           "schedulefreeadamw": optimlab.ScheduleFreeAdamW}
RATES = {"schedulefreesgd": [0.05, 0.1, 0.2], "schedulefreeadamw": [0.01, 0.02, 0.05]}


def _start() -> list[torch.Tensor]:
    """Every member's starting point, float32: two contiguous parameters and one whose rows
    are not contiguous (a transposed one: the population steps copies of its rows)."""
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(K, 8, 5, generator=gen), torch.randn(K, 5, generator=gen),
            torch.randn(6, K, generator=gen).t()]


def _grad(p: torch.Tensor) -> torch.Tensor:
    """A gradient that depends on the point, so a drift of one ulp in y shows in the path."""
    return torch.sin(3 * p) + 0.1 * p


def _run(opt, params: list[torch.Tensor], every: int | None):
    """STEPS steps of ``opt`` (a population or one optimizer) over ``params``, switched to
    eval and back after every ``every``-th step (never where None): the parameters in train
    mode (y), then in eval mode (x)."""
    for step in range(STEPS):
        for p in params:
            p.grad = _grad(p.detach())
        opt.step()
        if every is not None and (step + 1) % every == 0:
            opt.eval()
            opt.train()
    trained = [p.detach().clone() for p in params]
    opt.eval()
    return trained, [p.detach().clone() for p in params]


def _population(name: str, every: int | None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """A population run of :func:`_run`."""
    params = [p.clone().requires_grad_() for p in _start()]
    return _run(Population(name, params, {"lr": RATES[name]}), params, every)


def _alone(name: str, k: int, every: int | None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Member ``k`` run by the optimizer alone, as :func:`_population` runs it."""
    params = [p[k].clone().requires_grad_() for p in _start()]
    return _run(CLASSES[name](params, lr=RATES[name][k]), params, every)


def _assert_identical(got, expected, what: str) -> None:
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert torch.equal(a, b), (f"{what}: parameter {i} differs by up to "
                                   f"{(a - b).abs().max().item():.3g}")


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_a_round_trip_leaves_every_member_where_it_was(name):
    """Between steps, ``eval()`` moves every member to x (elsewhere than y, from the second
    step on) and ``train()`` puts every member's parameters back bit for bit, after every
    step of a run."""
    params = [p.clone().requires_grad_() for p in _start()]
    pop = Population(name, params, {"lr": RATES[name]})
    for step in range(STEPS):
        for p in params:
            p.grad = _grad(p.detach())
        pop.step()
        before = [p.detach().clone() for p in params]
        pop.eval()
        if step:  # after the first step x = y = z (the average holds one iterate)
            assert not torch.equal(params[0], before[0])  # x is another point than y
        pop.train()
        _assert_identical(params, before, f"{name}, after step {step + 1}'s round trip")


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_how_often_a_population_is_evaluated_does_not_change_its_run(name):
    """A run switched after every step ends where one switched every 4 steps and one never
    switched end: the same y, and the same x when evaluated."""
    never = _population(name, None)
    for every in (1, 4):
        got = _population(name, every)
        _assert_identical(got[0], never[0], f"{name}, y, switched every {every} step(s)")
        _assert_identical(got[1], never[1], f"{name}, x, switched every {every} step(s)")


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_a_member_switched_every_step_follows_the_optimizer_alone(name):
    """Member k of a population switched after every step is, bit for bit, the optimizer
    alone never switched (and alone switched after every step): y, and x when evaluated."""
    pop_y, pop_x = _population(name, 1)
    for k in range(K):
        for every in (None, 1):
            alone_y, alone_x = _alone(name, k, every)
            what = f"{name}, member {k} vs alone switched every {every} step(s)"
            _assert_identical([p[k] for p in pop_y], alone_y, what + ", y")
            _assert_identical([p[k] for p in pop_x], alone_x, what + ", x")


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_weights_loaded_in_eval_mode_are_trained_from(name):
    """Where the parameters change in eval mode (a checkpoint's x loaded), ``train()`` does
    not restore the y that ``eval()`` left: it computes y from the new x and z,
    ``lerp(x, z, 1 - beta)``, as before. (A guard on the restore, not on the defect.)"""
    params = [p[0].clone().requires_grad_() for p in _start()]
    opt = CLASSES[name](params, lr=RATES[name][0])
    for _ in range(3):
        for p in params:
            p.grad = _grad(p.detach())
        opt.step()
    opt.eval()
    loaded = [p.detach() * 0.5 + 0.25 for p in params]
    with torch.no_grad():
        for p, x in zip(params, loaded):
            p.copy_(x)
    opt.train()
    group = opt.param_groups[0]
    beta = group["momentum"] if name == "schedulefreesgd" else group["betas"][0]
    expected = [torch.lerp(x, opt.state[p]["z"], 1 - beta) for p, x in zip(params, loaded)]
    _assert_identical(params, expected, f"{name}, y from weights loaded in eval mode")
