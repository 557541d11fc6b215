"""What the exhibits compute, print and draw that no other test pinned: each test here failed
on a hand-made mutant of ``src/optimlab/exhibits`` (a column swapped, a series off by one,
an argument or the seed not passed through) that every other test of this folder let pass."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from optimlab.exhibits import batch_sizes, landscape, schedules, sparse_features
from tests.exhibits.figures import drawn, lines_by_gid


def table_cells(text: str, rows: int | None = None) -> tuple[list[str], list[list[str]]]:
    """The headers and rows of a :func:`~optimlab._table.text_table` (read by the dashed
    rule's column spans); ``rows``: how many lines under the rule are rows (the rest are
    notes)."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line and set(line) <= {"-", " "})
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[rule])]

    def cells(line: str) -> list[str]:
        return [line[a:b].strip() for a, b in spans]

    body = [line for line in lines[rule + 1:] if line.strip()]
    return cells(lines[rule - 1]), [cells(line) for line in body[:rows]]


# -- gd-variants ----------------------------------------------------------------------------


def test_a_mini_batch_run_with_a_short_last_batch_is_sgd_written_out():
    """The mini-batch variant, by hand: the seeded data and per-epoch shuffles, a gradient of
    0.5 * mean squared error over each batch (the last one shorter), the examples counted
    per update, the least-squares minimum and the target 1% of the way to it."""
    n, d, epochs, batch, lr, seed = 20, 3, 2, 8, 0.1, 3
    demo = batch_sizes.gd_variants(n=n, d=d, epochs=epochs, seed=seed,
                                   variants={"mb": (batch, lr)})
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    w_true = torch.randn(d, generator=gen, dtype=torch.float64)
    y = X @ w_true + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)
    orders = [torch.randperm(n, generator=gen) for _ in range(epochs)]

    def loss(w):
        return float(0.5 * ((X @ w - y) ** 2).mean())

    w, losses, samples = torch.zeros(d, dtype=torch.float64), [], [0]
    losses.append(loss(w))
    for order in orders:
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            xb, yb = X[idx], y[idx]
            w = w - lr * xb.T @ (xb @ w - yb) / len(idx)
            losses.append(loss(w))
            samples.append(samples[-1] + len(idx))
    run = demo.runs["mb"]
    assert run.samples.tolist() == samples == [0, 8, 16, 20, 28, 36, 40]
    # the exhibit sums the same products in another order: ulps a step, 6 steps
    np.testing.assert_allclose(run.loss, losses, rtol=1e-12)
    w_star = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    assert demo.optimum == pytest.approx(loss(w_star), rel=1e-12)
    assert demo.initial == pytest.approx(loss(torch.zeros(d, dtype=torch.float64)), rel=1e-12)
    assert demo.target == pytest.approx(demo.optimum + 0.01 * (demo.initial - demo.optimum))
    # no run goes below the least-squares minimum
    assert run.loss.min() >= demo.optimum * (1 - 1e-12)


def test_the_gd_variants_table_cells_are_each_runs_numbers():
    demo = batch_sizes.gd_variants(n=64, d=3, epochs=5, variants={"batch": (None, 0.5),
                                                                  "mini-batch": (16, 0.2),
                                                                  "stochastic": (1, 0.05)})
    headers, rows = demo.rows()
    assert headers[:6] == ["variant", "batch", "lr", "updates", "gradient evals", "final loss"]
    assert headers[6].startswith("updates to <") and headers[7].startswith("evals to <")
    reached = 0
    for row in rows:
        label = row[0]
        run = demo.runs[label]
        k = demo.updates_to_target(label)
        assert row[3] == str(run.updates) and row[4] == str(int(run.samples[-1]))
        assert row[6] == ("never" if k is None else str(k))
        if k is not None:
            reached += 1
            # the examples seen when the loss first fell below the target: after update k
            assert demo.evals_to_target(label) == int(run.samples[k]) == k * run.batch
            assert row[7] == str(k * run.batch)
    assert reached == 3


