"""Edges of a population that an audit found: a member whose step raises, schedule-free
optimizers inside a wrapper, the fused path over mixed dtypes and complex parameters, and
hyperparameters given in a form the optimizer alone takes (a tensor of one element) or
that reads otherwise than meant (``betas`` as a list).
"""

import pytest
import torch

import optimlab
from optimlab import Population
from optimlab.optim.population import has_eval_mode

LRS = [1e-2, 2e-2, 3e-2]


def _grads(shapes, steps, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=gen, dtype=dtype) for s in shapes] for _ in range(steps)]


# -- a member whose step raises --------------------------------------------------------------
def _shampoo_alone(start, grad):
    """Shampoo alone on one member: its parameter after one step, or the error it raised."""
    p = start.clone().requires_grad_()
    opt = optimlab.create("shampoo", [p])
    p.grad = grad.clone()
    try:
        opt.step()
    except Exception as err:  # noqa: BLE001 - the test compares the error
        return p.detach(), err
    return p.detach(), None


@pytest.mark.parametrize("bad", [[1], [0, 2]], ids=["member 1", "members 0 and 2"])
def test_a_member_that_raises_does_not_stop_the_others(bad):
    """Shampoo's SVD fails on a non-finite gradient. Every other member still takes the step
    it takes alone, and one error of the failure's own type (a LinAlgError, so a
    RuntimeError handler still catches it) names the members that failed."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, 4, dtype=torch.float64, generator=gen)
    grad = torch.randn(3, 4, 4, dtype=torch.float64, generator=gen)
    for k in bad:
        grad[k, 0, 0] = float("nan")
    W = start.clone()
    pop = Population("shampoo", [W], {})
    with pytest.raises(torch.linalg.LinAlgError) as info:
        pop.step(grads=[grad])
    which = "member 1" if bad == [1] else "members 0, 2"
    assert str(info.value).startswith(f"{which} of 3 failed to step (the others stepped): "
                                      f"member {bad[0]}: ")
    # the failure's own text (Shampoo's, which says why the SVD failed)
    assert "the SVD of a preconditioner factor failed: the factor holds inf or NaN" in str(info.value)
    assert info.value.failed_members == bad
    assert isinstance(info.value.__cause__, torch.linalg.LinAlgError)
    for k in range(3):
        alone, err = _shampoo_alone(start[k], grad[k])
        assert (err is not None) == (k in bad)
        assert torch.equal(W[k], alone), k  # stepped as alone, or left as alone leaves it
    # a population of one raises its member's own error, as the optimizer alone does
    k = bad[0]
    _, alone = _shampoo_alone(start[k], grad[k])
    with pytest.raises(torch.linalg.LinAlgError) as info:
        Population("shampoo", [start[k:k + 1].clone()], {}).step(grads=[grad[k:k + 1]])
    assert str(info.value) == str(alone)


def test_sam_members_step_on_when_one_base_step_raises():
    """SAM's two phases: member 1's base optimizer (Shampoo) raises in the second phase;
    members 0 and 2 finish their SAM step as they do alone."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, 4, dtype=torch.float64, generator=gen)
    scale = torch.tensor([1.0, float("nan"), 2.0], dtype=torch.float64)
    W = start.clone().requires_grad_()
    pop = Population("sam", [W], {"base_optimizer": "shampoo", "rho": 0.05})

    def closure():
        W.grad = None
        loss = (scale[:, None, None] * W ** 2).sum((1, 2))
        loss.sum().backward()
        return loss.detach()

    with pytest.raises(RuntimeError, match=r"^member 1 of 3 failed to step \(the others stepped\)"):
        pop.step(closure)
    for k in (0, 2):
        p = start[k].clone().requires_grad_()
        opt = optimlab.create("sam", [p], base_optimizer="shampoo", rho=0.05)

        def alone(p=p, k=k):
            opt.zero_grad()
            loss = (scale[k] * p ** 2).sum()
            loss.backward()
            return loss
        opt.step(alone)
        assert torch.equal(W[k].detach(), p.detach()), k


# -- schedule-free optimizers inside a wrapper -------------------------------------------------
def _sf_lookahead(start, lr, steps):
    p = start.clone().requires_grad_()
    opt = optimlab.create("lookahead", [p], inner="schedulefreeadamw", lr=lr, k=3)
    for _ in range(steps):
        p.grad = 2 * p.detach()
        opt.step()
    return p, opt


