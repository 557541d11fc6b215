"""Landscapes of one's own: what the lab asks of them and what it says about them.

An audit raced users' own landscapes: a blow-up on a landscape whose minimizer is not known
was never "diverged" (it was judged as a saddle), a wrong ``min_value`` went unsaid, a start
where f is NaN was blamed on the tuning grid, an f that cannot take a batch failed with
torch's bare words (and only in a race of two or more runs), a float32 f lowered a race's
precision silently, and the basins exhibit titled a default rate "lr=0", added up repeated
minimum names to 64% and took a landscape's minima by its name.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import optimlab
from optimlab.landscapes import Landscape, get, race
from optimlab.landscapes.race import TUNE_CRITERION, TUNE_ESCAPE_CRITERION


def _bowl(x):
    return ((x - 1) ** 2).sum(-1)


def _mine(f=_bowl, name="mine", minima=((1.0, 1.0),), min_value=0.0, challenges=(),
          domain=((-3.0, 3.0), (-3.0, 3.0)), start=(-1.5, -1.5), **kwargs):
    return Landscape(name=name, dim=2, f=f, domain=domain, minima=minima, min_value=min_value,
                     challenges=challenges, start=start, description="", **kwargs)


def _landscape_warnings(record) -> list[str]:
    from optimlab.landscapes.base import LandscapeWarning

    return [str(w.message) for w in record if issubclass(w.category, LandscapeWarning)]


# ------------------------------------------------ 1. a minimizer not known is not a saddle


def test_a_blow_up_where_the_minimizer_is_not_known_is_diverged():
    """minima=() with a finite min_value and no "saddle" tag: GD at lr 1.5 on a bowl reaches
    1.7e37, which said diverged "no" under a note that the function is unbounded below."""
    result = race(_mine(minima=()), {"gd": {"lr": 1.5}, "adam": {"lr": 0.1}}, steps=60)
    gd, adam = result.metrics["gd"], result.metrics["adam"]
    assert gd.final_loss > 1e30 and gd.diverged
    assert not adam.diverged
    # gaps are measured from the min_value given; the distance is not known
    assert gd.gap == pytest.approx(gd.final_loss) and math.isnan(gd.distance)
    assert adam.steps_to_tol is not None and gd.escaped is None
    headers, rows = result.rows()
    assert "gap to min" in headers and "escaped" not in headers
    cells = dict(zip(headers, rows[0]))
    assert cells["diverged"] == "yes" and cells["dist to min"] == "-"
    notes = "\n".join(result.notes())
    assert "unbounded below" not in notes and "escaped" not in notes
    assert "no known minimizer: mine" in notes and "min_value 0" in notes


def test_min_value_none_says_the_minimum_value_is_not_known():
    land = _mine(minima=(), min_value=None)
    assert land.min_value is None and not land.unbounded
    result = race(land, {"gd": {"lr": 1.5}, "adam": {"lr": 0.1}}, steps=60)
    gd, adam = result.metrics["gd"], result.metrics["adam"]
    assert gd.diverged and not adam.diverged
    assert math.isnan(gd.gap) and math.isnan(adam.gap) and adam.steps_to_tol is None
    headers, rows = result.rows()
    for row in rows:
        cells = dict(zip(headers, row))
        assert cells["gap to min"] == cells["dist to min"] == "-"
        assert cells[f"steps to gap {result.tol:g}"] == "-"
    notes = "\n".join(result.notes())
    assert "min_value=None" in notes and "lowest value of f on the domain" in notes
    assert "nan" not in result.table()
    # the divergence rule measures from the lowest value on the grid of the domain (8e-4,
    # near (1, 1): the grid misses the minimum by a hair)
    from optimlab.landscapes.race import typical_gap

    assert typical_gap(land) == pytest.approx(typical_gap(_mine(minima=())), abs=1e-3)
    from optimlab.landscapes.plots import _gap_panel, plt_close

    assert not _gap_panel(result)  # the loss panel draws f, not f - f*
    plt_close(result.plot(resolution=20))


def test_min_value_none_needs_minima_empty_and_plus_inf_is_refused():
    with pytest.raises(ValueError, match=r"mine: min_value=None \(not known\) needs minima=\(\)"):
        _mine(min_value=None)
    with pytest.raises(ValueError, match=r"min_value must be below \+inf"):
        _mine(minima=(), min_value=math.inf)


def test_tuning_where_the_minimizer_is_not_known_ranks_by_the_loss_not_by_escapes():
    result = race(_mine(minima=()), {"gd": {}}, steps=60, tune=[0.1, 0.5, 1.5], extend=False)
    assert result.tuned_by == TUNE_CRITERION
    assert result.tuning_scores["gd"][1.5] == math.inf  # the blow-up is out
    assert result.hparams["gd"]["lr"] == 0.5


def test_the_saddle_rules_are_for_a_saddle_tag_or_a_minus_inf_min_value():
    """The catalog's saddles (and a landscape tagged "saddle", or unbounded below) keep the
    rules where leaving the domain downhill is the goal: a run that falls without bound is
    not diverged there, and escapes are counted below a finite min_value."""
    assert get("saddle").unbounded and get("monkey_saddle").unbounded
    assert not any(get(name).unbounded for name in optimlab.landscapes.names()
                   if name not in ("saddle", "monkey_saddle"))
    drop = lambda x: x[..., 0] ** 2 - x[..., 1] ** 2  # noqa: E731
    tagged = _mine(f=drop, minima=(), min_value=-9.0, challenges=("saddle",), start=(0.5, 0.1))
    untagged_inf = _mine(f=drop, minima=(), min_value=-math.inf, start=(0.5, 0.1))
    assert tagged.unbounded and untagged_inf.unbounded
    result = race(tagged, {"gd": {"lr": 0.5}}, steps=200)
    m = result.metrics["gd"]
    assert m.escaped and not m.diverged and result.rows()[0][3] == "escaped"
    assert race(tagged, {"gd": {}}, steps=50, tune=[0.1, 0.5], extend=False).tuned_by \
        == TUNE_ESCAPE_CRITERION
    assert not race(untagged_inf, {"gd": {"lr": 0.5}}, steps=200).metrics["gd"].diverged
    # a saddle tag with min_value=None: no escape line, as with -inf
    none = _mine(f=drop, minima=(), min_value=None, challenges=("saddle",), start=(0.5, 0.1))
    assert none.unbounded
    result = race(none, {"gd": {"lr": 0.5}}, steps=200)
    assert result.metrics["gd"].escaped is None and not result.metrics["gd"].diverged
    assert "no minimum: mine has none to converge to" in "\n".join(result.notes())


def test_diverged_without_a_minimizer_uses_the_rules_that_need_none():
    from optimlab.landscapes.race import diverged

    land = _mine(minima=(), min_value=None)
    still = torch.zeros(3, 2, dtype=torch.float64)
    # non-finite: diverged (it was the "escape" of a saddle)
    assert diverged(land, still, torch.tensor([5.0, 2.0, math.nan], dtype=torch.float64))
    assert diverged(land, still, torch.tensor([5.0, 2.0, -math.inf], dtype=torch.float64))
    # a loss that ends ten times as high above the domain's lowest value (0) as it began
    assert diverged(land, still, torch.tensor([5.0, 20.0, 60.0], dtype=torch.float64))
    assert not diverged(land, still, torch.tensor([5.0, 20.0, 40.0], dtype=torch.float64))
    # leaving the domain by more than ten widths
    far = torch.tensor([[0.0, 0.0], [0.0, 0.0], [70.0, 0.0]], dtype=torch.float64)
    assert diverged(land, far, torch.tensor([5.0, 4.0, 3.0], dtype=torch.float64))


# ------------------------------------------------ 2. a min_value f goes below


def _wavy(x):
    a, b = x[..., 0], x[..., 1]
    return (a - 1) ** 2 + 5 * (b - a**2) ** 2 + 0.1 * torch.sin(3 * a * b)


def test_a_min_value_f_goes_below_on_the_domain_is_warned_of_once():
    """The wavy valley's true minimum is -0.0772 at (1.14, 1.31), not the 0 declared."""
    from optimlab.landscapes.race import typical_gap

    land = _mine(f=_wavy, start=(-1.5, 2.0))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        typical_gap(land)
        typical_gap(land)  # read once
    (message,) = _landscape_warnings(record)
    assert message.startswith("mine: f reaches -0.07")
    assert "(1.1" in message and "min_value 0" in message


