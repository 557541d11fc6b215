"""The playground's starting learning rates: the rule of optimlab.landscapes.suggest, and
the table optimlab.web.lrs ships (checked against the rule re-run here)."""

import math

import numpy as np
import pytest

from optimlab.landscapes import get, names, race
from optimlab.landscapes.race import diverged, run_fan
from optimlab.landscapes.suggest import SUGGEST_GRID, _pick, check_starts, lr_scores, suggest_lrs
from optimlab.web.lrs import rates_for, table


def test_the_pick_prefers_inside_then_the_best_score_then_the_larger_rate():
    # (lr, score from the default start, inside from it, inside from every check start)
    rows = [(0.01, 3.0, True, True), (0.1, 1.0, True, True), (1.0, 1.0, True, True),
            (3.0, 0.5, True, False), (10.0, 0.1, False, False)]
    assert _pick(rows) == 1.0  # 3 and 10 end lower but leave the map; 0.1 and 1 tie
    assert _pick([(0.1, 2.0, True, False), (1.0, 1.0, True, False)]) == 1.0
    assert _pick([(0.1, 2.0, False, False), (1.0, 1.0, False, False),
                  (10.0, math.inf, False, False)]) == 1.0
    assert _pick([(0.1, math.inf, False, False), (1.0, math.inf, True, True)]) == 0.1


def test_the_check_starts_are_the_default_and_four_inner_points():
    land = get("rosenbrock")
    starts = check_starts(land)
    assert starts[0] == list(land.start) and len(starts) == 5
    assert sorted(map(tuple, starts[1:])) == [(-1.0, 0.0), (-1.0, 2.0), (1.0, 0.0), (1.0, 2.0)]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="steps"):
        lr_scores("booth", ["gd"], steps=0)
    with pytest.raises(ValueError, match="grid"):
        lr_scores("booth", ["gd"], grid=[0.1, -1.0])
    with pytest.raises(ValueError, match="names"):
        lr_scores("booth", [])
    with pytest.raises(ValueError, match="unknown|Unknown"):
        lr_scores("booth", ["no-such-optimizer"])


@pytest.mark.parametrize("landscape, name", [("rosenbrock", "gd"), ("two_wells", "adam"),
                                             ("saddle", "momentum"), ("himmelblau", "rmsprop")])
def test_the_table_holds_the_rules_pick(landscape, name):
    """The shipped rate is the rule's: re-run here, it keeps every check start on the map
    and its score is the best of the rates that do (compared with a relative tolerance:
    the scores of neighbouring grid rates differ by orders more than float64 rounding
    between machines)."""
    rows = lr_scores(landscape, [name])[name]
    stored = rates_for(landscape)[name]
    row = min(rows, key=lambda r: abs(math.log(r[0] / stored)))
    assert f"{row[0]:.3g}" == f"{stored:.3g}"  # the table keeps three significant digits
    assert row[3], f"{name} at {stored} leaves {landscape}'s map from a check start"
    inside = [r[1] for r in rows if r[3] and math.isfinite(r[1])]
    assert row[1] <= min(inside) + 1e-9 * max(1.0, abs(min(inside)))
    assert table()["grid"] == pytest.approx(list(SUGGEST_GRID))


def test_suggest_lrs_returns_one_grid_rate_per_name():
    out = suggest_lrs("booth", ["gd", "adam"], steps=50)
    assert set(out) == {"gd", "adam"} and all(v in SUGGEST_GRID for v in out.values())


def _travel(landscape, name, lr, steps=500):
    """How far the path gets from its start (its farthest point), in widths of the map's
    narrower side, and whether it stays on the map."""
    land = get(landscape)
    path = np.asarray(race(land, {name: {"lr": lr}}, steps=steps).paths[name])
    width = min(hi - lo for lo, hi in land.domain)
    bounds = np.asarray(land.domain)
    inside = bool(np.isfinite(path).all() and (path >= bounds[:, 0]).all()
                  and (path <= bounds[:, 1]).all())
    with np.errstate(over="ignore", invalid="ignore"):
        travel = float(np.nanmax(np.linalg.norm(path - path[0], axis=1))) / width
    return travel, inside


