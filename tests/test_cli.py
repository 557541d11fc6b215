"""The `optimlab` command: list, explain, compare, and one-line errors with exit code 2."""

import argparse
import io
import os
import re
import subprocess
import sys

import pytest

from optimlab import cli
from optimlab.cli import build_parser, main

#: the catalog commands' cache in a folder of this module's (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("catalog_cache")


def test_list_prints_every_class(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("adam (amsgrad)", "lamb", "lion", "schedulefreeadamw", "ScheduleFreeAdamW"):
        assert name in out


def test_explain_shows_rule_defaults_and_advice(capsys):
    assert main(["explain", "adam"]) == 0
    out = capsys.readouterr().out
    assert "Kingma & Ba" in out and "https://arxiv.org/abs/1412.6980" in out
    assert "lr=0.001" in out and "betas=(0.9, 0.999)" in out
    assert "\\frac" in out and "typical use" in out


def test_compare_is_the_tutorial_table(capsys):
    assert main(["compare", "sgd", "adagrad", "rmsprop", "adam"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    for column in ("year", "adaptive", "momentum", "extra memory", "bias", "sparse data",
                   "typical use"):
        assert column in out
    lines = out.splitlines()
    separator = next(i for i, line in enumerate(lines) if line.startswith("---"))
    rows = [line.split()[0] for line in lines[separator + 1:] if line and not line.startswith(" ")]
    assert rows == ["sgd", "adagrad", "rmsprop", "adam"], header


def test_compare_markdown(capsys):
    assert main(["compare", "adam", "lion", "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| optimizer | year") and len(lines) == 4


def test_names_may_come_after_an_option(capsys):
    """argparse ended compare's names at the first option: `compare adam --markdown lion`
    said "unrecognized arguments: lion". Names after an option join the list, read as the
    list reads them (profile's sweep ids as whole numbers); a command of one name still
    refuses a second."""
    assert main(["compare", "adam", "--markdown", "lion"]) == 0
    intermixed = capsys.readouterr().out
    assert main(["compare", "adam", "lion", "--markdown"]) == 0
    assert intermixed == capsys.readouterr().out and "| lion |" in intermixed
    assert main(["profile", "1", "--db", "none.db", "x"]) == 2
    assert "argument SWEEP_ID: takes a whole number, got 'x'" in capsys.readouterr().err
    assert main(["explain", "adam", "lion"]) == 2
    assert "unrecognized arguments: lion" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["explain", "adamm"], ["compare", "sgd", "nope"]])
def test_unknown_optimizer_is_one_error_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("optimlab: error: unknown optimizer")


def test_console_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "optimlab", "explain", "nag"],
                          capture_output=True, text=True, check=True)
    assert "nesterov" in done.stdout


def test_landscapes_lists_the_catalog(capsys):
    assert main(["landscapes"]) == 0
    out = capsys.readouterr().out
    for name in ("rosenbrock", "two_wells", "quadratic_deep", "saddle"):
        assert name in out


