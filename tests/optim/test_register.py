"""A user's own optimizer in the registry: ``optimlab.register`` / ``optimlab.unregister``, and
every consumer that takes an optimizer by name (create, resolve, info, available,
Population, race with and without tuning, advise, the palette).

Every test leaves the registry as it found it (the autouse fixture below), so other tests
of the same xdist worker never see a registered name.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import optimlab
from optimlab.optim import palette, registry
from optimlab.optim.base import ArgumentTypeError, RuleOptimizer, check_range
from optimlab.optim.capabilities import Capabilities
from optimlab.optim.rule import nonzero, scalar_step


def _init(p, **_):
    return {"step": scalar_step(),
            "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format)}


def _update(p, g, state, *, step, lr, beta, weight_decay, **_):
    m = state["exp_avg"] = torch.lerp(state["exp_avg"], g, 1 - beta)
    if nonzero(weight_decay):
        p = p * (1 - lr * weight_decay)
    m = m / (1 - beta ** step)
    return p - lr * torch.sign(m) * (m.abs() + 1).sqrt()


class SignMom(RuleOptimizer):
    """Sign descent with momentum, for the registry's tests.

    Second paragraph, not in the summary.
    """

    init = staticmethod(_init)
    update = staticmethod(_update)
    capabilities = Capabilities(moments=("exp_avg",), fusable=True)

    def __init__(self, params, lr=1e-2, beta=0.9, weight_decay=0.0, *, maximize=False,
                 foreach=None, fused=None):
        check_range("lr", lr, 0.0)
        check_range("beta", beta, 0.0, 1.0)
        check_range("weight_decay", weight_decay, 0.0)
        super().__init__(params, dict(lr=lr, beta=beta, weight_decay=weight_decay,
                                      maximize=maximize, foreach=foreach, fused=fused))


class Plain(RuleOptimizer):
    init = staticmethod(lambda p, **_: {})
    update = staticmethod(lambda p, g, state, *, lr, **_: p - lr * g)
    capabilities = Capabilities()

    def __init__(self, params, lr=0.1, *, maximize=False):
        super().__init__(params, dict(lr=lr, maximize=maximize))


BUILTIN = [e.name for e in optimlab.available()]


@pytest.fixture(autouse=True)
def _clean_registry():
    """Every test starts and ends with the built-ins alone."""
    assert [e.name for e in optimlab.available()] == BUILTIN
    yield
    for entry in optimlab.available():
        if entry.name not in BUILTIN:
            optimlab.unregister(entry.name)
    assert [e.name for e in optimlab.available()] == BUILTIN


@pytest.fixture
def signmom():
    return optimlab.register(SignMom)


# ----------------------------------------------------------------------- the registry itself

def test_register_is_public_everywhere():
    assert optimlab.register is optimlab.optim.register is registry.register
    assert optimlab.unregister is optimlab.optim.unregister is registry.unregister
    assert {"register", "unregister"} <= set(optimlab.__all__) & set(optimlab.optim.__all__)


def test_register_names_it_after_the_class_and_resolves_it_in_any_spelling(signmom):
    assert signmom.name == "signmom" and signmom.cls is SignMom
    assert signmom.alias_of is None and signmom.preset == {}
    for spelling in ("signmom", "SignMom", " SIGNMOM "):
        assert optimlab.resolve(spelling) is signmom
    assert optimlab.info("SignMom") is signmom.info


def test_registered_names_come_after_the_builtins_in_order():
    first = optimlab.register(SignMom, "First")
    second = optimlab.register(Plain)
    assert [e.name for e in optimlab.available()] == BUILTIN + ["first", "plain"]
    assert optimlab.available()[-2:] == [first, second]
    assert [e.name for e in optimlab.available(user=False)] == BUILTIN
    assert [e.name for e in optimlab.available(dense=True)][-2:] == ["first", "plain"]


def test_its_catalog_row_is_built_from_the_arguments_and_the_class(signmom):
    row = optimlab.info("signmom")
    assert (row.name, row.cls, row.family, row.year, row.paper, row.url) == (
        "signmom", SignMom, "custom", None, "", "")
    assert row.memory == 1.0 and "exp_avg" in row.memory_note
    assert row.momentum and not row.adaptive and row.typical_use == "user-registered"
    assert row.capabilities is SignMom.capabilities
    assert row.defaults == {"lr": 1e-2, "beta": 0.9, "weight_decay": 0.0}
    assert signmom.summary == "Sign descent with momentum, for the registry's tests."
    assert signmom.memory == 1.0 and signmom.family == "custom"

    mine = optimlab.register(Plain, "mine", family="sgd", year=2025, paper="Me (2025)",
                             url="https://example.org", summary="Plain steps.")
    assert (mine.year, mine.paper, mine.info.url, mine.family, mine.summary) == (
        2025, "Me (2025)", "https://example.org", "sgd", "Plain steps.")
    assert math.isnan(mine.memory) and mine.summary
    assert optimlab.register(Plain, "undocumented").summary  # no docstring: still a summary


def test_the_catalog_text_shows_a_registered_optimizer_in_process(signmom):
    from optimlab import cli

    text = cli.explain("SignMom")
    # named by its own module (not optimlab's), and no empty paper or year "None"
    assert text.startswith(f"signmom: {__name__}.SignMom") and "user-registered" in text
    assert "paper: -" in text and "year: -" in text
    assert "signmom" in cli.compare_table(["signmom", "adam"])
    assert "signmom" in cli.catalog_table() and "signmom" in cli.catalog_table(markdown=True)


# -------------------------------------------------------------------------------- consumers

def test_create_builds_it_and_it_steps_as_the_class_does(signmom):
    torch.manual_seed(0)
    w0, grads = torch.randn(5, dtype=torch.float64), [torch.randn(5, dtype=torch.float64)
                                                      for _ in range(3)]
    a, b = w0.clone().requires_grad_(), w0.clone().requires_grad_()
    by_name = optimlab.create("SIGNMOM", [a], lr=0.05, weight_decay=0.1)
    by_class = SignMom([b], lr=0.05, weight_decay=0.1)
    assert type(by_name) is SignMom
    for g in grads:
        a.grad, b.grad = g.clone(), g.clone()
        by_name.step()
        by_class.step()
    assert torch.equal(a, b)
    fresh = optimlab.create("signmom", [a.detach().clone().requires_grad_()])
    fresh.load_state_dict(by_name.state_dict())
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"],
                       by_name.state_dict()["state"][0]["exp_avg"])


@pytest.mark.parametrize("fused", [False, True])
def test_a_population_of_it_steps_each_member_as_it_steps_alone(signmom, fused):
    torch.manual_seed(1)
    lrs = [1e-3, 1e-2, 1e-1]
    w0 = torch.randn(3, 20, dtype=torch.float64)
    grads = [torch.randn(3, 20, dtype=torch.float64) for _ in range(4)]
    w = w0.clone().requires_grad_()
    pop = optimlab.Population("SignMom", [w], {"lr": lrs, "weight_decay": 0.1, "fused": fused})
    for g in grads:
        w.grad = g.clone()
        pop.step()
    for k, lr in enumerate(lrs):
        alone = w0[k].clone().requires_grad_()
        opt = optimlab.create("signmom", [alone], lr=lr, weight_decay=0.1, fused=fused)
        for g in grads:
            alone.grad = g[k].clone()
            opt.step()
        assert torch.equal(alone.detach(), w.detach()[k]), (k, lr)


def test_it_races_by_label_and_by_name_key(signmom):
    race = optimlab.race("rosenbrock", {"signmom": {"lr": 0.01}, "adam": {"lr": 0.05},
                                        "mine": {"name": "SignMom", "lr": 0.02}}, steps=40)
    assert race.hparams["signmom"]["lr"] == 0.01 and race.hparams["mine"]["lr"] == 0.02
    assert all(math.isfinite(race.losses[label][-1]) for label in ("signmom", "mine"))
    assert race.losses["signmom"][-1] != race.losses["mine"][-1]
    assert "signmom" in race.table()


def test_a_tuned_race_picks_its_rate(signmom):
    race = optimlab.race("rosenbrock", {"signmom": None}, steps=30, tune=True)
    assert race.hparams["signmom"]["lr"] in race.tuning["signmom"]
    assert math.isfinite(race.losses["signmom"][-1])


def test_the_advisor_takes_it_as_a_candidate(signmom, tmp_path, monkeypatch):
    from optimlab.bench import advisor

    assert advisor.candidates(["SignMom"]) == ["signmom", "adam"]
    assert advisor.candidates("signmom") == ["signmom", "adam"]
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    x, y = torch.randn(40, 2), torch.randn(40, 1)
    with pytest.warns(Warning):  # 8 validation examples: the advisor says they are few
        advice = optimlab.advise(torch.nn.Linear(2, 1), torch.nn.MSELoss(), (x, y),
                                 optimizers=["signmom"], steps=3, seeds=1, budget=200)
    assert {c["optimizer"] for c in advice.candidates} == {"signmom", "adam"}
    assert next(c for c in advice.candidates if c["optimizer"] == "signmom")["error"] is None


def test_a_sweep_spec_takes_it_by_name(signmom):
    """The bench sweeps' Python API (``run_sweep`` trains it too: 3 s, with the step-cost
    calibration, so only the spec, which resolves and checks the names, is run here)."""
    from optimlab.bench.sweep import SweepSpec

    spec = SweepSpec(task="digits", optimizers=("SignMom", "adam"), lrs=(0.01, 0.1),
                     hparams={"SIGNMOM": {"weight_decay": 0.1}})
    assert spec.optimizers == ("signmom", "adam") and spec.hparams == {"signmom": {
        "weight_decay": 0.1}}
    with pytest.raises(ValueError, match="beta"):
        SweepSpec(task="digits", optimizers=("signmom",), hparams={"signmom": {"beta": 2.0}})


def test_it_gets_a_colour_of_its_own_and_no_builtin_colour_moves():
    before = palette.colors()  # built before the registration: the table is built again
    optimlab.register(SignMom)
    after = palette.colors()
    assert {n: c for n, c in after.items() if n != "signmom"} == before
    assert palette.color("SignMom") == after["signmom"] not in before.values()
    optimlab.unregister("signmom")
    assert palette.colors() == before


# -------------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("thing", [SignMom([torch.zeros(2, requires_grad=True)]), _update,
                                   "signmom", None, 3])
def test_register_refuses_what_is_not_a_class(thing):
    with pytest.raises(TypeError, match="RuleOptimizer"):
        optimlab.register(thing, "x")


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.Optimizer, object, int])
def test_register_refuses_classes_that_are_not_optimlab_optimizers(cls):
    with pytest.raises(TypeError, match="subclass optimlab.optim.base.RuleOptimizer") as err:
        optimlab.register(cls, "x")
    assert "engine" in str(err.value)  # says why


def test_register_refuses_a_rule_optimizer_without_its_rule():
    class NoRule(RuleOptimizer):
        capabilities = Capabilities()

    for cls in (NoRule, RuleOptimizer):
        with pytest.raises(TypeError, match="init and update"):
            optimlab.register(cls, "x")


@pytest.mark.parametrize("name", ["adam", "Adam", " MOMENTUM ", "nag", "sam", "schedulefreesgd"])
def test_a_builtin_name_is_never_taken(name):
    for replace in (False, True):
        with pytest.raises(ValueError, match="built-in"):
            optimlab.register(SignMom, name, replace=replace)
    with pytest.raises(ValueError, match="built-in"):
        optimlab.register(optimlab.Adam)  # its default name, "adam"


def test_a_registered_name_is_replaced_only_when_asked(signmom):
    with pytest.raises(ValueError, match="replace=True"):
        optimlab.register(Plain, "SignMom")
    assert optimlab.resolve("signmom").cls is SignMom
    again = optimlab.register(Plain, "SignMom", replace=True)
    assert optimlab.resolve("signmom") is again and again.cls is Plain
    assert [e.name for e in optimlab.available()] == BUILTIN + ["signmom"]


@pytest.mark.parametrize("name", ["", "   ", "1st", "my-opt", "my opt", "a.b", "sign:mom", "é"])
def test_a_name_must_look_like_an_identifier(name):
    with pytest.raises(ValueError, match="not a name"):
        optimlab.register(SignMom, name)


@pytest.mark.parametrize("name", [3, b"signmom", ("a",)])
def test_a_name_must_be_a_string(name):
    with pytest.raises(ArgumentTypeError, match="must be a string"):
        optimlab.register(SignMom, name)


# ------------------------------------------------------------------------------ unregister

def test_unregister_takes_it_away(signmom):
    optimlab.unregister(" SignMom ")
    assert [e.name for e in optimlab.available()] == BUILTIN
    with pytest.raises(ValueError, match="unknown optimizer 'signmom'"):
        optimlab.resolve("signmom")
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimlab.create("signmom", [torch.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimlab.unregister("signmom")
    assert optimlab.register(SignMom).name == "signmom"  # the name is free again


@pytest.mark.parametrize("name", ["adam", "momentum", "SGD"])
def test_unregister_refuses_builtins(name):
    with pytest.raises(ValueError, match="built-in"):
        optimlab.unregister(name)
    assert optimlab.resolve(name).name == name.lower()


# ---------------------------------------------------------------- other processes and caches

def test_the_command_line_knows_the_builtins_only(signmom, tmp_path, monkeypatch, capsys):
    """The command line in another process answers from the catalog cache, built from the
    built-ins (``OPTIMLAB_CACHE_DIR`` in this test's folder); called in this process, where
    a name is registered, it answers with that name too, and leaves the cache as it was."""
    from optimlab import _catalog_cache, cli

    monkeypatch.setenv("OPTIMLAB_CACHE_DIR", str(tmp_path))
    optimlab.unregister("signmom")
    assert cli.main(["list"]) == 0  # writes the cache, as a fresh process would
    assert "signmom" not in capsys.readouterr().out
    optimlab.register(SignMom)
    assert cli.main(["list"]) == 0  # computed here, not read from the cache
    assert "signmom" in capsys.readouterr().out
    stored = json.loads(_catalog_cache.cache_file().read_text())
    assert stored["data"]["names"] == BUILTIN


def test_a_registration_never_reaches_the_catalog_cache(signmom, tmp_path, monkeypatch):
    """A catalog command run in this process while a name is registered, with no cache yet,
    must not write that name into the cache that other processes read."""
    from optimlab import _catalog_cache, cli

    monkeypatch.setenv("OPTIMLAB_CACHE_DIR", str(tmp_path))
    cli._cached_catalog()
    path = _catalog_cache.cache_file()  # not written at all is as good
    assert not path.exists() or json.loads(path.read_text())["data"]["names"] == BUILTIN


class Doubled(Plain):
    """Plain steps of twice the rate: another class to register under a name taken."""

    @staticmethod
    def update(p, g, state, *, lr, **_):
        return p - 2 * lr * g


def test_the_web_layers_caches_follow_a_replaced_registration():
    """The playground's hyperparameter defaults and optimizer list, used in this process,
    read the class registered now, not the one a name had when they were first built."""
    from optimlab.web import api, hparams

    optimlab.register(Plain, "mine")
    before = hparams.defaults("mine")
    assert "mine" in api._optimizers().decode()

    class Slower(Plain):
        def __init__(self, params, lr=0.5, *, maximize=False):
            super().__init__(params, lr=lr, maximize=maximize)

    optimlab.register(Slower, "mine", replace=True)
    assert hparams.defaults("mine")["lr"] == 0.5 != before["lr"]
    optimlab.unregister("mine")
    assert '"mine"' not in api._optimizers().decode()


def test_the_step_cost_cache_tells_two_classes_under_one_name_apart():
    """A cost measured for one class registered as "mine" is not read for another."""
    import types

    from optimlab.bench import cost

    task, shapes = types.SimpleNamespace(name="digits"), [[[64, 10], "torch.float32"]]
    optimlab.register(Plain, "mine")
    first = cost._key(task, None, 64, "mine", {"lr": 0.1}, shapes)
    optimlab.register(Doubled, "mine", replace=True)
    assert cost._key(task, None, 64, "mine", {"lr": 0.1}, shapes) != first
    # a built-in's key does not depend on a class path
    assert cost._identity("adam") == "adam"


def test_the_same_class_defined_again_replaces_its_registration():
    """A notebook cell that defines a rule and registers it, run twice: the second class has
    the first's module and qualified name, and replaces it without replace=True; the rule
    now stepped is the second's. Another class under the name is still refused."""

    def cell(factor):
        class Scaled(RuleOptimizer):
            init = staticmethod(lambda p, **_: {})
            update = staticmethod(lambda p, g, state, *, lr, **_: p - factor * lr * g)
            capabilities = Capabilities()

            def __init__(self, params, lr=0.1):
                super().__init__(params, dict(lr=lr))

        return optimlab.register(Scaled)

    cell(1.0)
    cell(3.0)  # the cell run again, the rule edited
    p = torch.ones(2, requires_grad=True)
    opt = optimlab.create("scaled", [p], lr=0.1)
    p.grad = torch.ones(2)
    opt.step()
    assert torch.allclose(p.detach(), torch.full((2,), 0.7))
    with pytest.raises(ValueError, match="replace=True"):
        optimlab.register(Plain, "scaled")
