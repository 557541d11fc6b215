"""Argument checks the audit of 2026 found missing or inconsistent: a refused param group
left in the optimizer, LBFGS's groups unchecked, duplicate parameters in D-Adaptation,
``Fraction`` and integer-tensor hyperparameters, ``advise(progress=...)`` and the exception
types of ``race`` and ``advise``."""

import warnings
from fractions import Fraction

import pytest
import torch
from torch import nn

import optimlab
from optimlab.bench.advisor import AdvisorError, advise_task
from optimlab.optim.base import ArgumentTypeError


def _param(n=3):
    return torch.zeros(n, requires_grad=True)


# -- 1. a group refused by its fused / foreach / state_precision flags is not kept -----------
@pytest.mark.parametrize("group, error, match", [
    ({"fused": "yes"}, ArgumentTypeError, r"^param group 1: fused must be None, True or False"),
    ({"fused": True, "state_precision": "int8"}, ValueError,
     r"^param group 1: fused=True keeps the state in the parameters' dtype"),
    ({"state_precision": "float8"}, ValueError, r"^param group 1: state_precision must be None"),
    ({"fused": True, "foreach": True}, RuntimeError,
     r"^param group 1: `fused` and `foreach` cannot be `True` together"),
    ({"fused": True, "params": [torch.zeros(2, dtype=torch.int64)]}, ValueError,
     r"^param group 1: Adam\(fused=True\) steps floating-point tensors"),
])
def test_a_group_refused_by_its_flags_is_removed(group, error, match):
    p = torch.ones(3, requires_grad=True)
    opt = optimlab.Adam([p], lr=0.1)
    with pytest.raises(error, match=match):
        opt.add_param_group({"params": [_param(2)], **group})
    assert len(opt.param_groups) == 1
    p.grad = torch.ones(3)
    opt.step()  # every later step used to fail on the group left behind
    assert not torch.equal(p, torch.ones(3))


# -- 2. LBFGS checks the values a group sets, as its constructor does ------------------------
@pytest.mark.parametrize("key, value, error, match", [
    ("lr", -1.0, ValueError, r"^param group 0: lr must be in \[0, inf\), got -1.0$"),
    ("lr", float("nan"), ValueError, r"^param group 0: lr must be a finite number"),
    ("lr", "0.1", ArgumentTypeError, r"^param group 0: lr must be a number, got '0.1'$"),
    ("max_iter", -5, ValueError, r"^param group 0: max_iter must be an integer >= 1, got -5$"),
    ("history_size", float("nan"), ArgumentTypeError, r"^param group 0: history_size must be"),
    ("tolerance_grad", "0.1", ArgumentTypeError, r"^param group 0: tolerance_grad must be"),
    ("line_search_fn", "nope", ValueError, r"^param group 0: line_search_fn must be None or"),
    ("maximize", 1, ArgumentTypeError, r"^param group 0: maximize must be a bool, got 1$"),
])
def test_lbfgs_checks_a_groups_own_values(key, value, error, match):
    with pytest.raises(error, match=match):
        optimlab.LBFGS([{"params": [_param()], key: value}])


def test_lbfgs_takes_a_groups_valid_values_and_steps_as_with_keywords():
    def solve(opt, w):
        def closure():
            opt.zero_grad()
            loss = ((w - 2.0) ** 2).sum()
            loss.backward()
            return loss
        opt.step(closure)
        return w.detach().clone()

    a, b = _param(), _param()
    grouped = optimlab.LBFGS([{"params": [a], "lr": 0.5, "max_iter": 3, "max_eval": 4,
                                       "history_size": 4}])
    keyword = optimlab.LBFGS([b], lr=0.5, max_iter=3, max_eval=4, history_size=4)
    assert torch.equal(solve(grouped, a), solve(keyword, b))


