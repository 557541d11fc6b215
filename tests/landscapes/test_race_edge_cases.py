"""Races at their edges: runs that fall without bound where there is no minimum, runs that
start at the minimum with noise, a race drawn on another landscape, and a run that reached
the tolerance and left it."""

import importlib
import math

import pytest
import torch

from optimlab.landscapes import Landscape, get, race
from optimlab.landscapes.race import diverged

race_module = importlib.import_module("optimlab.landscapes.race")  # the name race is the function

# --------------------------------------------------------------- falling without bound


def test_a_saddle_run_that_fell_to_minus_inf_is_not_diverged():
    """GD at lr 0.562 on x^2 - y^2 escapes at step 11 and falls to -inf (then NaN from
    the overflow): the escape the saddle is there for, not a divergence (it was
    ``diverged = yes``)."""
    result = race("saddle", {"gd": {"lr": 0.562}}, steps=500)
    losses = torch.as_tensor(result.losses["gd"])
    assert -math.inf in losses.tolist() and not torch.isfinite(losses[-1])
    m = result.metrics["gd"]
    assert m.final_loss == -math.inf and m.escaped and m.steps_to_escape == 11
    assert not m.diverged
    row = result.rows()[1][0]
    assert row[-1] == "no" and row[2] == "-inf"
    assert not any(line.startswith("diverged =") for line in result.notes())


def test_tuning_on_a_saddle_ranks_a_run_that_fell_without_bound_by_its_escape():
    """lr 0.316 escapes at step 16, lr 0.562 at step 11 and then falls to -inf: 0.562 scored
    inf and lost to 0.316, and ``race.tuning`` showed its final loss as +inf."""
    result = race("saddle", {"gd": {}}, steps=500, tune=[0.316, 0.562], extend=False)
    assert result.tuning_scores["gd"] == {0.316: 16.0, 0.562: 11.0}
    assert result.hparams["gd"]["lr"] == 0.562
    assert result.tuning["gd"][0.562] == -math.inf  # the sign kept, as the metrics keep it
    assert result.tuning["gd"][0.316] < -1e200
    m = result.metrics["gd"]
    assert m.final_loss == result.tuning["gd"][0.562] and not m.diverged


def test_tuning_on_the_monkey_saddle_picks_a_rate_that_escapes():
    """``optimlab race monkey_saddle --optimizers gd --tune --steps 300`` picked lr 0.01,
    which never escapes in 300 steps: every faster rate falls to -inf and counted as
    diverged."""
    result = race("monkey_saddle", {"gd": {}}, steps=300, tune=True)
    m = result.metrics["gd"]
    assert m.escaped and not m.diverged
    assert result.hparams["gd"]["lr"] > 0.01
    scores = result.tuning_scores["gd"]
    assert scores[result.hparams["gd"]["lr"]] == m.steps_to_escape == min(scores.values())


def test_diverged_on_a_landscape_without_a_minimum():
    """Where there is no minimum only +inf, or NaN (or a point that is not finite) without
    a fall downhill before it, is a divergence; the first two cases were flagged."""
    cases = [
        ([7.0, -5.0, -1e300, -math.inf, math.nan], False),  # fell without bound, then NaN
        ([7.0, -5.0, -1e300, -math.inf, -math.inf], False),
        ([7.0, 9.0, 1e300, math.inf, math.nan], True),  # blew up to +inf
        ([7.0, -5.0, math.inf, math.nan], True),  # +inf counts wherever it comes
        ([7.0, 8.0, math.nan], True),  # NaN after no fall downhill
        ([7.0, 6.0, 5.0], False),  # finite: never diverged on a saddle
    ]
    saddle = get("saddle")
    got = []
    for values, _ in cases:
        loss = torch.tensor(values, dtype=torch.float64)
        # the path follows the loss: not finite once the loss is not
        path = torch.where(torch.isfinite(loss)[:, None],
                           torch.ones(len(values), 2, dtype=torch.float64),
                           torch.full((len(values), 2), math.inf, dtype=torch.float64))
        got.append(diverged(saddle, path, loss))
    assert got == [expect for _, expect in cases]


