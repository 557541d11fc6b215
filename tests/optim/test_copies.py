"""Copies of a whole optimizer (``copy.deepcopy``, ``pickle``, ``torch.save`` of the object)
are optimizers: their steps are the original's, bit for bit.

``torch.optim.Optimizer.__getstate__`` keeps only ``defaults``, ``state`` and
``param_groups``; optimlab's optimizers carry more (the non-finite guard, its counter, a
wrapped optimizer, cached engines), so each copy way is checked for every case of the
capability table.
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch

from tests.optim.cases import ALL_CASES
from tests.problems import make_params, train_steps


def _params_of(opt) -> list[torch.Tensor]:
    groups = getattr(opt, "param_groups")
    return [p for group in groups for p in group["params"]]


def _pickled(opt):
    return pickle.loads(pickle.dumps(opt))


def _saved(opt):
    buffer = io.BytesIO()
    torch.save(opt, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


COPIES = {"deepcopy": copy.deepcopy, "pickle": _pickled, "torch.save": _saved}


@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_a_copy_steps_like_the_original(case, how):
    sign = -1.0 if case.maximize else 1.0
    params = make_params(torch.float64, case.shapes)
    opt = case.build(params)
    train_steps(opt, params, 5, sign, case.needs_closure)
    twin = COPIES[how](opt)
    twin_params = _params_of(twin)
    assert len(twin_params) == len(params)
    assert all(a is not b and torch.equal(a, b) for a, b in zip(twin_params, params))
    train_steps(opt, params, 5, sign, case.needs_closure)
    train_steps(twin, twin_params, 5, sign, case.needs_closure)
    for a, b in zip(params, twin_params):
        assert torch.equal(a, b), case.id
    assert getattr(twin, "skipped_steps", 0) == getattr(opt, "skipped_steps", 0)
    # the copy owns its state: stepping it never touched the original's
    assert type(twin) is type(opt)


def test_a_copy_keeps_the_guard_and_its_count():
    import optimlab

    p = torch.zeros(3, requires_grad=True)
    opt = optimlab.Adam([p], lr=0.1, skip_nonfinite=True)
    p.grad = torch.tensor([1.0, float("nan"), 0.0])
    opt.step()
    assert opt.skipped_steps == 1
    for how, make in COPIES.items():
        twin = make(opt)
        assert twin.skip_nonfinite and twin.skipped_steps == 1, how
        (q,) = _params_of(twin)
        q.grad = torch.tensor([float("inf"), 0.0, 0.0])
        twin.step()
        assert twin.skipped_steps == 2 and torch.equal(q, p), how


@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize("case", ALL_CASES[::7], ids=lambda c: c.id)
def test_a_copy_of_an_optimizer_with_a_scheduler_steps_its_own_parameters(case, how):
    """A ``torch.optim.lr_scheduler`` wraps the optimizer's ``step`` on the instance, around a
    weak reference to that optimizer. torch's copies leave the wrapper out; a copy that kept
    it stepped the *original* parameters (and could not be pickled at all)."""
    sign = -1.0 if case.maximize else 1.0
    params = make_params(torch.float64, case.shapes)
    opt = case.build(params)
    torch.optim.lr_scheduler.StepLR(opt, step_size=10)
    train_steps(opt, params, 2, sign, case.needs_closure)
    twin = COPIES[how](opt)
    twin_params = _params_of(twin)
    before = [p.detach().clone() for p in params]
    train_steps(twin, twin_params, 2, sign, case.needs_closure)
    assert all(torch.equal(a, b) for a, b in zip(params, before)), "the original moved"
    assert any(not torch.equal(a, b) for a, b in zip(twin_params, before)), "the copy did not"
    # and the copy takes a scheduler of its own, as a fresh optimizer does
    scheduler = torch.optim.lr_scheduler.StepLR(twin, step_size=1, gamma=0.5)
    lr = twin.param_groups[0]["lr"]
    train_steps(twin, twin_params, 1, sign, case.needs_closure)
    scheduler.step()
    assert twin.param_groups[0]["lr"] == lr / 2
