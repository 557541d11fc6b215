"""Reports of stored sweeps: a CSV of every run, two figures, one self-contained HTML page.

``write_report(store, sweep_id, out_dir)`` reads a sweep back from the :class:`RunStore`
and writes into ``out_dir``:

``results.csv``
    one row per run: ``run_id, optimizer, lr, seed, status``, the final train loss, test
    loss and test metric, the tuning ``score``, the way to the target (``steps_to_target``,
    ``gradients_to_target``; ``cost_to_target``: steps x the calibrated step cost, in
    seconds; ``time_to_target``: seconds of training before the first evaluation that reached
    it), ``wall_time``, then the other hyperparameters (one column each), any other summary
    entries, and ``error``. ``wall_time``: seconds the run's group (one population: the runs
    of an optimizer that train together, its rates and seeds) trained, shared by its runs;
    ``time_to_target`` is read on the same clock (compare ``cost_to_target`` across
    optimizers instead). A missing value (a run that failed, a target not reached, a
    diverged run's loss, which is not finite) is an empty cell, and counts (``seed``,
    ``steps_to_target``, ``gradients_to_target``, ``cost_rounds``) are written as whole
    numbers where they are (``12``, not ``12.0``). A text cell that a spreadsheet would read
    as a formula (it begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return: a
    plugin's name or an error message from someone else's store) is written after a ``'``,
    as spreadsheets themselves quote such text; numbers, and text that is a plain number
    (``"-0.5"``), are written as they are.
``curves.png``
    the test metric and the train loss against the step, for each optimizer at its best
    learning rate: the mean over seeds as a line in a min-max band.
``lr_sensitivity.png``
    the final test metric against the learning rate (log axis), mean and standard
    deviation over seeds; the best rate starred, diverged or failed runs as ``x`` on the
    worst edge of the plot.
``report.html``
    one page with no external resource (the figures are embedded as PNG data URIs, no
    JavaScript): the summary table, the figures, every run, the exact configuration, the
    library versions and machine of the sweep, and the date.

:func:`summary_table` gives the summary table as text, :func:`list_sweeps` the sweeps of a
store (``optimlab runs``).

The metric (its name and whether higher is better) is recorded in the sweep's
configuration by :func:`~optimlab.bench.sweep.run_sweep`. For sweeps stored before that, it
is looked up by the task's name (:data:`TASK_METRICS`) or inferred from the runs' summaries
(the trainer records ``final_metric`` equal to the test loss for a ``loss`` metric, the loss
over ln 2 for ``bits_per_char``, a fraction for ``accuracy``); ``metric_name`` and
``higher_is_better`` name it there, and must agree with a metric the sweep recorded (its
values are that metric: a contradicting name or direction is refused with ValueError).

matplotlib is imported only when a figure is drawn (the Agg backend when none is chosen).
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import functools
import html
import io
import json
import math
import re
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .._files import NEW_FILE, mkdir_failure, write_atomically
from .._table import count as _count
from .._table import listed, one_line, text_table, visible
from .analysis import (
    CONFIDENCE,
    CRITERION,
    OptimizerSummary,
    fixed_line,
    grids_of,
    rank,
    summarize,
    variant_label,
    within_rounding,
)
from .store import TERMINAL, Run, RunStore, check_store
from .store.server import masked_url
from .sweep import (
    LR_BOUNDS,
    MAX_EXTENSIONS,
    auto_lrs,
    default_eval_every,
    rates_past_edge,
    run_records,
)
from .trainer import TrainConfig

__all__ = ["write_report", "sweep_heading", "sweep_options", "summary_table", "summary_rows",
           "summary_notes", "summary_parts", "quoted_error", "list_sweeps", "resolve_metric",
           "TASK_METRICS", "RESULT_COLUMNS", "METRIC_RANGES", "mean_text", "mean_digits",
           "thin_indices", "CURVE_POINTS", "CURVE_METRICS", "read_sweep"]

#: The metric of each built-in task: (name, higher is better).
TASK_METRICS: dict[str, tuple[str, bool]] = {
    "digits": ("accuracy", True),
    "mnist1d": ("accuracy", True),
    "sparse-logreg": ("accuracy", True),
    "mnist": ("accuracy", True),
    "fashion-mnist": ("accuracy", True),
    "char-rnn": ("bits_per_char", False),
    "quadratic-deep": ("loss", False),
}

_DIRECTION = {"accuracy": True, "loss": False, "bits_per_char": False}

#: The first columns of ``results.csv``; hyperparameters other than lr follow.
RESULT_COLUMNS = ("run_id", "optimizer", "lr", "seed", "status", "final_train_loss",
                  "final_test_loss", "final_metric", "score", "steps_to_target",
                  "gradients_to_target", "cost_to_target", "time_to_target", "wall_time")

_FILES = {"results": "results.csv", "curves": "curves.png",
          "lr_sensitivity": "lr_sensitivity.png", "report": "report.html"}
_DPI = 110
_DASH = "—"

#: the summary columns that read the way to the target, as :func:`summary_rows` keys them
#: (the tour adds "to target" itself); the report page and :func:`summary_table` say it
_TO_TARGET = ("gradient evals", "cost (calibrated)", "wall time")

#: the ``results.csv`` columns that count (written as whole numbers where they are)
_COUNTS = ("seed", "steps_to_target", "gradients_to_target", "cost_rounds")

#: the ``results.csv`` columns in seconds (the report page's "All runs" says so)
_SECONDS = ("cost_to_target", "time_to_target", "wall_time")

#: the range of a bounded metric, where a confidence interval can run past it
METRIC_RANGES: dict[str, tuple[float, float]] = {"accuracy": (0.0, 1.0)}


# ----------------------------------------------------------------------------- the data


def _task_key(task: Any) -> str | None:
    if isinstance(task, dict):
        task = task.get("name")
    if not isinstance(task, str):
        return None
    return task.strip().lower().replace("_", "-").replace(" ", "-")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _infer_metric(runs: Sequence[Run]) -> tuple[str, bool]:
    """The metric from finished runs' summaries (see the module docstring)."""
    pairs = [(r.summary.get("final_metric"), r.summary.get("final_test_loss"))
             for r in runs if r.status == "finished" and r.summary]
    pairs = [(m, t) for m, t in pairs if _finite(m) and _finite(t)]
    if not pairs:
        return "metric", True
    if all(m == t for m, t in pairs):
        return "loss", False
    if all(math.isclose(m, t / math.log(2), rel_tol=1e-4, abs_tol=1e-9) for m, t in pairs):
        return "bits_per_char", False
    if all(0.0 <= m <= 1.0 for m, _ in pairs):
        return "accuracy", True
    return "metric", True


def resolve_metric(store: RunStore, sweep_id: int, metric_name: str | None = None,
                   higher_is_better: bool | None = None) -> tuple[str, bool]:
    """``(metric name, higher is better)`` of a sweep: as recorded with the sweep, else as
    given, else from the task's name (:data:`TASK_METRICS`), else inferred from the runs'
    summaries, else ``("metric", True)``. A given name without a direction takes the
    direction of a known metric.

    The stored values are always the sweep's own metric, so a given name or direction that
    contradicts the one recorded with the sweep is refused; either may name or orient the
    metric of a sweep stored before it was recorded.

    Raises:
        KeyError: no sweep has this id.
        ValueError: ``metric_name`` or ``higher_is_better`` contradicts the recorded metric.
    """
    check_store(store, "resolve_metric")
    info = store.sweep(sweep_id)
    config = info["config"] or {}
    stored = config.get("metric")
    if isinstance(stored, dict) and "name" in stored:  # recorded by run_sweep
        name = stored["name"]
        higher = bool(stored.get("higher_is_better", True))
        # the name is the store's text: its control characters escaped (:func:`visible`)
        recorded = f"{visible(name)} ({'higher' if higher else 'lower'} is better)"
        if metric_name is not None and metric_name != name:
            raise ValueError(f"sweep {sweep_id} recorded its metric as {recorded}: its values "
                             f"cannot be read as {one_line(repr(metric_name), 80)} (leave the "
                             f"name out)")
        if higher_is_better is not None and "higher_is_better" in stored \
                and bool(higher_is_better) != higher:
            raise ValueError(f"sweep {sweep_id} recorded its metric as {recorded}: its values "
                             f"cannot be ranked {'higher' if higher_is_better else 'lower'} "
                             f"is better (leave the direction out)")
    elif metric_name is not None:  # sweeps stored before the metric was recorded
        name, higher = metric_name, _DIRECTION.get(metric_name, True)
    else:
        task = _task_key(config.get("task", info["task"]))
        if task in TASK_METRICS:
            name, higher = TASK_METRICS[task]
        else:
            name, higher = _infer_metric(store.list_runs(sweep_id))
    return name, higher if higher_is_better is None else bool(higher_is_better)


