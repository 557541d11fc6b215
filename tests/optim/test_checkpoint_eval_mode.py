"""Checkpoints of schedule-free optimizers taken in eval mode, as the README says to save.

``eval()`` keeps the gradient point y so that ``train()`` puts it back bit for bit; a checkpoint
taken in eval mode carries it (``train_point``), so a fresh optimizer loading it resumes to the
same bits as the run that never stopped. Without it the resumed ``train()`` recomputes
y = lerp(x, z, 1 - beta), which rounds (2.98e-8 off after 3 steps in float32). A Population of
schedule-free members refused such a checkpoint outright (``train_mode`` checked as a switch).
"""
from __future__ import annotations

import io

import pytest
import torch

import optimlab
from optimlab.optim.schedule_free import TRAIN_POINT
from optimlab.optim.wrappers.lookahead import Lookahead

STEPS, SAVED_AT, MEMBERS = 8, 5, 3
LRS = {"schedulefreeadamw": 0.01, "schedulefreesgd": 0.1}


def _params(seed: int, lead: tuple[int, ...] = ()) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*lead, 64, 32, generator=gen).requires_grad_(),
            torch.randn(*lead, 64, generator=gen).requires_grad_()]


def _loss(params: list[torch.Tensor], step: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1000 + step)
    x, y = torch.randn(8, 32, generator=gen), torch.randn(8, 64, generator=gen)
    w, b = params
    if w.dim() == 3:  # a population: one loss per member, summed
        return ((torch.einsum("kij,nj->kni", w, x) + b[:, None] - y) ** 2).mean(dim=(1, 2)).sum()
    return ((x @ w.T + b - y) ** 2).mean()


def _step(opt, params: list[torch.Tensor], step: int) -> None:
    for p in params:
        p.grad = None
    _loss(params, step).backward()
    opt.step()


def _saved_in_eval_and_resumed(build, lead: tuple[int, ...] = ()):
    """(uninterrupted, resumed) weights: one run saves in eval mode at SAVED_AT and goes on;
    fresh weights and a fresh optimizer load the checkpoint (through torch.save and
    torch.load(weights_only=True), as a new process would) and go on from there."""
    params = _params(0, lead)
    opt = build(params)
    for s in range(SAVED_AT):
        _step(opt, params, s)
    opt.eval()
    buffer = io.BytesIO()
    torch.save({"model": [p.detach().clone() for p in params], "opt": opt.state_dict()}, buffer)
    opt.train()
    for s in range(SAVED_AT, STEPS):
        _step(opt, params, s)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    fresh = _params(1, lead)
    with torch.no_grad():
        for p, saved in zip(fresh, checkpoint["model"]):
            p.copy_(saved)
    resumed = build(fresh)  # built in train mode: the load brings eval mode in
    resumed.load_state_dict(checkpoint["opt"])
    resumed.train()
    for s in range(SAVED_AT, STEPS):
        _step(resumed, fresh, s)
    return params, fresh


@pytest.mark.parametrize("name", sorted(LRS))
def test_a_checkpoint_taken_in_eval_mode_resumes_to_the_same_bits(name):
    ran, resumed = _saved_in_eval_and_resumed(lambda ps: optimlab.create(name, ps, lr=LRS[name]))
    for a, b in zip(ran, resumed):
        assert torch.equal(a, b)


def test_a_population_loads_a_checkpoint_taken_in_eval_mode_and_resumes_exactly():
    ran, resumed = _saved_in_eval_and_resumed(
        lambda ps: optimlab.Population("schedulefreeadamw", ps, {"lr": [0.005, 0.01, 0.02]}),
        lead=(MEMBERS,))
    for a, b in zip(ran, resumed):
        assert torch.equal(a, b)


def test_lookahead_over_schedule_free_resumes_exactly_from_eval_mode():
    ran, resumed = _saved_in_eval_and_resumed(
        lambda ps: Lookahead(optimlab.ScheduleFreeAdamW(ps, lr=0.01), k=3))
    for a, b in zip(ran, resumed):
        assert torch.equal(a, b)


def test_the_train_point_is_written_in_eval_mode_only_and_never_into_the_live_state():
    params = _params(0)
    opt = optimlab.ScheduleFreeAdamW(params, lr=0.01)
    _step(opt, params, 0)
    assert not any(TRAIN_POINT in e for e in opt.state_dict()["state"].values())
    opt.eval()
    saved = opt.state_dict()
    assert all(TRAIN_POINT in e for e in saved["state"].values())
    assert not any(TRAIN_POINT in opt.state[p] for p in params)
    opt.train()
    assert not any(TRAIN_POINT in e for e in opt.state_dict()["state"].values())
    # loading it puts nothing of it into the state either
    fresh = optimlab.ScheduleFreeAdamW(_params(0), lr=0.01)
    fresh.load_state_dict(saved)
    assert not any(TRAIN_POINT in s for s in fresh.state.values())


def test_a_train_point_that_does_not_fit_the_loaded_weights_is_recomputed():
    """Weights other than the average the checkpoint was saved with: train() recomputes
    y from them and z, as before checkpoints carried y."""
    params = _params(0)
    opt = optimlab.ScheduleFreeSGD(params, lr=0.1)
    for s in range(3):
        _step(opt, params, s)
    opt.eval()
    saved = opt.state_dict()
    other = _params(7)  # not the average saved
    fresh = optimlab.ScheduleFreeSGD(other, lr=0.1)
    fresh.load_state_dict(saved)
    expected = [p.detach().clone().lerp_(fresh.state[p]["z"], 1 - 0.9) for p in other]
    fresh.train()
    for p, e in zip(other, expected):
        assert torch.equal(p.detach(), e)