def test_the_gd_variants_figure_draws_each_runs_losses_on_its_axes():
    demo = batch_sizes.gd_variants(n=64, d=3, epochs=3)
    with drawn(demo) as fig:
        lines = lines_by_gid(fig)
        for label, run in demo.runs.items():
            per_update, per_eval = lines[f"updates:{label}"], lines[f"evals:{label}"]
            np.testing.assert_array_equal(per_update.get_xdata(), np.arange(1, run.updates + 1))
            np.testing.assert_array_equal(per_update.get_ydata(), run.loss[1:])
            np.testing.assert_array_equal(per_eval.get_xdata(), run.samples / demo.n)  # epochs
            np.testing.assert_array_equal(per_eval.get_ydata(), run.loss)
        for ax in fig.axes[:2]:
            minimum = [line for line in ax.lines if line.get_label() == "least-squares minimum"]
            assert len(minimum) == 1 and minimum[0].get_ydata()[0] == demo.optimum


def test_a_batch_of_exactly_the_samples_is_not_said_to_be_capped():
    demo = batch_sizes.gd_variants(n=32, d=3, epochs=1)
    assert demo.runs["mini-batch"].asked is None and demo.runs["mini-batch"].batch == 32
    assert "more than the" not in demo.table()


def test_gd_variants_takes_a_noise_of_zero_and_refuses_an_infinite_one():
    demo = batch_sizes.gd_variants(n=16, d=2, epochs=1, noise=0.0)
    assert demo.optimum == pytest.approx(0.0, abs=1e-20)  # y = X w exactly
    with pytest.raises(ValueError, match=r"^noise must be a finite number >= 0, got inf$"):
        batch_sizes.gd_variants(n=16, d=2, epochs=1, noise=math.inf)


def test_a_variant_that_is_not_a_pair_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"^variants\['b'\] must be a pair"):
        batch_sizes.gd_variants(n=16, d=2, epochs=1, variants={"b": (None, 0.1, 3)})


# -- seeds ------------------------------------------------------------------------------------


def test_every_seeded_exhibit_draws_from_its_seed():
    """Two seeds, two draws: the seed reaches the generator (each exhibit seeded 0 by
    default, so a seed not passed on went unnoticed)."""
    a, b = schedules.ema(n=10, seed=1), schedules.ema(n=10, seed=2)
    assert not np.array_equal(a.series, b.series)
    a, b = sparse_features.sparse(n=50, seed=1), sparse_features.sparse(n=50, seed=2)
    assert not np.array_equal(a.weights["sgd"], b.weights["sgd"])
    a = batch_sizes.gd_variants(n=8, d=2, epochs=1, seed=1)
    b = batch_sizes.gd_variants(n=8, d=2, epochs=1, seed=2)
    assert a.optimum != b.optimum
    a, b = landscape.saddle(steps=5, seed=1), landscape.saddle(steps=5, seed=2)
    assert not np.array_equal(a.races[1].paths["gd + noise"], b.races[1].paths["gd + noise"])
    # the noiseless race does not depend on the seed
    np.testing.assert_array_equal(a.races[0].paths["gd"], b.races[0].paths["gd"])


# -- effective-lr -----------------------------------------------------------------------------


def test_the_effective_lr_table_puts_each_rate_in_its_column():
    demo = schedules.effective_lr(steps=100, at=(1, 10, 100))
    headers, rows = table_cells(demo.table())
    assert headers[1].startswith("Adagrad") and headers[2].startswith("RMSprop")
    assert [row[0] for row in rows] == ["1", "10", "100"]
    for row in rows:
        t = int(row[0])
        assert row[1] == f"{demo.adagrad[t - 1]:.4f}" and row[2] == f"{demo.rmsprop[t - 1]:.4f}"
    # at step 1 they differ (0.0200 against 0.0632), so a swap shows
    assert rows[0][1] == "0.0200" and rows[0][2] == "0.0632"


def test_the_effective_lr_figure_draws_each_optimizers_rates():
    demo = schedules.effective_lr(lr=0.1, grad=-2.0, steps=50, at=(1, 50))
    with drawn(demo) as fig:
        lines = {line.get_label().split(" ")[0]: line for line in fig.axes[0].lines}
        np.testing.assert_array_equal(lines["Adagrad"].get_ydata(), demo.adagrad)
        np.testing.assert_array_equal(lines["RMSprop"].get_ydata(), demo.rmsprop)
        # the reference lr/|g| is positive for a negative gradient (a log axis)
        assert lines["lr/|g|"].get_ydata()[0] == pytest.approx(0.05)


