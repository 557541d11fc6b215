"""Sparse gradients beyond the shared matrix: an embedding trained on random index batches
(repeated indices, so uncoalesced gradients), an empty gradient, and the refusals, each
against torch: SparseAdam, and last SGD, which torch.optim.SGD lets take sparse gradients."""

from __future__ import annotations

import pytest
import torch

import optimlab


def _train(cls, dtype, steps=30, **hp):
    torch.manual_seed(0)
    emb = torch.nn.Embedding(20, 4, sparse=True).to(dtype)
    opt = cls(emb.parameters(), **hp)
    gen = torch.Generator().manual_seed(1)
    for t in range(steps):
        opt.zero_grad()
        if t == 7:  # a batch that touches nothing: an empty sparse gradient
            emb.weight.grad = torch.sparse_coo_tensor(torch.zeros(1, 0, dtype=torch.long),
                                                      torch.zeros(0, 4, dtype=dtype), (20, 4),
                                                      check_invariants=True)
        else:
            idx = torch.randint(0, 20, (12,), generator=gen)  # repeats: uncoalesced
            (emb(idx) ** 2).sum().backward()
        opt.step()
    return emb.weight.detach(), opt


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("hp", [{}, {"lr": 0.05, "betas": (0.5, 0.9), "eps": 1e-3}], ids=str)
def test_embedding_training_is_torchs(dtype, hp):
    ours, our_opt = _train(optimlab.SparseAdam, dtype, **hp)
    theirs, their_opt = _train(torch.optim.SparseAdam, dtype, **hp)
    assert torch.equal(ours, theirs)
    (state,) = our_opt.state.values()
    (their_state,) = their_opt.state.values()
    assert int(state["step"]) == their_state["step"] == 30  # the empty step counts, as in torch
    assert torch.equal(state["exp_avg_sq"], their_state["exp_avg_sq"])


def test_dense_gradients_and_bad_parameters_are_refused():
    p = torch.zeros(3, requires_grad=True)
    opt = optimlab.SparseAdam([p])
    p.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="dense gradients"):
        opt.step()
    assert torch.equal(p, torch.zeros(3)) and not opt.state[p]  # nothing changed
    with pytest.raises(ValueError, match="complex"):
        optimlab.SparseAdam([torch.zeros(2, dtype=torch.complex64, requires_grad=True)])
    for hp in ({"lr": 0.0}, {"eps": 0.0}, {"betas": (1.0, 0.9)}):
        with pytest.raises(ValueError):
            optimlab.SparseAdam([p], **hp)


@pytest.mark.parametrize("name", ["SparseAdam", "Adagrad"])
def test_a_sparse_step_changes_only_the_stored_rows_in_place(name):
    """The parameter and the state are the same tensors after a step, and the rows the
    gradient does not store keep their bits: a step adds into the touched rows (as torch's
    add_ does) instead of writing a dense copy of the table."""
    torch.manual_seed(0)
    emb = torch.nn.Embedding(50, 3, sparse=True).double()
    opt = getattr(optimlab, name)(emb.parameters(), lr=0.1)
    (emb(torch.tensor([1, 2])) ** 2).sum().backward()
    opt.step()
    state = opt.state[emb.weight]
    buffers = {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and v.dim()}
    before = {k: (v.data_ptr(), v.clone()) for k, v in buffers.items()}
    weight_ptr, weight = emb.weight.data_ptr(), emb.weight.detach().clone()
    opt.zero_grad()
    (emb(torch.tensor([3, 3, 7])) ** 2).sum().backward()
    opt.step()
    touched = torch.zeros(50, dtype=torch.bool)
    touched[[3, 7]] = True
    assert emb.weight.data_ptr() == weight_ptr
    assert torch.equal(emb.weight.detach()[~touched], weight[~touched])
    assert not torch.equal(emb.weight.detach()[touched], weight[touched])
    for key, (ptr, old) in before.items():
        assert state[key].data_ptr() == ptr, key
        assert torch.equal(state[key][~touched], old[~touched]), key


@pytest.mark.parametrize("hp", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True},
                                {"momentum": 0.9, "dampening": 0.1, "maximize": True}], ids=str)
def test_sgd_takes_sparse_gradients_as_torch_does(hp):
    """torch.optim.SGD steps an embedding's sparse gradient (its momentum buffer then sparse
    too); the same batches give the same bits here."""
    ours, our_opt = _train(optimlab.SGD, torch.float64, lr=0.1, **hp)
    theirs, their_opt = _train(torch.optim.SGD, torch.float64, lr=0.1, **hp)
    assert torch.equal(ours, theirs)
    if hp.get("momentum"):
        (state,) = our_opt.state.values()
        (their_state,) = their_opt.state.values()
        assert state["momentum_buffer"].is_sparse
        assert torch.equal(state["momentum_buffer"].to_dense(),
                           their_state["momentum_buffer"].to_dense())


def test_sgd_refuses_weight_decay_on_a_sparse_gradient_and_changes_nothing():
    emb = torch.nn.Embedding(5, 2, sparse=True)
    before = emb.weight.detach().clone()
    opt = optimlab.SGD(emb.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    emb(torch.tensor([1, 3])).sum().backward()
    with pytest.raises(RuntimeError, match="weight_decay is not compatible with sparse"):
        opt.step()
    assert torch.equal(emb.weight, before)
