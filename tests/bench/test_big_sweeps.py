"""Sweeps with long runs, many runs and many optimizers: what the playground's sweep page and
the report read and draw of them.

The audit's findings: the sweep page (``GET /api/sweeps/{id}``) read every point of every
run and metric of the sweep and sent every step (12 runs x 100,000 steps: 26 s, 3.1 GB, a
19 MB answer); the report read every metric of the best runs and drew every point; the
score of an old sweep read every metric of its runs; the figures' legends were clipped or
ran off the figure from about 10 optimizers. Stores here are made through the store's API
(no training), small enough to run in seconds; what is counted is rows, never time.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from optimlab.bench.store import RunStore
from optimlab.bench.store.guard import GuardedConnection
from tests.bench.catalog_names import CATALOG_NAMES

#: the playground's cap on a curve's points (its races'): ``optimlab.web.models.MAX_POINTS``
CAP = 2001


def _config(optimizers, lrs, seeds, steps):
    return {"task": "digits", "model": None, "optimizers": list(optimizers), "lrs": list(lrs),
            "seeds": seeds, "hparams": {}, "target": None,
            "metric": {"name": "accuracy", "higher_is_better": True},
            "train": {"steps": steps, "batch_size": 10, "eval_every": 1}}


def _fabricate(path, optimizers=("sgd", "adam"), lrs=(0.01, 0.1), seeds=2, steps=20,
               extra_names=0, spike=None):
    """A finished sweep of ``optimizers x lrs x seeds`` runs with a point at every step
    from 0 to ``steps``: ``train_loss``, ``test_loss``, ``test_metric`` and
    ``extra_names`` more metrics. The first rate is each optimizer's best (its score is
    the highest); ``spike``: a step where the best runs' train loss jumps to 50."""
    store = RunStore(path)
    sweep = store.open_sweep(_config(optimizers, lrs, seeds, steps))
    members = [{"optimizer": o, "hparams": {"lr": lr}, "seed": s}
               for o in optimizers for lr in lrs for s in range(seeds)]
    for run, m in zip(store.add_runs(sweep, members), members):
        best = m["hparams"]["lr"] == lrs[0]
        quality = (0.9 if best else 0.5) + 0.01 * m["seed"]
        points = []
        for step in range(steps + 1):
            frac = step / steps
            values = {"train_loss": 2.3 * math.exp(-3 * frac) + 0.001 * m["seed"],
                      "test_loss": 2.0 * math.exp(-2 * frac),
                      "test_metric": 0.1 + (quality - 0.1) * (1 - math.exp(-5 * frac))}
            if best and step == spike:
                values["train_loss"] = 50.0
            values.update({f"extra_{k}": float(k) for k in range(extra_names)})
            points.append((step, values, 0.001 * step))
        final = points[-1][1]["test_metric"]
        store.start_run(run)
        store.finish_run(run, "finished", points=points,
                         summary={"final_metric": final, "score": final,
                                  "final_train_loss": points[-1][1]["train_loss"],
                                  "final_test_loss": points[-1][1]["test_loss"]})
    store.close()
    return path, sweep


class _Counting:
    """A cursor that counts the rows fetched from it."""

    def __init__(self, cur, tally):
        self._cur, self._tally = cur, tally

    def _count(self, rows):
        self._tally[0] += len(rows)
        return rows

    def fetchall(self):
        return self._count(self._cur.fetchall())

    def fetchmany(self, *args):
        return self._count(self._cur.fetchmany(*args))

    def fetchone(self):
        row = self._cur.fetchone()
        self._tally[0] += row is not None
        return row

    def __iter__(self):
        return self

    def __next__(self):
        row = next(self._cur)
        self._tally[0] += 1
        return row

    def __getattr__(self, name):
        return getattr(self._cur, name)


@pytest.fixture
def metric_rows(monkeypatch):
    """A list whose one entry counts the rows read from the ``metrics`` table by every
    store of this test from now on."""
    tally = [0]
    execute = GuardedConnection.execute

    def counting(self, sql, parameters=()):
        cur = execute(self, sql, parameters)
        return _Counting(cur, tally) if " metrics" in sql and "FROM" in sql else cur

    monkeypatch.setattr(GuardedConnection, "execute", counting)
    return tally


