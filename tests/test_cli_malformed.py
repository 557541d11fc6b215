"""Every ``optimlab`` subcommand, given malformed arguments: exit 2, one error line, no traceback.

The subcommands are read from the argparse parser, so a new one is driven by the generic
cases at once, and :func:`test_every_subcommand_has_its_own_cases` fails until it has its
own rows in :data:`CASES`. The cases run in-process through ``main(argv)``; a handful run
again in a real ``python -m optimlab`` to show that no traceback reaches a terminal.

``python -m pytest tests/test_cli_malformed.py -s`` prints ``CLI cases: N``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sqlite3
import subprocess
import sys

import pytest

from optimlab import cli
from optimlab.cli import build_parser, main

HUGE = "99999999999999999999999"  # beyond SQLite's integers and float's exact range
ERROR_LINE = re.compile(r"^optimlab(?: [a-z]+)?: error: \S")


def subcommands() -> list[str]:
    """The subcommands, as the parser knows them."""
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(action.choices)


RACE = "race rosenbrock --optimizers adam --steps 3"
BENCH = ("bench digits --optimizers adam --lrs 0.01 --seeds 1 --steps 3 --batch-size 64 "
         "--db {tmp}/runs.db")
ADVISE = ("advise digits --optimizers adam --steps 3 --batch-size 64 --db {tmp}/runs.db "
          "--out {tmp}/advice")

# subcommand -> (command line, a fragment its error line holds, or None). Placeholders:
# {tmp} a folder holding afile (a file), adir/ (a folder), garbage.db (not a store) and
# empty.db (a store without sweeps); {huge} an integer too large for SQLite and int64.
CASES: dict[str, list[tuple[str | list[str], str | None]]] = {
    "list": [
        ("list --markdown=yes", "ignored explicit argument"),
        (["list", "--\udcff" * 400], "unrecognized arguments"),  # undecodable, and long
        ("list extra", "unrecognized arguments"),
    ],
    "explain": [
        ("explain", "required"),
        ("explain adamm", "unknown optimizer"),
        ("explain ''", "unknown optimizer"),
        ("explain adam sgd", "unrecognized arguments"),
        (["explain", "x" * 5000], "unknown optimizer"),
    ],
    "compare": [
        ("compare", "required"),
        ("compare sgd nope", "unknown optimizer"),
        ("compare sgd ''", "unknown optimizer"),
        ("compare sgd --markdown=1", "ignored explicit argument"),
    ],
    "landscapes": [
        ("landscapes rosenbrock", "unrecognized arguments"),
    ],
    "race": [
        ("race", "required"),
        (f"{RACE} --hp adam:eps=x", "eps takes a finite number"),
        (f"{RACE} --hp sgd:momentum=0.9", "--hp names 'sgd', which is not in --optimizers"),
        ("race rosenbrock", "--optimizers"),
        ("race rosenbrok --optimizers adam", "unknown landscape"),
        ("race rosenbrock --optimizers adamm", "unknown optimizer"),
        ("race rosenbrock --optimizers ,", "at least one name"),
        ("race rosenbrock --optimizers adam,Adam", "twice"),
        # steps: zero, negative, not whole, beyond the bound, beyond any integer type
        (f"{RACE} --steps 0", "--steps"),
        (f"{RACE} --steps -5", "--steps"),
        (f"{RACE} --steps 1.5", "--steps"),
        (f"{RACE} --steps abc", "--steps"),
        (f"{RACE} --steps 1e400", "--steps"),
        ("race rosenbrock --optimizers adam --steps 20000000", "--no-limits"),
        ("race rosenbrock --optimizers adam --steps {huge}", "SQLite's largest integer"),
        # start points
        (f"{RACE} --start=1e400,1", "--start"),
        (f"{RACE} --start=nan,1", "--start"),
        (f"{RACE} --start=1,x", "--start"),
        (f"{RACE} --start=", "--start"),
        (f"{RACE} --start=1,2,3", "start must be 2"),
        (f"{RACE} --start -1.5,2", "expected one argument"),
        # hyperparameters
        (f"{RACE} --lr adam=1e999", "--lr"),
        (f"{RACE} --lr adam=inf", "--lr"),
        (f"{RACE} --lr adam=nan", "--lr"),
        (f"{RACE} --lr adam=-1", "--lr"),
        (f"{RACE} --lr adam=0", "--lr"),
        (f"{RACE} --lr adam=abc", "--lr"),
        (f"{RACE} --lr adam", "--lr"),
        (f"{RACE} --lr =0.1", "--lr"),
        (f"{RACE} --lr 'betas=(0.9,None)'", "--lr"),
        (f"{RACE} --lr 'adam=(0.9,None)'", "--lr"),
        (f"{RACE} --lr sgd=0.1", "not in --optimizers"),
        (f"{RACE} --lr adam=0.1 --tune", "--tune"),
        # noise and seed
        (f"{RACE} --noise inf", "--noise"),
        (f"{RACE} --noise nan", "--noise"),
        (f"{RACE} --noise 1e400", "--noise"),
        (f"{RACE} --noise -1", "--noise"),
        (f"{RACE} --noise abc", "--noise"),
        (f"{RACE} --seed -1", "--seed"),
        (f"{RACE} --seed {{huge}}", "--seed"),
        (f"{RACE} --seed 4294967296", "--seed"),
        (f"{RACE} --seed 1.5", "--seed"),
        # landscape parameters
        ("race quadratic --optimizers adam --steps 3 --param kappa=inf", "--param"),
        ("race quadratic --optimizers adam --steps 3 --param kappa=nan", "--param"),
        ("race quadratic --optimizers adam --steps 3 --param kappa=1e400", "--param"),
        ("race quadratic --optimizers adam --steps 3 --param kappa=-1", "kappa"),
        ("race quadratic --optimizers adam --steps 3 --param kappa=abc", "--param"),
        ("race quadratic --optimizers adam --steps 3 --param kappa=2 --param kappa=3",
         "--param sets kappa twice (2 and 3)"),
        ("race quadratic --optimizers adam --steps 3 --param 'betas=(0.9,None)'", "--param"),
        (f"{RACE} --param kappa=10", "unknown parameter"),
        ("race rosenbrock_nd --optimizers adam --steps 3 --param dim=2.5", "dim"),
        ("race rosenbrock_nd --optimizers adam --steps 3 --param dim=1", "dim"),
        ("race rosenbrock_nd --optimizers adam --steps 3 --param dim=1e9", "dim"),
        ("race rosenbrock_nd --optimizers adam --steps 3 --param dim=99999999", "--no-limits"),
        ("race rosenbrock_nd --optimizers adam --steps 3 --param dim={huge}", "dim"),
        ("race quadratic_deep --optimizers adam --steps 3 --param seed=-1", "seed"),
        ("race rosenbrock_nd --param dim=1000 --optimizers sgd,adam --tune --steps 10000",
         "--no-limits"),
        (f"{RACE} --no-limits=1", "ignored explicit argument"),
        # outputs
        (f"{RACE} --out /nonexistent-dir/x.png", "does not exist"),
        (f"{RACE} --out {{tmp}}/nodir/deeper/", "does not exist"),
        (f"{RACE} --out {{tmp}}/x.xyz", "cannot write .xyz"),
        (f"{RACE} --out {{tmp}}/.png", "names a suffix"),
        (f"{RACE} --out ''", "--out needs a path"),
        (RACE.split() + ["--out", "a\0b.png"], "--out needs a path"),
        (f"{RACE} --gif {{tmp}}/x.png", "cannot write .png"),
        (f"{RACE} --gif /nonexistent-dir/x.gif", "does not exist"),
        (f"{RACE} --surface /nonexistent-dir/s.png", "does not exist"),
        ("race rosenbrock_nd --optimizers adam --steps 3 --surface {tmp}/s.png", "2-D"),
    ],
    "demo": [
        ("demo nope", "unknown demo"),
        ("demo ema --list", "takes no NAME"),
        ("demo --list=1", "ignored explicit argument"),
        ("demo --out {tmp}/afile", "not a folder"),
        ("demo ema extra", "unrecognized arguments"),
        ("demo ema --out {tmp}/afile", "not a folder"),
        ("demo ema --out /nonexistent-dir/figures", "does not exist"),
        ("demo ema --out {tmp}/garbage.db/figures", "garbage.db is a file, not a folder"),
    ],
    "slice": [
        ("slice", "required"),
        ("slice imagenet --out {tmp}/s", "unknown task"),
        ("slice digits --optimizers adamm --out {tmp}/s", "unknown optimizer"),
        ("slice digits --optimizers sgd --out {tmp}/s", "at least two"),
        ("slice digits --lr lion=0.1 --out {tmp}/s", "--lr names lion"),
        ("slice digits --lr adam=-1 --out {tmp}/s", "--lr"),
        ("slice digits --grid 1 --out {tmp}/s", "--grid: takes a whole number >= 2"),
        ("slice digits --grid 1000 --out {tmp}/s", "--no-limits"),
        ("slice digits --steps 0 --out {tmp}/s", "--steps"),
        ("slice digits --plane pca --out {tmp}/s", "--plane"),
        ("slice digits --model resnet --out {tmp}/s", "no model"),
    ],
    "advise": [
        ("advise", "required"),
        ("advise imagenet --db {tmp}/runs.db", "unknown task"),
        (["advise", "digits\0"], "task"),
        ("advise os:getcwd --db {tmp}/runs.db", "standard library"),
        (f"{ADVISE} --optimizers adamm", "unknown optimizer"),
        (f"{ADVISE} --optimizers adam,adam", "twice"),
        (f"{ADVISE} --optimizers ,", "at least one name"),
        (f"{ADVISE} --optimizers lookahead", "wraps another optimizer"),
        (f"{ADVISE} --steps 0", "--steps"),
        (f"{ADVISE} --steps {{huge}}", "--steps"),
        (f"{ADVISE} --steps 200000", "--no-limits"),
        (f"{ADVISE} --seeds -1", "--seeds"),
        (f"{ADVISE} --batch-size 0", "--batch-size"),
        (f"{ADVISE} --budget ''", "--budget"),
        (f"{ADVISE} --budget -5", "--budget"),
        (f"{ADVISE} --budget nans", "--budget"),
        (f"{ADVISE} --budget infs", "--budget"),
        (f"{ADVISE} --budget 1e400s", "--budget"),
        (f"{ADVISE} --budget 10", "too small"),
        (f"{ADVISE} --db {{tmp}}/adir/", "folder"),
        (f"{ADVISE} --db {{tmp}}/garbage.db", "run store"),
        (f"{ADVISE} --out {{tmp}}/afile", "a file, not a folder"),
        (f"{ADVISE} --json {{tmp}}/nowhere/a.json", "nowhere does not exist"),
        (f"{ADVISE} --model resnet", "no model 'resnet'"),
        (f"{ADVISE} --optimizers sparseadam", "sparse gradients only"),
        (f"{ADVISE} --json {{tmp}}/afile/", "it is a file, not a folder"),
    ],
    "bench": [
        ("bench digits", "--optimizers"),
        (f"{BENCH} --hp adam:betas=(0.9", "betas takes a tuple"),
        (f"{BENCH} --hp 'adam:eps=1e-8,,,weight_decay=x'", "weight_decay takes a finite number"),
        (f"{BENCH} --hp :eps=1", "--hp takes NAME:KEY=VALUE"),
        ("bench imagenet --optimizers adam --db {tmp}/runs.db", "unknown task"),
        ("bench '' --optimizers adam", "task"),
        (["bench", "digits\0", "--optimizers", "adam"], "task"),
        # module:function that is not a task
        ("bench os:getcwd --optimizers adam --db {tmp}/runs.db", "standard library"),
        ("bench json:dumps --optimizers adam --db {tmp}/runs.db", "standard library"),
        ("bench builtins:input --optimizers adam --db {tmp}/runs.db", "standard library"),
        ("bench no_such_module_xyz:make --optimizers adam --db {tmp}/runs.db",
         "cannot import"),
        ("bench : --optimizers adam --db {tmp}/runs.db", "package.module:function"),
        ("bench optimlab:a:b --optimizers adam --db {tmp}/runs.db", "package.module:function"),
        ("bench optimlab:no_such_function --optimizers adam --db {tmp}/runs.db",
         "module optimlab has no function 'no_such_function'"),
        ("bench optimlab.cli:run_benc --optimizers adam --db {tmp}/runs.db",
         "module optimlab.cli has no function 'run_benc' (did you mean run_bench?)"),
        ("bench optimlab.cli:CLIError --optimizers adam --db {tmp}/runs.db", "not a function"),
        ("bench optimlab.cli:explain --optimizers adam --db {tmp}/runs.db", "needs the arg"),
        ("bench optimlab.cli:landscapes_table --optimizers adam --db {tmp}/runs.db",
         "must return a Task"),
        # optimizers and learning rates
        (f"{BENCH} --optimizers adamm", "unknown optimizer"),
        (f"{BENCH} --optimizers adam,adam", "twice"),
        (f"{BENCH} --optimizers ,", "at least one name"),
        (f"{BENCH} --lrs 1e-3:1e-1:1000000", "--no-limits"),
        (f"{BENCH} --lrs 1e-3:1e-1:{{huge}}", "--no-limits"),
        (f"{BENCH} --lrs 0,0.1", "learning rates"),
        (f"{BENCH} --lrs ''", "learning rates"),
        (f"{BENCH} --lrs 1e400", "learning rates"),
        (f"{BENCH} --lrs inf", "learning rates"),
        (f"{BENCH} --lrs nan", "learning rates"),
        (f"{BENCH} --lrs abc", "learning rates"),
        (f"{BENCH} --lrs 1:2:3:4", "learning rates"),
        (f"{BENCH} --lrs 1e-1:1e-3:5", "learning rates"),
        (f"{BENCH} --lrs 1e-3:1e-1:0", "learning rates"),
        ("bench digits --optimizers sgd,adam --lrs 1e-3:1:1000 --seeds 10 --db {tmp}/r.db",
         "runs, optimizers x learning rates x seeds"),
        # seeds, budgets, evaluation
        (f"{BENCH} --seeds 0", "--seeds"),
        (f"{BENCH} --seeds -1", "--seeds"),
        (f"{BENCH} --seeds {{huge}}", "--seeds"),
        (f"{BENCH} --seeds 1001", "--no-limits"),
        (f"{BENCH} --seeds abc", "--seeds"),
        (f"{BENCH} --steps 0", "--steps"),
        (f"{BENCH} --steps -1", "--steps"),
        (f"{BENCH} --steps {{huge}}", "--steps"),
        (f"{BENCH} --steps 20000000", "--no-limits"),
        (f"{BENCH} --steps abc", "--steps"),
        (f"{BENCH} --epochs 3", "not allowed with argument"),
        ("bench digits --optimizers adam --epochs 0 --db {tmp}/r.db", "--epochs"),
        ("bench digits --optimizers adam --epochs {huge} --db {tmp}/r.db", "--epochs"),
        ("bench digits --optimizers adam --epochs 1000000000 --db {tmp}/r.db", "--no-limits"),
        (f"{BENCH} --eval-every 0", "--eval-every"),
        (f"{BENCH} --eval-every -3", "--eval-every"),
        (f"{BENCH} --eval-every {{huge}}", "--eval-every"),
        ("bench digits --optimizers adam --lrs 1e-3:1:100 --seeds 10 --steps 100000 "
         "--eval-every 1 --db {tmp}/r.db", "metric points"),
        (f"{BENCH} --target nan", "--target"),
        (f"{BENCH} --target inf", "--target"),
        (f"{BENCH} --target abc", "--target"),
        (f"{BENCH} --clip inf", "--clip"),
        (f"{BENCH} --clip -1", "--clip"),
        (f"{BENCH} --clip 0", "--clip"),
        (f"{BENCH} --clip nan", "--clip"),
        (f"{BENCH} --batch-size 0", "--batch-size"),
        (f"{BENCH} --batch-size -1", "--batch-size"),
        (f"{BENCH} --batch-size x", "--batch-size"),
        (f"{BENCH} --batch-size {{huge}}", "--batch-size"),
        (f"{BENCH} --batch-size 1e3", "--batch-size"),
        (f"{BENCH} --model resnet", "no model 'resnet'"),
        (f"{BENCH} --schedule nope", "invalid choice"),
        (f"{BENCH} --average nope", "invalid choice"),
        (f"{BENCH} --data-dir ''", "--data-dir"),
        (f"{BENCH} --resume=1", "ignored explicit argument"),
        # paths
        (f"{BENCH} --out {{tmp}}/afile", "not a folder"),
        (f"{BENCH} --out /nonexistent-dir/report", "cannot write the report"),
        (f"{BENCH} --out ''", "--out needs a path"),
        ("bench digits --optimizers adam --steps 3 --db {tmp}/adir", "is a folder"),
        ("bench digits --optimizers adam --steps 3 --db {tmp}/adir/", "is a folder"),
        ("bench digits --optimizers adam --steps 3 --db /nonexistent-dir/r.db",
         "does not exist"),
        ("bench digits --optimizers adam --steps 3 --db {tmp}/garbage.db", "run store"),
        ("bench digits --optimizers adam --steps 3 --db ''", "--db needs a path"),
        (["bench", "digits", "--optimizers", "adam", "--db", "a\0b"], "--db needs a path"),
    ],
    "runs": [
        ("runs --db {tmp}/none.db", "no run store"),
        ("runs --db {tmp}/garbage.db", "run store"),
        ("runs --db {tmp}/adir", "is a folder"),
        ("runs --db ''", "--db needs a path"),
        ("runs extra", "unrecognized arguments"),
    ],
    "report": [
        ("report {huge} --out {tmp}/r --db {tmp}/empty.db", "SQLite's largest integer"),
        ("report 0 --out {tmp}/r --db {tmp}/empty.db", "SWEEP_ID"),
        ("report -1 --out {tmp}/r --db {tmp}/empty.db", "SWEEP_ID"),
        ("report abc --out {tmp}/r --db {tmp}/empty.db", "SWEEP_ID"),
        ("report 1 --db {tmp}/empty.db", "--out"),
        ("report 7 --out {tmp}/r --db {tmp}/empty.db", "no sweep 7"),
        ("report 1 --out {tmp}/afile --db {tmp}/empty.db", "not a folder"),
        ("report 1 --out /nonexistent-dir/r --db {tmp}/empty.db", "cannot write the report"),
        ("report 1 --out {tmp}/r --db {tmp}/garbage.db", "run store"),
        ("report 1 --out {tmp}/r --db {tmp}/none.db", "no run store"),
    ],
    "profile": [
        ("profile", "required"),
        ("profile {huge} --db {tmp}/empty.db", "SQLite's largest integer"),
        ("profile 0 --db {tmp}/empty.db", "SWEEP_ID"),
        ("profile abc --db {tmp}/empty.db", "SWEEP_ID"),
        ("profile 9 --db {tmp}/empty.db", "no sweep 9"),
        ("profile 1 --db {tmp}/none.db", "no run store"),
        ("profile 1 --db {tmp}/empty.db --out /nonexistent-dir/p.png", "does not exist"),
        ("profile 1 --db {tmp}/empty.db --out {tmp}/p.xyz", "cannot write .xyz"),
    ],
    "tour": [
        ("tour --out {tmp}/afile", "not a folder"),
        ("tour --out /nonexistent-dir/tour", "cannot write the tour"),
        ("tour --out ''", "--out needs a path"),
        ("tour --quick=1", "ignored explicit argument"),
        ("tour extra", "unrecognized arguments"),
    ],
    "docs": [
        ("docs --out {tmp}/afile", "not a folder"),
        ("docs --out /nonexistent-dir/docs", "cannot write the reference"),
        ("docs --out ''", "--out needs a path"),
        ("docs extra", "unrecognized arguments"),
    ],
    "serve": [
        ("serve --port {huge}", "--port"),
        ("serve --port -1", "--port"),
        ("serve --port 65536", "--port"),
        ("serve --port abc", "--port"),
        ("serve --host ''", "--host"),
        ("serve --db {tmp}/garbage.db", "cannot read the run store"),
        ("serve --db {tmp}/adir", "is a folder"),
        ("serve --db /nonexistent-dir/r.db", "directory does not exist"),
        (["serve", "--port", "0", "--host", "bad\udcffhost", "--db", "{tmp}/r.db"],
         "cannot listen"),
        ("serve --db {tmp}/r.db --slices {tmp}/nowhere", "nowhere: no such folder"),
        ("serve --db {tmp}/r.db --slices {tmp}/garbage.db", "not a folder"),
    ],
}

TOP_LEVEL = [("", "required"), ("nope", "invalid choice")]
GENERIC = [("{cmd} --definitely-not-a-flag", None),
           ("{cmd} --steps=", None)]


def _argv(line: str | list[str], tmp) -> list[str]:
    words = shlex.split(line) if isinstance(line, str) else list(line)
    return [w.replace("{tmp}", str(tmp)).replace("{huge}", HUGE) for w in words]


def all_cases() -> list[tuple[str, str | list[str], str | None]]:
    """(id, command line, fragment) for the top level, every subcommand's generic cases,
    and the table."""
    cases = [(f"top-{i}", line, fragment) for i, (line, fragment) in enumerate(TOP_LEVEL)]
    for cmd in subcommands():
        cases += [(f"{cmd}-generic-{i}", line.format(cmd=cmd), fragment)
                  for i, (line, fragment) in enumerate(GENERIC)]
        cases += [(f"{cmd}-{i}", line, fragment)
                  for i, (line, fragment) in enumerate(CASES.get(cmd, []))]
    return cases


ALL = all_cases()


#: the catalog commands' cache in a folder of this module's (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("catalog_cache")


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    """The files the cases point at."""
    from optimlab.bench.store import RunStore

    folder = tmp_path_factory.mktemp("malformed")
    (folder / "afile").write_text("not a folder\n")
    (folder / "adir").mkdir()
    (folder / "garbage.db").write_bytes(b"this is not a database" * 100)
    RunStore(folder / "empty.db").close()
    return folder


@pytest.fixture(autouse=True)
def never_serve(monkeypatch):
    """A serve case that got through would block the suite: fail it instead."""
    try:
        import optimlab.web.server  # noqa: F401
    except ImportError:
        return

    def serve(**kwargs):
        raise AssertionError(f"a malformed serve case reached serve({kwargs})")

    monkeypatch.setattr("optimlab.web.server.serve", serve)


def check_error(rc, out: str, err: str, fragment: str | None) -> None:
    """Exit status 2, nothing on stdout, one error line on stderr, no traceback."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert rc == 2, (rc, err)
    assert len(lines) == 1, lines
    assert ERROR_LINE.match(lines[0]), lines
    assert "internal error" not in lines[0], lines
    assert len(lines[0]) < 1000, lines
    if fragment is not None:
        assert fragment in lines[0], lines
    assert out == "", out


