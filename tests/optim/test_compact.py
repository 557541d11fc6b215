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


def test_one_value_at_successive_steps_rounds_unbiased_over_the_steps():
    """The same float32 value encoded at steps 1..400 (what Adam's second moment is under a
    gradient repeated exactly): the dither mixes the step in, so the share rounded up over
    the steps is the fraction, element by element (without the step every step rounded
    one element the same way, and the moment froze); each row's step is its own."""
    ulp = 2.0**-7
    x = torch.full((2, 50), 1.0 + 0.3 * ulp)
    up = torch.zeros(2, 50)
    for step in range(1, 401):
        up += compact.encode(x, "bfloat16", signed=False, name="v", rows=2,
                             step=torch.tensor(float(step)))[0].float() > 1
    share = up / 400
    # each element's share within 5 standard deviations of a binomial of 400
    assert float((share - 0.3).abs().max()) < 5 * (0.3 * 0.7 / 400) ** 0.5
    per_row = compact.encode(x, "bfloat16", signed=False, name="v", rows=2,
                             step=torch.tensor([3.0, 7.0]))[0]
    for k, step in enumerate((3.0, 7.0)):
        alone = compact.encode(x[k:k + 1], "bfloat16", signed=False, name="v",
                               step=torch.tensor(step))[0]
        assert torch.equal(per_row[k:k + 1], alone)


def test_adam_under_a_repeated_gradient_keeps_its_second_moment_in_bfloat16():
    """A gradient repeated exactly for 3000 steps (an audit: the bfloat16 second moment
    froze at 0.16 of g**2 and the parameters moved 2.1x as far as with float32 state): the
    bias-corrected moment averages g**2 within a few bfloat16 ulps, and the parameters move
    as far as with float32 state: on average within 0.2% (0.02% here), each within 5% (the
    dither's noise: 0.8% standard deviation here, so 5% is six of them)."""
    g = torch.rand(2000, generator=torch.Generator().manual_seed(0)) + 0.5
    ends = {}
    for precision in (None, "bfloat16"):
        p = torch.zeros(2000, requires_grad=True)
        opt = optimlab.Adam([p], lr=1e-3, state_precision=precision)
        for _ in range(3000):
            p.grad = g.clone()
            opt.step()
        ends[precision] = p.detach()
        v = opt.state[p]["exp_avg_sq"].float() / (1 - 0.999**3000)
        assert abs(float((v / g**2).mean()) - 1) < 0.02, precision
    ratio = ends["bfloat16"] / ends[None] - 1
    assert abs(float(ratio.mean())) < 0.002 and float(ratio.abs().max()) < 0.05


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


def test_an_int8_checkpoint_does_not_load_as_moments_into_torch_optim():
    # torch's load casts every floating-point entry to the parameter's dtype: 8-bit codes
    # saved under "exp_avg" became moments of 0..255 in torch.optim.AdamW, silently
    params = make_params(torch.float32)
    opt = optimlab.AdamW(params, lr=0.01, state_precision="int8")
    train_steps(opt, params, 3)
    saved = opt.state_dict()
    assert set(saved["state"][0]) == {"step", "exp_avg_codes", "exp_avg_absmax",
                                      "exp_avg_sq_codes", "exp_avg_sq_absmax"}
    twins = [p.detach().clone().requires_grad_() for p in params]
    theirs = torch.optim.AdamW(twins, lr=0.01)
    theirs.load_state_dict(saved)
    for p in twins:
        p.grad = torch.ones_like(p)
    with pytest.raises(KeyError, match="exp_avg"):
        theirs.step()
    # a bfloat16 checkpoint is the moments themselves: torch loads them as floats
    bf16 = optimlab.AdamW(params, lr=0.01, state_precision="bfloat16")
    bf16.load_state_dict(opt.state_dict())
    assert {"exp_avg", "exp_avg_sq"} <= set(bf16.state_dict()["state"][0])


def test_an_int8_checkpoint_with_codes_under_the_moments_name_still_loads():
    # optimlab saved the codes under the moment's own name before; such a checkpoint loads
    # to the same state, and both forms resume to the same bits
    params = make_params(torch.float32)
    opt = optimlab.Adam(params, lr=0.01, state_precision="int8")
    train_steps(opt, params, 3)
    saved = copy.deepcopy(opt.state_dict())
    old = {**saved, "state": {pid: {k.removesuffix(compact.CODES): v for k, v in entries.items()}
                              for pid, entries in saved["state"].items()}}
    twins = []
    for form in (saved, old):
        ps = [p.detach().clone().requires_grad_() for p in params]
        twin = optimlab.Adam(ps, lr=0.01, state_precision="int8")
        twin.load_state_dict(copy.deepcopy(form))  # torch's load may keep the dict's tensors
        assert set(twin.state[ps[0]]) == set(opt.state[params[0]])
        train_steps(twin, ps, 2)
        twins.append(ps)
    train_steps(opt, params, 2)
    for a, b, c in zip(params, *twins):
        assert torch.equal(a, b) and torch.equal(a, c)


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


def _switched(first, then, params=2, steps=4, at=1):
    """Adam on ``params`` tensors (1000 and 300 numbers) with a fixed gradient, its group's
    ``state_precision`` ``first`` and set to ``then`` before step ``at``; the first
    tensor's weights after ``steps`` steps."""
    g = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    ps = [torch.nn.Parameter(torch.randn(n, generator=torch.Generator().manual_seed(1)))
          for n in (1000, 300)[:params]]
    opt = optimlab.Adam(ps, lr=1e-2, state_precision=first)
    for i in range(steps):
        if i == at:
            opt.param_groups[0]["state_precision"] = then
        for p in ps:
            p.grad = g[:p.numel()].clone()
        opt.step()
    return ps[0].detach(), opt