class _Sweep:
    """Everything the report needs of one sweep, read once, from one state of the store
    (:meth:`~.store.RunStore.snapshot`: a run that ends meanwhile is in every part of it or
    in none). What is read later (the curves' points) is of runs that had ended then, which
    are never written again."""

    def __init__(self, store: RunStore, sweep_id: int, metric_name: str | None,
                 higher_is_better: bool | None) -> None:
        check_store(store, "a sweep's report")
        with store.snapshot():
            self._read(store, sweep_id, metric_name, higher_is_better)

    def _read(self, store: RunStore, sweep_id: int, metric_name: str | None,
              higher_is_better: bool | None) -> None:
        self.store, self.id = store, sweep_id
        self.info = store.sweep(sweep_id)  # KeyError for an unknown id
        self.config = self.info["config"] or {}
        self.runs = store.list_runs(sweep_id)
        self.metric, self.higher = resolve_metric(store, sweep_id, metric_name,
                                                  higher_is_better)
        target = self.config.get("target")
        self.target = float(target) if _finite(target) else None
        records = [r for r in run_records(store, sweep_id, self.higher)  # ended runs only
                   if r["status"] in TERMINAL and _finite(r["lr"])]
        self.records = records  # (for pages that summarize them their own way)
        # each optimizer's grid, ended or not, so a stopped sweep does not call the highest
        # rate that ended the top of its grid
        self.grids = grids_of(self.runs)
        by_name = {s.optimizer: s for s in summarize(records, self.higher, self.grids)}
        names = [n for n in self.config.get("optimizers") or [] if isinstance(n, str)]
        names += [r.optimizer for r in self.runs if r.optimizer not in names]
        self.optimizers = list(dict.fromkeys(names))
        self.summaries: dict[str, OptimizerSummary | None] = {
            n: by_name.get(n) for n in self.optimizers}

    @property
    def variants(self) -> list[str]:
        """The optimizers with the hyperparameters the sweep fixed: ``"sgd (momentum=0.9)"``."""
        fixed = self.config.get("hparams") or {}
        return [variant_label(n, fixed.get(n)) for n in self.optimizers]

    def heading(self) -> str:
        """The sweep in one line, as ``optimlab bench`` first prints it: task, model,
        steps, the training options that differ from their defaults and ``extend`` where
        given (:func:`sweep_options`), and each optimizer's fixed hyperparameters."""
        task = self.info["task"] or str(self.config.get("task"))
        model = f"/{self.info['model']}" if self.info["model"] else ""
        steps = (self.config.get("train") or {}).get("steps")
        options = sweep_options(self.config)
        fixed = fixed_line(self.config.get("hparams"))
        # the store's text, printed: its control characters escaped (:func:`visible`)
        return visible(f"{task}{model}" + (f", {steps} steps" if steps else "")
                       + (f", {options}" if options else "") + (f"; {fixed}" if fixed else ""))

    def any_finished(self, name: str) -> bool:
        """Whether any run of ``name`` finished (not diverged, not failed)."""
        return any(r.optimizer == name and r.status == "finished" for r in self.runs)

    def best_lr(self, name: str) -> float | None:
        s = self.summaries.get(name)
        return s.best_lr if s is not None and math.isfinite(s.mean) else None

    @property
    def extends(self) -> bool:
        """Whether a best rate on the grid's edge extends this sweep's grid
        (:attr:`~.sweep.SweepSpec.extends`, as stored: ``extend`` is kept only where it
        departs from the default, an automatic grid extends and a given one does not); never
        for a sweep of listed members or the advisor's (its rungs, its answer)."""
        if "members" in self.config or "advisor" in self.config:
            return False
        return bool(self.config.get("extend", self.config.get("lrs") is None))

    def extension(self, name: str) -> list[float]:
        """The rates of ``name`` trained beyond the sweep's grid (the given one, or the
        automatic one): those an edge made the sweep add (:mod:`.sweep`), low to high; none
        for a sweep that does not extend (:attr:`extends`)."""
        grid = self.config.get("lrs")
        if not self.extends:
            return []
        if grid is None:
            try:
                grid = auto_lrs(name)
            except (KeyError, ValueError):  # an optimizer the registry no longer has
                return []
        tried = {r.hparams.get("lr") for r in self.runs if r.optimizer == name}
        return sorted(lr for lr in tried if _finite(lr)
                      and not any(math.isclose(lr, g, rel_tol=1e-9) for g in grid))

    def best_runs(self, name: str) -> list[Run]:
        """The ended runs of ``name`` at its best learning rate."""
        best = self.best_lr(name)
        return [r for r in self.runs if r.optimizer == name and r.status in TERMINAL
                and best is not None and r.hparams.get("lr") == best]

    def to_target(self, name: str) -> tuple[int, int, float, float, float, float]:
        """(runs that reached the target, runs, median steps, median gradient evaluations,
        median calibrated seconds, median wall seconds) at the best learning rate; a run
        that never reached it counts as infinitely slow, one that reached it and diverged
        later by its first reach, as profiles count it
        (:func:`~optimlab.bench.analysis.fastest_to_target`: AlgoPerf's time to result)."""
        runs = self.best_runs(name)
        columns: list[list[float]] = [[], [], [], []]
        for r in runs:
            s = r.summary or {}
            ok = _finite(s.get("steps_to_target"))
            for values, key in zip(columns, ("steps_to_target", "gradients_to_target",
                                             "cost_to_target", "time_to_target")):
                values.append(float(s[key]) if ok and _finite(s.get(key)) else math.inf)
        if not runs:
            return 0, 0, math.inf, math.inf, math.inf, math.inf
        reached = sum(math.isfinite(v) for v in columns[0])
        return (reached, len(runs), *(float(np.median(v)) for v in columns))

    def noisy_cost(self, name: str) -> bool:
        """Whether a run of ``name`` at its best rate took a calibrated step cost too noisy
        to rank by (:data:`optimlab.bench.cost.SPREAD_LIMIT`)."""
        return any((r.summary or {}).get("cost_noisy") for r in self.best_runs(name))

    @functools.cached_property
    def ranked(self) -> list[tuple[str, OptimizerSummary]]:
        """The optimizers with a result, best first, with ranks (``=1`` for ties); worked out
        once, for the table and its notes."""
        done = [s for s in self.summaries.values() if s is not None]
        return rank(done, self.higher)


# ----------------------------------------------------------------------------- text


def _num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if _finite(value) else _DASH


def _metric_label(metric: str) -> str:
    """A metric's name as a figure labels it: spaced, its control characters escaped (a
    store's text: matplotlib would warn of each as a missing glyph, printing it raw)."""
    return visible(metric.replace("_", " "))


