"""The training lab's statistics against references optimlab did not write: Student's t
from SciPy, Holm's step-down as its paper states it (Holm 1979) over SciPy's paired t
tests, and the false-difference rate a ranking promises, by simulation; with the corners
an audit found (values near the ends of the float range, equal seeds, losses that start
at or below zero)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from optimlab.bench.analysis import (
    OptimizerSummary,
    _holm,
    mean_ci,
    paired_difference,
    rank,
    t_p_value,
)
from optimlab.bench.trainer import TrainConfig, _blew_up

stats = pytest.importorskip("scipy.stats")


def test_the_t_p_value_is_scipys():
    """The finite series against ``scipy.stats.t.sf``, for 1..60 and some large degrees of
    freedom, from t = 0 to 100. The bound: the series sums at most df/2 terms, each
    within a few units of rounding (2.2e-16) of its value and at most 1, so for df <= 1000
    the sum is within 500 x 4 x 2.2e-16 = 4.4e-13 of the exact one (2.4e-14 measured):
    1e-12 allows that and no real error."""
    worst = 0.0
    for df in [*range(1, 61), 99, 100, 501, 1000]:
        for t in np.r_[0.0, np.logspace(-3, 2, 41), -2.5]:
            worst = max(worst, abs(t_p_value(t, df) - 2 * stats.t.sf(abs(t), df)))
    assert worst < 1e-12, worst
    assert t_p_value(math.inf, 3) == 0.0 and math.isnan(t_p_value(math.nan, 3))
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_p_value(1.0, 0)


def _summary(name: str, values) -> OptimizerSummary:
    values = [float(v) for v in values]
    mean, ci = mean_ci(values)
    return OptimizerSummary(name, 0.1, mean, float(np.std(values, ddof=1)), len(values), 0,
                            {0.1: mean}, ci, None, dict(enumerate(values)))


def test_a_paired_p_value_is_scipys_paired_t_test():
    rng = np.random.default_rng(3)
    for n in (2, 3, 5, 10):
        for _ in range(10):
            a, b = rng.normal(0.8, 0.05, n), rng.normal(0.78, 0.05, n)
            pair = paired_difference(_summary("a", a), _summary("b", b))
            want = stats.ttest_rel(a, b).pvalue
            assert pair.p == pytest.approx(want, rel=1e-6, abs=1e-12)
            assert pair.distinct == (want < 0.05)


def _holm_reference(pvalues: list[float], alpha: float = 0.05) -> set[int]:
    """Holm (1979) as stated: order the m p-values; reject H(1)..H(k-1) where k is the first
    index with p(k) > alpha / (m - k + 1)."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = set()
    for k, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - k):
            break
        rejected.add(i)
    return rejected


def test_the_ranks_comparisons_are_holms_over_scipys_paired_tests():
    """For random sweeps of 3 to 6 optimizers, the pairs :func:`rank` holds to be different
    are those Holm's procedure rejects over SciPy's paired t tests."""
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(60):
        k, n = int(rng.integers(3, 7)), int(rng.integers(3, 8))
        seed_effect = rng.normal(0, 0.05, n)
        values = [0.8 + rng.normal(0, 0.02) * 3 + seed_effect + rng.normal(0, 0.01, n)
                  for _ in range(k)]
        summaries = [_summary(f"o{i}", v) for i, v in enumerate(values)]
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        reference = _holm_reference([stats.ttest_rel(values[i], values[j]).pvalue
                                     for i, j in pairs])
        held = {pairs.index((i, j)) for i, j, _ in
                _holm([(i, j, paired_difference(summaries[i], summaries[j])) for i, j in pairs])}
        assert held == reference
        checked += bool(reference) and len(reference) < len(pairs)
    assert checked >= 10  # cases where Holm held some pairs and not others


def test_optimizers_that_are_all_alike_are_seldom_ranked_apart():
    """Ten optimizers drawn from one distribution (with a per-seed effect they share), five
    seeds: each pair at 95% alone ranked some pair apart in 78% of such sweeps. Held to a
    familywise 95% (Holm) at most 5% are expected (SciPy's paired tests with Bonferroni's
    bound gave 5.7% over 2000 such sweeps); over 1000 sweeps (independent), more than 80,
    4.3 standard deviations above 50, would be a 1-in-100000 event for a procedure that
    keeps its 5%."""
    rng = np.random.default_rng(11)
    apart = 0
    for _ in range(1000):
        effect = rng.normal(0, 0.05, 5)
        summaries = [_summary(f"o{i}", 0.8 + effect + rng.normal(0, 0.01, 5)) for i in range(10)]
        apart += any(label != "=1" for label, _ in rank(summaries))
    assert apart <= 80, apart


