"""``decoded_state``: the moments as numbers where ``state_precision`` keeps them compact
(an int8 state's ``exp_avg`` is a tensor of uint8 codes, whose norm means nothing)."""

import pytest
import torch

import optimlab
from optimlab.optim.compact import dynamic_code


def _pair(precision, n=1000, steps=5):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(n))
    v = torch.nn.Parameter(w.detach().clone())
    compact = optimlab.AdamW([w], lr=1e-2, state_precision=precision)
    full = optimlab.AdamW([v], lr=1e-2)
    for _ in range(steps):
        g = torch.randn(n)
        w.grad, v.grad = g.clone(), g.clone()
        compact.step()
        full.step()
    return compact, w, full, v


def test_int8_moments_decode_to_the_documented_code_times_each_blocks_scale():
    """The README's format, applied by hand: value = level[code] x the absmax of its block of
    256 (levels from the dynamic code; unsigned for the second moment)."""
    opt, w, _, _ = _pair("int8")
    state = opt.state[w]
    assert state["exp_avg"].dtype == torch.uint8  # what a user reading state[p] sees
    decoded = opt.decoded_state(w)
    assert set(decoded) == {"step", "exp_avg", "exp_avg_sq"}
    for name, signed in (("exp_avg", True), ("exp_avg_sq", False)):
        codes, scale = state[name].long(), state[name + "_absmax"].float()
        by_hand = dynamic_code(signed)[codes] * scale.repeat_interleave(256)[:codes.numel()]
        assert decoded[name].dtype == torch.float32
        assert torch.equal(decoded[name], by_hand)
    assert state["exp_avg"].dtype == torch.uint8  # the optimizer's own state is unchanged


def test_decoded_moments_are_near_a_full_precision_runs():
    """Against AdamW without ``state_precision`` on the same gradients: within 5% in norm
    after five steps (measured 1.7% and 0.9%: the code's rounding, each step); bfloat16
    comes back in the parameter's dtype."""
    for precision in ("int8", "bfloat16"):
        opt, w, full, v = _pair(precision)
        decoded = opt.decoded_state(w)
        for name in ("exp_avg", "exp_avg_sq"):
            want = full.state[v][name]
            assert decoded[name].dtype == torch.float32
            assert ((decoded[name] - want).norm() / want.norm()).item() < 0.05


def test_a_full_precision_state_and_a_parameter_without_one_and_a_stranger():
    _, _, full, v = _pair(None)
    assert full.decoded_state(v).keys() == full.state[v].keys()
    fresh = torch.nn.Parameter(torch.zeros(3))
    opt = optimlab.Adam([fresh])
    assert opt.decoded_state(fresh) == {}
    with pytest.raises(ValueError, match="not one of the optimizer's parameters"):
        opt.decoded_state(torch.zeros(3))


def test_the_state_given_is_a_copy():
    _, _, full, v = _pair(None)
    before = full.state[v]["exp_avg"].clone()
    full.decoded_state(v)["exp_avg"].zero_()
    assert torch.equal(full.state[v]["exp_avg"], before)
