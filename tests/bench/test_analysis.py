"""Sweep analysis: learning-rate grids, per-optimizer summaries, AlgoPerf profiles."""

import math

import numpy as np
import pytest

from optimlab.bench.analysis import parse_lrs, performance_profile, profile_score, summarize, time_to_target


def test_parse_lrs():
    grid = parse_lrs("1e-4:1e-1:4")
    np.testing.assert_allclose(grid, [1e-4, 1e-3, 1e-2, 1e-1])
    assert parse_lrs("0.01, 0.1") == [0.01, 0.1]
    assert parse_lrs("3e-3:3e-3:1") == [3e-3]


@pytest.mark.parametrize("text", ["", "0,0.1", "-1e-3:1e-1:4", "1e-1:1e-4:3", "a:b:c",
                                  "1e-3:1e-1:0", "nan"])
def test_parse_lrs_rejects(text):
    with pytest.raises(ValueError, match="learning rates"):
        parse_lrs(text)


@pytest.mark.parametrize("text, shown", [("0.1,0.1", "0.1"), ("0.01, 0.1, 1e-2", "0.01"),
                                         ("1e-3:1e-3:3", "0.001")])
def test_repeated_rates_are_refused(text, shown):
    """Each rate trains once: "0.1,0.1" stored a grid of two rates that trained one run,
    and counted twice in the bounds and the progress bar."""
    with pytest.raises(ValueError, match=rf"^learning rates must differ, got {shown} more than "
                                         rf"once in "):
        parse_lrs(text)


def test_a_spec_refuses_repeated_rates():
    from optimlab.bench.sweep import SweepSpec

    with pytest.raises(ValueError, match=r"^SweepSpec: lrs must differ, got 0\.1 more than once"):
        SweepSpec(task="digits", optimizers=("adam",), lrs=(0.1, 0.01, 0.1))
    assert SweepSpec(task="digits", optimizers=("adam",), lrs=(0.1, 0.01)).lrs == (0.1, 0.01)


def test_a_range_of_one_rate_is_refused_rather_than_cut_to_its_low_end():
    with pytest.raises(ValueError, match="COUNT of at least 2"):
        parse_lrs("1e-3:1e-1:1")
    with pytest.raises(ValueError, match="0 < LOW <= HIGH"):
        parse_lrs("1e-1:1e-4:5")


def test_summarize_picks_best_mean_and_counts_divergence():
    records = [
        {"optimizer": "adam", "lr": 1e-3, "seed": 0, "metric": 0.80},
        {"optimizer": "adam", "lr": 1e-3, "seed": 1, "metric": 0.84},
        {"optimizer": "adam", "lr": 1e-2, "seed": 0, "metric": 0.90},
        {"optimizer": "adam", "lr": 1e-2, "seed": 1, "metric": float("nan"), "diverged": True},
        {"optimizer": "sgd", "lr": 0.1, "seed": 0, "metric": 0.7},
        {"optimizer": "sgd", "lr": 0.1, "seed": 1, "metric": 0.9},
    ]
    adam, sgd = sorted(summarize(records), key=lambda s: s.optimizer)
    assert adam.best_lr == 1e-3 and adam.mean == pytest.approx(0.82)
    assert adam.std == pytest.approx(np.std([0.80, 0.84], ddof=1)) and adam.diverged == 1
    assert adam.sensitivity[1e-2] == -math.inf
    assert sgd.mean == pytest.approx(0.8) and sgd.seeds == 2
    (low,) = [s for s in summarize(records[:2], higher_is_better=False)]
    assert low.best_lr == 1e-3 and low.mean == pytest.approx(0.82)


def test_performance_profile_and_score():
    times = {"a": {"adam": 10, "sgd": 20}, "b": {"adam": 30, "sgd": 15},
             "c": {"adam": 5, "sgd": math.inf}}
    taus, rho = performance_profile(times, taus=[1.0, 2.0, 4.0])
    np.testing.assert_allclose(rho["adam"], [2 / 3, 1.0, 1.0])
    np.testing.assert_allclose(rho["sgd"], [1 / 3, 2 / 3, 2 / 3])
    taus, rho = performance_profile(times)
    assert profile_score(taus, rho["adam"]) == pytest.approx(1 - (1 / 3) * (1 / 3), abs=0.01)
    assert profile_score(taus, np.ones_like(taus)) == pytest.approx(1.0)


def test_time_to_target_uses_the_best_lr_and_the_median_over_seeds():
    records = [
        {"optimizer": "adam", "lr": 0.01, "seed": 0, "metric": 0.9, "time_to_target": 2.0},
        {"optimizer": "adam", "lr": 0.01, "seed": 1, "metric": 0.9, "time_to_target": 4.0},
        {"optimizer": "adam", "lr": 0.01, "seed": 2, "metric": 0.9, "time_to_target": 3.0},
        {"optimizer": "adam", "lr": 0.1, "seed": 0, "metric": 0.5, "time_to_target": 1.0},
        {"optimizer": "sgd", "lr": 0.1, "seed": 0, "metric": 0.8, "time_to_target": None},
        {"optimizer": "sgd", "lr": 0.1, "seed": 1, "metric": 0.8, "time_to_target": None},
        {"optimizer": "sgd", "lr": 0.1, "seed": 2, "metric": 0.8, "time_to_target": 5.0},
    ]
    assert time_to_target(records) == {"adam": 3.0, "sgd": math.inf}