def _cap():
    """-|x|^2: no minimum and no lowest value (min_value -inf), so no escape line."""
    return Landscape(name="cap", dim=2, f=lambda x: -(x**2).sum(-1),
                     domain=((-1.0, 1.0), (-1.0, 1.0)), minima=(), min_value=-math.inf,
                     challenges=(), start=(0.5, 0.5), description="a cap, unbounded below")


def test_tuning_where_there_is_no_minimum_nor_an_escape_line_prefers_the_fall_to_minus_inf():
    """On -|x|^2, GD at lr 1 triples x each step and is -inf from step 324 on, the whole
    last quarter of 600 steps; lr 0.5 doubles it and is still finite at step 450, where
    that quarter begins: the run that fell furthest wins (it scored inf as diverged, and
    lr 0.5 won), and it is not flagged as every rate failing."""
    result = race(_cap(), {"gd": {}}, steps=600, tune=[0.5, 1.0], extend=False)
    scores = result.tuning_scores["gd"]
    assert scores[1.0] == -math.inf and math.isfinite(scores[0.5])
    assert result.hparams["gd"]["lr"] == 1.0
    assert result.tuning["gd"][1.0] == -math.inf
    assert result.tuning_edge["gd"] == "high"
    assert not result.metrics["gd"].diverged and result.metrics["gd"].final_loss == -math.inf


def test_the_race_picture_draws_a_run_that_fell_without_bound_as_not_diverged():
    """The loss panel and the legend of a saddle race with a run that fell to -inf: the
    run is drawn solid and its legend does not say "(diverged)" (it was dashed), and the
    panel's limits are finite."""
    pytest.importorskip("matplotlib")
    from optimlab.landscapes.plots import plot_race, plt_close

    result = race("saddle", {"gd": {"lr": 0.562}, "adam": {"lr": 0.01}}, steps=500)
    fig = plot_race(result, resolution=30)
    try:
        lines = {line.get_gid(): line for ax in fig.axes for line in ax.lines}
        assert lines["path:gd"].get_linestyle() == "-"
        assert lines["loss:gd"].get_linestyle() == "-"
        assert "(diverged)" not in lines["path:gd"].get_label()
        (loss_ax,) = [ax for ax in fig.axes if ax.get_title() == "loss"]
        assert all(math.isfinite(v) for v in loss_ax.get_ylim())
    finally:
        plt_close(fig)


# --------------------------------------------------------------- starts at the minimum


def test_noisy_runs_from_the_minimum_are_not_diverged():
    """From the quadratic's minimum with noise 0.1, GD and Adam end at gaps of about 4e-4
    (distance 0.02): "diverged = yes", as the start gap of 0 times ten is 0."""
    result = race("quadratic", {"gd": {"lr": 0.1}, "adam": {"lr": 0.01}}, start=(0, 0),
                  noise=0.1, steps=100)
    for m in result.metrics.values():
        assert 0 < m.gap < 1e-3 and m.distance < 0.05
        assert not m.diverged
    assert all(row[-1] == "no" for row in result.rows()[1])
    gp = race("goldstein_price", {"sgd": {}}, start=(0, -1), noise=1, steps=10)
    assert gp.metrics["sgd"].gap < 1e-3 and not gp.metrics["sgd"].diverged


def test_the_divergence_floor_keeps_real_blow_ups_flagged():
    """The floor is a tenth of the median gap over the domain (0.67 on the quadratic), and
    the note under the table says so: GD beyond its stability limit from the minimum itself
    (to a gap of 5e32), and the documented example (115.6 to 3.4e4 in 30 steps), are still
    diverged."""
    climb = race("quadratic", {"gd": {"lr": 0.25}}, start=(0, 0), noise=0.1, steps=100)
    m = climb.metrics["gd"]
    assert math.isfinite(m.final_loss) and m.gap > 1e30 and m.diverged
    example = race(get("quadratic", kappa=100), {"gd": {"lr": 0.021}}, steps=30)
    assert example.losses["gd"][-1] > 3e4 and example.metrics["gd"].diverged
    assert "ten times its start (and above a tenth of the median gap over the domain)" \
        in example.table()
    from optimlab.landscapes.race import DIVERGENCE_FLOOR, typical_gap

    assert DIVERGENCE_FLOOR == 0.1
    assert typical_gap(get("quadratic")) == pytest.approx(6.735, rel=1e-3)


