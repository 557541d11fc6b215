"""A population runs K members of one optimizer at once; member k must follow the path of
the plain optimizer run alone with member k's hyperparameters (float64, 1e-12).

This is what the population trainer and the landscape races rely on, for every optimizer
in the case table: batched rules, vmapped rules (LAMB, Muon) and per-member instances
(SAM, Lookahead, Adafactor, ScheduleFreeAdamW).
"""

import numpy as np
import pytest
import torch

import optimlab
from optimlab import Population
from tests.optim.cases import ALL_CASES, DENSE_CASES
from tests.problems import loss_fn, make_params, train_steps

LR_SCALES = [0.5, 1.0, 2.0]
STEPS = 30


def _registry_hp(case):
    """The case's hyperparameters in the registry's form (wrappers by name)."""
    hp = dict(case.hp)
    if case.cls_name == "Lookahead":
        inner, inner_hp = hp.pop("inner")
        hp = {"inner": inner, **hp, **inner_hp}
    return hp


def _lr(case, hp):
    default = optimlab.resolve(case.cls_name).info.defaults.get("lr")
    if case.cls_name == "Lookahead":
        default = optimlab.resolve(hp["inner"]).info.defaults["lr"]
    return hp.get("lr", default)


def _single_run(case, lr):
    params = make_params(torch.float64, case.shapes)
    hp = {**_registry_hp(case), "lr": lr}
    opt = optimlab.create(case.cls_name, params, **hp)
    train_steps(opt, params, STEPS, -1.0 if case.maximize else 1.0, case.needs_closure)
    return [p.detach() for p in params]


@pytest.mark.parametrize("case", DENSE_CASES, ids=lambda c: c.id)
def test_members_follow_their_own_runs(case, monkeypatch):
    from optimlab.optim import muon

    # bfloat16 batched and single matrix products round differently; in float64 Muon's
    # members must match exactly like everyone else's.
    monkeypatch.setattr(muon, "NS_DTYPE", torch.float64)
    hp = _registry_hp(case)
    lrs = [_lr(case, hp) * scale for scale in LR_SCALES]
    members = [make_params(torch.float64, case.shapes) for _ in lrs]
    params = [torch.stack([m[i] for m in members]).detach().requires_grad_()
              for i in range(len(case.shapes))]
    pop = Population(case.cls_name, params, {**hp, "lr": lrs})
    sign = -1.0 if case.maximize else 1.0

    def closure():  # every member's loss, shape [K], as a population's closure returns
        for p in params:
            p.grad = None
        losses = sign * torch.stack([loss_fn([p[k] for p in params]) for k in range(len(lrs))])
        losses.sum().backward()
        return losses.detach()

    for _ in range(STEPS):
        if case.needs_closure:
            pop.step(closure)
        else:
            closure()
            pop.step()
    for k, lr in enumerate(lrs):
        for batched, single in zip(params, _single_run(case, lr)):
            torch.testing.assert_close(batched[k].detach(), single, rtol=1e-12, atol=1e-12)


def test_modes():
    p = [torch.zeros(2, 3, 3)]
    assert Population("adam", p, {"lr": [0.1, 0.2]}).mode == "elementwise"
    assert Population("lamb", p).mode == "vmap"
    assert Population("muon", p).mode == "vmap"
    assert Population("sam", p).mode == "member"


@pytest.mark.parametrize("hp, match", [
    ({"lr": [0.1, -1.0]}, "member 1: lr"),
    ({"lr": [0.1, 0.2, 0.3]}, "3 values for 2 members"),
    ({"amsgrad": [True, False]}, "amsgrad must be the same"),
])
def test_bad_population_hyperparameters(hp, match):
    with pytest.raises(ValueError, match=match):
        Population("adam", [torch.zeros(2, 3)], hp)


