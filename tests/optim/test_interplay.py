"""The optimizers work unchanged with torch's schedulers, clipping, SWA and GradScaler."""

import pytest
import torch
from torch.optim import lr_scheduler, swa_utils

from tests.optim.cases import ALL_CASES, CASES, DENSE_CASES
from tests.problems import assert_params_close, loss_fn, make_params


def _torch_checked(case) -> bool:
    return case.checked_against.startswith("torch.optim.")

SCHEDULERS = {
    "step": lambda opt: lr_scheduler.StepLR(opt, step_size=10, gamma=0.5),
    "cosine": lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=40),
    "onecycle": lambda opt: lr_scheduler.OneCycleLR(
        opt, max_lr=[2 * g["lr"] for g in opt.param_groups], total_steps=40,
        cycle_momentum="momentum" in opt.defaults or "betas" in opt.defaults),
}


def _train(opt, params, steps, sign=1.0, scheduler=None, clip=None, scaler=None,
           use_closure=False):
    lrs = []
    for _ in range(steps):
        def closure():
            opt.zero_grad()
            loss = sign * loss_fn(params)
            (scaler.scale(loss) if scaler else loss).backward()
            if clip:
                if scaler:
                    scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, clip)
            return loss

        if use_closure:
            opt.step(closure)
        else:
            closure()
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
        lrs.append(opt.param_groups[0]["lr"])
        if scheduler:
            scheduler.step()
    return lrs


def _first_case(name):
    return CASES[name][0]


@pytest.mark.parametrize("sched", sorted(SCHEDULERS))
@pytest.mark.parametrize("case", [c for c in DENSE_CASES if _torch_checked(c) and
                                  not c.hp.get("maximize")], ids=lambda c: c.id)
def test_scheduler_and_clipping_match_torch(case, sched):
    """A scheduler (OneCycle cycles momentum/betas too) and clipping give torch's path."""
    torch_cls = getattr(torch.optim, case.checked_against.removeprefix("torch.optim."))
    runs = []
    for factory in (case.build, lambda ps: torch_cls(ps, **case.reference_hp())):
        params = make_params(torch.float64, case.shapes)
        opt = factory(params)
        lrs = _train(opt, params, 40, scheduler=SCHEDULERS[sched](opt), clip=1.0,
                     use_closure=case.needs_closure)
        runs.append((params, lrs, [dict(g) for g in opt.param_groups]))
    (ours, our_lrs, our_groups), (theirs, their_lrs, _) = runs
    assert our_lrs == their_lrs and len(set(our_lrs)) > 1
    assert_params_close(ours, theirs, 1e-10)


@pytest.mark.parametrize("case", [c for c in ALL_CASES if not _torch_checked(c)],
                         ids=lambda c: c.id)
def test_schedulers_drive_other_optimizers(case):
    for sched in SCHEDULERS.values():
        params = make_params(torch.float64, case.shapes)
        opt = case.build(params)
        sign = -1.0 if case.maximize else 1.0
        start = loss_fn(params).item()
        lrs = _train(opt, params, 40, sign, sched(opt), clip=1.0, use_closure=case.needs_closure)
        assert len(set(lrs)) > 1, "the scheduler did not reach the optimizer's lr"
        assert loss_fn(params).item() < start


@pytest.mark.parametrize("case", [c for c in DENSE_CASES if not c.needs_closure],
                         ids=lambda c: c.id)
def test_grad_scaler_is_transparent(case):
    """Power-of-two loss scaling must not change the path; an inf step is skipped.

    Multiplying by a power of two, and by its inverse, is exact in floating point (short of
    overflow and underflow, which these problems stay far from): every gradient the scaler
    unscales is bit for bit the unscaled one on any CPU, so the paths must be identical."""
    sign = -1.0 if case.maximize else 1.0
    plain = make_params(torch.float32, case.shapes)
    _train(case.build(plain), plain, 30, sign)
    scaled = make_params(torch.float32, case.shapes)
    opt = case.build(scaled)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1000)
    _train(opt, scaled, 30, sign, scaler=scaler)
    for i, (a, b) in enumerate(zip(scaled, plain, strict=True)):
        assert torch.equal(a, b), f"parameter {i}: {(a - b).abs().max().item():.3g} apart"

    before = [p.detach().clone() for p in scaled]
    opt.zero_grad()
    scaler.scale(loss_fn(scaled) * float("inf")).backward()
    scaler.step(opt)
    scaler.update()
    assert all(torch.equal(a, b) for a, b in zip(before, scaled))
    assert scaler.get_scale() < 2.0**10


@pytest.mark.parametrize("name", sorted({c.cls_name for c in DENSE_CASES}))
def test_swa_averaging(name):
    """AveragedModel + SWALR average the iterates the optimizer produced."""
    case = _first_case(name)
    torch.manual_seed(0)
    bias = name != "Muon"  # Muon takes matrices only
    model = torch.nn.Sequential(torch.nn.Linear(4, 3, bias=bias), torch.nn.Tanh(),
                                torch.nn.Linear(3, 2, bias=bias))
    x, y = torch.randn(32, 4), torch.randn(32, 2)
    opt = case.build(list(model.parameters()))
    swa_model = swa_utils.AveragedModel(model)
    swa_sched = swa_utils.SWALR(opt, swa_lr=0.005, anneal_epochs=3)
    snapshots = []
    for _ in range(10):
        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss
        opt.step(closure) if case.needs_closure else (closure(), opt.step())
        swa_model.update_parameters(model)
        swa_sched.step()
        snapshots.append([p.detach().clone() for p in model.parameters()])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.005)
    for k, averaged in enumerate(swa_model.module.parameters()):
        expected = torch.stack([s[k] for s in snapshots]).mean(0)
        torch.testing.assert_close(averaged.detach(), expected)


@pytest.mark.parametrize("engine", [{}, {"fused": True}, {"foreach": False}],
                         ids=["multi-tensor", "fused", "per-tensor"])
def test_sgd_momentum_switched_on_after_the_first_step_matches_torch(engine):
    """A schedule may turn SGD's momentum on after steps without it (torch starts the buffer
    from the gradient then). This is why plain SGD keeps ``momentum_buffer: None`` in its
    state where torch keeps nothing: the engine fixes a rule's state entries at the first step.
    """
    import optimlab

    finals = []
    for make in (lambda p: torch.optim.SGD([p], lr=0.1),
                 lambda p: optimlab.SGD([p], lr=0.1, **engine)):
        p = torch.nn.Parameter(torch.linspace(-1, 1, 7, dtype=torch.float64))
        opt = make(p)
        for t in range(5):
            if t == 2:
                opt.param_groups[0]["momentum"] = 0.9
            p.grad = p.detach() ** 2 - 0.3
            opt.step()
        finals.append(p.detach().clone())
        assert "momentum_buffer" in opt.state[p]
    assert torch.equal(*finals)