def _sig(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant digits, trailing zeros kept (``0.4000`` beside
    ``0.3523``, not ``0.4``), without the bare point ``#`` formatting leaves (``1000``)."""
    text = f"{value:#.{digits}g}"
    return text.replace(".e", "e").removesuffix(".") if math.isfinite(value) else f"{value}"


def mean_text(mean: float, ci: float, seeds: int, digits: int = 4,
              bounds: tuple[float, float] | None = None) -> str:
    """A mean (``digits`` significant digits, trailing zeros kept) and its confidence
    interval (two), ``0.9000 ± 0.010``; where there is no interval, why in words:
    ``0.3700 (1 seed: no interval)``, ``0.9000 (2 seeds, all alike: no interval)``
    (:func:`~optimlab.bench.analysis.mean_ci`). Every mean of a table shows the same
    digits, so a column of them lines up, unless :func:`mean_digits` gives one more to
    keep means that differ apart.

    ``bounds``: the range of a bounded metric (:data:`METRIC_RANGES`, an accuracy's 0 to 1);
    an interval that runs past it is said with its ends clipped to the range,
    ``0.6250 ± 0.95 (clipped: 0 to 1)`` (the stored interval is unchanged)."""
    if math.isfinite(ci):
        text = f"{_sig(mean, digits)} ± {_sig(ci, 2)}"
        if bounds is not None and math.isfinite(mean) \
                and (mean - ci < bounds[0] or mean + ci > bounds[1]):
            low, high = max(mean - ci, bounds[0]), min(mean + ci, bounds[1])
            text += f" (clipped: {low:.3g} to {high:.3g})"
        return text
    why = "1 seed" if seeds == 1 else f"{seeds} seeds, all alike"
    return f"{_sig(mean, digits)} ({why}: no interval)"


def mean_digits(means: Sequence[float], digits: int = 4) -> list[int]:
    """The significant digits to print each of ``means`` with: ``digits``, more where two
    means that differ would print the same (two optimizers ranked apart, 0.1234 and 0.1234,
    from means 3e-6 apart), up to 17; means equal up to the rounding of float32 metrics
    (:data:`~optimlab.bench.analysis._ROUNDING`) print alike, as they are."""
    out = []
    for i, m in enumerate(means):
        d = digits
        others = [o for j, o in enumerate(means) if j != i and _finite(o) and _finite(m)
                  and not within_rounding(o, m)]
        while d < 17 and any(f"{o:.{d}g}" == f"{m:.{d}g}" for o in others):
            d += 1
        out.append(d)
    return out


def _spelled(headers: Sequence[str]) -> list[str]:
    """The summary's headers as the report page and :func:`summary_table` show them: the
    columns read at the target say so (``wall time to target``), as the tour's do."""
    return [f"{h} to target" if h in _TO_TARGET else h for h in headers]


def _summary_rows(sw: _Sweep) -> tuple[list[str], list[list[str]]]:
    level = f"{CONFIDENCE:.0%}"
    # the metric as the captions say it: "bits per char", not the identifier
    headers = ["rank", "optimizer", "best lr",
               f"{_metric_label(sw.metric)} (mean ± {level} CI)", "seeds", "diverged (any lr)"]
    if sw.target is not None:
        headers += ["reached target", f"steps to {sw.target:g}", "gradient evals",
                    "cost (calibrated)", "wall time"]
    rows = []
    done = {s.optimizer: label for label, s in sw.ranked}
    order = list(done) + [n for n in sw.optimizers if n not in done]
    shown = [s for _, s in sw.ranked if math.isfinite(s.mean)]
    digits = dict(zip((s.optimizer for s in shown), mean_digits([s.mean for s in shown])))
    for name in order:
        s = sw.summaries[name]
        if s is None:
            row = [_DASH, name, _DASH, "no run ended yet", "0", "0"]
            row += [_DASH] * (len(headers) - len(row))
            rows.append(row)
            continue
        ok = math.isfinite(s.mean)
        row = [done[name] if ok else _DASH, name, s.lr_text if ok else _DASH,
               mean_text(s.mean, s.ci, s.seeds, digits.get(name, 4),
                         METRIC_RANGES.get(sw.metric)) if ok else _DASH,
               str(s.seeds if ok else 0),
               str(s.diverged)]
        if sw.target is not None:
            reached, total, steps, grads, cost, wall = sw.to_target(name)
            if not total:
                row += [_DASH] * 5
            else:
                def shown(v, fmt):
                    return fmt(v) if math.isfinite(v) else "not reached"

                def derived(v, fmt):  # from the calibrated step cost, which may be missing
                    if not reached or not math.isfinite(steps):  # the median seed did not
                        return "not reached"
                    return fmt(v) if math.isfinite(v) else "not measured"
                noisy = " (noisy)" if sw.noisy_cost(name) else ""
                row += [f"{reached}/{total}", shown(steps, lambda v: f"{v:g}"),
                        derived(grads, lambda v: f"{v:g}"),
                        derived(cost, lambda v: f"{v:.3g} s{noisy}"),
                        shown(wall, lambda v: f"{v:.3g} s")]
        rows.append(row)
    return headers, rows


def _failures(sw: _Sweep) -> dict[tuple[str, str], int]:
    """The failed runs of a sweep, counted by optimizer and error."""
    failures: dict[tuple[str, str], int] = {}
    for r in sw.runs:
        if r.status == "failed":
            key = (r.optimizer, r.error or "no error recorded")
            failures[key] = failures.get(key, 0) + 1
    return failures


#: the longest error a summary note quotes (the report and the store keep all of it)
NOTE_ERROR_CHARS = 300


def quoted_error(error: str) -> str:
    """``error`` as a note quotes it: cut to :data:`NOTE_ERROR_CHARS` characters."""
    if len(error) <= NOTE_ERROR_CHARS:
        return error
    return error[:NOTE_ERROR_CHARS - 3] + "..."


def _advisor_answer(sw: _Sweep) -> str | None:
    """The note of a sweep that keeps ``optimlab advise``'s answer (one run standing for
    it): where its metric comes from, the final rung's seeds and interval, and the sweeps
    of its evidence; None for any other sweep."""
    advisor = sw.config.get("advisor")
    if not (isinstance(advisor, dict) and advisor.get("stage") == "answer"):
        return None
    summary = next((r.summary for r in sw.runs if isinstance(r.summary, dict)), None) or {}
    metric = summary.get("metric") if isinstance(summary.get("metric"), dict) else {}
    ids = [i for i in summary.get("sweep_ids") or [] if isinstance(i, int)]
    value, ci, seeds = metric.get("value"), metric.get("ci"), metric.get("seeds")
    told = ""
    if _finite(value) and isinstance(seeds, int):
        said = mean_text(float(value), float(ci) if _finite(ci) else math.inf, seeds,
                         bounds=METRIC_RANGES.get(sw.metric))
        told = (f": {said}"
                f" is the mean of the final rung's {seeds} seed{'s' if seeds != 1 else ''}")
    where = (f"; its evidence is in sweeps {', '.join(map(str, ids))}, the final rung in "
             f"sweep {ids[-1]} (`optimlab report {ids[-1]}` shows its seeds)") if ids else ""
    return (f"This sweep keeps `optimlab advise`'s answer as one run standing for it, so the "
            f"table shows one seed{told}{where}.")


def _common_seeds(summaries: Sequence[OptimizerSummary]) -> int:
    """The seeds every one of ``summaries`` has at its best rate: those a paired comparison
    of them is over (the fewest seeds of them where a summary does not say which)."""
    if all(s.per_seed for s in summaries):
        return len(set.intersection(*(set(s.per_seed) for s in summaries)))
    return min(s.seeds for s in summaries)


def _bound_past(s: OptimizerSummary, grid: Sequence[float] = ()) -> float | None:
    """The bound of :data:`~.sweep.LR_BOUNDS` that keeps an extension from passing the edge
    ``s``'s best rate sits on (:func:`~.sweep.rates_past_edge` finds no rate to add there),
    or None where an extension can pass it. ``grid``: every rate of the optimizer's grid
    (ended or not), whose spacing at the edge an extension takes; else the rates that
    ended."""
    lrs = sorted({float(lr) for lr in (*s.sensitivity, *grid) if _finite(lr) and lr > 0})
    if s.edge is None or len(lrs) < 2 or rates_past_edge(lrs, s.edge):
        return None
    return LR_BOUNDS[0] if s.edge == "low" else LR_BOUNDS[1]


def _edge_note(sw: _Sweep, tied: Sequence[OptimizerSummary], bound: float | None) -> str:
    """The note on best rates at the grid's edge, and what would try rates past it: the
    one wording of that advice (the command line's tables, the reports, the tour and the
    playground's Runs tab all take it from :func:`summary_notes`). ``tied``: the optimizers
    whose best rate sits on one edge, ``bound`` (:func:`_bound_past`) alike, named in one
    note (16 optimizers on the lowest rate got 16 notes alike).

    ``--extend`` and ``--lrs auto`` are part of a sweep's identity, so the same command
    with either is a new sweep that trains its whole grid (the stored runs are not
    reused), and the note says so; an extension never passes :data:`~.sweep.LR_BOUNDS`,
    so at a bound the note names it instead of advising either; a sweep that extends
    already stopped extending (:data:`~.sweep.MAX_EXTENSIONS`), so there it advises a wider
    ``--lrs``."""
    low = tied[0].edge == "low"
    names, rates = listed([s.optimizer for s in tied]), [f"{s.best_lr:.3g}" for s in tied]
    # rates that differ: grids of their own (--lrs auto, an extension)
    best = (f"the best lr {rates[0]}" if len(set(rates)) == 1
            else f"the best lr of each ({listed(rates)} in that order)")
    head = (f"{names}: {best} is the {'lowest' if low else 'highest'} rate tried; "
            f"{'the optimum' if len(tied) == 1 else 'their optima'} may lie outside the grid")
    more = "lower" if low else "higher"
    if bound is not None:
        return (f"{head}, but the grid cannot be extended past {bound:g}, the "
                f"{'lowest' if bound == LR_BOUNDS[0] else 'highest'} rate an extension tries "
                f"(--extend and --lrs auto extend a grid within {LR_BOUNDS[0]:g}..{LR_BOUNDS[1]:g} only); "
                f"to try {more} rates, list them in --lrs (a new sweep, which trains its "
                "whole grid).")
    if sw.extends:
        return (f"{head}; this sweep extends its grid past an edge at most {MAX_EXTENSIONS} "
                f"times, two rates each: to try {more} rates, widen --lrs (a new sweep, which "
                "trains its whole grid).")
    return (f"{head}. Widen --lrs, or pass --extend or use --lrs auto to extend the grid past "
            "an edge: each runs a new sweep that trains its whole grid again (the stored runs "
            "are not reused).")


def summary_notes(sw_or_store, sweep_id: int | None = None, failures: bool = True) -> list[str]:
    """What a reader needs under the summary table: how the rate was chosen, which
    optimizers cannot be told apart, which best rates sit on the grid's edge, what the
    time columns mean, and (with ``failures``) which runs failed and with what error, since
    the ``diverged`` column counts them too."""
    sw = sw_or_store if isinstance(sw_or_store, _Sweep) else \
        _Sweep(sw_or_store, sweep_id, None, None)
    notes = [f"Best lr: {CRITERION} (a rate that spikes late cannot win); the metric shown "
             f"is the final one there, with its {CONFIDENCE:.0%} confidence interval over "
             "seeds (Student's t). The rate was chosen on these same seeds, which the "
             "interval does not allow for: it is optimistic, more so for a larger grid "
             "(`optimlab advise` measures its pick on fresh seeds)."]
    open_runs = sum(run.status not in TERMINAL for run in sw.runs)
    if open_runs:  # stopped (or still training): the table holds the runs that ended
        notes.insert(0, f"Unfinished: {open_runs} of {_count(len(sw.runs), 'run')} "
                        f"{'has' if open_runs == 1 else 'have'} not ended (the "
                        "sweep was stopped, or is training now). The table ranks the runs "
                        "that ended and each best lr is the best of the rates that ended, so "
                        "an edge of the grid may not be flagged; the same `optimlab bench` "
                        "command with --resume finishes it.")
    if failures:
        for (optimizer, error), n in _failures(sw).items():
            notes.append(f"{optimizer}: {n} run{'s' if n > 1 else ''} failed (counted under "
                         f"diverged): {quoted_error(error)}")
    # only optimizers with a rank: those without a finite mean (every rate lost a seed)
    # share the bottom of rank()'s list, and the table shows them unranked
    ranked = [(label, s) for label, s in sw.ranked if math.isfinite(s.mean)]
    groups: dict[str, list[OptimizerSummary]] = {}
    for label, s in ranked:
        groups.setdefault(label, []).append(s)
    seeds = max((s.seeds for _, s in ranked), default=0)
    for label, tied in groups.items():
        if len(tied) < 2:
            continue
        # an optimizer with one seed ended (an unfinished sweep) cannot be compared with
        # any other: said of it alone, not of the others, which were compared among them
        short = [s for s in tied if _common_seeds([s]) < 2]
        if short and len(short) < len(tied):
            one = len(short) == 1
            notes.append(f"{listed([s.optimizer for s in short])} "
                         f"{'has' if one else 'have'} fewer than 2 seeds ended at "
                         f"{'its' if one else 'their'} best rate: no comparison with "
                         f"{'it' if one else 'them'} is possible, so {'it shares' if one else 'they share'} "
                         f"rank {label.lstrip('=')}.")
            tied = [s for s in tied if s not in short]
            if len(tied) < 2:
                continue
        common = _common_seeds(tied)
        names = listed([s.optimizer for s in tied])
        if common < 2:  # nothing to compare: one seed (or none) in common
            notes.append(f"{names} share rank {label.lstrip('=')}: with "
                         f"{_count(common, 'seed')} in common no comparison is possible.")
            continue
        how = ("paired comparisons over the same seeds, "
               f"{CONFIDENCE:.0%} familywise, Holm" if len(ranked) > 2 else
               f"paired comparison over the same seeds, {CONFIDENCE:.0%}")
        notes.append(f"{names} cannot be told apart at {_count(common, 'seed')} in common "
                     f"({how}): they share rank {label.lstrip('=')}.")
    bounds = METRIC_RANGES.get(sw.metric)
    if bounds is not None and any(math.isfinite(s.mean) and math.isfinite(s.ci)
                                  and (s.mean - s.ci < bounds[0] or s.mean + s.ci > bounds[1])
                                  for _, s in ranked):
        notes.append(f"An interval marked (clipped: ...) runs past the {bounds[0]:g} to "
                     f"{bounds[1]:g} range of the {_metric_label(sw.metric)}: its ends are "
                     "shown clipped to the range; an interval that wide (few seeds, or seeds "
                     "far apart) tells little.")
    answer = _advisor_answer(sw)
    if answer is not None:
        notes.append(answer)
    elif seeds < 2 and ranked:
        notes.append("One seed: no confidence interval, so the ranking is not evidence of a "
                     "difference.")
    for name in sw.optimizers:
        if sw.best_lr(name) is None and sw.any_finished(name):
            notes.append(f"{name}: no rate where every seed finished (a diverged seed counts "
                         "as the worst value), so no best rate and no rank; the lr-sensitivity "
                         "plot shows the seeds that finished.")
    # every run that ended diverged or failed: a row of dashes and "seeds 0" said nothing of
    # why (a smaller rate may train)
    lost = [name for name in sw.optimizers if sw.best_lr(name) is None
            and sw.summaries.get(name) is not None and not sw.any_finished(name)]
    if lost:
        ended = ", ".join(_count(sum(r.optimizer == name and r.status in TERMINAL
                                     for r in sw.runs), "run") + f" of {name}" for name in lost)
        notes.append(f"{listed(lost)}: every run that ended diverged or failed ({ended}), "
                     "so no best rate, no metric and no rank (seeds counts those that finished "
                     "at the best rate: none); smaller rates may train.")
    # one note an edge (and bound): the optimizers on it named together, in rank order
    edges: dict[tuple[str, float | None], list[OptimizerSummary]] = {}
    for _, s in sw.ranked:
        extra = sw.extension(s.optimizer)
        if extra:
            notes.append(f"{s.optimizer}: a best rate on the grid's edge extended the grid, "
                         f"so {', '.join(f'{lr:.3g}' for lr in extra)} were tried too.")
        if s.edge and math.isfinite(s.mean):
            bound = _bound_past(s, sw.grids.get(s.optimizer, ()))
            edges.setdefault((s.edge, bound), []).append(s)
    notes += [_edge_note(sw, tied, bound) for (_, bound), tied in edges.items()]
    if sw.target is not None:
        every = (sw.config.get("train") or {}).get("eval_every")
        read = (f"read at the evaluations, every {every} steps (a count is exact to {every} "
                f"steps; pass --eval-every 1 for exact counts)" if isinstance(every, int)
                and every > 1 else "exact for a seed")
        notes.append(f"To the target: steps and gradient evaluations are {read}; "
                     "cost is steps x the optimizer's calibrated step cost (CPU time of one "
                     "training step, measured once per machine and model), the figure the "
                     "profiles rank by; wall time is the elapsed time of the run's training "
                     "call (the runs of one population share it; with --sequential a run "
                     "has its own), depends on the machine's load and is shown for "
                     "information only. A run that reached the target and diverged later "
                     "counts the first time it reached it (AlgoPerf's time to result).")
        noisy = [name for name in sw.optimizers if sw.noisy_cost(name)]
        if noisy:
            notes.append(f"A cost marked (noisy), {', '.join(noisy)}'s, came from a calibration "
                         "whose rounds spread too far (interquartile range over half the "
                         "median: L-BFGS converging on its batch, or a machine busy in bursts); "
                         "profiles compare gradient evaluations rather than rank by it "
                         "(--recalibrate measures again).")
    return notes


def summary_parts(store: RunStore, sweep_id: int) -> tuple[list[str], list[list[str]],
                                                            list[str]]:
    """The summary's headers, rows and notes (:func:`summary_rows`, :func:`summary_notes`)
    from one read of the sweep, for pages that lay them out themselves (the headers keyed
    as :func:`summary_rows` keys them)."""
    sw = _Sweep(store, sweep_id, None, None)
    return (*_summary_rows(sw), summary_notes(sw))


def summary_rows(store: RunStore, sweep_id: int, metric_name: str | None = None,
                 higher_is_better: bool | None = None) -> tuple[list[str], list[list[str]]]:
    """The summary of a sweep as headers and rows (for HTML pages): see
    :func:`summary_table`. The columns read at the target are keyed short, ``gradient
    evals``, ``cost (calibrated)``, ``wall time`` (with ``steps to <target>``), for pages
    that head them themselves; :func:`summary_table` and the report page say "to target"
    on them (``wall time to target``)."""
    return _summary_rows(_Sweep(store, sweep_id, metric_name, higher_is_better))


def summary_table(store: RunStore, sweep_id: int | None = None, metric_name: str | None = None,
                  higher_is_better: bool | None = None) -> str:
    """The summary of a sweep as a text table, best first, one row per optimizer: its rank
    (``=2`` where a paired comparison over seeds cannot tell it from its neighbour), its
    best learning rate (flagged on a grid edge), the final test metric there (mean and
    95% confidence interval over seeds), the seeds behind it, its diverged (or failed)
    runs over all rates, and, when the sweep has a target, how many seeds reached it and
    the median steps, gradient evaluations, calibrated cost and wall time they took
    (``wall time to target``); then the notes of :func:`summary_notes`.

    Raises:
        KeyError: no sweep has this id.
        ValueError: ``metric_name`` or ``higher_is_better`` contradicts the metric recorded
            with the sweep (:func:`resolve_metric`).
        TypeError: ``store`` is not a :class:`RunStore`.

    ``store`` may be a sweep already read (:func:`read_sweep`, as :func:`summary_notes`
    takes one), for a page that shows more of it than the table (the sweep is then read
    once).
    """
    sw = store if isinstance(store, _Sweep) else \
        _Sweep(store, sweep_id, metric_name, higher_is_better)
    headers, rows = _summary_rows(sw)
    # the notes quote the store's text (names, errors): control characters escaped, as the
    # table's cells are (:func:`visible`)
    return text_table(_spelled(headers), rows) + "\n" + "\n".join(
        f"  * {visible(note)}" for note in summary_notes(sw))


def _created(value: Any) -> str:
    try:
        ts = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def read_sweep(store: RunStore, sweep_id: int, metric_name: str | None = None,
               higher_is_better: bool | None = None):
    """Sweep ``sweep_id`` read once (its runs, metric, ended runs' records and grids), for a
    caller that shows several parts of it: :func:`sweep_heading`, :func:`summary_table` and
    :func:`summary_notes` take it in place of ``store`` and read nothing again. Raises as
    :func:`summary_table` does."""
    return _Sweep(store, sweep_id, metric_name, higher_is_better)


def sweep_heading(store: RunStore, sweep_id: int | None = None) -> str:
    """Sweep ``sweep_id`` in one line (:meth:`_Sweep.heading`): ``"digits, 20 steps; sgd
    with momentum=0.9"``; ``store`` may be a sweep already read (:func:`read_sweep`)."""
    sw = store if isinstance(store, _Sweep) else _Sweep(store, sweep_id, None, None)
    return sw.heading()


def list_sweeps(store: RunStore, optimizers_width: int | None = None) -> str:
    """The sweeps of ``store`` as a text table: id, name (where any sweep has one), task,
    model, when created, runs finished out of all (with the diverged, failed and unfinished
    ones noted), and the optimizers. With ``optimizers_width`` each optimizers cell keeps
    the names that fit in that many characters and says how many more
    (``sgd,adam,adamw,... (+39)``, :func:`shortened`), and a last line says where every one
    is listed."""
    check_store(store, "list_sweeps")
    with store.snapshot():  # every sweep's counts from one state of the store
        return _list_sweeps(store, optimizers_width)


def shortened(names: list[str], width: int) -> str:
    """``names`` joined by commas, cut to the first ones that fit in ``width`` characters
    with how many more: ``sgd,adam,... (+3)`` (at least one name is kept, however long).

    >>> shortened(["sgd", "adam", "adamw", "lion", "rmsprop"], 20)
    'sgd,adam,... (+3)'
    >>> shortened(["sgd", "adam"], 20)
    'sgd,adam'
    """
    shown: list[str] = []
    for name in names:
        more = len(names) - len(shown) - 1
        tail = f",... (+{more})" if more else ""
        if shown and len(",".join([*shown, name]) + tail) > width:
            break
        shown.append(name)
    left = len(names) - len(shown)
    return ",".join(shown) + (f",... (+{left})" if left else "")


def _list_sweeps(store: RunStore, optimizers_width: int | None = None) -> str:
    rows, cut = [], False
    for sweep_id, name, task, model, created, config in store.con.execute(
            "SELECT id, name, task, model, created_at, config FROM sweeps ORDER BY id"):
        counts = store.sweep(sweep_id)["counts"]
        total = sum(counts.values())
        notes = [f"{counts[k]} {k}" for k in ("diverged", "failed") if counts[k]]
        open_ = counts["pending"] + counts["running"]
        if open_:
            notes.append(f"{open_} to run")
        config = json.loads(config) or {}
        fixed = config.get("hparams") or {}
        labels = [variant_label(str(o), fixed.get(o)) for o in config.get("optimizers") or []]
        cell = ",".join(labels) if optimizers_width is None else shortened(labels, optimizers_width)
        cut = cut or cell != ",".join(labels)
        rows.append([str(sweep_id), name or "", task or "", model or "default",
                     _created(created), _setup(config, store.rates(sweep_id)),
                     f"{counts['finished']}/{total}"
                     + (f" ({', '.join(notes)})" if notes else ""), cell])
    if not rows:
        return f"no sweeps in {store.path}"
    headers = ["id", "name", "task", "model", "created", "setup", "runs finished", "optimizers"]
    if not any(row[1] for row in rows):  # no sweep named: no empty column
        headers, rows = headers[:1] + headers[2:], [row[:1] + row[2:] for row in rows]
    table = text_table(headers, rows)
    if cut:
        table += "\n(+N): N more optimizers; `optimlab report SWEEP_ID` lists every one"
    return table


#: the training options said apart: steps and batch size first, the model in its own column
_SAID_APART = ("steps", "batch_size", "model")


def _option_value(value: Any) -> str:
    return f"{value:g}" if _finite(value) else str(value)


def sweep_options(config: dict) -> str:
    """The training options of a stored sweep ``config`` that differ from their defaults,
    ``"schedule=cosine, clip_norm=1, averaging=ema"``, then ``extend`` (``no extend``)
    where the sweep's ``extend`` departs from its default; ``""`` for none. The defaults
    are :class:`~.trainer.TrainConfig`'s, except the evaluation cadence's:
    ``optimlab bench``'s (:func:`default_eval_every`). Steps, batch size and model are said
    apart (:func:`list_sweeps`, :meth:`_Sweep.heading`); what a stored config lacks is
    left out."""
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    steps = train.get("steps")
    parts = []
    for option in dataclasses.fields(TrainConfig):
        if option.name in _SAID_APART or option.name not in train:
            continue
        default = option.default
        if option.name == "eval_every" and isinstance(steps, int) and steps >= 1:
            default = default_eval_every(steps)
        value = train[option.name]
        if value != default:
            parts.append(f"{option.name}={_option_value(value)}")
    extend = config.get("extend")
    if isinstance(extend, bool) and "members" not in config and "advisor" not in config:
        parts.append("extend" if extend else "no extend")
    return ", ".join(parts)


def _setup(config: dict, tried: Sequence[float] = ()) -> str:
    """What tells apart sweeps of one task and model in :func:`list_sweeps`: steps, batch
    size, the rates (how many, from and to; "auto" for each optimizer's own grid), seeds,
    target, and the training options and ``extend`` that differ from their defaults
    (:func:`sweep_options`), as stored (``"300 steps, batch 100, 16 lrs 1e-04..0.1, 4 seeds,
    target 0.5, schedule=cosine"``); what a stored config lacks is left out. ``tried``, the
    rates of the sweep's runs (:meth:`RunStore.rates`), tells a given grid extended past its
    edges: ``"2 lrs 0.0001..0.001, extended to 0.0001..10 (6 lrs)"``."""
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    parts = []
    steps, batch = train.get("steps"), train.get("batch_size")
    if isinstance(steps, int):
        parts.append(f"{steps} steps")
    if "batch_size" in train:
        parts.append("full batch" if batch is None else f"batch {batch}")
    lrs = config.get("lrs")
    if isinstance(lrs, list) and lrs and all(_finite(lr) for lr in lrs):
        low, high = min(lrs), max(lrs)
        parts.append(f"lr {low:.3g}" if len(lrs) == 1 else f"{len(lrs)} lrs {low:.3g}..{high:.3g}")
        rates = sorted({*lrs, *(lr for lr in tried if _finite(lr) and lr > 0)})
        if len(rates) > len(set(lrs)):  # the grid was extended past an edge
            parts[-1] += f", extended to {rates[0]:.3g}..{rates[-1]:.3g} ({len(rates)} lrs)"
    elif "lrs" in config and lrs is None and not isinstance(config.get("advisor"), dict):
        parts.append("auto lrs")
    seeds = config.get("seeds")
    if isinstance(seeds, int):
        parts.append(f"{seeds} seed{'s' if seeds != 1 else ''}")
    if _finite(config.get("target")):
        parts.append(f"target {config['target']:.3g}")
    options = sweep_options(config)
    if options:
        parts.append(options)
    return ", ".join(parts)


# ----------------------------------------------------------------------------- csv


def _cell(value: Any, count: bool = False) -> Any:
    """A value as ``results.csv`` writes it: missing (None) or not finite (a diverged run's
    NaN loss) as an empty cell, a whole-number ``count`` as an integer (``12``, not
    ``12.0``), a dict or list as JSON."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if count and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


#: What begins a cell that a spreadsheet runs as a formula (OWASP's list for CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


#: text that is a plain number (``-0.5``, ``+1e-3``): a spreadsheet reads it as one, no formula
_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _csv_text(value: Any) -> Any:
    """``value`` as ``results.csv`` writes it: text that a spreadsheet would run as a
    formula (``=HYPERLINK(...)`` as a stored optimizer's name) after a ``'``, which the
    spreadsheet shows as the text itself; anything else (numbers, and text that is a plain
    number such as ``"-0.5"``) as it is."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS) \
            and not _NUMBER_TEXT.fullmatch(value):
        return "'" + value
    return value


def _result_rows(sw: _Sweep) -> tuple[list[str], list[list[Any]]]:
    base = list(RESULT_COLUMNS)
    hparams = list(dict.fromkeys(k for r in sw.runs for k in r.hparams if k != "lr"))
    extra = list(dict.fromkeys(k for r in sw.runs for k in (r.summary or {})
                               if k not in base))
    hp_columns = [k if k not in base and k not in extra and k != "error" else f"hp_{k}"
                  for k in hparams]
    columns = base + hp_columns + extra + ["error"]
    rows = []
    for r in sw.runs:
        s = r.summary or {}
        row = [r.id, r.optimizer, r.hparams.get("lr"), r.seed, r.status]
        row += [s.get(k) for k in base[5:]]
        row += [r.hparams.get(k) for k in hparams] + [s.get(k) for k in extra] + [r.error]
        rows.append([_cell(v, c in _COUNTS) for c, v in zip(columns, row)])
    return columns, rows


# ----------------------------------------------------------------------------- figures


#: Most points a report's curve is drawn with (one optimizer, one metric): as many as the
#: playground's races send (``optimlab.web.models.MAX_POINTS``), some per pixel of the plot.
CURVE_POINTS = 2001
#: The metrics the curves show (the report's figure, the playground's sweep page): the test
#: metric and the train loss; the other points stored are not read for them.
CURVE_METRICS = ("test_metric", "train_loss")


def thin_indices(n: int, most: int, *series) -> np.ndarray:
    """The indices (ascending) of the points to keep of a curve of ``n`` points to draw or
    send at most ``most`` of them: all of them where there are no more than ``most``; else
    the first and the last point and, in each of equal buckets of the points between them,
    the lowest and the highest point of every one of ``series`` (arrays of ``n`` values
    sharing the curve's steps; NaN ignored), so that a spike of a loss (or a dip of a
    metric) is kept, not stepped over or averaged away, and what a plot a few hundred pixels
    wide shows is unchanged. Without ``series`` (or with ``most`` too small for a bucket
    each) the points kept are evenly spaced.
    """
    if n <= most:
        return np.arange(n)
    if most < 2:
        return np.arange(min(most, 1)) * (n - 1)
    buckets = (most - 2) // (2 * len(series)) if series else 0
    if buckets < 1:
        return np.unique(np.linspace(0, n - 1, most).round().astype(np.int64))
    edges = np.linspace(1, n - 1, buckets + 1).round().astype(np.int64)
    keep = [np.array([0, n - 1])]
    for values in series:
        values = np.asarray(values, dtype=float)
        nan = np.isnan(values)
        low, high = np.where(nan, np.inf, values), np.where(nan, -np.inf, values)
        for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
            if b > a:
                keep.append(np.array([a + int(np.argmin(low[a:b])),
                                      a + int(np.argmax(high[a:b]))]))
    return np.unique(np.concatenate(keep))


def _pyplot():
    from ..landscapes.plots import _pyplot as pyplot

    return pyplot()


def _colors(names: Sequence[str]) -> dict[str, str]:
    # each optimizer's colour in every figure and on the playground: the catalog's palette
    from ..optim.palette import label_colors

    return label_colors(list(names))


def _markers(names: Sequence[str]) -> dict[str, str]:
    # and a marker each, so that a line is matched to its legend entry without its colour
    from ..optim.palette import label_markers

    return label_markers(list(names))


def _log_worthy(values: np.ndarray) -> bool:
    """Positive values spanning more than one and a half decades."""
    v = values[np.isfinite(values)]
    return v.size > 1 and bool((v > 0).all()) and v.max() / v.min() > 10 ** 1.5


def _seed_stats(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min, max over columns (seeds) of the finite entries; NaN where none is."""
    m = np.where(np.isfinite(matrix), matrix, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        return np.nanmean(m, axis=1), np.nanmin(m, axis=1), np.nanmax(m, axis=1)


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
    for minor in (False, True):
        ax.set_xticks([], minor=minor)
        ax.set_yticks([], minor=minor)


def _legend_size(labels: Sequence[str], fontsize: float) -> tuple[float, float]:
    """About how wide (one entry: its handle and its longest line of text) and how tall (one
    line) a legend entry of ``labels`` is at ``fontsize`` points, in inches: for choosing
    the legend's columns and the figure's size before matplotlib lays it out."""
    chars = max((len(line) for label in labels for line in label.split("\n")), default=0)
    em = fontsize / 72
    return 0.6 * em * chars + 3.5 * em, 1.75 * em


def _curves_figure(sw: _Sweep):
    plt = _pyplot()
    fig, (max_, lax) = plt.subplots(1, 2, figsize=(11.5, 4.6), layout="constrained")
    colors, markers = _colors(sw.optimizers), _markers(sw.optimizers)
    ids = {n: [r.id for r in sw.best_runs(n)] for n in sw.optimizers}
    drawn: dict[str, list[np.ndarray]] = {"test_metric": [], "train_loss": []}
    missing = []
    for name in sw.optimizers:
        if not ids[name]:
            missing.append(name)
            continue
        # the points of this optimizer's best runs, of the metrics drawn only (read one
        # optimizer at a time: long runs hold many)
        sub = sw.store.metric_points(ids[name], names=CURVE_METRICS)
        diverged = sum(r.status != "finished" for r in sw.best_runs(name))
        # the best rate as the table says it, its edge flagged: "0.1 (top of grid)"
        label = f"{name} (lr {sw.summaries[name].lr_text}, {_count(len(ids[name]), 'seed')}"
        label += f", {diverged} diverged)" if diverged else ")"
        for ax, metric in ((max_, "test_metric"), (lax, "train_loss")):
            wide = sub[sub["name"] == metric].pivot_table(
                index="step", columns="run_id", values="value", dropna=False, aggfunc="first")
            if wide.empty:
                continue
            steps = wide.index.to_numpy(dtype=float)
            mean, low, high = _seed_stats(wide.to_numpy(dtype=float))
            # at most CURVE_POINTS points (a plot this wide shows no more), spikes kept
            keep = thin_indices(len(steps), CURVE_POINTS, mean, low, high)
            steps, mean, low, high = steps[keep], mean[keep], low[keep], high[keep]
            ax.fill_between(steps, low, high, color=colors[name], alpha=0.2, linewidth=0)
            ax.plot(steps, mean, color=colors[name], linewidth=1.8, label=label,
                    marker=markers[name], markersize=4, markevery=max(1, len(steps) // 8),
                    gid=f"{metric}:{name}")
            drawn[metric] += [mean, low, high]
    titles = {"test_metric": f"test {_metric_label(sw.metric)}", "train_loss": "train loss"}
    for ax, metric in ((max_, "test_metric"), (lax, "train_loss")):
        if not drawn[metric]:
            _no_data(ax, "no run ended yet")
            ax.set_title(titles[metric])
            continue
        if (metric == "train_loss" or not sw.higher) and _log_worthy(np.concatenate(
                drawn[metric])):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(titles[metric])
        ax.set_title(titles[metric] + (" (higher is better)" if metric == "test_metric"
                                       and sw.higher else " (lower is better)"))
        ax.grid(True, alpha=0.3)
    if sw.target is not None and drawn["test_metric"]:
        max_.axhline(sw.target, color="0.3", linestyle="--", linewidth=1,
                     label=f"target {sw.target:g}")
    handles, labels = max_.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    for name in missing:
        handles.append(Line2D([], [], color=colors[name], linestyle=":"))
        ended = any(r.optimizer == name and r.status in TERMINAL for r in sw.runs)
        labels.append(f"{name}: " + ("no rate where every seed finished"
                                     if sw.any_finished(name) else
                                     "no run finished" if ended else "no run ended yet"))
    if handles:
        # as many columns as fit the figure's width, and the figure taller by each row past
        # the first, so that the axes keep their size however many optimizers there are
        from matplotlib.font_manager import FontProperties

        entry, line = _legend_size(labels, FontProperties(
            size=plt.rcParams["legend.fontsize"]).get_size_in_points())
        width, height = fig.get_size_inches()
        ncols = max(1, min(len(labels), int((width - 0.3) // entry)))
        rows = -(-len(labels) // ncols)
        fig.set_size_inches(width, height + (rows - 1) * line)
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False)
    fig.suptitle("each optimizer at its best learning rate: mean over seeds, band min to max")
    return fig


def _y_window(values: np.ndarray, log: bool, accuracy: bool) -> tuple[float, float]:
    """The y range (in log10 units when ``log``) around ``values``, at least a readable
    span wide, with a small margin."""
    v = np.log10(values[values > 0]) if log else values
    lo, hi = float(v.min()), float(v.max())
    min_span = 0.1 if accuracy else 0.3 if log else 0.2 * max(abs(lo), abs(hi)) or 1.0
    if hi - lo < min_span:
        center = (lo + hi) / 2
        lo, hi = center - min_span / 2, center + min_span / 2
        if accuracy and hi > 1.0:
            lo, hi = lo - (hi - 1.0), 1.0
    pad = 0.06 * (hi - lo)
    return lo - pad, hi + pad


def _sensitivity_figure(sw: _Sweep):
    plt = _pyplot()
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(8.5, 5.0), layout="constrained")
    colors, markers = _colors(sw.optimizers), _markers(sw.optimizers)
    ax.set_xscale("log")
    n = len(sw.optimizers)
    bad: list[tuple[str, float]] = []
    finite_values = []
    placed: list[float] = []  # every marker's x
    handles: list = []
    partial = False  # a rate some of whose seeds diverged or failed
    starred = False  # a best rate drawn (a star)
    for i, name in enumerate(sw.optimizers):
        dodge = 10 ** (0.03 * (i - (n - 1) / 2)) if n > 1 else 1.0  # side by side
        by_lr: dict[float, list[float]] = {}
        failed: dict[float, int] = {}  # lr -> its runs that diverged or failed
        for r in sw.runs:
            lr = r.hparams.get("lr")
            if r.optimizer != name or r.status not in TERMINAL or not _finite(lr):
                continue
            value = (r.summary or {}).get("final_metric")
            if r.status == "finished" and _finite(value):
                by_lr.setdefault(float(lr), []).append(float(value))
            else:
                by_lr.setdefault(float(lr), [])
                failed[float(lr)] = failed.get(float(lr), 0) + 1
                bad.append((name, float(lr) * dodge))
        xs = sorted(lr for lr, v in by_lr.items() if v)
        if not xs:
            handles.append(Line2D([], [], color=colors[name], linestyle=":",
                                  label=f"{name}: no run finished" if by_lr
                                  else f"{name}: no run ended yet"))
            continue
        placed += [lr * dodge for lr in xs]
        means = np.array([np.mean(by_lr[lr]) for lr in xs])
        stds = np.array([np.std(by_lr[lr], ddof=1) if len(by_lr[lr]) > 1 else 0.0
                         for lr in xs])
        best = sw.best_lr(name)
        star = best is not None and bool(by_lr.get(best))
        # one legend entry an optimizer: its line, and its best rate where a star marks it
        handles.append(ax.errorbar(np.array(xs) * dodge, means, yerr=stds, color=colors[name],
                                   marker=markers[name], markersize=5, capsize=3, linewidth=1.5,
                                   label=f"{name}: best lr {sw.summaries[name].lr_text}"
                                   if star else name, gid=f"sensitivity:{name}"))
        # a rate where some seeds diverged or failed: its point is the mean of the others,
        # which alone would flatter it; drawn hollow, with how many of its seeds it holds
        for lr, mean in zip(xs, means):
            if failed.get(lr):
                total = len(by_lr[lr]) + failed[lr]
                ax.plot([lr * dodge], [mean], linestyle="none", marker=markers[name],
                        markersize=8,
                        markerfacecolor="white", markeredgecolor=colors[name],
                        markeredgewidth=1.5, zorder=3, gid=f"partial:{name}")
                ax.annotate(f"{len(by_lr[lr])}/{total}", (lr * dodge, mean),
                            textcoords="offset points", xytext=(5, 5), fontsize=8,
                            color=colors[name], gid=f"partial-count:{name}")
                partial = True
        finite_values += [means - stds, means, means + stds]
        if star:
            ax.plot([best * dodge], [np.mean(by_lr[best])], linestyle="none",
                    marker="*", markersize=16, color=colors[name],
                    markeredgecolor="black", markeredgewidth=0.8, zorder=4,
                    label=f"{name}: best lr {sw.summaries[name].lr_text}", gid=f"best:{name}")
            starred = True
    if starred:
        handles.append(Line2D([], [], color="0.6", linestyle="none", marker="*", markersize=12,
                              markeredgecolor="black", markeredgewidth=0.8,
                              label="best lr (colour of its optimizer)"))
    if partial:
        handles.append(Line2D([], [], color="0.3", linestyle="none", marker="o", markersize=8,
                              markerfacecolor="white", markeredgewidth=1.5,
                              label="mean of the seeds that finished\n(k/n: k of its n seeds)"))
    placed += [x for _, x in bad]
    if placed and max(placed) < 10 * min(placed):
        # one rate (or a few close ones): a decade around them, where matplotlib would
        # warn of identical limits and widen the axis by a factor of its own
        center = math.sqrt(min(placed) * max(placed))
        ax.set_autoscalex_on(False)  # before the limits: autoscaling first is what warns
        ax.set_xlim(center / math.sqrt(10), center * math.sqrt(10))
    if not finite_values and not bad:
        _no_data(ax, "no run ended yet")
    else:
        values = np.concatenate(finite_values) if finite_values else np.array([])
        values = values[np.isfinite(values)]
        log = not sw.higher and _log_worthy(values)
        if values.size and log:
            ax.set_yscale("log")
        if values.size:
            lo, hi = _y_window(values, log, sw.metric == "accuracy")
        else:
            lo, hi = 0.0, 1.0
        strip = 0.14 * (hi - lo) if bad else 0.0  # an empty strip on the worst side
        lo, hi = (lo - strip, hi) if sw.higher else (lo, hi + strip)
        ax.set_ylim(*((10 ** lo, 10 ** hi) if log else (lo, hi)))
        if bad:  # in the strip, which is labelled as a y tick of its own
            from matplotlib.patches import Rectangle

            frac = strip / (hi - lo)
            line = frac if sw.higher else 1 - frac
            ax.add_patch(Rectangle((0, 0 if sw.higher else line), 1, frac,
                                   transform=ax.transAxes, facecolor="0.93", edgecolor="none",
                                   zorder=0))
            for name, x in bad:
                ax.plot([x], [frac / 2 if sw.higher else 1 - frac / 2],
                        transform=ax.get_xaxis_transform(), linestyle="none", marker="x",
                        markersize=9, markeredgewidth=2, color=colors[name], zorder=5,
                        gid=f"diverged:{name}")
            handles.append(Line2D([], [], color="0.3", linestyle="none", marker="x",
                                  markersize=8, markeredgewidth=2,
                                  label="diverged or failed run\n(colour of its optimizer)"))
            to_y = (lambda u: 10 ** u) if log else (lambda u: u)
            boundary = to_y(lo + strip if sw.higher else hi - strip)
            middle = to_y(lo + strip / 2 if sw.higher else hi - strip / 2)
            inside = (lambda t: t >= boundary) if sw.higher else (lambda t: t <= boundary)
            ticks = [t for t in ax.get_yticks() if inside(t)] if values.size else []
            labels = list(ax.yaxis.get_major_formatter().format_ticks(ticks)) if ticks else []
            minor = [t for t in ax.get_yticks(minor=True) if inside(t)]
            ax.set_yticks(ticks + [middle], labels=labels + ["diverged"])
            ax.set_yticks(minor, minor=True)
            ax.set_ylim(*((10 ** lo, 10 ** hi) if log else (lo, hi)))
        ax.grid(True, which="major", alpha=0.3)
        # beside the axes, in as many columns (up to 3) as its lines need to fit the
        # figure's height, which grows past that, so no entry runs off the figure
        labels = [h.get_label() for h in handles]
        entry, line = _legend_size(labels, 8)
        lines = sum(label.count("\n") + 1 for label in labels)
        width, height = fig.get_size_inches()
        fit = max(1, int((height - 0.4) // line))
        ncols = min(3, -(-lines // fit))
        fig.set_size_inches(width + (ncols - 1) * entry,
                            max(height, 0.4 + -(-lines // ncols) * line))
        fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False,
                   ncols=ncols)
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"final test {_metric_label(sw.metric)}")
    ax.set_title(f"final test {_metric_label(sw.metric)} against the learning rate\n"
                 f"mean ± std over seeds; {'higher' if sw.higher else 'lower'} is better",
                 fontsize=10)
    return fig


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    finally:
        _pyplot().close(fig)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- html

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 72em; padding: 0 1em; color: #222; overflow-wrap: break-word; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
/* the page never scrolls sideways: a wide table scrolls in its region (_html_table's label),
   a long word (a path, the sweep key) breaks */
.table-wrap { max-width: 100%; overflow-x: auto; }
.meta { color: #555; } .warn { color: #a33; }
"""


def _printable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode written as escapes, so a page holding it can
    be written and shows it readably: an undecodable byte of a path (``os.fsdecode`` made
    it a surrogate) as the byte, ``odd\\xff``; any other lone surrogate as ``\\udc00``."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no byte became
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _e(value: Any) -> str:
    """``value`` as the text of an HTML element: escaped, and printable (:func:`_printable`).
    Its quotes are kept (a ``<pre>`` of JSON reads as JSON): never put it in an attribute,
    where :func:`_attr` escapes them."""
    return html.escape(_printable(str(value)), quote=False)


def _attr(value: Any) -> str:
    """``value`` as the text of a double-quoted HTML attribute (an ``alt``): escaped with its
    quotes, so text of the store (a metric's name) cannot close the attribute and add its
    own (``onload``); printable (:func:`_printable`)."""
    return html.escape(_printable(str(value)), quote=True)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                numeric: Sequence[bool] | None = None, label: str | None = None) -> str:
    """A table of ``headers`` and ``rows`` (``numeric``: the columns aligned as numbers).
    ``label``: the table sits in a region of that name which scrolls sideways, focusable
    (its arrow keys scroll it), as the playground's tables do, so a table wider than a
    narrow screen (the report's 18 columns of every run) does not widen the page."""
    numeric = numeric or [False] * len(headers)
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{_e(c)}</td>' if num else f"<td>{_e(c)}</td>"
                         for c, num in zip(row, numeric)) + "</tr>\n"
        for row in rows)
    table = f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"
    if label is None:
        return table
    return (f'<div class="table-wrap" tabindex="0" role="region" aria-label="{_attr(label)}">'
            f"\n{table}\n</div>")