def test_effective_lr_refuses_step_0():
    """Step 0 read index -1: the last step's rate, shown as step 0's."""
    with pytest.raises(ValueError, match="steps to show must lie in 1..5"):
        schedules.effective_lr(steps=5, at=(0, 5))


# -- ema ------------------------------------------------------------------------------------


def test_the_ema_table_shows_uncorrected_and_corrected_in_their_columns():
    demo = schedules.ema(n=4, rows=3)
    headers, rows = table_cells(demo.table())
    assert len(rows) == 3  # rows asked for
    assert headers == ["t", "x_t", "b=0.5 m_t", "b=0.5 corrected", "b=0.9 m_t",
                       "b=0.9 corrected", "b=0.98 m_t", "b=0.98 corrected"]
    for i, row in enumerate(rows):
        assert row[1] == f"{demo.series[i]:.3f}"
        for k, b in enumerate(demo.betas):
            assert row[2 + 2 * k] == f"{demo.raw[b][i]:.3f}"
            assert row[3 + 2 * k] == f"{demo.corrected[b][i]:.3f}"
    # fewer samples than rows: as many rows as samples
    assert len(table_cells(schedules.ema(n=2).table())[1]) == 2


def test_the_ema_figure_draws_each_average_under_its_label():
    demo = schedules.ema(n=20)
    with drawn(demo) as fig:
        left = {line.get_label(): line for line in fig.axes[0].lines}
        right = {line.get_label(): line for line in fig.axes[1].lines}
        t = np.arange(1, 21)
        for b in demo.betas:
            np.testing.assert_array_equal(left[f"beta={b:g}, corrected"].get_ydata(),
                                          demo.corrected[b])
            np.testing.assert_array_equal(left[f"beta={b:g}, uncorrected"].get_ydata(),
                                          demo.raw[b])
            np.testing.assert_allclose(right[f"beta={b:g}"].get_ydata(), 1 - b ** t)


# -- sparse -----------------------------------------------------------------------------------


def test_sparse_is_adagrad_and_sgd_written_out():
    """The seeded data, one pass in batches, each optimizer's step by hand, Adagrad's rate
    lr / (sqrt(sum of squared gradients) + eps), the presence measured on the samples."""
    n, batch, lr, seed = 60, 10, 0.5, 4
    presence, true_w = (0.9, 0.1), (1.0, 2.0)
    demo = sparse_features.sparse(n=n, batch=batch, lr=lr, presence=presence,
                                  true_w=true_w, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    probs = torch.tensor(presence, dtype=torch.float64)
    X = (torch.rand(n, 2, generator=gen, dtype=torch.float64) < probs).double()
    y = X @ torch.tensor(true_w, dtype=torch.float64) \
        + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)
    steps = n // batch
    np.testing.assert_array_equal(demo.presence, X.mean(0).numpy())
    np.testing.assert_array_equal(demo.active, X.reshape(steps, batch, 2).sum(1).numpy())
    for key in ("sgd", "adagrad"):
        w, G, path, rates = torch.zeros(2, dtype=torch.float64), 0.0, [], []
        path.append(w)
        for s in range(steps):
            xb, yb = X[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch]
            g = xb.T @ (xb @ w - yb) / batch  # of 0.5 * the batch's mean squared error
            if key == "adagrad":
                G = G + g * g
                rate = lr / (G.sqrt() + 1e-10)
            else:
                rate = torch.full_like(w, lr)
            w = w - rate * g
            path.append(w)
            rates.append(rate)
        # a few ulps a step, 6 steps
        np.testing.assert_allclose(demo.weights[key], torch.stack(path).numpy(), rtol=1e-12)
        np.testing.assert_allclose(demo.eff_lr[key], torch.stack(rates).numpy(), rtol=1e-12)
        for j, feat in enumerate(demo.features):
            assert demo.final_eff_lr(key, feat) == demo.eff_lr[key][-1, j]
            assert demo.final_weight(key, feat) == demo.weights[key][-1, j]


def test_the_sparse_table_cells_are_each_features_numbers():
    demo = sparse_features.sparse(n=200)
    headers, rows = table_cells(demo.table())
    assert headers == ["feature", "present in", "samples seen", "true w", "SGD w",
                       "Adagrad w", "SGD eff. lr", "Adagrad eff. lr"]
    for j, row in enumerate(rows):
        assert row[0] == demo.features[j]
        assert row[1] == f"{100 * demo.presence[j]:.1f}%"
        assert row[2] == str(int(demo.active[:, j].sum()))
        assert row[4] == f"{demo.weights['sgd'][-1, j]:.3f}"
        assert row[5] == f"{demo.weights['adagrad'][-1, j]:.3f}"
        assert row[7] == f"{demo.eff_lr['adagrad'][-1, j]:.4f}"