def _run(name, lr, seed, metric, score=None, diverged=False):
    return {"optimizer": name, "lr": lr, "seed": seed, "metric": metric, "score": score,
            "diverged": diverged}


def test_a_late_spike_cannot_win_the_tuning():
    from optimlab.bench.analysis import CRITERION, tail_score

    steady = [0.5, 0.8, 0.85, 0.86, 0.86, 0.87, 0.87, 0.87]
    spiky = [0.5, 0.8, 0.9, 0.92, 0.93, 0.94, 0.10, 0.95]  # collapsed at 7/8, came back
    assert tail_score(steady) == 0.87 and tail_score(spiky) == pytest.approx(0.10)
    assert tail_score([3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 9.0, 0.5], higher_is_better=False) == 9.0
    assert np.isnan(tail_score([0.5, float("nan")]))
    records = [_run("rmsprop", 0.1, s, spiky[-1], tail_score(spiky)) for s in (0, 1)] + \
              [_run("rmsprop", 0.01, s, steady[-1], tail_score(steady)) for s in (0, 1)]
    (s,) = summarize(records)
    assert s.best_lr == 0.01  # the final value alone would pick 0.1
    assert s.sensitivity == {0.01: 0.87, 0.1: 0.95}  # the final metrics, for the plot
    assert "last 25%" in CRITERION


def test_the_best_rate_on_the_grid_edge_is_flagged():
    records = [_run("sgd", lr, 0, m) for lr, m in ((0.001, 0.5), (0.01, 0.7), (0.1, 0.9))]
    (top,) = summarize(records)
    assert top.edge == "high" and top.lr_text == "0.1 (top of grid)"
    (bottom,) = summarize(records, higher_is_better=False)
    assert bottom.edge == "low" and bottom.lr_text == "0.001 (bottom of grid)"
    middle = records[:2] + [_run("sgd", 0.1, 0, 0.6)]
    assert summarize(middle)[0].edge is None
    assert summarize(records[:1])[0].edge is None  # one rate: no grid to speak of
    # a tie for the best that takes in one end flags that end, and that end is the pick:
    # the first of the tied rates was, and the tables said "0.01 (top of grid)" with 0.1
    # the top; a flat grid flags neither
    tied = records[:1] + [_run("sgd", lr, 0, 0.94) for lr in (0.01, 0.1)]
    assert summarize(tied)[0].edge == "high" and summarize(tied)[0].best_lr == 0.1
    assert summarize(tied)[0].lr_text == "0.1 (top of grid)"
    low_tie = [_run("sgd", lr, 0, m) for lr, m in ((0.001, 0.94), (0.01, 0.94), (0.1, 0.5))]
    assert summarize(low_tie)[0].lr_text == "0.001 (bottom of grid)"
    flat = [_run("sgd", lr, 0, 0.34) for lr in (1e-4, 1e-3)]
    assert summarize(flat)[0].edge is None


def test_confidence_intervals_and_paired_comparisons():
    from optimlab.bench.analysis import mean_ci, paired_difference, rank

    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1.0 / 3**0.5, rel=1e-6)
    assert mean_ci([1.0])[1] == float("inf")
    # a consistent small gain on every seed is a real difference, even inside the spreads
    a = [_run("adam", 0.01, s, m) for s, m in enumerate((0.80, 0.70, 0.90, 0.75))]
    b = [_run("rmsprop", 0.01, s, m - 0.01) for s, m in enumerate((0.80, 0.70, 0.90, 0.75))]
    # and a noisy one is not
    c = [_run("sgd", 0.01, s, m) for s, m in enumerate((0.99, 0.60, 0.95, 0.70))]
    summaries = {s.optimizer: s for s in summarize(a + b + c)}
    assert paired_difference(summaries["adam"], summaries["rmsprop"]).distinct
    noisy = paired_difference(summaries["adam"], summaries["sgd"])
    assert not noisy.distinct and noisy.low < 0 < noisy.high
    ranks = [(label, s.optimizer) for label, s in rank(list(summaries.values()))]
    # sgd's mean is highest but it cannot be told from adam; rmsprop is clearly below adam
    assert ranks[0] == ("=1", "sgd") and ranks[1] == ("=1", "adam")
    # rank = 1 + the number clearly better: only adam is (sgd cannot be told from rmsprop)
    assert ranks[2] == ("2", "rmsprop")
    one_seed = summarize([_run("x", 0.1, 0, 0.9), _run("y", 0.1, 0, 0.8)])
    assert [label for label, _ in rank(one_seed)] == ["=1", "=1"]  # one seed proves nothing
    # seeds that changed nothing (full batch from one start: one run, repeated) are no
    # evidence either, however small the gap (a float-rounding one was "better")
    repeated = summarize([_run("x", 0.1, s, 0.1332) for s in range(3)]
                         + [_run("y", 0.1, s, 0.13348) for s in range(3)], False)
    same = paired_difference(*repeated)
    assert not same.distinct and same.low == -math.inf and same.high == math.inf
    assert [label for label, _ in rank(repeated, False)] == ["=1", "=1"]