def test_case_count():
    """``CLI cases: N`` for the issue note (run with -s to see it)."""
    print(f"\nCLI cases: {len(ALL)} ({len(ALL) - len(TOP_LEVEL)} over "
          f"{len(subcommands())} subcommands, {len(SUBPROCESS)} of them also in a subprocess)")
    assert len(ALL) >= 200


def test_every_subcommand_has_its_own_cases():
    missing = [cmd for cmd in subcommands() if not CASES.get(cmd)]
    assert not missing, f"add malformed-argument cases for {missing} to CASES"
    assert set(CASES) <= set(subcommands()), f"stale CASES: {set(CASES) - set(subcommands())}"


@pytest.mark.parametrize("line, fragment", [c[1:] for c in ALL], ids=[c[0] for c in ALL])
def test_malformed_arguments_are_one_error_line(line, fragment, tmp, capsys):
    try:
        rc = main(_argv(line, tmp))
    except SystemExit as done:  # main returns argparse's status; this would be a change
        rc = done.code
    captured = capsys.readouterr()
    check_error(rc, captured.out, captured.err, fragment)


SUBPROCESS = [
    ("race rosenbrock --optimizers adam --steps 20000000", "--no-limits"),
    ("report {huge} --out {tmp}/r --db {tmp}/empty.db", "SQLite's largest integer"),
    ("runs --db {tmp}/garbage.db", "run store"),
]