# ----------------------------------------------------------------------------- the sweep page


def test_the_sweep_page_sends_at_most_the_cap_a_curve_and_keeps_its_ends_and_spikes(tmp_path):
    from optimlab.web import api

    steps = 3 * CAP
    db, sweep = _fabricate(tmp_path / "runs.db", optimizers=("sgd",), lrs=(0.01, 0.1),
                           seeds=2, steps=steps, spike=1234)
    curve = api.sweep_detail(db, sweep)["curves"]["sgd"]
    assert curve["lr"] == 0.01 and curve["seeds"] == 2
    assert len(curve["step"]) <= CAP
    assert len(curve["train_loss"]) == len(curve["test_metric"]) == len(curve["step"])
    assert curve["step"][0] == 0 and curve["step"][-1] == steps
    assert curve["step"] == sorted(set(curve["step"]))
    # the spike (both seeds at 50) is kept, and every value kept is the step's mean
    assert max(curve["train_loss"]) == pytest.approx(50.0)
    assert 1234 in curve["step"]
    for step, loss in zip(curve["step"], curve["train_loss"]):
        if step != 1234:
            expected = 2.3 * math.exp(-3 * step / steps) + 0.0005
            assert loss == pytest.approx(expected, rel=1e-12)
    # the final accuracy as stored
    assert curve["test_metric"][-1] == pytest.approx(0.1 + 0.805 * (1 - math.exp(-5)))


def test_a_short_sweep_page_sends_every_step(tmp_path):
    from optimlab.web import api

    db, sweep = _fabricate(tmp_path / "runs.db", steps=300)
    curves = api.sweep_detail(db, sweep)["curves"]
    assert set(curves) == {"sgd", "adam"}
    for curve in curves.values():
        assert curve["step"] == list(range(301))
        assert len(curve["train_loss"]) == len(curve["test_metric"]) == 301


def test_the_sweep_page_reads_the_points_of_the_best_runs_only(tmp_path, metric_rows):
    """The rows read from the metrics table do not grow with the runs at other rates nor
    with the metrics the page does not draw: the best runs' two drawn metrics only."""
    from optimlab.web import api

    counts = []
    for lrs, extra in (((0.01, 0.1), 0), ((0.01, 0.1, 0.3, 1.0, 3.0), 6)):
        db, sweep = _fabricate(tmp_path / f"runs{len(lrs)}.db", lrs=lrs, steps=50,
                               extra_names=extra)
        metric_rows[0] = 0
        detail = api.sweep_detail(db, sweep)
        assert {n: c["lr"] for n, c in detail["curves"].items()} == {"sgd": 0.01, "adam": 0.01}
        counts.append(metric_rows[0])
    # 2 optimizers x 2 seeds at the best rate x 2 metrics x 51 steps
    assert counts == [2 * 2 * 2 * 51] * 2


# ----------------------------------------------------------------------------- the report


def test_the_report_reads_only_the_metrics_it_draws(tmp_path, metric_rows):
    from optimlab.bench.report import write_report

    counts = []
    for lrs, extra in (((0.01, 0.1), 0), ((0.01, 0.1, 0.3, 1.0), 8)):
        db, sweep = _fabricate(tmp_path / f"runs{extra}.db", lrs=lrs, steps=40,
                               extra_names=extra)
        store = RunStore(db, readonly=True)
        metric_rows[0] = 0
        write_report(store, sweep, tmp_path / f"report{extra}")
        counts.append(metric_rows[0])
        store.close()
    assert counts == [2 * 2 * 2 * 41] * 2