# --------------------------------------------------------------- surface of another landscape


def test_plot_surface_refuses_a_race_from_another_landscape():
    """``get("booth").plot_surface(rosenbrock_race)`` drew Rosenbrock's paths on Booth."""
    pytest.importorskip("matplotlib")
    from optimlab.landscapes.plots import plt_close

    rosen = race("rosenbrock", {"adam": {"lr": 0.1}}, steps=0)
    with pytest.raises(ValueError, match=r"ran on rosenbrock, not on booth"):
        get("booth").plot_surface(rosen)
    bowl = race("quadratic", {"adam": {"lr": 0.1}}, steps=0)  # kappa 10
    with pytest.raises(ValueError, match=r"quadratic \(kappa=10\), not on quadratic \(kappa=100\)"):
        get("quadratic", kappa=100).plot_surface(bowl)
    # the same landscape, the race's noise aside, is drawn
    noisy = race("rosenbrock", {"adam": {"lr": 0.1}}, steps=3, noise=0.5)
    fig = get("rosenbrock").plot_surface(noisy, resolution=12)
    try:
        assert [line.get_gid() for line in fig.axes[0].lines if line.get_gid()] == ["minima", "path:adam"]
    finally:
        plt_close(fig)


# --------------------------------------------------------------- reached the tolerance and left


def test_a_run_that_reached_the_tolerance_and_left_is_marked():
    """Lion at lr 0.01 on Rosenbrock comes within 1e-3 of the minimum at step 286 and ends
    at a gap of 0.0305: its cell said a bare 286. ``steps_to_tol`` stays the first hit;
    the cell is marked and a note says what the mark means; a run that stayed is not."""
    result = race("rosenbrock", {"lion": {"lr": 0.01},
                                 "momentum": {"lr": 0.00316, "momentum": 0.9}}, steps=500)
    lion, momentum = result.metrics["lion"], result.metrics["momentum"]
    assert lion.steps_to_tol == 286 and lion.gap > result.tol
    assert momentum.steps_to_tol is not None and momentum.gap <= result.tol
    headers, rows = result.rows()
    column = headers.index("steps to gap 0.001")
    cells = {row[0]: row[column] for row in rows}
    assert cells == {"lion": "286 (left)", "momentum": str(momentum.steps_to_tol)}
    assert "(left) = reached a gap of 0.001 at that step but ended above it" in result.table()
    assert "286 (left)" in result.table()
    stayed = race("rosenbrock", {"momentum": {"lr": 0.00316, "momentum": 0.9}}, steps=500)
    assert "(left)" not in stayed.table()


def test_a_one_element_tensor_lr_is_one_value_as_torch_takes_it():
    """``lr=torch.tensor([0.01])`` is one rate to torch's optimizers; a race label (one run)
    refused it as per-member values. It races as the number it holds does; a tensor of
    two rates is still refused."""
    held = torch.tensor([0.01], dtype=torch.float64)
    tensor = race("rosenbrock", {"adam": {"lr": held}}, steps=40)
    number = race("rosenbrock", {"adam": {"lr": held.item()}}, steps=40)
    assert (tensor.paths["adam"] == number.paths["adam"]).all()
    with pytest.raises(ValueError, match="lr must be one value"):
        race("rosenbrock", {"adam": {"lr": torch.tensor([0.01, 0.02])}}, steps=5)


def _log_barrier() -> Landscape:
    # x - log x + y^2: a minimum of 1 at (1, 0), NaN where x < 0
    return Landscape(name="log barrier", dim=2,
                     f=lambda x: x[..., 0] - torch.log(x[..., 0]) + x[..., 1] ** 2,
                     domain=((0.05, 5.0), (-1.0, 1.0)), minima=((1.0, 0.0),), min_value=1.0,
                     challenges=(), start=(3.9, 0.0), description="x - log x + y^2")


