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


# -- the audit's defects (each test below fails without its fix) -----------------------------
def _grads(shapes, steps, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=gen, dtype=dtype) for s in shapes] for _ in range(steps)]


def _population_run(name, starts, hp, grads):
    params = [s.clone() for s in starts]
    pop = Population(name, params, hp)
    for step_grads in grads:
        pop.step(grads=step_grads)
    return params, pop


def _alone(name, starts, k, hp, grads, cls=None):
    """Member ``k`` run by the optimizer alone (``cls``: a torch class instead)."""
    params = [s[k].clone().requires_grad_() for s in starts]
    opt = cls(params, **hp) if cls else optimlab.create(name, params, **hp)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g[k].clone()
        opt.step()
    return [p.detach() for p in params]


def test_per_member_values_keep_their_precision_in_every_dtype():
    """The columns are float64; each parameter reads its own dtype's copy (bfloat16 ones
    step in float32): a bfloat16 beta2 of 0.999 was 1.0 (Adam went NaN), and a float64
    parameter beside a float32 one read float32-rounded rates."""
    start = torch.randn(2, 8, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    grads = _grads([(2, 8)], 20, torch.bfloat16)
    betas = [(0.9, 0.999), (0.9, 0.99)]
    params, pop = _population_run("adam", [start], {"lr": [1e-3, 3e-4], "betas": betas}, grads)
    assert pop.hparams["lr"].dtype == torch.float64 and pop.state[0]["exp_avg"].dtype == torch.bfloat16
    for k, lr in enumerate([1e-3, 3e-4]):
        alone = _alone("adam", [start], k, {"lr": lr, "betas": betas[k]}, grads)
        assert torch.isfinite(params[0][k].float()).all()
        assert (params[0][k] != start[k]).any()  # it stepped
        # within one bfloat16 rounding of the optimizer alone, element by element (the
        # population steps in float32 and rounds once; equal on this machine)
        diff = (params[0][k].float() - alone[0].float()).abs()
        assert (diff <= torch.finfo(torch.bfloat16).eps * alone[0].float().abs()).all(), diff.max()
    # float32 and float64 parameters in one population: each reads its own dtype's rates
    a, b = torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64)
    pop = Population("sgd", [a, b], {"lr": [0.1, 0.3]})
    pop.step(grads=[torch.ones_like(a), torch.ones_like(b)])
    assert torch.equal(b[:, 0], torch.tensor([-0.1, -0.3], dtype=torch.float64))
    assert torch.equal(a[:, 0], torch.tensor([-0.1, -0.3]))


@pytest.mark.parametrize("hp", [{"fused": None}, {"fused": False}, {"cautious": True}],
                         ids=["fused", "plain", "vmap"])