def test_a_rank_is_one_plus_the_number_clearly_better_never_a_chain():
    """A clearly above C, B indistinguishable from both. The greedy grouping put B with A,
    then started a new rank at C for differing from A, and would rank an optimizer apart
    from one it cannot be told from by its position in a chain; a rank is now 1 + the
    number of optimizers clearly better than it (the same whatever the input order)."""
    from optimlab.bench.analysis import paired_difference, rank

    base = (0.80, 0.70, 0.90, 0.75, 0.85)
    a = [_run("a", 0.1, s, m) for s, m in enumerate(base)]
    c = [_run("c", 0.1, s, m - 0.10 + 0.002 * s) for s, m in enumerate(base)]
    b = [_run("b", 0.1, s, m - 0.05 + d) for s, (m, d) in
         enumerate(zip(base, (0.15, -0.15, 0.12, -0.14, 0.10)))]
    summaries = {s.optimizer: s for s in summarize(a + b + c)}
    assert paired_difference(summaries["a"], summaries["c"]).distinct
    assert not paired_difference(summaries["a"], summaries["b"]).distinct
    assert not paired_difference(summaries["b"], summaries["c"]).distinct
    for order in (["a", "b", "c"], ["c", "b", "a"], ["b", "c", "a"]):
        ranked = [(label, s.optimizer) for label, s in rank([summaries[o] for o in order])]
        assert ranked == [("=1", "a"), ("=1", "b"), ("2", "c")], order
    # lower is better: the same comparisons, mirrored
    low = {s.optimizer: s for s in summarize(
        [{**r, "metric": 1 - r["metric"]} for r in a + b + c], False)}
    assert [(label, s.optimizer) for label, s in rank(list(low.values()), False)] == \
        [("=1", "a"), ("=1", "b"), ("2", "c")]
    # two clearly better than C: C is 3rd, the other three tie at the top
    d = [_run("d", 0.1, s, m + n) for s, (m, n) in
         enumerate(zip(base, (0.01, -0.012, 0.004, 0.008, -0.006)))]
    four = summarize(a + b + c + d)
    labels = {s.optimizer: label for label, s in rank(four)}
    assert labels == {"a": "=1", "b": "=1", "d": "=1", "c": "3"}
    # clear differences chain: x above a on the seeds they share, a above c on theirs, and
    # x and c share one seed (no evidence); a and c still never share a rank
    x = [_run("x", 0.1, s, base[s] + 0.05 + n) for s, n in zip((0, 1, 2), (0, 0.001, 0.002))]
    c_late = [_run("c", 0.1, s, base[s] - 0.05 + n) for s, n in zip((2, 3, 4), (0, .001, .002))]
    chain = {s.optimizer: s for s in summarize(x + a + c_late)}
    assert paired_difference(chain["x"], chain["a"]).distinct
    assert paired_difference(chain["a"], chain["c"]).distinct
    assert not paired_difference(chain["x"], chain["c"]).distinct
    assert [(label, s.optimizer) for label, s in rank(list(chain.values()))] == \
        [("1", "x"), ("2", "a"), ("3", "c")]
    # a diverged optimizer is below every one with a finite mean
    e = [_run("e", 0.1, s, math.nan) for s in range(5)]
    labels = {s.optimizer: label for label, s in rank(summarize(a + c + e))}
    assert labels == {"a": "1", "c": "2", "e": "3"}


def test_verdicts_that_go_round_in_a_circle_tie_and_leave_a_first():
    """Seed sets that differ (an unfinished sweep): a beats b on seeds 0-2, b beats c on 3-5,
    c beats a on 6-8, each clearly. The chain put each of them above itself, all three
    ranked "=3" and none first; the cycle orders nothing, so they tie at "=1", and an
    optimizer clearly below all three on every seed stays below them."""
    from optimlab.bench.analysis import paired_difference, rank

    def runs(name, values):
        return [_run(name, 0.1, seed, m) for seed, m in values.items()]

    a = runs("a", {0: .9, 1: .91, 2: .92, 6: .1, 7: .11, 8: .12})
    b = runs("b", {0: .5, 1: .52, 2: .51, 3: .9, 4: .91, 5: .92})
    c = runs("c", {3: .5, 4: .51, 5: .53, 6: .9, 7: .92, 8: .91})
    d = runs("d", {s: 0.01 + 0.001 * s for s in range(9)})
    summaries = {s.optimizer: s for s in summarize(a + b + c + d)}
    for x, y in (("a", "b"), ("b", "c"), ("c", "a")):
        pair = paired_difference(summaries[x], summaries[y])
        assert pair.distinct and pair.low > 0, (x, y)
    for order in (["a", "b", "c", "d"], ["d", "c", "b", "a"]):
        labels = {s.optimizer: label for label, s in rank([summaries[o] for o in order])}
        assert labels == {"a": "=1", "b": "=1", "c": "=1", "d": "4"}, order


