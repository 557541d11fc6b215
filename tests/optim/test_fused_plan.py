"""The fused step's saved plan against a parameter that changed under it, and the state
layouts it can step: a parameter given new data of another shape or layout at the same
address (``p.data = p.data[:k]``) is not stepped by the old plan, an SGD momentum buffer
started from a transposed gradient is still fused, and a compact state is decoded whatever
parameter comes first in its group."""

import pytest
import torch
from torch.nn import Parameter

import optimlab


def test_a_parameter_shrunk_in_place_is_not_stepped_by_the_old_plan():
    """``p.data = p.data[:10]`` keeps the address: the old plan would read 100,000 numbers
    of a 10-number gradient. The step is refused instead, naming the state of the old size
    (torch.optim.Adam says only "must match the size")."""
    p = Parameter(torch.zeros(100_000))
    opt = optimlab.Adam([p], lr=0.1)  # fused=None: the kernel steps where it can
    p.grad = torch.ones_like(p)
    opt.step()
    p.data = p.data[:10]
    p.grad = torch.ones(10)
    with pytest.raises(RuntimeError, match=r"state 'exp_avg' is of shape \(100000,\), made for "
                                           r"another shape"):
        opt.step()
    assert opt.state[p]["exp_avg"].shape == (100_000,)  # not stepped over the old extent


@pytest.mark.parametrize("fused", [None, False])
def test_a_parameter_transposed_in_place_steps_as_on_the_plain_path(fused):
    """A square matrix given its transpose as data keeps its address and shape: the plan
    built for the contiguous one must not pair its memory with the gradient's elements."""
    p = Parameter(torch.arange(16.0).reshape(4, 4))
    opt = optimlab.SGD([p], lr=0.1, momentum=0.5, fused=fused)
    p.grad = torch.ones(4, 4)
    opt.step()
    p.data = p.data.t()
    p.grad = torch.arange(16.0).reshape(4, 4)
    opt.step()
    q = Parameter(torch.arange(16.0).reshape(4, 4))
    ref = torch.optim.SGD([q], lr=0.1, momentum=0.5)
    q.grad = torch.ones(4, 4)
    ref.step()
    q.data = q.data.t()
    q.grad = torch.arange(16.0).reshape(4, 4)
    ref.step()
    assert torch.equal(p, q)


@pytest.mark.parametrize("fused", [True, None])
def test_sgd_momentum_started_from_a_transposed_gradient_keeps_fusing(fused):
    """The first step's buffer is the gradient's copy: contiguous, so that the kernel can
    step it in place later (a transposed one made fused=True refuse on step 2)."""
    torch.manual_seed(0)
    grads = [torch.randn(4, 6).t() for _ in range(3)]  # non-contiguous, as autograd may give
    p = Parameter(torch.randn(6, 4))
    q = Parameter(p.detach().clone())
    opt = optimlab.SGD([p], lr=1e-2, momentum=0.9, fused=fused)
    ref = torch.optim.SGD([q], lr=1e-2, momentum=0.9)
    for g in grads:
        p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    assert opt.state[p]["momentum_buffer"].is_contiguous()
    # bit-exact: one multiply-add per element in both, as the parity tests hold SGD
    assert torch.equal(p, q)
    assert len(opt.engine.plans) == 1  # the group has a fused plan (None: it fused too)


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
@pytest.mark.parametrize("order", ["scalar first", "matrix first"])
def test_turning_state_precision_off_decodes_a_group_led_by_a_0d_parameter(precision, order):
    s, w = Parameter(torch.tensor(0.5)), Parameter(torch.randn(4, 4))
    opt = optimlab.Adam([s, w] if order == "scalar first" else [w, s], lr=1e-2,
                        state_precision=precision)
    for _ in range(2):
        s.grad, w.grad = torch.tensor(1.0), torch.ones(4, 4)
        opt.step()
    assert opt.state[w]["exp_avg"].dtype != torch.float32  # compact
    opt.param_groups[0]["state_precision"] = None
    s.grad, w.grad = torch.tensor(1.0), torch.ones(4, 4)
    opt.step()
    assert {k: v.dtype for k, v in opt.state[w].items()} == dict.fromkeys(
        ("step", "exp_avg", "exp_avg_sq"), torch.float32)
