"""The tour runs end to end (with tiny budgets) and writes one self-contained page."""

import math
import re

from optimlab.bench.tour import RACES
from optimlab.cli import main


def test_quick_tour_writes_one_page(tmp_path, capsys):
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
        assert re.match(r"<h2>[^<]+</h2><p>", section), section[:120]
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


def test_rnn_verdict():
    from optimlab.bench.tour import rnn_verdict

    assert rnn_verdict(["rmsprop", "adam"]) == "agrees"
    assert rnn_verdict(["adam"]) == "agrees"
    assert rnn_verdict(["adagrad", "adam"]).startswith("partly")
    assert rnn_verdict(["sgd", "adagrad", "rmsprop", "adam"]).startswith("not seen here")
    assert rnn_verdict(["sgd"]).startswith("does not agree")
    assert rnn_verdict(["adagrad"]).startswith("does not agree")


def test_tour_to_an_unwritable_place(capsys):
    assert main(["tour", "--quick", "--out", "/proc/no/tour"]) == 2
    assert "cannot write the tour" in capsys.readouterr().err


def test_the_recommendation_verdict_says_a_tie_and_a_profile_that_ranked_nothing():
    from optimlab.bench.tour import _recommendation_verdict

    assert _recommendation_verdict({"adam": 0.9, "sgd": 0.5}).startswith("agrees")
    assert _recommendation_verdict({"adam": 0.9, "sgd": 0.9}) == \
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
        "agrees: Adam is more forgiving than SGD here (Adam's share of close rates larger on 2")
    assert stability_verdict({0: 0.1, 1: 0.1}, {0: 0.5, 1: 0.5}).startswith("does not agree")


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
    assert sparse_verdict(["sgd", "adagrad"]) == \
        "partly: Adagrad is among the best, but so is SGD"
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


def test_stability_counts_the_common_grid_for_every_optimizer():
    """sgd's grid was extended by four rates, adam's by none: "sgd 1/10 ... adam 2/6" had
    different denominators. Counted on the common grid, both are out of 6; the best may
    still be an added rate."""
    from optimlab.bench.tour import stable_rates

    grid = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    sgd = {**{lr: 0.3 for lr in grid[:-1]}, 0.1: 0.60, 0.333: 0.64, 1.11: 0.646,
           3.7: float("-inf"), 12.3: float("-inf")}
    adam = {3e-4: 0.4, 1e-3: 0.6, 3e-3: 0.62, 1e-2: 0.63, 3e-2: 0.61, 1e-1: 0.5}
    assert stable_rates(sgd, grid) == (0, 6)  # its best, 0.646, is at an added rate
    assert stable_rates(adam, grid) == (3, 6)
    assert stable_rates(adam, ()) == (3, 6)  # no grid stored: every rate it ran


def test_a_mean_without_an_interval_is_said_in_words_and_reports_are_links():
    from optimlab.bench.report import mean_text
    from optimlab.bench.tour import _Section, _section_html, _with_link

    assert [mean_text(0.37, math.inf, 1), mean_text(0.9, math.inf, 2),
            mean_text(0.3, 0.01, 3)] == [
        "0.37 (1 seed: no interval)", "0.9 (2 seeds, all alike: no interval)", "0.3 ± 0.01"]
    page = _section_html(_Section("t", "", [], ["a < b", _with_link("see ", "x/report.html")]))
    assert "<p>a &lt; b</p>" in page
    assert '<p>see <a href="x/report.html">x/report.html</a>.</p>' in page