def test_two_optimizers_are_ranked_by_their_one_comparison_and_clear_leads_stay():
    """With two optimizers the rank is the paired interval's verdict (Holm's last step is
    the interval itself); a leader clearly ahead of four others is still first alone."""
    a, b = [0.9, 0.91, 0.93], [0.85, 0.87, 0.86]
    assert paired_difference(_summary("a", a), _summary("b", b)).distinct
    assert [label for label, _ in rank([_summary("a", a), _summary("b", b)])] == ["1", "2"]
    rng = np.random.default_rng(5)
    effect = rng.normal(0, 0.05, 6)
    others = [_summary(f"o{i}", 0.7 + effect + rng.normal(0, 0.005, 6)) for i in range(4)]
    ranked = rank([*others, _summary("best", 0.9 + effect + rng.normal(0, 0.005, 6))])
    assert ranked[0][0] == "1" and ranked[0][1].optimizer == "best"


@pytest.mark.parametrize("values", [(1e300, 1.5e300, 2e300), (-1e200, 1e200, 3e200),
                                    (1e-320, 2e-320, 3e-320), (0.3, 0.5, 0.4)])
def test_an_interval_does_not_overflow_or_vanish_near_the_ends_of_the_range(values):
    """The interval from values scaled to about 1 (exactly, by a power of two) and scaled
    back, against SciPy's on the scaled values: 1e300 gave an infinite half-width (said as
    "all alike"), 1e-320 a zero one. The t quantiles are a table of 6 decimals (relative
    error below 2.6e-7 for quantiles of at least 1.96): 1e-6. Subnormals (1e-320) hold about
    three digits: 1e-2."""
    scale = max(abs(v) for v in values)
    scaled = np.array(values) / scale
    want = stats.t.ppf(0.975, len(values) - 1) * stats.sem(scaled) * scale
    mean, half = mean_ci(values)
    assert math.isfinite(half) and half > 0
    assert half == pytest.approx(want, rel=1e-2 if scale < 1e-300 else 1e-6)
    assert mean == pytest.approx(np.mean(scaled) * scale, rel=1e-2 if scale < 1e-300 else 1e-12)


def test_equal_seeds_give_their_value_and_no_width():
    assert mean_ci([0.8, 0.8, 0.8]) == (0.8, 0.0)  # not 0.8000000000000002 +- 3.4e-16
    assert mean_ci([0.8, 0.8]) == (0.8, math.inf)  # two alike: no interval (documented)


@pytest.mark.parametrize("first, last, diverged", [
    (1.0, 10.0, False), (1.0, 10.5, True),        # a positive loss: 10 times its first
    (-100.0, 800.0, False), (-100.0, 900.0, True),  # below zero: a rise of 9 times its size
    (-0.001, 0.05, True), (-0.001, 0.005, False),
    (0.0, 1e-6, False), (0.0, math.inf, True),       # from exactly 0: only a non-finite loss
])
def test_divergence_is_a_rise_by_the_first_losss_size(first, last, diverged):
    run = SimpleNamespace(train_loss=[first, last], iterate_loss=None, test_loss=[0.0, 0.0])
    assert _blew_up(run, TrainConfig()) is diverged


def test_the_advisor_does_not_call_tuned_adam_clearly_beaten_where_the_ranks_tie_them():
    """Lion against tuned Adam alone is a difference (p = 0.02); with a third finalist the
    ranks, held to 95% together, tie all three, and the answer said both "cannot be told
    apart" and a clear gain over tuned Adam."""
    from optimlab.bench.advisor import _versus_tuned

    lion = _summary("lion", [0.60, 0.62, 0.58, 0.61, 0.59])
    adam = _summary("adam", [0.58, 0.615, 0.57, 0.6, 0.585])
    sgd = _summary("sgd", [0.50, 0.70, 0.45, 0.72, 0.55])
    assert paired_difference(lion, adam).distinct
    ranked = rank([lion, adam, sgd])
    assert {label for label, _ in ranked} == {"=1"}
    ties = [s.optimizer for label, s in ranked if s is not lion]
    assert _versus_tuned(lion, [], True, adam, ties)["distinct"] is False
    assert _versus_tuned(lion, [], True, adam, [])["distinct"] is True  # the pair alone


def test_a_pair_that_cannot_be_compared_is_not_one_of_holms_family():
    """An optimizer with one seed in common with the others (an unfinished sweep) made three
    pairs of the family instead of one, and lion (ahead of adam at p = 0.026, alone) tied."""
    lion, adam = _summary("lion", [0.9, 0.91, 0.93]), _summary("adam", [0.85, 0.87, 0.86])
    assert 0.0167 < paired_difference(lion, adam).p < 0.05
    new = OptimizerSummary("new", 0.1, 0.5, 0.0, 1, 0, {0.1: 0.5}, math.inf, None, {0: 0.5})
    labels = {s.optimizer: label for label, s in rank([lion, adam, new])}
    assert labels["adam"] == "2" and labels["lion"] == "=1"