def _environment_rows(env: Any) -> list[list[str]]:
    if not isinstance(env, dict):
        return [["environment", "not recorded"]]
    rows = []
    for key, value in env.items():
        if key == "versions" and isinstance(value, dict):
            rows += [[f"{lib} version", "not installed" if v is None else str(v)]
                     for lib, v in value.items()]
        elif isinstance(value, (dict, list)):
            rows.append([key, json.dumps(value, sort_keys=True)])
        else:
            rows.append([key, "—" if value is None else str(value)])
    return rows


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


#: the report pages' Content-Security-Policy: they show text of the run store (anyone's, a
#: store someone sent), so the page runs no script and loads nothing, whatever that text
#: holds; it needs only its own <style> and inline style attributes, and its figures,
#: embedded as PNG data URIs. (Links to other files, href, are not fetches: they still work.)
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
       "form-action 'none'")


def page_head(title: str) -> list[str]:
    """The first lines of a report page: doctype, head with the Content-Security-Policy
    (:data:`CSP`) and the shared style, and the title as its heading (the sweep report's
    and the advisor's)."""
    return ["<!DOCTYPE html>", '<html lang="en">', '<head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            f"<title>{_e(title)}</title>", f"<style>{_CSS}</style></head>", "<body>",
            f"<h1>{_e(title)}</h1>"]


