"""ScheduleFreeAdamW and ScheduleFreeSGD equal the reference implementation (the
`schedulefree` package)."""

import pytest
import torch

schedulefree = pytest.importorskip("schedulefree")

from tests.optim.cases import CASES  # noqa: E402
from tests.problems import (  # noqa: E402
    assert_as_accurate_as,
    assert_params_close,
    loss_fn,
    make_params,
    nudge,
)

REFERENCES = {"ScheduleFreeAdamW": schedulefree.AdamWScheduleFree,
              "ScheduleFreeSGD": schedulefree.SGDScheduleFree}


def _run(opt, params, steps, sign):
    opt.train()
    for _ in range(steps):
        opt.zero_grad()
        (sign * loss_fn(params)).backward()
        opt.step()
    train_point = [p.detach().clone() for p in params]
    opt.eval()
    return train_point, [p.detach().clone() for p in params]


def _reference(case, dtype, ulps=0):
    """The package's run of ``case`` (its train point and its eval point), started ``ulps``
    ulps away from the starting point."""
    params = make_params(dtype)
    if ulps:
        nudge(params, ulps)
    ref = REFERENCES[case.cls_name](params, foreach=False, **case.reference_hp())
    return _run(ref, params, 300, 1.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES["ScheduleFreeAdamW"] + CASES["ScheduleFreeSGD"],
                         ids=lambda c: c.id)
def test_matches_reference(case, dtype):
    """float64 to 1e-10 (as tests/optim/test_parity_torch.py derives it); float32 identical,
    or as close to the exact result (the package's float64 run) as the package's own float32
    runs from the point and one ulp either side (tests/problems.py)."""
    ours_params = make_params(dtype)
    ours = _run(case.build(ours_params), ours_params, 300, -1.0 if case.maximize else 1.0)
    theirs = _reference(case, dtype)
    for k, (mine, reference) in enumerate(zip(ours, theirs, strict=True)):
        if dtype == torch.float64:
            assert_params_close(mine, reference, 1e-10)
        elif not all(torch.equal(a, b) for a, b in zip(mine, reference, strict=True)):
            exact = _reference(case, torch.float64)[k]
            nudged = [_reference(case, dtype, n)[k] for n in (1, -1)]
            assert_as_accurate_as(mine, [reference, *nudged], exact, ("optimlab run", "package run"))


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_step_in_eval_mode_is_an_error(name):
    import optimlab

    params = make_params()
    opt = getattr(optimlab, name)(params)
    opt.eval()
    loss_fn(params).backward()
    with pytest.raises(RuntimeError, match=r"step\(\) was called in eval mode"):
        opt.step()


def test_sgd_momentum_must_be_in_the_open_interval():
    import optimlab

    # x = lerp(y, z, 1 - 1/momentum) needs momentum > 0; the reference refuses 0 and 1 too
    for momentum in (0.0, 1.0):
        with pytest.raises(ValueError, match="momentum"):
            optimlab.ScheduleFreeSGD(make_params(), momentum=momentum)


@pytest.mark.parametrize("name", ["schedulefreeadamw", "schedulefreesgd"])
@pytest.mark.parametrize("fused", [None, False])
def test_a_weight_beyond_float64_says_which_hyperparameter(name, fused):
    """t^r overflows float64 at t = 35 for r = 200: the step says so in words (it was
    float's bare "Numerical result out of range"), on every path and in a population."""
    from optimlab.optim.population import Population
    from optimlab.optim.registry import create

    p = torch.nn.Parameter(torch.ones(3))
    opt = create(name, [p], lr=1e-3, r=200.0, fused=fused)
    with pytest.raises(OverflowError, match=r"t = 35, r = 200\) is beyond float64.*smaller r"):
        for _ in range(40):
            p.grad = torch.ones(3)
            opt.step()
    x = torch.ones(2, 3, requires_grad=True)
    pop = Population(name, [x], {"lr": [1e-3, 1e-2], "r": 200.0})
    with pytest.raises(OverflowError, match="smaller r"):
        for _ in range(40):
            x.grad = torch.ones(2, 3)
            pop.step()