def test_population_checks_without_building_optimizers():
    """Members are checked by the constructor's own code, with presets, building nothing:
    the first torch optimizer of a process imports torch._dynamo (about 2 s), which a
    population must not pay (``benchmarks/end_to_end.py``)."""
    code = (
        "import sys, torch\n"
        "from optimlab import Population\n"
        "pop = Population('momentum', [torch.zeros(3, 4)], {'lr': [0.1, 0.2, 0.3]})\n"
        "print(pop.hparams['momentum'], 'torch._dynamo' in sys.modules)\n"
    )
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["0.9", "False"]  # the alias's preset, and no optimizer built


def test_population_checks_each_members_shape():
    with pytest.raises(ValueError, match=r"Muon only optimizes real 2-D .* shape \(4,\)"):
        Population("muon", [torch.zeros(2, 4)])
    with pytest.raises(ValueError, match="member 0: fused must be None, True or False"):
        Population("adam", [torch.zeros(2, 4)], {"fused": "yes"})


def test_checked_defaults_match_the_constructor():
    """What ``checked_defaults`` returns is the ``defaults`` a built optimizer holds."""
    for name in ("adam", "adamw", "momentum", "nag", "lion", "muon", "lamb", "rmsprop"):
        entry = optimlab.resolve(name)
        if not hasattr(entry.cls, "checked_defaults"):
            continue
        shape = (3, 3) if entry.capabilities.needs_matrix else (3,)
        built = optimlab.create(name, [torch.zeros(shape, requires_grad=True)], lr=0.01)
        assert optimlab.optim.registry.checked_defaults(name, lr=0.01) == built.defaults


def test_per_member_betas():
    start = torch.randn(2, 4, dtype=torch.float64)
    params = [start.clone().requires_grad_()]
    pop = Population("adam", params, {"lr": 0.1, "betas": [(0.9, 0.999), (0.5, 0.9)]})
    single = start[1].clone().requires_grad_()
    opt = optimlab.Adam([single], lr=0.1, betas=(0.5, 0.9))
    for _ in range(10):
        params[0].grad = None
        (params[0] ** 2).sum().backward()
        pop.step()
        opt.zero_grad()
        (single**2).sum().backward()
        opt.step()
    assert isinstance(pop.hparams["betas"][0], torch.Tensor)
    torch.testing.assert_close(params[0][1].detach(), single.detach(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("fused", [None, False])
def test_numpy_rates_and_numbers_are_taken_as_python_ones(fused):
    """Per-member values as a NumPy array (``np.logspace``) and shared ones as NumPy scalars
    give the population of the same Python numbers, bit for bit (before, an array was
    refused: "lr must be a number, got array(...)")."""
    start = torch.randn(4, 6, dtype=torch.float64)
    lrs = np.logspace(-3, -1, 4, dtype=np.float32)
    runs = []
    for hp in ({"lr": lrs, "betas": (np.float32(0.9), np.float64(0.99)), "eps": np.float32(1e-6)},
               {"lr": [float(v) for v in lrs], "betas": (float(np.float32(0.9)), 0.99),
                "eps": float(np.float32(1e-6))}):
        params = [start.clone().requires_grad_()]
        pop = Population("adam", params, {**hp, "fused": fused})
        for _ in range(5):
            params[0].grad = None
            (params[0] ** 2).sum().backward()
            pop.step()
        runs.append(params[0].detach())
    assert torch.equal(*runs)
    with pytest.raises(ValueError, match="lr has 3 values for 4 members"):
        Population("adam", [start.clone().requires_grad_()], {"lr": np.ones(3)})


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.capabilities.sparse_only][:1],
                         ids=lambda c: c.id)
def test_an_optimizer_for_sparse_gradients_only_is_refused(case):
    """A population's gradients are dense: SparseAdam says so instead of failing a step."""
    with pytest.raises(ValueError, match="sparse gradients only"):
        Population(case.cls_name.lower(), [torch.zeros(2, 3)], {"lr": [0.1, 0.2]})