def test_a_target_met_at_the_start_scores_one_not_zero():
    taus, rho = performance_profile({"t": {"adam": 0.0, "sgd": 0.0, "rmsprop": 5.0}})
    assert profile_score(taus, rho["adam"]) == pytest.approx(1.0)
    assert profile_score(taus, rho["rmsprop"]) == 0.0


def test_the_t_quantile_table_agrees_with_scipy():
    from scipy.stats import t

    from optimlab.bench.analysis import _t_quantile

    for df in (1, 2, 5, 17, 30, 31, 45, 100, 1000):
        assert _t_quantile(0.975, df) == pytest.approx(t.ppf(0.975, df), rel=1e-5), df
    assert _t_quantile(0.95, 4) == pytest.approx(t.ppf(0.95, 4), rel=1e-12)


def test_fastest_to_target_takes_each_seeds_fastest_rate_then_the_median():
    """AlgoPerf's external tuning (per study the fastest trial, the median over studies),
    not the tables' criterion: adam's lr 0.1 ends best, lr 0.01 reaches first on seed 0."""
    from optimlab.bench.analysis import fastest_to_target

    records = [
        {"optimizer": "adam", "lr": 0.1, "seed": 0, "metric": 0.95, "cost_to_target": 3.0},
        {"optimizer": "adam", "lr": 0.1, "seed": 1, "metric": 0.95, "cost_to_target": 2.0},
        {"optimizer": "adam", "lr": 0.1, "seed": 2, "metric": 0.95, "cost_to_target": 5.0},
        {"optimizer": "adam", "lr": 0.01, "seed": 0, "metric": 0.90, "cost_to_target": 1.0},
        {"optimizer": "adam", "lr": 0.01, "seed": 1, "metric": 0.90, "cost_to_target": None},
        {"optimizer": "adam", "lr": 0.01, "seed": 2, "metric": 0.90, "cost_to_target": 4.0,
         "diverged": True},
        # sgd reached on one seed of two: the median is a never
        {"optimizer": "sgd", "lr": 0.1, "seed": 0, "metric": 0.9, "cost_to_target": 1.0},
        {"optimizer": "sgd", "lr": 0.1, "seed": 1, "metric": 0.9, "cost_to_target": None},
    ]
    assert fastest_to_target(records) == {"adam": 2.0, "sgd": math.inf}  # seeds 1, 2, 5
    assert time_to_target(records, key="cost_to_target")["adam"] == 3.0  # the tables' lr 0.1


def test_two_seeds_with_the_same_gap_are_no_evidence_of_a_difference():
    """With two seeds and the same difference on both (one test example in 360, as float32
    accuracies store it), the paired t interval had zero width and excluded 0: a real
    difference, ranked apart; and the tables showed '± 0'."""
    from optimlab.bench.analysis import mean_ci, paired_difference, rank

    a = [_run("adam", 0.1, 0, 0.9194444417953491), _run("adam", 0.1, 1, 0.8361111283302307)]
    b = [_run("sgd", 0.1, 0, 0.9166666865348816), _run("sgd", 0.1, 1, 0.8333333134651184)]
    summaries = summarize(a + b)
    pair = paired_difference(*summaries)
    assert not pair.distinct and pair.low == -math.inf and pair.high == math.inf
    assert pair.diff == pytest.approx(1 / 360, rel=1e-4)
    assert [label for label, _ in rank(summaries)] == ["=1", "=1"]
    # three seeds with the same gap are a consistent difference
    c = a + [_run("adam", 0.1, 2, 0.7527777791023254)]
    d = b + [_run("sgd", 0.1, 2, 0.75)]
    assert paired_difference(*summarize(c + d)).distinct
    # an interval of zero width from two equal values: '?', not '± 0'
    assert mean_ci([0.9, 0.9]) == (0.9, math.inf)
    (same,) = summarize([_run("x", 0.1, s, 0.9166666865348816) for s in (0, 1)])
    assert same.ci == math.inf
    assert mean_ci([0.9, 0.9, 0.9])[1] == 0.0  # three seeds that agree say something


