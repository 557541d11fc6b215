"""Reports: results.csv, the two figures and the self-contained HTML page of a real sweep.

The files written here are also saved under ``test-artifacts/bench/`` for a look.
"""

import base64
import csv
import importlib.metadata
import io
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optimlab.bench.analysis import summarize
from optimlab.bench.report import (
    CSP,
    RESULT_COLUMNS,
    TASK_METRICS,
    list_sweeps,
    mean_text,
    resolve_metric,
    summary_notes,
    summary_rows,
    summary_table,
    write_report,
)
from optimlab.bench.store import RunStore
from optimlab.bench.sweep import SweepSpec, run_records, run_sweep
from optimlab.bench.trainer import TrainConfig
from optimlab.landscapes.plots import label_colors

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "bench"
CONFIG = TrainConfig(steps=30, batch_size=64, eval_every=10)
NAMES = ("results", "curves", "lr_sensitivity", "report")


def _save_artifacts(paths, prefix=""):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for path in paths.values():
        shutil.copy(path, ARTIFACTS / f"{prefix}{path.name}")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _image(data):
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"), dtype=float)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A real sweep (digits, sgd and adam, two rates, two seeds) and its report."""
    root = tmp_path_factory.mktemp("report")
    store = RunStore(root / "runs.db")
    spec = SweepSpec(task="digits", optimizers=("sgd", "adam"), config=CONFIG,
                     lrs=(0.01, 0.1), seeds=2, target=0.5)
    sweep = run_sweep(spec, store)
    paths = write_report(store, sweep, root / "out")
    _save_artifacts(paths)
    yield store, sweep, paths
    store.close()


def test_every_file_is_written_in_out_dir(swept):
    _, _, paths = swept
    assert sorted(paths) == sorted(NAMES)
    assert {p.name for p in paths.values()} == {"results.csv", "curves.png",
                                                "lr_sensitivity.png", "report.html"}
    assert len({p.parent for p in paths.values()}) == 1
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())


def test_results_csv_has_one_row_per_run(swept):
    store, sweep, paths = swept
    rows = _rows(paths["results"])
    assert len(rows) == 8
    assert tuple(rows[0])[:len(RESULT_COLUMNS)] == RESULT_COLUMNS
    assert {(r["optimizer"], float(r["lr"]), int(r["seed"])) for r in rows} == {
        (o, lr, s) for o in ("sgd", "adam") for lr in (0.01, 0.1) for s in (0, 1)}
    assert {r["status"] for r in rows} == {"finished"}
    runs = {run.id: run for run in store.list_runs(sweep)}
    for r in rows:
        summary = runs[int(r["run_id"])].summary
        for column in ("final_train_loss", "final_test_loss", "final_metric", "wall_time"):
            assert float(r[column]) == summary[column]  # full precision
        assert 0 <= float(r["final_metric"]) <= 1
        reached = summary["steps_to_target"]
        assert r["steps_to_target"] == ("" if reached is None else str(reached))


def test_figures_are_pngs_with_a_picture_in_each_optimizer_colour(swept):
    _, _, paths = swept
    colors = label_colors(["sgd", "adam"])
    for name in ("curves", "lr_sensitivity"):
        pixels = _image(paths[name].read_bytes())
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500
        assert pixels.std() > 0
        for color in colors.values():
            rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
            close = (np.abs(pixels - rgb).max(axis=-1) < 12).sum()
            assert close > 50, (name, color, close)


