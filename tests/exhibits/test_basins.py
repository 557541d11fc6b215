"""The ``basins`` exhibit: which minimum each optimizer reaches from a grid of starts."""

import functools

import numpy as np
import pytest
import torch

from optimlab.exhibits import basins
from optimlab.exhibits.basins import DIVERGED, NOT_SETTLED, known_minima
from optimlab.landscapes import Landscape, get, race
from optimlab.landscapes.functions import two_wells_minima
from tests.exhibits.figures import check_figure


@functools.cache
def two_wells():
    """The exhibit with its defaults runs once per session."""
    return basins()


def _double_well() -> Landscape:
    """(x^2 - 1)^2 + y^2: minima at (-1, 0) and (1, 0), the basins split by x = 0."""
    return Landscape("double well", 2, lambda x: (x[..., 0] ** 2 - 1) ** 2 + x[..., 1] ** 2,
                     ((-2.0, 2.0), (-2.0, 2.0)), ((-1.0, 0.0), (1.0, 0.0)), 0.0,
                     ("local-minima",), (0.5, 0.5), "two equal wells")


def test_a_known_answer_the_sign_of_x_decides():
    demo = basins(_double_well(), {"gd": {"lr": 0.05}}, grid=4, steps=200,
                  minima=[("left", (-1.0, 0.0)), ("right", (1.0, 0.0))])
    # cell centres -1.5, -0.5, 0.5, 1.5 on each axis, row by row with y outer
    np.testing.assert_array_equal(demo.xs, [-1.5, -0.5, 0.5, 1.5])
    assert demo.starts.shape == (16, 2)
    want = np.where(demo.starts[:, 0] < 0, 0, 1)
    np.testing.assert_array_equal(demo.basin["gd"], want)
    assert demo.fractions()["gd"] == {"left": 0.5, "right": 0.5, "not settled": 0.0,
                                      "diverged": 0.0}
    # GD's error in y shrinks by 1 - 0.05 * 2 = 0.9 a step (in x by 0.6): from |y| <= 1.5,
    # 1.5 * 0.9^200 = 1.06e-9 after 200 steps (measured 1.06e-9); atol 1e-6 leaves 1000x
    np.testing.assert_allclose(np.abs(demo.ends["gd"]), [[1.0, 0.0]] * 16, atol=1e-6)
    assert "-> left" in demo.table() and "50%" in demo.table()


def test_too_few_steps_are_not_settled_and_too_big_a_rate_diverges():
    land = _double_well()
    slow = basins(land, {"gd": {"lr": 1e-4}}, grid=3, steps=5)
    assert (slow.basin["gd"] == NOT_SETTLED).all()
    wild = basins(land, {"gd": {"lr": 10.0}}, grid=4, steps=30)
    assert (wild.basin["gd"] == DIVERGED).all()
    assert wild.fractions()["gd"]["diverged"] == 1.0


def test_each_start_runs_as_its_own_race():
    demo = two_wells()
    land = get("two_wells")
    for i in (0, 112, 224):
        alone = race(land, {"adam": {"lr": 0.05}}, start=demo.starts[i], steps=demo.steps)
        np.testing.assert_array_equal(demo.ends["adam"][i], alone.paths["adam"][-1])


