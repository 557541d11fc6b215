"""The rule functions are the single definition of each algorithm, so they must also run on a
population: parameters with a leading member axis and hyperparameters as tensors along it.

Member k of a batched run must follow the same path as the optimizer run on its own with the
k-th learning rate. This is what the population trainer and the landscape races rely on.
"""

import pytest
import torch

import optimlab
from optimlab.optim.base import RuleOptimizer
from tests.optim.cases import ALL_CASES, Case
from tests.problems import loss_fn, make_params

LR_SCALES = [0.5, 1.0, 2.0]
STEPS = 30
# Rules that reduce over a whole tensor (norms, matrix factors, Newton-Schulz) need
# torch.func.vmap over the member axis; see test_lamb_rule_vmaps_over_members.
WHOLE_TENSOR = {"LAMB", "Adafactor", "Muon"}
RULE_CASES = [c for c in ALL_CASES
              if issubclass(getattr(optimlab, c.cls_name), RuleOptimizer)
              and c.cls_name not in WHOLE_TENSOR | {"ScheduleFreeAdamW"}]


def _member_lr(case, k):
    default_lr = getattr(optimlab, case.cls_name)([torch.zeros(2, 2)]).defaults["lr"]
    return case.hp.get("lr", default_lr) * LR_SCALES[k]


def _batched_run(case):
    cls = getattr(optimlab, case.cls_name)
    defaults = cls([torch.zeros(2, 2)], **case.hp).defaults
    members = [make_params(torch.float64, case.shapes) for _ in LR_SCALES]
    params = [torch.stack([m[i] for m in members]).detach().requires_grad_()
              for i in range(len(case.shapes))]
    sign = -1.0 if case.maximize else 1.0
    lr = torch.tensor([_member_lr(case, k) for k in range(len(LR_SCALES))], dtype=torch.float64)
    states = [None] * len(params)
    for step in range(1, STEPS + 1):
        for p in params:
            p.grad = None
        total = sum(loss_fn([p[k] for p in params]) for k in range(len(LR_SCALES)))
        (sign * total).backward()
        with torch.no_grad():
            for i, p in enumerate(params):
                hp = dict(defaults, lr=lr.reshape((-1,) + (1,) * (p.dim() - 1)))
                g = -p.grad if case.maximize else p.grad
                if states[i] is None:
                    states[i] = cls.init(p, **hp)
                if "step" in states[i]:
                    states[i]["step"] += 1
                p.copy_(cls.update(p, g, states[i], step=step, **hp))
    return params


def _single_runs(case):
    runs = []
    for k in range(len(LR_SCALES)):
        params = make_params(torch.float64, case.shapes)
        opt = Case(case.cls_name, {**case.hp, "lr": _member_lr(case, k)}).build(params)
        sign = -1.0 if case.maximize else 1.0
        for _ in range(STEPS):
            opt.zero_grad()
            (sign * loss_fn(params)).backward()
            opt.step()
        runs.append(params)
    return runs


@pytest.mark.parametrize("case", RULE_CASES, ids=lambda c: c.id)
def test_rule_runs_a_population_with_tensor_hyperparameters(case):
    batched = _batched_run(case)
    for k, single in enumerate(_single_runs(case)):
        for b, s in zip(batched, single):
            torch.testing.assert_close(b[k], s.detach(), rtol=1e-12, atol=1e-12)


def _vmapped_step(cls, p, g, state, step, lr, hp):
    """One step of ``cls``'s rule for every member at once, through torch.func.vmap."""
    def member(p_, g_, buffers, lr_):
        local = dict(buffers, step=state["step"]) if "step" in state else dict(buffers)
        new_p = cls.update(p_, g_, local, step=step, **{**hp, "lr": lr_})
        return new_p, {key: local[key] for key in buffers}

    buffers = {key: value for key, value in state.items() if key != "step"}
    return torch.func.vmap(member)(p, g, buffers, lr)


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.cls_name in ("LAMB", "Muon")],
                         ids=lambda c: c.id)
def test_whole_tensor_rules_vmap_over_members(case, monkeypatch):
    """LAMB's trust ratio and Muon's orthogonalisation are per member under vmap.

    Muon's Newton-Schulz runs in bfloat16, where batched and single matrix products round
    differently (5% apart after five iterations); in float64 they agree to 1e-15, so the test
    runs it in float64 to check the structure exactly.
    """
    from optimlab.optim import muon

    monkeypatch.setattr(muon, "NS_DTYPE", torch.float64)
    cls = getattr(optimlab, case.cls_name)
    defaults = cls([torch.zeros(2, 2)], **case.hp).defaults
    members = [make_params(torch.float64, case.shapes) for _ in LR_SCALES]
    params = [torch.stack([m[i] for m in members]).detach().requires_grad_()
              for i in range(len(case.shapes))]
    lr = torch.tensor([_member_lr(case, k) for k in range(len(LR_SCALES))], dtype=torch.float64)
    sign = -1.0 if case.maximize else 1.0
    states = [None] * len(params)
    for step in range(1, STEPS + 1):
        for p in params:
            p.grad = None
        total = sum(loss_fn([p[k] for p in params]) for k in range(len(LR_SCALES)))
        (sign * total).backward()
        with torch.no_grad():
            for i, p in enumerate(params):
                g = -p.grad if case.maximize else p.grad
                if states[i] is None:
                    states[i] = {key: value for key, value in cls.init(p, **defaults).items()}
                if "step" in states[i]:
                    states[i]["step"] += 1
                new_p, buffers = _vmapped_step(cls, p, g, states[i], step, lr, defaults)
                states[i].update(buffers)
                p.copy_(new_p)
    for k, single in enumerate(_single_runs(case)):
        for b, s in zip(params, single):
            torch.testing.assert_close(b[k].detach(), s.detach(), rtol=1e-12, atol=1e-12)