@pytest.mark.parametrize("landscape", [n for n in names() if get(n).dim == 2])
def test_the_first_visits_optimizers_move_visibly_at_the_tables_rates(landscape):
    """The page starts with gd, momentum and Adam: at the table's rates each stays on the
    map for the page's 500 steps and travels at least 3% of its width (12 pixels of the
    400-pixel map; gd on Rastrigin settles in the local minimum beside its start, 4% away).
    At the library's defaults Adam's 0.001 travels under 5% on Rosenbrock (below)."""
    rates = rates_for(landscape)
    for name in ("gd", "momentum", "adam"):
        travel, inside = _travel(landscape, name, rates[name])
        assert inside and travel >= 0.03, (landscape, name, rates[name], travel)


def test_the_library_default_hardly_moves_where_the_tables_rate_does():
    assert _travel("rosenbrock", "adam", 0.001)[0] < 0.05
    assert _travel("rosenbrock", "adam", rates_for("rosenbrock")["adam"])[0] > 0.4


def test_the_check_starts_of_an_nd_landscape_have_every_coordinate():
    land = get("rosenbrock_nd", dim=4)
    starts = check_starts(land)
    assert len(starts) == 5 and all(len(s) == 4 for s in starts)
    assert all(s[2:] == list(land.start[2:]) for s in starts)
    rates = suggest_lrs(land, ["adam"], steps=10)
    assert set(rates) == {"adam"} and rates["adam"] in SUGGEST_GRID


def test_one_name_is_a_list_of_one():
    assert suggest_lrs("booth", "adam", steps=10) == suggest_lrs("booth", ["adam"], steps=10)
    assert list(lr_scores("booth", "gd", steps=5)) == ["gd"]


def test_the_docstring_says_where_plain_descent_on_goldstein_price_diverges():
    """Measured from the default start over SUGGEST_STEPS steps: every grid rate from
    3.16e-5 up diverges, 1e-5 does not (the docstring once said 'above 1e-4')."""
    import optimlab.landscapes.suggest as suggest

    doc = " ".join(suggest.__doc__.split())
    assert "from 3e-5 up" in doc and "while 1e-5 does not" in doc and "above 1e-4" not in doc
    grid = [1e-5, 10**-4.5, 1e-4, 1e-2, 1.0]
    (path, loss), = run_fan(get("goldstein_price"), [("sgd", {"lr": 1.0})],
                            [list(get("goldstein_price").start)], grid, 500)
    gone = [diverged(get("goldstein_price"), path[:, j], loss[:, j]) for j in range(len(grid))]
    assert gone == [False, True, True, True, True]


@pytest.mark.parametrize("argv, code", [(["--help"], 0), (["nope"], 2), (["rosenbrock", "--x"], 2)])
def test_the_table_command_reads_its_arguments_before_any_work(argv, code, monkeypatch, capsys,
                                                              tmp_path):
    """``python -m optimlab.web.lrs --help`` printed a traceback (it took --help for a
    landscape) and, with no argument, rebuilds the shipped file: asking for help or naming
    a landscape it has not must neither compute nor write."""
    from optimlab.web import lrs

    monkeypatch.setattr(lrs, "build", lambda *a, **k: pytest.fail("computed the table"))
    monkeypatch.setattr(lrs, "LRS_FILE", tmp_path / "lrs.json")
    with pytest.raises(SystemExit) as done:
        lrs.main(argv)
    assert done.value.code == code and not (tmp_path / "lrs.json").exists()
    err = capsys.readouterr()
    assert ("usage:" in err.out) if code == 0 else ("error:" in err.err and "Traceback" not in err.err)
