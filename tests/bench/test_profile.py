"""Performance profiles across sweeps (optimlab.bench.profile): a profile compares the same
optimizers on every sweep, so one that a sweep did not run is left out and named, never
scored as a failure there."""

import math

import numpy as np
import pytest

from optimlab.bench.analysis import performance_profile
from optimlab.bench.profile import Profile, build_profile
from optimlab.bench.store import RunStore


def _sweep(store, cost: dict[str, float | None]) -> int:
    """A stored sweep with one finished run per optimizer, reaching the target at ``cost``
    seconds (None: never)."""
    sweep = store.open_sweep({"task": "digits", "optimizers": list(cost), "target": 0.5,
                              "metric": {"name": "accuracy", "higher_is_better": True},
                              "times": list(cost.values())})  # (a config opens one sweep)
    ids = store.add_runs(sweep, [{"optimizer": o, "hparams": {"lr": 0.1}, "seed": 0}
                                 for o in cost])
    for run, seconds in zip(ids, cost.values()):
        store.finish_run(run, "finished", summary={
            "final_metric": 0.9, "seconds_per_step": 0.01, "cost_to_target": seconds,
            "steps_to_target": None if seconds is None else round(seconds * 100)})
    return sweep


@pytest.fixture
def store(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    yield store
    store.close()


def test_an_optimizer_missing_from_a_sweep_is_left_out_and_named(store):
    first = _sweep(store, {"adam": 1.0, "sgd": 2.0, "rmsprop": 0.5})
    second = _sweep(store, {"adam": 2.0, "sgd": 1.0})
    profile = build_profile(store, [first, second])
    assert set(profile.rho) == set(profile.scores) == {"adam", "sgd"}
    assert profile.times == {"1: digits": {"adam": 1.0, "sgd": 2.0},
                             "2: digits": {"adam": 2.0, "sgd": 1.0}}
    # each fastest once, twice as slow on the other: the same score
    assert profile.scores["adam"] == pytest.approx(profile.scores["sgd"])
    assert profile.left_out == {"rmsprop": ["sweep 2"]}
    table = profile.table()
    assert "rmsprop" not in table.splitlines()[0] and "not reached" not in table
    assert table.splitlines()[-1] == ("rmsprop: left out, not run in sweep 2 (a profile "
                                      "compares the optimizers run on every workload)")
    # a sweep that ran an optimizer and never reached the target still scores it 0 there
    third = _sweep(store, {"adam": 1.0, "sgd": None})
    profile = build_profile(store, [first, third])
    assert profile.left_out == {"rmsprop": ["sweep 3"]}
    assert profile.rows()[1][1][2] == "not reached"
    assert profile.scores["sgd"] < profile.scores["adam"]


def test_fewer_than_two_optimizers_in_common_is_refused(store):
    first = _sweep(store, {"adam": 1.0, "sgd": 2.0})
    second = _sweep(store, {"adam": 2.0, "rmsprop": 1.0})
    alone = _sweep(store, {"rmsprop": 1.0})
    with pytest.raises(ValueError, match=r"^sweeps 1, 2 have only adam in common \(rmsprop is "
                                         r"not in sweep 1; sgd is not in sweep 2\), and a "
                                         r"performance profile compares"):
        build_profile(store, [first, second])
    with pytest.raises(ValueError, match="sweeps 1, 3 have no optimizer in common"):
        build_profile(store, [first, alone])
    with pytest.raises(ValueError, match="^sweep 3 ran only rmsprop, and"):
        build_profile(store, [alone])


def test_a_ragged_table_of_times_is_refused_and_shown_as_not_run():
    with pytest.raises(ValueError, match="task 'b' has no time for sgd"):
        performance_profile({"a": {"adam": 1.0, "sgd": 2.0}, "b": {"adam": 1.0}})
    taus = np.linspace(1, 4, 4)
    profile = Profile({"a": {"adam": 1.0, "sgd": math.inf}, "b": {"adam": 1.0}}, taus,
                      {"adam": np.ones(4), "sgd": np.zeros(4)}, {"adam": 1.0, "sgd": 0.0})
    _, rows = profile.rows()
    assert rows[0][1:] == ["1 s (1.00x)", "not reached"] and rows[1][1:] == ["1 s (1.00x)",
                                                                             "not run"]


def test_runs_that_never_ended_are_not_scored_as_not_reaching(store):
    """A killed sweep keeps runs pending or running: an optimizer none of whose runs ended
    is "not run" there and left out (it was scored "not reached", so a rival that trained
    first won), and the sweep is said to be unfinished."""
    first = _sweep(store, {"adam": 1.0, "sgd": 2.0, "rmsprop": 3.0})
    killed = _sweep(store, {"sgd": 1.0})
    store.add_runs(killed, [{"optimizer": "adam", "hparams": {"lr": 0.1}, "seed": 0},
                            {"optimizer": "rmsprop", "hparams": {"lr": 0.1}, "seed": 0}])
    store.start_run(store.pending_runs(killed)[0].id)  # adam: running when killed
    with pytest.raises(ValueError, match="only sgd in common"):
        build_profile(store, [first, killed])
    store.add_runs(killed, [{"optimizer": "adam", "hparams": {"lr": 0.2}, "seed": 0}])
    (run,) = [r for r in store.pending_runs(killed) if r.hparams["lr"] == 0.2]
    store.finish_run(run.id, "finished", summary={"final_metric": 0.9, "seconds_per_step": 0.01,
                                                  "cost_to_target": 0.5, "steps_to_target": 50})
    profile = build_profile(store, [first, killed])
    assert set(profile.rho) == {"adam", "sgd"} and profile.left_out == {"rmsprop": ["sweep 2"]}
    assert profile.times["2: digits"] == {"adam": 0.5, "sgd": 1.0}
    assert "2: digits: unfinished (2 runs not ended)" in profile.table()
    nothing = store.open_sweep({"task": "digits", "optimizers": ["adam"], "target": 0.5})
    store.add_runs(nothing, [{"optimizer": "adam", "hparams": {"lr": 0.1}, "seed": 0}])
    with pytest.raises(ValueError, match="sweep 3 has no run that ended yet"):
        build_profile(store, [first, nothing])


def test_a_target_met_before_training_ties_and_is_said(store):
    # it divided by the best time, 0: ZeroDivisionError
    first = _sweep(store, {"adam": 1.0, "sgd": 2.0})
    at_start = _sweep(store, {"adam": 0.0, "sgd": 0.0})
    profile = build_profile(store, [first, at_start])
    assert profile.rows()[1][1] == ["2: digits", "0 s (1.00x)", "0 s (1.00x)"]
    assert "2: digits: the target was met before the first step" in profile.table()


def test_arguments_of_the_wrong_type_are_refused_in_one_line(store, tmp_path):
    """One sweep id, a string, a path for the store: one-line errors saying what is needed,
    not a TypeError or AttributeError from deep inside."""
    first = _sweep(store, {"adam": 1.0, "sgd": 2.0})
    second = _sweep(store, {"adam": 2.0, "sgd": 1.0})
    for ids in (first, "12", None, {first: second}):
        with pytest.raises(ValueError, match=r"^build_profile needs a list of sweep ids \(such as "
                                             r"\[1, 2\], or \[1\] for one sweep\), not ") as err:
            build_profile(store, ids)
        assert "\n" not in str(err.value)
    path = str(tmp_path / "runs.db")
    with pytest.raises(TypeError, match=r"^build_profile reads a RunStore, not a str \('.*runs\.db'\): "
                                        r"open it with RunStore\(path\)$"):
        build_profile(path, [first, second])
    # any iterable of ids is a list of them, a generator too
    assert build_profile(store, (i for i in (first, second))).times == \
        build_profile(store, [first, second]).times


def test_a_sweep_given_twice_is_refused(store):
    first = _sweep(store, {"adam": 1.0, "sgd": 2.0})
    with pytest.raises(ValueError, match="sweep 1 is given more than once"):
        build_profile(store, [first, first])


def test_the_same_optimizer_with_other_fixed_hyperparameters_is_another_one(store):
    plain = _sweep(store, {"adam": 1.0, "sgd": 2.0})
    tuned = store.open_sweep({"task": "digits", "optimizers": ["adam", "sgd"], "target": 0.5,
                              "hparams": {"sgd": {"momentum": 0.9}}})
    for run in store.add_runs(tuned, [{"optimizer": o, "hparams": {"lr": 0.1}, "seed": 0}
                                      for o in ("adam", "sgd")]):
        store.finish_run(run, "finished", summary={"final_metric": 0.9, "cost_to_target": 1.0,
                                                   "seconds_per_step": 0.01})
    with pytest.raises(ValueError, match=r"only adam in common \(sgd is not in sweep 2; "
                                         r"sgd \(momentum=0.9\) is not in sweep 1\)"):
        build_profile(store, [plain, tuned])


def test_a_target_read_every_few_steps_is_said_to_be_exact_to_that_many(store):
    first = _sweep(store, {"adam": 1.0, "sgd": 2.0})
    coarse = store.open_sweep({"task": "digits", "optimizers": ["adam", "sgd"], "target": 0.5,
                               "train": {"steps": 100, "eval_every": 50}})
    for run in store.add_runs(coarse, [{"optimizer": o, "hparams": {"lr": 0.1}, "seed": 0}
                                       for o in ("adam", "sgd")]):
        store.finish_run(run, "finished", summary={"final_metric": 0.9, "cost_to_target": 1.0,
                                                   "seconds_per_step": 0.01})
    assert ("2: digits: the target is checked at evaluations, every 50 steps, so a time to "
            "target is exact to 50 steps") in build_profile(store, [first, coarse]).table()


def _runs(store, target: float, runs: list[tuple], **config) -> int:
    """A stored sweep of finished runs ``(optimizer, lr, seed, score, summary)``."""
    names = list(dict.fromkeys(r[0] for r in runs))
    sweep = store.open_sweep({"task": "digits", "optimizers": names, "target": target,
                              "metric": {"name": "accuracy", "higher_is_better": True},
                              "runs": [r[:3] for r in runs], **config})
    ids = store.add_runs(sweep, [{"optimizer": o, "hparams": {"lr": lr}, "seed": seed}
                                 for o, lr, seed, _, _ in runs])
    for run, (_, _, _, score, summary) in zip(ids, runs):
        store.finish_run(run, "finished", summary={"final_metric": score, "score": score,
                                                   **summary})
    return sweep


def _costed(steps, seconds, spread=0.01):
    """A summary reaching the target in ``steps`` (None: never) at ``seconds`` a step."""
    out = {"steps_to_target": steps, "seconds_per_step": seconds, "gradients_per_step": 1.0,
           "cost_spread": spread, "cost_noisy": False, "wall_time": 1.0}
    if steps is not None:
        out.update(cost_to_target=steps * seconds, gradients_to_target=steps)
    return out


def test_a_profile_times_the_fastest_rate_per_seed_then_the_median_over_seeds(store):
    """AlgoPerf's external tuning: per study the fastest trial, the median over studies;
    here per seed the fastest rate. The tables' tuning criterion (the rate that ends best)
    timed digits' adam at lr 0.1 (15 steps) though lr 0.01 reached 0.8 in 10, and ranked
    sgd first."""
    from optimlab.bench.analysis import TIMING_RULE

    a = 0.000405  # adam's calibrated step cost; sgd's is 0.00036
    sweep = _runs(store, 0.8, [
        ("adam", 0.01, 0, 0.905, _costed(10, a)), ("adam", 0.01, 1, 0.916, _costed(10, a)),
        ("adam", 0.1, 0, 0.930, _costed(15, a)), ("adam", 0.1, 1, 0.903, _costed(15, a)),
        ("sgd", 0.01, 0, 0.230, _costed(None, 0.00036)),
        ("sgd", 0.01, 1, 0.058, _costed(None, 0.00036)),
        ("sgd", 0.1, 0, 0.811, _costed(12, 0.00036)), ("sgd", 0.1, 1, 0.764, _costed(13, 0.00036))])
    profile = build_profile(store, [sweep])
    times = profile.times["1: digits"]
    assert times["adam"] == pytest.approx(10 * a)  # not 15 steps: the tables' best rate
    assert times["sgd"] == pytest.approx(12.5 * 0.00036)
    assert profile.scores["adam"] == 1.0 and profile.scores["sgd"] < 1.0
    assert profile.notes()[0] == f"time to the target: {TIMING_RULE}"
    assert "AlgoPerf's external tuning ruleset" in profile.table()


def test_a_workload_where_an_optimizer_has_no_cost_compares_steps_and_says_so(store):
    """Both reached the target in 10 steps; adam's runs have no calibrated cost. Timing the
    workload by cost scored adam "not reached" (0) where the report says "not measured"."""
    uncosted = {"steps_to_target": 10, "time_to_target": 0.5, "wall_time": 1.0}
    sweep = _runs(store, 0.8, [("sgd", 0.1, 0, 0.9, _costed(10, 0.001)),
                               ("sgd", 0.1, 1, 0.9, _costed(10, 0.001)),
                               ("adam", 0.1, 0, 0.9, uncosted), ("adam", 0.1, 1, 0.9, uncosted)])
    profile = build_profile(store, [sweep])
    assert profile.basis == {"1: digits": "steps"}
    assert profile.times["1: digits"] == {"sgd": 10, "adam": 10}
    assert profile.scores == {"sgd": 1.0, "adam": 1.0}
    table = profile.table()
    assert "not reached" not in table and "1: digits (steps)" in table
    assert ("1: digits: adam has no calibrated step cost there, so it compares steps to the "
            "target") in table


def test_a_calibration_too_noisy_to_rank_by_is_not_ranked_by(store):
    """A cost too noisy to rank by compares gradient evaluations, not steps: L-BFGS's 5
    steps of 20 gradients each are 100, more than sgd's 30; by steps L-BFGS won, 6 times
    faster."""
    lbfgs = {**_costed(5, 0.00046, 69.7), "cost_noisy": True, "gradients_per_step": 20.0,
             "gradients_to_target": 100.0}
    sweep = _runs(store, 0.8, [("sgd", 0.1, 0, 0.9, _costed(30, 0.001)),
                               ("lbfgs", 0.1, 0, 0.9, lbfgs)])
    profile = build_profile(store, [sweep])
    assert profile.basis == {"1: digits": "gradients"}
    assert profile.times["1: digits"] == {"sgd": 30, "lbfgs": 100}
    assert profile.scores == {"sgd": 1.0, "lbfgs": pytest.approx((4 - 100 / 30) / 3)}
    table = profile.table()
    assert "1: digits (gradient evals)" in table and "100 gradients (3.33x)" in table
    assert ("the step cost of lbfgs (6970%) was calibrated with a spread beyond 50% of it (too "
            "noisy to rank by), so it compares gradient evaluations to the target (steps x "
            "the gradients a step evaluates: lbfgs 20, sgd 1)") in table
    # runs that do not store their gradient evaluations compare steps, and say so
    old = _runs(store, 0.8, [("sgd", 0.1, 0, 0.9, {**_costed(30, 0.001),
                                                   "gradients_to_target": None}),
                             ("lbfgs", 0.1, 0, 0.9, {**lbfgs, "gradients_to_target": None})],
                case="old")
    profile = build_profile(store, [old])
    assert profile.basis == {"2: digits": "steps"}
    assert profile.times["2: digits"] == {"sgd": 30, "lbfgs": 5}
    assert "so it compares steps to the target (its runs do not store their gradient" in \
        profile.table()


def test_costs_tie_by_the_standard_error_of_their_medians_where_the_rounds_are_stored(store):
    """Step costs 30% apart, each the median of 15 rounds that spread 20% (a busy machine):
    the standard error of each median is about 5%, so the calibration tells them apart, and
    sgd's 80 steps at the dearer cost are slower than adam's 100 (1.04x). Tying costs within
    the spreads (1 + 0.2 + 0.2) compared steps alone and ranked sgd first; runs stored
    without ``cost_rounds`` keep that rule."""
    def run(steps, seconds, rounds):
        return {**_costed(steps, seconds, 0.2), "cost_to_target": steps * seconds,
                **({"cost_rounds": rounds} if rounds else {})}

    busy = _runs(store, 0.8, [("adam", 0.1, 0, 0.9, run(100, 0.0010, 15)),
                              ("sgd", 0.1, 0, 0.9, run(80, 0.0013, 15))])
    profile = build_profile(store, [busy])
    assert profile.ratios["1: digits"] == {"adam": 1.0, "sgd": pytest.approx(1.04)}
    assert "ratio by steps" not in profile.table()
    old = _runs(store, 0.8, [("adam", 0.1, 0, 0.9, run(100, 0.0010, None)),
                             ("sgd", 0.1, 0, 0.9, run(80, 0.0013, None))], case="old")
    profile = build_profile(store, [old])
    assert profile.ratios["2: digits"] == {"adam": 1.25, "sgd": 1.0}
    assert ("2: digits: adam (1.25x, time 1.00x), sgd (1.00x, time 1.04x): ratio by steps to "
            "the target, not by time: the calibrations cannot tell the step cost of sgd from "
            "adam's, the fastest's (within their measured spreads), so it is timed at adam's "
            "cost and only the steps tell the two apart") in profile.table()
    assert "tied" not in profile.table()
    # costs 3% apart, 15 rounds each that spread 20%: one cost, so the steps decide
    close = _runs(store, 0.8, [("adam", 0.1, 0, 0.9, run(100, 0.00100, 15)),
                               ("sgd", 0.1, 0, 0.9, run(100, 0.00103, 15))], case="close")
    profile = build_profile(store, [close])
    assert profile.ratios["3: digits"] == {"adam": 1.0, "sgd": 1.0}
    assert ("sgd took no more steps to the target than the fastest, at a step cost the "
            "calibrations cannot tell from its (within a 95% Student's t bound on the "
            "difference of their medians)") in profile.table()


def test_a_run_that_diverged_after_reaching_the_target_keeps_its_first_reach(store):
    """fast reached the target at step 50 on every seed and diverged later: profiles
    scored it 0 (never reached) against slow's 400 steps."""
    sweep = store.open_sweep({"task": "digits", "optimizers": ["fast", "slow"], "target": 0.8,
                              "metric": {"name": "accuracy", "higher_is_better": True}})
    runs = [("fast", 1.0, s, "diverged", 50) for s in range(2)] + \
        [("slow", 0.1, s, "finished", 400) for s in range(2)]
    ids = store.add_runs(sweep, [{"optimizer": o, "hparams": {"lr": lr}, "seed": s}
                                 for o, lr, s, _, _ in runs])
    for run, (_, _, _, status, steps) in zip(ids, runs):
        store.finish_run(run, status, summary={
            "final_metric": float("nan") if status == "diverged" else 0.9,
            **_costed(steps, 0.001), "cost_to_target": steps * 0.001})
    profile = build_profile(store, [sweep])
    assert profile.times["1: digits"] == {"fast": pytest.approx(0.05),
                                          "slow": pytest.approx(0.4)}
    assert profile.scores == {"fast": 1.0, "slow": 0.0}


def test_times_within_the_calibrations_spread_tie(store):
    """Two optimizers that reach the target in the same steps at step costs 3% apart, each
    measured with a spread of 5%: the calibration cannot tell them apart, so noise cannot
    order them; 30% apart, it can."""
    close = _runs(store, 0.8, [("sgd", 0.1, 0, 0.9, _costed(20, 0.00100, 0.05)),
                               ("momentum", 0.1, 0, 0.9, _costed(20, 0.00103, 0.05))])
    profile = build_profile(store, [close])
    assert profile.scores == {"sgd": 1.0, "momentum": 1.0}
    assert profile.rows()[1][0][1:] == ["0.0206 s (1.00x)", "0.02 s (1.00x)"]
    assert ("momentum took no more steps to the target than the fastest, at a step cost the "
            "calibrations cannot tell from its (within their measured spreads), so tied with "
            "it (ratio 1)") in profile.table()
    apart = _runs(store, 0.8, [("sgd", 0.1, 0, 0.9, _costed(20, 0.00100, 0.05)),
                               ("momentum", 0.1, 0, 0.9, _costed(20, 0.00130, 0.05))],
                 case="apart")
    assert build_profile(store, [apart]).scores["momentum"] == pytest.approx((4 - 1.3) / 3)


def test_an_optimizer_whose_runs_are_all_pending_is_said_not_finished(store):
    first = _sweep(store, {"adam": 1.0, "sgd": 2.0, "rmsprop": 3.0})
    killed = _sweep(store, {"adam": 1.0, "sgd": 1.0})
    store.add_runs(killed, [{"optimizer": "rmsprop", "hparams": {"lr": 0.1}, "seed": 0}])
    third = _sweep(store, {"adam": 1.0, "sgd": 1.5})
    profile = build_profile(store, [first, killed, third])
    assert profile.left_out == {"rmsprop": ["sweep 2", "sweep 3"]}
    assert ("rmsprop: left out, not run in sweep 3; not finished in sweep 2 (a profile "
            "compares the optimizers run on every workload)") in profile.notes()


def test_the_score_integrates_the_step_function_exactly(store):
    """rho is a step function: a ratio of exactly 4 scores 0 (the trapezoid rule gave
    0.0017), a ratio of 2.5 scores exactly (4 - 2.5) / 3."""
    profile = build_profile(store, [_sweep(store, {"adam": 1.0, "sgd": 4.0, "rmsprop": 2.5})])
    assert profile.scores == {"adam": 1.0, "sgd": 0.0, "rmsprop": 0.5}


def test_more_steps_to_the_target_are_never_tied(store):
    """15% more steps at the same step cost, each measured with a spread of 8%: the steps
    are deterministic, so the profile says 1.15, where tying every time within 1 + the
    spreads of the fastest said 1.00x."""
    sweep = _runs(store, 0.8, [("sgd", 0.1, 0, 0.9, _costed(100, 0.001, 0.08)),
                               ("momentum", 0.1, 0, 0.9, _costed(115, 0.001, 0.08))])
    profile = build_profile(store, [sweep])
    assert profile.ratios == {"1: digits": {"sgd": 1.0, "momentum": 1.15}}
    assert profile.scores["momentum"] == pytest.approx((4 - 1.15) / 3)
    assert profile.rows()[1][0][1:] == ["0.115 s (1.15x)", "0.1 s (1.00x)"]
    assert "tied" not in profile.table()


def test_a_workload_nobody_reached_credits_nobody_and_is_said(store):
    """sgd never reached on the second sweep, nor did adam: the inf == inf "tie" scored
    both 1 there."""
    first = _sweep(store, {"adam": 1.0, "sgd": 2.0})
    nobody = _sweep(store, {"adam": None, "sgd": None})
    profile = build_profile(store, [first, nobody])
    assert profile.ratios["2: digits"] == {"adam": math.inf, "sgd": math.inf}
    assert profile.scores == {"adam": 0.5, "sgd": pytest.approx((4 - 2) / 3 / 2)}
    assert profile.rows()[1][1][1:] == ["not reached", "not reached"]
    assert "2: digits: no optimizer reached the target, so it credits none of them" in \
        profile.table()
    fig = profile.plot()
    assert fig is not None


def test_a_ratio_by_steps_is_said_where_it_is_not_the_time_over_the_best(store):
    """20 steps against 25 at step costs 8% apart, each measured with a spread of 5%: the
    ratio is 25 / 20 = 1.25, not the times' 1.35; the tour printed only the table, which
    says each cost is divided by the fastest."""
    sweep = _runs(store, 0.8, [("sgd", 0.1, 0, 0.9, _costed(20, 0.00100, 0.05)),
                               ("adam", 0.1, 0, 0.9, _costed(25, 0.00108, 0.05))])
    profile = build_profile(store, [sweep])
    assert profile.ratios["1: digits"] == {"sgd": 1.0, "adam": 1.25}
    assert ("1: digits: adam (1.25x, time 1.35x): ratio by steps to the target, not by time"
            in profile.table())


@pytest.mark.parametrize("ids", [[1, True], [1.0], ["1"]])
def test_sweep_ids_that_are_no_whole_numbers_are_refused(tmp_path, ids):
    """``[1, True]`` said "sweep 1 is given more than once" (True == 1)."""
    from optimlab.bench.profile import build_profile
    from optimlab.bench.store import RunStore

    with pytest.raises(TypeError, match="^sweep ids are whole numbers, got "):
        build_profile(RunStore(tmp_path / "runs.db"), ids)


def test_an_optimizer_whose_runs_all_failed_reads_failed_with_its_error(store):
    """Muon raises on a model with biases: every run of it failed, and the profile showed
    "not reached" with score 0 and no word. It reads "failed" and a note quotes the error;
    it is still scored as never reaching the target there (a failure is a result of the
    optimizer on that workload, unlike an optimizer not run), and one that ran and failed
    in one sweep only is compared on the others."""
    first = _sweep(store, {"adam": 1.0, "sgd": 2.0, "muon": 1.5})
    second = _sweep(store, {"adam": 1.0, "sgd": 2.0})
    error = ("ValueError: Muon only optimizes real 2-D parameters (weight matrices), got a "
             "parameter of shape (100,) (1-D)")
    for run in store.add_runs(second, [{"optimizer": "muon", "hparams": {"lr": lr}, "seed": 0}
                                       for lr in (0.01, 0.1)]):
        store.finish_run(run, "failed", error=error)
    profile = build_profile(store, [first, second])
    assert set(profile.rho) == {"adam", "muon", "sgd"} and profile.left_out == {}
    assert profile.failed == {"2: digits": ["muon"]}
    headers, rows = profile.rows()
    muon = headers.index("muon")
    assert rows[0][muon] == "1.5 s (1.50x)" and rows[1][muon] == "failed"
    assert profile.ratios["2: digits"]["muon"] == math.inf
    assert profile.scores["muon"] == pytest.approx((4 - 1.5) / 3 / 2)  # 0 on the second
    assert (f"2: digits: muon: 2 runs failed (scored as never reaching the target there): "
            f"{error}") in profile.notes()
    assert "not reached" not in profile.table()


def test_a_failure_note_quotes_the_commonest_error_cut_short(store):
    from optimlab.bench.report import NOTE_ERROR_CHARS

    sweep = _sweep(store, {"adam": 1.0, "sgd": 2.0})
    long = "RuntimeError: " + "x" * 400
    for run, err in zip(store.add_runs(sweep, [{"optimizer": "muon", "hparams": {"lr": lr},
                                                "seed": 0} for lr in (0.01, 0.1, 1.0)]),
                        (long, long, "ValueError: other")):
        store.finish_run(run, "failed", error=err)
    (note,) = [n for n in build_profile(store, [sweep]).notes() if "muon" in n]
    assert note.startswith("1: digits: muon: 3 runs failed (scored as never reaching the "
                           "target there), 2 of them with: RuntimeError: xxx")
    assert note.endswith("...") and len(note.split("with: ", 1)[1]) == NOTE_ERROR_CHARS


def test_the_profile_picture_says_what_its_ratios_divide(store):
    """Its x label said "time to target / best time" where every workload is timed by the
    calibrated cost (the tables' "cost (calibrated)", not their wall time)."""
    from optimlab.landscapes.plots import plt_close

    profile = build_profile(store, [_sweep(store, {"adam": 1.0, "sgd": 2.0})])
    assert set(profile.basis.values()) == {"cost"}
    fig = profile.plot()
    assert fig.axes[0].get_xlabel() == "tau: cost to target / best cost"
    plt_close(fig)
    for basis, label in (({"1: digits": "wall"}, "tau: wall time to target / best wall time"),
                         ({"1: digits": "steps", "2: digits": "cost"},
                          "tau: time to target / best time (each workload in its row's measure)")):
        profile.basis = basis
        fig = profile.plot()
        assert fig.axes[0].get_xlabel() == label
        plt_close(fig)


# ------------------------------------------- how a workload is timed (_basis), rule by rule
# Each pins a rule a one-token mutant broke with no test failing.


def _basis_record(name, spread, noisy=False, rounds=15):
    return {"optimizer": name, "status": "finished", "seconds_per_step": 1e-3,
            "cost_spread": spread, "cost_noisy": noisy, "cost_rounds": rounds,
            "steps_to_target": 10, "gradients_to_target": 10, "gradients_per_step": 1.0}


def test_a_spread_beyond_the_limit_or_a_noisy_flag_each_falls_back_to_gradients():
    from optimlab.bench.cost import SPREAD_LIMIT
    from optimlab.bench.profile import _basis

    assert SPREAD_LIMIT == 0.5  # the documented limit: half the median
    only_spread = [_basis_record("a", 0.7, noisy=False), _basis_record("b", 0.1)]
    assert _basis(only_spread)[0] == "gradients"
    only_flag = [_basis_record("a", 0.2, noisy=True), _basis_record("b", 0.1)]
    assert _basis(only_flag)[0] == "gradients"
    assert _basis([_basis_record("a", 0.5), _basis_record("b", 0.1)])[0] == "cost"  # at the limit: ranked


def test_ties_are_judged_with_an_optimizers_widest_spread_and_fewest_rounds():
    from optimlab.bench.profile import _basis

    records = [_basis_record("a", 0.1, rounds=15), _basis_record("a", 0.3, rounds=5), _basis_record("b", 0.1)]
    assert _basis(records) == ("cost", None, {"a": 0.3, "b": 0.1}, {"a": 5, "b": 15})


def test_steps_where_some_run_that_reached_stores_no_gradient_count():
    from optimlab.bench.profile import _basis

    old = _basis_record("a", 0.9, noisy=True)
    del old["gradients_to_target"]
    assert _basis([old, _basis_record("b", 0.1)])[0] == "steps"


def test_an_optimizer_with_one_failed_run_among_reaching_ones_is_not_called_failed(store):
    """Only an optimizer *all* of whose runs failed reads "failed": adam with one seed that
    raised and two that reached the target in 10 steps is timed as the median of its seeds
    (inf, 10, 10 -> 10 steps) and scores 1, sgd at 20 steps is 2x (score (4 - 2) / 3)."""
    sweep = _runs(store, 0.8, [
        ("adam", 0.01, 1, 0.9, _costed(10, 0.001)), ("adam", 0.01, 2, 0.9, _costed(10, 0.001)),
        ("sgd", 0.01, 0, 0.9, _costed(20, 0.001)), ("sgd", 0.01, 1, 0.9, _costed(20, 0.001)),
        ("sgd", 0.01, 2, 0.9, _costed(20, 0.001))])
    (failed,) = store.add_runs(sweep, [{"optimizer": "adam", "hparams": {"lr": 0.01}, "seed": 0}])
    store.finish_run(failed, "failed", error="RuntimeError: boom")
    profile = build_profile(store, [sweep])
    assert profile.failed == {}
    headers, rows = profile.rows()
    assert rows[0][headers.index("adam")] == "0.01 s (1.00x)"
    assert rows[0][headers.index("sgd")] == "0.02 s (2.00x)"
    assert profile.scores["adam"] == 1.0
    assert profile.scores["sgd"] == pytest.approx((4 - 2) / 3)


def test_each_optimizers_profile_line_carries_a_marker_of_its_own(store):
    """Told apart by more than colour (WCAG 1.4.1), in the legend's order."""
    from optimlab.landscapes.plots import plt_close
    from optimlab.optim.palette import label_markers

    profile = build_profile(store, [_sweep(store, {"adam": 1.0, "sgd": 2.0})])
    fig = profile.plot()
    drawn = {line.get_label().split(" ")[0]: line.get_marker() for line in fig.axes[0].get_lines()
             if line.get_label().split(" ")[0] in profile.rho}
    plt_close(fig)
    assert drawn == label_markers(list(profile.rho)) and len(set(drawn.values())) == 2
