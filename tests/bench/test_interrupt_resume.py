"""A sweep stopped by Ctrl-C (or SIGTERM, or an error outside training) puts the runs it
started and did not end back to pending, and ``optimlab bench`` says what it kept and how
to go on; ``--resume`` on a store that does not exist creates none; ``optimlab runs``
describes a grid extended past its edges by the rates it tried."""

import os
import signal

import pytest

from optimlab.bench import sweep as sweep_module
from optimlab.bench.store import RunStore
from optimlab.bench.sweep import SweepSpec, run_sweep
from optimlab.bench.trainer import TrainConfig
from optimlab.cli import main
from tests.bench.toy import ToyTask

TOY = TrainConfig(steps=10, batch_size=32, eval_every=5)
#: a tiny sequential bench of 4 runs (sgd, adam x 1 rate x 2 seeds), no target (no step-cost
#: calibration)
BENCH = ["bench", "digits", "--optimizers", "sgd,adam", "--lrs", "0.1", "--seeds", "2",
         "--steps", "5", "--batch-size", "64", "--sequential"]


def _statuses(store: RunStore, sweep: int) -> list[tuple]:
    return sorted((r.optimizer, r.seed, r.status) for r in store.list_runs(sweep))


def _stop_after(ticks: int, store: RunStore | None = None):
    """A progress callback raising KeyboardInterrupt once ``ticks`` training steps are done;
    with ``store``, it first logs a point to every running run (the partial curve a trainer
    that logs as it goes leaves)."""
    done = [0]

    def progress(n):
        done[0] += n
        if done[0] >= ticks:
            if store is not None:
                for run in store.list_runs(1, "running"):
                    store.log_metrics(run.id, done[0], {"train_loss": 1.0})
            raise KeyboardInterrupt

    return progress


def test_reset_runs_puts_running_runs_back_to_pending_and_drops_their_points(store_url):
    store = RunStore(store_url)
    sweep = store.open_sweep({"task": "toy"})
    ended, running, pending = store.add_runs(sweep, [
        {"optimizer": "sgd", "hparams": {"lr": lr}, "seed": 0} for lr in (0.1, 0.01, 0.001)])
    for run in (ended, running):
        store.start_run(run)
        store.log_metrics(run, 0, {"train_loss": 1.0})
    store.finish_run(ended, "finished", summary={"final_metric": 0.5})
    before = store.get_run(ended)
    assert store.reset_runs([pending, running, ended]) == [running]
    back = store.get_run(running)
    assert back.status == "pending" and back.started_at is None and back.summary is None
    assert store.get_run(ended) == before and store.get_run(pending).status == "pending"
    assert list(store.metrics(sweep)["run_id"]) == [ended]  # the partial points are gone
    assert store.reset_runs([]) == []
    with pytest.raises(KeyError, match="no run with id 999"):
        store.reset_runs([running, 999])
    store.close()


@pytest.mark.parametrize("engine", ["sequential", "population"])
def test_ctrl_c_puts_the_started_runs_back_to_pending_and_resume_trains_them(tmp_path, engine):
    """Either engine keeps the runs that ended before the Ctrl-C, and puts the ones it was
    training back to pending: none is left 'running' (a report would say it "is training
    now"), nor with the partial points it logged."""
    store = RunStore(tmp_path / "runs.db")
    spec = SweepSpec(task="toy", optimizers=("sgd", "adam"), lrs=(0.1,), seeds=2, config=TOY)
    # sequential: the two sgd runs ended (10 steps each), adam's first was training;
    # population: sgd's group ended (10 steps for both), adam's was training
    ticks = 25 if engine == "sequential" else 15
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, store, engine=engine, task=ToyTask(), progress=_stop_after(ticks, store))
    assert _statuses(store, 1) == [("adam", 0, "pending"), ("adam", 1, "pending"),
                                   ("sgd", 0, "finished"), ("sgd", 1, "finished")]
    pending = store.list_runs(1, "pending")
    assert all(r.started_at is None and r.summary is None for r in pending)
    assert not set(store.metrics(1)["run_id"]) & {r.id for r in pending}
    ended = [(r.id, r.finished_at) for r in store.list_runs(1, "finished")]
    run_sweep(spec, store, engine=engine, task=ToyTask())
    assert {r.status for r in store.list_runs(1)} == {"finished"}
    assert [(r.id, r.finished_at) for r in store.list_runs(1)
            if r.optimizer == "sgd"] == ended  # kept, not trained again
    store.close()