def test_the_sparse_figure_labels_each_optimizers_lines_with_its_name():
    demo = sparse_features.sparse(n=200)
    with drawn(demo) as fig:
        lines = lines_by_gid(fig)
        names = {"sgd": "SGD", "adagrad": "Adagrad"}
        for opt, name in names.items():
            for j, feat in enumerate(demo.features):
                line = lines[f"weight:{opt}:{feat}"]
                assert line.get_label().startswith(f"{name}, {feat} (")
                np.testing.assert_array_equal(line.get_ydata(), demo.weights[opt][:, j])
        # the dotted lines are the true weights, one per feature
        dotted = sorted(line.get_ydata()[0] for line in fig.axes[0].lines
                        if line.get_linestyle() == ":")
        assert dotted == sorted(demo.true_w.tolist())


def test_sparse_refuses_a_presence_of_zero():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        sparse_features.sparse(presence=(0.9, 0.0))


# -- ill-conditioned and ravine-alignment ---------------------------------------------------


def test_the_ill_conditioned_table_cells_are_each_races_numbers():
    demo = landscape.ill_conditioned(steps=40)
    labels = demo.race.labels
    headers, rows = table_cells(demo.table(), rows=len(labels))
    assert headers[4] == "aligned: final f" and headers[6] == "rotated: final f"
    assert headers[7] == "theta2 sign flips (first 20)"
    for row, label in zip(rows, labels):
        assert row[0] == label
        assert row[4] == f"{demo.race.metrics[label].final_loss:.3g}"
        assert row[6] == f"{demo.rotated.metrics[label].final_loss:.3g}"
        lag = demo.lag[label]
        assert row[7] == str(demo.flips[label])
        assert row[8] == ("-" if lag is None else f"{lag:.3f}")
    # flips: sign changes of theta2 over the first 20 steps; lag: |theta1| when |theta2|
    # first drops below 0.1 (both on the aligned ravine)
    for label in labels:
        path = np.asarray(demo.race.paths[label])
        signs = np.sign(path[:21, 1])
        assert demo.flips[label] == np.count_nonzero(signs[1:] != signs[:-1])
        below = np.flatnonzero(np.abs(path[:, 1]) < 0.1)
        assert demo.lag[label] == (abs(path[below[0], 0]) if below.size else None)
    # where the two ravines differ, the cells do: Adam at 40 steps
    adam = rows[labels.index("adam")]
    assert adam[4] != adam[6]
    # the reference line is SGD near its stability limit
    assert any(line.startswith("f<0.001, axis-aligned vs rotated: sgd, near limit in ")
               for line in demo.findings())


def test_the_ill_conditioned_arguments_reach_both_ravines():
    demo = landscape.ill_conditioned(steps=5, tol=0.5)
    assert demo.race.tol == demo.rotated.tol == 0.5
    assert demo.race.steps == demo.rotated.steps == 5


def test_the_ill_conditioned_figure_draws_each_ravines_runs():
    """Axis-aligned solid and rotated dashed (as the y label says), each panel its own
    race's paths."""
    demo = landscape.ill_conditioned(steps=30)
    with drawn(demo) as fig:
        for label in demo.race.labels:
            for race, name, style in ((demo.race, "aligned", "-"),
                                      (demo.rotated, "rotated", "--")):
                line = next(line for line in fig.axes[2].lines
                            if line.get_gid() == f"loss:{label}, {name}")
                assert line.get_linestyle() == style
                np.testing.assert_allclose(line.get_ydata(), race.losses[label])
            for ax, race in zip(fig.axes[:2], (demo.race, demo.rotated)):
                line = next(line for line in ax.lines if line.get_gid() == f"path:{label}")
                path = np.asarray(race.paths[label])
                np.testing.assert_array_equal(line.get_xdata(), path[:, 0])
                np.testing.assert_array_equal(line.get_ydata(), path[:, 1])