def test_complex_members_step_their_real_view(hp):
    """A complex parameter steps as its real view, as torch.optim.Adam steps it (Adam
    squared the complex gradient)."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(2, 3, 2, generator=gen, dtype=torch.complex128)
    grads = _grads([(2, 3, 2)], 5, torch.complex128)
    params, pop = _population_run("adam", [start], {"lr": [0.1, 0.2], **hp}, grads)
    if hp.get("cautious"):
        assert pop.mode == "vmap"
        alone = _alone("adam", [start], 0, {"lr": 0.1, "cautious": True}, grads)
    else:
        alone = _alone("adam", [start], 0, {"lr": 0.1}, grads, cls=torch.optim.Adam)
    torch.testing.assert_close(params[0][0], alone[0], rtol=1e-12, atol=1e-12)
    assert pop.state[0]["exp_avg_sq"].dtype == torch.float64


def test_complex_parameters_are_refused_by_name_where_the_rule_cannot_take_them():
    with pytest.raises(ValueError, match="parameter 1: Adafactor does not support complex"):
        Population("adafactor", [torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.complex64)])


@pytest.mark.parametrize("name", ["lookahead", "adafactor"])
@pytest.mark.parametrize("write", ["in place", "new storage", "rows not contiguous"])
def test_member_mode_reads_the_rows_written_between_steps(name, write):
    """Each member's optimizer steps from the member's rows as they are now: a write to the
    stacked parameters between steps (a reset, a checkpoint load) was undone."""
    p = torch.ones(2, 3, dtype=torch.float64)
    if write == "rows not contiguous":
        p = torch.ones(3, 2, dtype=torch.float64).t()
    pop = Population(name, [p], {"lr": [0.1, 0.2]})
    q = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = optimlab.create(name, [q], lr=0.1)
    for reset in (False, True):
        if reset:
            if write == "new storage":
                p.data = torch.zeros(2, 3, dtype=torch.float64)
            else:
                p.zero_()
            with torch.no_grad():
                q.zero_()
        pop.step(grads=[torch.full((2, 3), 1.0 - reset, dtype=torch.float64)])
        q.grad = torch.full((3,), 1.0 - reset, dtype=torch.float64)
        opt.step()
        assert torch.equal(p[0], q.detach())


def test_float32_members_are_bit_exact_on_the_fused_path_and_within_rounding_on_the_plain():
    """What the module docstring says: float64 bit for bit on both paths, float32 bit for
    bit fused (the kernel reads float64 rows; they were float32-rounded rates), and within
    ``T * 2**-23 * max|p|`` of the optimizer alone on the plain path."""
    shapes = [(30, 20), (20,)]
    lrs = [1e-3, 3e-3, 1e-2]
    steps = 50
    for dtype in (torch.float64, torch.float32):
        gen = torch.Generator().manual_seed(0)
        starts = [torch.randn(3, *s, generator=gen).to(dtype) for s in shapes]
        grads = _grads([(3, *s) for s in shapes], steps, dtype)
        for name in ("adam", "nadam"):
            for fused in (None, False):
                params, pop = _population_run(name, starts, {"lr": lrs, "fused": fused}, grads)
                fused_here = pop._plan is not None
                for k, lr in enumerate(lrs):
                    alone = _alone(name, starts, k, {"lr": lr, "fused": fused_here and None}, grads)
                    for p, a in zip(params, alone):
                        if dtype == torch.float64 or fused_here:
                            assert torch.equal(p[k], a), (dtype, name, fused)
                        else:
                            bound = steps * 2.0**-23 * a.abs().max().item()
                            assert (p[k] - a).abs().max().item() <= bound, (name, fused)


def test_skip_nonfinite_is_per_member_in_member_mode_and_refused_when_batched():
    with pytest.raises(ValueError, match="skip_nonfinite=True is not supported"):
        Population("adam", [torch.zeros(3, 4)], {"lr": [0.1, 0.2, 0.3], "skip_nonfinite": True})
    Population("adam", [torch.zeros(3, 4)], {"skip_nonfinite": False})
    p = torch.zeros(3, 4, dtype=torch.float64)
    pop = Population("lookahead", [p], {"lr": [0.1, 0.2, 0.3], "skip_nonfinite": True})
    g = torch.ones(3, 4, dtype=torch.float64)
    g[1, 0] = float("nan")
    pop.step(grads=[g])
    assert torch.equal(p[1], torch.zeros(4, dtype=torch.float64))  # member 1 did not step
    assert (p[0] != 0).all() and (p[2] != 0).all()
    assert pop.skipped_steps == [0, 1, 0]


@pytest.mark.parametrize("name, key, value, match", [
    ("adam", "lr", -1.0, "member 0: lr must be"),
    ("adam", "betas", (2.0, 5.0), "member 0: betas"),
    ("adam", "lr", [0.1, -5.0], "member 1: lr must be"),
    ("adam", "lr", [True, False], "member 0: lr"),
    ("adam", "amsgrad", True, "amsgrad cannot change between steps"),
    ("adam", "amsgrad", [True, False], "amsgrad cannot change between steps"),
    ("adam", "maximize", True, "maximize is set when the population is built"),
    ("adam", "lrr", 0.1, "no hyperparameter 'lrr'"),
    ("lamb", "lr", [0.1, -5.0], "member 1: lr must be"),
    ("lookahead", "lrr", 0.1, "no hyperparameter 'lrr'"),
    ("lookahead", "lr", -1.0, "member 0: .*lr"),
    ("lookahead", "alpha", 0.1, "no hyperparameter 'alpha' in its param groups"),
    ("adafactor", "lr", [-1.0, 0.1], "member 0: .*lr"),
])
def test_set_hparam_checks_values_as_construction_does(name, key, value, match):
    p = torch.zeros(2, 3, 3)
    pop = Population(name, [p], {"lr": [0.1, 0.2]})
    before = pop.hparams[key].clone() if pop.mode != "member" and key == "lr" else None
    with pytest.raises(ValueError, match=match):
        pop.set_hparam(key, value)
    if before is not None:  # nothing changed
        assert torch.equal(pop.hparams["lr"], before)
    pop.step(grads=[torch.ones(2, 3, 3)])
    assert torch.isfinite(p).all()


def test_set_hparam_takes_per_member_betas():
    start = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grads = _grads([(2, 4)], 6)
    params = [start.clone()]
    pop = Population("adam", params, {"lr": 0.1})
    betas = [(0.9, 0.99), [0.8, 0.9]]
    for t, step_grads in enumerate(grads):
        if t == 3:
            pop.set_hparam("betas", betas)
        pop.step(grads=step_grads)
    single = start[1].clone().requires_grad_()
    opt = optimlab.Adam([single], lr=0.1)
    for t, step_grads in enumerate(grads):
        if t == 3:
            opt.param_groups[0]["betas"] = (0.8, 0.9)
        single.grad = step_grads[0][1].clone()
        opt.step()
    assert torch.equal(params[0][1], single.detach())


@pytest.mark.parametrize("fused", [None, False])
def test_gradients_and_parameters_of_the_wrong_shape_are_refused(fused):
    with pytest.raises(TypeError, match=r"got one tensor of shape \(3, 3\); pass \[tensor\]"):
        Population("sgd", torch.zeros(3, 3), {"lr": [0.1, 0.2, 0.3]})
    pop = Population("adam", [torch.zeros(2, 3), torch.zeros(2, 2)], {"fused": fused})
    with pytest.raises(ValueError, match="step got 1 gradients for 2 parameters"):
        pop.step(grads=[torch.ones(2, 3)])
    for first in (True, False):  # before and after a fused plan exists
        for bad in (torch.ones(3), torch.ones(1, 3), torch.ones(2, 4)):
            with pytest.raises(ValueError, match=rf"gradient 0 has shape {tuple(bad.shape)}"
                               .replace("(", r"\(").replace(")", r"\)")):
                pop.step(grads=[bad, torch.ones(2, 2)])
        with pytest.raises(ValueError, match="gradient 1 has list"):
            pop.step(grads=[torch.ones(2, 3), [1.0, 2.0]])
        pop.step(grads=[torch.ones(2, 3), torch.ones(2, 2)])
    assert (pop._plan is not None) == (fused is None)


@pytest.mark.parametrize("name, hp", [("lamb", {"fused": False}), ("lamb", {}), ("muon", {})])
def test_a_shared_0d_tensor_hyperparameter_is_one_value_for_every_member(name, hp):
    start = torch.randn(2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grads = _grads([(2, 3, 3)], 3)
    as_tensor, _ = _population_run(name, [start], {**hp, "lr": torch.tensor(0.01,
                                                                             dtype=torch.float64)}, grads)
    as_number, _ = _population_run(name, [start], {**hp, "lr": 0.01}, grads)
    torch.testing.assert_close(as_tensor[0], as_number[0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["adam", "lookahead"])
def test_zero_grad_and_copies_after_a_fused_step(name):
    import copy
    import pickle

    p = torch.randn(2, 3, dtype=torch.float64).requires_grad_()
    pop = Population(name, [p], {"lr": [0.1, 0.2]})
    p.grad = torch.ones_like(p)
    pop.step()
    pop.zero_grad()
    assert p.grad is None
    p.grad = torch.ones_like(p)
    pop.zero_grad(set_to_none=False)
    assert torch.equal(p.grad, torch.zeros_like(p))
    for clone in (copy.deepcopy(pop), pickle.loads(pickle.dumps(pop))):
        g = [torch.ones(2, 3, dtype=torch.float64)]
        clone.step(grads=g)
        assert clone.params[0].data_ptr() != p.data_ptr()
        twin = copy.deepcopy(pop)
        twin.step(grads=g)
        assert torch.equal(clone.params[0], twin.params[0])
    assert not torch.equal(clone.params[0], p)  # the original did not step


def test_fused_true_takes_the_first_step_plain_where_the_state_is_not_ready():
    """SGD's momentum buffer exists after the first step (taken on the plain path, as the
    optimizer's own fused=True takes it); a refusal says why."""
    runs = []
    for fused in (True, None):
        p = torch.zeros(2, 3)
        pop = Population("sgd", [p], {"lr": [0.1, 0.2], "momentum": 0.9, "fused": fused})
        for _ in range(3):
            pop.step(grads=[torch.ones(2, 3)])
        assert pop._plan is not None
        runs.append(p)
    assert torch.equal(*runs)
    with pytest.raises(RuntimeError, match=r"NAdam\(fused=True\) .*0-d entries .*mu_product"):
        Population("nadam", [torch.zeros(2, 3)], {"fused": True}).step(grads=[torch.ones(2, 3)])
    with pytest.raises(RuntimeError, match="parameter 0 is torch.bfloat16; the kernel takes"):
        Population("adam", [torch.zeros(2, 3, dtype=torch.bfloat16)], {"fused": True}).step(
            grads=[torch.ones(2, 3, dtype=torch.bfloat16)])


