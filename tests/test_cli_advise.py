"""`optimlab advise`: the answer in words, a table, code, JSON and a report; one-line errors."""

import json
import re

import pytest

from optimlab.bench.store import RunStore
from optimlab.cli import _budget, main

ADVISE = ["advise", "digits", "--optimizers", "momentum,adam", "--steps", "27",
          "--batch-size", "64", "--seeds", "2"]


def test_advise_answers_with_evidence_and_keeps_everything(tmp_path, capsys):
    db, out, answer = tmp_path / "runs.db", tmp_path / "advice", tmp_path / "answer.json"
    assert main(ADVISE + ["--db", str(db), "--out", str(out), "--json", str(answer)]) == 0
    text = capsys.readouterr().out
    def refuse(constant):  # JSON has no Infinity or NaN: strict readers refuse the file
        raise AssertionError(f"{constant} in {answer}")

    data = json.loads(answer.read_text(), parse_constant=refuse)
    assert json.loads((out / "advice.json").read_text(), parse_constant=refuse) == data
    assert {"optimizer", "hparams", "metric", "steps_spent", "candidates"} <= set(data)
    assert data["optimizer"] in ("momentum", "adam") and data["metric"]["name"] == "accuracy"
    # the metric is the selection set's, and says so (the answer's own words, and the table)
    assert f"recommendation: {data['optimizer']}, lr={data['hparams']['lr']:.3g}: validation " \
        "accuracy" in text
    assert "tournament lr  validation accuracy  rank" in text
    assert data["statement"] in text
    assert f"compute: {data['steps_spent']:,} member-steps" in text
    assert "; on the set that selected it, so optimistic)" in text
    assert "(mean of 2 seeds" in text and "x 13 rates x 2 seeds x 27 steps" in text
    assert "range test" in text and "fastai" in text and "steepest" in text
    assert f"optimlab.create({data['optimizer']!r}" in text
    assert (out / "advice.html").stat().st_size > 0 and f"wrote {answer}" in text
    # every stage and the answer are in the store, and `optimlab runs` lists them
    store = RunStore(db, readonly=True)
    answer_runs = store.list_runs(data["answer_sweep_id"])
    assert [(r.optimizer, r.summary["hparams"]) for r in answer_runs] == [
        (data["optimizer"], data["hparams"])]
    assert main(["runs", "--db", str(db)]) == 0
    assert "advise digits: answer" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--budget", "lots"], "--budget takes member-steps"),
    (["--budget", "0s"], "--budget takes member-steps"),
    (["--budget", "100"], "too small"),
    (["--optimizers", "sam"], "sam wraps another optimizer"),
    (["--optimizers", "adamm"], "unknown optimizer"),
    (["--batch-size", "x"], "--batch-size"),
    (["--model", "resnet"], "no model 'resnet'"),
    (["--json", "/no/such/folder/a.json"], "its folder /no/such/folder does not exist"),
    (["--json", "a.txt"], "cannot write .txt files; use one of .json"),
    (["--optimizers", "sparseadam"], "sparseadam takes sparse gradients only"),
    (["--seeds", "101"], "--seeds"),
])
def test_advise_errors_are_one_line(extra, message, tmp_path, capsys):
    argv = ADVISE + ["--db", str(tmp_path / "runs.db"), "--out", str(tmp_path / "a")]
    if extra[0] == "--optimizers":
        del argv[2:4]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_json_path_that_is_a_folder_gets_advice_json_inside(tmp_path, capsys):
    """`--json DIR/` wrote a file named DIR (Path drops the slash); a folder, or a path
    ending with one, gets advice.json inside, as every --out does."""
    folder = tmp_path / "answers"
    argv = ADVISE + ["--db", str(tmp_path / "runs.db"), "--out", str(tmp_path / "a")]
    assert main(argv + ["--json", f"{folder}/"]) == 0
    assert folder.is_dir() and json.loads((folder / "advice.json").read_text())["optimizer"]
    assert main(argv + ["--json", str(folder)]) == 0  # now an existing folder: the same file
    assert f"wrote {folder / 'advice.json'}" in capsys.readouterr().out