def test_a_run_that_descends_then_leaves_fs_domain_is_a_blow_up_where_there_is_a_minimum():
    """GD at lr 4.2 goes 2.54 -> 1.03 -> 1.30 and then steps below x = 0, where f is NaN.
    Where f has a minimum it is bounded below, so this is no fall without bound: final loss
    and gap inf (never -inf, better than any real gap), diverged, and tuning never picks
    the rate for it."""
    land = _log_barrier()
    result = race(land, {"gd": {"lr": 4.2}}, steps=5)
    assert math.isnan(float(result.losses["gd"][-1]))
    assert float(result.losses["gd"][1]) < float(result.losses["gd"][0])  # it did descend
    m = result.metrics["gd"]
    assert m.final_loss == math.inf and m.gap == math.inf and m.diverged
    assert "-inf" not in result.table()
    tuned = race(land, {"gd": {}}, steps=5, tune=[0.5, 4.2], extend=False)
    assert tuned.tuning["gd"][4.2] == math.inf
    assert tuned.metrics["gd"].final_loss < 2


def test_a_race_too_long_to_record_is_refused_before_it_allocates(monkeypatch):
    # 1e11 steps would ask torch for 2.2 TB of paths: refused in one line, with the most
    # steps that fit, instead of torch's allocator error (or, at 1e9, hours and swap)
    with pytest.raises(ValueError, match=r"2\.24e\+03 GiB .* at most 89478484 steps"):
        race("rosenbrock", {"adam": None}, steps=10**11)
    # at the bound exactly: (steps + 1) x 2 members x (2 dimensions + 1) x 8 bytes
    monkeypatch.setattr(race_module, "MAX_PATH_BYTES", 48 * 11)
    both = {"adam": {"lr": 0.1}, "sgd": {"lr": 0.001}}
    assert len(race("rosenbrock", both, steps=10).losses["adam"]) == 11
    with pytest.raises(ValueError, match="at most 10 steps"):
        race("rosenbrock", both, steps=11)
    # where not one step fits (a start and a step: 2 x 2 x 3 x 8 = 96 bytes > 48)
    monkeypatch.setattr(race_module, "MAX_PATH_BYTES", 48)
    with pytest.raises(ValueError, match="not one step fits: fewer members or dimensions"):
        race("rosenbrock", both, steps=1)


def test_a_tuned_race_counts_the_rates_its_grid_may_be_extended_by(monkeypatch):
    """The bound was checked per batch: a three-rate grid (3 members) fitted, and each of up
    to three extensions (4 rates each) fitted too, while every batch stays alive until the
    race ends: 15 members' paths, and the pick run again alone beside them, past the bound.
    Counted whole before anything runs; without ``extend`` the grid alone (and the pick). A
    one-rate grid's best rate is on both its edges: its first round adds 8 rates, not 4 (the
    review found 17 paths alive where 13 were counted)."""
    # 11 rows x 16 members x (2 dims + 1) x 8 bytes = 4224 > 2000 >= 11 x 4 x 3 x 8 = 1056
    monkeypatch.setattr(race_module, "MAX_PATH_BYTES", 2000)
    grid = [1e-3, 1e-2, 3e-2]
    with pytest.raises(ValueError, match="10 steps of 16 member"):
        race("rosenbrock", {"adam": {}}, steps=10, tune=grid)
    assert race("rosenbrock", {"adam": {}}, steps=10, tune=grid, extend=False).steps == 10
    # one rate: 1 + 4 + 4 (the first round, both edges) + 4 + 4 and the pick: 18 members
    monkeypatch.setattr(race_module, "MAX_PATH_BYTES", 11 * 17 * 3 * 8)
    with pytest.raises(ValueError, match="10 steps of 18 member"):
        race("rosenbrock", {"sgd": {}}, steps=10, tune=[1e-6])
    monkeypatch.setattr(race_module, "MAX_PATH_BYTES", 11 * 18 * 3 * 8)
    assert race("rosenbrock", {"sgd": {}}, steps=10, tune=[1e-6]).steps == 10
    assert race_module.TUNE_MOST_RATES == len(race_module.TUNE_GRID) + 12