def test_per_member_integers_are_refused_and_betas_lists_taken_as_pairs():
    with pytest.raises(ValueError, match=r"ns_steps must be the same for every member .* \[5, 3\]"):
        Population("muon", [torch.zeros(2, 3, 3)], {"ns_steps": [5, 3]})
    Population("adam", [torch.zeros(2, 3)], {"weight_decay": [0, 1]})  # numbers, not switches
    start = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grads = _grads([(2, 4)], 4)
    lists, _ = _population_run("adam", [start], {"betas": [[0.9, 0.999], [0.8, 0.99]]}, grads)
    tuples, _ = _population_run("adam", [start], {"betas": [(0.9, 0.999), (0.8, 0.99)]}, grads)
    assert torch.equal(lists[0], tuples[0])


@pytest.mark.parametrize("build, error, match", [
    (lambda: Population("adam", [torch.zeros(2, 3)], [0.1, 0.2]), TypeError,
     "hparams must be a dict of hyperparameters, got list"),
    (lambda: Population("adam", [[1.0, 2.0]]), TypeError, "parameter 0 must be a tensor"),
    (lambda: Population("adam", [torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.int64)]),
     TypeError, "parameter 1 is torch.int64"),
    (lambda: Population("adam", [torch.zeros(2, 3, dtype=torch.float64)]).step(
        grads=[torch.ones(2, 3)]), ValueError,
     r"gradient 0 has shape \(2, 3\) and dtype torch.float32, parameter 0 .* torch.float64"),
])
def test_malformed_arguments_get_one_line_naming_the_index(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_a_schedule_checks_the_ends_of_each_group_of_rates(monkeypatch):
    """set_hparam checks values as construction does, but a schedule sets 64 members' rates
    on every step: members alike but for the rate are checked at their smallest and largest
    rate (the constructor's check of one number accepts an interval), not 64 times; a NaN
    or a rate out of range anywhere is still refused, naming its member."""
    from optimlab.optim import population

    calls = []
    real = population.checked_defaults

    def counted(name, **hp):
        calls.append(hp["lr"])
        return real(name, **hp)

    rates = [10 ** (-4 + 3 * i / 15) for i in range(16)] * 4
    pop = Population("adam", [torch.zeros(64, 3)], {"lr": rates, "weight_decay": [0.0, 0.1] * 32})
    monkeypatch.setattr(population, "checked_defaults", counted)
    pop.set_hparam("lr", [r * 0.5 for r in rates])
    assert len(calls) == 4  # two groups (weight decay 0 and 0.1), each at both ends
    assert [hp["lr"] for hp in pop.member_hparams] == [r * 0.5 for r in rates]
    assert pop.hparams["lr"].flatten().tolist() == [r * 0.5 for r in rates]
    for bad, member, says in ((float("nan"), 5, "lr must be"), (-1.0, 7, "lr must be"),
                              (10**400, 9, "lr must be")):
        values = [r * 0.5 for r in rates]
        values[member] = bad
        with pytest.raises(ValueError, match=rf"^member {member}: {says}"):
            pop.set_hparam("lr", values)
    # an integer hyperparameter is no interval: 2.5 between 1 and 5 is refused, not kept
    muon = Population("muon", [torch.zeros(3, 4, 4)], {"lr": [0.01, 0.02, 0.03]})
    with pytest.raises(ValueError, match=r"^member 1: ns_steps must be an integer"):
        muon.set_hparam("ns_steps", [1, 2.5, 5])


_CHECKPOINTED = [("adam", {}), ("adam", {"fused": False}), ("lamb", {}), ("lookahead", {})]


def _checkpoint_run(name, hp, dtype=torch.float64):
    """5 steps, a state_dict through torch.save/torch.load, 5 more: (A, the parameters and
    state_dict after step 5, the last 5 steps' gradients)."""
    import io

    grads = _grads([(3, 4, 5), (3, 2)], 10, dtype)
    starts = [torch.randn(3, 4, 5, dtype=dtype), torch.randn(3, 2, dtype=dtype)]
    params, pop = _population_run(name, starts, {**hp, "lr": [0.01, 0.02, 0.05]}, grads[:5])
    saved_params = [p.clone() for p in params]
    buffer = io.BytesIO()
    torch.save(pop.state_dict(), buffer)
    for step_grads in grads[5:]:
        pop.step(grads=step_grads)
    buffer.seek(0)
    return params, saved_params, torch.load(buffer), grads[5:]


@pytest.mark.parametrize("name, hp", _CHECKPOINTED, ids=lambda v: str(v))
def test_a_loaded_state_dict_steps_on_bit_for_bit(name, hp):
    result_a, saved_params, sd, rest = _checkpoint_run(name, hp)
    assert sd["name"] == name and sd["members"] == 3
    assert sd["mode"] == {"lamb": "vmap", "lookahead": "member"}.get(name, "elementwise")
    # hyperparameters come from the state_dict, not from the new population's
    params = [p.clone() for p in saved_params]
    pop = Population(name, params, {**hp, "lr": [1.0, 1.0, 1.0]})
    pop.load_state_dict(sd)
    assert pop.mode == sd["mode"] and [hp_["lr"] for hp_ in pop.member_hparams] == [0.01, 0.02, 0.05]
    for step_grads in rest:
        pop.step(grads=step_grads)
    for a, b in zip(result_a, params):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["adam", "lookahead"])