# -- 3. D-Adaptation with a parameter listed twice ---------------------------------------------
@pytest.mark.parametrize("cls", [optimlab.DAdaptAdam, optimlab.DAdaptSGD])
def test_dadaptation_steps_a_duplicated_parameter_once(cls):
    results = []
    for params in ("once", "twice"):
        torch.manual_seed(0)
        a = torch.randn(4, 3, requires_grad=True)
        grad = torch.randn(4, 3)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            opt = cls([a, a] if params == "twice" else [a])
        assert any("duplicate" in str(w.message) for w in caught) == (params == "twice")
        for _ in range(3):
            a.grad = grad.clone()
            opt.step()  # AttributeError: 'NoneType' object has no attribute 'device' before
        results.append(a.detach().clone())
    assert torch.equal(*results)


# -- 4. a Fraction (any numbers.Real) steps as its float ---------------------------------------
@pytest.mark.parametrize("name, kwargs", [
    ("SGD", {"lr": Fraction(1, 10), "momentum": Fraction(9, 10)}),
    ("Adam", {"lr": Fraction(1, 100), "betas": (Fraction(9, 10), Fraction(999, 1000))}),
    ("NAdam", {"lr": Fraction(1, 100)}),
    ("Lion", {"lr": Fraction(1, 1000), "weight_decay": Fraction(1, 10)}),
])
def test_a_fraction_steps_as_its_float(name, kwargs):
    def run(kw):
        torch.manual_seed(0)
        w = torch.randn(5, requires_grad=True)
        opt = getattr(optimlab, name)([w], **kw)
        for _ in range(3):
            w.grad = torch.randn(5)
            opt.step()
        return w.detach()

    as_float = {k: tuple(float(x) for x in v) if isinstance(v, tuple) else float(v)
                for k, v in kwargs.items()}
    assert torch.equal(run(kwargs), run(as_float))


def test_a_fraction_in_a_group_and_in_lbfgs_becomes_a_float():
    opt = optimlab.SGD([_param()], lr=0.1)
    opt.add_param_group({"params": [_param()], "lr": Fraction(1, 4)})
    assert type(opt.param_groups[1]["lr"]) is float and opt.param_groups[1]["lr"] == 0.25
    lbfgs = optimlab.LBFGS([_param()], lr=Fraction(1, 2))
    assert type(lbfgs.param_groups[0]["lr"]) is float


def test_a_decimal_is_still_refused():
    from decimal import Decimal

    with pytest.raises(ArgumentTypeError, match="lr must be a number, got Decimal"):
        optimlab.SGD([_param()], lr=Decimal("0.001"))


# -- 5. an integer tensor hyperparameter computes as a floating one ----------------------------
def test_nadam_with_an_integer_tensor_lr_matches_torch():
    ours, theirs = _param(), _param()
    with torch.no_grad():
        ours.fill_(1.0)
        theirs.fill_(1.0)
    o = optimlab.NAdam([ours], lr=torch.tensor(1))
    t = torch.optim.NAdam([theirs], lr=torch.tensor(1))
    for _ in range(2):
        ours.grad = torch.full((3,), 0.5)
        theirs.grad = torch.full((3,), 0.5)
        o.step()
        t.step()
    assert torch.isfinite(ours).all()
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam", "RAdam"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_an_integer_tensor_lr_steps_as_the_float_tensor_of_its_value(name, dtype):
    def run(lr):
        torch.manual_seed(0)
        w = torch.randn(4, 3, dtype=dtype, requires_grad=True)
        opt = getattr(optimlab, name)([w], lr=lr)
        for _ in range(3):
            w.grad = torch.randn(4, 3, dtype=dtype)
            opt.step()
        return w.detach()

    assert torch.equal(run(torch.tensor(1)), run(torch.tensor(1.0)))


