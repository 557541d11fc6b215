"""Moments kept compact between steps (``state_precision``, optimlab.optim.compact).

The codec's error bounds are derived from the code itself (half the widest gap between
adjacent levels, times the block's scale; one bfloat16 ulp), not from a machine's rounding.
The optimizer tests run every catalog case whose class lists moments in its capability
record, so a new optimizer with moments gets them by adding its line to ``cases.py``.
"""

from __future__ import annotations

import copy

import pytest
import torch

import optimlab
from optimlab.optim import compact
from optimlab.optim.population import Population
from tests.optim.cases import DENSE_CASES
from tests.problems import loss_fn, make_params, train_steps

PRECISIONS = compact.PRECISIONS
COMPACT_CASES = [pytest.param(case, id=case.id) for case in DENSE_CASES
                 if case.capabilities.compact_moments]


def _wide(seed=0, rows=3, n=1000):
    g = torch.Generator().manual_seed(seed)
    # values over five decades inside one block: what a second moment looks like
    return torch.randn(rows, n, generator=g) * torch.logspace(-3, 2, n)


@pytest.mark.parametrize("signed", [True, False])
def test_code_levels(signed):
    code = compact.dynamic_code(signed)
    assert len(code) <= 256 and torch.all(code[1:] > code[:-1])
    assert code.max() == 1 and (code.min() == -1 if signed else code.min() == 0)
    assert 0 in code.tolist()