def test_a_run_below_min_value_is_warned_of_and_said_under_the_table():
    land = _mine(f=_wavy, start=(-1.5, 2.0))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = race(land, {"adam": {"lr": 0.3}, "lbfgs": {}}, steps=300)
    messages = [m for m in _landscape_warnings(record) if " fell to " in m]
    assert len(messages) == 1
    assert messages[0].startswith(("mine: the loss of adam fell to -0.0772",
                                   "mine: the loss of lbfgs fell to -0.0772"))
    assert "below the landscape's min_value 0" in messages[0]
    notes = "\n".join(result.notes())
    assert "f went down to -0.0772" in notes and "not f's minimum" in notes
    # the loss panel draws f, where f - f* would be below 0 (nothing on a log axis)
    from optimlab.landscapes.plots import _gap_panel

    assert not _gap_panel(result)
    assert _gap_panel(race(_mine(), {"adam": {"lr": 0.1}}, steps=20))


def test_catalog_landscapes_raise_no_warning():
    from optimlab.landscapes.race import typical_gap

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for name in optimlab.landscapes.names():
            typical_gap(get(name))
        for name in ("rosenbrock", "two_wells", "six_hump_camel", "styblinski_tang", "saddle"):
            race(name, {"adam": {"lr": 0.05}, "lbfgs": {}}, steps=200)
    assert _landscape_warnings(record) == []