def test_two_wells_basins():
    demo = two_wells()
    assert [name for name, _ in demo.minima] == ["deep well", "shallow well"]
    assert demo.starts.shape == (225, 2) and set(demo.basin) == {"gd", "momentum", "rmsprop",
                                                               "adam"}
    shares = demo.fractions()
    for label, share in shares.items():
        assert sum(share.values()) == pytest.approx(1.0)
        assert share["diverged"] == 0.0 and share["not settled"] == 0.0
        assert 0.5 < share["deep well"] < 0.8  # the deep well's basin is the larger one
    # starts next to a well end in it, for every optimizer
    deep, shallow = two_wells_minima()
    for point, index in ((deep, 0), (shallow, 1)):
        near = np.linalg.norm(demo.starts - np.asarray(point), axis=1).argmin()
        assert all(basin[near] == index for basin in demo.basin.values())
    # heavy-ball momentum rolls into the deep well from more starts than GD; RMSprop and
    # Adam end in the shallow one from more
    assert shares["momentum"]["deep well"] > shares["gd"]["deep well"] + 0.03
    assert shares["rmsprop"]["shallow well"] > shares["gd"]["shallow well"]
    assert shares["adam"]["shallow well"] > shares["gd"]["shallow well"]
    # every basin is classified by the nearest minimum: the end points are at it
    ends = demo.ends["gd"]
    targets = np.asarray([p for _, p in demo.minima])[demo.basin["gd"]]
    # GD's 300 steps reach the minima to rounding (measured 5e-16); 1e-3 only has to tell
    # the two wells (3.4 apart) from each other, and leaves 12 orders of room
    assert np.linalg.norm(ends - targets, axis=1).max() < 1e-3


def test_himmelblau_has_four_named_minima():
    land = get("himmelblau")
    names = [name for name, _ in known_minima(land)]
    assert names[0] == "(3, 2)" and len(names) == 4
    demo = basins("himmelblau", grid=6, steps=150)
    for share in demo.fractions().values():
        assert share["not settled"] + share["diverged"] == 0.0
        assert all(share[name] > 0 for name in names)
    x = torch.tensor([3.0, 2.0], dtype=torch.float64)
    assert float(land(x)) == 0.0


@pytest.mark.parametrize("name, local", [("styblinski_tang", 3), ("six_hump_camel", 4),
                                         ("goldstein_price", 3)])
def test_a_run_that_ends_in_a_local_minimum_is_named_by_it(name, local):
    """Every catalog landscape whose local minima the audit found lists them: each is a
    minimum (gradient 0 in float64 rounding, Hessian positive definite, above f*), and
    gradient descent from a grid of starts ends in a named one, not "not settled"."""
    land = get(name)
    named = known_minima(land)
    assert len(land.local_minima) == local and len(named) == len(land.minima) + local
    assert all(n.endswith(" local") for n, _ in named[len(land.minima):])
    for point in land.local_minima:
        x = torch.tensor(point, dtype=torch.float64)
        assert float(land.grad(x).norm()) < 1e-9 * max(1.0, abs(float(land(x))))
        hessian = torch.autograd.functional.hessian(land.f, x)
        assert bool((torch.linalg.eigvalsh(hessian) > 0).all())
        assert float(land(x)) > land.min_value
    if name == "styblinski_tang":  # the audit's case: 75% of starts were "not settled"
        demo = basins(name, optimizers={"gd": {"lr": 0.01}}, grid=8, steps=400)
        share = demo.fractions()["gd"]
        assert share["not settled"] == 0.0 and share["diverged"] == 0.0
        assert all(share[n] > 0 for n, _ in named)  # every one of the four wells


def test_local_minima_are_checked_and_kept_as_tuples():
    land = Landscape(name="bowl", dim=2, f=lambda x: (x ** 2).sum(-1), domain=((-1, 1), (-1, 1)),
                     minima=((0.0, 0.0),), min_value=0.0, challenges=(), start=(0.5, 0.5),
                     description="", local_minima=[[0.5, 0.5]])
    assert land.local_minima == ((0.5, 0.5),)
    with pytest.raises(ValueError, match="each minimum must be 2 finite numbers"):
        Landscape(name="bowl", dim=2, f=lambda x: (x ** 2).sum(-1), domain=((-1, 1), (-1, 1)),
                  minima=((0.0, 0.0),), min_value=0.0, challenges=(), start=(0.5, 0.5),
                  description="", local_minima=[(0.5, float("nan"))])