def test_no_traceback_reaches_a_terminal(tmp):
    """The same errors from a real process: exit 2, one stderr line (run side by side)."""
    env = {k: v for k, v in os.environ.items() if k != "OPTIMLAB_DEBUG"}
    procs = [(subprocess.Popen([sys.executable, "-m", "optimlab", *_argv(line, tmp)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=tmp), fragment)
             for line, fragment in SUBPROCESS]
    for proc, fragment in procs:
        out, err = proc.communicate(timeout=120)
        check_error(proc.returncode, out, err, fragment)


@pytest.mark.parametrize("error", [
    ValueError("lr must be finite,\n  got inf"),  # an optimizer's own check
    OverflowError("Python int too large to convert to SQLite INTEGER"),
    sqlite3.OperationalError("database is locked"),
    OSError(28, "No space left on device"),
], ids=["ValueError", "OverflowError", "sqlite3", "OSError"])
def test_library_errors_are_one_line(error, monkeypatch, capsys):
    def boom(args):
        raise error

    monkeypatch.setattr(cli, "_run", boom)
    rc = main(["list"])
    captured = capsys.readouterr()
    check_error(rc, captured.out, captured.err, None)
    assert captured.err.startswith("optimlab: error:")


def test_store_error_is_one_line(monkeypatch, capsys):
    from optimlab.bench.store import StoreError

    def boom(args):
        raise StoreError("the run store x.db is damaged: restore it from a copy")

    monkeypatch.setattr(cli, "_run", boom)
    rc = main(["runs"])
    captured = capsys.readouterr()
    check_error(rc, captured.out, captured.err, "damaged")


def test_an_internal_error_is_one_line_and_exit_1(monkeypatch, capsys):
    def boom(args):
        raise TypeError("a bug\nover two lines")

    monkeypatch.setattr(cli, "_run", boom)
    monkeypatch.delenv("OPTIMLAB_DEBUG", raising=False)
    assert main(["list"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optimlab: internal error: TypeError: a bug")
    monkeypatch.setenv("OPTIMLAB_DEBUG", "1")
    with pytest.raises(TypeError):
        main(["list"])


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", interrupted)
    assert main(["list"]) == 130
    assert capsys.readouterr().err == "optimlab: interrupted\n"


def test_help_still_exits_0(capsys):
    assert main(["race", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--no-limits" in out and f"{cli.RACE_MAX_STEPS:,}" in out
    assert main(["bench", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for bound in (cli.BENCH_MAX_STEPS, cli.BENCH_MAX_LRS, cli.BENCH_MAX_MEMBERS):
        assert f"{bound:,}" in out


@pytest.mark.parametrize("line", ["list", "tour", "runs", "docs", "serve", "advise digits",
                                  "slice digits", "race rosenbrock --optimizers adam",
                                  "bench digits --optimizers adam", "compare sgd adam"])
def test_an_unknown_option_points_to_its_commands_help(line, capsys):
    """A misspelled option of a command is reported by that command, pointing to its own
    --help (where its options are), not to `optimlab --help`, which lists none of them."""
    name = line.split()[0]
    assert main([*line.split(), "--no-such-option"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"optimlab {name}: error: unrecognized arguments: --no-such-option"), err
    assert err.endswith(f"(see `optimlab {name} --help`)"), err
