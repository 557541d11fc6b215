"""Races: batched paths equal hand-run optimizer loops; tuning, divergence and bad input."""

import importlib
import math

import numpy as np
import pytest
import torch

import optimlab
from optimlab.landscapes import Landscape, get, race
from optimlab.landscapes.race import (
    DIVERGENCE_WIDTHS,
    LR_LIMITS,
    TUNE_CRITERION,
    run_fan,
    run_starts,
)
from optimlab.optim.catalog import TABLE

# A learning rate per class that makes a telling but finite run on Rosenbrock from its start.
LR = {"sgd": 1e-4, "asgd": 1e-4, "rprop": 1e-3, "adagrad": 0.1, "adadelta": 1.0,
      "rmsprop": 1e-3, "adam": 0.02, "adamw": 0.02, "adamax": 0.02, "nadam": 0.02,
      "radam": 0.02, "adabelief": 0.02, "lamb": 0.01, "lion": 1e-3, "adafactor": 0.01,
      "muon": 0.01, "sam": 1e-4, "lookahead": 0.02, "schedulefreeadamw": 0.01,
      "signum": 1e-3, "yogi": 0.02, "ademamix": 0.02, "adopt": 0.02, "lars": 0.5,
      "schedulefreesgd": 1e-3,
      "lbfgs": 0.05,
      "psgdkron": 0.01,
      "prodigy": 1.0,
      "mars": 0.02,
      "laprop": 0.02, "novograd": 0.001,
      "dadaptadam": 1.0, "dadaptsgd": 1.0,
      "adammini": 0.02,
      "sophia": 0.01,
      "soap": 0.02, "shampoo": 0.1}
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
    if callable(getattr(opt, "eval", None)):  # schedule-free: the run ends at its average x
        with torch.no_grad():
            opt.eval()
        path[-1] = p.detach().reshape(-1).clone()
    return torch.stack(path).numpy()


@pytest.mark.parametrize("noise", [0.0, 0.5], ids=["exact", "noisy"])
@pytest.mark.parametrize("name", [info.name for info in TABLE
                                  if not info.capabilities.sparse_only])
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
    assert "adam" in result.table() and "steps to gap 0.0001" in result.table()


def test_divergence_is_reported_not_raised():
    result = race("rosenbrock", {"sgd": {"lr": 0.1}, "adam": {"lr": 0.01}}, steps=50)
    assert result.metrics["sgd"].diverged and not result.metrics["adam"].diverged
    assert not math.isfinite(result.metrics["sgd"].final_loss) or \
        result.metrics["sgd"].final_loss > 1e6


def _late_worst(loss):
    """The tuning criterion by hand: the worst of the last quarter of the losses."""
    loss = np.asarray(loss, dtype=float)
    return float(loss[-max(1, math.ceil(0.25 * len(loss))):].max())


def test_tuning_picks_the_best_learning_rate_by_the_late_worst_loss():
    grid = [1e-4, 1e-3, 1e-2, 1e-1]
    tuned = race("rosenbrock", {"adam": {}, "sgd": {}}, steps=100, tune=grid)
    assert tuned.tuned_by == TUNE_CRITERION
    assert ("lr tuned by: worst loss over the last 25% of steps; a run above its start past "
            "halfway is out") in tuned.table()
    for label in ("adam", "sgd"):
        finals, scores = tuned.tuning[label], tuned.tuning_scores[label]
        assert list(finals) == list(scores) == sorted(finals)  # every rate tried, in order
        assert set(grid) <= set(finals)
        best = min(scores, key=scores.get)
        assert tuned.hparams[label]["lr"] == best and math.isfinite(scores[best])
        rerun = race("rosenbrock", {label: {"lr": best}}, steps=100)
        np.testing.assert_allclose(tuned.paths[label], rerun.paths[label], rtol=1e-12)
        assert scores[best] == _late_worst(rerun.losses[label])
        assert finals[best] == rerun.metrics[label].final_loss
    default = race("quadratic", {"adam": {}}, steps=20, tune=True, extend=False)
    assert list(default.tuning["adam"]) == list(optimlab.landscapes.TUNE_GRID)


def test_a_race_without_tuning_says_nothing_of_it():
    plain = race("quadratic", {"adam": {"lr": 0.1}}, steps=5)
    assert plain.tuned_by == "" and plain.tuning == plain.tuning_scores == {}
    assert plain.tuning_edge == plain.tuning_extended == {}
    assert "tuned" not in plain.table()


def test_a_late_spike_does_not_win_tuning():
    """RMSprop on Rosenbrock: lr 0.178 has the lowest final loss of the grid, but its loss
    spikes to about 2e2 at step 292. By final loss it would win; it must not."""
    tuned = race("rosenbrock", {"rmsprop": {}}, steps=300, tune=True)
    finals = tuned.tuning["rmsprop"]
    by_final = min(finals, key=finals.get)
    spiky = race("rosenbrock", {"rmsprop": {"lr": by_final}}, steps=300).losses["rmsprop"]
    assert spiky[225:].max() > 100 * spiky[-1]  # the case: a late spike, a low last loss
    chosen = tuned.hparams["rmsprop"]["lr"]
    assert chosen != by_final
    assert tuned.tuning_scores["rmsprop"][chosen] < spiky[225:].max() / 100
    assert tuned.losses["rmsprop"][225:].max() == tuned.tuning_scores["rmsprop"][chosen]


def test_a_diverged_run_never_wins_tuning():
    # sgd at 1e-2 on Rosenbrock diverges to a finite but far-away point within 8 steps
    tuned = race("rosenbrock", {"sgd": {}}, steps=8, tune=[1e-4, 1e-2], extend=False)
    assert tuned.tuning_scores["sgd"][1e-2] == math.inf
    assert tuned.hparams["sgd"]["lr"] == 1e-4


def test_a_best_rate_on_the_top_edge_extends_the_grid():
    """Gradient descent on 0.5 (x^2 + 10 y^2) for 50 steps: bigger is better up to about
    0.1 (stable below 0.2), so the grid [1e-4, 1e-3] has its best rate on the top edge."""
    grid = [1e-4, 1e-3]
    flagged = race("quadratic", {"gd": {}}, steps=50, tune=grid, extend=False)
    assert flagged.hparams["gd"]["lr"] == 1e-3
    assert flagged.tuning_edge == {"gd": "high"}
    table = flagged.table()
    assert "lr=0.001 (top of grid)" in table
    assert "gd: the tuned lr is the largest rate tried (tried 0.0001 to 0.001)" in table

    extended = race("quadratic", {"gd": {}}, steps=50, tune=grid)
    tried = list(extended.tuning["gd"])
    # one round of four points with the grid's spacing (a decade) beyond the top
    assert tried == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0], rel=1e-12)
    assert extended.hparams["gd"]["lr"] == pytest.approx(0.1)
    assert extended.tuning_edge == {} and "(top of grid)" not in extended.table()
    assert extended.tuning_extended == {"gd": pytest.approx((1e-2, 1e-1, 1.0, 10.0))}
    assert ("gd: the grid's best rate was on its edge, so 0.01, 0.1, 1, 10 were tried too; "
            "the tuned lr 0.1 is now inside the rates tried") in extended.table()
    assert flagged.tuning_extended == {}
    assert extended.metrics["gd"].final_loss < flagged.metrics["gd"].final_loss
    # the extension's members run exactly as a race at that rate alone
    alone = race("quadratic", {"gd": {"lr": extended.hparams["gd"]["lr"]}}, steps=50)
    np.testing.assert_array_equal(extended.paths["gd"], alone.paths["gd"])


