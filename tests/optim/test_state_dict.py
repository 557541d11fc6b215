"""state_dict round trips resume exactly; foreign or mismatched state is refused."""

import copy
import io

import pytest
import torch

import optimlab
from tests.optim.cases import ALL_CASES
from tests.problems import loss_fn, make_params, train_steps


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_resume_is_bit_identical(case):
    sign = -1.0 if case.maximize else 1.0
    params = make_params(torch.float64, case.shapes)
    opt = case.build(params)
    train_steps(opt, params, 200, sign, case.needs_closure)

    params_a = make_params(torch.float64, case.shapes)
    opt_a = case.build(params_a)
    train_steps(opt_a, params_a, 100, sign, case.needs_closure)
    buffer = io.BytesIO()
    torch.save({"opt": opt_a.state_dict(), "params": [p.detach() for p in params_a]}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)

    params_b = [p.clone().requires_grad_() for p in saved["params"]]
    opt_b = case.build(params_b)
    opt_b.load_state_dict(saved["opt"])
    train_steps(opt_b, params_b, 100, sign, case.needs_closure)

    for uninterrupted, resumed in zip(params, params_b):
        assert torch.equal(uninterrupted, resumed)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_state_dict_from_other_model_is_refused(case):
    params = make_params(torch.float64, case.shapes)
    opt = case.build(params)
    train_steps(opt, params, 3, 1.0, case.needs_closure)
    saved = copy.deepcopy(opt.state_dict())

    fewer = make_params(torch.float64, case.shapes[:1])
    with pytest.raises(ValueError):
        case.build(fewer).load_state_dict(saved)

    bigger_shapes = [tuple(s + 1 for s in shape) for shape in case.shapes]
    other = make_params(torch.float64, bigger_shapes)
    with pytest.raises(ValueError, match="shape|another model"):
        case.build(other).load_state_dict(saved)


def test_state_dict_from_other_optimizer_is_refused():
    params = make_params()
    sgd = optimlab.SGD(params, lr=0.1, momentum=0.9)
    sgd.zero_grad()
    loss_fn(params).backward()
    sgd.step()
    with pytest.raises(ValueError, match="optimlab.SGD.*optimlab.Adam"):
        optimlab.Adam(params).load_state_dict(sgd.state_dict())
    untagged = {k: v for k, v in sgd.state_dict().items() if k != "optimlab"}
    with pytest.raises(ValueError, match="different optimizer"):
        optimlab.Adam(params).load_state_dict(untagged)


def test_torch_state_dict_loads_into_optimlab():
    """Drop-in: a checkpoint written by torch.optim.Adam resumes in optimlab.Adam."""
    ref_params = make_params()
    ref = torch.optim.Adam(ref_params, lr=0.01)
    train_steps(ref, ref_params, 20, 1.0, False)
    params = [p.detach().clone().requires_grad_() for p in ref_params]
    ours = optimlab.Adam(params, lr=0.01)
    # deepcopy: torch's state_dict holds its live state tensors, which it updates in place
    ours.load_state_dict(copy.deepcopy(ref.state_dict()))
    train_steps(ref, ref_params, 20, 1.0, False)
    train_steps(ours, params, 20, 1.0, False)
    for a, b in zip(params, ref_params):
        assert torch.equal(a, b)
