"""The tour runs end to end (with tiny budgets) and writes one self-contained page."""

import math
import re

import pytest

from optimlab.bench.tour import RACES
from optimlab.cli import main


def test_quick_tour_writes_one_page(tmp_path, capsys):
    from optimlab.bench.store import RunStore
    from optimlab.bench.tour import PROFILE_RATE_NOTE

    # a store left by an earlier tour: kept aside, not reused (its sweep took id 1, and
    # run_sweep would have resumed a stored sweep of the same configuration)
    old = RunStore(tmp_path / "tour-runs.db")
    old.open_sweep({"task": "digits", "optimizers": ["sgd"], "left": "by an earlier tour"})
    old.close()
    assert main(["tour", "--quick", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert f"wrote {tmp_path / 'tour.html'}" in captured.out
    assert "mnist1d: 12 runs" in captured.err  # progress lines go to stderr
    assert "mnist1d-gru: 8 runs" in captured.err
    page = (tmp_path / "tour.html").read_text()
    assert len(re.findall(r"<section>", page)) == len(RACES) + 6
    # one plot per race, MNIST-1D's curves and lr sensitivity, the profile, the GRU's
    # curves, the slice and its interpolation, the GD variants
    assert page.count("data:image/png;base64,") == len(RACES) + 2 + 1 + 1 + 2 + 1
    # the real network's slice: every optimizer's row with its sharpness and residuals
    sliced = page[page.index("loss landscape: four optimizers on one plane</h2>"):]
    sliced = sliced[:sliced.index("</section>")]
    for name in ("sgd", "momentum", "adam", "sam"):
        assert re.search(rf"<td>{name}</td>(<td class=\"num\">[^<]+</td>){{6}}", sliced), name
    assert "top Hessian eig" in sliced and "Largest share off the plane" in sliced
    # ... and the slice itself, where the playground's Slices tab finds it
    from optimlab.web.api import slices

    found, = slices([tmp_path])
    assert found["error"] is None and found["optimizers"] == ["sgd", "momentum", "adam", "sam"]
    for title, *_ in RACES:
        assert title in page.replace("&#x27;", "'")
    for name in ("sgd", "adagrad", "rmsprop", "adam", "mini-batch"):
        assert name in page
    assert "http://" not in page and "https://" not in page
    for task in ("mnist1d", "digits", "sparse-logreg", "mnist1d-gru"):
        assert (tmp_path / task / "report.html").exists()
    # the cross-task profile names every optimizer with a score, in an HTML table
    profile = page[page.index("Performance profile over"):]
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", profile).group(1)
    for name in ("sgd", "adagrad", "rmsprop", "adam"):
        assert f"<th>{name}</th>" in header
    assert re.search(r"<td>score \(AlgoPerf\)</td>(<td class=\"num\">[01]\.\d{3}</td>){4}",
                     profile)
    # every section explains itself before its numbers, and no table is preformatted text
    for section in re.findall(r"<section>(.*?)</section>", page, re.S):
        assert re.match(r"<h2 id=\"[a-z0-9-]+\">[^<]+</h2><p>", section), section[:120]
    # the contents list links to every section's heading
    ids = re.findall(r"<h2 id=\"([a-z0-9-]+)\">", page)
    assert len(ids) == len(set(ids)) == len(RACES) + 6
    assert re.findall(r"<li><a href=\"#([a-z0-9-]+)\">", page) == ids
    # the saddle has no minimum: no arrow on its final loss; the page says what was kept
    saddle = page[page.index(">A saddle point</h2>"):]
    saddle = saddle[:saddle.index("</section>")]
    assert "<th>final loss</th>" in saddle and "<th>steps to escape \u2193</th>" in saddle
    assert "is kept as tour-runs.previous.db" in page
    assert "a sequence of 40 values" in page and "each way, 40 steps" not in page
    assert "read it together with the tables' confidence intervals" not in page.replace(
        "&#x27;", "'").lower()
    training = page[page.index("on MNIST-1D</h2>"):]
    assert "<pre>" not in training and "<table>" in training
    assert "cannot be told apart" in page or "One seed: no confidence interval" in page
    assert "Best lr: the worst test metric over the last 25%" in page
    # the closing section sets each line of the folklore beside this run's evidence
    closing = page[page.index("When to use which"):]
    for aspect in ("learning-rate stability", "memory", "sparse data", "RNNs",
                   "generalisation", "default recommendation"):
        assert f"<td>{aspect}" in closing
    verdicts = re.findall(r"<td>(agrees|does not agree|partly|not tested|not seen here|differs)",
                          closing)
    assert len(verdicts) == 6, verdicts
    # the RNN line reads the GRU sweep of this run
    rnn = closing[closing.index("<td>RNNs"):]
    rnn = rnn[:rnn.index("</tr>")]
    assert "top rank on the MNIST-1D GRU: " in rnn and "not tested" not in rnn
    assert re.search(r"<td>(agrees|partly|does not agree|not seen here)", rnn)
    assert "memory" in closing and "adam: 2" in closing and "adagrad: 1" in closing
    # one seed: no verdict read from the training tables agrees, and the page says one seed
    # and that it is a quick tour
    assert len(re.findall(r"<td>not seen here: cannot tell at 1 seed", closing)) == 5
    assert "agrees" not in "".join(re.findall(r"<td>(agrees[^<]*)</td>", closing)).replace(
        "agrees (counted, not measured", "")
    assert "1 seed each" in closing and "a few seeds" not in closing
    assert "<h1>optimlab tour (quick)</h1>" in page and "This is a quick tour" in page
    # a fresh store: the earlier one kept aside, this run's sweeps 1 to 4
    kept = RunStore(tmp_path / "tour-runs.previous.db")
    assert kept.sweep(1)["config"]["left"] == "by an earlier tour"
    kept.close()
    store = RunStore(tmp_path / "tour-runs.db")
    assert [store.sweep(i)["task"] for i in (1, 2, 3, 4)] == ["mnist1d", "digits",
                                                              "sparse-logreg", "mnist1d"]
    assert store.sweep(4)["model"] == "gru"
    # named, so `optimlab runs` and the playground say which section each sweep is
    assert [store.sweep(i)["name"] for i in (1, 2, 3, 4)] == [
        "tour: mnist1d", "tour: digits", "tour: sparse-logreg", "tour: mnist1d-gru"]
    store.close()
    # how ranks are given, and which rates are not tuned
    text = page.replace("&#x27;", "'")
    assert "rank is 1 plus the number of optimizers clearly better" in text
    assert "ranks them by mean final test accuracy" not in text
    assert "the basins of attraction, the network's loss-landscape slice" in text
    for title in ("Local minima", "A real network's loss landscape", "Batch, mini-batch"):
        part = text[text.index(f">{title}", text.index("<section>")):]
        assert "fixed" in part[:part.index("</section>")].split("<table>")[0], title
    # which rate the to-target columns and the profile read; which way is better
    assert "steps to 0.5 \u2193 (at the best lr, median over seeds)" in text
    assert PROFILE_RATE_NOTE in text
    for header in ("final loss \u2193", "accuracy (mean \u00b1 95% CI) \u2191",
                   "steps to gap 0.001 \u2193", "test accuracy \u2191", "train loss \u2193"):
        assert f"<th>{header}" in text, header
    # plain gradient descent is sgd in the basins too, as in every other table
    basins = text[text.index(">Local minima", text.index("<section>")):]
    basins = basins[:basins.index("</section>")]
    assert "<td>sgd</td><td>sgd</td>" in basins and "<td>gd</td>" not in basins


def test_rnn_verdict():
    from optimlab.bench.tour import rnn_verdict

    assert rnn_verdict(["rmsprop", "adam"]) == "agrees"
    assert rnn_verdict(["adam"]) == "agrees"
    assert rnn_verdict(["adagrad", "adam"]).startswith("partly")
    assert rnn_verdict(["sgd", "adagrad", "rmsprop", "adam"]).startswith("not seen here")
    assert rnn_verdict(["sgd"]).startswith("does not agree")
    assert rnn_verdict(["adagrad"]).startswith("does not agree")
    # one seed: every optimizer shares rank 1 and no difference is evidence
    assert rnn_verdict(["rmsprop", "adam"], seeds=1).startswith(
        "not seen here: cannot tell at 1 seed")


def test_every_verdict_says_one_seed_cannot_tell():
    """The audit's quick run: one seed, every table a tie, and the closing verdicts said
    "agrees" (stability, default recommendation) and "partly" (sparse data)."""
    from optimlab.bench.tour import (
        _recommendation_verdict,
        generalisation_verdict,
        sparse_verdict,
        stability_verdict,
    )

    one = "not seen here: cannot tell at 1 seed"
    assert sparse_verdict(["adagrad"], seeds=1).startswith(one)
    assert stability_verdict({0: 0.6, 1: 0.5, 2: 0.7}, {0: 0.2, 1: 0.2, 2: 0.2},
                             seeds=1).startswith(one)
    assert _recommendation_verdict({"adam": 0.33, "sgd": 0.0}, seeds=1).startswith(one)
    assert generalisation_verdict(2, 0, 3, seeds=1).startswith(one)
    # with seeds, the evidence may go either way
    assert generalisation_verdict(2, 0, 3, seeds=3).startswith("agrees")
    assert generalisation_verdict(0, 1, 3, seeds=3).startswith("does not agree")
    assert generalisation_verdict(1, 1, 3, seeds=3).startswith("not seen here")
    assert generalisation_verdict(0, 0, 3, seeds=3).startswith("not seen here")
    # Adam tied with every optimizer at the top is not "partly"
    assert _recommendation_verdict({"adam": 1.0, "sgd": 1.0}, seeds=3).startswith(
        "not seen here")


def test_memory_verdict_can_disagree():
    from optimlab.bench.tour import memory_verdict

    assert memory_verdict({"sgd": 0, "adagrad": 1, "rmsprop": 1, "adam": 2}).startswith("agrees")
    assert memory_verdict({"sgd": 0, "adagrad": 1, "rmsprop": 2, "adam": 2}) == \
        "does not agree: rmsprop keeps 2, not 1"


def test_tour_to_an_unwritable_place(capsys):
    assert main(["tour", "--quick", "--out", "/proc/no/tour"]) == 2
    assert "cannot write the tour" in capsys.readouterr().err


def test_the_recommendation_verdict_says_a_tie_and_a_profile_that_ranked_nothing():
    from optimlab.bench.tour import _recommendation_verdict

    assert _recommendation_verdict({"adam": 0.9, "sgd": 0.5}).startswith("agrees")
    assert _recommendation_verdict({"adam": 0.9, "sgd": 0.9, "rmsprop": 0.5}) == \
        "partly: Adam shares the highest profile score with sgd"
    assert _recommendation_verdict({"adam": 0.85, "rmsprop": 0.9}).startswith(
        "partly: rmsprop scores highest and Adam is within 0.1")
    assert _recommendation_verdict({"adam": 0.5, "rmsprop": 0.9}).startswith("does not agree")
    # every score 0: max() named the first optimizer "highest"
    assert _recommendation_verdict({"sgd": 0.0, "adam": 0.0}).startswith("not tested")


def test_the_stability_verdict_needs_more_than_a_one_task_edge():
    from optimlab.bench.tour import stability_verdict

    # the audit's run: equal on two tasks, one rate apart on the third, one seed: it said
    # "agrees: Adam is more forgiving"
    assert stability_verdict({0: 1 / 5, 1: 2 / 4, 2: 2 / 4},
                             {0: 1 / 5, 1: 1 / 4, 2: 2 / 4}).startswith("not seen here")
    assert stability_verdict({0: 0.6, 1: 0.5, 2: 0.2}, {0: 0.2, 1: 0.25, 2: 0.2}).startswith(
        "agrees: Adam is more forgiving than SGD here (Adam's share of close rates against "
        "SGD's: larger on 2, smaller on 0 of 3 tasks")
    assert stability_verdict({0: 0.1, 1: 0.1}, {0: 0.5, 1: 0.5}).startswith("does not agree")
    # one task in common: "of 1 task", not "of 1 tasks"
    assert "larger on 1, smaller on 0 of 1 task tested for both" in \
        stability_verdict({0: 0.6}, {0: 0.2})


def test_race_facts_say_what_this_run_measured():
    from types import SimpleNamespace

    from optimlab.bench.tour import _race_facts

    def m(**kw):
        return SimpleNamespace(**{"escaped": None, "steps_to_escape": None, "final_loss": 0.0,
                                  **kw})

    saddle = SimpleNamespace(steps=60, metrics={"sgd": m(escaped=False),
                                                "momentum": m(escaped=True, steps_to_escape=55)})
    assert _race_facts("saddle", saddle) == [
        "In this run: sgd did not leave it in 60 steps; momentum left it at step 55."]
    ahead = SimpleNamespace(metrics={"rmsprop": m(final_loss=8e-4), "adam": m(final_loss=0.32)})
    assert "does not cost RMSprop the race" in _race_facts("rosenbrock", ahead)[0]
    behind = SimpleNamespace(metrics={"rmsprop": m(final_loss=0.5), "adam": m(final_loss=0.01)})
    assert "Here RMSprop ends behind Adam" in _race_facts("rosenbrock", behind)[0]


def test_the_profile_section_carries_the_profiles_notes(tmp_path):
    """The profile's notes (ratios by steps where step costs cannot be told apart) were
    left out of the tour, whose text said every cost is divided by the fastest's."""
    from optimlab.bench.profile import build_profile
    from optimlab.bench.store import RunStore
    from optimlab.bench.tour import PROFILE_LEAD, profile_notes

    store = RunStore(tmp_path / "runs.db")
    try:
        sweep = store.open_sweep({"task": "digits", "optimizers": ["sgd", "adam"],
                                  "target": 0.8,
                                  "metric": {"name": "accuracy", "higher_is_better": True}})
        ids = store.add_runs(sweep, [{"optimizer": o, "hparams": {"lr": 0.1}, "seed": 0}
                                     for o in ("sgd", "adam")])
        for run, (steps, cost) in zip(ids, ((20, 0.001), (25, 0.00108))):
            store.finish_run(run, "finished", summary={
                "final_metric": 0.9, "score": 0.9, "steps_to_target": steps,
                "seconds_per_step": cost, "gradients_per_step": 1.0, "cost_spread": 0.05,
                "cost_noisy": False, "cost_to_target": steps * cost})
        profile = build_profile(store, [sweep])
    finally:
        store.close()
    notes = profile_notes(["digits: a note"], profile)
    assert notes[0] == "digits: a note"
    assert any(n.startswith("profile: 1: digits: adam (1.25x, time 1.35x): ratio by steps")
               for n in notes)
    assert any(n.startswith("profile: time to the target:") for n in notes)
    assert "divided by the fastest" not in " ".join(PROFILE_LEAD)
    assert "steps over steps" in " ".join(PROFILE_LEAD)


def test_the_sparse_verdict_agrees_only_with_adagrad_alone_at_the_top():
    """The audit's run: Adagrad tied with RMSprop and Adam at =1, and the verdict said
    "agrees" (it said "partly" only for a tie with SGD)."""
    from optimlab.bench.tour import sparse_verdict

    assert sparse_verdict(["adagrad"]) == "agrees"
    assert sparse_verdict(["adagrad", "rmsprop", "adam"]) == \
        "partly: Adagrad is among the best, but so are RMSprop and Adam"
    # SGD, which the folklore calls poor, tied with Adagrad: not "partly"
    assert sparse_verdict(["sgd", "adagrad"]).startswith("not seen here: SGD")
    assert sparse_verdict(["sgd", "adagrad", "rmsprop", "adam"]).startswith("not seen here")
    assert sparse_verdict(["sgd"]).startswith("does not agree")
    assert sparse_verdict(["rmsprop"]).startswith("does not agree")


def test_the_takeaway_is_read_from_the_verdicts():
    """It was fixed text: "use Adagrad for sparse features" whatever the sparse line said."""
    from optimlab.bench.tour import takeaway

    rows = [["learning-rate stability", "x", "agrees: Adam is more forgiving"],
            ["memory (extra buffers per parameter)", "x", "agrees"],
            ["sparse data", "x", "partly: Adagrad is among the best, but so is Adam"],
            ["RNNs", "x", "does not agree: neither RMSprop nor Adam is among the best"],
            ["generalisation", "x", "not seen here: SGD is not ahead"],
            ["default recommendation", "x", "not tested: no optimizer reached a target"]]
    text = takeaway(rows)
    assert text.startswith("What to take away: this run agrees with the folklore on "
                           "learning-rate stability, memory; agrees only in part on sparse "
                           "data; cannot see the difference the folklore claims on "
                           "generalisation; contradicts it on RNNs; could not test default "
                           "recommendation")
    # the usual advice is said to be folklore, not this run's finding
    assert "is folklore that this run does not test as such" in text
    assert takeaway(rows[:2]) != takeaway(rows[2:])


def test_stability_counts_each_optimizers_own_rates_around_its_own_best():
    """SGD's best rates lay past the common grid's top, so a count on the common grid gave it
    0 of 6 by construction. Counted on its own rates within a factor 10 of its own best,
    its good rates count; a window tried on one side only is not tested."""
    from optimlab.bench.tour import STABLE_WINDOW, stable_rates

    assert STABLE_WINDOW == 10
    grid = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    sgd = {**{lr: 0.3 for lr in grid[:-1]}, 0.1: 0.60, 0.333: 0.64, 1.11: 0.646,
           3.7: float("-inf"), 12.3: float("-inf")}
    # window [0.111, 11.1]: 0.333 and 1.11 close, 3.7 diverged
    assert stable_rates(sgd) == (2, 3)
    adam = {3e-4: 0.4, 1e-3: 0.6, 3e-3: 0.62, 1e-2: 0.63, 3e-2: 0.615, 1e-1: 0.5}
    assert stable_rates(adam) == (3, 5)  # window [1e-3, 0.1]
    # its best at the top of the rates it ran: no rate above it, so not tested
    assert stable_rates({0.01: 0.5, 0.1: 0.6}) is None
    assert stable_rates({0.1: float("-inf")}) is None


def test_a_profile_tie_at_the_same_evaluation():
    """All four reached the target at the same evaluation (every 66 steps, at 132), so the
    ratios 1.07x came from step costs alone, and the verdict ranked them."""
    from optimlab.bench.tour import _recommendation_verdict, resolved_scores, same_evaluation_ties

    ratios = {"w1": {"adam": 1.07, "sgd": 1.0, "rmsprop": 1.5, "adagrad": 2.5},
              "w2": {"adam": 1.2, "sgd": 1.0, "rmsprop": 1.0, "adagrad": 1.0}}
    steps = {"w1": {"adam": 132, "sgd": 132, "rmsprop": 198, "adagrad": 132},
             "w2": {"adam": 40, "sgd": 40, "rmsprop": 40, "adagrad": 40}}
    ties = same_evaluation_ties(ratios, steps, {"w1": 66, "w2": 20})
    # rmsprop took more steps (another evaluation); adagrad's 2.5x is more than an
    # evaluation interval can hide (132 / 66 = 2)
    assert ties == {"w1": ["adam"], "w2": ["adam"]}
    assert same_evaluation_ties(ratios, steps, {"w1": 1, "w2": 1}) == {}  # exact counts
    scores = resolved_scores(ratios, ties)
    assert scores["adam"] == scores["sgd"] == 1.0
    assert _recommendation_verdict(scores, seeds=3).startswith("partly: Adam shares")
    assert _recommendation_verdict({"adam": 0.96, "sgd": 1.0}, seeds=3).startswith("partly")


def test_sweep_headers_say_direction_and_where_they_are_read():
    from optimlab.bench.tour import _directed, sweep_headers

    headers = ["rank", "optimizer", "best lr", "loss (mean \u00b1 95% CI)", "seeds",
               "diverged (any lr)", "reached target", "steps to 0.5", "gradient evals",
               "cost (calibrated)", "wall time"]
    assert sweep_headers(headers, higher=False) == [
        "rank", "optimizer", "best lr", "loss (mean \u00b1 95% CI) \u2193", "seeds",
        "diverged (any lr) \u2193", "reached target \u2191",
        "steps to 0.5 \u2193 (at the best lr, median over seeds)",
        "gradient evals to target \u2193", "cost (calibrated) to target \u2193",
        "wall time to target \u2193"]
    assert sweep_headers(headers[:4])[3].endswith("\u2191")
    assert _directed(["optimizer", "final loss", "escaped", "steps to escape",
                      "aligned: final f", "updates", "evals to <0.07"]) == [
        "optimizer", "final loss \u2193", "escaped", "steps to escape \u2193",
        "aligned: final f \u2193", "updates", "evals to <0.07 \u2193"]


def test_race_prose_is_read_from_the_run():
    """The leads said SGD zig-zags on Rosenbrock (its path was smooth, momentum's
    zig-zagged), that gradient descent leaves the saddle slowly (it left at step 8) and
    that Adam depends much less on the alignment (86 steps aligned, never rotated)."""
    from types import SimpleNamespace

    import numpy as np

    from optimlab.bench.tour import RACE_LEADS, _race_facts, turn_backs

    leads = " ".join(" ".join(v) for v in RACE_LEADS.values())
    for claim in ("Watch plain SGD zig-zag", "within a few dozen steps", "depends much less"):
        assert claim not in leads
    smooth = np.stack([np.linspace(0, 1, 11), np.linspace(0, 1, 11) ** 2], 1)
    zigzag = np.stack([np.linspace(0, 1, 11), (-1.0) ** np.arange(11)], 1)
    assert turn_backs(smooth) == 0 and turn_backs(zigzag) == 1.0
    m = SimpleNamespace(final_loss=0.1)
    ran = SimpleNamespace(paths={"sgd": smooth, "momentum": zigzag},
                          metrics={"sgd": m, "momentum": m})
    fact, = _race_facts("rosenbrock", ran)
    assert "sgd 0%, momentum 100%; momentum's path zig-zags most" in fact
    ran.paths = {"sgd": zigzag, "momentum": smooth}
    assert "sgd's path zig-zags most" in _race_facts("rosenbrock", ran)[0]
    assert _race_facts("rosenbrock", ran, noise=2.0) == []  # noise zig-zags every path

    def left(step):
        return SimpleNamespace(escaped=step is not None, steps_to_escape=step)

    saddle = SimpleNamespace(steps=60, metrics={"sgd": left(8), "rmsprop": left(1),
                                                "adam": left(1)})
    assert _race_facts("saddle", saddle)[0].endswith("the rescaling rules left before SGD.")
    saddle.metrics = {"sgd": left(8), "rmsprop": left(20), "adam": left(None)}
    assert _race_facts("saddle", saddle)[0].endswith(
        " Here rmsprop left after it; adam never left it: the rescaling rules did not lead here.")


def test_each_tour_starts_a_fresh_store_and_keeps_the_previous(tmp_path):
    from optimlab.bench.store import RunStore
    from optimlab.bench.tour import fresh_store

    first = fresh_store(tmp_path)
    assert first.open_sweep({"task": "digits", "tour": 1}) == 1
    first.close()
    second = fresh_store(tmp_path)  # the first is kept aside, and the ids start at 1 again
    assert second.open_sweep({"task": "digits", "tour": 2}) == 1
    second.close()
    kept = RunStore(tmp_path / "tour-runs.previous.db")
    assert kept.sweep(1)["config"]["tour"] == 1
    kept.close()
    fresh_store(tmp_path).close()  # a third: the second is now the previous one
    kept = RunStore(tmp_path / "tour-runs.previous.db")
    assert kept.sweep(1)["config"]["tour"] == 2
    kept.close()


def test_a_mean_without_an_interval_is_said_in_words_and_reports_are_links():
    from optimlab.bench.report import mean_text
    from optimlab.bench.tour import _Section, _section_html, _with_link

    assert [mean_text(0.37, math.inf, 1), mean_text(0.9, math.inf, 2),
            mean_text(0.3, 0.01, 3)] == [
        "0.3700 (1 seed: no interval)", "0.9000 (2 seeds, all alike: no interval)",
        "0.3000 ± 0.010"]
    page = _section_html(_Section("t", "", [], ["a < b", _with_link("see ", "x/report.html")]))
    assert "<p>a &lt; b</p>" in page
    assert '<p>see <a href="x/report.html">x/report.html</a>.</p>' in page


def test_stability_is_centred_on_the_tables_best_lr(tmp_path):
    """The audit's run: Adagrad's table best lr (the worst of the last quarter's
    evaluations) was 0.01, but the stability row centred on the rate of the best final
    accuracy (0.1, the top of its rates) and said "not tested"."""
    from types import SimpleNamespace

    from optimlab.bench.store import RunStore
    from optimlab.bench.tour import _evidence, stable_rates

    final = {1e-4: 0.50, 1e-3: 0.58, 1e-2: 0.59, 1e-1: 0.60}
    assert stable_rates(final) is None  # centred on 0.1: nothing above it
    assert stable_rates(final, 1e-2) == (3, 3)  # window [1e-3, 0.1]
    assert stable_rates({0.01: 0.5, 0.1: 0.6}, 0.1) is None
    assert stable_rates({0.01: float("-inf"), 0.1: 0.6, 1.0: 0.6}, 0.01) is None
    store = RunStore(tmp_path / "runs.db")
    try:
        sweep = store.open_sweep({"task": "digits", "optimizers": ["adagrad"],
                                  "metric": {"name": "accuracy", "higher_is_better": True}})
        ids = store.add_runs(sweep, [{"optimizer": "adagrad", "hparams": {"lr": lr}, "seed": 0}
                                     for lr in final])
        for run, (lr, metric) in zip(ids, final.items()):  # 0.1 ends best but spiked late
            store.finish_run(run, "finished", summary={
                "final_metric": metric, "score": 0.3 if lr == 1e-1 else metric})
        section = _evidence(store, [sweep], SimpleNamespace(scores={"adagrad": 0.0}), sweep)
    finally:
        store.close()
    row = section.tables[0][section.tables[0].index("<td>learning-rate stability"):]
    row = row[:row.index("</tr>")]
    assert "adagrad: 3/3;" in row
    assert "of its own rates within a factor 10 each side of its best lr (the tables')" in row


def test_the_saddle_caveat_says_the_tuning_rule_under_its_table():
    """The caveat said tuning picks the largest rate that does not diverge; the rule printed
    under the table is the step it escaped at, sooner is better."""
    from optimlab.bench.tour import RACE_LEADS
    from optimlab.landscapes.race import TUNE_ESCAPE_CRITERION

    caveat = RACE_LEADS[("saddle", False)][-1]
    assert TUNE_ESCAPE_CRITERION.startswith("the step it escaped at, sooner is better")
    assert "largest rate that does not diverge" not in caveat
    assert "picks the rate that escapes soonest (the rule under the table)" in caveat


def test_the_noisy_lead_says_what_the_noise_is_and_hedges_what_averaging_does():
    """It called the noise "the DeepOBS way" (Landscape.noise: it is not DeepOBS's noisy
    quadratic) and said momentum and Adam smooth it, where RMSprop ended far lower."""
    from optimlab.bench.tour import RACE_LEADS

    noise, = [n for _, what, _, n in RACES if what == "rosenbrock" and n]
    lead = " ".join(RACE_LEADS[("rosenbrock", True)])
    assert "DeepOBS" not in lead
    assert (f"isotropic Gaussian noise of standard deviation {noise:g} on every gradient "
            "coordinate, the same sequence for every optimizer") in lead
    assert "Averaging methods (momentum, Adam) smooth the noise" not in lead
    assert "The tutorials expect the averaging methods (momentum, Adam) to smooth the noise; " \
        "the table says whether they did here." in lead


def test_the_profile_header_says_calibrated_cost():
    """The header said "time to target"; the figure is the calibrated cost (the tables'
    "cost (calibrated) to target", not their "wall time to target")."""
    from optimlab.bench.tour import profile_headers

    assert profile_headers(["workload", "adam"], {"1: digits": "cost", "2: x": "cost"}) == [
        "workload (calibrated cost to target (s) \u2193, ratio \u2193; score \u2191)", "adam"]
    assert "or the measure its row names" in profile_headers(
        ["workload"], {"1: digits": "cost", "2: x": "steps"})[0]


def test_a_landscape_without_a_minimum_has_no_arrow_on_its_final_loss(monkeypatch):
    """The saddle's table said "final loss \u2193" above a note that its final loss says how
    far a run went, not how well it converged."""
    from optimlab.bench import tour

    assert tour._directed(["final loss", "steps to escape"], plain=("final loss",)) == [
        "final loss", "steps to escape \u2193"]
    monkeypatch.setattr(tour, "RACES", (("A saddle point", "saddle", {}, 0.0),
                                        ("A ravine", "rosenbrock", {}, 0.0)))
    monkeypatch.setattr(tour, "_png", lambda fig: b"")
    saddle, ravine = tour._races(True, lambda line: None)
    assert "<th>final loss</th>" in saddle.tables[0]
    assert "<th>steps to escape \u2193</th>" in saddle.tables[0]
    assert "<th>final loss \u2193</th>" in ravine.tables[0]


def test_the_recurrent_lead_says_sequence_length_not_steps(monkeypatch, tmp_path):
    """"(hidden 6 each way, 40 steps, ...), batch 100, 10 steps": the first was the
    sequence's length."""
    from types import SimpleNamespace

    from optimlab.bench import tour

    curves = tmp_path / "curves.png"
    curves.write_bytes(b"png")
    monkeypatch.setattr(tour, "_mnist1d_sweep", lambda *a, **k: (
        SimpleNamespace(lrs=(0.01, 0.1), seeds=1), 4, {"curves": curves}))
    monkeypatch.setattr(tour, "_sweep_section", lambda title, store, sweep_id, lead, images:
                        tour._Section(title, "", images, lead))
    section, _ = tour._recurrent(None, tmp_path, True, lambda line: None)
    assert "(hidden 6 each way, over a sequence of 40 values, then a linear layer), batch " \
        "100, 10 steps" in section.lead[0]


def test_the_contents_link_to_the_sections():
    from optimlab.bench.tour import _page, _Section, _section_html

    sections = [_Section("A saddle point", "", [], ["x"]), _Section("SGD, Adagrad on MNIST-1D",
                                                                    "", [], ["y"])]
    assert _section_html(sections[0]).startswith('<section><h2 id="a-saddle-point">')
    page = _page(sections, 1.0)
    assert '<li><a href="#a-saddle-point">A saddle point</a></li>' in page
    assert '<li><a href="#sgd-adagrad-on-mnist-1d">' in page
    assert '<h2 id="sgd-adagrad-on-mnist-1d">' in page


def test_the_page_says_only_what_this_run_has():
    """A page said a previous tour's store was kept where there was none, and the profile's
    caveat pointed at confidence intervals that one seed does not give."""
    from optimlab.bench import tour
    from optimlab.bench.tour import PREVIOUS, _page

    assert PREVIOUS not in _page([], 1.0, previous=False)
    assert f"is kept as {PREVIOUS}" in _page([], 1.0, previous=True)
    # (run_tour says whether a store was there to keep: the quick tour checks its page)
    one, three = tour.profile_lead(1)[-1], tour.profile_lead(3)[-1]
    assert "confidence intervals" in three and "Read it together" in three
    assert "Read it together" not in one and "no confidence intervals" in one


def test_a_second_tour_in_the_same_folder_is_refused(tmp_path, capsys, monkeypatch):
    """Two tours in one folder: the second's fresh_store moved the first one's live run store
    aside, so the first wrote into tour-runs.previous.db. The folder's lock refuses the
    second before it touches anything; once the first ends, a tour runs there again."""
    import fcntl
    import os

    from optimlab.bench import tour

    monkeypatch.setattr(tour, "_tour", lambda out, quick, say: out / "tour.html")
    (tmp_path / "tour-runs.db").write_text("the first tour's store")
    fd = os.open(tmp_path / tour.TOUR_LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the first tour, running
        assert main(["tour", "--quick", "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"optimlab: error: cannot write the tour to {tmp_path}: another tour is "
                       f"running in {tmp_path} now (it holds .tour.lock); wait for it to end, "
                       "or give another --out")
        assert (tmp_path / "tour-runs.db").read_text() == "the first tour's store"
    finally:
        os.close(fd)  # the first tour ends
    assert main(["tour", "--quick", "--out", str(tmp_path)]) == 0


def test_each_picture_of_the_tour_says_what_it_shows():
    """Every picture of a section had the section's title for its text alternative; each now
    carries one read from its figure (panels, axes, what the legend names)."""
    import optimlab
    from optimlab.bench import tour

    race = optimlab.race("rosenbrock", {"sgd": {"lr": 1e-3}, "adam": {"lr": 0.05}}, steps=20)
    image = tour._png(race.plot())
    assert image.png.startswith(b"\x89PNG")
    assert "Panel 2, loss: x step; y f - f*" in image.alt
    assert "sgd (lr=0.001)" in image.alt and "adam (lr=0.05)" in image.alt
    section = tour._Section("A race", "", [image, tour._Image(b"png", tour.CURVES_ALT)])
    page = tour._section_html(section)
    alts = re.findall(r'alt="([^"]*)"', page)
    assert len(alts) == 2 and alts[1] == tour.CURVES_ALT and alts[0] != alts[1]
    assert "sgd (lr=0.001)" in alts[0]


@pytest.mark.parametrize("code", ["ENOLCK", "EOPNOTSUPP"])
def test_a_folder_without_locks_runs_the_tour_unlocked(tmp_path, monkeypatch, code):
    """An NFS mount without its lock daemon says "No locks available" to ``flock``: the
    tour ran nowhere there; it now runs unlocked, as on Windows. Other errors still stop it."""
    import errno
    import fcntl
    import os

    from optimlab.bench import tour

    def no_locks(fd, operation):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    monkeypatch.setattr(tour, "_tour", lambda out, quick, say: out / "tour.html")
    assert tour.run_tour(tmp_path, quick=True) == tmp_path / "tour.html"
    monkeypatch.setattr(fcntl, "flock", lambda fd, operation: (_ for _ in ()).throw(
        OSError(errno.EIO, "Input/output error")))
    with pytest.raises(OSError, match="Input/output error"):
        tour.run_tour(tmp_path, quick=True)


def test_race_facts_hold_where_no_one_leads():
    """The fifth audit's edge cases: nobody left the saddle (it said "the tuned rates decided
    it"), all left at one step, a tie in zig-zag share (the first listed "zig-zags most"),
    equal printed losses and two infinite ones ("RMSprop ends behind Adam (0.00123 against
    0.00123)", "it ends at inf, Adam at inf"), and a profile of Adam alone ("0.500 against
    0.000")."""
    from types import SimpleNamespace

    import numpy as np

    from optimlab.bench.tour import _race_facts, _recommendation_verdict

    def saddle(*steps):
        return SimpleNamespace(steps=60, metrics={
            name: SimpleNamespace(escaped=step is not None, steps_to_escape=step)
            for name, step in zip(("sgd", "rmsprop", "adam"), steps)})

    assert _race_facts("saddle", saddle(None, None, None))[0].endswith(
        " Here none of them left it, so this run cannot say which leaves first.")
    assert _race_facts("saddle", saddle(5, 5, 5))[0].endswith(
        " Here rmsprop and adam left at the step SGD left: the rescaling rules did not lead here.")
    assert _race_facts("saddle", saddle(5, 5, 9))[0].endswith(
        " Here rmsprop left at the step SGD left; adam left after it: the rescaling rules did "
        "not lead here.")
    # one that never left is not said to have left "after it" (the review's case)
    assert _race_facts("saddle", saddle(40, None, 40))[0].endswith(
        " Here adam left at the step SGD left; rmsprop never left it: the rescaling rules did "
        "not lead here.")
    assert _race_facts("saddle", saddle(None, 3, None))[0].endswith(
        " Here only rmsprop left before SGD; adam never left it.")
    path = np.array([[0, 0], [1, 0], [0, 0], [1, 0], [2, 0]], dtype=float)  # 2 of 3 turn back
    facts = _race_facts("rosenbrock", SimpleNamespace(metrics={}, paths={"a": path, "b": path}))
    assert facts[0].endswith("is a 67%, b 67%; a and b zig-zag alike, the most.")

    def rosenbrock(rms, adam):
        return _race_facts("rosenbrock", SimpleNamespace(
            metrics={"rmsprop": SimpleNamespace(final_loss=rms),
                     "adam": SimpleNamespace(final_loss=adam)}, paths={}), noise=2)[-1]

    assert rosenbrock(1.2341e-3, 1.2339e-3).endswith(" Here they end level (final loss 0.00123 each).")
    assert rosenbrock(math.inf, math.nan).endswith(
        " Here neither finished the race (final loss inf and nan): it says nothing of the first step.")
    # NaN compares false with everything: it read as "does not cost RMSprop the race"
    assert " Here RMSprop ends behind Adam (final loss nan against 0.001)" in rosenbrock(math.nan, 1e-3)
    assert rosenbrock(1e-3, math.nan).endswith(
        " Here it does not cost RMSprop the race: it ends at 0.001, Adam at nan.")
    assert _recommendation_verdict({"adam": 0.5}, 3) == \
        "not tested: only adam was profiled, so there is no other to lead"