# ------------------------------------------------ 3. a start where f is not finite


def _log_barrier(x):
    return (x - torch.log(x)).sum(-1)


def test_a_start_where_f_is_not_finite_is_refused_naming_it():
    land = _mine(f=_log_barrier, domain=((-1.0, 4.0), (-1.0, 4.0)), min_value=2.0,
                 start=(-0.5, 1.0))
    with pytest.raises(ValueError, match=r"^mine: f is nan at the start \(-0.5, 1\)"):
        race(land, {"adam": {}}, steps=20, tune=True)
    with pytest.raises(ValueError, match=r"f is nan at the start \(1, -0.25\)"):
        race(land, {"adam": {"lr": 0.1}}, start=(1.0, -0.25), steps=5)
    assert race(land, {"adam": {"lr": 0.1}}, start=(3.0, 0.5), steps=5).steps == 5


def test_a_start_where_the_gradient_is_not_finite_is_refused():
    cone = lambda x: (x**2).sum(-1) ** 0.25  # noqa: E731  (its gradient at 0 is 0 * inf)
    with pytest.raises(ValueError, match=r"mine: the gradient of f is \(nan, nan\) at the "
                                         r"start \(0, 0\)"):
        race(_mine(f=cone, minima=((0.0, 0.0),), start=(0.0, 0.0)), {"gd": {"lr": 0.1}},
             steps=5)


# ------------------------------------------------ 4. an f that cannot take a batch


def _branchy(x):
    if x[..., 0] > 0:
        return ((x - 1) ** 2).sum(-1)
    return ((x + 1) ** 2).sum(-1)


@pytest.mark.parametrize("optimizers", [{"gd": {"lr": 0.1}},
                                        {"gd": {"lr": 0.1}, "adam": {"lr": 0.1}}])
