"""Corners of four rules that the capability table's problems never reach, each checked
against its reference: a mutation audit changed each rule there and the whole of
``tests/optim`` still passed.

* LAMB's trust ratio is 1 where a tensor's norm is zero (a zero-initialised bias): the paper's
  NumPy transcription (``tests/oracles/lamb.py``) moves it, a ratio of 0 would freeze it.
* Schedule-free AdamW weighs each iterate by the largest rate so far (``lr_max``), not the
  current one: the two differ only once a schedule lowers the rate, checked against the
  authors' package.
* Adafactor's factored second moment (its ``row_var`` and ``col_var``) is torch's, not only
  the parameters it gives: a constant factor on the rows cancels in the update.
* Rprop's step sizes stop at ``step_sizes[1]``: the table's cases never grow a step to it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import optimlab
from tests.oracles import lamb

TARGETS = [np.array([0.5, -1.0, 2.0]), np.array([0.3, -0.7])]


def _quadratic(params):
    """0.5 ||x_i - t_i||^2 summed over the tensors (torch)."""
    return sum(0.5 * (p - torch.as_tensor(t)).pow(2).sum() for p, t in zip(params, TARGETS))


def test_lamb_moves_a_tensor_whose_norm_is_zero_as_the_paper_does():
    start = [np.array([1.0, 2.0, -1.0]), np.zeros(2)]  # the second: a zero-initialised bias
    params = [torch.tensor(a, requires_grad=True) for a in start]
    opt = optimlab.LAMB(params, lr=0.01, weight_decay=0.01)
    for _ in range(20):
        opt.zero_grad()
        _quadratic(params).backward()
        opt.step()
    oracle = lamb.optimize(start, lambda xs: [x - t for x, t in zip(xs, TARGETS)], 20, lr=0.01,
                           weight_decay=0.01)
    assert abs(params[1].detach().numpy()).max() > 1e-3, "the zero tensor did not move"
    for ours, theirs in zip(params, oracle, strict=True):
        np.testing.assert_allclose(ours.detach().numpy(), theirs, rtol=0, atol=1e-10)


def test_schedule_free_weighs_iterates_by_the_largest_rate_so_far():
    schedulefree = pytest.importorskip("schedulefree")
    start = [np.array([1.0, 2.0, -1.0]), np.array([0.1, 0.2])]
    runs = []
    for make in (lambda p: optimlab.ScheduleFreeAdamW(p, lr=0.05, weight_lr_power=2.0),
                 lambda p: schedulefree.AdamWScheduleFree(p, lr=0.05, weight_lr_power=2.0,
                                                          foreach=False)):
        params = [torch.tensor(a, requires_grad=True) for a in start]
        opt = make(params)
        opt.train()
        for step in range(30):
            if step == 10:  # a schedule lowers the rate: lr_t < lr_max from here on
                for group in opt.param_groups:
                    group["lr"] = 0.01
            opt.zero_grad()
            _quadratic(params).backward()
            opt.step()
        opt.eval()
        runs.append([p.detach().clone() for p in params])
    for ours, theirs in zip(*runs, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)


def test_adafactors_factored_moments_are_torchs():
    if not hasattr(torch.optim, "Adafactor"):
        pytest.skip("this torch has no Adafactor")
    g = torch.Generator().manual_seed(0)
    start = torch.randn(4, 6, dtype=torch.float64, generator=g)
    target = torch.randn(4, 6, dtype=torch.float64, generator=g)
    opts = []
    for cls in (optimlab.Adafactor, torch.optim.Adafactor):
        p = start.clone().requires_grad_()
        opt = cls([p], lr=0.01, foreach=False)
        for _ in range(5):
            opt.zero_grad()
            (p - target).pow(2).sum().backward()
            opt.step()
        opts.append((opt, p))
    (ours, p), (theirs, q) = opts
    torch.testing.assert_close(p, q, rtol=0, atol=1e-12)
    for key in ("row_var", "col_var"):
        torch.testing.assert_close(ours.state[p][key], theirs.state[q][key], rtol=1e-12, atol=0)


def test_rprop_step_sizes_stop_at_their_maximum():
    runs = []
    for cls in (optimlab.Rprop, torch.optim.Rprop):
        p = torch.tensor([5.0, -3.0], dtype=torch.float64, requires_grad=True)
        opt = cls([p], lr=0.01, step_sizes=(1e-6, 0.02))
        for _ in range(30):  # a linear loss: the gradient keeps its sign, the step grows
            opt.zero_grad()
            (p * torch.tensor([1.0, -2.0], dtype=torch.float64)).sum().backward()
            opt.step()
        runs.append((opt, p))
    (ours, p), (theirs, q) = runs
    assert torch.equal(ours.state[p]["step_size"], torch.full((2,), 0.02, dtype=torch.float64))
    assert torch.equal(p, q) and torch.equal(ours.state[p]["step_size"], theirs.state[q]["step_size"])
