"""The ``ill-conditioned`` and ``saddle`` exhibits: races on their own small landscapes,
and the tour's axis-aligned against rotated comparison (:func:`ravine_alignment`)."""

import functools
import math

import numpy as np
import pytest
import torch

from optimlab.exhibits import landscape
from optimlab.optim.palette import color
from tests.exhibits.figures import check_figure, drawn_styles, same_hue


@functools.cache
def result(name):
    """Each exhibit runs once per session; the tests below only read its numbers."""
    return {"ill-conditioned": landscape.ill_conditioned, "saddle": landscape.saddle,
            "alignment": landscape.ravine_alignment}[name]()


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
    # each diagonal rule's line says where it did better, read from the two runs (a fixed
    # sentence claimed "each does better aligned", false for Adam in the tour's quick run)
    text = str(demo)
    assert "rmsprop in 8 steps" in text and text.count(": better aligned") == 2
    # at a safe rate SGD settles theta2 long before theta1: the shallow direction lags
    assert demo.lag["sgd, safe"] > 10 * demo.lag["adam"]
    assert m["sgd, safe"].steps_to_tol > m["adam"].steps_to_tol
    assert "steps to f<0.001" in demo.table()


def test_the_rotated_ravine_is_the_ravine_turned_45_degrees():
    turn = torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=torch.float64) * math.sqrt(0.5)
    x = torch.tensor([[5.0, 5.0], [1.0, -2.0], [0.3, 0.7]], dtype=torch.float64)
    # turning and turning back rounds each coordinate a few ulps (2.2e-16 relative) and the
    # values (5 to 275) carry them: measured 4e-16 relative; rtol 1e-14 leaves 25x
    torch.testing.assert_close(landscape.RAVINE_ROTATED(x @ turn.T), landscape.RAVINE(x),
                               rtol=1e-14, atol=0.0)
    # measured equal; a fused multiply-add in the 2 x 2 product may round once otherwise:
    # 1 ulp of 7.07 is 8.9e-16, atol 1e-14 leaves 10x
    np.testing.assert_allclose(landscape.RAVINE_ROTATED.start, turn @ torch.tensor([5.0, 5.0],
                                                                                 dtype=torch.float64),
                               atol=1e-14)


def test_diagonal_adaptivity_helps_only_on_the_axis_aligned_ravine():
    demo = result("ill-conditioned")
    aligned, rotated = demo.race.metrics, demo.rotated.metrics
    assert set(aligned) == set(rotated) == {"sgd, near limit", "sgd, safe", "momentum",
                                            "rmsprop", "adam"}
    # SGD and momentum do not see the axes: the same losses on both ravines
    for label in ("sgd, near limit", "sgd, safe", "momentum"):
        # the same run in turned coordinates: rounding differs by ulps a step, 200 steps;
        # measured at most 4e-14 relative (momentum), rtol 1e-9 leaves 4 orders of room (the
        # losses fall to 1e-33, far above atol's 1e-300, which only lets an exact 0 match)
        np.testing.assert_allclose(demo.rotated.losses[label], demo.race.losses[label],
                                   rtol=1e-9, atol=1e-300)
    gd = aligned["sgd, near limit"].steps_to_tol
    assert gd == rotated["sgd, near limit"].steps_to_tol
    # RMSprop: several times faster than GD near its limit on the aligned ravine, slower
    # on the rotated one
    assert aligned["rmsprop"].steps_to_tol * 3 < gd < rotated["rmsprop"].steps_to_tol
    # Adam at lr 0.1 reaches f < 1e-3 on the aligned ravine, not on the rotated one
    assert aligned["adam"].steps_to_tol is not None and rotated["adam"].steps_to_tol is None
    assert rotated["adam"].final_loss > 1e5 * aligned["adam"].final_loss
    table = demo.table()
    assert "rotated: steps to f<0.001" in table
    assert "f<0.001, axis-aligned vs rotated: rmsprop in 8 steps" in table


def test_ill_conditioned_figure():
    check_figure(result("ill-conditioned"))


def test_every_run_of_the_ill_conditioned_figure_has_its_optimizers_colour():
    """The two SGD runs were drawn light orange and light green (momentum's and Adam's
    hues); now both are SGD's, told apart by shade and line style."""
    pytest.importorskip("matplotlib")
    from optimlab.landscapes.plots import plt_close

    fig = result("ill-conditioned").plot()
    paths = drawn_styles(fig, "path:")
    losses = drawn_styles(fig, "loss:")
    plt_close(fig)
    assert len(paths) == 5 and len(losses) == 10
    for label in ("momentum", "rmsprop", "adam"):
        assert paths[label] == (color(label), "-")
    near, safe = paths["sgd, near limit"], paths["sgd, safe"]
    assert near == (color("sgd"), "-")
    assert same_hue(safe[0], color("sgd")) and safe[0] != near[0] and safe[1] == "--"
    for name, (c, _) in losses.items():
        assert c == paths[name.rsplit(", ", 1)[0]][0]