def test_the_score_of_a_step_profile_is_integrated_exactly():
    from optimlab.bench.analysis import profile_ratios, ratio_score

    taus, rho = performance_profile({"t": {"adam": 1.0, "sgd": 4.0}})
    assert profile_score(taus, rho["sgd"]) == 0.0  # the trapezoid rule gave 0.0017
    assert profile_score(taus, rho["adam"]) == pytest.approx(1.0)
    assert ratio_score([1.0, 2.5, 4.0, math.inf]) == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert ratio_score([1.0 + 1e-9]) < 1.0  # exact for a ratio off the taus' grid
    times = {"t": {"adam": 1.0, "sgd": 1.04, "rmsprop": 1.2}}
    assert profile_ratios(times) == {"adam": [1.0], "rmsprop": [1.2], "sgd": [1.04]}
    spreads = {"t": {"adam": 0.02, "sgd": 0.03, "rmsprop": 0.05}}
    steps = {"t": {"adam": 100, "sgd": 100, "rmsprop": 100}}  # the same steps at 3 costs
    assert profile_ratios(times, spreads, steps) == {"adam": [1.0], "rmsprop": [1.2],
                                                     "sgd": [1.0]}
    with pytest.raises(ValueError, match="steps"):  # a time alone cannot say what is noise
        profile_ratios(times, spreads)


def _ratios(steps: dict[str, float], costs: dict[str, float], spread: float) -> dict:
    """The profile ratios of one task timed steps x cost, each cost measured with ``spread``."""
    from optimlab.bench.analysis import profile_ratios

    times = {"t": {o: steps[o] * costs[o] for o in steps}}
    spreads = {"t": {o: spread for o in steps}}
    return {o: r for o, (r,) in profile_ratios(times, spreads, {"t": steps}).items()}


def test_a_difference_in_steps_is_never_tied_only_the_costs_noise():
    """A profile's time is steps x a calibrated step cost: the steps are deterministic, only
    the cost is measured with noise. Tying any time within 1 + the spreads of the fastest
    scored 15% more steps at the same cost as a tie (spreads 0.08), and 85% more steps at
    spreads 0.45 (SPREAD_LIMIT allows 0.5)."""
    same_cost = {"adam": 1e-3, "sgd": 1e-3}
    assert _ratios({"adam": 100, "sgd": 115}, same_cost, 0.08) == {"adam": 1.0,
                                                                  "sgd": 115 / 100}
    assert _ratios({"adam": 100, "sgd": 185}, same_cost, 0.45)["sgd"] == 185 / 100
    # the same steps at costs the calibration cannot tell apart tie, exactly
    assert _ratios({"adam": 100, "sgd": 100}, {"adam": 1.0, "sgd": 1.1}, 0.08) == \
        {"adam": 1.0, "sgd": 1.0}
    # ... and costs it can tell apart do not
    assert _ratios({"adam": 100, "sgd": 100}, {"adam": 1.0, "sgd": 2.0}, 0.08) == \
        {"adam": 1.0, "sgd": 2.0}
    # fewer steps at a cost within the noise of the fastest's: the steps decide
    ratios = _ratios({"adam": 100, "sgd": 90}, {"adam": 1.0, "sgd": 1.12}, 0.08)
    assert ratios == {"adam": 100 / 90, "sgd": 1.0}
    # costs apart and more steps: the times decide
    assert _ratios({"adam": 100, "sgd": 120}, {"adam": 1.0, "sgd": 1.5}, 0.08)["sgd"] == \
        pytest.approx(1.8)


def test_a_workload_nobody_reached_credits_nobody():
    """inf == inf counted as a tie: an optimizer that never reached the target on a
    workload where nobody did scored ratio 1 there, as if it were the fastest."""
    from optimlab.bench.analysis import profile_ratios, ratio_score

    inf = math.inf
    times = {"x": {"a": inf, "b": 10.0}, "y": {"a": inf, "b": inf}}
    assert profile_ratios(times) == {"a": [inf, inf], "b": [1.0, inf]}
    steps = {"x": {"a": inf, "b": 100}, "y": {"a": inf, "b": inf}}
    spreads = {"x": {"a": 0.05, "b": 0.05}, "y": {"a": 0.05, "b": 0.05}}
    assert profile_ratios(times, spreads, steps) == {"a": [inf, inf], "b": [1.0, inf]}
    assert ratio_score([inf, inf]) == 0.0 and ratio_score([1.0, inf]) == 0.5
    # a profile of workloads nobody reached: every rho 0, every score 0, no NaN
    taus, rho = performance_profile({"y": {"a": inf, "b": inf}})
    for name in ("a", "b"):
        assert not np.isnan(rho[name]).any() and rho[name].max() == 0.0
        assert profile_score(taus, rho[name]) == 0.0
    # the target met at the start by several still ties them
    assert profile_ratios({"t": {"a": 0.0, "b": 0.0}}) == {"a": [1.0], "b": [1.0]}


