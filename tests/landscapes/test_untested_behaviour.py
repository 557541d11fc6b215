"""Behaviour of the landscape lab that no test checked: each test here fails with a mutant
of the code that survived every test of ``tests/landscapes`` and ``tests/exhibits`` in a
mutation audit (2026-12-07; 89 mutants, 29 survivors, of which 4 behave as the code does).
Where a published value or an independent computation exists, it is the reference: the
DeepOBS spectrum of ``quadratic_deep``, Shang and Qiu (2006) on the extended Rosenbrock's
second minimum, a hand-stepped L-BFGS."""
import math
import warnings

import numpy as np
import pytest
import torch

from optimlab.landscapes import functions as F
from optimlab.landscapes import get, race
from optimlab.landscapes.base import Landscape, LandscapeWarning
from optimlab.landscapes.plots import plt_close

D = torch.float64


def _bowl(min_value=0.0, shift=0.0, name="bowl"):
    return Landscape(name=name, dim=2, f=lambda x: (x ** 2).sum(-1) + shift,
                     domain=((-1.0, 1.0), (-1.0, 1.0)), minima=((0.0, 0.0),),
                     min_value=min_value, challenges=(), start=(0.5, 0.5), description="")


def test_a_hair_below_min_value_is_rounding():
    """f dips 1e-9 below min_value 0 (a rounded catalog minimum): no warning, the tolerance
    counts as reached, the loss panel draws f - f* >= 0 on a log axis."""
    land = Landscape(name="hair", dim=2, f=lambda x: (x ** 2).sum(-1) - 1e-9,
                     domain=((-1.0, 1.0), (-1.0, 1.0)), minima=((0.0, 0.0),), min_value=0.0,
                     challenges=(), start=(0.5, 0.5), description="")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LandscapeWarning)
        r = race(land, {"gd": {"lr": 0.25}}, steps=60)
    assert r.metrics["gd"].steps_to_tol is not None
    fig = r.plot(resolution=20)
    (lax,) = [ax for ax in fig.axes if ax.get_title() == "loss"]
    assert lax.get_ylabel() == "f - f*"
    (line,) = [ln for ln in lax.lines if ln.get_gid() == "loss:gd"]
    assert (np.asarray(line.get_ydata()) >= 0).all()
    assert lax.get_yscale() == "log"
    plt_close(fig)


def test_a_min_value_1e4_too_high_is_warned_of():
    with pytest.warns(LandscapeWarning):
        race(_bowl(min_value=1e-4, name="off"), {"gd": {"lr": 0.25}}, steps=60)


def test_distance_is_to_the_nearest_of_several_minima():
    h = get("himmelblau")
    for m in h.minima:
        assert float(h.distance_to_minimum(torch.tensor(m, dtype=D))) < 1e-12


def test_noise_sequence_has_the_given_std():
    s = float(get("quadratic").with_noise(0.1, 0).noise_sequence(20000).std())
    assert s == pytest.approx(0.1, rel=0.03)


def test_rosenbrock_4d_has_a_local_minimum_and_says_so():
    """Shang & Qiu (2006): the extended Rosenbrock function has a second minimum for n>=4."""
    x = F._newton_minimum(F._rosenbrock_nd, (-1.0, 1.0, 1.0, 1.0))
    assert 3.6 < float(F._rosenbrock_nd(x)) < 3.8
    assert "local-minima" in get("rosenbrock_nd", dim=4).challenges
    assert "local-minima" not in get("rosenbrock_nd", dim=3).challenges


def test_quadratic_deep_is_deepobs_spectrum_and_documented_value():
    rng = np.random.RandomState(42)
    draws = np.sort(np.concatenate([rng.uniform(0.0, 1.0, 90), rng.uniform(30.0, 60.0, 10)]))
    h = F._deep_hessian(42)
    np.testing.assert_allclose(torch.linalg.eigvalsh(h).numpy(), draws, rtol=1e-10, atol=1e-10)
    land = get("quadratic_deep")
    assert float(land(torch.ones(100, dtype=D))) == pytest.approx(335.2, abs=0.05)


def test_rastrigin_nd_in_2d_starts_where_rastrigin_does():
    assert get("rastrigin_nd", dim=2).start == get("rastrigin").start


def test_ten_widths_not_one():
    from optimlab.landscapes.race import diverged
    land = get("plateau")  # bounded: leaving the map does not grow the gap tenfold
    for widths, expected in ((5, False), (11, True)):
        path = torch.tensor([[3.0, 2.5], [4.0 + widths * 8.0 + 0.1, 2.5]], dtype=D)
        assert diverged(land, path, land.f(path)) is expected


def test_a_start_below_every_grid_point_is_the_reference():
    from optimlab.landscapes.race import diverged
    land = Landscape(name="needle", dim=2,
                     f=lambda x: (x ** 2).sum(-1) - 10 * torch.exp(-((x - 0.005) ** 2).sum(-1) / 1e-6),
                     domain=((-1.0, 1.0), (-1.0, 1.0)), minima=(), min_value=None,
                     challenges=(), start=(0.005, 0.005), description="")
    path = torch.tensor([[0.005, 0.005], [0.0, 0.0]], dtype=D)
    assert diverged(land, path, land.f(path))  # climbed 10 from its start, the reference


