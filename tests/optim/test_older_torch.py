"""What an older torch (the package takes torch>=2.4) lacks, stood in for on this one.

torch 2.4 has no ``torch._foreach_rsqrt_`` (``import optimlab`` failed there) and takes one
tensor at a time in ``torch.autograd.graph.increment_version`` (every fused step failed);
both were found by running the suite under torch 2.4.1."""

import pytest
import torch

import optimlab
from optimlab.optim import deferred, engine


def test_an_operation_with_no_list_form_in_this_torch_is_left_out():
    assert deferred._foreach("no_such_operation") is None
    assert all(callable(form) for form in deferred.FOREACH.values())


@pytest.mark.parametrize("name", ["adam", "rmsprop", "adafactor", "adagrad"])
def test_the_multi_tensor_path_without_list_forms_steps_as_tensor_by_tensor(name, monkeypatch):
    """With none of the operations' list forms (a torch that lacks them), the multi-tensor
    path runs them on its flat buffers and steps as the tensor-by-tensor path does."""
    monkeypatch.setattr(deferred, "FOREACH", {})
    torch.manual_seed(0)
    shapes = [(7, 5), (5,), (3, 4)]
    starts = [torch.randn(shape, dtype=torch.float64) for shape in shapes]
    runs = []
    for foreach in (None, False):
        params = [s.clone().requires_grad_() for s in starts]
        opt = optimlab.create(name, params, lr=0.01, foreach=foreach)
        for step in range(3):
            for p in params:
                p.grad = torch.sin(p.detach() * (step + 1))
            opt.step()
        runs.append([p.detach() for p in params])
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_versions_are_bumped_one_tensor_at_a_time_where_torch_takes_no_list(monkeypatch):
    """torch before 2.5 refuses a list with a RuntimeError (not a TypeError): the fused
    step's writes are then told to autograd tensor by tensor."""
    bump = torch.autograd.graph.increment_version

    def one_at_a_time(tensor):
        if isinstance(tensor, (list, tuple)):
            raise RuntimeError("increment_version expect a Tensor as input")
        bump(tensor)

    monkeypatch.setattr(torch.autograd.graph, "increment_version", one_at_a_time)
    monkeypatch.setattr(engine, "_LIST_VERSIONS", True)
    tensors = [torch.zeros(3), torch.zeros(2)]
    for n in (1, 2):  # the second time without trying the list first
        engine._bump_versions(tensors)
        assert [t._version for t in tensors] == [n, n]
    assert engine._LIST_VERSIONS is False