def test_budget_reads_steps_or_seconds():
    assert _budget(None) == (None, None)
    assert _budget("20,000") == (20000, None)
    assert _budget("90s") == (None, 90.0)


def test_a_candidate_that_cannot_run_is_named_with_its_error(tmp_path, capsys):
    argv = ["advise", "digits", "--optimizers", "muon,adam", "--steps", "18", "--batch-size",
            "64", "--seeds", "2", "--db", str(tmp_path / "runs.db"), "--out",
            str(tmp_path / "advice")]
    assert main(argv) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.startswith("muon "))
    assert row.split()[-2:] == ["cannot", "run"]
    # (each member's own error: the batched group that raised was trained again one by one)
    assert ("muon: cannot run here, every run raised: ValueError: Muon only optimizes real "
            "2-D parameters") in text
    page = (tmp_path / "advice" / "advice.html").read_text(encoding="utf-8")
    assert "cannot run: ValueError: Muon only optimizes" in page


def test_the_json_answer_writes_non_finite_numbers_as_null():
    import json

    import numpy as np

    from optimlab.bench.store.jsonio import json_data, strict_json

    value = {"a": float("inf"), "b": [1.0, np.float32("nan"), {"c": -float("inf")}], "d": "x",
             "e": (2, np.int64(3))}
    assert json_data(value, finite=True) == {"a": None, "b": [1.0, None, {"c": None}], "d": "x",
                                             "e": [2, 3]}
    assert json.loads(strict_json(value, indent=2)) == json_data(value, finite=True)
    assert json_data(value)["a"] == float("inf")  # the store's canonical JSON keeps them
    with pytest.raises(TypeError, match="cannot store object"):
        json_data({"f": object()})
    assert json_data({"f": object}, fallback=lambda v: v.__name__) == {"f": "object"}


