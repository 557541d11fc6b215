"""Two identical ``optimlab bench`` commands started together on a new store."""

import contextlib

from optimlab.bench.store import RunStore
from optimlab.cli import main

BENCH = ["bench", "digits", "--optimizers", "sgd,adam", "--lrs", "0.01,0.1", "--seeds", "2",
         "--steps", "30", "--batch-size", "64", "--target", "0.5"]


def test_bench_that_loses_the_race_for_a_new_sweep_says_wait_not_resume(tmp_path, capsys,
                                                                         monkeypatch):
    """Both commands found no sweep (so the check for one trained elsewhere saw nothing);
    the other one then stored the sweep and took its lock first. This one was told "0 of 1
    run kept; run the same command with --resume", as if its work were lost, while the
    other trains the sweep (and a --resume then is refused the same way). It now says what
    the check says: another process trains it, wait for it to end."""
    db = tmp_path / "runs.db"
    held = contextlib.ExitStack()
    open_sweep = RunStore.open_sweep

    def the_other_one_first(self, config, *args, **kwargs):
        sweep_id = open_sweep(self, config, *args, **kwargs)
        if not held._exit_callbacks:  # the other command: its runs stored, its lock held
            other = held.enter_context(RunStore(db))
            held.enter_context(other.lock_sweep(sweep_id))
            other.add_runs(sweep_id, [{"optimizer": "sgd", "hparams": {"lr": 0.01}, "seed": 0}])
        return sweep_id

    monkeypatch.setattr(RunStore, "open_sweep", the_other_one_first)
    monkeypatch.setattr("optimlab.bench.sweep._train_pending",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    with held:
        code = main(BENCH + ["--db", str(db)])
        err = capsys.readouterr().err
        assert held._exit_callbacks, "the other command's lock was not taken"
    assert code == 2, err  # as when the check finds the sweep trained elsewhere
    assert len(err.strip().splitlines()) == 1, err
    assert "is being run or resumed by process" in err, err
    assert "kept" not in err and "--resume" not in err and "then resume" not in err, err
    assert err.rstrip().endswith(": wait for it to end (or stop it) before running this "
                                 "command again"), err
    # the check's own path gives the same message and exit status
    monkeypatch.undo()
    with RunStore(db) as other, other.lock_sweep(1):
        assert main(BENCH + ["--db", str(db)]) == 2
    again = capsys.readouterr().err
    assert again.split(": ", 1)[1].split(", since")[0] == err.split(": ", 1)[1].split(", since")[0]
    assert again.rstrip().endswith(": wait for it to end (or stop it) before running this "
                                   "command again"), again