def test_an_f_with_python_control_flow_fails_naming_the_landscape(optimizers):
    """One run or two: the same error (one run used to race, two failed with torch's bare
    "Boolean value of Tensor with more than one value is ambiguous")."""
    with pytest.raises(RuntimeError, match=r"^mine: f failed on points of shape \[2, 2\].*"
                                           r"ambiguous.*f must be batched.*torch.where") as err:
        race(_mine(f=_branchy), optimizers, steps=10)
    assert "ambiguous" in str(err.value.__cause__)


def test_values_and_plots_name_the_landscape_where_f_fails():
    land = _mine(f=_branchy)
    with pytest.raises(RuntimeError, match=r"mine: f failed on points of shape \[4, 3, 2\]"):
        land.values(torch.zeros(4, 3, 2, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"mine: f failed .* f must be batched"):
        land.plot(resolution=10)
    from optimlab.landscapes.plots import plt_close

    plt_close("all")  # the figure the failed plot had opened
    from optimlab.exhibits.basins import basins

    with pytest.raises(RuntimeError, match=r"mine: f failed .* f must be batched"):
        basins(land, {"gd": {"lr": 0.1}}, grid=3, steps=2)


@pytest.mark.parametrize("f, why", [
    (lambda x: torch.zeros(x.shape[:-1], dtype=x.dtype), r"do not depend on the points"),
    (lambda x: (x**2).sum(-1).round().long(), r"returned int64 values"),
    (lambda x: torch.from_numpy((x.detach().numpy() ** 2).sum(-1)), r"do not depend on"),
])
def test_an_f_autograd_cannot_differentiate_fails_naming_the_landscape(f, why):
    """A constant f, an integer one, or one computed in NumPy used to fail with "element 0
    of tensors does not require grad and does not have a grad_fn"."""
    with pytest.raises(ValueError, match=r"^mine: autograd cannot differentiate f: .*" + why
                       + r".*differentiable by autograd"):
        race(_mine(f=f), {"gd": {"lr": 0.1}}, steps=10)


def test_an_f_that_calls_numpy_on_its_input_fails_naming_the_landscape():
    with pytest.raises(RuntimeError, match=r"^mine: f failed .*numpy.*no NumPy") as err:
        race(_mine(f=lambda x: torch.from_numpy((x.numpy() ** 2).sum(-1))),
             {"gd": {"lr": 0.1}}, steps=10)
    assert isinstance(err.value.__cause__, RuntimeError)


def test_an_error_of_a_class_of_its_own_passes_through_unchanged():
    class Stop(ValueError):
        pass

    def stop(x):
        raise Stop("stop here")

    with pytest.raises(Stop, match=r"^stop here$"):
        race(_mine(f=stop), {"gd": {"lr": 0.1}}, steps=3)


# ------------------------------------------------ 5-7. basins of a landscape of one's own


def _wells(x):
    a, b = x[..., 0], x[..., 1]
    return (a**2 - 1) ** 2 + (b**2 - 1) ** 2 + 0.3 * a + 0.1 * b


_WELLS = ((-1.0356, -1.0123), (-1.0356, 0.9873), (0.9601, -1.0123), (0.9601, 0.9873))


def _four_wells(name="four wells"):
    return _mine(f=_wells, name=name, domain=((-2.0, 2.0), (-2.0, 2.0)), minima=(_WELLS[0],),
                 min_value=-0.40605, local_minima=_WELLS[1:], start=(0.2, 0.1))


def test_a_basins_title_shows_the_rate_used_not_lr_0():
    pytest.importorskip("matplotlib")
    from optimlab.exhibits.basins import basins
    from optimlab.landscapes.plots import plt_close

    demo = basins(_four_wells(), {"adam": {}, "lbfgs": {}, "fast": {"name": "gd", "lr": 0.05}},
                  grid=3, steps=5)
    assert demo.hparams["adam"]["lr"] == 1e-3 and demo.hparams["lbfgs"]["lr"] == 1.0
    fig = demo.plot()
    try:
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    finally:
        plt_close(fig)
    assert titles[0].startswith("adam (lr=0.001): ")
    assert titles[1].startswith("lbfgs (lr=1): ") and titles[2].startswith("fast (lr=0.05): ")
    assert not any("lr=0)" in t for t in titles)
    headers, rows = demo.rows()
    assert rows[0][headers.index("hyperparameters")] == "lr=0.001"


def test_basins_refuse_a_minimum_name_given_twice():
    """Four minima named "well": their shares went to one name, a row of 64%."""
    from optimlab.exhibits.basins import basins

    with pytest.raises(ValueError, match=r"minima\[0\] and minima\[1\] are both named 'well'"):
        basins(_four_wells(), {"gd": {"lr": 0.05}}, grid=3, steps=5,
               minima=[("well", p) for p in _WELLS])
    with pytest.raises(ValueError, match=r"minima\[1\]: 'diverged' names a column"):
        basins(_four_wells(), {"gd": {"lr": 0.05}}, grid=3, steps=5,
               minima=[("well", _WELLS[0]), ("diverged", _WELLS[1])])
    demo = basins(_four_wells(), {"gd": {"lr": 0.05}}, grid=5, steps=100,
                  minima=[(f"well {i}", p) for i, p in enumerate(_WELLS)])
    assert sum(demo.fractions()["gd"].values()) == pytest.approx(1.0)
    assert sum(int(cell[:-1]) for cell in demo.rows()[1][0][3:]) == 100


def test_minima_named_by_their_points_are_told_apart():
    from optimlab.exhibits.basins import known_minima

    close = _mine(minima=((1.0001, 0.0),), local_minima=((1.0002, 0.0), (1.0002, 0.0)))
    names = [name for name, _ in known_minima(close)]
    assert len(set(names)) == 3
    assert names == ["(1.0001, 0)", "(1.0002, 0) local", "(1.0002, 0) local #2"]
    assert [n for n, _ in known_minima(_four_wells())][:2] == ["(-1.04, -1.01)",
                                                               "(-1.04, 0.987) local"]


def test_a_landscape_named_like_a_catalog_one_keeps_its_own_minima():
    from optimlab.exhibits.basins import basins, known_minima

    mine = _four_wells(name="two_wells")
    assert [p for _, p in known_minima(mine)] == list(_WELLS)
    demo = basins(mine, {"gd": {"lr": 0.05}}, grid=5, steps=100)
    assert [p for _, p in demo.minima] == list(_WELLS)
    assert sum(demo.fractions()["gd"][name] for name, _ in demo.minima) > 0.9
    # the catalog's own two wells keep their names
    assert [n for n, _ in known_minima(get("two_wells"))] == ["deep well", "shallow well"]


# ------------------------------------------------ 8. an f of less than float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_an_f_of_lower_precision_is_warned_of_once(dtype):
    land = _mine(f=lambda x: _bowl(x.to(dtype)))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = race(land, {"adam": {"lr": 0.1}}, steps=30, tune=[0.01, 0.1])
    name = str(dtype).replace("torch.", "")
    (message,) = _landscape_warnings(record)
    assert message.startswith(f"mine: f returned {name} for float64 points")
    assert result.losses["adam"].dtype == np.float64
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        race(_mine(), {"adam": {"lr": 0.1}}, steps=30)
    assert _landscape_warnings(record) == []


# ------------------------------------------------ 9. the race module's names


def test_typical_gap_and_diverged_are_reached_from_the_package():
    import optimlab.landscapes as landscapes
    import optimlab.landscapes.race  # noqa: F401  (the module, in sys.modules)

    assert callable(landscapes.race)  # the function, as before
    assert landscapes.typical_gap(get("quadratic")) == pytest.approx(6.7, abs=0.05)
    assert landscapes.diverged(get("quadratic"), torch.zeros(2, 2, dtype=torch.float64)) is False
    assert {"typical_gap", "diverged", "LandscapeWarning"} <= set(landscapes.__all__)


# ------------------------------------------------ the README's example


README_EXAMPLE = '''
import torch

import optimlab
from optimlab.landscapes import Landscape


def valley(x):                    # x: [..., 2] -> [...]: one value per point
    a, b = x[..., 0], x[..., 1]
    return (1 - a) ** 2 + 10 * (b - a**2) ** 2


known = Landscape(
    name="my_valley", dim=2, f=valley,
    domain=((-2.0, 2.0), (-1.0, 3.0)),    # per-axis bounds: the picture; starts lie inside
    minima=((1.0, 1.0),), min_value=0.0,  # the global minimizer(s), and f there
    challenges=("ravine",), start=(-1.5, 2.0),
    description="A curved valley, Rosenbrock's with a gentler wall.",
    log_scale=True)                       # values span decades: log-spaced contour colours

result = optimlab.race(known, {"gd": {"lr": 0.02}, "adam": {"lr": 0.1}, "lbfgs": {}},
                       steps=300)
print(result.table())                     # final loss, gap to min, dist to min, steps, diverged
result.plot().savefig(PNG)


def bumpy(x):                             # where its minimum lies is not known
    a, b = x[..., 0], x[..., 1]
    kink = torch.where(a > 0, torch.sin(3 * a), 0.5 * a)  # not `if a > 0:` (batched)
    return 0.5 * (a**2 + b**2) + kink


unknown = Landscape(
    name="bumpy", dim=2, f=bumpy, domain=((-3.0, 3.0), (-3.0, 3.0)),
    minima=(), min_value=None,            # no minimizer known, nor the minimum value
    challenges=(), start=(2.5, 2.0), description="A bowl with a wavy side.")

tuned = optimlab.race(unknown, {"gd": {}, "adam": {}}, steps=200, tune=True)
print(tuned.table())                      # gap and distance to the minimum: "-" (not known)
'''


def test_the_readme_example_runs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from optimlab.landscapes.plots import plt_close

    scope = {"PNG": str(tmp_path / "my_valley.png")}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no warning of the lab's
        exec(compile(README_EXAMPLE, "README", "exec"), scope)
    plt_close("all")
    assert (tmp_path / "my_valley.png").stat().st_size > 0
    known, tuned = scope["result"], scope["tuned"]
    assert not any(m.diverged for m in known.metrics.values())
    assert known.metrics["lbfgs"].gap < 1e-6 and known.metrics["adam"].gap < 1e-6
    assert all(math.isnan(m.gap) and not m.diverged for m in tuned.metrics.values())
    # the lowest value of bumpy is -0.125, at (-0.5, 0): both tuned runs find it
    assert all(m.final_loss == pytest.approx(-0.125, abs=1e-6) for m in tuned.metrics.values())
    printed = capsys.readouterr().out
    assert "gap to min" in printed and "no known minimizer: bumpy" in printed


def test_an_untagged_function_unbounded_below_is_warned_of_and_counts_no_steps_to_its_gap():
    """x**2 - y**2 given as the catalog's saddle is, but without the "saddle" tag: judged as a
    landscape with a minimum, its fall to -inf is diverged, and a LandscapeWarning says how to
    declare it unbounded below; the fall past min_value is no "step to the tolerance"."""
    saddle = _mine(f=lambda x: x[..., 0] ** 2 - x[..., 1] ** 2, name="untagged", minima=(),
                   min_value=-4.0, domain=((-2.0, 2.0), (-2.0, 2.0)), start=(0.5, 0.1))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = race(saddle, {"gd": {"lr": 0.5}}, steps=200)
    said = _landscape_warnings(record)
    assert any("tag the landscape 'saddle' or give min_value=-inf" in text for text in said), said
    metrics = result.metrics["gd"]
    assert metrics.diverged and metrics.steps_to_tol is None


@pytest.mark.parametrize("changed, message", [
    ({"f": 5}, r"^x: f must be a function of points \[\.\.\., dim\] to values \[\.\.\.\], got int$"),
    ({"f": None}, r"^x: f must be a function .*got NoneType$"),
    ({"challenges": "ravine"}, r"^x: challenges must be a sequence of tags, such as \('ravine',\)"),
    ({"name": 5}, r"^a landscape's name must be a non-empty str, got 5$"),
    ({"name": " "}, r"^a landscape's name must be a non-empty str, got ' '$"),
    ({"log_scale": "yes"}, r"^x: log_scale must be a bool, got 'yes'$"),
    ({"description": None}, r"^x: description must be a str, got None$"),
])
def test_a_landscape_of_the_wrong_kinds_is_refused_when_made(changed, message):
    """f=5 was taken and a race then said f failed on batched points; challenges="ravine"
    read as six unknown one-letter tags; log_scale="yes" and a name of 5 were kept."""
    from optimlab.landscapes.base import Landscape
    from optimlab.optim.base import ArgumentTypeError

    made = dict(name="x", dim=2, f=lambda x: (x ** 2).sum(-1), domain=((-1, 1), (-1, 1)),
                minima=((0, 0),), min_value=0.0, challenges=("ravine",), start=(0.5, 0.5),
                description="a bowl")
    Landscape(**made)
    with pytest.raises(ArgumentTypeError, match=message):
        Landscape(**{**made, **changed})


# ------------------------------------ a landscape of one's own, by "package.module:function"

_USER_LANDSCAPE = '''
from optimlab.landscapes import Landscape

def bowl(centre=1.0):
    return Landscape(name="my bowl", dim=2, f=lambda x: ((x - centre) ** 2).sum(-1),
                     domain=((-3.0, 3.0), (-3.0, 3.0)), minima=((centre, centre),),
                     min_value=0.0, challenges=(), start=(-1.5, -1.5), description="")

def not_one():
    return 42

VALUE = 3
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's in the current folder (fresh each test), as `python -m` sees it."""
    import sys

    name = f"my_landscapes_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(_USER_LANDSCAPE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_get_builds_a_landscape_of_ones_own_by_module_and_function(user_module):
    land = get(f"{user_module}:bowl", centre=0.5)
    assert isinstance(land, Landscape) and land.name == "my bowl"
    assert tuple(land.minima[0]) == (0.5, 0.5)
    result = race(f"{user_module}:bowl", {"adam": {"lr": 0.1}}, steps=200)
    assert result.metrics["adam"].final_loss < 1e-3


@pytest.mark.parametrize("suffix, params, message", [
    (":not_one", {}, r":not_one must return a Landscape, got int"),
    (":missing", {}, r"has no function 'missing' .*; expected a function returning an "
                     r"optimlab.landscapes.Landscape"),
    (":VALUE", {}, r":VALUE is not a function \(it is the int 3\)"),
    (":bowl", {"radius": 2}, r":bowl cannot be called with radius"),
    (":", {}, r"is not 'package.module:function'"),
])
def test_a_landscape_name_that_cannot_make_a_landscape_says_why(user_module, suffix, params,
                                                                message):
    with pytest.raises(ValueError, match=message):
        get(user_module + suffix, **params)


def test_a_landscape_module_that_does_not_import_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="cannot import landscape module 'no_such_module_42'"):
        get("no_such_module_42:bowl")


def test_optimlab_race_takes_a_landscape_of_ones_own(user_module, capsys):
    from optimlab.cli import main

    assert main(["race", f"{user_module}:bowl", "--optimizers", "adam", "--lr", "adam=0.1",
                 "--steps", "50", "--param", "centre=0.5"]) == 0
    assert "my bowl" in capsys.readouterr().out