def test_progress_ticks_once_per_step_and_again_for_each_extension_round():
    ticks = []
    plain = race("quadratic", {"gd": {"lr": 0.05}, "adam": {}}, steps=30,
                 progress=ticks.append)
    assert ticks == [1] * 30  # every optimizer steps together: one tick per step
    quiet = race("quadratic", {"gd": {"lr": 0.05}, "adam": {}}, steps=30)
    for label in ("gd", "adam"):  # watching changes nothing
        np.testing.assert_array_equal(plain.paths[label], quiet.paths[label])
    ticks.clear()
    # the grid of the test above: one round of rates past its top edge, then none
    extended = race("quadratic", {"gd": {}}, steps=50, tune=[1e-4, 1e-3], progress=ticks.append)
    assert len(extended.tuning_extended["gd"]) == 4 and sum(ticks) == 2 * 50


def test_extension_stops_at_the_limits_and_then_flags():
    """On a very flat bowl gradient descent wants a rate of 5e5: beyond every limit."""
    flat = Landscape("flat", 2, lambda x: 1e-6 * (x**2).sum(-1), ((-1, 1),) * 2, ((0, 0),),
                     0.0, ("plateau",), (1.0, 1.0), "a very flat bowl")
    tuned = race(flat, {"gd": {}}, steps=20, tune=[1e-8, 1e-7])
    tried = sorted(tuned.tuning["gd"])
    assert tried[-1] == pytest.approx(LR_LIMITS[1])
    assert len(tried) == 2 + 4 + 4 + 1  # two rounds of four, then only 1e2 fits
    assert tuned.hparams["gd"]["lr"] == tried[-1] and tuned.tuning_edge == {"gd": "high"}
    assert "lr=100 (top of grid)" in tuned.table()
    assert "the tuned lr 100 is still on its edge" in tuned.table()


def test_a_grid_where_every_rate_diverges_extends_downwards():
    tuned = race("rosenbrock", {"sgd": {}}, steps=50, tune=[10.0, 100.0])
    lr = tuned.hparams["sgd"]["lr"]
    assert lr < 10 and not tuned.metrics["sgd"].diverged
    assert min(tuned.tuning["sgd"]) < lr  # a bad rate below it was tried too: interior
    assert tuned.tuning_edge == {}


def test_ties_go_to_the_smaller_rate_and_are_no_edge():
    # no steps: every rate scores f(start); nothing to extend, nothing to flag
    tuned = race("quadratic", {"adam": {}}, steps=0, tune=[1e-3, 1e-2, 1e-1])
    assert tuned.hparams["adam"]["lr"] == 1e-3
    assert tuned.tuning_edge == {} and len(tuned.tuning["adam"]) == 3


def test_saddle_metrics_say_escaped_not_gap():
    """x^2 - y^2 has no minimum: the table reports whether and when each run escaped
    (fell below -4, the lowest value on the plotted square) instead of gap and distance."""
    result = race("saddle", {"gd": {"lr": 0.1}, "slow gd": {"name": "gd", "lr": 1e-4}},
                  steps=50)
    fast, slow = result.metrics["gd"], result.metrics["slow gd"]
    losses = result.losses["gd"]
    first = int(np.argmax(losses < -4.0))
    assert losses[first] < -4.0 <= losses[first - 1]
    assert fast.escaped is True and fast.steps_to_escape == first
    assert slow.escaped is False and slow.steps_to_escape is None
    assert math.isnan(fast.gap) and math.isnan(fast.distance) and fast.steps_to_tol is None
    table = result.table()
    header = table.splitlines()[0]
    assert "escaped" in header and "steps to escape" in header
    assert "gap" not in header and "dist" not in header and "nan" not in table
    assert "no minimum: saddle has none to converge to; escaped = loss below -4," in table
    row = next(line for line in table.splitlines() if line.startswith("gd "))
    assert row.split()[-3:] == ["yes", str(first), "no"]


def test_metrics_with_a_minimum_have_no_escape():
    m = race("quadratic", {"gd": {"lr": 0.1}}, steps=10).metrics["gd"]
    assert m.escaped is None and m.steps_to_escape is None


def test_run_starts_runs_each_start_as_its_own_race():
    land = get("two_wells")
    starts = np.array([[3.5, 3.0], [-2.0, 0.5], [0.3, -3.0]])
    spec = [("momentum", {"lr": 0.1}), ("adam", {"lr": 0.05})]
    runs = run_starts(land, spec, starts, 40)
    for (name, hp), (paths, losses) in zip(spec, runs):
        assert paths.shape == (41, 3, 2) and losses.shape == (41, 3)
        for i, start in enumerate(starts):
            alone = race(land, {name: hp}, start=start, steps=40)
            np.testing.assert_array_equal(paths[:, i].numpy(), alone.paths[name])
            np.testing.assert_array_equal(losses[:, i].numpy(), alone.losses[name])


@pytest.mark.parametrize("starts, steps, entries, match", [
    ([1.0, 2.0], 5, [("gd", {"lr": 0.1})], "starts must be"),
    ([[1.0, 2.0, 3.0]], 5, [("gd", {"lr": 0.1})], "starts must be"),
    ([[1.0, float("nan")]], 5, [("gd", {"lr": 0.1})], "finite"),
    ([["a", "b"]], 5, [("gd", {"lr": 0.1})], "starts must be"),
    ([[1.0, 2.0]], -1, [("gd", {"lr": 0.1})], "steps"),
    ([[1.0, 2.0]], 5, [("gd", {"lr": [0.1, 0.2]})], "one value per hyperparameter"),
    ([[1.0, 2.0]], 5, [("gdd", {"lr": 0.1})], "unknown optimizer"),
])
def test_run_starts_bad_input(starts, steps, entries, match):
    with pytest.raises(ValueError, match=match):
        run_starts(get("two_wells"), entries, starts, steps)


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


def test_an_optimizer_for_sparse_gradients_only_cannot_race():
    """A landscape's gradients are dense; SparseAdam is refused before any step, saying so."""
    names = [info.name for info in TABLE if info.capabilities.sparse_only]
    assert names  # SparseAdam
    with pytest.raises(ValueError, match="sparse gradients only"):
        race("rosenbrock", {names[0]: {"lr": 0.01}}, steps=5)