def test_profile_ratios_are_transitive_and_the_fastest_has_one():
    """Each ratio was the largest of pairwise ratios, steps / steps between costs within the
    spreads: costs 1.0, 1.08, 0.7 at 100, 95, 145 steps gave every optimizer a ratio above 1
    (A 1.053, B 1.011, C 1.015). Dolan & Moré and AlgoPerf: r = t / min t."""
    ratios = _ratios({"A": 100, "B": 95, "C": 145}, {"A": 1.0, "B": 1.08, "C": 0.7}, 0.05)
    # C (0.7) is told apart from A (1.0); B's 1.08 ties A's, so B is timed at A's cost
    assert ratios == {"A": 100 / 95, "B": 1.0, "C": pytest.approx(101.5 / 95)}
    assert min(ratios.values()) == 1.0


def test_costs_tie_by_the_standard_error_of_their_medians():
    """The spread is the scatter of single rounds (IQR over the median), not the uncertainty
    of their median: under load (spreads 0.2) costs 1.3 times apart tied, and the order of
    two clearly different calibrated times flipped (A 1.25, B 1). With the rounds (15) the
    standard error of each median is 1.2533 x (0.2 / 1.349) / sqrt(15) = 4.8%, so 30% apart
    is told apart, and the busy calibration ranks as the quiet one."""
    from optimlab.bench.analysis import costs_tie, profile_ratios

    def ratios(costs, spread, rounds):
        steps = {"A": 100, "B": 80}
        times = {"t": {o: steps[o] * costs[o] for o in steps}}
        return {o: r for o, (r,) in profile_ratios(
            times, {"t": dict.fromkeys(steps, spread)}, {"t": steps},
            {"t": dict.fromkeys(steps, rounds)}).items()}

    quiet = ratios({"A": 1.0, "B": 1.3}, 0.05, 15)
    assert quiet == {"A": 1.0, "B": pytest.approx(1.04)}
    assert ratios({"A": 1.0, "B": 1.3}, 0.2, 15) == quiet  # busy: the same
    # within Student's t standard errors of their difference: one cost, by steps
    assert ratios({"A": 1.0, "B": 1.05}, 0.2, 15) == {"A": 1.25, "B": 1.0}
    assert costs_tie(1.0, 0.2, 15, 1.05, 0.2, 15) and not costs_tie(1.0, 0.2, 15, 1.3, 0.2, 15)
    # the bound, exactly: t x sqrt(se^2 + se'^2), t at 95% with Welch-Satterthwaite's degrees
    # of freedom, each side's 14 / 2.72 = 5.15 (10.2 together, rounded down: 10; 2.228139)
    se = 1.2533 / 1.349 * 0.03 / math.sqrt(15)
    bound = 0.0
    for _ in range(50):  # the other's standard error scales with its cost, 1 + bound
        bound = 2.228139 * math.hypot(se, se * (1 + bound))
    assert costs_tie(1.0, 0.03, 15, 1.0 + 0.999 * bound, 0.03, 15)
    assert not costs_tie(1.0, 0.03, 15, 1.0 + 1.001 * bound, 0.03, 15)
    # rounds not known (summaries stored before cost_rounds): the spreads' rule, as before
    assert costs_tie(1.0, 0.2, None, 1.3, 0.2, None) and costs_tie(1.0, 0.2, 15, 1.3, 0.2, None)
    assert ratios({"A": 1.0, "B": 1.3}, 0.2, None) == {"A": 1.25, "B": 1.0}


@pytest.mark.parametrize("rounds", [3, 15])
def test_equal_costs_are_told_apart_at_most_about_5_percent_of_the_time(rounds):
    """Two equal step costs, each calibrated as ``cost.py`` does (the median of ``rounds``
    timings, the inclusive interquartile range over it as the spread): the tie rule is a
    95% test, so it may tell them apart in about 5% of calibrations. With the normal's 1.96
    it did in 20% at 3 rounds and 8% at 15, since the spreads are estimated too; Student's t
    on Welch and Satterthwaite's degrees of freedom (each side (rounds - 1) / 2.72) gives
    0.04% and 4.3% (20,000 pairs). 4,000 seeded pairs here: the bound 6% is more than three
    standard errors of the estimate (0.35%) above 5%, below the old rule's rates."""
    from optimlab.bench.analysis import costs_tie

    rng = np.random.default_rng(rounds)
    times = 1.0 + 0.05 * rng.standard_normal((4000, 2, rounds))
    medians = np.median(times, axis=2)
    q1, q3 = np.percentile(times, [25, 75], axis=2)  # numpy's linear: the inclusive method
    spreads = (q3 - q1) / medians
    apart = sum(not costs_tie(a, sa, rounds, b, sb, rounds)
                for (a, b), (sa, sb) in zip(medians.tolist(), spreads.tolist()))
    assert apart / len(medians) <= 0.06, apart