def test_html_is_one_self_contained_page(swept):
    store, sweep, paths = swept
    page = paths["report"].read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    best = {s.optimizer: s for s in summarize(run_records(store, sweep))}
    for name, s in best.items():
        row = re.search(rf"<tr><td>=?[0-9]+</td><td>{name}</td>(.*?)</tr>", page)
        assert row, name
        assert f">{s.lr_text}<" in row.group(1) and f"{s.mean:#.4g} ± " in row.group(1)
        # the diverged column counts the optimizer's runs at every rate, and says so
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
        assert cells[3] == str(s.diverged)
    assert "<th>diverged (any lr)</th>" in page
    assert "Best lr: the worst test metric over the last 25%" in page  # the criterion
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2
    assert [base64.b64decode(i) for i in images] == [paths["curves"].read_bytes(),
                                                      paths["lr_sensitivity"].read_bytes()]
    assert '"seeds": 2' in page and '"task": "digits"' in page
    # the store records the distribution's version (2.14.1 for PyPI's torch 2.14.1+cu130)
    assert importlib.metadata.version("torch") in page
    assert store.sweep(sweep)["environment"]["machine"] in page
    assert "<h1>Sweep" in page and "digits" in page and "accuracy" in page
    without_images = re.sub(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"', "", page)
    # the page's policy allows its data: images and nothing else from anywhere
    policy = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
    assert without_images.count(policy) == 1
    without_images = without_images.replace(policy, "")
    assert not re.search(r"https?://|<script|<link|<iframe|url\(|src=|href=|data:",
                         without_images)


def test_summary_table_and_list_sweeps(swept):
    store, sweep, _ = swept
    table = summary_table(store, sweep)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["rank", "optimizer", "best", "lr"]
    assert "accuracy (mean ± 95% CI)" in lines[0] and "steps to 0.5" in lines[0]
    assert "gradient evals" in lines[0] and "cost (calibrated)" in lines[0]
    for s in summarize(run_records(store, sweep)):
        row = next(line for line in lines if line.split()[1:2] == [s.optimizer])
        assert row.split()[2] == f"{s.best_lr:g}"
        assert mean_text(s.mean, s.ci, s.seeds) in row and "2/2" in row
    assert any("* Best lr: the worst test metric" in line for line in lines)
    listing = list_sweeps(store).splitlines()
    assert listing[0].split()[:4] == ["id", "task", "model", "created"]  # no sweep named
    row = next(line for line in listing if line.startswith(f"{sweep} "))
    assert "digits" in row and "8/8" in row and "sgd,adam" in row and "default" in row
    # what tells this sweep from another of the same task and model
    assert "30 steps, batch 64, 2 lrs 0.01..0.1, 2 seeds, target 0.5" in row


def test_an_empty_store_lists_no_sweeps(tmp_path):
    assert list_sweeps(RunStore(tmp_path / "none.db")).startswith("no sweeps")


def test_an_unwritable_out_dir_is_a_clear_error(swept, tmp_path):
    store, sweep, _ = swept
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match=re.escape(str(blocker))):
        write_report(store, sweep, blocker)
    with pytest.raises(OSError, match=re.escape(str(blocker / "report"))):
        write_report(store, sweep, blocker / "report")
    with pytest.raises(KeyError, match="no sweep"):
        write_report(store, 999, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_path_given_for_the_store_is_refused_in_one_line(tmp_path):
    """A path is not a RunStore: a one-line TypeError saying so, not an AttributeError from
    deep inside, and nothing written."""
    path = str(tmp_path / "runs.db")
    for call in (lambda: summary_table(path, 1), lambda: summary_rows(path, 1),
                 lambda: summary_notes(path, 1), lambda: resolve_metric(path, 1),
                 lambda: list_sweeps(path), lambda: write_report(path, 1, tmp_path / "out")):
        with pytest.raises(TypeError, match=r"reads a RunStore, not a str \('.*runs\.db'\): open it "
                                            r"with RunStore\(path\)$"):
            call()
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs.db").exists()
    with pytest.raises(TypeError, match=r"^a sweep id is an integer, got \[1\]$"):
        summary_table(RunStore(":memory:"), [1])  # one sweep id, not a list


def test_diverged_and_failed_runs_still_render(tmp_path):
    """Muon fails outright (the MLP has biases, Muon steps matrices only); adam at lr 1e4
    diverges."""
    store = RunStore(tmp_path / "runs.db")
    spec = SweepSpec(task="digits", optimizers=("muon", "adam"), config=CONFIG,
                     lrs=(0.01, 1e4), seeds=2, target=0.5)
    from optimlab.bench.sweep import EngineWarning

    with pytest.warns(EngineWarning, match="^muon: "):  # its members tried alone, each failing
        sweep = run_sweep(spec, store, name="<b>bad</b> & co")
    paths = write_report(store, sweep, tmp_path / "out")
    _save_artifacts(paths, prefix="diverged_")
    rows = _rows(paths["results"])
    status = {(r["optimizer"], float(r["lr"])): r["status"] for r in rows}
    assert status == {("muon", 0.01): "failed", ("muon", 1e4): "failed",
                      ("adam", 0.01): "finished", ("adam", 1e4): "diverged"}
    assert all("2-D" in r["error"] for r in rows if r["status"] == "failed")
    for name in ("curves", "lr_sensitivity"):
        assert _image(paths[name].read_bytes()).std() > 0
    page = paths["report"].read_text(encoding="utf-8")
    assert "&lt;b&gt;bad&lt;/b&gt; &amp; co" in page and "<b>bad" not in page
    assert "Failed runs" in page and "Muon only optimizes" in page
    assert page.count("data:image/png;base64,") == 2
    headers, rows = summary_rows(store, sweep)
    muon = next(row for row in rows if row[1] == "muon")
    adam = next(row for row in rows if row[1] == "adam")
    assert muon[2:6] == ["—", "—", "0", "4"]
    assert adam[2].split()[0] == "0.01" and adam[5] == "2"  # 2 diverged at 1e4
    assert "2/8 (2 diverged, 4 failed)" in list_sweeps(store)
    # the text summary says why the 4 muon runs count under diverged: they failed, with
    # this error (the report's page lists the failures once, below its notes)
    table = summary_table(store, sweep)
    failed = [line for line in table.splitlines() if "failed (counted under diverged)" in line]
    assert len(failed) == 1 and failed[0].startswith("  * muon: 4 runs failed")
    assert "Muon only optimizes" in failed[0]
    assert "failed (counted under diverged)" not in page
    # a long error (a traceback's last line can be) is cut in the note, kept whole in the store
    store.con.execute("UPDATE runs SET error = ? WHERE status = 'failed'",
                      ("ValueError: " + "x" * 1000,))
    store.con.commit()
    note = next(line for line in summary_table(store, sweep).splitlines() if "failed (" in line)
    assert note.endswith("x...") and len(note) < 400


def test_a_sweep_with_no_ended_run_renders(tmp_path):
    store = RunStore(":memory:")
    sweep = store.open_sweep({"task": "digits", "model": "mlp", "optimizers": ["sgd"]})
    store.add_runs(sweep, [{"optimizer": "sgd", "hparams": {"lr": 0.1}, "seed": 0}])
    paths = write_report(store, sweep, tmp_path / "out")
    assert [r["status"] for r in _rows(paths["results"])] == ["pending"]
    assert "no run ended yet" in summary_table(store, sweep)
    assert "0/1 (1 to run)" in list_sweeps(store)
    assert all(_image(paths[n].read_bytes()).std() > 0 for n in ("curves", "lr_sensitivity"))


def test_a_store_path_that_is_not_utf8_is_shown_escaped_in_the_page(tmp_path):
    """A path with a byte that is not UTF-8 (a surrogate once decoded) is written into the
    page as an escape, instead of failing to encode the page."""
    folder = tmp_path / os.fsdecode(b"odd\xff")
    try:
        folder.mkdir()
    except OSError:  # pragma: no cover - a file system that wants UTF-8 names (macOS)
        pytest.skip("this file system refuses a name that is not UTF-8")
    store = RunStore(folder / "runs.db")
    sweep = store.open_sweep({"task": "digits", "optimizers": ["sgd"]})
    store.add_runs(sweep, [{"optimizer": "sgd", "hparams": {"lr": 0.1}, "seed": 0}])
    paths = write_report(store, sweep, folder / "out")
    page = paths["report"].read_text(encoding="utf-8")
    assert f"Store: {tmp_path}/odd\\xff/runs.db, sweep key" in page
    assert all(p.parent == folder / "out" for p in paths.values())
    store.close()


def _custom_sweep(store, task, pairs):
    sweep = store.open_sweep({"task": task, "optimizers": ["adam"]})
    ids = store.add_runs(sweep, [{"optimizer": "adam", "hparams": {"lr": 0.1}, "seed": s}
                                 for s in range(len(pairs))])
    for run, (metric, loss) in zip(ids, pairs):
        store.finish_run(run, "finished", summary={"final_metric": metric,
                                                   "final_test_loss": loss})
    return sweep


def test_the_metric_comes_from_the_task_or_the_stored_values():
    store = RunStore(":memory:")
    assert TASK_METRICS["char-rnn"] == ("bits_per_char", False)
    known = _custom_sweep(store, "Char_RNN", [(2.0, 1.0)])
    assert resolve_metric(store, known) == ("bits_per_char", False)
    loss = _custom_sweep(store, "pkg.mod:loss", [(0.3, 0.3), (0.5, 0.5)])
    assert resolve_metric(store, loss) == ("loss", False)
    bits = _custom_sweep(store, "pkg.mod:bits", [(1.0 / math.log(2), 1.0)])
    assert resolve_metric(store, bits) == ("bits_per_char", False)
    accuracy = _custom_sweep(store, "pkg.mod:acc", [(0.9, 0.4), (0.8, 0.6)])
    assert resolve_metric(store, accuracy) == ("accuracy", True)
    other = _custom_sweep(store, "pkg.mod:other", [(42.0, 0.4)])
    assert resolve_metric(store, other) == ("metric", True)
    assert resolve_metric(store, other, "loss") == ("loss", False)
    assert resolve_metric(store, other, "f1", higher_is_better=True) == ("f1", True)
    assert "loss (mean ± 95% CI)" in summary_table(store, loss)


def test_run_sweep_records_the_metric_and_reports_use_it(swept):
    store, sweep, _ = swept
    assert store.sweep(sweep)["config"]["metric"] == {"name": "accuracy", "higher_is_better": True}
    # the record wins over the task-name table and the inference from summaries
    config = {**store.sweep(sweep)["config"], "task": "pkg.mod:made_up",
              "metric": {"name": "f1", "higher_is_better": False}}
    other = store.open_sweep(config)
    assert resolve_metric(store, other) == ("f1", False)
    assert resolve_metric(store, other, "f1", higher_is_better=False) == ("f1", False)
    with pytest.raises(ValueError, match=r"recorded its metric as f1 \(lower is better\)"):
        resolve_metric(store, other, higher_is_better=True)


def test_a_metric_that_contradicts_the_recorded_one_is_refused(tmp_path):
    """The stored values are the sweep's own metric: naming them otherwise, or ranking them
    the other way, would relabel accuracies as a loss and star the worst rate as best."""
    store, sweep = _stored(tmp_path, {"optimizers": ["adam"]}, [
        ("adam", 0.01, 0, "finished", {"final_metric": 0.9, "final_test_loss": 0.3}),
        ("adam", 0.1, 0, "finished", {"final_metric": 0.2, "final_test_loss": 2.0})])
    for given in ({"metric_name": "loss"}, {"metric_name": "bogus"},
                  {"higher_is_better": False}, {"metric_name": "loss", "higher_is_better": False}):
        for call in (lambda: summary_table(store, sweep, **given),
                     lambda: summary_rows(store, sweep, **given),
                     lambda: write_report(store, sweep, tmp_path / "out", **given)):
            with pytest.raises(ValueError) as err:
                call()
            message = str(err.value)
            assert message.startswith(f"sweep {sweep} recorded its metric as accuracy "
                                      f"(higher is better): its values cannot be ")
            assert "\n" not in message
    assert not (tmp_path / "out").exists()
    # agreeing with the record is accepted: the best rate is the highest accuracy
    assert resolve_metric(store, sweep, "accuracy", True) == ("accuracy", True)
    headers, rows = summary_rows(store, sweep, metric_name="accuracy", higher_is_better=True)
    assert "accuracy (mean ± 95% CI)" in headers and rows[0][2].split()[0] == "0.01"
    # a sweep stored before the metric was recorded takes a given name and direction
    old = _custom_sweep(store, "pkg.mod:other", [(42.0, 0.4)])
    assert resolve_metric(store, old, "loss") == ("loss", False)
    assert resolve_metric(store, old, "f1", higher_is_better=False) == ("f1", False)
    store.close()


@pytest.mark.parametrize("status", ["finished", "failed"])
def test_a_one_rate_sweep_draws_a_decade_around_it_without_warnings(tmp_path, status):
    """One rate (or a sweep whose every run failed) gave matplotlib identical x limits,
    which it warned of on stderr ("Attempting to set identical low and high xlims"); the
    axis is now a decade around the rate."""
    import warnings

    from optimlab.bench.report import _sensitivity_figure, _Sweep
    from optimlab.landscapes.plots import plt_close

    store = RunStore(tmp_path / "runs.db")
    sweep = store.open_sweep({"task": "digits", "optimizers": ["adam"], "target": 0.5})
    (run,) = store.add_runs(sweep, [{"optimizer": "adam", "hparams": {"lr": 0.1}, "seed": 0}])
    if status == "finished":
        store.finish_run(run, "finished", summary={"final_metric": 0.72,
                                                   "final_test_loss": 1.0})
    else:
        store.finish_run(run, "failed", error="ValueError: no")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = write_report(store, sweep, tmp_path / "out")
        fig = _sensitivity_figure(_Sweep(store, sweep, None, None))
    low, high = fig.axes[0].get_xlim()
    plt_close(fig)
    assert low == pytest.approx(0.1 / math.sqrt(10)) and high == pytest.approx(0.1 * math.sqrt(10))
    assert _image(paths["lr_sensitivity"].read_bytes()).std() > 0
    store.close()


def test_a_rate_some_of_whose_seeds_diverged_is_drawn_hollow_with_its_count(tmp_path):
    """The point of a rate is the mean of its finished seeds; where others diverged that
    mean alone would flatter it (one lucky seed of four): it is drawn hollow, labelled k/n."""
    from optimlab.bench.report import _sensitivity_figure, _Sweep
    from optimlab.landscapes.plots import plt_close

    store = RunStore(tmp_path / "runs.db")
    sweep = store.open_sweep({"task": "digits", "optimizers": ["adam"], "target": 0.5})
    runs = store.add_runs(sweep, [{"optimizer": "adam", "hparams": {"lr": lr}, "seed": s}
                                  for lr in (0.01, 0.1) for s in range(4)])
    for k, run in enumerate(runs):
        if k >= 5:  # lr 0.1: seed 0 finishes, seeds 1-3 diverge
            store.finish_run(run, "diverged", summary={"final_metric": 0.1})
        else:
            store.finish_run(run, "finished", summary={"final_metric": 0.8 + 0.01 * k,
                                                       "final_test_loss": 1.0})
    fig = _sensitivity_figure(_Sweep(store, sweep, None, None))
    ax = fig.axes[0]
    hollow = [line for line in ax.lines if line.get_gid() == "partial:adam"]
    counts = [t.get_text() for t in ax.texts if t.get_gid() == "partial-count:adam"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    plt_close(fig)
    assert len(hollow) == 1 and hollow[0].get_xdata()[0] == pytest.approx(0.1, rel=0.1)
    assert counts == ["1/4"]
    assert any(text.startswith("mean of the seeds that finished") for text in legend)
    store.close()


def _stored(tmp_path, config, runs):
    """A store with one sweep of ``config`` and ``runs``: (optimizer, lr, seed, status,
    summary)."""
    store = RunStore(tmp_path / "runs.db")
    sweep = store.open_sweep({"task": "digits", "target": 0.5,
                              "metric": {"name": "accuracy", "higher_is_better": True},
                              **config})
    ids = store.add_runs(sweep, [{"optimizer": o, "hparams": {"lr": lr}, "seed": s}
                                 for o, lr, s, _, _ in runs])
    for run, (_, _, _, status, summary) in zip(ids, runs):
        store.finish_run(run, status, summary=summary)
    return store, sweep


def test_an_advisors_answer_sweep_claims_no_extended_grid(tmp_path):
    # its config has lrs None (the automatic grid), which read as "the grid was extended
    # to every rate not in auto_lrs"
    done = {"final_metric": 0.9, "final_test_loss": 0.3}
    store, sweep = _stored(tmp_path, {"optimizers": ["adam"], "lrs": None,
                                      "advisor": {"stage": "answer"}},
                           [("adam", 0.0178, 0, "finished", done)])
    assert not any("extended the grid" in note for note in summary_notes(store, sweep))
    store.close()


def test_an_advisors_answer_sweep_says_where_its_seeds_are(tmp_path):
    """The answer is kept as one run: its report said "One seed: no confidence interval"
    beside advice quoting 2 seeds and an interval; it now quotes the final rung's figures
    and names the sweeps of the evidence."""
    answer = {"final_metric": 0.9431, "final_test_loss": 0.3, "sweep_ids": [1, 2, 3],
              "metric": {"name": "accuracy", "value": 0.9431, "ci": 0.16, "seeds": 2}}
    store, sweep = _stored(tmp_path, {"optimizers": ["adam"], "lrs": None,
                                      "advisor": {"stage": "answer"}},
                           [("adam", 0.0316, 0, "finished", answer)])
    notes = summary_notes(store, sweep)
    assert not any(note.startswith("One seed") for note in notes)
    assert ("This sweep keeps `optimlab advise`'s answer as one run standing for it, so the "
            "table shows one seed: 0.9431 ± 0.16 (clipped: 0.783 to 1) is the mean of the final "
            "rung's 2 seeds; its "
            "evidence is in sweeps 1, 2, 3, the final rung in sweep 3 (`optimlab report 3` "
            "shows its seeds).") in notes
    store.close()


def test_an_unfinished_sweep_says_so_first(tmp_path):
    """A sweep stopped part-way ranked the runs that ended without a word: its notes now
    open with how many runs have not ended, and the ended sweep's do not."""
    done = {"final_metric": 0.9, "final_test_loss": 0.3}
    store, sweep = _stored(tmp_path, {"optimizers": ["sgd", "adam"], "lrs": [0.001, 0.01]},
                           [("sgd", 0.001, 0, "finished", done)])
    store.add_runs(sweep, [{"optimizer": o, "hparams": {"lr": lr}, "seed": 0}
                           for o, lr in (("sgd", 0.01), ("adam", 0.001), ("adam", 0.01))])
    notes = summary_notes(store, sweep)
    assert notes[0].startswith("Unfinished: 3 of 4 runs have not ended (the sweep was stopped, "
                               "or is training now)")
    assert "--resume finishes it" in notes[0]
    assert "Unfinished" in summary_table(store, sweep)
    for run in store.pending_runs(sweep):
        store.finish_run(run.id, "finished", summary=done)
    assert not any("Unfinished" in note for note in summary_notes(store, sweep))
    store.close()


def test_a_median_seed_that_missed_the_target_reads_not_reached_in_every_column(tmp_path):
    # the cost was measured; "not measured" said otherwise
    reached = {"final_metric": 0.8, "final_test_loss": 0.5, "steps_to_target": 10,
               "seconds_per_step": 0.01, "cost_to_target": 0.1, "gradients_to_target": 10,
               "time_to_target": 0.2}
    missed = {"final_metric": 0.4, "final_test_loss": 1.5, "seconds_per_step": 0.01}
    store, sweep = _stored(tmp_path, {"optimizers": ["sgd"]},
                           [("sgd", 0.1, 0, "finished", reached),
                            ("sgd", 0.1, 1, "finished", missed),
                            ("sgd", 0.1, 2, "finished", missed)])
    headers, rows = summary_rows(store, sweep)
    row = dict(zip(headers, rows[0]))
    assert row["reached target"] == "1/3"
    assert [row[h] for h in ("steps to 0.5", "gradient evals", "cost (calibrated)",
                             "wall time")] == ["not reached"] * 4
    store.close()


def test_a_cost_too_noisy_to_rank_by_is_marked_and_said_why(tmp_path):
    reached = {"final_metric": 0.8, "final_test_loss": 0.5, "steps_to_target": 10,
               "seconds_per_step": 0.01, "cost_to_target": 0.1, "gradients_to_target": 10,
               "time_to_target": 0.2}
    store, sweep = _stored(tmp_path, {"optimizers": ["sgd", "lbfgs"]},
                           [("sgd", 0.1, 0, "finished", reached),
                            ("lbfgs", 0.1, 0, "finished", {**reached, "cost_noisy": True})])
    headers, rows = summary_rows(store, sweep)
    cost = {row[1]: dict(zip(headers, row))["cost (calibrated)"] for row in rows}
    assert cost == {"sgd": "0.1 s", "lbfgs": "0.1 s (noisy)"}
    notes = [n for n in summary_notes(store, sweep) if "(noisy)" in n]
    assert len(notes) == 1 and notes[0].startswith("A cost marked (noisy), lbfgs's, came from")
    store.close()


def test_an_optimizer_with_no_rate_where_every_seed_finished_is_said_so(tmp_path):
    from optimlab.bench.report import _curves_figure, _Sweep
    from optimlab.landscapes.plots import plt_close

    ok = {"final_metric": 0.9, "final_test_loss": 0.3}
    runs = [("adam", lr, s, "finished" if s == 0 else "diverged", ok if s == 0 else {})
            for lr in (28.0, 32.0) for s in range(3)]
    runs += [("sgd", lr, s, "finished", ok) for lr in (28.0, 32.0) for s in range(3)]
    store, sweep = _stored(tmp_path, {"optimizers": ["adam", "sgd"]}, runs)
    fig = _curves_figure(_Sweep(store, sweep, None, None))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    plt_close(fig)
    assert "adam: no rate where every seed finished" in legend
    assert any(note.startswith("adam: no rate where every seed finished")
               for note in summary_notes(store, sweep))
    store.close()


def test_runs_and_report_say_the_fixed_hyperparameters(tmp_path):
    from optimlab.bench.report import sweep_heading

    done = {"final_metric": 0.9, "final_test_loss": 0.3}
    store, sweep = _stored(tmp_path, {"optimizers": ["sgd", "adam"],
                                      "hparams": {"sgd": {"momentum": 0.9}},
                                      "train": {"steps": 40}},
                           [("sgd", 0.1, 0, "finished", done), ("adam", 0.1, 0, "finished", done)])
    assert list_sweeps(store).splitlines()[-1].endswith("sgd (momentum=0.9),adam")
    assert sweep_heading(store, sweep) == "digits, 40 steps; sgd with momentum=0.9"
    html = write_report(store, sweep, tmp_path / "out")["report"].read_text()
    assert "Optimizers sgd (momentum=0.9), adam;" in html
    store.close()


def test_optimizers_without_a_rank_are_never_said_to_share_one(tmp_path):
    """sgd and lion lost seed 2 at every rate, so neither has a best rate nor a rank (the
    table shows —): the notes said they "cannot be told apart at 3 seed(s) ... share rank
    2", 3 being adam's seeds."""
    runs = []
    for o in ("adam", "sgd", "lion"):
        for lr in (0.01, 0.1):
            for s in range(3):
                bad = o != "adam" and s == 2
                v = (0.9 if o == "adam" else 0.8) + 0.01 * s
                runs.append((o, lr, s, "diverged" if bad else "finished",
                             {"final_metric": float("nan") if bad else v,
                              "score": float("nan") if bad else v}))
    store, sweep = _stored(tmp_path, {"optimizers": ["adam", "sgd", "lion"]}, runs)
    notes = summary_notes(store, sweep)
    assert not any("cannot be told apart" in n or "share rank" in n for n in notes)
    assert sum("no rate where every seed finished" in n for n in notes) == 2
    store.close()


def test_a_tie_quotes_the_seeds_the_pair_has_in_common(tmp_path):
    """adam has 4 seeds at its best rate, sgd and rmsprop 3 of them: the note said "at 4
    seed(s)" (the most of any optimizer) for a comparison over 3."""
    runs = [("adam", 0.1, s, "finished", {"final_metric": 0.9 + 0.01 * s}) for s in range(4)]
    runs += [(o, 0.1, s, "finished", {"final_metric": v})
             for o, vals in (("sgd", (0.5, 0.52, 0.54)), ("rmsprop", (0.52, 0.5, 0.55)))
             for s, v in enumerate(vals)]
    store, sweep = _stored(tmp_path, {"optimizers": ["adam", "sgd", "rmsprop"]}, runs)
    (tie,) = [n for n in summary_notes(store, sweep) if "cannot be told apart" in n]
    assert tie in (f"{a} and {b} cannot be told apart at 3 seeds in common (paired "
                   f"comparisons over the same seeds, 95% familywise, Holm): they share rank 2."
                   for a, b in (("sgd", "rmsprop"), ("rmsprop", "sgd")))
    store.close()


def test_means_ranked_apart_never_print_alike(tmp_path):
    """A loss 3e-6 lower on every seed is a real difference, ranked 1 and 2, and both means
    printed 0.1234: each is shown with the digits that tell it from the other. Means equal
    up to float32 rounding print alike (and share a rank)."""
    from optimlab.bench.report import mean_digits

    x = [0.123401, 0.123455, 0.123432]
    runs = [("p", 0.1, s, "finished", {"final_metric": v}) for s, v in enumerate(x)]
    runs += [("q", 0.1, s, "finished", {"final_metric": v + 3e-6 + 1e-7 * s})
             for s, v in enumerate(x)]
    store, sweep = _stored(tmp_path, {"optimizers": ["p", "q"],
                                      "metric": {"name": "loss", "higher_is_better": False}},
                           runs)
    _, rows = summary_rows(store, sweep)
    assert [row[0] for row in rows] == ["1", "2"]
    assert rows[0][3].split()[0] == "0.123429" and rows[1][3].split()[0] == "0.123432"
    store.close()
    assert mean_digits([0.9, 0.5]) == [4, 4]
    assert mean_digits([0.5, 0.5 + 6e-8, 0.7]) == [4, 4, 4]  # one float32 ulp: alike


def test_means_keep_their_trailing_zeros(tmp_path):
    """"0.4 ± 0.13" beside "0.3523 ± 0.062": :.4g dropped the zeros of a mean that rounds
    short, so a column of means showed different precisions. Every mean now shows its
    digits, and means ranked apart still print apart (mean_digits)."""
    assert mean_text(0.4, 0.13, 3) == "0.4000 ± 0.13"
    assert mean_text(0.4, 0.1, 3) == "0.4000 ± 0.10"
    assert mean_text(0.37, math.inf, 1) == "0.3700 (1 seed: no interval)"
    assert mean_text(1000.0, 2.0, 3) == "1000 ± 2.0"  # no bare point
    assert mean_text(12345.0, 0.5, 3) == "1.234e+04 ± 0.50"
    assert mean_text(0.1234, 0.01, 3, digits=6) == "0.123400 ± 0.010"
    runs = [("p", 0.1, s, "finished", {"final_metric": v}) for s, v in enumerate((0.3, 0.5, 0.4))]
    runs += [("q", 0.1, s, "finished", {"final_metric": v})
             for s, v in enumerate((0.3523, 0.3, 0.4046))]
    store, sweep = _stored(tmp_path, {"optimizers": ["p", "q"]}, runs)
    _, rows = summary_rows(store, sweep)
    store.close()
    means = {row[1]: row[3].split()[0] for row in rows}
    assert means == {"p": "0.4000", "q": "0.3523"}


def _edge_note(store, sweep, name):
    (note,) = [n for n in summary_notes(store, sweep) if n.startswith(f"{name}: the best lr")]
    return note


def test_the_edge_advice_says_extend_runs_a_new_sweep_that_trains_the_grid_again(tmp_path):
    """--extend is part of a sweep's identity: the same command with it is a new sweep that
    trains the whole grid again, where the note said "pass --extend, or use --lrs auto: both
    extend the grid past an edge" as if it added rates to this one. A sweep that extends
    already is not told to pass --extend."""
    runs = [("sgd", lr, 0, "finished", {"final_metric": v})
            for lr, v in ((0.001, 0.5), (0.01, 0.7), (0.03, 0.9))]
    store, given = _stored(tmp_path, {"optimizers": ["sgd"], "lrs": [0.001, 0.01, 0.03]}, runs)
    note = _edge_note(store, given, "sgd")
    assert note.startswith("sgd: the best lr 0.03 is the highest rate tried; the optimum may "
                           "lie outside the grid")
    assert "--extend" in note and "--lrs auto" in note and "both extend" not in note
    assert "each runs a new sweep that trains its whole grid again" in note
    assert "the stored runs are not reused" in note
    # a sweep that extends (the automatic grid, or --extend) stopped extending: a wider --lrs
    extended = store.open_sweep({"task": "digits", "target": 0.5, "optimizers": ["sgd"],
                                 "lrs": [0.001, 0.01, 0.03], "extend": True,
                                 "metric": {"name": "accuracy", "higher_is_better": True}})
    for (o, lr, s, status, summary), run in zip(runs, store.add_runs(extended, [
            {"optimizer": o, "hparams": {"lr": lr}, "seed": s} for o, lr, s, _, _ in runs])):
        store.finish_run(run, status, summary=summary)
    note = _edge_note(store, extended, "sgd")
    assert "pass --extend" not in note and "at most 3 times" in note
    assert "widen --lrs (a new sweep, which trains its whole grid)" in note
    store.close()


@pytest.mark.parametrize("lrs, best, bound", [((1e-7, 1e4), 1e-7, 1e-7),
                                              ((3e-7, 3e-6), 3e-7, 1e-7),
                                              ((1.0, 100.0), 100.0, 100.0)])
def test_an_edge_an_extension_cannot_pass_names_the_bound(tmp_path, lrs, best, bound):
    """`--lrs 1e-7,1e4 --extend` picked 1e-07 and the note still said "pass --extend": an
    extension never tries rates outside LR_BOUNDS, so there the note names the bound."""
    from optimlab.bench.sweep import LR_BOUNDS

    runs = [("sgd", lr, 0, "finished", {"final_metric": 0.9 if lr == best else 0.1})
            for lr in lrs]
    store, sweep = _stored(tmp_path, {"optimizers": ["sgd"], "lrs": list(lrs),
                                      "extend": True}, runs)
    note = _edge_note(store, sweep, "sgd")
    assert bound in LR_BOUNDS
    assert f"the grid cannot be extended past {bound:g}, the " in note
    assert f"{LR_BOUNDS[0]:g}..{LR_BOUNDS[1]:g}" in note
    assert "pass --extend" not in note and "at most 3 times" not in note
    assert f"to try {'lower' if best == min(lrs) else 'higher'} rates, list them in --lrs" in note
    store.close()


def test_an_edge_an_extension_can_pass_still_advises_extend(tmp_path):
    # 2e-6 and 2e-5: the rates beyond the low edge, 2e-7 and 2e-8: the first is in bounds
    runs = [("sgd", lr, 0, "finished", {"final_metric": 0.9 if lr == 2e-6 else 0.1})
            for lr in (2e-6, 2e-5)]
    store, sweep = _stored(tmp_path, {"optimizers": ["sgd"], "lrs": [2e-6, 2e-5]}, runs)
    note = _edge_note(store, sweep, "sgd")
    assert "cannot be extended" not in note and "pass --extend" in note
    store.close()


def test_optimizers_on_one_edge_share_one_note_and_a_tie_lists_them(tmp_path):
    """16 optimizers whose best lr was the lowest rate got 16 notes alike, and a tie of 4
    read "a and b and c and d": one note an edge names them all, "a, b, c and d" (its own
    rates where their grids differ), and the tie lists them so too."""
    names = ["p", "q", "r", "s", "t"]
    grids = {"p": (0.01, 0.1), "q": (0.01, 0.1), "r": (0.01, 0.1), "s": (0.001, 0.01),
             "t": (0.01, 0.1)}
    # p, q, r and s alike (best at their lowest rate), t best at its highest
    runs = [(o, lr, k, "finished", {"final_metric": (0.95 if lr == max(grid) else 0.3)
                                    if o == "t" else (0.8 if lr == min(grid) else 0.5) + 0.01 * k})
            for o, grid in grids.items() for lr in grid for k in range(3)]
    store, sweep = _stored(tmp_path, {"optimizers": names, "lrs": [0.01, 0.1]}, runs)
    notes = summary_notes(store, sweep)
    store.close()
    edges = [n for n in notes if "rate tried" in n]
    assert len(edges) == 2, edges
    low, high = sorted(edges, key=lambda n: "highest" in n)
    assert low.startswith("p, q, r and s: the best lr of each (0.01, 0.01, 0.01 and 0.001 in that "
                          "order) is the lowest rate tried; their optima may lie outside the "
                          "grid. Widen --lrs"), low
    assert high.startswith("t: the best lr 0.1 is the highest rate tried; the optimum may lie "
                           "outside the grid."), high
    (tie,) = [n for n in notes if "cannot be told apart" in n]
    assert tie.startswith("p, q, r and s cannot be told apart at 3 seeds in common"), tie
    # one grid: the rate they share is said once
    runs = [(o, lr, k, status, summary) for o, lr, k, status, summary in runs if o in "pqr"]
    (tmp_path / "one").mkdir()
    store, sweep = _stored(tmp_path / "one", {"optimizers": ["p", "q", "r"], "lrs": [0.01, 0.1]},
                           runs)
    (edge,) = [n for n in summary_notes(store, sweep) if "rate tried" in n]
    store.close()
    assert edge.startswith("p, q and r: the best lr 0.01 is the lowest rate tried; their optima "
                           "may lie outside the grid."), edge


def test_the_reports_wide_tables_scroll_in_a_region_of_their_own(tmp_path):
    """The 18 columns of "All runs" made the report's page scroll sideways on a narrow
    screen: each table sits in a focusable region that scrolls (named, as the playground's),
    and the page needs no script for it."""
    runs = [("sgd", lr, 0, "finished", {"final_metric": 0.5}) for lr in (0.01, 0.1)]
    store, sweep = _stored(tmp_path, {"optimizers": ["sgd"], "lrs": [0.01, 0.1]}, runs)
    page = write_report(store, sweep, tmp_path / "out")["report"].read_text()
    store.close()
    assert "<script" not in page
    assert ".table-wrap { max-width: 100%; overflow-x: auto; }" in page
    tables = re.findall(r"(<[^<>]*>)\n<table>", page)
    assert tables == [f'<div class="table-wrap" tabindex="0" role="region" aria-label="{name}">'
                      for name in ("summary", "all runs", "environment")], tables
    assert page.count("<table>") == 3 and page.count("</table>\n</div>") == 3


def test_runs_and_the_heading_tell_apart_sweeps_of_other_training_options(tmp_path):
    """Two sweeps that differed in schedule, clipping and averaging (or eval cadence, or
    --extend) read alike in `optimlab runs` and the report's heading; the options that
    differ from TrainConfig's defaults (the cadence from the command line's) are said,
    and nothing more where every option is its default."""
    from dataclasses import asdict

    from optimlab.bench.report import default_eval_every, sweep_heading, sweep_options

    done = {"final_metric": 0.9, "final_test_loss": 0.3}
    store = RunStore(tmp_path / "runs.db")
    plain = TrainConfig(steps=20, eval_every=default_eval_every(20))
    configs = [asdict(plain),
               asdict(TrainConfig(steps=20, eval_every=1, schedule="cosine", clip_norm=1.0,
                                  averaging="ema")),
               asdict(TrainConfig(steps=20, eval_every=5))]
    ids = []
    for i, (train, extra) in enumerate(zip(configs, ({}, {}, {"extend": True}))):
        sweep = store.open_sweep({"task": "digits", "optimizers": ["sgd"], "lrs": [0.1],
                                  "seeds": 1, "target": None, "train": train, **extra})
        (run,) = store.add_runs(sweep, [{"optimizer": "sgd", "hparams": {"lr": 0.1},
                                         "seed": 0}])
        store.finish_run(run, "finished", summary=done)
        ids.append(sweep)
    rows = list_sweeps(store).splitlines()[2:]
    setups = [" ".join(row.split()[4:]) for row in rows]
    assert "20 steps, batch 100, lr 0.1, 1 seed 1/1 sgd" in setups[0]
    assert "schedule" not in rows[0] and "extend" not in rows[0]
    assert "lr 0.1, 1 seed, schedule=cosine, clip_norm=1, averaging=ema 1/1" in setups[1]
    assert "lr 0.1, 1 seed, eval_every=5, extend 1/1" in setups[2]
    assert [sweep_heading(store, i) for i in ids] == [
        "digits, 20 steps", "digits, 20 steps, schedule=cosine, clip_norm=1, averaging=ema",
        "digits, 20 steps, eval_every=5, extend"]
    # the defaults are TrainConfig's own: every field set apart from them is said
    assert sweep_options({"train": asdict(TrainConfig(steps=20, eval_every=1, warmup_steps=3,
                                                      schedule="warmup-cosine",
                                                      eval_subset=None))}) == \
        "schedule=warmup-cosine, warmup_steps=3, eval_subset=None"
    assert sweep_options({"train": {"steps": 40}}) == ""
    assert sweep_options({"lrs": None, "extend": False}) == "no extend"
    store.close()


# ------------------------------------------------ audit: headers, results.csv, clipped intervals


def test_the_to_target_columns_say_so_in_the_cli_table_and_the_page(tmp_path):
    """The summary's gradient evals, calibrated cost and wall time are read at the target,
    as the tour says ("wall time to target"); the report page and ``optimlab bench``'s table
    said "wall time" alone. The "All runs" table gives its times' unit."""
    from optimlab.bench.tour import sweep_headers

    reached = {"final_metric": 0.8, "final_test_loss": 0.5, "steps_to_target": 10,
               "seconds_per_step": 0.01, "cost_to_target": 0.1, "gradients_to_target": 10,
               "time_to_target": 0.2, "wall_time": 0.4}
    store, sweep = _stored(tmp_path, {"optimizers": ["sgd"]},
                           [("sgd", 0.1, 0, "finished", reached)])
    header = summary_table(store, sweep).splitlines()[0]
    for column in ("steps to 0.5", "gradient evals to target", "cost (calibrated) to target",
                   "wall time to target"):
        assert column in header, header
    page = write_report(store, sweep, tmp_path / "out")["report"].read_text()
    for column in ("gradient evals to target", "cost (calibrated) to target",
                   "wall time to target", "time_to_target (s)", "wall_time (s)",
                   "cost_to_target (s)"):
        assert f"<th>{column}</th>" in page, column
    assert "<th>wall time</th>" not in page and "<th>wall_time</th>" not in page
    # the keys pages head themselves stay short, and the tour's headers agree with these
    headers, _ = summary_rows(store, sweep)
    assert headers[-3:] == ["gradient evals", "cost (calibrated)", "wall time"]
    assert [h.removesuffix(" \u2193") for h in sweep_headers(headers)[-3:]] == [
        "gradient evals to target", "cost (calibrated) to target", "wall time to target"]
    store.close()


def test_results_csv_writes_missing_values_one_way_and_counts_as_integers(tmp_path):
    """A diverged run's NaN loss was written ``nan`` beside the empty cells of values a run
    never had, and counts ``12.0`` beside ``12``; the wall time's meaning is documented."""
    reached = {"final_metric": 0.8, "final_test_loss": 0.5, "final_train_loss": 0.4,
               "steps_to_target": 12, "gradients_to_target": 12.0, "cost_to_target": 0.1,
               "time_to_target": 0.2, "wall_time": 0.4, "cost_rounds": 15.0,
               "gradients_per_step": 1.0}
    fractional = {**reached, "gradients_to_target": 18.5}
    diverged = {"final_metric": 0.1, "final_test_loss": math.nan,
                "final_train_loss": math.inf, "steps_to_target": None, "wall_time": 0.4}
    store, sweep = _stored(tmp_path, {"optimizers": ["sgd", "adam"]},
                           [("sgd", 0.1, 0, "finished", reached),
                            ("sgd", 0.1, 1, "finished", fractional),
                            ("adam", 10.0, 0, "diverged", diverged),
                            ("adam", 0.1, 1, "failed", None)])
    text = write_report(store, sweep, tmp_path / "out")["results"].read_text()
    assert "nan" not in text.lower() and "inf" not in text.lower()
    rows = {(r["optimizer"], r["seed"]): r for r in csv.DictReader(io.StringIO(text))}
    sgd, adam = rows[("sgd", "0")], rows[("adam", "0")]
    assert sgd["steps_to_target"] == "12" and sgd["gradients_to_target"] == "12"
    assert sgd["cost_rounds"] == "15"
    assert rows[("sgd", "1")]["gradients_to_target"] == "18.5"  # not a whole number
    assert sgd["gradients_per_step"] == "1.0"  # a ratio, not a count
    assert float(sgd["wall_time"]) == 0.4 and float(sgd["cost_to_target"]) == 0.1
    assert adam["final_test_loss"] == "" and adam["final_train_loss"] == ""
    assert adam["steps_to_target"] == "" and adam["final_metric"] == "0.1"
    failed = next(r for r in rows.values() if r["status"] == "failed")
    assert failed["final_test_loss"] == "" and failed["wall_time"] == ""
    # the page's "All runs" shows a missing value as a dash, as the summary does
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<td class=\"num\">nan</td>" not in page
    import optimlab.bench.report as report

    assert "``wall_time``: seconds the run's group" in report.__doc__
    assert "shared by its runs" in report.__doc__
    store.close()


def test_an_interval_past_the_accuracy_range_is_said_clipped(tmp_path):
    """Two seeds far apart gave "0.6250 ± 0.95" for an accuracy, up to 1.575; the interval
    is said clipped to 0..1 (the stored interval is unchanged), with a note why."""
    assert mean_text(0.625, 0.95, 2, bounds=(0.0, 1.0)) == "0.6250 ± 0.95 (clipped: 0 to 1)"
    assert mean_text(0.95, 0.08, 5, bounds=(0.0, 1.0)) == "0.9500 ± 0.080 (clipped: 0.87 to 1)"
    assert mean_text(0.5, 0.1, 3, bounds=(0.0, 1.0)) == "0.5000 ± 0.10"
    assert mean_text(0.625, 0.95, 2) == "0.6250 ± 0.95"  # no range given: as before
    runs = [("sgd", 0.1, s, "finished", {"final_metric": m, "final_test_loss": 1.0,
                                          "score": m}) for s, m in ((0, 0.55), (1, 0.70))]
    store, sweep = _stored(tmp_path, {"optimizers": ["sgd"]}, runs)
    _, rows = summary_rows(store, sweep)
    s = summarize(run_records(store, sweep))[0]
    assert s.mean + s.ci > 1  # the stored interval is not clipped
    assert rows[0][3].endswith("(clipped: 0 to 1)"), rows[0][3]
    notes = summary_notes(store, sweep)
    assert any("clipped" in n and "0 to 1 range of the accuracy" in n for n in notes), notes
    table = summary_table(store, sweep)
    assert "(clipped: 0 to 1)" in table
    # a loss has no range: its interval is said as computed
    (tmp_path / "loss").mkdir()
    store2, loss_sweep = _stored(tmp_path / "loss", {
        "optimizers": ["sgd"], "metric": {"name": "loss", "higher_is_better": False}}, runs)
    assert "clipped" not in summary_table(store2, loss_sweep)
    store.close()
    store2.close()


def _to_target_of(summaries):
    """``_Sweep.to_target`` over runs at the best rate with these summaries."""
    from types import SimpleNamespace

    from optimlab.bench.report import _Sweep

    runs = [SimpleNamespace(summary=s) for s in summaries]
    return _Sweep.to_target(SimpleNamespace(best_runs=lambda name: runs), "adam")


def test_the_to_target_columns_are_medians_over_the_seeds():
    """Documented as medians: one slow seed does not drag them, one that never reached
    leaves a finite median while most reached (a mean would be 30, then inf)."""
    import statistics

    def run(steps):
        return {"steps_to_target": steps, "gradients_to_target": 2 * steps,
                "cost_to_target": 0.5 * steps, "time_to_target": 0.1 * steps}

    got = _to_target_of([run(10), run(20), run(60)])
    assert got[:2] == (3, 3)
    assert got[2:] == pytest.approx([statistics.median([10, 20, 60]), 40, 10, 2])
    never = {"steps_to_target": None}
    got = _to_target_of([run(10), run(20), never])
    assert got[:3] == (2, 3, statistics.median([10, 20, math.inf]))
    # a cost stored without a step count to the target is no reach
    assert _to_target_of([{"steps_to_target": None, "cost_to_target": 5.0}])[:5] == \
        (0, 1, math.inf, math.inf, math.inf)


def test_ties_are_stated_over_the_seeds_every_optimizer_has():
    """Seeds {0, 1, 2} and {1, 2, 3}: a paired comparison is over the 2 they share."""
    from optimlab.bench.analysis import OptimizerSummary
    from optimlab.bench.report import _common_seeds

    def summary(name, seeds):
        return OptimizerSummary(name, 0.1, 0.5, 0.1, len(seeds), 0, {0.1: 0.5},
                                per_seed={s: 0.5 for s in seeds})

    assert _common_seeds([summary("a", [0, 1, 2]), summary("b", [1, 2, 3])]) == 2
    assert _common_seeds([summary("a", [0, 1, 2]), summary("b", [0, 1, 2])]) == 3


def test_each_optimizers_lines_carry_a_marker_of_their_own(swept):
    """Lines told apart by colour alone fail a reader who cannot tell the hues apart (WCAG
    1.4.1): each optimizer's curve and its points in the sensitivity plot carry its marker,
    the same in both figures."""
    from optimlab.bench.report import _curves_figure, _sensitivity_figure, _Sweep
    from optimlab.landscapes.plots import plt_close

    store, sweep, _ = swept
    sw = _Sweep(store, sweep, None, None)
    seen = {}
    for figure in (_curves_figure(sw), _sensitivity_figure(sw)):
        for ax in figure.axes:
            for line in ax.get_lines():
                gid = line.get_gid() or ""
                # (an error bar's caps share its gid, with the cap marker "_")
                if gid.split(":")[0] in ("test_metric", "train_loss", "sensitivity") \
                        and line.get_marker() != "_":
                    seen.setdefault(gid.split(":")[1], set()).add(line.get_marker())
        plt_close(figure)
    assert seen.keys() == {"sgd", "adam"} and all(len(m) == 1 for m in seen.values()), seen
    assert seen["sgd"] != seen["adam"] and "None" not in seen["sgd"] | seen["adam"]


def test_runs_stored_without_a_score_are_ranked_by_the_criterion_the_tables_name(tmp_path):
    """Runs stored before summaries held their tuning score (2026-12-03) were ranked by their
    final metric while the report said "the worst test metric over the last 25%": the score
    is computed from the stored test_metric points, equal to the one the sweep stores."""
    import json
    import sqlite3

    store = RunStore(tmp_path / "runs.db")
    spec = SweepSpec(task="digits", optimizers=("sgd", "adam"), lrs=(0.01, 0.1), seeds=1,
                     config=TrainConfig(steps=40, batch_size=64, eval_every=5))
    sweep = run_sweep(spec, store)
    old = tmp_path / "old.db"
    with sqlite3.connect(store.path) as src, sqlite3.connect(old) as dst:
        src.backup(dst)
    scored = {r["run_id"]: r["score"] for r in run_records(store, sweep)}
    assert len(scored) == 4 and all(math.isfinite(s) for s in scored.values())
    # the scores differ from the final metrics (or the test could not tell the two apart)
    assert any(r["score"] != r["metric"] for r in run_records(store, sweep))
    with sqlite3.connect(old) as db:
        for run_id, text in db.execute("SELECT id, summary FROM runs").fetchall():
            summary = json.loads(text)
            del summary["score"]
            db.execute("UPDATE runs SET summary = ? WHERE id = ?", (json.dumps(summary), run_id))
    legacy = RunStore(old)
    try:
        assert all("score" not in r for r in run_records(legacy, sweep))  # no direction given
        assert {r["run_id"]: r["score"] for r in run_records(legacy, sweep, True)} == scored
        assert summary_rows(legacy, sweep) == summary_rows(store, sweep)
    finally:
        legacy.close()
        store.close()


def test_an_optimizer_with_one_seed_ended_is_said_apart_from_the_tie_of_the_others(tmp_path):
    """An unfinished sweep: rmsprop has one seed ended, adam and sgd three each, all three
    ranked =1. The note said "rmsprop, adam and sgd share rank 1: with 1 seed in common no
    comparison is possible", though adam and sgd were compared over 3 seeds and could not
    be told apart; each is now said as it is."""
    store = RunStore(tmp_path / "runs.db")
    sweep = store.open_sweep({"task": "digits", "optimizers": ["adam", "sgd", "rmsprop"],
                              "lrs": [0.1], "seeds": 3,
                              "metric": {"name": "accuracy", "higher_is_better": True}})
    values = {"adam": [0.90, 0.92, 0.91], "sgd": [0.91, 0.90, 0.92], "rmsprop": [0.95]}
    ids = store.add_runs(sweep, [{"optimizer": o, "hparams": {"lr": 0.1}, "seed": s}
                                 for o in values for s in range(3)])
    for run, (o, s) in zip(ids, [(o, s) for o in values for s in range(3)]):
        if s < len(values[o]):
            store.finish_run(run, "finished", summary={"final_metric": values[o][s],
                                                       "score": values[o][s]})
    notes = summary_notes(store, sweep)
    assert "rmsprop has fewer than 2 seeds ended at its best rate: no comparison with it is " \
        "possible, so it shares rank 1." in notes
    assert any(note.startswith("adam and sgd cannot be told apart at 3 seeds in common")
               for note in notes)
    assert not any("no comparison is possible." in note and "adam" in note for note in notes)
    store.close()


def test_optimizers_whose_every_run_diverged_are_said_to_have(tmp_path):
    """Every run of sgd and adam diverged: their rows were dashes with "seeds 0" and no note
    said why, while lion (which trained) is ranked as before."""
    runs = [(o, lr, s, "diverged", None) for o in ("sgd", "adam") for lr in (1e3, 1e4)
            for s in range(2)]
    runs += [("lion", 1e-3, s, "finished", {"final_metric": 0.8, "score": 0.8})
             for s in range(2)]
    store, sweep = _stored(tmp_path, {"optimizers": ["sgd", "adam", "lion"], "lrs": [1e-3, 1e3, 1e4]},
                           runs)
    notes = summary_notes(store, sweep)
    assert "sgd and adam: every run that ended diverged or failed (4 runs of sgd, 4 runs of " \
        "adam), so no best rate, no metric and no rank (seeds counts those that finished at " \
        "the best rate: none); smaller rates may train." in notes
    assert not any(note.startswith("lion") for note in notes)
    store.close()
