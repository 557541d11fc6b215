"""Cautious masking (``cautious=True`` of Adam, AdamW, Lion and LaProp).

Each case with ``cautious=True`` in ``tests/optim/cases.py`` is also checked against its
oracle (the NumPy transcriptions of C-AdamW and C-Lion, pytorch_optimizer's LaProp) and runs
through the whole matrix (fused, multi-tensor, populations, state_dict); these tests pin what
the option itself does.
"""

import pytest
import torch

import optimlab
from optimlab import Population
from optimlab.optim.cautious import cautious
from optimlab.optim.multi_tensor import TensorList
from tests.problems import loss_fn, make_params, train_steps

CAUTIOUS = ["adam", "adamw", "lion", "laprop"]


def test_the_mask_keeps_agreeing_coordinates_and_rescales_by_size_over_kept_plus_one():
    u = torch.tensor([1.0, -2.0, 3.0, 4.0], dtype=torch.float64)
    g = torch.tensor([1.0, 1.0, -1.0, 0.0], dtype=torch.float64)
    # only the first coordinate agrees (0 * 4 is not > 0): 4 elements / (1 kept + 1)
    assert cautious(u, g).tolist() == [2.0, 0.0, 0.0, 0.0]
    assert cautious(u, u).tolist() == (u * (4 / 5)).tolist()  # all agree: 4 / (4 + 1)


def test_a_group_at_once_is_counted_per_tensor():
    torch.manual_seed(0)
    us = [torch.randn(s, dtype=torch.float64) for s in [(3, 4), (5,), (2, 2, 2)]]
    gs = [torch.randn_like(u) for u in us]
    together = cautious(TensorList(us), TensorList(gs)).items
    for a, u, g in zip(together, us, gs):
        assert torch.equal(a, cautious(u, g))


@pytest.mark.parametrize("name", CAUTIOUS)
def test_no_coordinate_moves_against_its_gradient(name):
    """Two steps whose gradients disagree with the momentum in some coordinates: those stay
    where they are (no weight decay), the others move downhill."""
    w = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = optimlab.create(name, [w], lr=0.1, weight_decay=0.0, cautious=True)
    for g in ([1.0, 1.0, 1.0, -1.0, -1.0, -1.0], [1.0, -0.01, 1.0, -1.0, 0.01, -1.0]):
        before = w.detach().clone()
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    moved = w.detach() - before
    grad = torch.tensor(g, dtype=torch.float64)
    assert (moved * grad <= 0).all(), moved
    assert moved[1] == 0 and moved[4] == 0 and (moved[[0, 2, 3, 5]] != 0).all(), moved


@pytest.mark.parametrize("name", CAUTIOUS)
def test_populations_map_cautious_members_with_vmap(name):
    p = [torch.zeros(2, 3, 3)]
    assert Population(name, p, {"lr": [0.1, 0.2]}).mode == "elementwise"
    assert Population(name, p, {"lr": [0.1, 0.2], "cautious": True}).mode == "vmap"


@pytest.mark.parametrize("name", ["adam", "lion"])
def test_the_plain_vmapped_population_follows_each_members_own_run(name):
    """With fused=False the members step through vmap, each counting its
    own coordinates (a broadcast rule would count all members together)."""
    lrs = [0.01, 0.03]
    members = [make_params(torch.float64) for _ in lrs]
    params = [torch.stack([m[i] for m in members]).detach().requires_grad_()
              for i in range(len(members[0]))]
    pop = Population(name, params, {"lr": lrs, "cautious": True, "fused": False})
    for _ in range(20):
        for p in params:
            p.grad = None
        torch.stack([loss_fn([p[k] for p in params]) for k in range(len(lrs))]).sum().backward()
        pop.step()
    for k, lr in enumerate(lrs):
        single = make_params(torch.float64)
        train_steps(optimlab.create(name, single, lr=lr, cautious=True), single, 20)
        for batched, alone in zip(params, single):
            torch.testing.assert_close(batched[k].detach(), alone.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CAUTIOUS)
def test_cautious_must_be_a_bool(name):
    with pytest.raises(ValueError, match="cautious must be a bool"):
        optimlab.create(name, [torch.zeros(2, requires_grad=True)], cautious=1)


def test_adamw_passes_cautious_on():
    a, b = make_params(torch.float64), make_params(torch.float64)
    train_steps(optimlab.AdamW(a, lr=0.01, cautious=True), a, 30)
    train_steps(optimlab.Adam(b, lr=0.01, weight_decay=0.01, decoupled_weight_decay=True,
                              cautious=True), b, 30)
    plain = make_params(torch.float64)
    train_steps(optimlab.AdamW(plain, lr=0.01), plain, 30)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, plain))
