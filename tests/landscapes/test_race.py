"""Races: batched paths equal hand-run optimizer loops; tuning, divergence and bad input."""

import math

import numpy as np
import pytest
import torch

import optimlab
from optimlab.landscapes import Landscape, get, race
from optimlab.optim.catalog import TABLE

# A learning rate per class that makes a telling but finite run on Rosenbrock from its start.
LR = {"sgd": 1e-4, "asgd": 1e-4, "rprop": 1e-3, "adagrad": 0.1, "adadelta": 1.0,
      "rmsprop": 1e-3, "adam": 0.02, "adamw": 0.02, "adamax": 0.02, "nadam": 0.02,
      "radam": 0.02, "adabelief": 0.02, "lamb": 0.01, "lion": 1e-3, "adafactor": 0.01,
      "muon": 0.01, "sam": 1e-4, "lookahead": 0.02, "schedulefreeadamw": 0.01}
EXTRA = {"lookahead": {"inner": "adam"}, "sam": {"rho": 0.05}}


def _hand_run(landscape, name, hp, start, steps, noise):
    """The race path, computed the slow way: one optimizer, one point, by hand."""
    matrix = optimlab.resolve(name).capabilities.needs_matrix
    shape = (1, landscape.dim) if matrix else (landscape.dim,)
    p = torch.tensor(start, dtype=torch.float64).reshape(shape).requires_grad_()
    opt = optimlab.create(name, [p], **hp)
    seq = landscape.with_noise(noise, 0).noise_sequence(steps) if noise else None
    path = [p.detach().reshape(-1).clone()]
    for t in range(steps):
        def closure():
            opt.zero_grad()
            loss = landscape.f(p.reshape(-1))
            if seq is not None:
                loss = loss + (seq[t] * p.reshape(-1)).sum()
            loss.backward()
            return loss
        if optimlab.resolve(name).info.needs_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
        path.append(p.detach().reshape(-1).clone())
    return torch.stack(path).numpy()


@pytest.mark.parametrize("noise", [0.0, 0.5], ids=["exact", "noisy"])
@pytest.mark.parametrize("name", [info.name for info in TABLE])
def test_race_path_equals_hand_run(name, noise):
    landscape = get("rosenbrock")
    hp = {"lr": LR[name], **EXTRA.get(name, {})}
    result = race(landscape, {name: hp}, steps=150, noise=noise)
    expected = _hand_run(landscape, name, hp, landscape.start, 150, noise)
    assert np.abs(expected[-1] - expected[0]).max() > 1e-3, "the run did not move"
    np.testing.assert_allclose(result.paths[name], expected, rtol=1e-10,
                               atol=1e-10 * np.abs(expected).max())
    np.testing.assert_allclose(result.losses[name],
                               landscape.f(torch.as_tensor(expected)).numpy(), rtol=1e-10)


def test_optimizers_in_one_race_do_not_interact():
    spec = {"sgd": {"lr": 1e-4}, "momentum": {"lr": 1e-4}, "adam": {"lr": 0.05},
            "big adam": {"name": "adam", "lr": 0.3}, "lamb": {"lr": 0.01}}
    together = race("rosenbrock", spec, steps=100, noise=0.1, seed=3)
    for label, hp in spec.items():
        alone = race("rosenbrock", {label: hp}, steps=100, noise=0.1, seed=3)
        np.testing.assert_array_equal(together.paths[label], alone.paths[label])
    assert together.hparams["momentum"] == {"name": "momentum", "momentum": 0.9, "lr": 1e-4}
    assert together.hparams["big adam"]["name"] == "adam"


def test_race_shape_and_metrics():
    result = race("quadratic", {"adam": {"lr": 0.1}, "gd": {"lr": 0.05}}, steps=300,
                  start=(2.0, 1.0), tol=1e-4)
    assert result.paths["adam"].shape == (301, 2) and result.losses["gd"].shape == (301,)
    np.testing.assert_array_equal(result.paths["gd"][0], [2.0, 1.0])
    m = result.metrics["gd"]
    assert m.final_loss == pytest.approx(result.losses["gd"][-1])
    assert m.gap == pytest.approx(m.final_loss - result.landscape.min_value)
    assert m.distance == pytest.approx(np.linalg.norm(result.paths["gd"][-1]))
    first = int(np.argmax(result.losses["gd"] - result.landscape.min_value <= 1e-4))
    assert m.steps_to_tol == first and not m.diverged
    assert "adam" in result.table() and "steps to 0.0001" in result.table()