def test_wrappers_have_an_eval_mode_where_what_they_wrap_has_one():
    w = torch.zeros(2, requires_grad=True)
    assert has_eval_mode(optimlab.create("lookahead", [w], inner="schedulefreeadamw"))
    assert has_eval_mode(optimlab.create("sam", [w], base_optimizer="schedulefreeadamw"))
    assert has_eval_mode(optimlab.Lookahead(optimlab.Lookahead(optimlab.ScheduleFreeSGD([w]))))
    assert not has_eval_mode(optimlab.create("lookahead", [w], inner="adam"))
    assert not has_eval_mode(optimlab.create("sam", [w], base_optimizer="sgd"))
    # where the wrapped optimizer has none, eval() and train() leave the parameters alone
    p = torch.ones(3, requires_grad=True)
    opt = optimlab.create("lookahead", [p], inner="adam", lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    before = p.detach().clone()
    opt.eval()
    opt.train()
    assert torch.equal(p.detach(), before)


def test_a_lookahead_population_moves_its_schedule_free_members_to_x():
    """``Population.eval()`` over Lookahead(ScheduleFreeAdamW) members puts each at the
    point a Lookahead alone reaches with ``eval()`` (x, not the gradient point y), and
    ``train()`` puts it back."""
    start = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    W = start.clone()
    pop = Population("lookahead", [W], {"inner": "schedulefreeadamw", "lr": LRS, "k": 3})
    for _ in range(7):
        pop.step(grads=[2 * W])
    y = W.clone()
    alone = [_sf_lookahead(start[k], lr, 7) for k, lr in enumerate(LRS)]
    for k, (p, _) in enumerate(alone):
        assert torch.equal(W[k], p.detach()), k  # at y, as alone
    pop.eval()
    assert not torch.equal(W, y)
    for k, (p, opt) in enumerate(alone):
        opt.eval()
        assert torch.equal(W[k], p.detach()), k  # at x, as alone
    pop.train()
    torch.testing.assert_close(W, y, rtol=0, atol=1e-12)  # a lerp there and back


def test_a_sam_population_moves_its_schedule_free_members_to_x():
    start = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    W = start.clone().requires_grad_()
    pop = Population("sam", [W], {"base_optimizer": "schedulefreeadamw", "lr": LRS})

    def closure():
        W.grad = None
        loss = (W ** 2).sum(1)
        loss.sum().backward()
        return loss.detach()

    for _ in range(5):
        pop.step(closure)
    y = W.detach().clone()
    pop.eval()
    assert not torch.equal(W.detach(), y)
    for k, lr in enumerate(LRS):
        p = start[k].clone().requires_grad_()
        opt = optimlab.create("sam", [p], base_optimizer="schedulefreeadamw", lr=lr)

        def alone(p=p):
            opt.zero_grad()
            loss = (p ** 2).sum()
            loss.backward()
            return loss
        for _ in range(5):
            opt.step(alone)
        opt.eval()
        assert torch.equal(W[k].detach(), p.detach()), k
    pop.train()
    torch.testing.assert_close(W.detach(), y, rtol=0, atol=1e-12)


def test_lookahead_takes_no_slow_weights_from_a_refused_step():
    """A step in eval mode is refused by the schedule-free inner optimizer; the Lookahead
    then keeps no slow weights taken at that point, so after ``train()`` it runs as one
    that never tried (its slow weights start where its first step does)."""
    start = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    p = start.clone().requires_grad_()
    opt = optimlab.create("lookahead", [p], inner="schedulefreeadamw", lr=0.05, k=3)
    for _ in range(4):
        p.grad = 2 * p.detach()
        opt.step()
    opt.eval()
    slow = opt.state[p]["slow_param"].clone()
    p.grad = 2 * p.detach()
    with pytest.raises(RuntimeError, match="called in eval mode"):
        opt.step()
    assert opt.la_steps == 4 and torch.equal(opt.state[p]["slow_param"], slow)
    opt.train()

    here = p.detach().clone()
    fresh = optimlab.create("lookahead", [p], inner="schedulefreeadamw", lr=0.05, k=3)
    fresh.eval()
    with pytest.raises(RuntimeError, match="called in eval mode"):
        fresh.step()
    assert p not in fresh.state
    assert not any("lookahead_slow_param" in entry for entry in fresh.state_dict()["state"].values())
    fresh.train()
    for _ in range(5):
        p.grad = 2 * p.detach()
        fresh.step()
    never_tried, _ = _sf_lookahead(here, 0.05, 5)
    assert torch.equal(p.detach(), never_tried.detach())


def test_sam_refuses_eval_between_its_two_phases():
    p = torch.ones(3, requires_grad=True)
    opt = optimlab.create("sam", [p], base_optimizer="schedulefreeadamw", lr=0.1)
    (p ** 2).sum().backward()
    opt.first_step()
    with pytest.raises(RuntimeError, match=r"SAM.eval\(\) called between first_step"):
        opt.eval()


def test_a_race_ends_a_lookahead_over_schedule_free_at_its_average():
    from optimlab.landscapes import get, race

    land = get("rosenbrock")
    result = race(land, {"la": {"name": "lookahead", "inner": "schedulefreeadamw",
                                "lr": 0.05}}, steps=60)
    x = torch.tensor(land.start, dtype=torch.float64).requires_grad_()
    opt = optimlab.create("lookahead", [x], inner="schedulefreeadamw", lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        land.values(x.unsqueeze(0)).sum().backward()
        opt.step()
    at_y = x.detach().clone()
    opt.eval()
    assert not torch.equal(at_y, x.detach())
    assert torch.equal(torch.as_tensor(result.paths["la"])[-1].reshape(-1), x.detach())


@pytest.mark.parametrize("engine", ["population", "sequential"])
def test_the_trainer_evaluates_a_schedule_free_inner_optimizer_at_x(engine, monkeypatch):
    """Both engines switch a Lookahead's schedule-free inner optimizer to x around each
    evaluation (and back to y to train on)."""
    from optimlab.bench.trainer import Member, TrainConfig, train_population, train_sequential
    from optimlab.optim.schedule_free import ScheduleFree
    from tests.bench.toy import ToyTask

    calls = []
    for mode in ("eval", "train"):
        original = getattr(ScheduleFree, mode)
        monkeypatch.setattr(ScheduleFree, mode,
                            lambda self, original=original, mode=mode: (calls.append(mode),
                                                                        original(self)))
    train = train_population if engine == "population" else train_sequential
    members = [Member("lookahead", {"inner": "schedulefreeadamw", "lr": lr}, 0)
               for lr in (1e-2, 3e-2)]
    runs = train(ToyTask(), TrainConfig(steps=4, batch_size=16, eval_every=2), members)
    assert all(run.error is None for run in runs)
    # three evaluations (steps 0, 2 and 4) of two members, each an eval() then a train()
    assert calls.count("eval") == calls.count("train") == 6


# -- the fused path over mixed dtypes and complex parameters ----------------------------------
def _fused_alone(name, starts, k, hp, grads):
    params = [s[k].clone().requires_grad_() for s in starts]
    opt = optimlab.create(name, params, fused=True, **hp)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g[k].clone()
        opt.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("fused", [None, True])
@pytest.mark.parametrize("name, dtypes", [
    ("lamb", (torch.float64, torch.float32)),
    ("adam", (torch.float32, torch.float64)),
    ("adam", (torch.complex128,)),
    ("adamw", (torch.complex64, torch.float64)),
])
def test_mixed_dtypes_and_complex_parameters_fuse_as_the_optimizer_alone(name, dtypes, fused):
    """One kernel per dtype (complex as its real view), as the optimizer's own fused step:
    each member bit for bit the optimizer alone with fused=True."""
    shapes = [(3, 4, 3), (3, 5)][:len(dtypes)]
    gen = torch.Generator().manual_seed(0)
    starts = [torch.randn(s, dtype=d, generator=gen) for s, d in zip(shapes, dtypes)]
    grads = [[torch.randn(s, dtype=d, generator=gen) for s, d in zip(shapes, dtypes)]
             for _ in range(6)]
    params = [s.clone() for s in starts]
    pop = Population(name, params, {"lr": [0.1, 0.2, 0.3], "fused": fused})
    for step_grads in grads:
        pop.step(grads=step_grads)
    for k, lr in enumerate([0.1, 0.2, 0.3]):
        for got, want in zip(params, _fused_alone(name, starts, k, {"lr": lr}, grads)):
            assert torch.equal(got[k], want), (k, got.dtype)
    assert pop._plan is not None  # the population's own fused path took them


def test_a_gradient_that_no_longer_fits_steps_no_kernel():
    """With two kernels, a gradient of the wrong dtype for the second is found before the
    first steps: the plain path refuses it and nothing moved."""
    p32, p64 = torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64)
    pop = Population("adam", [p32, p64], {"lr": [0.1, 0.2]})
    pop.step(grads=[torch.ones(2, 3), torch.ones(2, 3, dtype=torch.float64)])
    assert pop._plan is not None  # fused: a kernel for each dtype
    before = [p32.clone(), p64.clone()]
    with pytest.raises(ValueError, match="gradient 1 has shape"):
        pop.step(grads=[torch.ones(2, 3), torch.ones(2, 3)])
    assert torch.equal(p32, before[0]) and torch.equal(p64, before[1])


# -- hyperparameters -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["adam", "lamb", "lookahead"])
def test_a_one_element_tensor_is_one_value_for_every_member(name):
    """As the optimizer alone takes ``lr=torch.tensor([0.01])``: with K = 3 members it is
    the rate of each (a 1-D tensor of K values is one per member)."""
    start = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grads = _grads([(3, 4)], 3)
    runs = []
    for lr in (torch.tensor([0.01], dtype=torch.float64),
               torch.tensor([[0.01]], dtype=torch.float64), 0.01):
        params = [start.clone()]
        pop = Population(name, params, {"lr": lr})
        for g in grads:
            pop.step(grads=g)
        runs.append(params[0])
    assert torch.equal(runs[0], runs[2]) and torch.equal(runs[1], runs[2])
    assert not torch.equal(runs[0], start)


def test_a_betas_list_is_per_member_and_the_refusal_says_to_give_a_tuple():
    hint = r"betas: a list is read as one value per member; give a tuple \(0.9, 0.999\) for " \
           r"a value all members share"
    with pytest.raises(ValueError, match=rf"^member 0: betas must be a pair.*; {hint}$"):
        Population("adam", [torch.zeros(2, 3)], {"betas": [0.9, 0.999]})
    with pytest.raises(ValueError, match=rf"^betas has 2 values for 3 members; {hint}$"):
        Population("adam", [torch.zeros(3, 3)], {"betas": [0.9, 0.999]})
    with pytest.raises(ValueError, match=rf"^member 0: betas must be a pair.*; {hint}$"):
        Population("sam", [torch.zeros(2, 3)], {"base_optimizer": "adam", "betas": [0.9, 0.999]})
    pop = Population("adam", [torch.zeros(2, 3)], {})
    with pytest.raises(ValueError, match=rf"^member 0: betas must be a pair.*; {hint}$"):
        pop.set_hparam("betas", [0.9, 0.999])
    # a list refused for another reason gets no hint; a tuple is shared
    with pytest.raises(ValueError, match=r"^member 1: lr must be [^;]*$"):
        Population("adam", [torch.zeros(2, 3)], {"lr": [0.1, -1.0]})
    Population("adam", [torch.zeros(2, 3)], {"betas": (0.9, 0.999)})


@pytest.mark.parametrize("name, hparams", [("sam", {"rho": 0.05}), ("sophia", {})])
def test_a_closure_raising_between_two_phases_leaves_every_member_where_it_was(name, hparams):
    """The population's one closure call between the phases raises: every member is back
    at its point (not left at SAM's or Sophia's probe point) and the error goes on."""
    start = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    W = start.clone().requires_grad_()
    pop = Population(name, [W], {"lr": LRS, **hparams})
    calls = []

    def closure():
        calls.append(W.detach().clone())
        if len(calls) == 2:
            raise FloatingPointError("second pass")
        W.grad = None
        loss = (W**2).sum(1)
        loss.sum().backward()
        return loss.detach()

    with pytest.raises(FloatingPointError, match="second pass"):
        pop.step(closure)
    assert not torch.equal(calls[1], start)  # the members had moved to the probe point
    assert torch.equal(W.detach(), start)