# -- 6. advise checks progress before anything runs or is written ------------------------------
def test_advise_refuses_a_progress_that_is_not_callable_before_writing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = nn.Linear(4, 3)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    with pytest.raises(TypeError, match="progress must be a callable"):
        optimlab.advise(model, nn.CrossEntropyLoss(), (x, y), progress=5, steps=1)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError, match="progress must be a callable"):
        advise_task("quadratic", progress="tick", steps=1)
    assert list(tmp_path.iterdir()) == []


# -- 7. wrong kinds of argument to race and advise are TypeErrors too --------------------------
@pytest.mark.parametrize("args, kwargs, match", [
    ((5, {"adam": {}}), {}, r"landscape must be a name or a Landscape, got int"),
    (("quadratic", ["adam"]), {}, r"optimizers must be a non-empty dict"),
    (("quadratic", "adam"), {}, r"optimizers must be a non-empty dict"),
    (("quadratic", 5), {}, r"optimizers must be a non-empty dict"),
    (("quadratic", {"adam": 0.1}), {}, r"hyperparameters must be a dict \(or None\)"),
    (("quadratic", {"adam": {}}), {"seed": 1.5}, r"seed must be an integer"),
    (("quadratic", {"adam": {}}), {"tune": "yes"}, r"tune must be True, False or a sequence"),
    (("quadratic", {"adam": {}}), {"extend": 1}, r"extend must be a bool, got 1"),
    (("quadratic", {"adam": {}}), {"noise": "0.1"}, r"noise must be a number"),
    (("quadratic", {"adam": {}}), {"tol": "0.1"}, r"tol must be a finite number"),
])
def test_race_refuses_a_wrong_kind_of_argument_with_a_type_error(args, kwargs, match):
    with pytest.raises(ArgumentTypeError, match=match) as info:
        optimlab.race(*args, steps=2, **kwargs)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("kwargs, match", [
    ({"optimizers": {}}, r"optimizers must be a non-empty dict"),
    ({"seed": -1}, r"seed must be an integer"),
    ({"tune": [0.0]}, r"tune grid must hold positive"),
])
def test_race_refuses_a_wrong_value_with_a_plain_value_error(kwargs, match):
    args = {"optimizers": {"adam": {}}, **kwargs}
    with pytest.raises(ValueError, match=match) as info:
        optimlab.race("quadratic", steps=2, **{k: v for k, v in args.items()})
    assert not isinstance(info.value, TypeError)


def test_advise_refuses_a_wrong_kind_of_argument_with_a_type_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    with pytest.raises(ArgumentTypeError, match="optimizers must be registry names"):
        optimlab.advise(nn.Linear(4, 3), nn.CrossEntropyLoss(), (x, y), optimizers=5, steps=1)
    with pytest.raises(TypeError, match="model must be an nn.Module, got str") as info:
        optimlab.advise("m", nn.CrossEntropyLoss(), (x, y), steps=1)
    assert isinstance(info.value, AdvisorError)  # as before, for code that catches it
    assert list(tmp_path.iterdir()) == []


def test_lookahead_takes_a_fraction_alpha_as_its_float():
    runs = []
    for alpha in (Fraction(1, 2), 0.5):
        w = torch.tensor([1.0, -2.0], requires_grad=True)
        opt = optimlab.Lookahead(optimlab.SGD([w], lr=0.1), k=2, alpha=alpha)
        for _ in range(4):
            opt.zero_grad()
            (w ** 2).sum().backward()
            opt.step()
        runs.append(w.detach().clone())
    assert torch.equal(runs[0], runs[1])


