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