def test_ctrl_c_in_a_batched_group_puts_the_whole_group_back(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    spec = SweepSpec(task="toy", optimizers=("sgd", "adam"), lrs=(0.1, 0.01), seeds=2,
                     config=TOY)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, store, engine="population", task=ToyTask(), progress=_stop_after(5))
    assert {r.status for r in store.list_runs(1)} == {"pending"}  # sgd's 4 were started


def test_an_error_outside_training_puts_the_started_runs_back_too(tmp_path, monkeypatch):
    """A store that fails while a sweep stores its runs: the error goes on, the run it could
    not store is pending again (not 'running' forever), the run stored before it kept."""
    store = RunStore(tmp_path / "runs.db")
    spec = SweepSpec(task="toy", optimizers=("sgd",), lrs=(0.1,), seeds=3, config=TOY)
    real, calls = store.finish_run, []

    def flaky(run_id, *args, **kwargs):
        calls.append(run_id)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(run_id, *args, **kwargs)

    monkeypatch.setattr(store, "finish_run", flaky)
    with pytest.raises(OSError, match="disk full"):
        run_sweep(spec, store, engine="sequential", task=ToyTask())
    assert _statuses(store, 1) == [("sgd", 0, "finished"), ("sgd", 1, "pending"),
                                   ("sgd", 2, "pending")]


def _interrupting(monkeypatch, calls: int, stop):
    """The sequential engine, calling ``stop()`` as its ``calls``-th run starts."""
    real = sweep_module._TRAIN["sequential"]
    count = [0]

    def train(task, config, members, progress=None):
        count[0] += 1
        if count[0] == calls:
            stop()
        return real(task, config, members, progress=progress)

    monkeypatch.setitem(sweep_module._TRAIN, "sequential", train)


def test_bench_ctrl_c_says_what_was_kept_and_how_to_resume(tmp_path, capsys, monkeypatch):
    db = tmp_path / "runs.db"

    def ctrl_c():
        raise KeyboardInterrupt

    _interrupting(monkeypatch, 3, ctrl_c)
    assert main(BENCH + ["--db", str(db)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"optimlab: interrupted: sweep 1 in {db}: 2 of 4 runs kept; run the "
                       "same command with --resume to train the rest")
    with RunStore(db, readonly=True) as store:
        assert [s for *_, s in _statuses(store, 1)] == ["pending", "pending", "finished",
                                                        "finished"]
    monkeypatch.undo()
    assert main(BENCH + ["--db", str(db), "--resume"]) == 0
    with RunStore(db, readonly=True) as store:
        assert {r.status for r in store.list_runs(1)} == {"finished"}


def test_bench_sigterm_stops_the_sweep_as_ctrl_c_does(tmp_path, capsys, monkeypatch):
    db = tmp_path / "runs.db"

    def sigterm():
        # SIGTERM's default action would kill the test process: only with a handler
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            raise AssertionError("no SIGTERM handler while the sweep trains")
        os.kill(os.getpid(), signal.SIGTERM)

    _interrupting(monkeypatch, 2, sigterm)
    assert main(BENCH + ["--db", str(db)]) == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"optimlab: terminated: sweep 1 in {db}: 1 of 4 runs kept; run the same command "
        "with --resume to train the rest")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # given back
    with RunStore(db, readonly=True) as store:
        assert sorted(s for *_, s in _statuses(store, 1)) == ["finished", "pending",
                                                              "pending", "pending"]


def test_an_interrupt_with_a_message_says_it_on_its_line(monkeypatch, capsys):
    """An interrupt's message (as the sweep's) follows ``optimlab: interrupted`` on its one
    line; a bare Ctrl-C's line is unchanged (tests/test_cli_malformed.py)."""
    from optimlab import cli

    def interrupted(args):
        raise KeyboardInterrupt("x")

    monkeypatch.setattr(cli, "_run", interrupted)
    assert main(["list"]) == 130
    assert capsys.readouterr().err == "optimlab: interrupted: x\n"


