"""Step by step (optimlab.landscapes.inspect): the recorded gradient is the landscape's, the
recorded steps rebuild the path a race takes, and Adam's recorded moments are the paper's
recursions written out in NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optimlab.landscapes import get, race
from optimlab.landscapes.inspect import inspect_steps


def _grad(land, point):
    x = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    land.f(x).backward()
    return x.grad.numpy()


@pytest.mark.parametrize("name, hp", [("adam", {"lr": 0.05}), ("momentum", {"lr": 1e-3}),
                                      ("adagrad", {"lr": 0.1}), ("sam", {"lr": 1e-3}),
                                      ("muon", {"lr": 0.01})])
def test_the_record_is_the_race_path_with_its_gradients(name, hp):
    land = get("rosenbrock")
    rec = inspect_steps(land, name, hp, steps=25)
    alone = race(land, {name: hp}, steps=25)
    np.testing.assert_allclose(rec["points"], alone.paths[name], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rec["loss"], alone.losses[name], rtol=1e-12)
    np.testing.assert_allclose(rec["update"], np.diff(rec["points"], axis=0), atol=1e-15)
    for t in (0, 10, 24):
        np.testing.assert_allclose(rec["grad"][t], _grad(land, rec["points"][t]), rtol=1e-12)
    assert not rec["diverged"]


@pytest.mark.parametrize("name, lr", [("schedulefreeadamw", 0.01), ("schedulefreesgd", 1e-3)])
def test_a_schedule_free_record_ends_where_the_race_ends(name, lr):
    """The race ends a schedule-free run at its average x (its eval()); the record does
    too, and every earlier point is the gradient point the steps moved."""
    land = get("rosenbrock")
    rec = inspect_steps(land, name, {"lr": lr}, steps=20)
    alone = race(land, {name: {"lr": lr}}, steps=20)
    assert not rec["diverged"]
    np.testing.assert_allclose(rec["points"], alone.paths[name], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rec["loss"], alone.losses[name], rtol=1e-12)
    np.testing.assert_allclose(rec["update"][:-1], np.diff(rec["points"][:-1], axis=0),
                               atol=1e-15)
    assert not np.allclose(rec["points"][-1], rec["points"][-2] + rec["update"][-1])


def test_adams_moments_are_the_papers_recursions():
    land = get("rosenbrock")
    b1, b2 = 0.9, 0.999
    rec = inspect_steps(land, "adam", {"lr": 0.02, "betas": (b1, b2)}, steps=15)
    m = v = np.zeros(2)
    for t, g in enumerate(rec["grad"]):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        np.testing.assert_allclose(rec["state"]["exp_avg"]["values"][t], m, rtol=1e-12)
        np.testing.assert_allclose(rec["state"]["exp_avg_sq"]["values"][t], v, rtol=1e-12)
    assert rec["state"]["exp_avg"]["kind"] == "direction"
    assert rec["state"]["exp_avg_sq"]["kind"] == "scale"
    assert rec["state"]["step"]["kind"] == "scalar"
    np.testing.assert_array_equal(rec["state"]["step"]["values"], np.arange(1, 16))


def test_a_diverging_run_stops_and_says_so():
    rec = inspect_steps(get("rosenbrock"), "gd", {"lr": 1.0}, steps=50)
    assert rec["diverged"] and len(rec["update"]) < 50


@pytest.mark.parametrize("kwargs, match", [({"steps": 0}, "steps"), ({"start": [1.0]}, "start"),
                                           ({"start": [float("nan"), 0.0]}, "start")])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        inspect_steps(get("rosenbrock"), "adam", {"lr": 0.1}, **{"steps": 5, **kwargs})
    with pytest.raises(ValueError, match="unknown optimizer"):
        inspect_steps(get("rosenbrock"), "adamm", {}, steps=5)


def test_a_catalog_name_is_a_landscape_here_too():
    by_name = inspect_steps("rosenbrock", "adam", {"lr": 0.05}, steps=5)
    by_object = inspect_steps(get("rosenbrock"), "adam", {"lr": 0.05}, steps=5)
    np.testing.assert_array_equal(by_name["points"], by_object["points"])
    with pytest.raises(ValueError, match="unknown landscape 'rosenbrok'"):
        inspect_steps("rosenbrok", "adam", steps=5)
    rec = inspect_steps("rosenbrock", "adam", steps=np.int64(3))
    assert rec["points"].shape == (4, 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"start": "ab"}, r"start must be 2 numbers, got 'ab'"),
    ({"start": [[1.0, 2.0]]}, r"start must be 2 finite numbers"),
    ({"hparams": {"lr": 0.1, "bettas": (0.9, 0.9)}},
     r"inspect_steps 'adam': 'bettas' is not a hyperparameter of Adam .*did you mean 'betas'"),
])
def test_bad_input_is_a_value_error_naming_it(kwargs, match):
    with pytest.raises(ValueError, match=match):
        inspect_steps(get("rosenbrock"), "adam", **{"steps": 5, **kwargs})