def test_the_tie_rule_takes_spreads_at_the_ends_of_the_float_range():
    """Student's t's degrees of freedom raised on a NaN spread (math.floor(nan)) and
    overflowed at 1e200; a NaN spread ties nothing, an infinite one (nothing known) ties,
    and the bound does not depend on the scale of the costs."""
    from optimlab.bench.analysis import cost_bound, costs_tie, timed_against_fastest

    assert not costs_tie(1.0, math.nan, 5, 1.1, 0.1, 5)
    assert costs_tie(1.0, math.inf, 5, 1.1, 0.1, 5)
    for scale in (1e-200, 1.0, 1e200):
        assert cost_bound(scale, 15, scale, 15) == pytest.approx(2.228139)
        assert costs_tie(scale, 0.1, 15, 1.0001 * scale, 0.1, 15)
        assert not costs_tie(scale, 0.01, 15, 1.5 * scale, 0.01, 15)
    assert timed_against_fastest({"a": 10.0, "b": 10.5}, {"a": 10, "b": 10},
                                 {"a": math.nan, "b": 0.1}, {"a": 15, "b": 15})[1] == []


def test_a_mean_difference_of_float32_rounding_is_no_difference_at_any_seeds():
    """b one float32 unit in the last place above a on every seed: with two seeds the
    rounding test said so, from three on the paired interval (of zero width) excluded 0,
    and b ranked first on a difference of 6e-8."""
    from optimlab.bench.analysis import paired_difference, rank

    a = np.float32([0.5, 0.6, 0.7, 0.8])
    b = np.nextafter(a, np.float32(1))
    for n in (2, 3, 4):
        summaries = summarize([_run("a", 0.1, s, float(v)) for s, v in enumerate(a[:n])]
                              + [_run("b", 0.1, s, float(v)) for s, v in enumerate(b[:n])])
        assert not paired_difference(summaries[1], summaries[0]).distinct
        assert [label for label, _ in rank(summaries)] == ["=1", "=1"]
    # a real difference, consistent but small (2.5e-5 of the values), is still told apart
    x = [0.123401, 0.123455, 0.123432]
    y = [v + 3e-6 + 1e-7 * i for i, v in enumerate(x)]
    p, q = summarize([_run("p", 0.1, s, v) for s, v in enumerate(x)]
                     + [_run("q", 0.1, s, v) for s, v in enumerate(y)], False)
    assert paired_difference(p, q).distinct


def test_rates_that_tie_up_to_the_rounding_of_their_means_tie_for_the_edge():
    """The same three values in another order: means 0.2 + 4e-17 and 0.2 - 2e-17. Tied only
    where exactly equal, the middle rate won alone and the top of the grid, tied with it,
    went unflagged."""
    vals = [0.1, 0.2, 0.3]
    assert np.mean(vals) != np.mean(vals[::-1])
    records = [_run("c", 0.01, s, v) for s, v in enumerate(vals)] \
        + [_run("c", 0.1, s, v) for s, v in enumerate(vals[::-1])] \
        + [_run("c", 0.001, s, 0.0) for s in range(3)]
    (s,) = summarize(records)
    assert s.edge == "high" and s.best_lr == 0.1 and s.lr_text == "0.1 (top of grid)"


def test_a_run_that_reached_the_target_and_diverged_later_keeps_its_first_reach():
    """AlgoPerf's time to result is the first time the target is reached: a run that got
    there at step 50 and diverged later counted as never, scored 0 against 400 steps."""
    from optimlab.bench.analysis import fastest_to_target, profile_ratios

    records = [{"optimizer": "fast", "lr": 1.0, "seed": s, "metric": 0.9,
                "steps_to_target": 50, "diverged": True} for s in range(3)] \
        + [{"optimizer": "slow", "lr": 0.1, "seed": s, "metric": 0.9,
            "steps_to_target": 400, "diverged": False} for s in range(3)]
    times = fastest_to_target(records, "steps_to_target")
    assert times == {"fast": 50.0, "slow": 400.0}
    assert profile_ratios({"w": times}) == {"fast": [1.0], "slow": [8.0]}
    # the tables' time (at the best rate) counts it the same way
    assert time_to_target(records, key="steps_to_target")["fast"] == 50.0


def test_a_nan_time_counts_as_never_reached_not_as_the_fastest():
    """NaN compares false with everything, so min() took a NaN time (a table's missing cell)
    for the fastest: its workload then gave every other optimizer a ratio of NaN."""
    from optimlab.bench.analysis import profile_ratios, timed_against_fastest

    nan = float("nan")
    times = {"t1": {"a": nan, "b": 2.0, "c": 1.0}, "t2": {"a": 3.0, "b": 2.0, "c": 1.0}}
    expected = {"a": [math.inf, 3.0], "b": [2.0, 2.0], "c": [1.0, 1.0]}
    assert profile_ratios(times) == expected
    assert profile_ratios({**times, "t1": {**times["t1"], "a": math.inf}}) == expected
    assert timed_against_fastest({"a": nan, "c": 1.0})[0] == "c"