def test_run_fan_runs_each_start_and_rate_as_its_own_race():
    land = get("rosenbrock")
    starts = [[-1.2, 1.0], [0.5, -0.5]]
    factors = [1.0, 0.5, 3.0]
    spec = [("momentum", {"lr": 1e-3, "momentum": 0.9}), ("adam", {"lr": 0.02})]
    runs = run_fan(land, spec, starts, factors, 30)
    for (name, hp), (paths, losses) in zip(spec, runs):
        assert paths.shape == (31, 6, 2) and losses.shape == (31, 6)
        for i, start in enumerate(starts):
            for j, factor in enumerate(factors):
                alone = race(land, {name: {**hp, "lr": factor * hp["lr"]}}, start=start, steps=30)
                k = i * len(factors) + j  # start-major
                np.testing.assert_array_equal(paths[:, k].numpy(), alone.paths[name])
                np.testing.assert_array_equal(losses[:, k].numpy(), alone.losses[name])


@pytest.mark.parametrize("name", [info.name for info in TABLE
                                  if not info.capabilities.sparse_only])
def test_every_fan_path_is_the_optimizers_run_alone(name):
    """What the README says of the playground's fan: every (start, rate) path is the
    optimizer's race from there at that rate, bit for bit, except for a rule batched with
    vmap (Muon), whose batched Newton-Schulz products round otherwise: close, not equal
    (5.6e-4 apart at most here on a 2-core Intel Xeon; 0.05 allows for other machines)."""
    land = get("rosenbrock")
    hp = {"lr": LR[name], **EXTRA.get(name, {})}
    starts, factors = [[-1.2, 1.0], [0.5, -0.5]], [0.5, 2.0]
    ((paths, _),) = run_fan(land, [(name, hp)], starts, factors, 15)
    exact = optimlab.resolve(name).capabilities.batching_for(hp) != "vmap"
    for i, start in enumerate(starts):
        for j, factor in enumerate(factors):
            alone = race(land, {name: {**hp, "lr": factor * hp["lr"]}}, start=start, steps=15)
            if exact:
                np.testing.assert_array_equal(paths[:, i * len(factors) + j].numpy(),
                                              alone.paths[name])
            else:
                np.testing.assert_allclose(paths[:, i * len(factors) + j].numpy(),
                                           alone.paths[name], atol=0.05)


@pytest.mark.parametrize("starts, factors, entries, match", [
    ([[1.0, 2.0, 3.0]], [1.0], [("gd", {"lr": 0.1})], "starts must be"),
    ([[1.0, 2.0]], [], [("gd", {"lr": 0.1})], "factors must be"),
    ([[1.0, 2.0]], [-1.0], [("gd", {"lr": 0.1})], "factors must be"),
    ([[1.0, 2.0]], [1.0], [("gd", {})], "numeric lr"),
    ([[1.0, 2.0]], [1.0], [("gdd", {"lr": 0.1})], "unknown optimizer"),
])
def test_run_fan_bad_input(starts, factors, entries, match):
    with pytest.raises(ValueError, match=match):
        run_fan(get("rosenbrock"), entries, starts, factors, 5)


def test_the_table_shows_the_rate_a_default_run_used_wrappers_included():
    result = race("rosenbrock", {"adam": {}, "sam": {}, "lookahead": {}}, steps=3)
    assert result.hparams["adam"]["lr"] == 1e-3
    # a wrapper's rate is its inner optimizer's (SGD's for SAM, Adam's for Lookahead)
    assert result.hparams["sam"]["lr"] == 1e-3 and result.hparams["sam"]["rho"] == 0.05
    assert result.hparams["lookahead"]["lr"] == 1e-3 and result.hparams["lookahead"]["k"] == 5
    headers, rows = result.rows()
    cells = {row[0]: row[headers.index("hyperparameters")] for row in rows}
    assert all(cell.startswith("lr=0.001") for cell in cells.values()), cells


def _mine(f):
    return Landscape(name="mine", dim=2, f=f, domain=((-2, 2), (-2, 2)), minima=((0.0, 0.0),),
                     min_value=0.0, challenges=(), start=(1.0, 1.0), description="")


@pytest.mark.parametrize("f, returned", [
    (lambda x: (x**2).sum(), r"shape \[\]"),  # one value for the whole batch
    (lambda x: x**2, r"shape \[2, 2\]"),  # the coordinate axis kept
])
def test_an_f_of_the_wrong_shape_is_refused_not_raced(f, returned):
    """A batch-summing f used to give every tuned rate (and every optimizer) the same loss.
    It is refused at the start, where a race first reads f on a batch (two copies of the
    start: ``race._probe``), before any run (it was at the 17 rates of the tuning grid)."""
    with pytest.raises(ValueError, match=r"mine: f must map \[\.\.\., dim\] to \[\.\.\.\].*"
                                         r"points of shape \[2, 2\] it returned " + returned):
        race(_mine(f), {"gd": {}}, steps=30, tune=True)
    with pytest.raises(ValueError, match=r"f must map"):
        race(_mine(f), {"gd": {"lr": 0.1}, "adam": {"lr": 0.1}}, steps=3)
    with pytest.raises(ValueError, match=r"f must map"):
        race(_mine(f), {"gd": {"lr": 0.1}}, steps=0)


@pytest.mark.parametrize("optimizers, match", [
    ({"sgd": {"lr": 0.1, "momentun": 0.9}},
     r"race label 'sgd': 'momentun' is not a hyperparameter of SGD \(it takes lr, momentum, "
     r".*; did you mean 'momentum'\?\)"),
    ({"fast": {"name": "adam", "betas2": 0.9}}, r"race label 'fast': 'betas2' .* of Adam .*'betas'"),
    ({"momentum": {"xyz": 1}}, r"'xyz' is not a hyperparameter of SGD \(it takes [^;]*\)$"),
    # a wrapper takes its own keys, its wraps key and its inner optimizer's
    ({"sam": {"base_optimizer": "momentum", "rhoo": 0.1}}, r"'rhoo' .* of SAM with SGD .*'rho'"),
    ({"sam": {"lr": 0.1, "momentun": 0.9}}, r"of SAM with SGD .*'momentum'"),
    ({"lookahead": {"inner": "adam", "alpha": 0.5, "bettas": (0.9, 0.9)}},
     r"of Lookahead with Adam .*'betas'"),
])
def test_an_unknown_hyperparameter_is_named_before_anything_runs(optimizers, match):
    with pytest.raises(ValueError, match=match):
        race("rosenbrock", optimizers, steps=5)


def test_a_wrapper_races_with_its_own_and_its_inner_hyperparameters():
    result = race("rosenbrock", {"sam": {"base_optimizer": "momentum", "rho": 0.1, "lr": 1e-3,
                                         "nesterov": True},
                                 "lookahead": {"inner": "adam", "k": 3, "betas": (0.9, 0.99)}},
                  steps=5)
    assert set(result.paths) == {"sam", "lookahead"}