def test_a_state_dict_does_not_change_when_the_population_steps(name):
    params = [torch.randn(2, 3, dtype=torch.float64)]
    pop = Population(name, params, {"lr": [0.1, 0.2]})
    grads = _grads([(2, 3)], 3)
    pop.step(grads=grads[0])
    sd = pop.state_dict()
    before = _cloned_tensors(sd)
    pop.step(grads=grads[1])
    pop.step(grads=grads[2])
    after = _cloned_tensors(sd)
    assert len(before) > 2 and all(torch.equal(x, y) for x, y in zip(before, after))
    # nor does the population read the state_dict's tensors once it has loaded them
    pop.load_state_dict(sd)
    pop.step(grads=grads[1])
    assert all(torch.equal(x, y) for x, y in zip(before, _cloned_tensors(sd)))


def _cloned_tensors(value):
    if isinstance(value, torch.Tensor):
        return [value.clone()]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) \
        else []
    return [t for v in items for t in _cloned_tensors(v)]


@pytest.mark.parametrize("name", ["adam", "lookahead"])
@pytest.mark.parametrize("other, k, other_hp, shapes, match", [
    (None, 2, {}, None, "members=3, this population 2"),
    ("sgd", 3, {"momentum": 0.9}, None, "name='(adam|lookahead)', this population 'sgd'"),
    (None, 3, {"amsgrad": True}, None, "amsgrad cannot change"),
    ("adam", 3, {}, [(3, 4, 6), (3, 2)], "parameter 0, key 'exp_avg'.*shape \\(3, 4, 5\\)|name="),
])
def test_loading_into_another_population_is_refused_and_changes_nothing(name, other, k, other_hp,
                                                                        shapes, match):
    *_, sd, _ = _checkpoint_run(name, {})
    shapes = shapes or [(k, 4, 5), (k, 2)]
    params = [torch.randn(s, dtype=torch.float64) for s in shapes]
    pop = Population(other or name, params, {**other_hp, "lr": [0.3] * k})
    grads = _grads(shapes, 2)
    pop.step(grads=grads[0])
    before = pop.state_dict()
    with pytest.raises(ValueError, match=match) as err:
        pop.load_state_dict(sd)
    assert "\n" not in str(err.value)
    after = pop.state_dict()
    assert after["member_hparams"] == before["member_hparams"]
    assert all(torch.equal(x, y) for x, y in zip(_cloned_tensors(before), _cloned_tensors(after)))
    pop.step(grads=grads[1])  # still steps