def test_the_score_of_a_grid_that_stops_short_of_4_holds_its_last_value():
    """A tau grid of [1, 3] scored a ratio of 1 at 2/3 (the area from 3 to 4 lost); rho never
    falls, so its last sample holds to 4. A grid not starting at 1 cannot be integrated."""
    from optimlab.bench.analysis import ratio_score

    times = {"w": {"a": 1.0, "b": 2.0}}
    for taus in (None, np.linspace(1, 3, 201), np.linspace(1, 5, 401)):
        grid, rho = performance_profile(times, taus=taus)
        assert profile_score(grid, rho["a"]) == pytest.approx(ratio_score([1.0]))
        assert profile_score(grid, rho["b"]) == pytest.approx(ratio_score([2.0]))
    grid, rho = performance_profile(times, taus=np.linspace(1.5, 4, 11))
    with pytest.raises(ValueError, match="must include 1"):
        profile_score(grid, rho["a"])


def test_time_to_target_reads_the_rate_the_tables_show():
    """A tie at the grid's top edge among the rates that ended: the tables (given the grid)
    keep the lowest tied rate, and time_to_target, given the same grid, reads that one."""
    def rec(lr, seed, metric, steps):
        return {**_run("a", lr, seed, metric, score=metric), "time_to_target": steps}

    records = [rec(lr, s, 0.8, {0.01: 5, 0.1: 9}[lr]) for lr in (0.01, 0.1) for s in range(2)]
    records += [rec(0.001, s, 0.5, None) for s in range(2)]
    grid = {"a": [0.001, 0.01, 0.1, 1.0]}
    shown = summarize(records, grids=grid)[0].best_lr
    assert shown == 0.01
    assert time_to_target(records, grids=grid) == {"a": 5.0}


# ---------------------------------------------------------------- what mutation testing found
# Each test below pins a rule that a one-token change of the code (a mutant) broke with no
# test failing; expected values come from the definitions (scipy's t quantile, medians).


def _summary(name, per_seed, lr=0.1):
    from optimlab.bench.analysis import OptimizerSummary

    values = np.array(list(per_seed.values()), dtype=float)
    return OptimizerSummary(name, lr, float(values.mean()), float(values.std(ddof=1)),
                            len(values), 0, {lr: float(values.mean())}, per_seed=per_seed)


def test_a_noisy_optimizer_is_told_apart_from_a_repeated_run():
    """One side repeating one run (a full-batch baseline) and the other varying by seed is a
    real paired comparison: t interval over the differences .40, .41, .42."""
    from scipy import stats

    from optimlab.bench.analysis import paired_difference, rank

    a = _summary("a", {0: 0.90, 1: 0.91, 2: 0.92})
    b = _summary("b", {0: 0.5, 1: 0.5, 2: 0.5})
    pair = paired_difference(a, b)
    # the t quantile comes from a table of 7 significant digits: relative error below 1e-6
    half = stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)
    assert pair.diff == pytest.approx(0.41)
    assert pair.low == pytest.approx(0.41 - half, rel=1e-6)
    assert pair.high == pytest.approx(0.41 + half, rel=1e-6)
    assert pair.distinct
    assert [(label, s.optimizer) for label, s in rank([b, a])] == [("1", "a"), ("2", "b")]


def test_identical_results_are_not_distinct_and_an_interval_touching_zero_neither():
    from optimlab.bench.analysis import Paired, paired_difference

    same = {0: 0.5, 1: 0.6, 2: 0.7}
    pair = paired_difference(_summary("a", same), _summary("b", dict(same)))
    assert (pair.diff, pair.low, pair.high) == (0.0, 0.0, 0.0) and not pair.distinct
    assert not Paired("a", "b", 0.1, 0.0, 0.2, 3).distinct
    assert not Paired("a", "b", -0.1, -0.2, 0.0, 3).distinct
    assert Paired("a", "b", 0.1, 1e-12, 0.2, 3).distinct


def test_the_tuning_score_reads_the_last_quarter_rounded_up():
    """TAIL = 0.25 of 5 evaluations is 1.25: the last 2 count (ceil), at least the last one."""
    from optimlab.bench.analysis import TAIL, tail_score

    assert TAIL == 0.25
    assert tail_score([0.1, 0.2, 0.3, 0.5, 0.9]) == 0.5
    assert tail_score([0.9, 0.8, 0.7, 0.6, 0.2], higher_is_better=False) == 0.6
    assert tail_score([1, 2, 3]) == 3
    assert tail_score([0.9, 0.1, 0.8, 0.85]) == 0.85  # the last 1 of 4


def test_a_stored_true_is_not_a_time_to_the_target():
    from optimlab.bench.analysis import fastest_to_target

    assert fastest_to_target([{"optimizer": "a", "seed": 0, "cost_to_target": True}]) == \
        {"a": math.inf}
    assert fastest_to_target([{"optimizer": "a", "seed": 0, "cost_to_target": 3}]) == {"a": 3.0}
