"""The ``ill-conditioned`` and ``saddle`` exhibits: races on their own small landscapes."""

import functools

import numpy as np
import pytest
import torch

from optimlab.exhibits import landscape
from tests.exhibits.figures import check_figure


@functools.cache
def result(name):
    """Each exhibit runs once per session; the tests below only read its numbers."""
    return {"ill-conditioned": landscape.ill_conditioned, "saddle": landscape.saddle}[name]()


# -- ill-conditioned ------------------------------------------------------------------------


def test_ill_conditioned_landscape_is_exactly_the_tutorials():
    land = landscape.RAVINE
    x = torch.tensor([[5.0, 5.0], [1.0, -2.0], [0.0, 0.0]], dtype=torch.float64)
    assert land(x).tolist() == [25.0 + 250.0, 1.0 + 40.0, 0.0]


def test_ill_conditioned_ordering():
    demo = result("ill-conditioned")
    race = demo.race
    m = race.metrics
    assert not any(v.diverged for v in m.values())
    # every SGD learning rate is below the stability limit 2/20 = 0.1
    assert all(hp["lr"] < 0.1 for hp in race.hparams.values() if hp["name"] == "sgd")
    # Adam reaches f < 1e-3
    assert m["adam"].steps_to_tol is not None
    # near the limit SGD zig-zags across the steep direction every step; Adam does not
    assert demo.flips["sgd, near limit"] == demo.window
    assert demo.flips["adam"] == 0
    # at a safe rate SGD settles theta2 long before theta1: the shallow direction lags
    assert demo.lag["sgd, safe"] > 10 * demo.lag["adam"]
    assert m["sgd, safe"].steps_to_tol > m["adam"].steps_to_tol
    assert "steps to f<0.001" in demo.table()


def test_ill_conditioned_figure():
    check_figure(result("ill-conditioned"))


# -- saddle ---------------------------------------------------------------------------------


def test_saddle_gd_stalls_longest():
    demo = result("saddle")
    esc = demo.escape
    assert set(esc) == {"gd", "momentum", "adam", "gd + noise"}
    assert all(v is not None for v in esc.values())
    for other in ("momentum", "adam", "gd + noise"):
        assert esc["gd"] > esc[other]
    # GD stalls: for 30 steps it stays within 1e-3 of the saddle's line y = 0
    gd_path = demo.races[0].paths["gd"]
    assert np.abs(gd_path[:31, 1]).max() < 1e-3
    assert demo.races[1].noise == pytest.approx(demo.noise)
    # near the saddle the landscape is x^2 - y^2
    x = torch.tensor([0.3, 0.01], dtype=torch.float64)
    assert float(landscape.SADDLE(x)) == pytest.approx(0.09 - 1e-4, abs=1e-8)


def test_saddle_figure():
    check_figure(result("saddle"))