def test_the_report_draws_at_most_the_cap_a_curve_and_keeps_its_ends_and_spike(tmp_path):
    from optimlab.bench.report import _curves_figure, _Sweep
    from optimlab.landscapes.plots import plt_close

    steps = 3 * CAP
    db, sweep = _fabricate(tmp_path / "runs.db", optimizers=("adam",), lrs=(0.01, 0.1),
                           steps=steps, spike=4321)
    store = RunStore(db, readonly=True)
    fig = _curves_figure(_Sweep(store, sweep, None, None))
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.lines if line.get_gid()}
    plt_close(fig)
    store.close()
    for gid in ("test_metric:adam", "train_loss:adam"):
        x = np.asarray(lines[gid].get_xdata())
        assert 2 <= len(x) <= CAP and x[0] == 0 and x[-1] == steps
    loss = lines["train_loss:adam"]
    assert max(loss.get_ydata()) == pytest.approx(50.0) and 4321 in loss.get_xdata()


def test_thinning_keeps_short_curves_whole_and_long_ones_within_the_cap():
    from optimlab.bench.report import CURVE_POINTS, thin_indices
    from optimlab.web.models import MAX_POINTS

    assert CURVE_POINTS == MAX_POINTS == CAP  # the report draws what the playground sends
    assert thin_indices(10, CAP).tolist() == list(range(10))
    assert thin_indices(CAP, CAP).tolist() == list(range(CAP))
    rng = np.random.default_rng(0)
    values = rng.normal(size=100_000)
    values[[17, 50_000, 99_990]] = [40.0, -40.0, np.nan]
    other = rng.normal(size=100_000)
    keep = thin_indices(100_000, CAP, values, other)
    assert len(keep) <= CAP and keep[0] == 0 and keep[-1] == 99_999
    assert np.all(np.diff(keep) > 0)
    assert {17, 50_000, int(np.argmax(other)), int(np.argmin(other))} <= set(keep.tolist())
    assert len(thin_indices(100_000, 7)) <= 7


# ----------------------------------------------------------------------------- old sweeps


def test_scoring_an_old_sweep_reads_its_test_metric_only(tmp_path, metric_rows):
    """A sweep stored before summaries held their score: its runs are scored from their
    test_metric points, and only those are read."""
    from optimlab.bench.sweep import run_records

    db, sweep = _fabricate(tmp_path / "runs.db", steps=30, extra_names=5)
    store = RunStore(db)
    for run in store.list_runs(sweep):
        summary = dict(run.summary)
        del summary["score"]
        store.con.execute("UPDATE runs SET summary = ? WHERE id = ?",
                          (json.dumps(summary), run.id))
    metric_rows[0] = 0
    records = run_records(store, sweep, True)
    assert metric_rows[0] == len(records) * 31
    assert all(math.isfinite(r["score"]) for r in records)
    store.close()


# ----------------------------------------------------------------------------- legends


OPTIMIZERS = CATALOG_NAMES


def _inside(fig, legend) -> bool:
    fig.canvas.draw()
    box, whole = legend.get_window_extent(), fig.bbox
    return (box.x0 >= whole.x0 - 1 and box.x1 <= whole.x1 + 1
            and box.y0 >= whole.y0 - 1 and box.y1 <= whole.y1 + 1)


@pytest.mark.parametrize("count", [1, 12, 42])
def test_the_figures_legends_hold_every_optimizer_inside_the_figure(tmp_path, count):
    from optimlab.bench.report import _curves_figure, _sensitivity_figure, _Sweep
    from optimlab.landscapes.plots import plt_close
    names = OPTIMIZERS[:count]
    assert len(names) == count
    db, sweep = _fabricate(tmp_path / "runs.db", optimizers=names, lrs=(0.01, 0.1), seeds=1,
                           steps=5)
    store = RunStore(db, readonly=True)
    sw = _Sweep(store, sweep, None, None)
    curves, sensitivity = _curves_figure(sw), _sensitivity_figure(sw)
    try:
        for fig in (curves, sensitivity):
            (legend,) = fig.legends
            assert _inside(fig, legend), fig.get_size_inches()
        texts = [t.get_text() for t in sensitivity.legends[0].get_texts()]
        # one entry an optimizer (its best rate said in it), and one for the stars
        assert len(texts) == count + 1
        assert all(any(t.startswith(f"{n}: best lr 0.01") for t in texts) for n in names)
        assert len(curves.legends[0].get_texts()) == count
    finally:
        plt_close(curves)
        plt_close(sensitivity)
        store.close()