def test_a_line_search_sees_the_noisy_loss():
    from tests.landscapes.test_race import _hand_run
    land = get("rosenbrock")
    hp = {"lr": 0.05, "line_search_fn": "strong_wolfe"}
    r = race(land, {"lbfgs": hp}, steps=30, noise=0.5)
    np.testing.assert_allclose(r.paths["lbfgs"], _hand_run(land, "lbfgs", hp, land.start, 30, 0.5),
                               rtol=1e-9, atol=1e-9)


def test_divergence_does_not_depend_on_adding_a_constant():
    spec = {"gd": {"lr": 1.05}}
    a = race(_bowl(), spec, steps=20)
    b = race(_bowl(min_value=100.0, shift=100.0, name="bowl+100"), spec, steps=20)
    assert a.metrics["gd"].diverged and b.metrics["gd"].diverged


def test_a_gap_equal_to_tol_stayed():
    land = Landscape(name="b", dim=2, f=lambda x: (x ** 2).sum(-1),
                     domain=((-1.0, 1.0), (-1.0, 1.0)), minima=((0.0, 0.0),), min_value=0.0,
                     challenges=(), start=(0.5, 0.0), description="")
    r = race(land, {"gd": {"lr": 0.1}}, steps=0, tol=0.25)
    assert r.steps_to_tol_text("gd") == "0"


def test_inside_is_the_default_starts_own():
    from optimlab.landscapes.race import run_members
    from optimlab.landscapes.suggest import SUGGEST_GRID, lr_scores
    land = get("rosenbrock")
    rows = lr_scores(land, "gd", steps=200)["gd"]
    path, _ = run_members(land, [("gd", {"lr": list(SUGGEST_GRID)})], land.start, 200)[0]
    p = path.numpy()
    b = np.asarray(land.domain)
    inside = (np.isfinite(p).all(-1) & (p >= b[:, 0]).all(-1) & (p <= b[:, 1]).all(-1)).all(0)
    assert [r[2] for r in rows] == inside.tolist()


def test_a_second_moment_with_a_zero_coordinate_is_a_scale():
    from optimlab.landscapes.inspect import inspect_steps
    rec = inspect_steps("quadratic", "adam", {"lr": 0.1}, start=(1.0, 0.0), steps=5)
    assert rec["state"]["exp_avg_sq"]["kind"] == "scale"


def test_inspect_on_a_noisy_landscape_is_the_race_path():
    from optimlab.landscapes.inspect import inspect_steps
    land = get("quadratic").with_noise(0.5, 3)
    rec = inspect_steps(land, "gd", {"lr": 0.1}, steps=10)
    np.testing.assert_allclose(rec["points"], race(land, {"gd": {"lr": 0.1}}, steps=10).paths["gd"],
                               rtol=1e-12, atol=1e-14)


def test_three_and_a_half_decades_get_log_colours():
    land = Landscape(name="steep", dim=2, f=lambda x: (x ** 2).sum(-1) ** 2.5,
                     domain=((-1.0, 1.0), (-1.0, 1.0)), minima=((0.0, 0.0),), min_value=0.0,
                     challenges=(), start=(0.5, 0.5), description="")
    fig = land.plot(resolution=101)
    assert any("log" in ax.get_ylabel() for ax in fig.axes[1:])
    plt_close(fig)


def test_a_loss_falling_2_5_decades_is_on_a_log_axis():
    fig = race("quadratic", {"gd": {"lr": 0.1}}, steps=20).plot(resolution=20)
    (lax,) = [ax for ax in fig.axes if ax.get_title() == "loss"]
    assert lax.get_yscale() == "log"
    plt_close(fig)


def test_a_short_race_animates_every_step():
    from optimlab.landscapes.plots import _frame_steps
    assert _frame_steps(10, 100).tolist() == list(range(11))


def test_basins_far_runs_and_colours():
    from optimlab.exhibits.basins import (
        BASIN_COLORS,
        DIVERGED,
        DIVERGED_COLOR,
        _classify,
        basin_color,
        basins,
    )
    land = get("two_wells")
    pts = np.asarray(land.minima + land.local_minima)
    assert _classify(land, np.array([[100.0, 0.0]]), pts, 0.25).tolist() == [DIVERGED]
    assert [basin_color(i) for i in range(6)] == list(BASIN_COLORS)
    demo = basins(optimizers={"gd": {"lr": 0.1}}, grid=3, steps=5)
    fig = demo.plot()
    from matplotlib.colors import to_hex
    (patch,) = [h for h in fig.legends[0].get_patches() if h.get_label() == "diverged"]
    assert to_hex(patch.get_facecolor()) == DIVERGED_COLOR
    plt_close(fig)


def test_minima_with_an_unbounded_min_value_are_refused():
    """Minima given with min_value=-inf were taken: a converged run then had gap inf and was
    not diverged."""
    with pytest.raises(ValueError, match="min_value=-inf says f is unbounded below"):
        _bowl(min_value=-math.inf)