# -- an unknown hyperparameter reads the same in every entry point -----------------------------
def test_an_unknown_hyperparameter_is_named_with_what_the_optimizer_takes_everywhere():
    """create() raised Python's bare "unexpected keyword argument", Population the same
    behind "member 0:", SweepSpec a ValueError with the good message, race its own: one
    check (registry.check_hparams), a TypeError as torch's is (ArgumentTypeError, also a
    ValueError), naming what the optimizer takes and the closest name, other libraries'
    names included (optax's learning_rate, b1, b2)."""
    from optimlab.bench.sweep import SweepSpec
    from optimlab.bench.tasks import get
    from optimlab.bench.trainer import Member, TrainConfig, train_population
    from optimlab.optim.population import Population

    takes = r"\(it takes lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay, cautious"
    for key, meant in (("learning_rate", "lr"), ("b1", "betas"), ("epsilon", "eps"),
                       ("weight_decy", "weight_decay")):
        with pytest.raises(TypeError, match=rf"^'{key}' is not a hyperparameter of Adam "
                                            rf"{takes}; did you mean '{meant}'\?\)$"):
            optimlab.create("adam", [_param()], **{key: 0.1})
    with pytest.raises(ArgumentTypeError, match=r"^'zz' is not a hyperparameter of Adam "
                                                rf"{takes}\)$"):  # nothing close: no guess
        optimlab.create("adam", [_param()], zz=1)
    with pytest.raises(ArgumentTypeError, match=r"^'rhoo' is not a hyperparameter of SAM with "
                                                r"Adam \(it takes base_optimizer, rho, .*did you "
                                                r"mean 'rho'\?\)$"):
        optimlab.create("sam", [_param()], base_optimizer="adam", rhoo=0.1)
    meant = r"'momentun' is not a hyperparameter of SGD .*did you mean 'momentum'\?\)$"
    with pytest.raises(ArgumentTypeError, match=rf"^member 0: {meant}"):
        Population("sgd", [torch.zeros(2, 3, requires_grad=True)], {"momentun": 0.9})
    with pytest.raises(ArgumentTypeError, match=rf"^hparams\['sgd'\]: {meant}"):
        SweepSpec("digits", ["sgd"], hparams={"sgd": {"momentun": 0.9}})
    with pytest.raises(ArgumentTypeError, match=rf"^member 0: {meant}"):
        train_population(get("digits"), TrainConfig(steps=2),
                         [Member("sgd", {"momentun": 0.9, "lr": 0.1})])
    with pytest.raises(ArgumentTypeError, match=rf"^race label 'sgd': {meant}"):
        optimlab.race("booth", {"sgd": {"momentun": 0.9}}, steps=2)
    # a wrapper of a wrapper is left to the constructors, which build it
    assert type(optimlab.create("lookahead", [_param()], inner="lookahead", lr=0.1).optimizer) \
        is optimlab.Lookahead


def test_a_population_refuses_non_leaf_tensors_and_members_it_does_not_have():
    """A non-leaf tensor (base * 2) was taken and never trained (its .grad stays None), where
    torch.optim refuses it; member_optimizer(5) raised a bare IndexError, -1 read from the
    end and "0" gave None in a batched mode."""
    from optimlab.optim.population import Population

    base = torch.ones(2, 3, requires_grad=True)
    population = Population("sgd", [base * 2], {"lr": 0.1})
    (population.params[0] ** 2).sum().backward()
    with pytest.raises(ValueError, match=r"^parameter 0: can't step a non-leaf Tensor from its "
                                         r"\.grad, which autograd never fills"):
        population.step()
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        torch.optim.SGD([base * 2], lr=0.1)  # torch's own refusal, which this mirrors
    # its gradients given: a non-leaf tensor steps (the step reads no .grad)
    population.step(grads=[torch.ones(2, 3)])
    assert torch.allclose(population.params[0], torch.full((2, 3), 1.9))
    member = Population("lbfgs", [torch.ones(2, 3, requires_grad=True)])
    batched = Population("adam", [torch.ones(2, 3, requires_grad=True)])
    assert member.mode == "member" and batched.mode != "member"
    assert isinstance(member.member_optimizer(1), optimlab.LBFGS)
    assert batched.member_optimizer(1) is None
    for population in (member, batched):
        for index, error in ((2, ValueError), (-1, ValueError), ("0", TypeError)):
            with pytest.raises(error, match=r"^index must be an integer in \[0, 1\]"):
                population.member_optimizer(index)
