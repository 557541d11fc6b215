"""ScheduleFreeAdamW and ScheduleFreeSGD equal the reference implementation (the
`schedulefree` package)."""

import pytest
import torch

schedulefree = pytest.importorskip("schedulefree")

from tests.optim.cases import CASES  # noqa: E402
from tests.problems import assert_params_close, loss_fn, make_params  # noqa: E402

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


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES["ScheduleFreeAdamW"] + CASES["ScheduleFreeSGD"],
                         ids=lambda c: c.id)
def test_matches_reference(case, dtype, rtol):
    ours_params = make_params(dtype)
    ours = _run(case.build(ours_params), ours_params, 300, -1.0 if case.maximize else 1.0)
    ref_params = make_params(dtype)
    reference = REFERENCES[case.cls_name]
    ref = reference(ref_params, foreach=False, **case.reference_hp())
    theirs = _run(ref, ref_params, 300, 1.0)
    for mine, reference in zip(ours, theirs):
        assert_params_close(mine, reference, rtol)


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