def test_ravine_alignment_with_tuned_rates():
    """The tour's comparison: tuned rates on the catalog's quadratic (condition number 50)
    and on the same bowl turned by 45 degrees, 300 steps."""
    demo = result("alignment")
    aligned, rotated = demo.aligned, demo.rotated
    assert rotated.landscape.params == {"kappa": 50.0, "angle": 45.0}
    # tuned SGD: the same rate and, up to rounding, the same run on both bowls
    assert aligned.hparams["sgd"]["lr"] == rotated.hparams["sgd"]["lr"]
    # 300 steps in turned coordinates, ulps a step: measured 2e-15 relative, rtol 1e-8
    # leaves 6 orders of room
    np.testing.assert_allclose(rotated.losses["sgd"], aligned.losses["sgd"], rtol=1e-8)
    sgd_a, sgd_r = aligned.metrics["sgd"], rotated.metrics["sgd"]
    rms_a, rms_r = aligned.metrics["rmsprop"], rotated.metrics["rmsprop"]
    # RMSprop's advantage over tuned SGD is enormous on the aligned bowl and gone on the
    # rotated one: in final loss and in steps to f < 1e-3
    assert rms_a.final_loss < 1e-100 * sgd_a.final_loss
    assert rms_r.final_loss > sgd_r.final_loss
    assert rms_a.steps_to_tol * 5 < sgd_a.steps_to_tol
    assert rms_r.steps_to_tol is None or rms_r.steps_to_tol > 0.8 * sgd_r.steps_to_tol
    text = str(demo)
    assert ("lr tuned by: worst loss over the last 25% of steps; a run above its start past "
            "halfway is out") in text
    assert "Adam and RMSprop rescale each coordinate" in text


def test_ravine_alignment_figure():
    check_figure(result("alignment"))


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


def test_the_saddle_pictures_minima_and_saddle_are_above_the_paths():
    # the legend lists them; the paths, which end on the upper minimum, hid them
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    fig = result("saddle").plot()
    ax = fig.axes[0]
    top = max(line.get_zorder() for line in ax.lines
              if (line.get_gid() or "").startswith("path:"))
    marks = {line.get_gid(): line.get_zorder() for line in ax.lines
             if line.get_gid() in ("minima", "saddle")}
    plt.close(fig)
    assert set(marks) == {"minima", "saddle"} and min(marks.values()) > top


def test_gd_with_noise_is_drawn_in_a_shade_of_gds_colour():
    pytest.importorskip("matplotlib")
    from optimlab.landscapes.plots import plt_close

    fig = result("saddle").plot()
    paths, losses = drawn_styles(fig, "path:"), drawn_styles(fig, "loss:")
    plt_close(fig)
    assert paths == losses
    for label in ("gd", "momentum", "adam"):
        assert paths[label] == (color(label), "-")
    noisy = paths["gd + noise"]
    assert same_hue(noisy[0], color("gd")) and noisy[0] != color("gd") and noisy[1] == "--"


@pytest.mark.parametrize("start", [(1, 2, 3), (1.0,), (1.0, math.nan), "ab", 5])
def test_saddle_refuses_a_start_that_is_not_a_point(start):
    with pytest.raises(ValueError, match=r"start must be 2 finite numbers \(x, y\), got"):
        landscape.saddle(start=start)


def test_the_ravine_findings_say_where_each_rule_did_better_in_this_run():
    from types import SimpleNamespace

    def race(**steps):
        return SimpleNamespace(
            tol=1e-3, labels=list(steps),
            hparams={k: {"name": k} for k in steps},
            metrics={k: SimpleNamespace(steps_to_tol=v[0], final_loss=v[1])
                     for k, v in steps.items()})

    aligned = race(sgd=(29, 1e-30), rmsprop=(8, 1e-90), adam=(None, 0.041))
    rotated = race(sgd=(29, 1e-30), rmsprop=(53, 1e-25), adam=(None, 0.018))
    lines = landscape._findings(aligned, rotated, "sgd")
    assert lines[-2].endswith("rmsprop in 8 steps (final f 1e-90) vs in 53 steps (final f "
                              "1e-25): better aligned")
    assert lines[-1].endswith(": better rotated")  # the tour's quick run: Adam ends lower rotated


@pytest.mark.parametrize("optimizers, reference", [
    (("rmsprop", "adam"), None),  # no SGD and no other rule to compare with: no such line
    (("momentum", "adam"), "momentum"),  # no SGD: the first rule that ignores coordinates
])
def test_ravine_alignment_without_sgd_prints_its_table(optimizers, reference):
    """It once assumed a label "sgd" and raised KeyError 'sgd' without one."""
    demo = landscape.ravine_alignment(optimizers=optimizers, steps=50)
    table = demo.table()
    assert demo.reference() == reference
    lines = [line for line in table.splitlines() if line.startswith("f<0.001, axis-aligned")]
    said = [line.split(": ", 1)[1].split()[0] for line in lines]
    diagonal = [name for name in optimizers if name in ("rmsprop", "adam")]
    assert said == ([] if reference is None else [reference]) + diagonal


def test_one_rate_on_both_bowls_is_said_to_be_both():
    """The "lr (aligned / rotated)" column showed one value where both were equal."""
    from types import SimpleNamespace

    def race(lr):
        return SimpleNamespace(labels=["sgd", "adam"], tuning_edge={},
                               hparams={k: {"name": k, "lr": lr[k]} for k in lr},
                               metrics={k: SimpleNamespace(steps_to_tol=None, final_loss=0.1)
                                        for k in lr})

    rows = landscape._pair_rows(race({"sgd": 0.178, "adam": 0.5}),
                                race({"sgd": 0.178, "adam": 0.316}))
    assert [row[2] for row in rows] == ["0.178 (both)", "0.5 / 0.316"]


def test_the_ravine_table_marks_a_step_to_the_tolerance_the_run_did_not_keep():
    """The exhibit's "steps to f<tol" cells say what the race table says: Lion at lr 0.01 on
    Rosenbrock comes within 0.001 at step 286 and ends above it, "286 (left)"; a rule that
    never comes is "never"."""
    from optimlab.exhibits.landscape import _pair_rows
    from optimlab.landscapes import race

    result = race("rosenbrock", {"lion": {"lr": 0.01}, "sgd": {"lr": 1e-4}}, steps=500)
    rows = {row[0]: row for row in _pair_rows(result, result)}
    assert rows["lion"][3] == rows["lion"][5] == "286 (left)"
    assert rows["sgd"][3] == "never"
