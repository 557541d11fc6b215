"""The ``gd-variants`` exhibit: batch, mini-batch and stochastic gradient descent."""

import functools

import numpy as np
import pytest
import torch

from optimlab.exhibits import batch_sizes
from optimlab.optim.palette import color
from tests.exhibits.figures import check_figure, drawn_styles, same_hue


@functools.cache
def result():
    """The exhibit runs once per session; the tests below only read its numbers."""
    return batch_sizes.gd_variants()


def test_gd_variants_orderings():
    demo = result()
    runs = demo.runs
    assert [r.batch for r in runs.values()] == [demo.n, 32, 1]
    # the same number of samples processed by all
    assert {int(r.samples[-1]) for r in runs.values()} == {demo.n * demo.epochs}
    # all stable: they end near the least-squares minimum
    for r in runs.values():
        assert r.loss[-1] < 1.1 * demo.optimum
    # per gradient evaluation the small batches are ahead, per update the full batch is
    evals = [demo.evals_to_target(k) for k in ("stochastic", "mini-batch", "batch")]
    updates = [demo.updates_to_target(k) for k in ("batch", "mini-batch", "stochastic")]
    assert None not in evals and None not in updates
    assert evals == sorted(evals) and len(set(evals)) == 3
    assert updates == sorted(updates) and len(set(updates)) == 3
    # the noise floor of a constant lr: stochastic ends above the full batch
    assert runs["stochastic"].loss[-1] > runs["batch"].loss[-1]


def test_full_batch_is_plain_gradient_descent():
    """The batch variant's losses are those of w <- w - lr * grad, written out by hand."""
    n, d, epochs, lr = 64, 3, 5, 0.5
    demo = batch_sizes.gd_variants(n=n, d=d, epochs=epochs, variants={"batch": (None, lr)})
    gen = torch.Generator().manual_seed(0)  # the exhibit's data, drawn in the same order
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    w_true = torch.randn(d, generator=gen, dtype=torch.float64)
    y = X @ w_true + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)
    w, losses = torch.zeros(d, dtype=torch.float64), []
    for _ in range(epochs + 1):
        losses.append(float(0.5 * ((X @ w - y) ** 2).mean()))
        w = w - lr * X.T @ (X @ w - y) / n
    run = demo.runs["batch"]
    assert run.updates == epochs and run.samples.tolist() == [n * k for k in range(epochs + 1)]
    # the exhibit sums the same 64-term products in its own order: a few ulps an epoch, 5
    # epochs; measured 8e-16 relative, rtol 1e-12 leaves 3 orders of room
    np.testing.assert_allclose(run.loss, losses, rtol=1e-12)


def test_gd_variants_figure():
    check_figure(result())


def test_gd_variants_figure_draws_gd_and_sgd_in_their_colours():
    """Full batch in GD's catalog colour; mini-batch and stochastic in shades of SGD's
    (they were C0, C1, C2: GD's, momentum's and Adam's)."""
    pytest.importorskip("matplotlib")
    from optimlab.landscapes.plots import plt_close

    fig = result().plot()
    drawn = drawn_styles(fig, "updates:")
    assert drawn == drawn_styles(fig, "evals:")
    plt_close(fig)
    assert drawn["batch"] == (color("gd"), "-")
    assert drawn["mini-batch"] == (color("sgd"), "-")
    assert same_hue(drawn["stochastic"][0], color("sgd")) and drawn["stochastic"][1] == "--"


def test_a_batch_larger_than_the_data_is_capped_and_said():
    """With 16 samples the mini-batch row said batch 32, though each update used all 16."""
    demo = batch_sizes.gd_variants(n=16)
    run = demo.runs["mini-batch"]
    assert run.batch == 16 and run.asked == 32 and run.updates == demo.epochs
    headers, rows = demo.rows()
    row = next(r for r in rows if r[0] == "mini-batch")
    assert row[headers.index("batch")] == "16"
    assert "mini-batch: batch 32 is more than the 16 samples; each update used all 16" \
        in demo.table()
    assert demo.runs["batch"].asked is None and demo.runs["stochastic"].asked is None


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, r"^epochs must be an integer >= 1, got 0$"),
    ({"n": 0}, r"^n must be an integer >= 1, got 0$"),
    ({"n": 2.5}, r"^n must be an integer >= 1, got 2.5$"),
    ({"d": True}, r"^d must be an integer >= 1, got True$"),
    ({"noise": -1.0}, r"^noise must be a finite number >= 0, got -1.0$"),
    ({"variants": {}}, r"^variants must be a non-empty dict"),
    ({"variants": {"b": 32}}, r"^variants\['b'\] must be a pair"),
    ({"variants": {"b": (0, 0.1)}}, r"^variants\['b'\] batch must be an integer >= 1, got 0$"),
    ({"variants": {"b": (2.5, 0.1)}}, r"^variants\['b'\] batch must be an integer >= 1"),
    ({"variants": {"b": (None, 0.0)}}, r"^variants\['b'\] lr must be a finite number > 0, "
                                       r"got 0.0$"),
    ({"variants": {"b": (None, float("nan"))}}, r"^variants\['b'\] lr must be a finite"),
    ({"variants": {"b": (None, True)}}, r"^variants\['b'\] lr must be a finite number > 0"),
])
def test_bad_arguments_are_refused_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        batch_sizes.gd_variants(**kwargs)


def test_a_divergent_variant_is_marked():
    demo = batch_sizes.gd_variants(n=64, d=3, epochs=3, variants={"ok": (None, 0.5),
                                                                  "wild": (1, 5.0)})
    assert demo.runs["wild"].diverged and not demo.runs["ok"].diverged
    headers, rows = demo.rows()
    final = {r[0]: r[headers.index("final loss")] for r in rows}
    assert final["wild"].endswith("(diverged)") and "diverged" not in final["ok"]
    assert "wild: diverged at lr 5" in demo.table()