@pytest.mark.parametrize("kwargs, match", [
    ({"tune": []}, r"tune grid must hold positive finite learning rates, got \[\]"),
    ({"tune": [1e-3, float("inf")]}, "tune grid"),
    ({"tune": ["0.1"]}, "tune grid"),
    ({"tune": 5}, r"tune must be True, False or a sequence of learning rates, got 5"),
    ({"tune": "yes"}, r"tune must be .*, got 'yes'"),
    ({"tune": {"adam": 0.1}}, r"tune must be"),
    ({"tol": -1}, r"tol must be a finite number >= 0, got -1"),
    ({"tol": float("nan")}, r"tol must be a finite number >= 0, got nan"),
    ({"tol": "0.1"}, r"tol must be"),
    ({"optimizers": {"adam": 0.1}},
     r"race label 'adam': hyperparameters must be a dict \(or None\), got float 0.1"),
    ({"optimizers": {"adam": ["lr", 0.1]}}, r"hyperparameters must be a dict"),
])
def test_race_arguments_are_checked(kwargs, match):
    args = {"optimizers": {"adam": {}}, "steps": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        race("rosenbrock", **args)


def test_race_takes_numpy_scalars():
    result = race("rosenbrock", {"adam": {"lr": 0.01}}, steps=np.int64(5),
                  noise=np.float32(0.5), seed=np.int64(3), tol=np.float64(0.1))
    assert result.steps == 5 and type(result.steps) is int and result.paths["adam"].shape == (6, 2)
    assert result.noise == 0.5 and result.seed == 3 and result.tol == 0.1
    grid = race("quadratic", {"gd": {}}, steps=5, tune=np.array([1e-2, 1e-1]), extend=False)
    assert sorted(grid.tuning["gd"]) == [1e-2, 1e-1]


def test_the_repr_says_the_start_as_plain_numbers():
    text = repr(race("rosenbrock", {"adam": {"lr": 0.1}}, steps=2, start=np.array([-1.5, 1.5])))
    assert text.startswith("Race on rosenbrock from (-1.5, 1.5), 2 steps\n"), text


# ----------------------------------------------------------------- one value per label

@pytest.mark.parametrize("value, shown", [
    ([0.1, 0.01], r"\[0.1, 0.01\]"),
    ([0.1], r"\[0.1\]"),  # a list of one is still a per-member value
    (np.array([0.1, 0.01]), r"\[0.1, 0.01\]"),
    (torch.tensor([0.1, 0.01], dtype=torch.float64), r"tensor\(\[0.1000, 0.0100\]"),
])
def test_a_list_of_rates_under_one_label_is_refused_not_raced_as_member_0(value, shown):
    """A Population runs one member per value of a list (or array, or 1-D tensor), and the
    race used to keep member 0 while its table showed the whole list."""
    with pytest.raises(ValueError, match=r"^race label 'sgd': lr must be one value, got "
                                         + shown + r".*\(use tune=\[\.\.\.\] to race a grid"):
        race("quadratic", {"sgd": {"lr": value}}, steps=20)


def test_a_list_of_any_hyperparameter_is_refused_but_a_tuple_is_one_value():
    with pytest.raises(ValueError, match=r"^race label 'm': momentum must be one value, got "
                                         r"\[0.5, 0.9\] \(give each value its own race label\)$"):
        race("quadratic", {"m": {"name": "sgd", "lr": 0.1, "momentum": [0.5, 0.9]}}, steps=5)
    result = race("quadratic", {"adam": {"lr": 0.1, "betas": (0.8, 0.99)}}, steps=5)
    assert result.hparams["adam"]["betas"] == (0.8, 0.99)
    alone = _hand_run(get("quadratic"), "adam", {"lr": 0.1, "betas": (0.8, 0.99)},
                      get("quadratic").start, 5, 0.0)
    np.testing.assert_allclose(result.paths["adam"], alone, rtol=1e-12)


def test_run_starts_refuses_an_array_of_values_as_it_refuses_a_list():
    with pytest.raises(ValueError, match=r"sgd: run_starts takes one value .*lr given as lists"):
        run_starts(get("quadratic"), [("sgd", {"lr": np.array([0.1, 0.2])})], [[1.0, 1.0]] * 2, 3)


# --------------------------------------------------------- refusals name the race label

@pytest.mark.parametrize("optimizers, match", [
    ({"adam": {"lr": -1}}, r"^race label 'adam': lr must be > 0, got -1$"),
    ({"fast": {"name": "adam", "lr": 0.1, "betas": (0.9, 2.0)}},
     r"^race label 'fast': betas\[1\] must be in \[0, 1\), got 2.0$"),
    ({"ok": {"name": "sgd", "lr": 0.1}, "bad": {"name": "sgd", "momentum": -0.5}},
     r"^race label 'bad': momentum must be"),
    ({"s": {"name": "sam", "rho": -1.0}}, r"^race label 's': rho must be"),  # a wrapper
    ({"lbfgs": {"history_size": 0}}, r"^race label 'lbfgs': history_size must be"),
])
def test_a_refused_value_names_the_race_label_not_member_0(optimizers, match):
    with pytest.raises(ValueError, match=match) as caught:
        race("quadratic", optimizers, steps=5)
    assert "member" not in str(caught.value)


@pytest.mark.parametrize("lr", [0, 0.0, np.float64(0.0)])
def test_lr_0_is_refused_as_a_tune_grid_with_0_is(lr):
    """A race at lr=0 is a point that never moves: refused, as tune=[0.0, ...] is."""
    with pytest.raises(ValueError, match=r"^race label 'sgd': lr must be > 0, got "):
        race("quadratic", {"sgd": {"lr": lr}}, steps=5)
    with pytest.raises(ValueError, match="tune grid must hold positive"):
        race("quadratic", {"sgd": {}}, steps=5, tune=[0.0, 0.1])


def test_a_tuned_label_is_checked_with_the_grids_rate_in_place_of_its_own():
    result = race("quadratic", {"sgd": {"lr": 0}}, steps=5, tune=[0.01, 0.1], extend=False)
    assert result.hparams["sgd"]["lr"] in (0.01, 0.1)
    with pytest.raises(ValueError, match=r"^race label 'sgd': momentum must be"):
        race("quadratic", {"sgd": {"momentum": -1.0}}, steps=5, tune=[0.01, 0.1])


# ----------------------------------------------------------------- divergence

def _log_line():
    """log(x) on [0.5, 2]: gradient descent at lr 0.6 from 1 steps to 0.4, then to -1.1,
    where the path is finite but the loss is NaN."""
    return Landscape("log", 1, lambda x: torch.log(x[..., 0]), ((0.5, 2.0),), ((0.5,),),
                     math.log(0.5), (), (1.0,), "log x")


def test_a_finite_path_with_a_non_finite_loss_is_diverged():
    result = race(_log_line(), {"gd": {"name": "sgd", "lr": 0.6}}, steps=5)
    assert np.isfinite(result.paths["gd"]).all()
    assert not np.isfinite(result.losses["gd"]).all()
    assert result.metrics["gd"].diverged
    assert race(_log_line(), {"gd": {"name": "sgd", "lr": 0.01}}, steps=5).metrics["gd"].diverged \
        is False


# ----------------------------------------------------------------- starts

@pytest.mark.parametrize("landscape, start, match", [
    ("rosenbrock", (2.5, 1.0), r"^start x=2.5 is outside rosenbrock's domain \[-2, 2\]$"),
    ("rosenbrock", (0.0, -1.5), r"^start y=-1.5 is outside rosenbrock's domain \[-1, 3\]$"),
    ("rosenbrock", (1e6, 1e6), r"start x=1e\+06 is outside"),  # was "diverged" at step 0
])
def test_a_start_outside_the_domain_is_refused(landscape, start, match):
    with pytest.raises(ValueError, match=match):
        race(landscape, {"adam": {"lr": 0.1}}, start=start, steps=3)


def test_a_start_outside_an_nd_domain_names_its_coordinate_and_the_edge_is_inside():
    land = get("rosenbrock_nd", dim=3)
    with pytest.raises(ValueError, match=r"^start x\[2\]=9 is outside rosenbrock_nd's domain"):
        race(land, {"adam": {"lr": 0.1}}, start=(0.0, 0.0, 9.0), steps=3)
    low = [axis[0] for axis in land.domain]
    np.testing.assert_array_equal(race(land, {"adam": {"lr": 0.1}}, start=low, steps=1).start, low)


def test_inspect_steps_refuses_a_start_outside_the_domain_too():
    from optimlab.landscapes.inspect import inspect_steps

    with pytest.raises(ValueError, match=r"start x=3 is outside rosenbrock's domain"):
        inspect_steps("rosenbrock", "adam", {"lr": 0.1}, start=(3.0, 0.0), steps=2)


def test_a_start_that_requires_grad_is_taken():
    start = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    result = race("quadratic", {"gd": {"lr": 0.1}}, start=start, steps=3)
    plain = race("quadratic", {"gd": {"lr": 0.1}}, start=(1.0, 1.0), steps=3)
    np.testing.assert_array_equal(result.paths["gd"], plain.paths["gd"])
    assert start.requires_grad and start.grad is None


# ----------------------------------------------------------------- seeds

def test_a_seed_applies_to_a_noisy_landscapes_own_noise():
    noisy = get("quadratic").with_noise(1.0, seed=5)
    spec = {"sgd": {"lr": 0.1}}
    seven, eight = (race(noisy, spec, steps=10, seed=s) for s in (7, 8))
    assert not np.array_equal(seven.paths["sgd"], eight.paths["sgd"])
    assert (seven.seed, eight.seed, seven.noise) == (7, 8, 1.0)
    np.testing.assert_array_equal(
        seven.paths["sgd"], race(get("quadratic").with_noise(1.0, seed=7), spec, steps=10).paths["sgd"])
    own = race(noisy, spec, steps=10)  # no seed: the landscape's own
    assert own.seed == 5
    np.testing.assert_array_equal(own.paths["sgd"], race(noisy, spec, steps=10, seed=5).paths["sgd"])
    # noise given here: seeded by seed, 0 without one
    assert race("quadratic", spec, steps=2, noise=0.5).seed == 0
    assert race(noisy, spec, steps=2, noise=0.5, seed=3).seed == 3


# ----------------------------------------------------------------- run_members

@pytest.mark.parametrize("entries, start, steps, match", [
    ([("sgd", {"lr": 0.1})], torch.zeros(2), -1, r"steps must be an integer >= 0, got -1"),
    ([("sgd", {"lr": 0.1})], torch.zeros(2), 2.5, r"steps must be an integer"),
    ([("sgd", {"lr": 0.1})], torch.zeros(3), 5, r"start must be 2 finite numbers"),
    ([("sgd", {"lr": 0.1})], torch.tensor([9.0, 0.0]), 5, r"start x=9 is outside"),
    ([("sgd", {"lr": 0.1})], torch.tensor([math.nan, 0.0]), 5, r"start must be 2 finite"),
    ([("sgdd", {"lr": 0.1})], torch.zeros(2), 5, r"unknown optimizer 'sgdd'"),
    ([("sgd", {"lr": []})], torch.zeros(2), 5, r"sgd: a per-member hyperparameter needs"),
    ([("sgd", 0.1)], torch.zeros(2), 5, r"sgd: hyperparameters must be a dict"),
])
def test_run_members_checks_its_input(entries, start, steps, match):
    from optimlab.landscapes import run_members

    with pytest.raises(ValueError, match=match):
        run_members(get("quadratic"), entries, start, steps)


def test_run_members_counts_an_array_of_rates_as_members():
    from optimlab.landscapes import run_members

    rates = np.array([0.1, 0.2, 0.3])
    (path, loss), = run_members(get("quadratic"), [("sgd", {"lr": rates})],
                                torch.tensor([1.0, 1.0]), np.int64(4))
    assert path.shape == (5, 3, 2) and loss.shape == (5, 3)
    for k, lr in enumerate(rates):
        alone = race("quadratic", {"sgd": {"lr": float(lr)}}, start=(1.0, 1.0), steps=4)
        np.testing.assert_array_equal(path[:, k].numpy(), alone.paths["sgd"])


# ----------------------------------------------------------------- the table's notes

def test_a_landscape_unbounded_below_with_no_finite_min_value_says_no_escape_bound():
    drop = Landscape("drop", 2, lambda x: x[..., 0] ** 2 - x[..., 1] ** 2, ((-1, 1), (-1, 1)),
                     (), -math.inf, ("saddle",), (0.5, 0.1), "x^2 - y^2, no lowest value given")
    result = race(drop, {"gd": {"lr": 0.1}}, steps=5)
    notes = "\n".join(result.notes())
    assert "no minimum: drop has none to converge to" in notes
    assert "escaped" not in notes and "-inf" not in notes
    assert result.metrics["gd"].escaped is None


# ----------------------------------------------------------------- fixes: diverged metrics,
# run_fan's checks, hyperparameters recorded as Python numbers


def test_a_run_that_blows_up_to_nan_reads_inf_not_nan():
    """SGD at lr 1 on Rosenbrock: 24 -> 2e11 -> ... -> inf, then NaN (inf - inf). Its
    final loss, gap and distance were NaN (the table said "nan nan nan")."""
    result = race("rosenbrock", {"sgd": {"lr": 1.0}}, steps=30)
    assert math.isnan(result.losses["sgd"][-1])  # the run itself does end in NaN
    m = result.metrics["sgd"]
    assert m.diverged and m.final_loss == math.inf
    assert m.gap == math.inf and m.distance == math.inf
    row = result.table().splitlines()[2].split()
    assert row[2:5] == ["inf", "inf", "inf"] and "nan" not in result.table()
    # the same number tuning reports for that rate
    tuned = race("rosenbrock", {"sgd": {}}, steps=30, tune=[1.0], extend=False)
    assert tuned.tuning["sgd"][1.0] == m.final_loss


def test_a_saddle_run_that_fell_to_minus_inf_then_nan_keeps_minus_inf():
    result = race("saddle", {"gd": {"lr": 5.0}}, steps=200)
    losses = result.losses["gd"]
    assert math.isnan(losses[-1]) and -math.inf in losses
    m = result.metrics["gd"]
    assert m.final_loss == -math.inf and not m.diverged and m.escaped  # fell without bound
    assert math.isnan(m.gap) and math.isnan(m.distance)  # no minimum to measure them from
    assert "nan" not in result.table()


@pytest.mark.parametrize("steps, factors, entries, match", [
    (-1, [1.0], [("gd", {"lr": 0.1})], r"steps must be an integer >= 0, got -1"),
    (2.5, [1.0], [("gd", {"lr": 0.1})], r"steps must be an integer >= 0, got 2.5"),
    (True, [1.0], [("gd", {"lr": 0.1})], r"steps must be an integer >= 0, got True"),
    (5, [1.0], [("gd", {"lr": True})], r"gd: a fan of learning rates needs a numeric lr.*True"),
    (5, [1.0], [("gd", {"lr": 0.0})], r"gd: a fan of learning rates needs a numeric lr.*> 0"),
    (5, [1.0], [("gd", {"lr": math.inf})], r"needs a numeric lr, a finite number > 0, got inf"),
])
def test_run_fan_checks_steps_and_lr(steps, factors, entries, match):
    """steps=-1 was an IndexError, 2.5 a TypeError, and lr=True ran at rate 1."""
    with pytest.raises(ValueError, match=match):
        run_fan(get("rosenbrock"), entries, [[0.0, 0.0]], factors, steps)


def test_run_fan_takes_numpy_steps_and_rates():
    (paths, losses), = run_fan(get("rosenbrock"), [("gd", {"lr": np.float32(1e-3)})],
                               [[0.0, 0.0]], [1.0], np.int64(3))
    assert paths.shape == (4, 1, 2) and losses.shape == (4, 1)


@pytest.mark.parametrize("lr", [torch.tensor(0.1), np.float64(0.1), np.array(0.1)])
def test_hyperparameters_are_recorded_as_python_numbers(lr):
    """A 0-d tensor was kept as it came: the table said lr=tensor(0.1000)."""
    result = race("booth", {"adam": {"lr": lr, "betas": (torch.tensor(0.9), np.float64(0.99))}},
                  steps=3)
    used = result.hparams["adam"]
    assert type(used["lr"]) is float and used["lr"] == pytest.approx(0.1)
    assert all(type(b) is float for b in used["betas"])
    assert "lr=0.1, betas=(0.9, 0.99)" in result.table() and "tensor" not in result.table()
    alone = race("booth", {"adam": {"lr": float(lr), "betas": (float(torch.tensor(0.9)), 0.99)}},
                 steps=3)
    np.testing.assert_array_equal(result.paths["adam"], alone.paths["adam"])


def test_a_rate_that_blows_up_past_halfway_cannot_win_the_tuning():
    """RMSprop at lr 0.562 on the rotated bowl of condition 50 rose from 56 to about 180 near
    step 200 of 300, came back before the last quarter and won the tuning (0.562 where
    0.0562 is steady): the criterion read only the last 25%."""
    from optimlab.landscapes import get

    bowl = get("rotated_quadratic", kappa=50.0, angle=45.0)
    spiky = race(bowl, {"rmsprop": {"lr": 0.5623413251903491}}, steps=300)
    loss = np.asarray(spiky.losses["rmsprop"], dtype=float)
    assert loss[150:].max() > loss[0] and _late_worst(loss) < 1e-3  # the late spike
    tuned = race(bowl, {"rmsprop": {}}, steps=300, tune=[0.0316, 0.0562, 0.1, 0.316, 0.562],
                 extend=False)
    assert tuned.tuning_scores["rmsprop"][0.562] == math.inf
    assert tuned.hparams["rmsprop"]["lr"] == 0.0562
    steady = race(bowl, {"rmsprop": {"lr": 0.0562}}, steps=300)
    assert tuned.tuning_scores["rmsprop"][0.0562] == _late_worst(steady.losses["rmsprop"])


@pytest.mark.parametrize("steps", [0, 3])
def test_progress_must_be_callable_and_is_checked_before_the_run(steps, monkeypatch):
    """progress=5 failed at the first step ("'int' object is not callable"), and was taken
    without a word by a race of 0 steps."""
    import importlib

    race_module = importlib.import_module("optimlab.landscapes.race")  # (race: the function)

    def no_run(*args, **kwargs):
        raise AssertionError("the race ran")

    monkeypatch.setattr(race_module, "_run", no_run)
    with pytest.raises(TypeError, match=r"^progress must be a callable .*got int$"):
        race("quadratic", {"adam": {}}, progress=5, steps=steps)
    with pytest.raises(TypeError, match=r"^progress must be a callable"):
        race_module.run_members(get("quadratic"), [("adam", {})], None, steps, progress="bar")


def test_a_schedule_free_run_ends_at_its_average():
    """A schedule-free optimizer is evaluated at its average x (its ``eval()``), not at its
    last gradient point y: the race's final point and loss are x's, as a hand loop with
    the optimizer alone and ``opt.eval()`` gives them (they differ from y's here: 3.45
    against 3.32 on Rosenbrock). The path before the end is y's, where it stepped."""
    land = get("rosenbrock")
    result = race(land, {"sf": {"name": "schedulefreeadamw", "lr": 0.05}}, steps=200)
    x = torch.tensor(land.start, dtype=torch.float64).requires_grad_()
    opt = optimlab.ScheduleFreeAdamW([x], lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        land.values(x.unsqueeze(0)).sum().backward()
        opt.step()
    with torch.no_grad():
        at_y = x.clone()
        opt.eval()
    assert not torch.equal(at_y, x)
    assert torch.equal(torch.as_tensor(result.paths["sf"])[-1].reshape(-1), x.detach())
    assert float(result.losses["sf"][-1]) == float(land.values(x.detach().unsqueeze(0)))


def test_a_run_whose_gap_ends_far_above_its_start_is_diverged():
    """GD beyond its stability limit on a kappa-100 bowl grows its loss from 116 to 3e4 in
    30 steps, all inside the domain and finite: diverged (its gap ends more than ten times
    its start), as the table's legend says; Adam, which ends below its start, is not, nor
    is a run that ends above its start by less than that factor."""
    result = race(get("quadratic", kappa=100), {"gd": {"lr": 0.021}, "adam": {"lr": 0.1}},
                  steps=30)
    gd, adam = result.metrics["gd"], result.metrics["adam"]
    assert np.isfinite(result.losses["gd"]).all() and gd.final_loss > 100 * result.losses["gd"][0]
    assert gd.diverged and not adam.diverged
    assert "diverged = a loss or point that is not finite, a gap to the minimum that ends more " \
        "than ten times its start" in result.table()
    # a run that ends below its start is not flagged, however high it climbed on the way
    assert not race("quadratic", {"gd": {"lr": 0.1}}, steps=10).metrics["gd"].diverged
    # 1.05x the stability limit: ten steps end 6.6x above the start, under the factor 10
    mild = race(get("quadratic", kappa=100), {"gd": {"lr": 0.021}}, steps=10)
    ratio = mild.losses["gd"][-1] / mild.losses["gd"][0]
    assert 1 < ratio < 10 and not mild.metrics["gd"].diverged


def test_a_run_falling_without_bound_reports_minus_inf():
    """GD on the monkey saddle falls to -4e59 and then NaN: its final loss is -inf (it ran
    downhill), not inf, and it is not diverged: falling without bound is the goal where
    there is no minimum, not a blow-up."""
    result = race("monkey_saddle", {"gd": {"lr": 0.01}}, steps=1000)
    losses = result.losses["gd"]
    assert np.isnan(losses[-1]) and np.isfinite(losses[~np.isnan(losses)]).all()
    m = result.metrics["gd"]
    assert m.final_loss == -math.inf and not m.diverged and m.escaped


@pytest.mark.parametrize("name", ["muon", "adam"])
def test_a_tuned_race_reports_the_run_at_its_chosen_rate(name):
    """A tuned race's path is the race at the chosen rate, bit for bit: for Muon, whose
    vmapped population rounds its Newton-Schulz products unlike a lone run (4.79 against
    4.56 after 60 steps on Rosenbrock at lr 0.01), the chosen rate is run again alone; an
    elementwise rule (Adam) is exact in the population already."""
    grid = [1e-3, 1e-2]  # lr 0.01 wins on both
    tuned = race("rosenbrock", {name: {}}, steps=60, tune=grid, extend=False)
    lr = tuned.hparams[name]["lr"]
    assert lr == 1e-2
    plain = race("rosenbrock", {name: {"lr": lr}}, steps=60)
    assert tuned.metrics[name].final_loss == plain.metrics[name].final_loss
    np.testing.assert_array_equal(tuned.paths[name], plain.paths[name])


def test_a_tuned_races_paths_do_not_hold_the_grids_buffer():
    """The path shown for a tuned optimizer was a column (a view) of the buffer every rate of
    the grid ran in: a race keeping four tuned paths of 29,000 steps kept 1.5 GB of paths no
    one sees, 17 times what it showed. Each array now owns its rows: laid out as one path
    of [steps + 1, dim] (a view's rows stride over every member's)."""
    tuned = race("rosenbrock", {"adam": {}, "sgd": {}}, steps=30, tune=[1e-3, 1e-2, 3e-2],
                 extend=False)
    for label in ("adam", "sgd"):
        path, loss = tuned.paths[label], tuned.losses[label]
        assert path.shape == (31, 2)
        assert path.strides == (2 * path.itemsize, path.itemsize)
        assert loss.strides == (loss.itemsize,)


def test_a_tuned_race_where_every_rate_is_out_says_so_instead_of_naming_a_winner():
    """On a steep quadratic GD diverges at both rates: every score is inf, the smallest rate
    is shown, and the table said "lr=0.5 (bottom of grid)" and "the best rate may lie beyond
    it" right under "a diverged run never wins". It now says no rate won."""
    result = race(get("quadratic", kappa=100), {"gd": {}, "adam": {}}, steps=100,
                  tune=[0.5, 1.0], extend=False)
    assert all(score == math.inf for score in result.tuning_scores["gd"].values())
    table = result.table()
    row = next(line for line in table.splitlines() if line.startswith("gd "))
    assert "lr=0.5 (every rate out)" in row and "grid" not in row
    assert "(a diverged run never wins, unless every rate is out: then the smallest is shown)" \
        in table
    assert "gd: every rate tried (0.5 to 1) is out by that criterion; the lr shown, the " \
        "smallest, won nothing" in table
    assert "gd: the tuned lr is" not in table
    assert "adam: the tuned lr is the smallest rate tried" in table  # a winner on its edge
    adam = race(get("quadratic", kappa=100), {"adam": {}}, steps=100, tune=[0.5, 1.0],
                extend=False).table()
    assert "unless every rate is out" not in adam and "every rate out" not in adam


def test_an_extended_grid_whose_every_rate_is_out_is_not_said_to_hold_a_best_rate(
        monkeypatch):
    """Every score inf (scored by a criterion that rules every run out): the extension note
    said "the grid's best rate was on its edge ... the tuned lr 0.000122 is still on its
    edge" beside "every rate tried ... won nothing" (the review's case)."""
    race_module = importlib.import_module("optimlab.landscapes.race")
    scores = race_module._scores
    monkeypatch.setattr(race_module, "_scores",
                        lambda *a: [math.inf] * len(scores(*a)))
    result = race(get("quadratic", kappa=100), {"gd": {}}, steps=20, tune=[0.5, 1.0])
    table = result.table()
    assert result.every_rate_out() == ["gd"] and result.tuning_extended["gd"]
    assert "gd: every rate of the grid was out, so 0.000122, " in table
    assert "best rate was on its edge" not in table and "still on its edge" not in table


def test_a_one_rate_grid_is_said_as_one_rate():
    # "the tuned lr is the only rate tried (tried 0.1 to 0.1)"
    table = race("rosenbrock", {"adam": {}}, steps=20, tune=[0.1], extend=False).table()
    assert "adam: the tuned lr is the only rate tried; the best rate may lie beyond it" in table
    assert "tried 0.1 to 0.1" not in table
    out = race(get("quadratic", kappa=100), {"gd": {}}, steps=100, tune=[1.0],
               extend=False).table()
    assert "gd: the one rate tried (1) is out by that criterion; the lr shown won nothing" in out


def test_a_non_zero_default_weight_decay_is_recorded_and_shown():
    """AdamW (0.01) and Muon (0.1) decay by default, which keeps them off the minimum: the
    race records it, the table and the legend show it, and a note says what it does; Adam
    (no decay) and a decay given as 0 show none."""
    result = race("rosenbrock", {"adamw": {"lr": 0.05}, "muon": {"lr": 0.05}, "adam": {"lr": 0.05},
                                 "no decay": {"name": "adamw", "lr": 0.05, "weight_decay": 0.0},
                                 "sam": {"base_optimizer": "adamw", "lr": 0.05}}, steps=20)
    assert result.hparams["adamw"]["weight_decay"] == 0.01
    assert result.hparams["muon"]["weight_decay"] == 0.1
    assert result.hparams["sam"]["weight_decay"] == 0.01  # the inner optimizer's default
    assert "weight_decay" not in result.hparams["adam"]
    assert result.hparams["no decay"]["weight_decay"] == 0.0
    assert "weight_decay=0.01" in result.legend_label("adamw")
    row = next(line for line in result.table().splitlines() if line.startswith("muon "))
    assert "weight_decay=0.1" in row
    assert "weight_decay (given, or the optimizer's default) pulls towards 0, so adamw, muon, sam " \
        "settle off the minimum" in result.table()
    tuned = race("rosenbrock", {"adamw": {}}, steps=20, tune=[1e-2], extend=False)
    assert tuned.hparams["adamw"]["weight_decay"] == 0.01


def test_the_weight_decay_note_only_where_a_minimum_is_away_from_the_origin():
    """Decay pulls towards 0: on the quadratic (its minimum at the origin) AdamW reaches the
    minimum (distance about 1e-11) and no note may say it settles off it; on Rosenbrock
    (minimum at (1, 1)) the note stays."""
    at_origin = race("quadratic", {"adamw": {"lr": 0.05}}, steps=200)
    assert at_origin.hparams["adamw"]["weight_decay"] == 0.01
    assert all(not any(x) for x in at_origin.landscape.minima)
    assert not any("weight_decay" in line for line in at_origin.notes())
    assert "pulls towards 0" not in at_origin.table()
    away = race("rosenbrock", {"adamw": {"lr": 0.05}}, steps=20)
    assert any("weight_decay (given, or the optimizer's default) pulls towards 0, so adamw "
               "settles off the minimum" in line for line in away.notes())


def test_a_wrappers_row_names_the_optimizer_it_wrapped():
    """Lookahead's row said ``lr=0.001, k=5, alpha=0.5`` while it ran its default inner
    Adam: the table and the legend now name the wrapped optimizer (given or not, with a
    rate given or not); one given keeps its own name."""
    result = race("rosenbrock", {"lookahead": {}, "sam": {},
                                 "la-sgd": {"name": "lookahead", "inner": "sgd", "lr": 0.01},
                                 "la-lr": {"name": "lookahead", "lr": 0.01}}, steps=5)
    assert result.hparams["lookahead"]["inner"] == "adam"
    assert result.hparams["sam"]["base_optimizer"] == "sgd"
    assert result.hparams["la-sgd"]["inner"] == "sgd"
    assert result.hparams["la-lr"]["inner"] == "adam"
    rows = {line.split()[0]: line for line in result.table().splitlines()[2:] if line.strip()}
    assert "inner=adam" in rows["lookahead"] and "base_optimizer=sgd" in rows["sam"]
    assert "inner=adam" in rows["la-lr"] and "inner=sgd" in rows["la-sgd"]
    assert "inner=adam" in result.legend_label("lookahead")
    assert "inner" not in race("rosenbrock", {"adam": {}}, steps=2).hparams["adam"]


def test_tuning_on_a_saddle_picks_the_rate_that_escapes_soonest():
    """On x^2 - y^2 leaving the domain downhill is the goal, not a divergence: tuning ranks
    rates by the step they escaped at, so GD gets a rate that escapes (0.0316 did not within
    100 steps; 0.0562 escapes at step 72 but passed ten domain widths and used to count as
    diverged), and only a run that is not finite is diverged there."""
    from optimlab.landscapes.race import TUNE_ESCAPE_CRITERION

    tuned = race("saddle", {"sgd": {}, "adam": {}}, steps=100, tune=True)
    assert tuned.tuned_by == TUNE_ESCAPE_CRITERION
    for label in ("sgd", "adam"):
        m, scores = tuned.metrics[label], tuned.tuning_scores[label]
        assert m.escaped and not m.diverged
        assert scores[tuned.hparams[label]["lr"]] == m.steps_to_escape == min(scores.values())
        assert all(s >= 101 for lr, s in scores.items()
                   if math.isfinite(s) and not tuned.tuning[label][lr] < -4)
    far = race("saddle", {"gd": {"lr": 0.0562}}, steps=100)
    (low, high) = far.landscape.domain[1]
    assert far.paths["gd"][-1, 1] - high > DIVERGENCE_WIDTHS * (high - low)  # far off the map
    assert far.metrics["gd"].escaped and not far.metrics["gd"].diverged
    assert "the step it escaped at, sooner is better" in tuned.table()


def test_a_rate_is_out_where_its_loss_rises_above_the_start_at_all_past_halfway():
    """Any rise above the start counts (a spike of 1.1x as much as one of 3x)."""
    from optimlab.landscapes.race import _blew_up

    assert bool(_blew_up(torch.tensor([1.0, 0.5, 0.2, 1.1, 0.1]), 2))
    assert not bool(_blew_up(torch.tensor([1.0, 0.5, 0.2, 0.9, 0.1]), 2))
    assert not bool(_blew_up(torch.tensor([1.0, 3.0, 0.2, 0.9, 0.1]), 2))  # before `since`


def test_a_run_exactly_at_the_minimum_meets_a_tolerance_of_zero():
    """GD at lr 1 on 0.5 (x^2 + kappa y^2) from (2, 0) lands on the minimum in one step."""
    land = get("quadratic", kappa=1)
    result = race(land, {"gd": {"lr": 1.0}}, start=(2.0, 0.0), steps=5, tol=0.0)
    assert float(result.losses["gd"][1]) == land.min_value
    assert result.metrics["gd"].steps_to_tol == 1


def test_a_saddle_run_that_never_escapes_is_scored_by_its_steps_and_its_worst_gap():
    """On the saddle f = x^2 - y^2 (no minimum; escape below f = -4) from (1.8, 1e-3), gd
    neither escapes in 20 steps: the score is the 21 recorded steps plus its worst loss
    over the last quarter (step 15, x_15 = 1.8 (1 - 2 lr)^15, y_15 = 1e-3 (1 + 2 lr)^15)
    above -4, so the larger rate, nearer escaping, wins and the grid's top edge is flagged.
    Without the worst-gap term the two tied and the smaller rate won."""
    land = get("saddle")
    result = race(land, {"gd": {}}, steps=20, tune=[1e-4, 1e-3], extend=False)

    def by_hand(lr):
        return 21 + (1.8 * (1 - 2 * lr) ** 15) ** 2 - (1e-3 * (1 + 2 * lr) ** 15) ** 2 + 4

    assert land.min_value == -4.0 and not land.minima
    # float64 paths: 15 steps of rounding, about 1e-15 relative; 1e-9 cannot hide the term
    assert result.tuning_scores["gd"] == pytest.approx({1e-4: by_hand(1e-4), 1e-3: by_hand(1e-3)},
                                                       rel=1e-9)
    assert result.hparams["gd"]["lr"] == 1e-3 and result.tuning_edge == {"gd": "high"}