def test_race_prints_the_table_and_writes_pictures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png, gif = tmp_path / "race.png", tmp_path / "race.gif"
    argv = ["race", "rosenbrock", "--optimizers", "sgd,momentum,adam", "--lr", "adam=0.05",
            "--lr", "sgd=1e-4,momentum=1e-4", "--steps", "60", "--start=-1.5,2",
            "--noise", "0.1", "--out", str(png), "--gif", str(gif),
            "--surface", str(tmp_path / "surface.png")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "rosenbrock from (-1.5, 2), 60 steps, noise 0.1" in out
    rows = [line.split()[0] for line in out.splitlines() if line.split()[:1] and
            line.split()[0] in ("sgd", "momentum", "adam")]
    assert rows == ["sgd", "momentum", "adam"]
    assert "lr=0.05" in out and png.stat().st_size > 0 and gif.stat().st_size > 0
    assert (tmp_path / "surface.png").stat().st_size > 0 and f"wrote {gif}" in out


def test_race_hp_fixes_hyperparameters_beside_the_rate(capsys):
    argv = ["race", "rosenbrock", "--optimizers", "adam,momentum", "--steps", "50",
            "--hp", "adam:betas=(0.5,0.9)", "--hp", "momentum:nesterov=true"]
    assert main(argv + ["--lr", "adam=0.1,momentum=0.001"]) == 0
    table = capsys.readouterr().out
    assert "betas=(0.5, 0.9), lr=0.1" in table and "nesterov=True, lr=0.001" in table
    # the same race by hand
    from optimlab.landscapes import race

    by_hand = race("rosenbrock", {"adam": {"lr": 0.1, "betas": (0.5, 0.9)},
                                  "momentum": {"lr": 0.001, "nesterov": True}}, steps=50)
    assert f"{by_hand.metrics['adam'].final_loss:.4g}" in table
    assert main(argv + ["--tune"]) == 0 and "lr tuned by" in capsys.readouterr().out
    assert main(["race", "rosenbrock", "--optimizers", "adam", "--hp", "adam:lr=0.1"]) == 2
    assert "--hp adam: not lr: --lr sets it, or --tune" in capsys.readouterr().err


def test_race_lr_and_hp_name_optimizers_in_any_case_as_optimizers_does(capsys):
    """--optimizers SGD is sgd, so --lr SGD=0.01 and --hp SGD:... set sgd's (they were refused
    as "not in --optimizers"); the same name given twice in two cases is refused."""
    argv = ["race", "rosenbrock", "--optimizers", "SGD,Adam", "--steps", "20"]
    assert main(argv + ["--lr", "SGD=0.001,adam=0.05", "--hp", "ADAM:betas=(0.5,0.9)"]) == 0
    table = capsys.readouterr().out
    assert "lr=0.001" in table and "betas=(0.5, 0.9), lr=0.05" in table
    assert main(argv + ["--lr", "sgd=0.001,SGD=0.002"]) == 2
    assert "--lr sets sgd twice (0.001 and 0.002)" in capsys.readouterr().err
    assert main(argv + ["--lr", "Lion=0.001"]) == 2
    assert "--lr names Lion, not in --optimizers" in capsys.readouterr().err


def test_race_tune_reports_the_chosen_rates(capsys):
    """Each row's lr is the rate the tuned race chose (from the grid), not the default one
    an untuned table shows (gd's 0.001) under a "tuned" header."""
    import re

    import optimlab
    from optimlab.landscapes.race import TUNE_GRID

    assert main(["race", "quadratic", "--optimizers", "gd,adam", "--steps", "30",
                 "--tune"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("learning rates tuned on a log grid")
    shown = {m[1]: float(m[2]) for m in re.finditer(r"^(\w+)\s+lr=(\S+)\s", out, re.M)}
    chosen = optimlab.race("quadratic", {"gd": {}, "adam": {}}, steps=30, tune=True).hparams
    assert set(shown) == {"gd", "adam"}
    for name, lr in shown.items():
        assert lr == float(f"{chosen[name]['lr']:.3g}"), (name, lr, chosen[name])
        assert any(abs(lr / rate - 1) < 5e-3 for rate in TUNE_GRID)  # printed to 3 digits


@pytest.mark.parametrize("argv, message", [
    (["race", "rosenbrok", "--optimizers", "adam"], "unknown landscape"),
    (["race", "rosenbrock", "--optimizers", "adamm"], "unknown optimizer"),
    (["race", "rosenbrock", "--optimizers", "adam", "--start", "1,x"], "--start"),
    (["race", "rosenbrock", "--optimizers", "adam", "--start", "1,2,3"], "start must be 2"),
    (["race", "rosenbrock", "--optimizers", "adam", "--steps", "-5"], "--steps"),
    (["race", "rosenbrock", "--optimizers", "adam", "--lr", "adam"], "--lr takes"),
    (["race", "rosenbrock", "--optimizers", "adam", "--lr", "sgd=0.1"], "not in --optimizers"),
    (["race", "quadratic", "--optimizers", "adam", "--param", "kappa=-1"], "kappa"),
    (["race", "rosenbrock", "--optimizers", "adam", "--steps", "5", "--out",
      "/nonexistent-dir/x.png"], "cannot write"),
    (["demo", "nope"], "unknown demo"),
    (["demo", "effectve-lr"], "unknown demo 'effectve-lr'; did you mean effective-lr?"),
    (["demo", ""], "got an empty one"),  # it ran every exhibit
    (["serve", "--db", "sqlite:////tmp/runs.db"], "reads a run store file, not a URL"),
])
def test_race_and_demo_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(("optimlab: error:", "optimlab race: error:")) \
        and message in err[0], err


def test_demo_lists_and_runs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from optimlab.exhibits import DEMO_NAMES

    assert main(["demo", "--list"]) == 0
    assert capsys.readouterr().out.split() == list(DEMO_NAMES)
    assert main(["demo", "--list", "ema"]) == 2
    assert "takes no NAME" in capsys.readouterr().err
    assert main(["demo", "effective-lr", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("effective-lr: ")  # its title, with the set-up, as in the full run
    for value in ("0.0200", "0.0063", "0.0020", "0.0006", "0.0002"):
        assert value in out
    assert (tmp_path / "effective-lr.png").stat().st_size > 0
    # names are normalized ("EMA" is "ema"), and the reported file is the one written
    assert main(["demo", "EMA", "--out", str(tmp_path)]) == 0
    assert f"wrote {tmp_path}/ema.png" in capsys.readouterr().out
    assert (tmp_path / "ema.png").stat().st_size > 0


class _Quick:
    """A stand-in exhibit (the real ones take seconds each)."""

    def __init__(self, name):
        self.name, self.title = name, f"the {name} exhibit"

    def table(self):
        return f"{self.name} table"

    def plot(self):
        from optimlab.exhibits.base import pyplot

        fig = pyplot().figure(figsize=(1, 1))
        fig.gca().plot([0, 1])
        return fig


@pytest.fixture
def quick_exhibits(monkeypatch):
    """The registry with three quick exhibits, one of them new: `demo` reads the registry."""
    import optimlab.exhibits as exhibits

    names = ("ema", "saddle", "brand-new")
    monkeypatch.setattr(exhibits, "DEMOS", {n: (lambda n=n: _Quick(n)) for n in names})
    monkeypatch.setattr(exhibits, "DEMO_NAMES", names)
    return names


def test_demo_without_a_name_runs_every_exhibit(tmp_path, capsys, monkeypatch,
                                                quick_exhibits):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    for number, name in enumerate(quick_exhibits, 1):
        assert f"[{number}/3] {name}: the {name} exhibit\n{name} table\n" in out
        assert f"wrote {os.path.join(cli.DEMO_DIR, name)}.png" in out
        assert (tmp_path / cli.DEMO_DIR / f"{name}.png").stat().st_size > 0
    assert out.rstrip().endswith(f"ran 3 exhibits; their pictures are in {cli.DEMO_DIR}")
    assert main(["demo", "--out", str(tmp_path / "mine")]) == 0
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == sorted(
        f"{name}.png" for name in quick_exhibits)
    assert main(["demo", "--out", str(tmp_path / "no" / "such")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_demo_without_a_name_runs_the_real_exhibits(tmp_path, capsys):
    """Once, for real: every exhibit of the registry, its table printed and its PNG."""
    pytest.importorskip("matplotlib")
    from optimlab.exhibits import DEMO_NAMES

    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in DEMO_NAMES:
        assert f"wrote {tmp_path / name}.png" in out
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    assert "0.0063" in out  # effective-lr's table


def test_every_option_has_help():
    """Every subcommand's every option and positional argument says what it is."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, sub in [("optimlab", parser)] + sorted(commands.choices.items()):
        assert name == "optimlab" or any(c.dest == name and c.help for c in
                                         commands._choices_actions), f"{name} has no help"
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"no help text: {missing}"


def test_the_task_help_names_every_built_in_task_and_what_a_task_of_yours_returns():
    from optimlab.bench import tasks

    assert cli.TASK_NAMES == tuple(tasks.names())
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("bench", "advise", "slice"):
        task = next(a for a in commands.choices[name]._actions if a.dest == "task")
        assert all(t in task.help for t in tasks.names()), (name, task.help)
        data = next(a for a in commands.choices[name]._actions if a.dest == "data_dir")
        assert "mnist1d" in data.help and "data_dir" in data.help, (name, data.help)


BENCH = ["bench", "digits", "--optimizers", "sgd,adam", "--lrs", "0.01,0.1", "--seeds", "2",
         "--steps", "30", "--batch-size", "64", "--target", "0.5"]


def test_bench_runs_a_sweep_stores_it_and_writes_the_report(tmp_path, capsys):
    db, out = tmp_path / "runs.db", tmp_path / "report"
    assert main(BENCH + ["--db", str(db), "--out", str(out), "--average", "ema"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("sweep 1 in") and "population engine, 30 steps" in text
    assert "sgd" in text and "adam" in text
    for name in ("report.html", "results.csv", "curves.png", "lr_sensitivity.png"):
        assert (out / name).stat().st_size > 0
    # the command closed its store, which folds SQLite's -wal file in: the .db file alone,
    # copied as users back a store up, holds the sweep
    wal = tmp_path / "runs.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    (tmp_path / "copy.db").write_bytes(db.read_bytes())
    assert main(["runs", "--db", str(tmp_path / "copy.db")]) == 0
    assert "digits" in capsys.readouterr().out
    assert main(["runs", "--db", str(db)]) == 0
    assert "digits" in capsys.readouterr().out
    assert main(["report", "1", "--db", str(db), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "report.html").exists()


def test_bench_prints_its_results_when_the_report_cannot_be_written(tmp_path, capsys,
                                                                   monkeypatch):
    from optimlab.bench import report

    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(report, "write_report", refuse)
    db = tmp_path / "runs.db"
    assert main(BENCH + ["--db", str(db), "--out", str(tmp_path / "report")]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("sweep 1 in") and "adam" in captured.out
    (err,) = captured.err.strip().splitlines()
    assert "cannot write the report" in err and f"optimlab report 1 --db {db}" in err


def test_bench_refuses_to_silently_resume(tmp_path, capsys):
    from optimlab.bench.store import RunStore
    from optimlab.bench.sweep import SweepSpec
    from optimlab.bench.tasks import get
    from optimlab.bench.trainer import TrainConfig

    db = tmp_path / "runs.db"
    spec = SweepSpec(task="digits", optimizers=("sgd", "adam"), lrs=(0.01, 0.1), seeds=2,
                     config=TrainConfig(steps=30, batch_size=64, eval_every=2), target=0.5)
    store = RunStore(db)  # a sweep that was killed before training anything
    sweep = store.open_sweep(spec.stored_config(get("digits")))
    store.add_runs(sweep, [{"optimizer": m.optimizer, "hparams": m.hparams, "seed": m.seed}
                           for m in spec.members()])
    argv = BENCH + ["--db", str(db), "--eval-every", "2"]
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(argv + ["--resume"]) == 0
    assert {r.status for r in RunStore(db).list_runs(sweep)} == {"finished"}


def test_bench_name_labels_a_new_sweep_and_a_found_sweep_keeps_its_own(tmp_path, capsys):
    """``--name`` is stored with a new sweep and shown by ``optimlab runs`` and the report;
    the same configuration under another name finds the stored sweep, which keeps its name,
    and the command says so. Sweeps without a name leave the listing's column out."""
    from optimlab.bench.store import RunStore

    db = tmp_path / "runs.db"
    argv = ["bench", "digits", "--model", "logreg", "--optimizers", "adam", "--lrs", "0.01",
            "--seeds", "1", "--steps", "5", "--batch-size", "64", "--db", str(db)]
    assert main(argv) == 0  # no name
    capsys.readouterr()
    assert main(["runs", "--db", str(db)]) == 0
    assert capsys.readouterr().out.split()[:3] == ["id", "task", "model"]
    assert main([*argv[:-4], "--steps", "6", "--db", str(db), "--name", "  first try "]) == 0
    capsys.readouterr()
    assert RunStore(db).sweep(2)["name"] == "first try"  # outer spaces dropped
    assert main(["runs", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["id", "name", "task"]
    assert lines[3].split()[:4] == ["2", "first", "try", "digits"]
    assert main([*argv[:-4], "--steps", "6", "--db", str(db), "--name", "again"]) == 0
    captured = capsys.readouterr()
    assert "nothing trained: sweep 2" in captured.out
    assert "note: sweep 2 in" in captured.err and "keeps its name 'first try', not 'again'" \
        in captured.err
    assert main([*argv, "--name", "late"]) == 0
    assert "sweep 1 in" in (err := capsys.readouterr().err) and "keeps no name, not 'late'" in err
    assert RunStore(db).sweep(1)["name"] is None
    assert main(["report", "2", "--db", str(db), "--out", str(tmp_path / "r")]) == 0
    assert "<h1>Sweep 2: digits / logreg (first try)</h1>" in \
        (tmp_path / "r" / "report.html").read_text()


def test_bench_heading_names_the_engine_that_trained_the_stored_runs(tmp_path, capsys):
    """The engine is not part of a sweep's identity: the same command with --sequential found
    a sweep the population engine had trained and headed its stored results "sequential
    engine", and a --resume --sequential mixed the two without a word. Each run's summary
    now says which engine trained it, the heading counts them, and a resume on the other
    engine says so."""
    import sqlite3

    from optimlab.bench.store import RunStore

    db = tmp_path / "runs.db"
    argv = ["bench", "digits", "--model", "logreg", "--optimizers", "adam", "--lrs", "0.01",
            "--seeds", "2", "--steps", "5", "--batch-size", "64", "--db", str(db)]
    assert main(argv) == 0
    assert ", population engine, 5 steps" in capsys.readouterr().out.splitlines()[0]
    assert [r.summary["engine"] for r in RunStore(db).list_runs(1)] == ["population"] * 2
    assert main(argv + ["--sequential"]) == 0  # nothing trains: the stored runs' engine
    first, second = capsys.readouterr().out.splitlines()[:2]
    assert ", population engine, 5 steps" in first and second.startswith("nothing trained")
    with sqlite3.connect(db) as con:  # one run left unfinished, as a killed command leaves it
        con.execute("UPDATE runs SET status = 'pending', summary = NULL WHERE id = 2")
    assert main(argv + ["--resume", "--sequential"]) == 0
    captured = capsys.readouterr()
    assert "population engine (1 run) and sequential engine (1 run), 5 steps" in \
        captured.out.splitlines()[0]
    assert "note: sweep 1 in " in captured.err
    assert ("has runs the population engine trained; its unfinished runs train on the "
            "sequential engine, which agrees with it to rounding, not bit for bit") in captured.err
    assert [r.summary["engine"] for r in RunStore(db).list_runs(1)] == ["population",
                                                                       "sequential"]


def test_bench_says_when_a_finished_sweep_trains_nothing(tmp_path, capsys):
    """The same command twice: the second finds the sweep ended and shows its stored
    results, saying that nothing trained (it printed the same lines as a fresh run)."""
    argv = ["bench", "digits", "--model", "logreg", "--optimizers", "adam", "--lrs", "0.01",
            "--seeds", "1", "--steps", "5", "--batch-size", "64", "--db", str(tmp_path / "a.db")]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "nothing trained" not in first
    assert main(argv) == 0
    second = capsys.readouterr().out.splitlines()
    assert second[1].startswith("nothing trained: sweep 1 had ended every run of this "
                                "configuration already")
    assert [line for line in second if not line.startswith("nothing trained")] == \
        first.splitlines()


def test_bench_says_when_the_batch_is_the_whole_train_set(tmp_path, capsys):
    """--batch-size past the train set's size trains full-batch: the output says so."""
    argv = ["bench", "digits", "--model", "logreg", "--optimizers", "adam", "--lrs", "0.01",
            "--seeds", "1", "--steps", "2", "--db", str(tmp_path / "a.db")]
    assert main(argv + ["--batch-size", "5000"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("--batch-size 5000 is at least the task's ")
    assert "stored as full batch" in out[1]
    assert main(argv + ["--batch-size", "64"]) == 0
    assert "--batch-size" not in capsys.readouterr().out


def test_bench_extend_takes_a_given_grid_past_its_edge(tmp_path, capsys):
    # Adam on the digits' logistic regression in 30 steps: 1e-2 beats 1e-3 by far, so the
    # top edge wins (tests/bench/test_sweep.py measured it); --extend tries 0.1 and 1 too
    from optimlab.bench.store import RunStore

    argv = ["bench", "digits", "--model", "logreg", "--optimizers", "adam", "--lrs",
            "0.001,0.01", "--seeds", "1", "--steps", "30", "--batch-size", "64",
            "--eval-every", "10"]
    assert main(argv + ["--db", str(tmp_path / "a.db"), "--extend"]) == 0
    assert "were tried too" in capsys.readouterr().out
    run_lrs = sorted({r.hparams["lr"] for r in RunStore(tmp_path / "a.db").list_runs(1)})
    assert run_lrs[:4] == pytest.approx([1e-3, 1e-2, 0.1, 1.0])
    assert main(argv + ["--db", str(tmp_path / "b.db")]) == 0  # without it: flagged
    assert "(top of grid)" in capsys.readouterr().out
    assert len(RunStore(tmp_path / "b.db").list_runs(1)) == 2


def test_bench_hp_fixes_hyperparameters_per_optimizer(tmp_path, capsys):
    from optimlab.bench.store import RunStore

    db = tmp_path / "runs.db"
    argv = BENCH + ["--db", str(db), "--hp", "sgd:momentum=0.9,nesterov=true",
                    "--hp", "adam:betas=(0.8,0.99),amsgrad=TRUE,eps=1e-6"]
    assert main(argv) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("; sgd with momentum=0.9, nesterov=True; adam with "
                          "betas=(0.8, 0.99), amsgrad=True, eps=1e-06")
    runs = RunStore(db).list_runs(1)
    assert {(r.optimizer, r.hparams["lr"]) for r in runs} == {
        (o, lr) for o in ("sgd", "adam") for lr in (0.01, 0.1)}
    for r in runs:
        fixed = {k: v for k, v in r.hparams.items() if k != "lr"}
        assert fixed == ({"momentum": 0.9, "nesterov": True} if r.optimizer == "sgd" else
                         {"betas": [0.8, 0.99], "amsgrad": True, "eps": 1e-6})
    # the same command finds the same sweep; other fixed values make another one
    assert main(argv) == 0 and capsys.readouterr().out.startswith("sweep 1 ")
    assert main(BENCH + ["--db", str(db), "--hp", "sgd:momentum=0.5"]) == 0
    assert capsys.readouterr().out.startswith("sweep 2 ")


def test_bench_hp_chooses_what_a_wrapper_wraps_and_sets_its_hyperparameters(tmp_path, capsys):
    from optimlab.bench.store import RunStore

    db = tmp_path / "runs.db"
    argv = ["bench", "digits", "--optimizers", "lookahead,sam", "--lrs", "0.01,0.1", "--seeds",
            "1", "--steps", "5", "--db", str(db),
            "--hp", "lookahead:inner=sgd,momentum=0.9,k=6",
            "--hp", "sam:base_optimizer=adam,betas=(0.8,0.99),rho=0.1"]
    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.splitlines()[0].endswith(
        "lookahead with inner=sgd, momentum=0.9, k=6; sam with base_optimizer=adam, "
        "betas=(0.8, 0.99), rho=0.1")
    fixed = {r.optimizer: {k: v for k, v in r.hparams.items() if k != "lr"}
             for r in RunStore(db).list_runs(1)}
    assert fixed == {"lookahead": {"inner": "sgd", "momentum": 0.9, "k": 6},
                     "sam": {"base_optimizer": "adam", "betas": [0.8, 0.99], "rho": 0.1}}


@pytest.mark.parametrize("hp, message", [
    # the wrapped optimizer's keys are the ones of the class it names, or of its default
    ("lookahead:inner=sgd,betas=(0.9,0.9)",
     "'betas' is not a hyperparameter of Lookahead with SGD (it takes inner, k, alpha, momentum"),
    ("lookahead:momentum=0.9", "'momentum' is not a hyperparameter of Lookahead with Adam"),
    ("lookahead:inner=adamm", "--hp lookahead: inner: unknown optimizer 'adamm'; did you mean adam"),
])
def test_bench_hp_of_a_wrapper_is_checked_against_what_it_wraps(hp, message, tmp_path, capsys):
    argv = ["bench", "digits", "--optimizers", "lookahead", "--lrs", "0.01,0.1", "--steps", "5",
            "--db", str(tmp_path / "runs.db"), "--hp", hp]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_every_hyperparameter_default_reads_back_through_hp():
    """Each optimizer's every hyperparameter default, written as --hp takes it, parses to
    the default again and is of the kind --hp asks for that key (a class, SAM's base
    optimizer, is given by name instead)."""
    from optimlab.cli import _hp_fits, _hp_kind, _hp_value
    from optimlab.optim.capabilities import hyperparameters
    from optimlab.optim.catalog import TABLE
    from optimlab.optim.registry import resolve

    def written(v):
        if isinstance(v, tuple):
            return "(" + ",".join(written(x) for x in v) + ")"
        return "none" if v is None else str(v).lower() if isinstance(v, bool) else \
            v if isinstance(v, str) else repr(v)

    checked = 0
    for info in TABLE:
        for key, default in hyperparameters(resolve(info.name).cls).items():
            if isinstance(default, type):
                continue
            value = _hp_value(written(default))
            assert value == default and _hp_fits(value, default), (info.name, key)
            assert _hp_kind(default)  # and its kind can be said
            checked += 1
    assert checked > 150


@pytest.mark.parametrize("extra, message", [
    (["--hp", "sgd"], "--hp takes NAME:KEY=VALUE"),
    (["--hp", "lion:weight_decay=0.1"], "--hp names 'lion', which is not in --optimizers"),
    (["--hp", "sgd:lr=0.1"], "--hp sgd: not lr: --lrs sweeps it"),
    (["--hp", "sgd:momentm=0.9"], "'momentm' is not a hyperparameter of SGD (it takes momentum"),
    (["--hp", "sgd:momentun=0.9"], "nesterov; did you mean 'momentum'?)"),
    (["--hp", "sgd:momentum"], "takes KEY=VALUE"),
    (["--hp", "sgd:momentum=inf"], "momentum takes a finite number, got 'inf'"),
    (["--hp", "sgd:momentum=true"], "momentum takes a finite number"),
    (["--hp", "adam:amsgrad=yes"], "amsgrad takes true or false"),
    (["--hp", "adam:betas=0.9"], "betas takes a tuple of 2 such as (0.9,0.999)"),
    (["--hp", "adam:betas=(0.9,2)"], "--hp adam: betas[1] must be in [0, 1)"),  # adam's own
    (["--hp", "sgd:momentum=-1"], "--hp sgd: momentum must be"),
    (["--hp", "adam:eps=1e-6", "--hp", "adam:eps=1e-7"], "--hp adam: eps is given twice"),
    (["--lrs", "0,0.1"], "learning rates"),
    (["--lrs", ""], "learning rates"),
    (["--lrs", "1e-3:1e-1:1"], "needs a COUNT of at least 2"),
    (["--resume"], "--resume: no sweep in"),
    (["--optimizers", "adamm"], "unknown optimizer"),
    (["--steps", "0"], "--steps: takes a whole number >= 1"),
    (["--batch-size", "x"], "--batch-size"),
    (["--model", "resnet"], "no model 'resnet'"),
    (["--out", "/proc/forbidden/report"], "cannot write the report"),
    (["--name", "  "], "--name: takes one line of printable text of 1 to 80 characters"),
    (["--name", "two\nlines"], "--name: takes one line of printable text"),
    (["--name", "x" * 81], "--name: takes one line of printable text"),
])
def test_bench_errors_are_one_line(extra, message, tmp_path, capsys):
    argv = BENCH + ["--db", str(tmp_path / "runs.db")] + extra
    if extra[0] == "--optimizers":
        argv = [a for a in argv if a != "sgd,adam"]
        argv.remove("--optimizers")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_unknown_task_and_missing_store(tmp_path, capsys):
    assert main(["bench", "imagenet", "--optimizers", "adam", "--db",
                 str(tmp_path / "r.db")]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert main(["runs", "--db", str(tmp_path / "none.db")]) == 2
    assert "no run store" in capsys.readouterr().err
    from optimlab.bench.store import RunStore

    RunStore(tmp_path / "r.db").close()  # the unknown task left no store behind; make one
    assert main(["report", "7", "--db", str(tmp_path / "r.db"), "--out", str(tmp_path)]) == 2
    assert "no sweep 7" in capsys.readouterr().err


def _tour_store(folder):
    """A tour's store with one sweep of a tiny bench, as `optimlab tour` leaves it."""
    (folder / "optimlab-tour").mkdir()
    assert main(["bench", "digits", "--optimizers", "sgd,adam", "--lrs", "0.1", "--seeds", "1",
                 "--steps", "6", "--batch-size", "64", "--target", "0.2", "--db",
                 cli.TOUR_DB]) == 0


def test_the_tours_sweeps_are_found(tmp_path, capsys, monkeypatch):
    """After `make demo`, `optimlab runs/report/profile` without --db read the tour's store
    (with a note), and a sweep missing from the default store names the --db to add."""
    monkeypatch.chdir(tmp_path)
    _tour_store(tmp_path)
    capsys.readouterr()
    note = (f"optimlab: note: no optimlab-runs.db here; reading the tour's sweeps in "
            f"{cli.TOUR_DB} (pass --db to choose a store)\n")
    assert main(["runs"]) == 0
    captured = capsys.readouterr()
    assert "digits" in captured.out and captured.err == note
    assert main(["profile", "1"]) == 0
    captured = capsys.readouterr()
    assert "1: digits" in captured.out and captured.err == note
    assert main(["report", "1", "--out", "report"]) == 0
    assert capsys.readouterr().err == note and (tmp_path / "report" / "report.html").exists()
    assert main(["profile", "2"]) == 2  # in neither store
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"optimlab: error: no sweep 2 in {cli.TOUR_DB} (see `optimlab runs`)")
    # an explicit --db is read as given
    assert main(["runs", "--db", cli.DEFAULT_DB]) == 2
    assert "no run store at optimlab-runs.db (run `optimlab bench` first" in capsys.readouterr().err
    # the tour's store, named but not made yet (another folder): the tour makes it
    monkeypatch.chdir(tmp_path / "report")
    assert main(["profile", "1", "--db", cli.TOUR_DB]) == 2
    assert f"no run store at {cli.TOUR_DB} (run `optimlab tour` first" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    # with a default store that lacks the sweep: one error line naming the tour's store
    from optimlab.bench.store import RunStore

    RunStore(cli.DEFAULT_DB).close()
    for argv in (["profile", "1"], ["report", "1", "--out", "again"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"optimlab: error: no sweep 1 in optimlab-runs.db; the tour's sweeps are "
                       f"in {cli.TOUR_DB}: add --db {cli.TOUR_DB}"]
    assert main(["profile", "1", "--db", cli.TOUR_DB]) == 0
    assert main(["runs"]) == 0  # the default store, empty, read without a note
    assert capsys.readouterr().err == ""


class _Terminal(io.StringIO):
    """stderr as a terminal."""

    def isatty(self):
        return True


def test_progress_counts_steps_and_runs(monkeypatch):
    pytest.importorskip("tqdm")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("CI", raising=False)
    # two populations of 3 steps, of 2 runs and 4 runs
    with cli._progress("digits, population engine", [(3, 2), (3, 4)]) as tick:
        progress = tick
        assert progress.bar.total == 6 and progress.runs == 6
        done = []
        for _ in range(6):
            tick(1)
            done.append(progress.done)
    assert done == [0, 0, 2, 2, 2, 6]
    text = terminal.getvalue()
    assert "digits, population engine" in text and "6/6" in text
    assert "runs done 6/6" in text and "step/s" in text
    # sequential: a run ends every `steps` ticks
    with cli._progress("x", [(2, 1)] * 3) as tick:
        progress = tick
        for _ in range(5):
            tick(1)
        assert progress.done == 2
    # a grid extended past its edge trains steps nobody planned: the total grows with them
    with cli._progress("x", [(2, 1)]) as tick:
        progress = tick
        for _ in range(5):
            tick(1)
        assert progress.bar.total == 5 and progress.bar.n == 5 and progress.done == 1
    assert "extending the grid past an edge" in terminal.getvalue()
    # calls added to the plan (a batched group trained again one run at a time)
    with cli._progress("x", [(3, 2)]) as tick:
        tick(2)  # the population raised after 2 of its 3 steps
        tick.extend([(6, 2)], "2 runs trained again one at a time")
        assert tick.bar.total == 9 and tick.runs == 4
        for _ in range(7):
            tick(1)
        assert tick.done == 4 and tick.bar.total == 9
    assert "runs done 4/4; 2 runs trained again one at a time" in terminal.getvalue()
    monkeypatch.setenv("CI", "1")  # silent in CI, and when stderr is no terminal
    terminal.truncate(0)
    terminal.seek(0)
    with cli._progress("x", [(2, 1)]) as tick:
        tick(1)
    assert terminal.getvalue() == ""


def test_bench_says_what_it_does_on_a_terminal(tmp_path, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    argv = ["bench", "digits", "--optimizers", "sgd,adam", "--lrs", "0.01,0.1", "--seeds", "1",
            "--steps", "4", "--batch-size", "64"]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("CI", raising=False)
    assert main(argv + ["--db", str(tmp_path / "a.db")]) == 0
    text = terminal.getvalue()
    assert text.startswith("optimlab: loading task digits...\n")
    assert "digits, population engine" in text and "runs done 4/4" in text and "8/8" in text
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: nothing
    assert main(argv + ["--db", str(tmp_path / "b.db"), "--sequential"]) == 0
    assert sys.stderr.getvalue() == ""


def test_a_long_race_shows_its_progress_on_a_terminal(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(cli, "RACE_PROGRESS_DELAY", 0.0)  # a race of the suite is quick
    assert main(["race", "rosenbrock", "--optimizers", "adagrad", "--steps", "40",
                 "--tune"]) == 0
    text = terminal.getvalue()
    # 17 tuned rates; Adagrad's best is on the grid's top edge, so a round of rates is added
    assert "race on rosenbrock" in text and "runs done 17/17" in text
    assert "extending the grid past an edge" in text and "80/80" in text
    assert "so 1.78, 3.16, 5.62, 10 were tried too" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: nothing
    assert main(["race", "quadratic", "--optimizers", "gd", "--steps", "40"]) == 0
    assert sys.stderr.getvalue() == ""


def test_profile_across_sweeps(tmp_path, capsys):
    db = str(tmp_path / "runs.db")
    common = ["--optimizers", "sgd,adam", "--lrs", "0.03,0.3", "--seeds", "2", "--steps", "40",
              "--batch-size", "64", "--db", db]
    assert main(["bench", "digits", "--target", "0.6"] + common) == 0
    assert main(["bench", "sparse-logreg", "--target", "0.55"] + common) == 0
    capsys.readouterr()
    png = tmp_path / "profile.png"
    assert main(["profile", "1", "2", "--db", db, "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "1: digits" in out and "2: sparse-logreg" in out and "score (AlgoPerf)" in out
    scores = [float(v) for v in out.split("score (AlgoPerf)")[1].split()[:2]]
    assert all(0 <= v <= 1 for v in scores) and max(scores) > 0
    assert png.stat().st_size > 0
    assert main(["profile", "9", "--db", db]) == 2
    assert "no sweep 9" in capsys.readouterr().err
    assert main(["bench", "digits"] + common[:-4] + ["--steps", "20", "--db", db]) == 0
    capsys.readouterr()
    assert main(["profile", "1", "3", "--db", db]) == 2
    assert "sweep 3 has no target" in capsys.readouterr().err


def test_bench_recalibrate_measures_the_step_costs_again(tmp_path, capsys, monkeypatch):
    from optimlab.bench import cost

    folder = tmp_path / "costs"
    monkeypatch.setattr(cost, "cache_dir", lambda: folder)
    measured = []
    real = cost._measure
    monkeypatch.setattr(cost, "_measure", lambda *a, **k: measured.append(a[3]) or real(*a, **k))
    argv = ["bench", "digits", "--model", "logreg", "--optimizers", "sgd", "--lrs", "0.1",
            "--seeds", "1", "--steps", "10", "--target", "0.5"]
    assert main(argv + ["--db", str(tmp_path / "a.db")]) == 0
    assert main(argv + ["--db", str(tmp_path / "b.db")]) == 0  # cached: not measured
    assert main(argv + ["--db", str(tmp_path / "c.db"), "--recalibrate"]) == 0
    assert [[name for name, _ in entries] for entries in measured] == [["sgd"], ["sgd"]]
    capsys.readouterr()


def test_race_names_a_long_start_point_without_every_coordinate(capsys):
    assert main(["race", "rosenbrock_nd", "--optimizers", "adam", "--steps", "2", "--param",
                 "dim=50"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("rosenbrock_nd from (") and "... 50 coordinates)" in header
    assert len(header) < 120


def test_bench_exits_nonzero_when_every_run_failed(tmp_path, capsys):
    """Muon cannot step the MLP's biases: every run fails, the table and its notes are
    printed, and the exit status says so (2), without the hint for unbatchable models:
    --sequential fails the same way."""
    argv = ["bench", "digits", "--optimizers", "muon", "--lrs", "0.01", "--seeds", "1",
            "--steps", "5", "--batch-size", "64", "--db", str(tmp_path / "runs.db")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("sweep 1 in") and "Muon only optimizes" in captured.out
    (err,) = captured.err.strip().splitlines()
    assert "every run of sweep 1 failed" in err and "--sequential" not in err


def test_bench_hints_at_sequential_only_where_batching_failed(tmp_path, capsys, monkeypatch):
    """A model whose BatchNorm the population engine cannot batch (its probe overruled here)
    fails every run with vmap's error: the hint names --sequential."""
    module = "failing_batchnorm_task"
    (tmp_path / f"{module}.py").write_text(_BATCHNORM_TASK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(cli, "_one_by_one", lambda task, model, sequential=False: sequential)
    argv = ["bench", f"{module}:batchnorm", "--optimizers", "adam", "--lrs", "0.01", "--seeds",
            "1", "--steps", "5", "--db", str(tmp_path / "runs.db")]
    assert main(argv) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "every run of sweep 1 failed" in err and "trains with --sequential" in err


_FLOAT64_TASK = '''
import numpy as np
from torch import nn

def blobs():
    x = np.random.default_rng(0).normal(size=(60, 4))
    y = (x[:, 0] > 0).astype(np.int64)
    return {"model": lambda: nn.Linear(4, 2).double(), "x_train": x[:50], "y_train": y[:50],
            "x_test": x[50:], "y_test": y[50:]}
'''


@pytest.mark.parametrize("extra", [[], ["--sequential"]])
def test_bench_refuses_a_model_that_fails_on_two_examples_on_either_engine(extra, tmp_path,
                                                                          capsys, monkeypatch):
    """A float64 model fed the float32 inputs every task gives: the population engine's
    probe refused it in one line, storing nothing; --sequential skipped the probe and stored
    a sweep whose every run failed with the same error."""
    module = "float64_model_task"
    (tmp_path / f"{module}.py").write_text(_FLOAT64_TASK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    argv = ["bench", f"{module}:blobs", "--optimizers", "adam", "--lrs", "0.01", "--seeds", "1",
            "--steps", "5", "--db", str(tmp_path / "runs.db")] + extra
    assert main(argv) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "the model fails on 2 training examples" in err and "Float and Double" in err, err
    from optimlab.bench.store import RunStore

    store = RunStore(tmp_path / "runs.db")
    assert store.con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    store.close()


@pytest.mark.parametrize("extra", [[], ["--sequential"]])
def test_bench_refuses_an_optimizer_for_sparse_gradients_before_training(extra, tmp_path, capsys,
                                                                         monkeypatch):
    """SparseAdam on a dense model fails every run on either engine: refused up front, as
    `race` refuses it, with no store created."""
    monkeypatch.setattr("optimlab.bench.sweep.run_sweep", lambda *a, **k: pytest.fail("trained"))
    argv = ["bench", "digits", "--optimizers", "adam,sparseadam", "--lrs", "0.01", "--seeds",
            "1", "--steps", "5", "--db", str(tmp_path / "runs.db")] + extra
    assert main(argv) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("optimlab: error: sparseadam takes sparse gradients only "
                          "(nn.Embedding(sparse=True)); races, the playground and populations "
                          "give dense ones"), err
    assert "model mlp of task digits" in err
    assert list(tmp_path.iterdir()) == []



_BATCHNORM_TASK = '''
import numpy as np
from torch import nn

def task(layer="batchnorm"):
    x = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    middle = {"batchnorm": lambda: nn.BatchNorm1d(8), "dropout": lambda: nn.Dropout(0.2),
              "none": nn.Identity}[layer]
    return {"model": lambda: nn.Sequential(nn.Linear(3, 8), middle(), nn.ReLU(),
                                           nn.Linear(8, 2)),
            "x_train": x[:40], "y_train": y[:40], "x_test": x[40:], "y_test": y[40:]}

def batchnorm():
    return task("batchnorm")

def dropout():
    return task("dropout")

def none():
    return task("none")
'''


@pytest.mark.parametrize("layer, engine", [("batchnorm", "sequential"), ("dropout", "sequential"),
                                           ("none", "population")])
def test_bench_trains_a_model_the_population_cannot_batch_one_run_at_a_time(
        layer, engine, tmp_path, monkeypatch, capsys):
    """A task module in the current folder, found as the console script finds it (its
    sys.path has neither '' nor the folder); a model with BatchNorm or dropout trains with
    the sequential engine, said on stderr, instead of every run failing."""
    from optimlab.bench.store import RunStore

    module = f"folder_tasks_{layer}"
    (tmp_path / f"{module}.py").write_text(_BATCHNORM_TASK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, module, raising=False)
    db = tmp_path / "runs.db"
    argv = ["bench", f"{module}:{layer}", "--optimizers", "adam",
            "--lrs", "0.01,0.1", "--seeds", "2", "--steps", "10", "--db", str(db)]
    assert main(argv) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert f", {engine} engine, 10 steps" in out.splitlines()[0]
    assert ("the population engine cannot batch this model" in err) == (engine == "sequential")
    runs = RunStore(db).list_runs(1)
    assert len(runs) == 4 and {r.status for r in runs} == {"finished"}


def test_a_task_file_named_as_a_standard_module_is_read_unless_python_read_its_own(
        tmp_path, monkeypatch, capsys):
    """mailbox.py of yours is a task module (Python's mailbox is not imported); random.py is
    refused, naming the file to rename, since Python's random was imported first and would
    be read in its place; the standard modules themselves are no tasks."""
    from optimlab.bench.store import RunStore

    assert "mailbox" not in sys.modules and "random" in sys.modules
    for name in ("mailbox", "random"):
        (tmp_path / f"{name}.py").write_text(_BATCHNORM_TASK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    db = tmp_path / "runs.db"
    argv = ["--optimizers", "adam", "--lrs", "0.01", "--seeds", "1", "--steps", "3", "--db", str(db)]
    try:
        assert main(["bench", "mailbox:none", *argv]) == 0, capsys.readouterr().err
        assert sys.modules["mailbox"].__file__ == str(tmp_path / "mailbox.py")
    finally:
        sys.modules.pop("mailbox", None)
    assert [r.status for r in RunStore(db).list_runs(1)] == ["finished"]
    assert main(["bench", "random:none", *argv]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "optimlab: error: random:none: your random.py has the name of Python's standard module "
        "'random', which optimlab imported before it; rename your file")
    (tmp_path / "random.py").unlink()
    assert main(["bench", "random:random", *argv]) == 2
    assert "random:random is in Python's standard library, not a task" in capsys.readouterr().err


def test_bench_loads_its_task_once(tmp_path, monkeypatch, capsys):
    """The command line hands the task it loaded, and the configuration it found the sweep
    by, to the sweep (MNIST's files took a second to read and digest, twice)."""
    from optimlab.bench import sweep, tasks

    calls = []
    real = tasks.get

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    digests = []
    real_digest = sweep.data_digest

    def digest(task):
        digests.append(task.name)
        return real_digest(task)

    monkeypatch.setattr(tasks, "get", counted)
    monkeypatch.setattr(sweep, "get_task", counted)
    monkeypatch.setattr(sweep, "data_digest", digest)
    assert main(BENCH + ["--db", str(tmp_path / "runs.db")]) == 0, capsys.readouterr().err
    assert calls == ["digits"]
    assert digests == ["digits"]  # and digests its data once (MNIST's: 0.24 s)


def test_a_store_urls_password_is_never_printed(capsys):
    assert main(["runs", "--db", "postgresql://u:s3cret@127.0.0.1:1/db"]) == 2
    err = capsys.readouterr().err
    assert "s3cret" not in err and "postgresql://u:***@127.0.0.1:1/db" in err
    from optimlab.cli import _masked

    assert _masked("postgresql+psycopg://u:p:q@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    assert _masked("postgresql://u@h/db") == "postgresql://u@h/db" and _masked("a.db") == "a.db"
    from pathlib import Path

    assert _masked(Path("dir/a.db")) == "dir/a.db"  # serve passes a Path


def test_bench_on_a_sweep_another_process_trains_says_so_not_resume(tmp_path, capsys):
    """The same command while the sweep trains elsewhere told the user to pass --resume,
    which then failed; it now names the process that holds it."""
    from optimlab.bench.store import RunStore

    db = tmp_path / "runs.db"
    argv = BENCH + ["--db", str(db)]
    assert main(argv) == 0
    capsys.readouterr()
    other = RunStore(db)
    other.add_runs(1, [{"optimizer": "sgd", "hparams": {"lr": 0.5}, "seed": 0}])  # to train
    with other.lock_sweep(1):
        assert main(argv) == 2
    err = capsys.readouterr().err
    other.close()
    assert "is being run or resumed" in err and "pass --resume" not in err
    assert len(err.strip().splitlines()) == 1
    # the advice once, and not "then resume": the other process may finish the sweep
    assert err.count("wait for it to end") == 1 and "then resume" not in err, err
    assert err.rstrip().endswith(": wait for it to end (or stop it) before running this command "
                                 "again"), err


@pytest.mark.parametrize("lrs, shown", [("inf", "'inf'"), ("0.1,nan", "'nan'"),
                                        ("1e-300:1e300:5", "'1e300'"), ("1e39", "'1e39'"),
                                        ("1e-3:inf:3", "'inf'")])
def test_bench_lrs_must_be_finite_and_within_float32(lrs, shown, tmp_path, capsys, monkeypatch):
    """A rate the optimizers refuse (beyond float32's largest) or no number at all (inf, nan)
    is refused before training, saying so, not "must be > 0" or a sweep of failed runs."""
    monkeypatch.setattr("optimlab.bench.sweep.run_sweep", lambda *a, **k: pytest.fail("trained"))
    argv = ["bench", "digits", "--optimizers", "adam", "--steps", "5", "--lrs", lrs, "--db",
            str(tmp_path / "runs.db")]
    assert main(argv) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err == ("optimlab: error: --lrs takes finite learning rates > 0 and at most 3.403e+38 "
                   f"(float32's largest), got {shown}"), err


def test_bench_lrs_grid_up_to_float32s_largest_stays_within_it():
    import math

    from optimlab.optim.base import LARGEST

    args = argparse.Namespace(no_limits=False)
    grid = cli._lrs(f"1e-4:{LARGEST!r}:5", args)
    assert len(grid) == 5 and max(grid) == LARGEST and all(math.isfinite(lr) for lr in grid)


@pytest.mark.parametrize("task, target, refused", [
    ("digits", "5", True), ("digits", "-0.1", True), ("digits", "1", False),
    ("quadratic-deep", "5", False), ("quadratic-deep", "-5", False),  # a loss: anything goes
])
def test_bench_refuses_a_target_the_metric_cannot_reach(task, target, refused, tmp_path, capsys,
                                                        monkeypatch):
    class Trained(BaseException):  # through main(), which reports an Exception
        pass

    def stop(*args, **kwargs):
        raise Trained

    monkeypatch.setattr("optimlab.bench.sweep.run_sweep", stop)
    argv = ["bench", task, "--optimizers", "adam", "--steps", "5", "--seeds", "1", "--lrs",
            "0.01", "--target", target, "--db", str(tmp_path / "runs.db")]
    if not refused:
        with pytest.raises(Trained):
            main(argv)
        return
    assert main(argv) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert f"--target {float(target):g} is out of reach" in err and "from 0 to 1" in err, err
    assert list(tmp_path.iterdir()) == []


def test_optimlabs_own_warnings_are_one_line(tmp_path, capsys, monkeypatch):
    """A warning of optimlab's (a recalibration that cannot rewrite a finished sweep's costs)
    is one 'optimlab: warning:' line, not Python's file, line number and source line; other
    libraries' warnings are shown as Python shows them, even where raised from optimlab's
    code."""
    import warnings

    from optimlab.bench import sweep

    real = sweep.run_sweep

    def warning_sweep(*args, **kwargs):
        warnings.warn("the step costs were measured again\n  (two lines)", sweep.CalibrationWarning)
        warnings.warn("a library's own", DeprecationWarning)
        # torch's C++ warnings are laid at the Python line that called torch: optimlab's
        warnings.warn_explicit("torch's own", UserWarning, sweep.__file__, 1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep, "run_sweep", warning_sweep)
    shown = []  # how the warnings are shown outside the command (pytest records them)
    monkeypatch.setattr(warnings, "showwarning", lambda *args, **kwargs: shown.append(args[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(BENCH + ["--db", str(tmp_path / "runs.db")]) == 0
    err = capsys.readouterr().err
    assert "optimlab: warning: the step costs were measured again (two lines)\n" in err
    assert "warnings.warn(" not in err and "CalibrationWarning" not in err
    assert shown == [DeprecationWarning, UserWarning]


def test_an_alias_says_its_own_momentum_in_explain_and_compare():
    """gd is SGD without momentum: explain and compare said "momentum: yes" (the class's)."""
    from optimlab.cli import compare_table, explain

    gd, momentum = explain("gd"), explain("momentum")
    assert re.search(r"^ +momentum: no$", gd, re.M) and "(here momentum=0)" in " ".join(gd.split())
    assert (re.search(r"^ +momentum: yes$", momentum, re.M)
            and "(here momentum=0.9)" in " ".join(momentum.split()))
    # the class can, and does not by default: "yes" beside gd's "no" for the same optimizer
    # said otherwise (and gave RMSprop momentum the tutorials' table does not)
    assert re.search(r"^ +momentum: optional \(default 0\)$", explain("sgd"), re.M)
    rows = {line.split("|")[1].strip(): line.split("|")[4].strip()
            for line in compare_table(["gd", "nag", "sgd", "rmsprop", "adam", "adagrad"],
                                      markdown=True).splitlines()[2:]}
    assert rows == {"gd": "no", "nag": "yes", "sgd": "optional (default 0)",
                    "rmsprop": "optional (default 0)", "adam": "yes", "adagrad": "no"}


def test_a_wrapper_says_the_traits_of_what_it_wraps():
    """Lookahead steps with Adam by default: compare said adaptive "no", momentum "no" and
    bias correction "no" (the wrapper's own record), while create("lookahead") is Adam
    inside."""
    from optimlab.cli import compare_table, explain

    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[3:5]]
            + [line.split("|")[6].strip()]
            for line in compare_table(["lookahead", "sam"], markdown=True).splitlines()[2:]}
    assert rows == {"lookahead": ["as adam: yes"] * 3,
                    "sam": ["as sgd: no", "as sgd: optional (default 0)", "as sgd: no"]}
    assert re.search(r"^ +adaptive lr: as adam: yes$", explain("lookahead"), re.M)


def test_an_alias_gives_the_year_and_paper_of_its_own_method():
    """momentum and nag said 1951 (Robbins & Monro's SGD, the class's row) in explain,
    compare and the web API; each alias names the work its preset comes from."""
    import json

    from optimlab.cli import compare_table, explain
    from optimlab.optim.registry import resolve
    from optimlab.web.api import _optimizers

    want = {"gd": 1847, "momentum": 1964, "nag": 1983, "amsgrad": 2018, "sgd": 1951, "adam": 2015}
    assert {name: resolve(name).year for name in want} == want
    assert "Polyak" in resolve("momentum").paper and "Nesterov" in resolve("nag").paper
    assert "Robbins" in resolve("sgd").paper
    assert re.search(r"^ +year: 1964$", explain("momentum"), re.M)
    assert re.search(r"^ +paper: Polyak", explain("momentum"), re.M)
    assert re.search(r"^ +year: 1951$", explain("sgd"), re.M)
    years = {line.split("|")[1].strip(): int(line.split("|")[2])
             for line in compare_table(list(want), markdown=True).splitlines()[2:]}
    assert years == want
    served = {row["name"]: row["year"] for row in json.loads(_optimizers())}
    assert {name: served[name] for name in want} == want


def test_bench_help_says_how_far_extend_goes_and_the_real_eval_cadence(capsys):
    """--extend's help did not say that an extension stays within LR_BOUNDS, nor that
    --extend makes a new sweep; --eval-every's said "default: 20 points", which runs under
    40 steps do not get. The help's numbers are written out (the parser imports no torch)
    and held here to the sweep module's."""
    from optimlab.bench.sweep import LR_BOUNDS, MAX_EXTENSIONS

    assert main(["bench", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"up to {MAX_EXTENSIONS} times, as --lrs auto does, never below {LR_BOUNDS[0]:g} " \
           f"nor above {LR_BOUNDS[1]:g}" in out
    assert "is a new sweep, which trains the whole grid again" in out
    assert "20 points" not in out
    assert "about 20 evaluations; every step for runs under 40 steps" in out


def test_bench_runs_and_report_tell_apart_sweeps_of_other_training_options(tmp_path, capsys):
    """Two sweeps that differ in schedule, clipping and averaging read alike ("digits
    default ... 20 steps, batch 100, lr 0.1, 1 seed") in `optimlab runs`, and alike in the
    headings of `bench` and `report`."""
    db = str(tmp_path / "runs.db")
    argv = ["bench", "digits", "--model", "logreg", "--optimizers", "sgd", "--lrs", "0.1",
            "--seeds", "1", "--steps", "20", "--db", db]
    assert main(argv) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith(", population engine, 20 steps")
    assert main(argv + ["--schedule", "cosine", "--clip", "1", "--average", "ema"]) == 0
    options = "schedule=cosine, clip_norm=1, averaging=ema"
    assert capsys.readouterr().out.splitlines()[0].endswith(f"20 steps, {options}")
    assert main(argv + ["--eval-every", "5", "--extend"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("20 steps, eval_every=5, extend")
    assert main(["runs", "--db", db]) == 0
    rows = [" ".join(row.split()) for row in capsys.readouterr().out.splitlines()[2:]]
    assert "20 steps, batch 100, lr 0.1, 1 seed 1/1 sgd" in rows[0]
    assert f"20 steps, batch 100, lr 0.1, 1 seed, {options} 1/1 sgd" in rows[1]
    assert "20 steps, batch 100, lr 0.1, 1 seed, eval_every=5, extend 1/1 sgd" in rows[2]
    assert main(["report", "2", "--db", db, "--out", str(tmp_path / "report")]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(f"digits/logreg, 20 steps, {options}")


def test_bench_extend_at_a_bound_says_the_grid_cannot_pass_it(tmp_path, capsys):
    """`--lrs 1e-7,1e4 --extend` picks 1e-07 and cannot extend below it (LR_BOUNDS): the
    note said "pass --extend" all the same."""
    from optimlab.bench.sweep import LR_BOUNDS

    assert main(["bench", "digits", "--model", "logreg", "--optimizers", "sgd", "--lrs",
                 "1e-7,1e4", "--extend", "--seeds", "1", "--steps", "10",
                 "--db", str(tmp_path / "ext.db")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1e-07 (bottom of grid)" in out
    assert f"the grid cannot be extended past {LR_BOUNDS[0]:g}" in out
    assert "pass --extend" not in out


def test_profile_says_failed_for_an_optimizer_all_of_whose_runs_raised(tmp_path, capsys):
    """Muon raises on digits' biases: `optimlab profile` showed it "not reached", score
    0.000, without a word."""
    db = str(tmp_path / "runs.db")
    assert main(["bench", "digits", "--model", "logreg", "--optimizers", "muon,sgd", "--lrs",
                 "0.01,0.1", "--seeds", "1", "--steps", "20", "--target", "0.5",
                 "--db", db]) == 0
    capsys.readouterr()
    assert main(["profile", "1", "--db", db]) == 0
    out = capsys.readouterr().out
    header, _, row = out.splitlines()[:3]
    # read muon's column where the header puts it: the row's label grows a note
    # ("(gradient evals)") when a busy machine made the step costs too noisy to rank by
    assert header.split()[1:] == ["muon", "sgd"]
    assert row[header.index("muon"):].split()[0] == "failed", out
    assert "1: digits/logreg: muon: 2 runs failed (scored as never reaching the target " \
           "there): ValueError: Muon only optimizes real 2-D parameters" in out


@pytest.mark.parametrize("error", [OverflowError("cannot convert float infinity to integer"),
                                   RuntimeError("the renderer broke")])
def test_race_prints_its_table_when_a_picture_fails_with_any_error(error, tmp_path, capsys,
                                                                   monkeypatch):
    """Only an OSError while drawing kept the results table; an OverflowError (matplotlib on a
    race where everything diverged) lost it behind the error line."""
    pytest.importorskip("matplotlib")
    from optimlab.landscapes.result import Race

    def broken(self, **kwargs):
        raise error

    monkeypatch.setattr(Race, "plot", broken)
    code = main(["race", "quadratic", "--optimizers", "sgd", "--lr", "sgd=1000", "--steps", "50",
                 "--out", str(tmp_path / "q1.png")])
    out, err = capsys.readouterr()
    assert code != 0 and not (tmp_path / "q1.png").exists()
    assert "quadratic from" in out and re.search(r"^sgd +lr=1e\+03", out, re.M), out
    assert len(err.strip().splitlines()) == 1 and str(error) in err, err


def test_start_help_gives_an_example_that_runs(capsys):
    """`--start -1.5,2`, as the help wrote it, is argparse's "expected one argument": a value
    beginning with a minus sign reads as an option. The help and the usage in the module's
    docstring write --start=-1.5,2, which runs."""
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["race"]
                         .format_help().split())
    assert "e.g. --start=-1.5,2" in help_text and "e.g. -1.5,2" not in help_text
    assert "[--start=-1.5,2]" in cli.__doc__ and "--start -1.5,2" not in cli.__doc__
    assert main(["race", "rosenbrock", "--optimizers", "adam", "--start=-1.5,2",
                 "--steps", "5"]) == 0
    assert "rosenbrock from (-1.5, 2)" in capsys.readouterr().out


def test_explain_a_wrapper_names_what_it_wraps_by_default_as_hp_takes_it(capsys):
    """explain lookahead left out its `inner` key (default adam); explain sam showed
    base_optimizer as a class's repr, where --hp takes a registry name."""
    from optimlab.optim.registry import available, wrapped_class

    assert main(["explain", "lookahead"]) == 0
    out = capsys.readouterr().out
    # the class Lookahead builds without an `inner`, by its registry name (adam)
    inner = next(e.name for e in available()
                 if e.alias_of is None and e.cls is wrapped_class("lookahead"))
    assert re.search(rf"^ +defaults: inner={inner}, k=5, alpha=0.5$", out, re.M), out
    assert re.search(rf"^ +wraps: {inner} by default; --hp lookahead:inner=NAME", out, re.M), out
    assert main(["explain", "sam"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^ +defaults: base_optimizer=sgd, rho=0.05", out, re.M), out
    assert "<class" not in out and "--hp sam:base_optimizer=NAME" in out
    # what explain shows is what --hp takes
    assert main(["race", "rosenbrock", "--optimizers", "lookahead,sam", "--steps", "5",
                 "--hp", f"lookahead:inner={inner}", "--hp", "sam:base_optimizer=sgd"]) == 0


def test_explain_an_alias_names_what_it_is_an_alias_of_and_its_preset():
    """explain gd listed `aliases: gd, momentum, nag` (its siblings, and itself); explain
    amsgrad showed Adam's update and memory lines without saying amsgrad=True applies."""
    from optimlab.cli import compare_table, explain

    gd, amsgrad, nag = explain("gd"), explain("amsgrad"), explain("nag")
    assert re.search(r"^ +aliases: alias of sgd \(with sgd's defaults\)$", gd, re.M), gd
    assert re.search(r"^ +aliases: alias of adam \(preset amsgrad=True\)$", amsgrad, re.M)
    assert re.search(r"^ +aliases: alias of sgd \(preset momentum=0.9, nesterov=True\)$", nag,
                     re.M)
    assert re.search(r"^ +aliases: gd, momentum, nag$", explain("sgd"), re.M)
    assert re.search(r"^ +aliases: amsgrad$", explain("adam"), re.M)
    flat = " ".join(amsgrad.split())
    assert re.search(r"update: [^:]*\(here amsgrad=True\) defaults:", flat), flat
    # an alias names its own memory: `momentum` said "0; 1 buffer with momentum (here
    # momentum=0.9)", leading with plain SGD's 0
    assert re.search(r"extra memory: 3 \(m, v and the running maximum of v\) adaptive", flat)
    assert re.search(r"^ +extra memory: 1 \(the momentum buffer b\)$", nag, re.M), nag
    assert re.search(r"^ +extra memory: 0$", gd, re.M), gd
    assert "(here" not in explain("adam")
    assert "| 1 (the momentum buffer b) |" in compare_table(["nag"], markdown=True)


def test_race_refuses_two_pictures_to_one_file_before_it_runs(tmp_path, capsys, monkeypatch):
    """--out same.png --surface same.png wrote same.png twice (and said so twice)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("optimlab.landscapes.race", lambda *a, **k: pytest.fail("raced"))
    base = ["race", "quadratic", "--optimizers", "sgd", "--steps", "5"]
    for pictures in (["--out", "same.png", "--surface", "same.png"],
                     ["--out", "same.png", "--surface", f"{tmp_path}/./same.png"],
                     ["--out", "same", "--surface", "same.png"]):
        assert main(base + pictures) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--out and --surface both write" in err[0], err
    assert not (tmp_path / "same.png").exists()


@pytest.mark.parametrize("command, module, extra", [
    (["bench", "digits", "--optimizers", "adam"], "tqdm", "bench"),
    (["tour", "--quick"], "matplotlib", "lab"),
    (["advise", "digits"], "pandas", "bench"),
])
def test_a_missing_extra_is_named_before_any_work(command, module, extra, monkeypatch, capsys):
    """Without the training lab's packages, `optimlab bench` failed with "No module named
    'tqdm'" and `optimlab tour` after its first race; each long command now checks what it
    needs first and names the extra to install."""
    import importlib.util

    from optimlab import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == module else real(name, *a))
    for name in ("run_bench", "run_tour", "run_advise"):
        monkeypatch.setattr(cli, name, lambda args: pytest.fail("started the work"))
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"optimlab: error: optimlab {command[0]} needs {module}: " \
                  f"pip install 'optimlab[{extra}]'"


def test_a_module_missing_later_names_its_extra(monkeypatch, capsys):
    from optimlab import cli

    def missing(args):
        raise ModuleNotFoundError("No module named 'sqlalchemy'", name="sqlalchemy")

    monkeypatch.setattr(cli, "run_runs", missing)
    assert main(["runs"]) == 2
    assert capsys.readouterr().err.strip() == \
        "optimlab: error: optimlab runs needs sqlalchemy: pip install 'optimlab[postgres]'"


def test_a_crash_in_native_code_prints_the_python_stack():
    """The command enables faulthandler: a Ray driver that died by SIGSEGV in CI left an
    empty stderr; a fatal signal now prints where in Python it happened."""
    import signal
    import subprocess
    import sys

    code = ("import os, signal\nfrom optimlab import cli\n"
            "cli.main = lambda: os.kill(os.getpid(), signal.SIGSEGV)\ncli.entry()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in done.stderr and "<lambda>" in done.stderr


def test_every_command_help_opens_with_what_it_does_and_race_states_its_defaults():
    """`optimlab COMMAND --help` had no description line (only `optimlab --help` said what
    each command does), and race's --seed and --lr left their defaults unsaid (an audit of
    the docs)."""
    from optimlab.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    for name, sub in commands.choices.items():
        assert sub.description, name
    text = " ".join(commands.choices["race"].format_help().split())
    assert "Race optimizers on a landscape." in text
    assert "default: each optimizer's own default rate" in text and "; default 0)" in text


def test_bench_takes_hp_for_an_optimizer_named_as_listed(tmp_path, capsys):
    """`--optimizers SGD --hp SGD:momentum=0.9` was refused: "--hp names 'SGD', which is
    not in --optimizers (sgd)"; race took it. Both map --hp's name as --optimizers does."""
    assert main(["bench", "digits", "--optimizers", "SGD", "--hp", "SGD:momentum=0.9",
                 "--lrs", "0.1", "--seeds", "1", "--steps", "1",
                 "--db", str(tmp_path / "r.db")]) == 0, capsys.readouterr().err
    from optimlab.bench.store import RunStore

    with RunStore(tmp_path / "r.db", readonly=True) as store:
        runs = store.runs(1)
    assert list(runs["optimizer"]) == ["sgd"] and list(runs["hp_momentum"]) == [0.9]
