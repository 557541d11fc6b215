"""Python's convention, kept across the public API: an argument of the wrong kind (a string
where a number goes, a number where a name goes) raises ``TypeError``; one of the right
kind with a wrong value raises a plain ``ValueError``.

optimlab raises :class:`~optimlab.optim.base.ArgumentTypeError` for the first, a
``TypeError`` that is a ``ValueError`` too, so code written against the older messages
(``except ValueError``) keeps working. Each case below names a call of each kind at one
check; the table covers the checks of the training lab, the landscapes, the exhibits,
the web API and the run store, which raised ``ValueError`` for both before.
"""
from __future__ import annotations

import pytest

from optimlab import landscapes
from optimlab.bench import advisor, slices, tasks
from optimlab.bench.profile import build_profile
from optimlab.bench.store import RunStore
from optimlab.bench.sweep import SweepSpec
from optimlab.bench.trainer import TrainConfig
from optimlab.exhibits.basins import basins
from optimlab.exhibits.batch_sizes import gd_variants
from optimlab.exhibits.sparse_features import sparse
from optimlab.landscapes.suggest import suggest_lrs
from optimlab.optim.base import ArgumentTypeError, argument_error, is_real
from optimlab.web.api import RaceControl
from optimlab.web.server import _listen


def _sweep(**changes):
    return SweepSpec(**{"task": "digits", "optimizers": ["adam"], **changes})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("kinds") / "runs.db")
    sweep = store.open_sweep({"task": "digits", "steps": 1})
    run = store.add_runs(sweep, [{"optimizer": "adam", "hparams": {"lr": 0.1}, "seed": 0}])[0]
    store.start_run(run)
    return store, sweep, run