def _html(sw: _Sweep, pngs: dict[str, bytes], columns: list[str], rows: list[list[Any]],
          now: datetime, store_path: str | None = None) -> str:
    info = sw.info
    task = info["task"] or str(sw.config.get("task"))
    model = info["model"] or "default model"
    title = f"Sweep {sw.id}: {task} / {model}"
    if info["name"]:
        title += f" ({info['name']})"
    counts = info["counts"]
    count_text = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no runs"
    headers, summary = _summary_rows(sw)
    direction = "higher" if sw.higher else "lower"
    parts = [
        *page_head(title),
        f'<p class="meta">Optimizers {_e(", ".join(sw.variants) or "none")}; runs: '
        f"{_e(count_text)}. Sweep created {_e(_created(info['created_at']))}; report "
        f"written {_e(now.strftime('%Y-%m-%d %H:%M:%S UTC'))}.</p>",
        "<h2>Summary</h2>",
        f"<p>Final test {_e(_metric_label(sw.metric))} ({_e(direction)} is better) at each "
        "optimizer's best learning rate, mean with its 95% confidence interval over seeds; "
        "<em>diverged</em> counts the diverged or failed runs over all learning rates."
        + (f" The target is {_e(f'{sw.target:g}')}; a seed that never reached it counts as "
           "infinitely slow in the medians." if sw.target is not None else "") + "</p>",
        _html_table(_spelled(headers), summary,
                    [False, False] + [True] * (len(headers) - 2), label="summary"),
        "<ul class=\"notes\">" + "".join(f"<li>{_e(n)}</li>"
                                         for n in summary_notes(sw, failures=False))
        + "</ul>",
    ]
    failures = _failures(sw)  # in full, below the notes
    if failures:
        parts.append('<p class="warn">Failed runs:</p><ul>' + "".join(
            f"<li>{_e(opt)}: {n} run{'s' if n > 1 else ''}: <code>{_e(err)}</code></li>"
            for (opt, err), n in failures.items()) + "</ul>")
    parts += [
        "<h2>Learning curves</h2>",
        f'<img src="{_data_uri(pngs["curves"])}" alt="test {_attr(_metric_label(sw.metric))} '
        'and train loss against the step, each optimizer at its best learning rate">',
        "<h2>Learning-rate sensitivity</h2>",
        f'<img src="{_data_uri(pngs["lr_sensitivity"])}" alt="final test '
        f'{_attr(_metric_label(sw.metric))} against the learning rate, per optimizer">',
        f"<h2>All runs ({len(rows)})</h2>",
        f"<details><summary>every run, as in {_FILES['results']}</summary>",
        _html_table([f"{c} (s)" if c in _SECONDS else c for c in columns],
                    [[_DASH if c == "" else _num(c, 6) if isinstance(c, float) else c
                      for c in row] for row in rows],
                    [c not in ("optimizer", "status", "error") for c in columns], label="all runs"),
        "</details>",
        "<h2>Configuration</h2>",
        "<pre>" + _e(json.dumps(sw.config, indent=2, sort_keys=True, allow_nan=True))
        + "</pre>",
        "<h2>Environment</h2>",
        _html_table(["item", "value"], _environment_rows(info["environment"]),
                    label="environment"),
        f'<p class="meta">Store: {_e(masked_url(str(store_path or sw.store.path)))}, sweep key '
        f'{_e(info["key"])}.</p>',
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- writing


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (:func:`.write_atomically`): a full
    disk or an interrupt leaves the file that was there (a previous good report), never a
    truncated one."""
    try:
        write_atomically(path, data, mode=NEW_FILE)
    except OSError as err:
        raise OSError(f"cannot write {path}: {err.strerror or err}") from err


def write_report(store: RunStore, sweep_id: int, out_dir, metric_name: str | None = None,
                 higher_is_better: bool | None = None, *,
                 store_path: str | Path | None = None) -> dict[str, Path]:
    """Write ``results.csv``, ``curves.png``, ``lr_sensitivity.png`` and ``report.html``
    for the sweep ``sweep_id`` into ``out_dir`` (created if missing; files there with
    these names are replaced). Works on any sweep: runs still pending or running are
    listed but not summarized; diverged and failed runs are marked.

    ``store_path``: the store's path as the page names it, where that is not the path it was
    opened at (the tour builds its store in a staging folder and then moves it into place).

    Returns the paths by name: ``results``, ``curves``, ``lr_sensitivity``, ``report``.

    Raises:
        KeyError: no sweep has this id.
        ValueError: ``out_dir`` exists and is not a folder, or ``metric_name`` or
            ``higher_is_better`` contradicts the metric recorded with the sweep.
        TypeError: ``store`` is not a :class:`RunStore`.
        OSError: ``out_dir`` cannot be created or written (the message names it).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"the report folder {out_dir} exists and is not a folder")
    sw = _Sweep(store, sweep_id, metric_name, higher_is_better)  # before creating anything
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create the report folder {out_dir}: "
                      f"{mkdir_failure(out_dir, err)}") from err
    columns, rows = _result_rows(sw)
    paths = {key: out_dir / name for key, name in _FILES.items()}
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([_csv_text(c) for c in columns])
    writer.writerows([_csv_text(v) for v in row] for row in rows)
    pngs = {"curves": _png(_curves_figure(sw)),
            "lr_sensitivity": _png(_sensitivity_figure(sw))}
    page = _html(sw, pngs, columns, rows, datetime.now(timezone.utc),
                 None if store_path is None else str(store_path))
    _write(paths["results"], text.getvalue().encode("utf-8"))
    for key, png in pngs.items():
        _write(paths[key], png)
    _write(paths["report"], page.encode("utf-8"))
    return paths
