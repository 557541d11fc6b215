"""The ``sparse`` exhibit: Adagrad's per-weight rates favour a rare feature."""

import functools

import pytest

from optimlab.exhibits import sparse_features
from optimlab.optim.palette import color
from tests.exhibits.figures import check_figure, drawn_styles, same_hue


@functools.cache
def result():
    """The exhibit runs once per session; the tests below only read its numbers."""
    return sparse_features.sparse()


def test_sparse_adagrad_favours_the_rare_feature():
    demo = result()
    assert demo.features == ("frequent", "rare")
    assert demo.presence[1] < 0.05 < 0.5 < demo.presence[0]
    ada = {f: demo.final_eff_lr("adagrad", f) for f in demo.features}
    sgd = {f: demo.final_eff_lr("sgd", f) for f in demo.features}
    assert ada["rare"] > ada["frequent"]
    assert sgd["rare"] == sgd["frequent"] == demo.lr
    # the effective rate is Adagrad's own accumulator at work: lr / (sqrt(G) + eps)
    assert ada["rare"] > demo.lr > ada["frequent"]
    # and the rare weight ends closer to the truth than with SGD
    err = {opt: abs(demo.final_weight(opt, "rare") - demo.true_w[1]) for opt in ("sgd", "adagrad")}
    assert err["adagrad"] < err["sgd"]
    table = demo.table()
    assert "rare" in table and "frequent" in table


def test_sparse_needs_one_presence_per_weight():
    with pytest.raises(ValueError, match="one entry per feature"):
        sparse_features.sparse(presence=(0.9, 0.02), true_w=(1.0,))


def test_sparse_figure():
    check_figure(result())


def test_sparse_figure_draws_each_optimizer_in_its_colour():
    """SGD and Adagrad in their catalog colours (the features were C0 and C1, GD's and
    momentum's); a feature is a line style."""
    pytest.importorskip("matplotlib")
    from optimlab.landscapes.plots import plt_close

    fig = result().plot()
    weights, rates = drawn_styles(fig, "weight:"), drawn_styles(fig, "rate:")
    plt_close(fig)
    assert len(weights) == 4 and len(rates) == 3
    for key, (c, ls) in {**weights, **rates}.items():
        opt = key.split(":")[0]
        assert same_hue(c, color(opt)), key
        if key.endswith("frequent"):
            assert (c, ls) == (color(opt), "-")
        elif key.endswith("rare"):
            assert c != color(opt) and ls == "--"


@pytest.mark.parametrize("kwargs, match", [
    ({"batch": 0}, "batch must be an integer >= 1"),  # was ZeroDivisionError
    ({"n": 5}, r"n must be an integer >= batch \(10\)"),  # was a reshape RuntimeError
    ({"lr": -1.0}, "lr must be a finite number > 0"),
    ({"presence": (0.9, 1.5)}, "strictly between 0 and 1"),
])
def test_sparse_says_which_argument_is_wrong(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sparse_features.sparse(**kwargs)