#: name -> (a call with an argument of the wrong kind, a call with a wrong value of the
#: right kind); each takes the store fixture's (store, sweep, run)
CASES = {
    "TrainConfig steps": (lambda s: TrainConfig(steps=2.5), lambda s: TrainConfig(steps=0)),
    "TrainConfig batch_size": (lambda s: TrainConfig(batch_size="32"),
                               lambda s: TrainConfig(batch_size=0)),
    "TrainConfig clip_norm": (lambda s: TrainConfig(clip_norm="1"),
                              lambda s: TrainConfig(clip_norm=-1.0)),
    "TrainConfig model": (lambda s: TrainConfig(model=3), None),
    "SweepSpec target": (lambda s: _sweep(target="0.9"), lambda s: _sweep(target=float("nan"))),
    "SweepSpec lrs": (lambda s: _sweep(lrs=["0.1"]), lambda s: _sweep(lrs=[-0.1])),
    "SweepSpec extend": (lambda s: _sweep(extend="yes"), None),
    "SweepSpec optimizers": (lambda s: _sweep(optimizers=[3]), None),
    "SweepSpec config": (lambda s: _sweep(config={"steps": 3}), None),
    "SweepSpec hparams": (lambda s: _sweep(hparams=[("adam", {})]), None),
    "advisor budget": (lambda s: advisor.plan(90, 2, budget=100.0),
                       lambda s: advisor.plan(90, 2, budget=0)),
    "advisor seconds": (lambda s: advisor.steps_for_seconds(None, None, None, ["adam"], "3"),
                        lambda s: advisor.steps_for_seconds(None, None, None, ["adam"], -3)),
    "profile sweep ids": (lambda s: build_profile(s[0], "1"), None),
    "slices tol": (lambda s: slices.top_hessian_eigenvalue(None, None, None, None, None, tol="1"),
                   lambda s: slices.top_hessian_eigenvalue(None, None, None, None, None, tol=-1)),
    "store member optimizer": (
        lambda s: s[0].add_runs(s[1], [{"optimizer": 3}]),
        lambda s: s[0].add_runs(s[1], [{"optimizer": ""}])),
    "store member hparams": (lambda s: s[0].add_runs(s[1], [{"optimizer": "adam", "hparams": 3}]),
                             None),
    "store metric name": (lambda s: s[0].log_metrics(s[2], 0, {3: 1.0}),
                          lambda s: s[0].log_metrics(s[2], 0, {"": 1.0})),
    "task name": (lambda s: tasks.get(5), None),
    "task argument": (lambda s: tasks.get("digits", test_size="0.2"),
                      lambda s: tasks.get("digits", test_size=2.0)),
    "landscape name": (lambda s: landscapes.get(5), None),
    "landscape number": (lambda s: landscapes.get("quadratic", kappa="10"),
                         lambda s: landscapes.get("quadratic", kappa=-1)),
    "landscape integer": (lambda s: landscapes.get("rosenbrock_nd", dim=2.5),
                          lambda s: landscapes.get("rosenbrock_nd", dim=0)),
    "landscape angle": (lambda s: landscapes.get("rotated_quadratic", angle="45"),
                        lambda s: landscapes.get("rotated_quadratic", angle=270)),
    "landscape noise": (lambda s: landscapes.get("quadratic").with_noise("0.1"),
                        lambda s: landscapes.get("quadratic").with_noise(-0.1)),
    "landscape noise seed": (lambda s: landscapes.get("quadratic").with_noise(0.1, seed=1.5),
                             lambda s: landscapes.get("quadratic").with_noise(0.1, seed=-1)),
    "suggest landscape": (lambda s: suggest_lrs(5, "adam"), None),
    "basins radius": (lambda s: basins("himmelblau", radius="5"),
                      lambda s: basins("himmelblau", radius=-5)),
    "basins optimizers": (lambda s: basins("himmelblau", optimizers=["adam"]),
                          lambda s: basins("himmelblau", optimizers={})),
    "gd-variants noise": (lambda s: gd_variants(noise="0.1"), lambda s: gd_variants(noise=-1)),
    "gd-variants variants": (lambda s: gd_variants(variants=[(1, 0.1)]),
                             lambda s: gd_variants(variants={})),
    "gd-variants variant": (lambda s: gd_variants(variants={"a": 0.1}),
                            lambda s: gd_variants(variants={"a": (1, 0.1, 3)})),
    "gd-variants lr": (lambda s: gd_variants(variants={"a": (1, "0.1")}),
                       lambda s: gd_variants(variants={"a": (1, -0.1)})),
    "sparse n": (lambda s: sparse(n=25.0), lambda s: sparse(n=1)),
    "sparse lr": (lambda s: sparse(lr="0.1"), lambda s: sparse(lr=0)),
    "sparse noise": (lambda s: sparse(noise="0"), lambda s: sparse(noise=-1)),
    "sparse presence": (lambda s: sparse(presence=["0.5"], true_w=[1.0]),
                        lambda s: sparse(presence=[1.5], true_w=[1.0])),
    "sparse true_w": (lambda s: sparse(presence=[0.5], true_w=["1"]),
                      lambda s: sparse(presence=[0.5], true_w=[float("inf")])),
    "MARS mars_type": (lambda s: __import__("optimlab").MARS([], mars_type=1),
                       lambda s: __import__("optimlab").MARS([], mars_type="adam")),
    "race seconds": (lambda s: RaceControl(seconds="1"), lambda s: RaceControl(seconds=0)),
    "server port": (lambda s: _listen("127.0.0.1", "8000"), lambda s: _listen("127.0.0.1", 70000)),
}


@pytest.mark.parametrize("name", [n for n, (wrong_kind, _) in CASES.items() if wrong_kind])
def test_an_argument_of_the_wrong_kind_raises_a_type_error(name, store):
    with pytest.raises(TypeError) as caught:
        CASES[name][0](store)
    # the class optimlab raises for it, a ValueError too (what these checks raised before)
    assert isinstance(caught.value, ArgumentTypeError), repr(caught.value)


@pytest.mark.parametrize("name", [n for n, (_, wrong_value) in CASES.items() if wrong_value])
def test_a_wrong_value_of_the_right_kind_raises_a_plain_value_error(name, store):
    with pytest.raises(ValueError) as caught:
        CASES[name][1](store)
    assert not isinstance(caught.value, TypeError), repr(caught.value)


def test_argument_error_chooses_by_kind():
    assert argument_error(True) is ValueError
    assert argument_error(False) is ArgumentTypeError
    assert all(map(is_real, (1, 1.5, float("inf"), float("nan"), __import__("numpy").float32(2))))
    assert not any(map(is_real, (True, "1", None, 1j, __import__("numpy").bool_(True))))


def test_numpy_numbers_are_numbers_where_a_number_goes():
    # refused before as "must be a positive number" (they checked int and float only)
    import numpy as np

    assert RaceControl(seconds=np.float32(2)).seconds == 2.0
    assert basins("himmelblau", radius=np.float32(0.5), grid=2, steps=2).radius == 0.5