@pytest.mark.parametrize("kwargs, match", [
    ({"landscape": "rosenbrock_nd"}, "2-D landscape"),
    ({"landscape": "rosenbrock"}, "no default optimizers"),
    ({"grid": 1}, "grid"),
    ({"grid": 2.5}, "grid"),
    ({"steps": 0}, "steps"),
    ({"radius": -1.0}, "radius"),
    ({"optimizers": {}}, "non-empty"),
    ({"minima": []}, "minima"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        basins(**kwargs)


def test_basins_figure():
    check_figure(two_wells())


@pytest.mark.parametrize("optimizers, match", [
    ({"adam": {"lrr": 0.1}}, r"basins label 'adam': 'lrr' is not a hyperparameter of Adam .*"
                             r"did you mean 'lr'\?"),
    ({"fast": {"name": "adam", "lr": -1.0}}, r"basins label 'fast': lr must be > 0"),
    ({"adam": {"lr": [0.1, 0.2]}}, r"basins label 'adam': lr must be one value"),
    ({"adam": 0.1}, r"basins label 'adam': hyperparameters must be a dict"),
])
def test_optimizer_hyperparameters_are_checked_up_front_naming_the_label(optimizers, match):
    """A misspelt key was a raw TypeError from the constructor ("member 0: ...")."""
    with pytest.raises(ValueError, match=match):
        basins(optimizers=optimizers, grid=3, steps=5)


def test_numpy_integers_are_taken_as_race_takes_them():
    """grid=np.int64(5) was refused ("grid must be an integer") though race takes them.
    (A minimum's point may be an array or a list, as before.)"""
    demo = basins(_double_well(), {"gd": {"lr": 0.05}}, grid=np.int64(3), steps=np.int32(5),
                  minima=[("left", np.array([-1.0, 0.0])), ("right", [1, 0])])
    assert (demo.grid, demo.steps) == (3, 5)
    assert demo.minima == (("left", (-1.0, 0.0)), ("right", (1.0, 0.0)))
    assert type(demo.grid) is int and type(demo.steps) is int
    assert demo.starts.shape == (9, 2)


@pytest.fixture
def no_run(monkeypatch):
    """basins must refuse its input before any run starts."""
    import importlib

    module = importlib.import_module("optimlab.exhibits.basins")  # (basins: the function)

    def refuse(*args, **kwargs):
        raise AssertionError("basins ran")

    monkeypatch.setattr(module, "run_starts", refuse)


def test_a_landscape_without_known_minima_asks_for_them(no_run):
    """It said "minima must be (name, (x, y)) pairs, at least one", though none were given."""
    with pytest.raises(ValueError, match=r"^landscape 'saddle' has no known minimum; pass "
                                         r"minima=\[\(name, \(x, y\)\), \.\.\.\]$"):
        basins("saddle", grid=3, steps=10, optimizers={"adam": {}})


@pytest.mark.parametrize("minima, error, match", [
    ([("a", 5)], ValueError, r"^minima\[0\] must be a \(name, \(x, y\)\) pair: a str and two "
                             r"finite numbers, got \('a', 5\)$"),  # was 'int' ... not iterable
    ([("a", (0.0, 0.0)), 5], ValueError, r"^minima\[1\] must be"),
    ([("a", "xy")], ValueError, r"^minima\[0\] must be"),
    ([("a", (0.0, float("nan")))], ValueError, r"^minima\[0\] must be .*finite"),
    ([("a", (0.0, "1"))], ValueError, r"^minima\[0\] must be"),
    ([("a", (0.0, 0.0, 0.0))], ValueError, r"^minima\[0\] must be"),
    ([(None, (0.0, 0.0))], ValueError, r"^minima\[0\] must be .*a str"),
    (5, TypeError, r"^minima must be a list of \(name, \(x, y\)\) pairs, got int$"),
    ("ab", TypeError, r"^minima must be a list"),
])
def test_each_minimum_is_checked_naming_it(no_run, minima, error, match):
    with pytest.raises(error, match=match):
        basins(grid=3, steps=10, minima=minima)