@pytest.mark.parametrize("empty", [False, True])
def test_resume_on_a_missing_store_creates_nothing(tmp_path, capsys, empty):
    db = tmp_path / "n.db"
    if empty:
        db.touch()
    argv = ["bench", "digits", "--optimizers", "sgd", "--lrs", "0.1", "--seeds", "1",
            "--steps", "10", "--db", str(db), "--resume"]
    assert main(argv) == 2
    assert sorted(os.listdir(tmp_path)) == (["n.db"] if empty else [])
    assert not empty or db.stat().st_size == 0  # an empty file stays empty
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith(f"optimlab: error: --resume: no sweep in {db}: ")
    assert "leave out --resume" in err


def test_resume_on_a_missing_sqlite_url_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["bench", "digits", "--optimizers", "sgd", "--lrs", "0.1", "--seeds", "1",
            "--steps", "10", "--db", "sqlite:///n.db", "--resume"]
    assert main(argv) == 2
    assert "--resume: no sweep in sqlite:///n.db" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_store_rates_are_the_rates_of_the_runs(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    sweep = store.open_sweep({"task": "toy"})
    store.add_runs(sweep, [{"optimizer": o, "hparams": {"lr": lr}, "seed": s}
                           for o in ("sgd", "adam") for lr in (1.0, 0.01, 0.1) for s in (0, 1)])
    store.add_runs(sweep, [{"optimizer": "sgd", "hparams": {}, "seed": 0}])  # no lr
    assert store.rates(sweep) == [0.01, 0.1, 1.0]
    with pytest.raises(KeyError):
        store.rates(sweep + 1)
    store.close()


def test_runs_lists_an_extended_grid_by_the_rates_it_tried(tmp_path, capsys):
    """A given grid with --extend grows past its edge: the listing said only the base grid
    ("2 lrs 0.0001..0.001") while the sweep trained more rates."""
    db = tmp_path / "x.db"
    assert main(["bench", "digits", "--optimizers", "sgd", "--lrs", "1e-4:1e-3:2", "--extend",
                 "--seeds", "1", "--steps", "30", "--batch-size", "64", "--db", str(db)]) == 0
    with RunStore(db, readonly=True) as store:
        tried = sorted({r.hparams["lr"] for r in store.list_runs(1)})
    assert len(tried) > 2  # sgd's best rate of 1e-4, 1e-3 after 30 steps is the top one
    capsys.readouterr()
    assert main(["runs", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert (f"2 lrs 0.0001..0.001, extended to {tried[0]:.3g}..{tried[-1]:.3g} "
            f"({len(tried)} lrs), 1 seed") in out


def test_count_runs_counts_every_sweeps_runs_by_status(store_url):
    store = RunStore(store_url)
    assert store.count_runs() == 0
    for task in ("a", "b"):
        sweep = store.open_sweep({"task": task})
        first, _ = store.add_runs(sweep, [{"optimizer": "sgd", "hparams": {"lr": lr}, "seed": 0}
                                          for lr in (0.1, 0.01)])
        store.start_run(first)
        store.finish_run(first, "diverged" if task == "b" else "finished")
    assert store.count_runs() == 4 and store.count_runs("pending") == 2
    assert store.count_runs(("finished", "diverged")) == 2 and store.count_runs("failed") == 0
    with pytest.raises(ValueError, match="unknown run status"):
        store.count_runs("done")


def test_a_store_failing_mid_sweep_says_what_was_kept_and_how_to_go_on(tmp_path, capsys,
                                                                       monkeypatch):
    """A full disk stopped a sweep with the store's one line alone ("database or disk is
    full"); the runs that ended were kept and --resume finishes the rest, which the line now
    says, as Ctrl-C's does."""
    from optimlab.bench.store import StoreError

    db = tmp_path / "runs.db"

    real, calls = RunStore.finish_run, [0]

    def finish_run(self, *args, **kwargs):  # the third run's end cannot be written
        calls[0] += 1
        if calls[0] == 3:
            raise StoreError(f"cannot write to run store {db}: database or disk is full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RunStore, "finish_run", finish_run)
    assert main(BENCH + ["--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"optimlab: error: cannot write to run store {db}: database or disk is "
                       f"full; sweep 1 in {db}: 2 of 4 runs kept; run the same command with "
                       "--resume to train the rest")
    monkeypatch.undo()
    assert main(BENCH + ["--db", str(db), "--resume"]) == 0
    with RunStore(db, readonly=True) as store:
        assert {r.status for r in store.list_runs(1)} == {"finished"}


def test_resume_on_a_store_stopped_before_its_sweep_was_stored(tmp_path, capsys):
    """A command killed after it made the store and before it stored its sweep leaves a
    store with no sweep: --resume said the arguments differed from the killed run's."""
    db = tmp_path / "runs.db"
    RunStore(db).close()
    assert main(BENCH + ["--db", str(db), "--resume"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err == (f"optimlab: error: --resume: {db} holds no sweep yet (the command was "
                   "stopped before it stored its sweep: nothing was trained); leave out --resume")


def test_a_full_disk_is_named_where_the_file_system_has_no_room(tmp_path, monkeypatch):
    """SQLite says "database or disk is full" or only "disk I/O error", and the store's
    message guessed at a lock or permissions: where the file system has no room left, it
    says so."""
    import collections

    from optimlab.bench.store import guard

    Stats = collections.namedtuple("Stats", "f_bavail f_frsize")
    monkeypatch.setattr(guard.os, "statvfs", lambda path: Stats(12, 4096))
    assert guard.full_disk_hint(str(tmp_path / "runs.db")) == \
        " (the disk is full: 48 KiB left; free space, then go on)"
    monkeypatch.setattr(guard.os, "statvfs", lambda path: Stats(1 << 20, 4096))
    assert guard.full_disk_hint(str(tmp_path / "runs.db")) == ""


def _as_stored_by_an_older_optimlab(db, change):
    """Rewrite sweep 1's stored configuration by ``change`` and key it as an earlier
    optimlab did: by the configuration as given (:func:`canonical_key`)."""
    import json
    import sqlite3

    from optimlab.bench.store.jsonio import canonical_key

    with sqlite3.connect(db) as con:
        config = json.loads(con.execute("SELECT config FROM sweeps WHERE id = 1").fetchone()[0])
        config = change(config)
        con.execute("UPDATE sweeps SET config = ?, key = ? WHERE id = 1",
                    (json.dumps(config), canonical_key(config)))
    return config


def test_a_sweep_keyed_as_given_is_found_with_its_optimizers_and_rates_in_another_order(tmp_path):
    """Sweeps stored before the key left out the order of optimizers and rates (before
    d4b3dd5) were keyed by their configuration as given: `--optimizers adam,sgd` did not find
    one stored with `sgd,adam` (a back-compatibility audit). A store keyed so is found now."""
    from optimlab.bench.store import RunStore

    db = tmp_path / "old.db"
    with RunStore(db) as store:
        first = store.open_sweep({"task": "digits", "optimizers": ["sgd", "adam"],
                                  "lrs": [0.1, 0.01], "seeds": 1})
    _as_stored_by_an_older_optimlab(db, lambda config: config)
    with RunStore(db) as store:
        again = {"task": "digits", "optimizers": ["adam", "sgd"], "lrs": [0.01, 0.1], "seeds": 1}
        assert store.find_sweep(again) == first
        assert store.open_sweep(again) == first  # no second sweep
        assert store.find_sweep({**again, "seeds": 2}) is None


def test_a_refused_resume_names_the_nearest_sweep_and_how_it_differs(tmp_path, capsys):
    """`--resume` of a sweep an older optimlab stored (its configuration without the model's
    architecture digest) said only "no sweep has this configuration", for the very command
    that stored it: the nearest stored sweep and its differences are named, and why it
    cannot be resumed."""
    db = tmp_path / "r.db"
    argv = ["bench", "digits", "--optimizers", "adam", "--lrs", "0.01", "--seeds", "1",
            "--steps", "3", "--db", str(db), "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv[:-4] + ["--steps", "4"] + argv[-4:] + ["--resume"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "; the nearest, sweep 1, differs in train.steps (stored 3, given 4)); leave out" in err
    _as_stored_by_an_older_optimlab(db, lambda c: {k: v for k, v in c.items()
                                                   if k != "architecture"})
    assert main(argv + ["--resume"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert ("the nearest, sweep 1, differs in architecture (not stored: an older optimlab did not "
            "record it); a sweep an older optimlab stored cannot be resumed by this one: "
            "`optimlab report 1` still reads it") in err, err
    # the same command without --resume trains a new sweep: said, so that `optimlab runs`
    # listing two alike is not taken for a duplicate (it was silent)
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert ("sweep 1 in " in err and "has this configuration as an older optimlab stored it "
            "(without architecture), which this one cannot check, so this command trains a new "
            "sweep; `optimlab report 1` still reads the old one") in err, err
    assert main(argv) == 0  # run again: the new sweep is found, nothing said
    assert "older optimlab" not in capsys.readouterr().err