def test_divergence_is_reported_not_raised():
    result = race("rosenbrock", {"sgd": {"lr": 0.1}, "adam": {"lr": 0.01}}, steps=50)
    assert result.metrics["sgd"].diverged and not result.metrics["adam"].diverged
    assert not math.isfinite(result.metrics["sgd"].final_loss) or \
        result.metrics["sgd"].final_loss > 1e6


def test_tuning_picks_the_best_learning_rate_of_the_grid():
    grid = [1e-4, 1e-3, 1e-2, 1e-1]
    tuned = race("rosenbrock", {"adam": {}, "sgd": {}}, steps=200, tune=grid)
    for label in ("adam", "sgd"):
        scores = tuned.tuning[label]
        assert list(scores) == grid
        finite = {lr: v for lr, v in scores.items() if math.isfinite(v)}
        best = min(finite, key=finite.get)
        assert tuned.hparams[label]["lr"] == best
        rerun = race("rosenbrock", {label: {"lr": best}}, steps=200)
        np.testing.assert_allclose(tuned.paths[label], rerun.paths[label], rtol=1e-12)
    default = race("quadratic", {"adam": {}}, steps=20, tune=True)
    assert len(default.tuning["adam"]) == len(optimlab.landscapes.TUNE_GRID)


def test_custom_landscape_and_nd():
    bowl = Landscape("bowl", 3, lambda x: (x**2).sum(-1), ((-1, 1),) * 3, ((0, 0, 0),), 0.0,
                     ("ill-conditioned",), (0.5, -0.5, 0.2), "a round bowl")
    result = race(bowl, {"gd": {"lr": 0.1}}, steps=50)
    assert result.paths["gd"].shape == (51, 3) and result.metrics["gd"].final_loss < 1e-6
    nd = race(get("rosenbrock_nd", dim=5), {"adam": {"lr": 0.01}}, steps=10)
    assert nd.paths["adam"].shape == (11, 5)


@pytest.mark.parametrize("kwargs, match", [
    ({"optimizers": {"adamm": {}}}, "unknown optimizer 'adamm'"),
    ({"optimizers": {}}, "non-empty"),
    ({"optimizers": {"adam": {"lr": -1}}}, "lr"),
    ({"start": (1.0,)}, "start must be 2"),
    ({"start": (1.0, float("nan"))}, "finite"),
    ({"steps": -1}, "steps"),
    ({"noise": -0.1}, "noise"),
    ({"tune": [0.1, -1]}, "tune grid"),
])
def test_bad_input(kwargs, match):
    args = {"optimizers": {"adam": {"lr": 0.1}}, **kwargs}
    with pytest.raises(ValueError, match=match):
        race("rosenbrock", **args)


def test_unknown_landscape():
    with pytest.raises(ValueError, match="rosenbrock"):
        race("rosenbrok", {"adam": {}})


def test_the_race_gradient_is_torch_autograd_grad():
    """The step loop's gradient (a vector-Jacobian product against the members' weights)
    is exactly what torch.autograd.grad gives for the weighted sum of f."""
    import sys

    engine = sys.modules["optimlab.landscapes.race"]
    for name in ("rosenbrock", "ackley", "goldstein_price", "two_wells"):
        land = get(name)
        x = torch.linspace(-1.5, 1.5, 14, dtype=torch.float64).reshape(7, 2)
        weights = torch.linspace(0.5, 2.0, 7, dtype=torch.float64)
        for w in (torch.ones(7, dtype=torch.float64), weights):
            with torch.enable_grad():
                p = x.clone().requires_grad_()
                expected = torch.autograd.grad((w * land.f(p)).sum(), p)[0]
                p = x.clone().requires_grad_()
                values = land.f(p)
                got = engine._vjp(values, p, w)
            assert not got.requires_grad and values.grad_fn is not None
            if torch.equal(w, torch.ones_like(w)):
                assert torch.equal(got, expected), name
            else:
                torch.testing.assert_close(got, expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("kwargs", [
    {"noise": float("inf")}, {"noise": float("nan")}, {"noise": -1.0}, {"noise": 1e7},
    {"noise": True}, {"seed": -1}, {"seed": 2**70}, {"seed": 1.5},
])
def test_a_race_refuses_meaningless_noise_and_seeds(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        race("rosenbrock", {"adam": {"lr": 0.01}}, steps=3, **kwargs)
