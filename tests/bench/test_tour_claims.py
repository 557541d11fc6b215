"""The generated claims of ``optimlab tour`` and ``optimlab report`` that an audit of a quick
tour found untrue to their data (or ungrammatical), each checked on small synthetic inputs by
calling the function that writes it: no tour is run."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

# ----------------------------------------------------------------- 1: a two-sided margin


def test_a_lead_within_the_margin_is_not_agreement():
    """Adam leading by 0.005 read "agrees: Adam has the highest profile score", trailing by
    0.005 "partly": the page's own margin (0.1, about one task changing places) held only
    one way."""
    from optimlab.bench.tour import _recommendation_verdict

    ahead = _recommendation_verdict({"adam": 0.672, "sgd": 0.667, "rmsprop": 0.3,
                                     "adagrad": 0.0}, seeds=3)
    behind = _recommendation_verdict({"adam": 0.667, "sgd": 0.672, "rmsprop": 0.3,
                                      "adagrad": 0.0}, seeds=3)
    assert ahead.startswith("partly: Adam has the highest profile score, but sgd is within 0.1")
    assert behind.startswith("partly: sgd scores highest and Adam is within 0.1")
    # a lead of the margin or more agrees (0.9 - 0.8 is 0.0999... in floating point)
    assert _recommendation_verdict({"adam": 0.9, "sgd": 0.8}, seeds=3).startswith("agrees")
    assert _recommendation_verdict({"adam": 0.9, "sgd": 0.5}, seeds=3).startswith("agrees")


# ----------------------------------------------------------------- 2: the tie rule's words


def test_the_profile_lead_says_the_tie_rule_the_profile_uses():
    """The lead said costs tie "within the calibrations' measured spreads"; with the rounds
    known (every tour run's) they tie within a Student's t bound on their medians' difference, as the
    profile's own notes say."""
    from optimlab.bench.analysis import costs_tie
    from optimlab.bench.profile import _within
    from optimlab.bench.tour import PROFILE_LEAD

    lead = " ".join(PROFILE_LEAD)
    assert "within the calibrations' measured spreads" not in lead
    assert _within({"a": 15, "b": 15}, "a", "b") in lead  # the notes' own words
    assert "within a 95% Student's t bound on the difference of their medians" in lead
    # the rule it names: costs 1.3 times apart, within their spreads (0.2 each), do not tie
    # at 15 rounds; without rounds the spreads decide
    assert not costs_tie(1.0, 0.2, 15, 1.3, 0.2, 15)
    assert costs_tie(1.0, 0.2, None, 1.3, 0.2, None)


# ----------------------------------------------------------------- 3: generalisation


def _summary(name: str, lr: float = 0.1):
    from optimlab.bench.analysis import OptimizerSummary

    return OptimizerSummary(optimizer=name, best_lr=lr, mean=0.8, std=0.01, seeds=3,
                            diverged=0, sensitivity={lr: 0.8}, ci=0.02,
                            per_seed={0: 0.8, 1: 0.81, 2: 0.79})


def _records(name: str, train, test, lr: float = 0.1) -> list[dict]:
    return [{"optimizer": name, "lr": lr, "seed": s, "status": "finished",
             "final_train_loss": a, "final_test_loss": b}
            for s, (a, b) in enumerate(zip(train, test))]


def test_the_generalisation_line_reads_the_train_test_gap():
    """The line compared final test accuracy after a short budget: an SGD that only trains
    more slowly counted as one that generalises worse. It now compares the train-test loss
    gap, and a smaller gap that comes with a clearly higher train loss (fitting less) is
    not counted as better generalisation."""
    from optimlab.bench.tour import gap_lead, generalisation_verdict, loss_gaps

    sgd, adam = _summary("sgd"), _summary("adam")
    # the same train loss, SGD's test loss barely above it, Adam's far above
    same_fit = (_records("sgd", (0.30, 0.33, 0.28), (0.35, 0.37, 0.34))
                + _records("adam", (0.31, 0.30, 0.32), (0.60, 0.63, 0.61))
                + _records("sgd", (9.0,) * 3, (1.0,) * 3, lr=1.0))  # another rate: not read
    gaps, train = loss_gaps(same_fit, sgd)
    assert gaps == pytest.approx({0: 0.05, 1: 0.04, 2: 0.06}) and train[1] == 0.33
    assert gap_lead(same_fit, sgd, adam) == "sgd"
    # SGD's gap is smaller only because it fitted the training set far less
    fit_less = (_records("sgd", (1.40, 1.45, 1.38), (1.45, 1.49, 1.44))
                + _records("adam", (0.31, 0.30, 0.32), (0.60, 0.63, 0.61)))
    assert gap_lead(fit_less, sgd, adam) == "fit less"
    # gaps that cannot be told apart
    alike = (_records("sgd", (0.3, 0.3, 0.3), (0.35, 0.42, 0.33))
             + _records("adam", (0.3, 0.3, 0.3), (0.40, 0.34, 0.37)))
    assert gap_lead(alike, sgd, adam) is None
    assert "train-test gap" in generalisation_verdict(2, 0, 3, seeds=3)


# ----------------------------------------------------------------- 4: Rosenbrock's RMSprop


def test_the_rosenbrock_fact_claims_no_cause_the_race_does_not_show():
    """"on these steep walls that first step can throw the path far up the valley": RMSprop
    without its 10x first step still ends far behind Adam, so the cause is not shown."""
    from optimlab.bench.tour import _race_facts

    def m(loss):
        return SimpleNamespace(final_loss=loss)

    behind = SimpleNamespace(
        metrics={"rmsprop": m(0.655), "adam": m(0.00131)},
        paths={"rmsprop": np.array([[-1.5, 2.0], [1.96, 4.16], [1.0, 1.0]]),
               "adam": np.array([[-1.5, 2.0], [-1.45, 1.95], [1.0, 1.0]])})
    fact = _race_facts("rosenbrock", behind)[-1]
    assert "throw the path" not in fact and "far up the valley" not in fact
    assert "Here RMSprop ends behind Adam (final loss 0.655 against 0.00131)" in fact
    assert f"its first step moved it {np.hypot(3.46, 2.16):.3g} from the start, Adam's " \
           f"{np.hypot(0.05, 0.05):.3g}" in fact
    assert "this race does not test" in fact


# ----------------------------------------------------------------- 5: the noisy race


def test_the_noisy_race_compares_each_optimizer_with_its_noiseless_race():
    """The noisy race's lead said its final losses reflect "the noise floor" although SGD
    never crossed the valley (final loss 0.459 at distance 1.04, noiseless 0.335 at 1.01)."""
    from optimlab.bench.tour import RACE_LEADS, noise_comparison

    lead = " ".join(RACE_LEADS[("rosenbrock", True)])
    assert "noise floor" not in lead

    def m(loss, distance, reached=None, gap=None):
        return SimpleNamespace(final_loss=loss, distance=distance, steps_to_tol=reached,
                               gap=loss if gap is None else gap, diverged=False)

    noiseless = SimpleNamespace(metrics={"sgd": m(0.335, 1.01), "adam": m(3e-4, 0.02, 40),
                                         "momentum": m(0.0483, 0.231)}, tol=1e-3,
                                hparams={"sgd": {"name": "sgd", "lr": 0.00562341},
                                         "adam": {"name": "adam", "lr": 0.1}})
    noisy = SimpleNamespace(metrics={"sgd": m(0.459, 1.04), "adam": m(0.0643, 0.5),
                                     "momentum": m(0.0657, 0.278, 31)}, tol=1e-3,
                            hparams={"sgd": {"name": "sgd", "lr": 0.00562341},
                                     "adam": {"name": "adam", "lr": 0.0316}})
    said = noise_comparison(noiseless, noisy)
    assert ("sgd (lr 0.00562 -> 0.00562): final loss 0.335 -> 0.459, distance to the "
            "minimizer 1.01 -> 1.04, within the tolerance never -> never") in said
    assert ("adam (lr 0.1 -> 0.0316): final loss 0.0003 -> 0.0643, distance to the minimizer "
            "0.02 -> 0.5, within the tolerance step 40 -> never") in said
    # reached the tolerance and left it (the table's "(left)"); no rates known: none said
    assert ("momentum: final loss 0.0483 -> 0.0657, distance to the minimizer 0.231 -> 0.278, "
            "within the tolerance never -> step 31 (left it later)") in said
    assert noise_comparison(noiseless, SimpleNamespace(metrics={})) == ""


# ----------------------------------------------------------------- 6 and 7: plurals


@pytest.fixture
def store(tmp_path):
    from optimlab.bench.store import RunStore

    store = RunStore(tmp_path / "runs.db")
    yield store
    store.close()


def _one_seed_sweep(store) -> int:
    """sgd and adam at lr 0.01 and 0.1, one seed each, finished."""
    sweep = store.open_sweep({"task": "digits", "optimizers": ["sgd", "adam"],
                              "lrs": [0.01, 0.1], "seeds": 1, "target": 0.9,
                              "metric": {"name": "accuracy", "higher_is_better": True}})
    members = [(o, lr) for o in ("sgd", "adam") for lr in (0.01, 0.1)]
    ids = store.add_runs(sweep, [{"optimizer": o, "hparams": {"lr": lr}, "seed": 0}
                                 for o, lr in members])
    for run, (o, lr) in zip(ids, members):
        value = 0.5 + lr + (0.01 if o == "adam" else 0.0)
        store.start_run(run)
        store.finish_run(run, "finished", summary={"final_metric": value, "score": value},
                         points=[(k, {"test_metric": value, "train_loss": 1.0 / k}, 0.1)
                                 for k in (1, 2, 3)])
    return sweep


def test_the_curves_legend_says_one_seed(store):
    """The learning curves' legend read "sgd (lr 1, 1 seeds)"."""
    from optimlab.bench.report import _curves_figure, _Sweep
    from optimlab.landscapes.plots import plt_close

    fig = _curves_figure(_Sweep(store, _one_seed_sweep(store), None, None))
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    labels += [t.get_text() for ax in fig.axes if ax.get_legend()
               for t in ax.get_legend().get_texts()]
    plt_close(fig)
    assert any(label.endswith(", 1 seed)") for label in labels), labels
    assert not any("1 seeds" in label for label in labels)


def test_counts_are_said_singular_and_plural(store):
    """"1 seed(s)" in the MNIST-1D and GRU leads and in every tie note (where one seed in
    common is no comparison), "3 workload(s)" in the profile's title."""
    from optimlab.bench.profile import Profile
    from optimlab.bench.report import summary_notes
    from optimlab.bench.tour import mnist1d_lead, recurrent_lead
    from optimlab.landscapes.plots import plt_close

    notes = summary_notes(store, _one_seed_sweep(store))
    ties = [n for n in notes if "share rank" in n]
    # one seed in common: no comparison, said so (not "cannot be told apart at 1 seed")
    assert ties and all("with 1 seed in common no comparison is possible" in n for n in ties)
    assert not any("cannot be told apart" in n for n in notes)
    assert not any("seed(s)" in n for n in notes)
    for lead in (mnist1d_lead(40, (0.01, 0.1), 1), recurrent_lead(10, (0.01, 0.1), 1)):
        text = " ".join(lead)
        assert "seed(s)" not in text and "1 seed" in text and "1 seeds" not in text
    assert "with 3 seeds," in " ".join(mnist1d_lead(1000, (0.01,), 3))
    assert "3 seeds (the grid" in " ".join(recurrent_lead(60, (0.01,), 3))

    def title(workloads: int) -> str:
        names = [f"w{i}" for i in range(workloads)]
        fig = Profile(times={w: {"adam": 1.0, "sgd": 2.0} for w in names},
                      taus=np.array([1.0, 2.0, 4.0]),
                      rho={"adam": np.ones(3), "sgd": np.array([0.0, 1.0, 1.0])},
                      scores={"adam": 1.0, "sgd": 0.667}).plot()
        shown = fig.axes[0].get_title()
        plt_close(fig)
        return shown

    assert title(1) == "performance profile over 1 workload"
    assert title(3) == "performance profile over 3 workloads"


# ----------------------------------------------------------------- 8: "(log) (log)"


def test_the_alt_text_says_a_log_axis_once():
    """The batch-size picture's alt text read "x parameter updates (log) (log)": its label
    says "(log)" already, and figure_alt added another for the log scale."""
    from optimlab.bench.tour import figure_alt
    from optimlab.landscapes.plots import _pyplot, plt_close

    plt = _pyplot()
    fig, ax = plt.subplots()
    ax.loglog([1, 10, 100], [1.0, 0.1, 0.01])
    ax.set_xlabel("parameter updates (log)")
    ax.set_ylabel("full-data loss")
    alt = figure_alt(fig)
    plt_close(fig)
    assert "(log) (log)" not in alt
    assert "x parameter updates (log);" in alt and "y full-data loss (log)" in alt


# ----------------------------------------------------------------- 9: shares that add up


def test_basin_shares_add_to_100_percent():
    """sgd's row read 47% | 30% | 24% | 0% (105, 67 and 53 of 225 starts, each rounded
    alone): 101%."""
    from optimlab.exhibits.basins import DIVERGED, NOT_SETTLED, BasinsDemo, percentages

    assert percentages({"a": 105 / 225, "b": 67 / 225, "c": 53 / 225, "d": 0.0}) == \
        {"a": 47, "b": 30, "c": 23, "d": 0}
    assert sum(percentages({k: 1 / 3 for k in "abc"}).values()) == 100
    assert percentages({"a": 0.5, "b": 0.5}) == {"a": 50, "b": 50}
    basin = np.array([0] * 105 + [1] * 67 + [NOT_SETTLED] * 53)
    assert DIVERGED not in basin
    demo = BasinsDemo(landscape=SimpleNamespace(name="two_wells"),
                      minima=(("deep well", (-1.0, 0.0)), ("shallow well", (1.0, 0.0))),
                      hparams={"sgd": {"name": "sgd", "lr": 0.1}}, grid=15, steps=60,
                      radius=0.25, xs=np.zeros(15), ys=np.zeros(15), starts=np.zeros((225, 2)),
                      ends={"sgd": np.zeros((225, 2))}, basin={"sgd": basin})
    _, (row,) = demo.rows()
    assert row[3:] == ["47%", "30%", "23%", "0%"]
    assert sum(int(cell.rstrip("%")) for cell in row[3:]) == 100


# ----------------------------------------------------------------- 10: one precision


def test_the_closing_table_shows_scores_as_the_profile_table_does():
    """The closing table printed profile scores with 2 decimals ("adam 0.67, sgd 0.67")
    beside a verdict that one scores highest, and a profile table with 3."""
    from optimlab.bench.tour import recommendation_evidence

    cell = recommendation_evidence({"adam": 0.672, "sgd": 0.667, "rmsprop": 1 / 3})
    assert cell == "profile scores: adam 0.672, sgd 0.667, rmsprop 0.333"
    assert recommendation_evidence({"adam": 0.5}, tied=True).endswith(
        "(reaching the target at the same evaluation counted as a tie; the profile's notes "
        "say where)")