def test_a_rate_at_the_grid_edge_on_either_bowl_is_marked():
    def race(edge):
        return SimpleNamespace(labels=["adam"], tuning_edge=edge,
                               hparams={"adam": {"name": "adam", "lr": 1.0}},
                               metrics={"adam": SimpleNamespace(steps_to_tol=None,
                                                                final_loss=0.1)})

    rows = landscape._pair_rows(race({}), race({"adam": "high"}))
    assert rows[0][2] == "1 (both) (grid edge)"


def test_final_losses_a_thousandth_apart_are_not_a_tie():
    def race(loss):
        return SimpleNamespace(tol=1e-3, labels=["rmsprop"],
                               hparams={"rmsprop": {"name": "rmsprop"}},
                               metrics={"rmsprop": SimpleNamespace(steps_to_tol=None,
                                                                   final_loss=loss)})

    lines = landscape._findings(race(1.0), race(1.001), None)
    assert lines[-1].endswith(": better aligned")


def test_ravine_alignment_uses_its_angle_and_tolerance_and_says_them():
    demo = landscape.ravine_alignment(kappa=20.0, angle=30.0, steps=20, optimizers=("sgd",),
                                      tol=0.05)
    assert demo.rotated.landscape.params == {"kappa": 20.0, "angle": 30.0}
    assert demo.aligned.tol == demo.rotated.tol == 0.05
    assert demo.title.startswith("A bowl with condition number 20, axis-aligned and turned "
                                 "by 30 degrees, 20 steps")


# -- saddle -----------------------------------------------------------------------------------


def test_the_saddle_arguments_reach_the_races_and_the_table():
    demo = landscape.saddle(steps=30, start=(0.5, 1e-3), noise=0.3, threshold=0.5)
    assert demo.start == (0.5, 1e-3) and "start (0.5, 0.001)" in demo.title
    assert demo.races[1].noise == 0.3 and demo.races[0].noise == 0.0
    assert demo.threshold == 0.5
    for race in demo.races:
        assert race.paths[next(iter(race.paths))][0].tolist() == [0.5, 1e-3]
        for label, path in race.paths.items():
            out = np.flatnonzero(np.abs(np.asarray(path)[:, 1]) > 0.5)
            assert demo.escape[label] == (int(out[0]) if out.size else None)
    headers, rows = table_cells(demo.table())
    assert headers[3] == "gradient noise" and headers[4] == "first step |y|>0.5"
    assert {row[0]: row[3] for row in rows} == {"gd": "0", "momentum": "0", "adam": "0",
                                                "gd + noise": "0.3"}


def test_the_saddle_landscapes_minima_and_rates_are_as_described():
    """Minima at (0, +-sqrt(2)) with value -1 (what the race measures the gap to), and every
    run at lr 0.1 as the docstring says."""
    land = landscape.SADDLE
    minima = torch.tensor(land.minima, dtype=torch.float64, requires_grad=True)
    values = land.f(minima)
    assert values.tolist() == pytest.approx([land.min_value] * 2, abs=1e-12)
    assert land.min_value == -1.0
    (grad,) = torch.autograd.grad(values.sum(), minima)
    assert grad.abs().max() < 1e-12
    assert {hp["lr"] for hp in landscape.SADDLE_OPTIMIZERS.values()} == {0.1}


def test_the_saddle_figure_draws_each_path_as_x_y():
    demo = landscape.saddle(steps=20)
    with drawn(demo) as fig:
        lines = lines_by_gid(fig)
        for race in demo.races:
            for label, path in race.paths.items():
                path = np.asarray(path)
                np.testing.assert_array_equal(lines[f"path:{label}"].get_xdata(), path[:, 0])
                np.testing.assert_array_equal(lines[f"path:{label}"].get_ydata(), path[:, 1])


# -- defects the same audit found (each test failed before its fix) ----------------------------


def test_sparse_takes_numpy_numbers_and_counts_presence_over_the_samples_it_read():
    demo = sparse_features.sparse(n=np.int64(200), lr=np.float32(0.5),
                                  presence=np.array([0.9, 0.05]))
    assert demo.presence.shape == (2,)
    # 25 samples in batches of 10: one pass reads 20, and presence is counted over those 20
    demo = sparse_features.sparse(n=25, batch=10)
    np.testing.assert_array_equal(demo.presence * 20, demo.active.sum(0))
    with pytest.raises(ValueError, match=r"^noise must be a finite number >= 0, got nan$"):
        sparse_features.sparse(noise=math.nan)
    with pytest.raises(ValueError, match=r"^true_w must hold finite numbers"):
        sparse_features.sparse(true_w=(1.0, math.inf))


