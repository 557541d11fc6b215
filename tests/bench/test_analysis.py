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