@pytest.mark.parametrize("signed", [True, False])
def test_int8_roundtrip_error_is_within_half_a_gap_of_each_block(signed):
    x = _wide()
    x = x if signed else x * x
    codes, scale = compact.encode(x, "int8", signed=signed, rows=3)
    assert codes.dtype == torch.uint8 and codes.shape == x.shape
    assert scale.shape == (3, -(-1000 // compact.BLOCK))
    back = compact.decode(codes, scale, "int8", signed=signed, dtype=torch.float32, rows=3)
    code = compact.dynamic_code(signed)
    half_gap = float((code[1:] - code[:-1]).max()) / 2
    blocks = torch.nn.functional.pad(x, (0, -1000 % compact.BLOCK)).reshape(3, -1,
                                                                             compact.BLOCK)
    bound = (scale * half_gap * (1 + 1e-6))[..., None].expand_as(blocks).reshape(3, -1)[:, :1000]
    assert torch.all((back - x).abs() <= bound)
    # the largest value of each block is exact (the code holds 1): nothing saturates
    assert torch.equal(back.abs().reshape(3, -1).amax(1), x.abs().amax(1))


def test_blocks_and_dither_restart_at_each_row():
    x = _wide(seed=1)
    for precision in PRECISIONS:
        together = compact.encode(x, precision, signed=True, name="m", rows=3)
        for k in range(3):
            alone = compact.encode(x[k:k + 1], precision, signed=True, name="m", rows=1)
            assert torch.equal(alone[0], together[0][k:k + 1])
            if alone[1] is not None:
                assert torch.equal(alone[1], together[1][k:k + 1])


def test_bfloat16_rounding_is_stochastic_and_unbiased():
    ulp = 2.0**-7  # bfloat16's spacing in [1, 2)
    for fraction in (0.1, 0.25, 0.5, 0.9):
        x = torch.full((1, 200_000), 1.0 + fraction * ulp)
        rounded = compact.encode(x, "bfloat16", signed=True)[0].float()
        assert set(rounded.unique().tolist()) == {1.0, 1.0 + ulp}
        # the share rounded up is the fraction, within 5 standard deviations of a binomial
        share = float((rounded > 1).float().mean())
        assert abs(share - fraction) < 5 * (fraction * (1 - fraction) / x.numel()) ** 0.5
    exact = torch.tensor([[0.0, -2.5, 1.0, float("inf"), -float("inf")]])
    assert torch.equal(compact.encode(exact, "bfloat16", signed=True)[0].float(), exact)
    assert compact.encode(torch.tensor([[float("nan")]]), "bfloat16",
                          signed=True)[0].isnan().all()


def test_bad_precision_and_classes_without_moments_are_refused():
    p = [torch.zeros(3, requires_grad=True)]
    with pytest.raises(ValueError, match="state_precision must be None or one of"):
        optimlab.Adam(p, state_precision="float8")
    with pytest.raises(ValueError, match="keeps no moment buffers"):
        optimlab.ASGD([{"params": p, "state_precision": "int8"}])
    with pytest.raises(TypeError):
        optimlab.ASGD(p, state_precision="int8")
    with pytest.raises(ValueError, match="fused=True keeps the state"):
        optimlab.Adam(p, fused=True, state_precision="bfloat16")
    with pytest.raises(ValueError, match="state_precision must be None or one of"):
        optimlab.Adam([{"params": p, "state_precision": "int4"}])


def _run(case, precision, steps, dtype=torch.float32):
    params = make_params(dtype, case.shapes)
    # compact moments step each tensor alone on the plain path: the full-precision run
    # it is held to takes the plain path too (the fused one rounds elsewhere)
    plain = {"fused": False} if case.capabilities.fusable else {}
    opt = case.build(params, state_precision=precision, **plain)
    train_steps(opt, params, steps, -1.0 if case.maximize else 1.0, case.needs_closure)
    return opt, params


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("case", COMPACT_CASES)
def test_moments_are_kept_compact_and_resume_exactly(case, precision):
    moments = case.capabilities.compact_moments
    full_opt, full_params = _run(case, None, 1)
    opt, params = _run(case, precision, 1)
    # the first step starts from init's exact state: only what is kept differs
    for a, b in zip(params, full_params):
        assert torch.equal(a, b)
    opt_params = params
    train_steps(opt, opt_params, 9, -1.0 if case.maximize else 1.0, case.needs_closure)
    held = 0
    for p in opt_params:
        state = opt.state[p]
        for name in moments:
            if isinstance(state.get(name), torch.Tensor):
                held += 1
                want = torch.bfloat16 if precision == "bfloat16" else torch.uint8
                assert state[name].dtype == want and state[name].shape == p.shape
                assert (name + compact.SCALE in state) == (precision == "int8")
    kept_by_float = sum(isinstance(full_opt.state[p].get(name), torch.Tensor)
                        for p in full_params for name in moments)
    assert held == kept_by_float  # (plain SGD keeps none)
    # a checkpoint resumes to the same bits (torch's load casts to float; the load encodes
    # again, exactly)
    saved = copy.deepcopy(opt.state_dict())
    twins = [p.detach().clone().requires_grad_() for p in opt_params]
    twin = case.build(twins, state_precision=precision)
    twin.load_state_dict(saved)
    for o, ps in ((opt, opt_params), (twin, twins)):
        train_steps(o, ps, 3, -1.0 if case.maximize else 1.0, case.needs_closure)
    for a, b in zip(opt_params, twins):
        assert torch.equal(a, b)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_state_bytes_per_parameter(precision):
    p = torch.zeros(64 * compact.BLOCK, requires_grad=True)
    opt = optimlab.Adam([p], lr=1e-3, state_precision=precision)
    p.grad = torch.randn_like(p)
    opt.step()
    moments = {k: v for k, v in opt.state[p].items() if k != "step"}
    per_param = compact.state_bytes(moments) / p.numel()
    assert per_param == {"bfloat16": 4.0, "int8": 2 * (1 + 4 / compact.BLOCK)}[precision]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_float_checkpoint_loads_into_a_compact_optimizer_and_back(precision):
    params = make_params(torch.float32)
    opt = optimlab.Adam(params, lr=0.01)
    train_steps(opt, params, 5)
    compact_opt = optimlab.Adam(params, lr=0.01, state_precision=precision)
    compact_opt.load_state_dict(opt.state_dict())
    assert compact_opt.state[params[0]]["exp_avg"].dtype != torch.float32
    plain = optimlab.Adam(params, lr=0.01)
    plain.load_state_dict(compact_opt.state_dict())
    # how moments are stored is the loading optimizer's choice, not the checkpoint's
    assert plain.param_groups[0]["state_precision"] is None
    assert plain.state[params[0]]["exp_avg"].dtype == torch.float32
    assert not any(k.endswith(compact.SCALE) for k in plain.state[params[0]])
    train_steps(plain, params, 2)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name, mode", [("adam", "elementwise"), ("lamb", "vmap")])
def test_population_members_keep_their_own_compact_state(name, mode, precision):
    # shared hyperparameters: the batched arithmetic is the single run's, so each member's
    # blocks and dither must be its own for the paths to agree to the bit
    starts = [make_params(torch.float32, seed=seed) for seed in range(3)]
    params = [torch.stack([s[i] for s in starts]).detach().requires_grad_()
              for i in range(len(starts[0]))]
    pop = Population(name, params, {"lr": 0.01, "state_precision": precision})
    assert pop.mode == mode
    for _ in range(10):
        for p in params:
            p.grad = None
        sum(loss_fn([p[k] for p in params]) for k in range(3)).backward()
        pop.step()
    for k, start in enumerate(starts):
        single = [s.detach().clone().requires_grad_() for s in start]
        opt = optimlab.create(name, single, lr=0.01, state_precision=precision)
        train_steps(opt, single, 10)
        for batched, alone in zip(params, single):
            torch.testing.assert_close(batched[k].detach(), alone.detach(), rtol=0, atol=0)