def test_loading_checks_every_state_tensor_before_changing_anything():
    *_, sd, _ = _checkpoint_run("adam", {})
    sd["state"][1]["exp_avg_sq"] = sd["state"][1]["exp_avg_sq"].float()
    params = [torch.randn(3, 4, 5, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)]
    pop = Population("adam", params, {"lr": 0.5})
    with pytest.raises(ValueError, match="parameter 1, key 'exp_avg_sq'.*torch.float32"):
        pop.load_state_dict(sd)
    assert pop.state == [{}, {}] and pop.member_hparams[0]["lr"] == 0.5


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("name, hp", [
    ("sgd", {"dampening": 0.5}),
    ("sgd", {"dampening": 0.3, "weight_decay": 0.01}),
    ("rmsprop", {"centered": True}),
    ("rmsprop", {}),
])
def test_a_member_without_momentum_steps_as_it_does_alone(name, hp, fused):
    # the rule's momentum branch is taken for a per-member column when any member has
    # momentum: the members with momentum 0 must still step with the bare gradient
    momenta = [0.0, 0.9, 0.5]
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, 5, dtype=torch.float64, generator=gen)
    grads = _grads([(3, 4, 5)], 6)
    params, pop = _population_run(name, [start],
                                  {**hp, "lr": 0.1, "momentum": momenta, "fused": fused}, grads)
    assert (pop._plan is not None) == (fused is None)  # the fused kernel took the later steps
    for k, momentum in enumerate(momenta):
        alone = _alone(name, [start], k, {**hp, "lr": 0.1, "momentum": momentum, "fused": fused},
                       grads)
        assert torch.equal(params[0][k], alone[0]), (k, (params[0][k] - alone[0]).abs().max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("name, hp, key", [
    ("asgd", {"lr": [1e-2, 2e-2, 5e-2]}, "eta"),
    ("nadam", {"momentum_decay": [4e-3, 1e-2, 2e-2]}, "mu_product"),
])
def test_a_fresh_population_loads_its_own_per_member_scalar_state(name, hp, key, fused, dtype):
    shapes = [(3, 4), (3,)]
    gen = torch.Generator().manual_seed(0)
    starts = [torch.randn(s, dtype=dtype, generator=gen) for s in shapes]
    grads = _grads(shapes, 6, dtype)
    params, pop = _population_run(name, starts, {**hp, "fused": fused}, grads[:3])
    sd = pop.state_dict()
    real_shape = torch.view_as_real(params[0]).shape if dtype.is_complex else params[0].shape
    member_shape = (3,) + (1,) * (len(real_shape) - 1)
    assert sd["state"][0][key].shape == member_shape  # one value per member
    saved = [p.clone() for p in params]
    for step_grads in grads[3:]:
        pop.step(grads=step_grads)
    fresh_params = [p.clone() for p in saved]
    fresh = Population(name, fresh_params, {**hp, "fused": fused})
    fresh.load_state_dict(sd)
    for step_grads in grads[3:]:
        fresh.step(grads=step_grads)
    assert all(torch.equal(a, b) for a, b in zip(params, fresh_params))
    # still refused: the per-member value at the parameter's shape, or in another dtype
    value = sd["state"][0][key]
    for bad in (value.expand(real_shape).clone(),
                value.double() if value.dtype == torch.float32 else value.float()):
        other = Population(name, [p.clone() for p in saved], {**hp, "fused": fused})
        wrong = {**sd, "state": [{**sd["state"][0], key: bad}, sd["state"][1]]}
        with pytest.raises(ValueError, match=rf"parameter 0, key '{key}', has shape "
                                             rf"\({', '.join(map(str, bad.shape))}\) and dtype "
                                             rf"{bad.dtype}.*the rule's for this key "
                                             rf"\({', '.join(map(str, member_shape))}\)"):
            other.load_state_dict(wrong)
        assert other.state == [{}, {}]


def test_muon_refuses_per_member_ns_coefficients_when_built_and_set():
    coefficients = [(3.4445, -4.775, 2.0315), (3.0, -4.0, 2.0)]
    with pytest.raises(ValueError, match=r"^ns_coefficients must be the same for every member "
                                         r"of a population of Muon") as err:
        Population("muon", [torch.zeros(2, 4, 3)], {"ns_coefficients": coefficients})
    assert "\n" not in str(err.value)
    pop = Population("muon", [torch.zeros(2, 4, 3)], {"lr": [0.01, 0.02]})
    with pytest.raises(ValueError, match=r"^ns_coefficients must be the same for every member"):
        pop.set_hparam("ns_coefficients", coefficients)
    pop.set_hparam("ns_coefficients", coefficients[1])  # one value for all: taken
    pop.step(grads=[torch.ones(2, 4, 3)])
    assert pop.hparams["ns_coefficients"] == coefficients[1]


@pytest.mark.parametrize("change, match", [
    ({"lr": float("nan")}, r"^member 1: lr must be a finite number"),
    ({"warmup_steps": -1}, r"^member 1: .*warmup_steps"),
])
def test_member_mode_loading_checks_the_saved_hyperparameters(change, match):
    params = [torch.randn(2, 3, dtype=torch.float64)]
    pop = Population("schedulefreeadamw", params, {"lr": [1e-2, 2e-2]})
    pop.step(grads=_grads([(2, 3)], 1)[0])
    sd = pop.state_dict()
    sd["member_hparams"][1].update(change)
    before = pop.state_dict()
    with pytest.raises(ValueError, match=match):
        pop.load_state_dict(sd)
    assert pop.member_hparams == before["member_hparams"]
    assert all(torch.equal(x, y) for x, y in zip(_cloned_tensors(before),
                                                 _cloned_tensors(pop.state_dict())))
    pop.set_hparam("weight_decay", 0.1)  # still consistent
    sd["member_hparams"][1] = {"lr": 2e-2, "betas": [0.9, 0.999]}  # a list is a tuple's value
    pop.load_state_dict(sd)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_asgd_with_per_member_rates_keeps_the_parameters_dtype(dtype):
    """ASGD's per-member eta and mu ([K, 1, ...] columns, float64 in the rule) turned a
    float32 population's parameters and averages into float64 arithmetic, and its ``ax``
    into a float64 tensor. Each member now steps as ASGD alone: exactly in float64, within
    two float32 spacings of its magnitude in float32 (the plain path's float32 rounding of
    the rate's schedule, see the module docstring)."""
    torch.manual_seed(0)
    w = torch.randn(2, 3, 4, dtype=dtype)
    lrs, t0s = [0.01, 0.05], [1.0, 3.0]
    pop = Population("asgd", [w.clone()], {"lr": lrs, "t0": t0s, "lambd": 1e-3})
    alone = [torch.nn.Parameter(w[k].clone()) for k in range(2)]
    opts = [torch.optim.ASGD([alone[k]], lr=lrs[k], t0=t0s[k], lambd=1e-3) for k in range(2)]
    for _ in range(6):
        g = torch.randn_like(w)
        pop.step(grads=[g])
        for k in range(2):
            alone[k].grad = g[k].clone()
            opts[k].step()
    assert pop.state[0]["ax"].dtype == dtype
    for k in range(2):
        got, want = pop.params[0][k], alone[k].detach()
        if dtype == torch.float64:
            assert torch.equal(got, want)
        else:
            spacing = torch.finfo(dtype).eps * want.abs().max()
            assert (got - want).abs().max() <= 2 * spacing


def test_eval_and_train_move_schedule_free_members_and_leave_the_rest():
    """``Population.eval()`` puts each schedule-free member at its average x, as its own
    optimizer's ``eval()`` does (on a non-contiguous stacked parameter too, whose rows the
    members hold as copies); ``train()`` puts it back; other optimizers are left alone."""
    torch.manual_seed(0)
    start = torch.randn(3, 4, 2, dtype=torch.float64)
    lrs = [0.01, 0.03, 0.1]

    def trained(stacked):
        pop = Population("schedulefreeadamw", [stacked], {"lr": lrs})
        for _ in range(5):
            pop.step(grads=[2 * stacked.detach()])
        return pop

    for layout in ("contiguous", "transposed"):
        stacked = start.clone() if layout == "contiguous" else \
            start.transpose(1, 2).clone().transpose(1, 2)
        pop = trained(stacked)
        y = stacked.detach().clone()
        pop.eval()
        for k, lr in enumerate(lrs):  # each member alone, with its own eval()
            alone = start[k].clone()
            opt = optimlab.ScheduleFreeAdamW([alone], lr=lr)
            for _ in range(5):
                alone.grad = 2 * alone.detach()
                opt.step()
            opt.eval()
            assert torch.allclose(stacked[k], alone, rtol=0, atol=1e-12), (layout, k)
        assert not torch.equal(stacked, y)
        pop.train()
        assert torch.allclose(stacked, y, rtol=0, atol=1e-12)  # a few ulps: lerp there and back
    adam = Population("adam", [start.clone()], {"lr": lrs})
    before = adam.params[0].clone()
    adam.eval()
    assert torch.equal(adam.params[0], before)


_STATE_DATA_SCRIPT = """
import torch
from optimlab import Population

out = []
for fused in (None, False):
    torch.manual_seed(0)
    W = torch.randn(3, 4, 5, dtype=torch.float64)
    pop = Population("adam", [W], {"lr": [1e-3, 1e-2, 1e-1], "fused": fused})
    for s in range(4):
        W.grad = torch.randn_like(W)
        if s == 2:  # new storage in place: the old buffer is freed
            m = pop.state[0]["exp_avg"]
            m.data = torch.zeros_like(m)
        pop.step()
    out.append((W.clone(), pop.state[0]["exp_avg"].clone()))
(w1, m1), (w2, m2) = out
print(float((w1 - w2).abs().max()), float((m1 - m2).abs().max()), float(m1.abs().max()))
"""


def test_a_state_entry_given_new_storage_makes_a_new_fused_plan():
    """``m.data = ...`` on a population's state entry: the fused plan, which keeps raw
    addresses of the state, was keyed by the tensors' ids alone and went on writing into the
    freed buffer (the edit was lost, then glibc aborted: "corrupted double-linked list").
    Run in a child process, which such a bug kills rather than this one."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _STATE_DATA_SCRIPT], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dw, dm, size = map(float, done.stdout.split())
    # the fused step against the plain one in float64: a few ulps of values of order 1
    assert dw < 1e-12 and dm < 1e-12 and size > 0.01


def test_a_population_on_the_meta_device_steps_with_the_default_fused_none():
    """fused=None read the members' hyperparameters for the kernel's structure before it
    checked the device: on meta parameters ``.item()`` raised, where fused=False stepped."""
    m = torch.empty(3, 4, device="meta")
    m.grad = torch.empty(3, 4, device="meta")
    pop = Population("adam", [m], {"lr": [1e-2, 2e-2, 3e-2]})
    pop.step()
    assert pop.state[0]["exp_avg"].device.type == "meta"