def test_effective_lr_and_ema_check_their_arguments_before_computing():
    """grad=0 gave all-NaN rates and a ZeroDivisionError when drawn; steps=2.5, at=5,
    ema(n=-1) and ema(n=2.5) failed inside torch or NumPy; ema(rows=-1) printed an empty
    table."""
    from optimlab.optim.base import ArgumentTypeError

    with pytest.raises(ValueError, match=r"^grad must not be 0"):
        schedules.effective_lr(grad=0.0)
    for kwargs, error in (({"steps": 2.5}, ArgumentTypeError), ({"at": 5}, ArgumentTypeError),
                          ({"at": (1.5,)}, ArgumentTypeError), ({"lr": 0.0}, ValueError)):
        with pytest.raises(error):
            schedules.effective_lr(**kwargs)
    # NumPy's arrays and ranges, as before the checks (and as sparse() takes them)
    assert schedules.effective_lr(steps=10, at=np.array([1, 10])).at == (1, 10)
    assert schedules.effective_lr(steps=5, at=range(1, 4)).at == (1, 2, 3)
    assert schedules.ema(betas=np.array([0.5, 0.9])).betas == (0.5, 0.9)
    for kwargs, message in (({"n": -1}, r"^n must be an integer >= 1, got -1$"),
                            ({"n": 2.5}, r"^n must be an integer >= 1, got 2.5$"),
                            ({"rows": -1}, r"^rows must be an integer >= 1, got -1$"),
                            ({"betas": 0.9}, r"^betas must be a non-empty sequence"),
                            ({"betas": ("0.5",)}, r"^beta must be a number, got '0.5'$")):
        with pytest.raises((ValueError, TypeError), match=message):
            schedules.ema(**kwargs)


def test_the_saddle_refuses_a_threshold_every_run_has_crossed_at_the_start():
    """threshold=-1 had every run "escape" at step 0, and NaN had none ever escape."""
    for threshold, message in ((-1.0, r"^threshold must be in \[0, inf\)"),
                               (math.nan, r"^threshold must be a finite number"),
                               (1e-7, r"^threshold must be above the start's \|y\| \(1e-06\)")):
        with pytest.raises(ValueError, match=message):
            landscape.saddle(steps=3, threshold=threshold)


def test_the_ravine_findings_speak_of_the_rules_raced():
    """The lead sentence named RMSprop and SGD in a race of momentum and Adam."""
    lead = landscape.ravine_alignment(optimizers=("momentum", "adam"), steps=10).findings()[0]
    assert lead.startswith("Momentum does not depend on the coordinates, so it does the same "
                           "on both ravines; Adam rescales each coordinate")
    assert "RMSprop" not in lead and "SGD" not in lead
    assert "an Adam step is about lr long" in lead
    lead = landscape.ravine_alignment(steps=10).findings()[0]
    assert lead.startswith("SGD and momentum do not depend on the coordinates")
    assert "Adam and RMSprop rescale each coordinate" in lead
    assert "RMSprop's rescaling fits the aligned bowl exactly" in lead


def test_the_gd_variants_titles_say_what_this_run_shows():
    """The titles said the full batch makes the most progress per update and small batches
    per evaluation whatever the variants; they now name the run of least loss after the
    fewest updates any run took, and after one epoch."""
    demo = batch_sizes.gd_variants()
    assert demo.lowest_per_update() == (20, ["batch"])
    assert demo.lowest_per_epoch() == ["stochastic"]
    with drawn(demo) as fig:
        assert [a.get_title() for a in fig.axes[:2]] == [
            "Per update: lowest after 20 updates: batch",
            "Per gradient evaluation: lowest after one epoch: stochastic"]
    # a full batch at a rate too small to make progress: the claim does not hold, nor say it
    slow = batch_sizes.gd_variants(epochs=3, variants={"batch": (None, 1e-4),
                                                       "mini-batch": (32, 0.1)})
    assert slow.lowest_per_update() == (3, ["mini-batch"])
    expected = {label: run.loss[3] for label, run in slow.runs.items()}
    assert expected["mini-batch"] < expected["batch"]
