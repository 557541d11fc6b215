"""Profiles that compare each optimizer with the fastest, and grid edges judged against the
sweep's own grid: defects an audit reproduced on stores of real sweeps, here on tiny stores
built run by run (no training)."""

import math
import re

import numpy as np
import pytest

from optimlab.bench.analysis import parse_lrs, profile_ratios, summarize
from optimlab.bench.profile import build_profile
from optimlab.bench.report import summary_notes, summary_rows, summary_table, write_report
from optimlab.bench.store import RunStore
from optimlab.bench.sweep import SweepSpec, rates_past_edge


@pytest.fixture
def store(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    yield store
    store.close()


def _profiled(store, runs: dict[str, tuple[int, float, float, int]], case: str = "") -> int:
    """A finished sweep with a target and one run per optimizer: ``(steps to the target,
    calibrated seconds a step, the calibration's spread, its rounds)``."""
    sweep = store.open_sweep({"task": "digits", "optimizers": list(runs), "target": 0.8,
                              "metric": {"name": "accuracy", "higher_is_better": True},
                              "case": case})
    ids = store.add_runs(sweep, [{"optimizer": o, "hparams": {"lr": 0.1}, "seed": 0}
                                 for o in runs])
    for run, (steps, cost, spread, rounds) in zip(ids, runs.values()):
        store.finish_run(run, "finished", summary={
            "final_metric": 0.9, "score": 0.9, "steps_to_target": steps,
            "gradients_to_target": steps, "seconds_per_step": cost, "gradients_per_step": 1.0,
            "cost_to_target": steps * cost, "cost_spread": spread, "cost_rounds": rounds,
            "cost_noisy": False, "wall_time": 1.0})
    return sweep


def _one(times, steps, spreads, rounds=None) -> dict[str, float]:
    """The profile ratios of one task."""
    return {o: r for o, (r,) in profile_ratios({"t": times}, {"t": spreads}, {"t": steps},
                                               {"t": rounds or {}}).items()}


# ----------------------------------------------------------------- 1: ties with the fastest


def test_a_ratio_does_not_depend_on_a_third_optimizers_cost():
    """Costs 0.95 (s), 1.0 (a), 1.05 (r), each the median of 15 rounds that spread 8%: s
    ties a, a ties r, s does not tie r. Grouped from the cheapest up, s anchored a's cost
    away from r's, so r, at a's 30 steps, read 1.105 beside a's 1.00; without s it read
    1.00. Each is compared with the fastest (a) now: r ties it."""
    costs = {"s": 0.95, "a": 1.0, "r": 1.05}
    steps = {"s": 40, "a": 30, "r": 30}
    times = {o: steps[o] * costs[o] for o in costs}
    spreads, rounds = dict.fromkeys(costs, 0.08), dict.fromkeys(costs, 15)
    assert _one(times, steps, spreads, rounds) == {"s": 40 / 30, "a": 1.0, "r": 1.0}
    without = {o: v for o, v in times.items() if o != "s"}
    assert _one(without, steps, spreads, rounds) == {"a": 1.0, "r": 1.0}
    # the audit's three: b ties the fastest (a), c does not, though c ties b; c is
    # compared with the fastest, by its time
    costs = {"a": 1.00, "b": 1.05, "c": 1.10}
    times = {o: 10 * c for o, c in costs.items()}
    ratios = _one(times, dict.fromkeys(costs, 10), dict.fromkeys(costs, 0.08),
                  dict.fromkeys(costs, 15))
    assert ratios == {"a": 1.0, "b": 1.0, "c": pytest.approx(1.1)}


def test_the_mnist1d_sweep_ties_rmsprop_with_adagrad_at_the_same_steps(store):
    """The audit's store (`optimlab profile 1`): adagrad, rmsprop and adam 30 steps each,
    sgd 120; rmsprop's cost ties adagrad's (the fastest), and so does sgd's, which anchored
    adagrad's group: adagrad 1.00x, rmsprop and adam 1.07x. rmsprop ties adagrad (1.00x);
    so does adam, whose cost is 6.7% above adagrad's: the difference, 4.99e-5 s, is just
    within Student's t bound (2.26 standard errors, 5.03e-5 s); the normal's 1.96 (4.36e-5 s),
    which ignored that the spreads are estimated, told them apart."""
    sweep = _profiled(store, {"sgd": (120, 0.0007112372500017727, 0.08611542773269763, 15),
                              "adagrad": (30, 0.0007473060000033153, 0.07277184089998534, 15),
                              "rmsprop": (30, 0.0007612912500007951, 0.0974035889748115, 15),
                              "adam": (30, 0.0007971865999991223, 0.09412927914163532, 15)})
    profile = build_profile(store, [sweep])
    ratios = profile.ratios["1: digits"]
    assert ratios["adagrad"] == 1.0 and ratios["rmsprop"] == 1.0 and ratios["sgd"] == 4.0
    assert ratios["adam"] == 1.0
    assert profile.rows()[1][0][1:] == ["0.0224 s (1.00x)", "0.0239 s (1.00x)",
                                        "0.0228 s (1.00x)", "0.0853 s (4.00x)"]
    table = profile.table()
    assert ("1: digits: adam, rmsprop took no more steps to the target than the fastest, at a "
            "step cost the calibrations cannot tell from its") in table
    assert ("1: digits: sgd (4.00x, time 3.81x): ratio by steps to the target, not by time: "
            "the calibrations cannot tell the step costs of adam, rmsprop and sgd from "
            "adagrad's, the fastest's") in table


# ----------------------------------------------------------------- 4: times and ratios agree


def _unexplained(profile) -> list[str]:
    """The cells of ``profile``'s table whose ratio is not the time shown over the least
    time of its row (up to the rounding of the times shown, 3 digits) and that no note
    names."""
    headers, rows = profile.rows()
    notes = "\n".join(profile.notes())
    out = []
    for row in rows[:-1]:
        cells = dict(zip(headers[1:], row[1:]))
        times = {o: float(c.split()[0]) for o, c in cells.items() if c.endswith("x)")}
        least = min(times.values())
        for name, text in cells.items():
            ratio = float(re.search(r"\(([\d.]+)x\)", text).group(1))
            shown = times[name] / least
            if abs(ratio - shown) > 0.01 * shown + 0.005 and not re.search(
                    rf"\b{name} \({ratio:.2f}x, time [\d.]+x\)", notes):
                out.append(f"{row[0]}: {name} {text}")
    return out


def test_a_time_shown_and_its_ratio_agree_or_a_note_names_the_cell(store):
    """`optimlab profile 1 2` showed adam 0.0151 s (1.00x) and sgd 0.0269 s (1.89x), though
    0.0269 / 0.0151 = 1.78: adam was timed at rmsprop's (cheaper) cost, which its own ties.
    Only a cost that ties the fastest's moves a ratio off the time now, and the note names
    the cell."""
    digits = _profiled(store, {"sgd": (80, 0.00033636875, 0.1508500715361109, 15),
                               "adam": (25, 0.0006021858571428419, 0.15196399972390762, 15),
                               "rmsprop": (30, 0.000570337625, 0.15266220600471675, 15)})
    profile = build_profile(store, [digits])
    assert profile.rows()[1][0][1:] == ["0.0151 s (1.00x)", "0.0171 s (1.20x)",
                                        "0.0269 s (1.79x)"]
    assert profile.ratios["1: digits"]["sgd"] == pytest.approx(0.0269095 / 0.01505464643)
    assert _unexplained(profile) == []
    assert ("1: digits: rmsprop (1.20x, time 1.14x): ratio by steps to the target, not by "
            "time") in profile.table()


def test_a_best_by_steps_rebases_every_other_ratio_and_a_note_says_so(store):
    """a is the fastest (100 steps x 1.0 ms), b's cost (1.08 ms) ties a's and it took 95
    steps, so b is the best (95 steps at a's cost); c's cost is told apart: its ratio is its
    time over b's steps at a's cost (101.5 / 95), not over a's 100 ms, and the note says so."""
    sweep = _profiled(store, {"a": (100, 0.00100, 0.05, None), "b": (95, 0.00108, 0.05, None),
                              "c": (145, 0.00070, 0.05, None)})
    profile = build_profile(store, [sweep])
    assert profile.ratios["1: digits"] == {"a": pytest.approx(100 / 95), "b": 1.0,
                                           "c": pytest.approx(101.5 / 95)}
    assert _unexplained(profile) == []
    assert ("1: digits: c (1.07x, time 1.01x): ratio over 0.095 s, b's 95 steps to the target "
            "at a's step cost (the best: fewer steps than a, the fastest, at a cost the "
            "calibrations cannot tell from its), not over a's 0.1 s") in profile.table()


# ----------------------------------------------------------------- 3: pending optimizers


def test_an_optimizer_still_pending_is_said_not_finished_with_resume(store):
    """`optimlab profile 1 3` said "adam is not in sweep 3" where adam's runs were pending
    there; one sweep said "sweep 3 ran only sgd"."""
    first = _profiled(store, {"adam": (20, 0.001, 0.05, 15), "sgd": (40, 0.001, 0.05, 15)})
    killed = _profiled(store, {"sgd": (40, 0.001, 0.05, 15)}, case="killed")
    store.add_runs(killed, [{"optimizer": "adam", "hparams": {"lr": 0.1}, "seed": s}
                            for s in range(2)])
    with pytest.raises(ValueError, match=re.escape(
            "sweeps 1, 2 have only sgd in common (adam has not finished in sweep 2: resume it "
            "with --resume), and a performance profile compares")):
        build_profile(store, [first, killed])
    with pytest.raises(ValueError, match=re.escape(
            "sweep 2 ran only sgd so far (adam has not finished in sweep 2: resume it with "
            "--resume), and a performance profile compares")):
        build_profile(store, [killed])
    # one not run at all still reads "not in"
    other = _profiled(store, {"sgd": (40, 0.001, 0.05, 15), "lion": (30, 0.001, 0.05, 15)},
                      case="other")
    with pytest.raises(ValueError, match=re.escape(
            "sweeps 2, 3 have only sgd in common (adam is not in sweep 3; lion is not in "
            "sweep 2; adam has not finished in sweep 2: resume it with --resume)")):
        build_profile(store, [killed, other])


# ----------------------------------------------------------------- 2: the grid's own edge


def _run(name, lr, seed, metric):
    return {"optimizer": name, "lr": lr, "seed": seed, "metric": metric}


def test_an_edge_is_an_end_of_the_grid_not_of_the_rates_that_ended():
    records = [_run("sgd", 0.001, s, 0.5) for s in range(2)] + [_run("sgd", 0.01, 0, 0.8)]
    grid = {"sgd": [0.001, 0.01, 0.1]}
    (s,) = summarize(records, grids=grid)
    assert s.best_lr == 0.01 and s.edge is None and s.lr_text == "0.01"
    # the bottom of the grid ended: a best rate there is its edge
    (s,) = summarize([_run("sgd", 0.001, 0, 0.9), _run("sgd", 0.01, 0, 0.8)], grids=grid)
    assert s.edge == "low" and s.lr_text == "0.001 (bottom of grid)"
    # the top ended too: flagged as before; rates stored with drift match the grid's
    (s,) = summarize(records + [_run("sgd", 0.10000000000000002, 0, 0.9)], grids=grid)
    assert s.edge == "high" and s.lr_text == "0.1 (top of grid)"


def _sweep_runs(store, runs, lrs=(0.001, 0.01, 0.1)) -> int:
    """A sweep of sgd over ``lrs`` x 2 seeds with ``runs`` {(lr, seed): final metric} ended
    (finished) and the rest pending: a sweep stopped part way."""
    sweep = store.open_sweep({"task": "digits", "optimizers": ["sgd"], "lrs": list(lrs),
                              "seeds": 2, "target": 0.9,
                              "metric": {"name": "accuracy", "higher_is_better": True}})
    ids = store.add_runs(sweep, [{"optimizer": "sgd", "hparams": {"lr": lr}, "seed": s}
                                 for lr in lrs for s in range(2)])
    members = [(lr, s) for lr in lrs for s in range(2)]
    for run, member in zip(ids, members):
        if member in runs:
            value = runs[member]
            store.start_run(run)
            store.finish_run(run, "finished", summary={"final_metric": value, "score": value},
                             points=[(k, {"test_metric": value, "train_loss": 1.0 / k}, 0.1)
                                     for k in (1, 2, 3)])
    return sweep


def test_a_stopped_sweep_does_not_flag_the_highest_rate_that_ended(store):
    """`optimlab report` of a sweep stopped before lr 0.1 ran said "sgd 0.01 (top of grid)"
    and "Widen --lrs"."""
    sweep = _sweep_runs(store, {(0.001, 0): 0.5, (0.001, 1): 0.5, (0.01, 0): 0.86})
    _, rows = summary_rows(store, sweep)
    assert rows[0][1:3] == ["sgd", "0.01"]
    notes = summary_notes(store, sweep)
    assert not any("the best lr" in n or "Widen --lrs" in n for n in notes)
    assert notes[0].startswith("Unfinished: 3 of 6 runs have not ended")
    assert "(top of grid)" not in summary_table(store, sweep)


# ----------------------------------------------------------------- 6: the figures' labels


def test_the_figures_flag_the_grid_edge_as_the_table_does(store, tmp_path):
    """curves.png read "sgd (lr 0.1, 2 seeds)" and lr_sensitivity.png "sgd: best lr 0.1"
    where the table read "0.1 (top of grid)"."""
    from optimlab.bench.report import _curves_figure, _sensitivity_figure, _Sweep
    from optimlab.landscapes.plots import plt_close

    sweep = _sweep_runs(store, {(0.01, 0): 0.5, (0.01, 1): 0.5, (0.1, 0): 0.9, (0.1, 1): 0.9},
                        lrs=(0.01, 0.1))
    sw = _Sweep(store, sweep, None, None)
    labels = []
    for figure in (_curves_figure, _sensitivity_figure):
        fig = figure(sw)
        labels += [t.get_text() for t in fig.legends[0].get_texts()]
        plt_close(fig)
    assert "sgd (lr 0.1 (top of grid), 2 seeds)" in labels
    assert "sgd: best lr 0.1 (top of grid)" in labels
    assert summary_rows(store, sweep)[1][0][2] == "0.1 (top of grid)"


# ----------------------------------------------------------------- 7: the metric's label


def test_the_summary_header_says_the_metric_as_the_captions_do(store, tmp_path):
    """`optimlab bench char-rnn` printed "bits_per_char (mean ± 95% CI)" over a caption
    that says "bits per char"."""
    sweep = store.open_sweep({"task": "char-rnn", "optimizers": ["adam"], "lrs": [0.01],
                              "metric": {"name": "bits_per_char", "higher_is_better": False}})
    for run in store.add_runs(sweep, [{"optimizer": "adam", "hparams": {"lr": 0.01},
                                       "seed": s} for s in range(2)]):
        store.finish_run(run, "finished", summary={"final_metric": 3.2, "score": 3.2})
    headers, _ = summary_rows(store, sweep)
    assert headers[3] == "bits per char (mean ± 95% CI)"
    page = write_report(store, sweep, tmp_path / "out")["report"].read_text()
    assert "<th>bits per char (mean ± 95% CI)</th>" in page and "bits_per_char (mean" not in page


# ----------------------------------------------------------------- 5: rates without drift


def test_a_range_and_its_list_are_one_grid_without_drift():
    """np.logspace gave 9.999999999999999e-06 for 1e-5: `--lrs 1e-5:1e-4:2` and
    `--lrs 1e-5,1e-4` made two sweeps, and the CSV showed the drift."""
    assert parse_lrs("1e-5:1e-4:2") == [1e-05, 0.0001] == parse_lrs("1e-5,1e-4")
    assert parse_lrs("1e-7:1e-3:3") == [1e-07, 1e-05, 0.001]
    spec = {"task": "digits", "optimizers": ("sgd",)}
    assert SweepSpec(**spec, lrs=parse_lrs("1e-5:1e-4:2")).to_config() == \
        SweepSpec(**spec, lrs=parse_lrs("1e-5,1e-4")).to_config()
    # a grid without drift keeps its exact rates (and the sweeps stored with them)
    assert parse_lrs("1e-3:1e-1:5") == [float(v) for v in np.logspace(-3, -1, 5)]
    # the rates a sweep stored before holds, for finding it again
    assert parse_lrs("1e-5:1e-4:2", exact=False) == [9.999999999999999e-06, 0.0001]


def test_an_extension_past_drifted_rates_still_reaches_the_bound():
    """Rates that drifted a hair past a decade (1.000000000000001, 10.00000000000001)
    extended to 100.0000000000001, beyond LR_BOUNDS' 100, so to nothing."""
    assert rates_past_edge([1.000000000000001, 10.00000000000001], "high") == [100.0]
    assert rates_past_edge([1.0000000000000002e-06, 1.0000000000000002e-05], "low") == [1e-07]
    assert rates_past_edge([0.1, 1.0], "high") == [10.0, 100.0]
    assert all(math.isfinite(lr) for lr in rates_past_edge([3e-7, 3e-6], "low")) and \
        rates_past_edge([3e-7, 3e-6], "low") == []


def test_a_sweep_stored_with_a_drifted_range_is_found_by_the_same_command(tmp_path, capsys):
    """A sweep trained before the rates lost their drift holds 9.999999999999999e-06 for
    `--lrs 1e-5:1e-4:3`: the same command finds it (its runs ended: nothing trained again)
    instead of training a second sweep of the same grid."""
    from optimlab.bench.sweep import run_sweep
    from optimlab.bench.trainer import TrainConfig
    from optimlab.cli import main

    db = tmp_path / "old.db"
    drifted = tuple(parse_lrs("1e-5:1e-4:3", exact=False))
    assert drifted != tuple(parse_lrs("1e-5:1e-4:3"))
    config = TrainConfig(steps=5, batch_size=100, eval_every=1)  # the CLI's, for 5 steps
    with RunStore(db) as store:
        run_sweep(SweepSpec(task="digits", optimizers=("sgd",), config=config, lrs=drifted,
                            seeds=1), store)
    assert main(["bench", "digits", "--optimizers", "sgd", "--lrs", "1e-5:1e-4:3", "--seeds",
                 "1", "--steps", "5", "--db", str(db)]) == 0
    assert "nothing trained: sweep 1 had ended every run" in capsys.readouterr().out
    with RunStore(db, readonly=True) as store, pytest.raises(KeyError):
        store.sweep(2)  # no second sweep of the same grid


# ------------------------------------------- 3: one state of a store another process writes


def test_a_profile_reads_one_state_of_a_sweep_still_training(store, monkeypatch):
    """A run ending between the profile's reads of a sweep (its counts, then its runs) was
    noted "unfinished (1 run not ended)" beside times that counted it. Read under one
    snapshot, the profile shows the state before it ended, in every part."""
    import optimlab.bench.profile as profile_module

    sweep = _profiled(store, {"adam": (20, 0.001, 0.05, 15), "sgd": (40, 0.001, 0.05, 15)})
    (late,) = store.add_runs(sweep, [{"optimizer": "adam", "hparams": {"lr": 0.1}, "seed": 1}])
    store.start_run(late)
    writer = RunStore(store.path)  # the sweep's own process, on a connection of its own
    reads = profile_module.run_records

    def the_run_ends_meanwhile(*args, **kwargs):
        if not writer.get_run(late).status == "finished":
            writer.finish_run(late, "finished", summary={
                "final_metric": 0.9, "score": 0.9, "steps_to_target": 10,
                "gradients_to_target": 10, "seconds_per_step": 0.001, "gradients_per_step": 1.0,
                "cost_to_target": 0.01, "cost_spread": 0.05, "cost_rounds": 15,
                "cost_noisy": False, "wall_time": 1.0})
        return reads(*args, **kwargs)

    reader = RunStore(store.path, readonly=True)
    before = build_profile(reader, [sweep])
    monkeypatch.setattr(profile_module, "run_records", the_run_ends_meanwhile)
    during = build_profile(reader, [sweep])
    monkeypatch.setattr(profile_module, "run_records", reads)
    after = build_profile(reader, [sweep])
    reader.close()
    writer.close()
    # during: the state before the run ended, in the note and in the times alike
    assert any("unfinished (1 run not ended)" in note for note in during.notes())
    assert (during.table(), during.notes()) == (before.table(), before.notes())
    # after: it ended and its 10 steps are adam's best, with no such note
    assert not any("unfinished" in note for note in after.notes())
    assert after.table() != before.table()