@pytest.mark.parametrize("first, then", [("int8", "bfloat16"), ("int8", None),
                                         ("bfloat16", None), (None, "int8")])
def test_a_precision_switched_between_steps_keeps_the_moments(first, then):
    """int8 -> bfloat16 left the 8-bit scales beside the bfloat16 moments, which were then
    read as codes (signs flipped, frozen: 69 times the distance trained, relative to a run
    kept in bfloat16); int8 or bfloat16 -> None fed the codes to the rule (a crash). Each
    switch now ends as near a run kept at the new precision throughout as the compact forms
    themselves are from full precision: within twice the larger of the two precisions'
    measured distance from a full-precision run (int8 2.4e-2, bfloat16 1.1e-3 here; the
    switches measured 6e-4 to 1.7e-2), relative to the distance trained."""
    start = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    full, _ = _switched(None, None)

    def distance(a, b):
        return float((a - b).norm() / (b - start).norm())

    error = max(distance(_switched(q, q)[0], full) for q in (first, then) if q is not None)
    got, opt = _switched(first, then)
    want, _ = _switched(then, then)
    assert distance(got, want) <= 2 * error
    if then is None:
        state = opt.state[opt.param_groups[0]["params"][0]]
        assert not any(k.endswith(compact.SCALE) for k in state)
        assert state["exp_avg"].dtype == torch.float32


@pytest.mark.parametrize("key, value, match", [
    ("state_precision", "float16", r"^param group 0: state_precision must be None or one of"),
    ("cautious", "no", r"^param group 0: cautious must be a bool, got 'no'$"),
    ("fused", "yes", r"^param group 0: fused must be None, True or False, got 'yes'$"),
])
def test_a_flag_set_on_a_group_later_is_checked_at_the_step(key, value, match):
    """A typo set on a group after construction became int8 ("float16"), turned cautious
    masking on ("no" is truthy) or was ignored; the step refuses it before any group
    steps."""
    p = torch.nn.Parameter(torch.randn(300))
    p.grad = torch.randn(300)
    opt = optimlab.Adam([p])
    opt.param_groups[0][key] = value
    before = p.detach().clone()
    with pytest.raises(ValueError, match=match):
        opt.step()
    assert torch.equal(p, before)
    with pytest.raises(ValueError, match="state_precision must be one of"):
        compact.encode(torch.ones(3), "float16", signed=True)


def test_fused_true_refuses_a_precision_set_later():
    p = torch.nn.Parameter(torch.randn(300))
    p.grad = torch.randn(300)
    opt = optimlab.Adam([p], fused=True)
    opt.param_groups[0]["state_precision"] = "int8"
    with pytest.raises(ValueError, match="fused=True keeps the state in the parameters' dtype"):
        opt.step()


def test_an_int8_second_moment_never_rounds_to_zero_beside_a_first_that_does_not():
    """Coordinates whose gradients are 1e-4 of their block's largest kept exp_avg_sq at the
    zero level while exp_avg was not zero, so Adam stepped up to 36 times lr there (the
    zero-point problem of low-bit states); with the smallest positive level kept instead,
    no coordinate steps further than full precision lets it (measured: 1.8 lr at most)."""
    torch.manual_seed(0)
    d = 256
    scales = torch.logspace(0, -4, d)
    x = torch.randn(2048, d) * scales
    y = x @ (torch.randn(d) / scales)
    steps = {}
    for precision in (None, "int8"):
        w = torch.nn.Parameter(torch.zeros(d))
        opt = optimlab.Adam([w], lr=1e-3, state_precision=precision)
        for _ in range(301):
            before = w.detach().clone()
            opt.zero_grad()
            ((x @ w - y) ** 2).mean().backward()
            opt.step()
        steps[precision] = float(((w.detach() - before).abs() / 1e-3).max())
    assert steps[None] < 2
    assert steps["int8"] <= 2, steps
    codes, _ = compact.encode(torch.tensor([1.0, 1e-9, 0.0]), "int8", signed=False)
    assert codes.tolist() == [len(compact.dynamic_code(False)) - 1, 1, 0]


def test_sophia_checks_a_flag_set_later_before_its_probe_moves_anything():
    """Sophia steps through first_step/second_step, not the base step: the same check."""
    w = torch.nn.Parameter(torch.randn(5))
    opt = optimlab.Sophia([w])
    opt.param_groups[0]["maximize"] = "no"

    def closure():
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    before = w.detach().clone()
    with pytest.raises(ValueError, match=r"^param group 0: maximize must be a bool, got 'no'$"):
        opt.step(closure)
    assert torch.equal(w, before)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_soap_compact_state_moves_as_far_as_float_state(precision):
    """SOAP projects its first moment onto an eigenbasis where the second moment can be
    nearly zero: a rounded first moment was divided by about eps there (a float64
    quadratic moved 81.8 in one step in bfloat16, 0.0104 at most in float64), so only the
    second moment may be kept compact. The largest step with compact state stays within
    twice the float state's (0.0104 against 0.0104 and 0.0017 since)."""
    torch.manual_seed(0)
    start = torch.randn(16, 20, dtype=torch.float64)
    largest = {}
    for kept in (None, precision):
        p = start.clone().requires_grad_()
        opt = optimlab.SOAP([p], lr=3e-3, state_precision=kept)
        moves = []
        for _ in range(40):
            before = p.detach().clone()
            opt.zero_grad()
            ((p - 0.3) ** 2).sum().backward()
            opt.step()
            moves.append(float((p.detach() - before).abs().max()))
        largest[kept] = max(moves)
    assert largest[precision] <= 2 * largest[None], largest