def test_advise_sizes_its_progress_for_a_model_trained_one_run_at_a_time(tmp_path, monkeypatch,
                                                                         capsys):
    """A BatchNorm model trains one run at a time, ticking once per run-step: the bar was
    sized per population, so it sat at 100% for the whole stage and said it was extending a
    grid."""
    import sys

    from optimlab import cli

    (tmp_path / "bn_advise_task.py").write_text(
        "import numpy as np\nfrom torch import nn\n\n"
        "def task():\n"
        "    x = np.random.default_rng(0).normal(size=(80, 4)).astype(np.float32)\n"
        "    y = (x[:, 0] > 0).astype(np.int64)\n"
        "    return {'model': lambda: nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), "
        "nn.ReLU(), nn.Linear(8, 2)), 'x_train': x[:60], 'y_train': y[:60], "
        "'x_test': x[60:], 'y_test': y[60:]}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "bn_advise_task", raising=False)
    sized, ticked = [], []
    real = cli._progress

    def recording(desc, groups):
        bar = real(desc, groups)
        sized.append(sum(steps * runs for steps, runs in groups))
        ticked.append(0)
        tick = bar.tick

        def counted(n=1):
            ticked[-1] += n
            tick(n)
        bar.tick = counted
        return bar

    monkeypatch.setattr(cli, "_progress", recording)
    argv = ["advise", "bn_advise_task:task", "--optimizers", "adam", "--steps", "4",
            "--seeds", "1", "--batch-size", "20", "--db", str(tmp_path / "r.db"),
            "--out", str(tmp_path / "a")]
    assert main(argv) == 0, capsys.readouterr().err
    assert "cannot batch this model" in capsys.readouterr().err
    assert sized and all(done <= total for done, total in zip(ticked, sized)), (ticked, sized)


def test_advise_refuses_an_unwritable_json_folder_before_training(tmp_path, capsys, monkeypatch):
    """`--json /read-only/a.json` trained everything, then failed: the folder is probed
    first (tempfile's probe made to fail, as on a read-only disk, even for root)."""
    import errno
    import tempfile
    from pathlib import Path

    folder = tmp_path / "ro"
    folder.mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == folder:
            raise OSError(errno.EROFS, "Read-only file system", str(folder))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr("optimlab.bench.advisor.advise_task",
                        lambda *a, **k: pytest.fail("trained before checking --json"))
    argv = ADVISE + ["--db", str(tmp_path / "runs.db"), "--out", str(tmp_path / "a"),
                     "--json", str(folder / "a.json")]
    assert main(argv) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err == (f"optimlab: error: cannot write --json {folder / 'a.json'}: {folder} is "
                   "not writable (Read-only file system)"), err


def test_advise_says_in_words_why_the_advice_could_not_be_written(tmp_path, capsys,
                                                                  monkeypatch):
    """A write that fails after the probe (the disk went read-only) is one clean line, not
    Python's "[Errno 30] ..." text, after the answer."""
    import errno

    out = tmp_path / "advice"

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(out / "advice.html"))

    monkeypatch.setattr("optimlab.bench.advice_report.write_advice_report", refuse)
    argv = ["advise", "digits", "--optimizers", "adam", "--steps", "9", "--batch-size", "64",
            "--seeds", "1", "--db", str(tmp_path / "runs.db"), "--out", str(out)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "recommendation: adam" in captured.out
    (err,) = captured.err.strip().splitlines()
    assert err.startswith(f"optimlab: error: cannot write the advice to {out / 'advice.html'}: "
                          "Read-only file system (the same command again"), err
    assert "Errno" not in err


def test_advise_ctrl_c_says_what_was_kept_and_the_same_command_reads_it_back(
        tmp_path, capsys, monkeypatch):
    """Ctrl-C in a later stage: the runs of the stages before it are kept, the interrupt's
    line says how many and how to go on, and the same command reads them back (trains
    fewer runs than a fresh call)."""
    from optimlab.bench import advisor

    argv = ["advise", "digits", "--optimizers", "adam", "--steps", "9", "--batch-size", "64",
            "--seeds", "1"]
    real, calls = advisor.train_members, []

    def train_members(store, task, config, members, **kw):
        calls.append(len(members))
        if len(calls) == 2:  # the range test ended and was stored; stop the next stage
            raise KeyboardInterrupt
        return real(store, task, config, members, **kw)

    monkeypatch.setattr(advisor, "train_members", train_members)
    db = tmp_path / "runs.db"
    assert main(argv + ["--db", str(db), "--out", str(tmp_path / "a")]) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"optimlab: interrupted: {calls[0]} runs ended before it, kept in {db}; run "
                   "the same command again to read them back and train the rest")
    monkeypatch.undo()
    assert main(argv + ["--db", str(db), "--out", str(tmp_path / "b")]) == 0
    resumed = capsys.readouterr().out
    assert re.search(rf"; {calls[0]} runs \([\d,]+ member-steps\) read back from the store",
                     resumed)
    # the share of a grid is the answer's whole cost, read back or trained: as a fresh run's
    # (it counted only what the second command trained)
    assert main(argv + ["--db", str(tmp_path / "whole.db"), "--out", str(tmp_path / "d")]) == 0
    share = re.compile(r"\((all told, )?(\d+)% of a grid of ")
    fresh = share.search(capsys.readouterr().out)
    # the resumed share counts what was read back: "all told" says so beside what it trained
    assert share.search(resumed).groups() == ("all told, ", fresh.group(2))
    assert fresh.group(1) is None
    # an interrupt before any run ended is the bare line
    monkeypatch.setattr(advisor, "train_members", lambda *a, **k: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    assert main(argv + ["--db", str(tmp_path / "fresh.db"), "--out", str(tmp_path / "c")]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "optimlab: interrupted"
