"""AlgoPerf-style performance profiles across sweeps (one sweep = one workload).

For every sweep, each optimizer's time to the sweep's target follows AlgoPerf's external
tuning ruleset (Dahl et al. 2023, "Benchmarking Neural Network Training Algorithms"): per
seed the fastest of its learning rates, then the median over seeds
(:func:`~optimlab.bench.analysis.fastest_to_target`, :data:`~.analysis.TIMING_RULE`; the
tables' tuning criterion, the rate that ends best, is not the one that reaches a target
first); the ratio to the best optimizer of that sweep gives the profile rho(tau) and the
score, the area under the step function rho over tau in [1, 4] over 3, integrated exactly.

A profile compares the same optimizers on every workload (Dolan & Moré 2002): an optimizer
that was not run in one of the sweeps, or none of whose runs ended there, is left out, and
:meth:`Profile.notes` says which and why (counting it as never reaching that sweep's target
would score it as a failure there).

An optimizer every ended run of which failed (raised) in a sweep is not left out: that is a
result of the optimizer on that workload, not a lack of one (Muon, which steps 2-D parameters
only, raises on a model with biases), and Dolan & Moré count a solver's failure on a problem
as a ratio beyond every other, as AlgoPerf does a submission that errors on a workload. So it
is scored as never reaching that sweep's target (ratio inf: 0 there), the table says
"failed" rather than "not reached", and a note quotes the error (:attr:`Profile.failed`).

The time is the robust one: steps to the target times the optimizer's calibrated step cost
(:mod:`optimlab.bench.cost`), so a busy machine gives the same profile as a quiet one. Only
the costs' measurement noise ties, never a difference in steps
(:func:`~.analysis.profile_ratios`), and each optimizer is compared with the fastest of its
workload directly (:func:`~.analysis.timed_against_fastest`): one whose step cost the
calibration cannot tell from the fastest's (they differ by at most a 95% Student's t bound
on the difference of their medians, about 2.2 of its standard errors at 15 rounds each,
:func:`~.analysis.costs_tie`) is timed at the fastest's
cost, so the two compare by their steps alone (the same steps tie; 15% more steps is 1.15
however noisy the calibration); any other by its own time; then each ratio is time / best
time, the best exactly 1 (Dolan & Moré; AlgoPerf). So measurement noise cannot reorder
optimizers that reach the target in the steps of the fastest, cannot hide a difference in
steps, and an optimizer's ratio does not depend on which other optimizers the workload has
(ties are not transitive: grouping costs that tie pairwise made it). Where a cell's ratio is
not its time over the workload's least time, a note under the table names the cell and
says why. A workload is timed in seconds only where
every optimizer compared there has a calibrated cost, none too noisy to rank by
(:data:`~.cost.SPREAD_LIMIT`: rounds that spread that far do not time one thing, and
neither their median nor its standard error can be trusted); with a cost too noisy it
compares gradient evaluations to the target (steps x the calibrated closure calls per step:
L-BFGS's 20 a step, SAM's 2), where an optimizer has no cost at all, steps, and a note says
which and why (an optimizer without a cost is never scored as not reaching). Wall time is
used only for sweeps stored before costs were recorded, and the table says so.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .._table import count as _count
from .._table import listed, one_line, text_table
from ..optim.base import ArgumentTypeError
from .analysis import (
    TIMING_RULE,
    fastest_to_target,
    finite_number,
    performance_profile,
    profile_ratios,
    ratio_score,
    timed_against_fastest,
    variant_label,
)
from .cost import SPREAD_LIMIT
from .store import RunStore, check_store
from .sweep import run_records

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Profile", "build_profile"]


@dataclass
class Profile:
    """Times to target per workload and optimizer, the profile and the scores."""

    times: dict[str, dict[str, float]]
    taus: np.ndarray
    rho: dict[str, np.ndarray]
    scores: dict[str, float]
    #: per workload: "cost" (steps x calibrated step cost), "gradients" (gradient
    #: evaluations: an optimizer compared there has a cost too noisy to rank by), "steps" (an
    #: optimizer compared there has no cost) or "wall" (an old sweep)
    basis: dict[str, str] | None = None
    #: optimizers left out of the profile -> the workloads that did not run them, or where
    #: none of their runs ended (those also in :attr:`not_finished`)
    left_out: dict[str, list[str]] = field(default_factory=dict)

    #: notes on single workloads (unfinished, read every few steps, met at the start)
    workload_notes: list[str] = field(default_factory=list)
    #: per workload, each optimizer's ratio to the best (time / best time, a time at the
    #: fastest's step cost where the calibrations cannot tell its own from it, so by steps
    #: against the fastest, :func:`~.analysis.profile_ratios`); None: time / best time
    ratios: dict[str, dict[str, float]] | None = None
    #: optimizers left out -> the workloads where they have runs, none of them ended
    not_finished: dict[str, list[str]] = field(default_factory=dict)
    #: per workload, the optimizers compared there every ended run of which failed (raised):
    #: scored as not reaching its target, shown as "failed" (the notes quote the error)
    failed: dict[str, list[str]] = field(default_factory=dict)

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """The table's headers and rows (see :meth:`table`)."""
        optimizers = sorted(self.rho)
        headers = ["workload"] + optimizers
        rows = []
        for workload, per in self.times.items():
            best = min(per.values())
            basis = (self.basis or {}).get(workload)
            unit = {"steps": " steps", "gradients": " gradients"}.get(basis or "", " s")
            ratios = (self.ratios or {}).get(workload) or {}
            failed = (self.failed or {}).get(workload) or ()
            rows.append([workload + {"wall": " (wall time)", "steps": " (steps)",
                                     "gradients": " (gradient evals)"}.get(
                basis or "", "")] + [
                "not run" if o not in per else
                "failed" if o in failed else
                "not reached" if not math.isfinite(per[o]) else
                f"{per[o]:.3g}{unit} ({_ratio(per[o], best, ratios.get(o))})"
                for o in optimizers])
        rows.append(["score (AlgoPerf)"] + [f"{self.scores[o]:.3f}" for o in optimizers])
        return headers, rows

    def notes(self) -> list[str]:
        """How a time to the target is taken (:data:`~.analysis.TIMING_RULE`), then one
        line per optimizer left out of the profile, with the workloads that did not run it
        or where none of its runs ended, then the notes on single workloads (among them,
        each optimizer all of whose runs failed there, with the error)."""
        out = [f"time to the target: {TIMING_RULE}"]
        for name, where in self.left_out.items():
            pending = [w for w in where if w in self.not_finished.get(name, ())]
            missing = [w for w in where if w not in pending]
            why = "; ".join(([f"not run in {', '.join(missing)}"] if missing else [])
                            + ([f"not finished in {', '.join(pending)}"] if pending else []))
            out.append(f"{name}: left out, {why} (a profile compares the optimizers run on "
                       f"every workload)")
        return out + self.workload_notes

    def table(self) -> str:
        """Seconds to target per workload (steps x calibrated step cost; gradient
        evaluations or steps where a workload is timed in those; the ratio to the best,
        1.00x for a tie), then the scores, then :meth:`notes`.

        A row per workload and a column per optimizer (:meth:`rows`) while that fits
        :data:`TABLE_WIDTH` characters; past it (ten optimizers take 195), a row per
        optimizer and a column per workload and for the score, where that is narrower: the
        table then grows down with the optimizers, not across."""
        headers, rows = self.rows()
        text = text_table(headers, rows)
        if _width(text) > TABLE_WIDTH:
            turned = text_table(["optimizer"] + [row[0] for row in rows],
                                [[name] + [row[i] for row in rows]
                                 for i, name in enumerate(headers[1:], 1)])
            if _width(turned) < _width(text):
                text = turned
        return "\n".join([text, *self.notes()])

    def plot(self) -> Figure:
        """rho(tau) for every optimizer (matplotlib figure)."""
        from ..landscapes.plots import _pyplot
        from ..optim.palette import label_colors, label_markers  # the catalog's colours

        plt = _pyplot()
        # the legend beside the axes, in as many columns of at most LEGEND_ROWS entries as
        # it takes, the figure widened (and heightened) for it: inside the axes, 42
        # optimizers' entries covered the curves and the title
        entries = len(self.rho)
        columns = max(1, math.ceil(entries / LEGEND_ROWS))
        per_column = math.ceil(entries / columns)
        fig, ax = plt.subplots(figsize=(6.5 + 2.6 * columns, max(4.2, 1.2 + 0.2 * per_column)),
                               layout="constrained")
        colors, markers = label_colors(list(self.rho)), label_markers(list(self.rho))
        for name, rho in self.rho.items():
            ax.step(self.taus, rho, where="post", color=colors[name], lw=2,
                    marker=markers[name], markersize=5, markevery=max(1, len(self.taus) // 8),
                    label=f"{name} (score {self.scores[name]:.3f})")
        # the axis names what the ratios divide: the calibrated cost where every workload
        # is timed by it (:attr:`basis`), another measure where all are, else "time"
        kinds, measure = set((self.basis or {}).values()), "time to target / best time"
        if len(kinds) == 1:
            measure = {"cost": "cost to target / best cost",
                       "wall": "wall time to target / best wall time",
                       "steps": "steps to target / fewest steps",
                       "gradients": "gradient evals to target / fewest"}.get(kinds.pop(), measure)
        elif kinds:
            measure += " (each workload in its row's measure)"
        ax.set(xlabel=f"tau: {measure}", ylabel="fraction of workloads",
               ylim=(-0.02, 1.02), xlim=(1, 4),
               title=f"performance profile over {_count(len(self.times), 'workload')}")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, ncol=columns,
                  fontsize="small" if entries > 10 else None)
        return fig


#: the widest :meth:`Profile.table` that keeps a column per optimizer (characters)
TABLE_WIDTH = 110
#: the most entries in one column of the profile plot's legend
LEGEND_ROWS = 22


def _width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _ratio(time: float, best: float, ratio: float | None = None) -> str:
    """``time`` over the workload's best, as the table shows it: the profile's ``ratio``
    where given (1.00x for a tie, by steps where the step costs cannot be told apart),
    else time / best (1.00x for the best, even when the target was met at the start)."""
    if ratio is not None:
        return f"{ratio:.2f}x" if math.isfinite(ratio) else "inf x"
    if time == best:
        return "1.00x"
    return f"{time / best:.2f}x" if best > 0 else "inf x"


def _basis(records: list[dict]) -> tuple[str, str | None, dict[str, float], dict[str, int]]:
    """How a workload's ``records`` (of the optimizers compared there) are timed: "cost",
    "gradients", "steps" or "wall", the note saying why where it is not "cost", and each
    optimizer's calibration spread and rounds (for ties, with "cost"; no rounds for runs
    stored before ``cost_rounds`` was: their ties keep the rule of the spreads,
    :func:`~.analysis.costs_tie`).

    A cost too noisy to rank by (:data:`~.cost.SPREAD_LIMIT`) falls back to the gradient
    evaluations to the target where every run that reached it stores them (steps x the
    calibrated closure calls per step, which the timing's noise does not touch: L-BFGS at
    20 a step, SAM at 2, are not credited as 1); to steps only where they are missing."""
    ended = [r for r in records if r["status"] != "failed"]  # failed runs have no summary
    uncosted = sorted({r["optimizer"] for r in ended if r.get("seconds_per_step") is None})
    if uncosted and len(uncosted) == len({r["optimizer"] for r in ended}):
        return "wall", None, {}, {}  # a sweep stored before costs were recorded
    noisy = {}
    for r in ended:
        spread = r.get("cost_spread")
        if r.get("cost_noisy") or (isinstance(spread, (int, float)) and spread > SPREAD_LIMIT):
            noisy[r["optimizer"]] = spread
    if uncosted:
        return "steps", (f"{', '.join(uncosted)} {'has' if len(uncosted) == 1 else 'have'} no "
                         f"calibrated step cost there, so it compares steps to the target"), {}, {}
    if noisy:
        said = ", ".join(f"{name} ({spread:.0%})" if isinstance(spread, (int, float)) else name
                         for name, spread in sorted(noisy.items()))
        counted = all(finite_number(r.get("gradients_to_target")) for r in ended
                      if finite_number(r.get("steps_to_target")))
        per_step = {}
        for r in ended:
            if finite_number(r.get("gradients_per_step")):
                per_step.setdefault(r["optimizer"], r["gradients_per_step"])
        if counted:
            each = ", ".join(f"{name} {n:g}" for name, n in sorted(per_step.items()))
            how = (f"gradient evaluations to the target (steps x the gradients a step "
                   f"evaluates: {each})") if each else "gradient evaluations to the target"
            basis = "gradients"
        else:
            how, basis = "steps to the target (its runs do not store their gradient evaluations)", \
                "steps"
        return basis, (f"the step cost of {said} was calibrated with a spread beyond "
                       f"{SPREAD_LIMIT:.0%} of it (too noisy to rank by), so it compares "
                       f"{how}"), {}, {}
    spreads: dict[str, float] = {}
    rounds: dict[str, int] = {}
    for r in ended:
        spread = r.get("cost_spread")
        if isinstance(spread, (int, float)) and math.isfinite(spread):
            spreads[r["optimizer"]] = max(spreads.get(r["optimizer"], 0.0), float(spread))
        n = r.get("cost_rounds")  # one calibration per optimizer and sweep: the fewest said
        if isinstance(n, int) and not isinstance(n, bool) and n >= 1:
            rounds[r["optimizer"]] = min(rounds.get(r["optimizer"], n), n)
    return "cost", None, spreads, rounds


#: how two step costs tie (:func:`~.analysis.costs_tie`), in words: where both
#: calibrations' rounds are known (2 or more), by the standard errors of their medians;
#: where one's are not, by their spreads. The notes (:func:`_within`) and the tour's
#: profile lead say it in these words, so neither can drift from the rule.
TIE_BY_ERRORS = "within a 95% Student's t bound on the difference of their medians"
TIE_BY_SPREADS = "within their measured spreads"


def _within(rounds: Mapping[str, int], *names: str) -> str:
    """How the calibrations of ``names`` could not tell their costs apart, in words."""
    if all(rounds.get(n, 0) >= 2 for n in names):
        return TIE_BY_ERRORS
    return TIE_BY_SPREADS


def _failed_note(label: str, name: str, records: list[dict]) -> str:
    """The note on optimizer ``name``, every ended run of which failed on workload
    ``label``: how many, and the error (the commonest where they differ: the sweep's report
    quotes every one), quoted as the bench's and report's notes quote it
    (:func:`~.report.quoted_error`)."""
    from .report import quoted_error

    errors: dict[str, int] = {}
    for r in records:
        error = r.get("error") or "no error recorded"
        errors[error] = errors.get(error, 0) + 1
    error, count = max(errors.items(), key=lambda item: item[1])
    n = len(records)
    which = "" if count == n else f", {count} of them with"  # the report quotes the others
    return (f"{label}: {name}: {n} run{'s' if n != 1 else ''} failed (scored as never reaching "
            f"the target there){which}: {quoted_error(error)}")


def _too_few(sweep_ids: Sequence[int], every: set[str], ran: dict[str, set[str]],
             pending: dict[str, set[str]]) -> str:
    """Why sweeps ``sweep_ids`` cannot be profiled: fewer than two optimizers (``every``)
    with ended runs in each of them. ``ran`` and ``pending`` give, per sweep ("sweep 3"),
    the optimizers with ended runs and those whose runs have none ended yet: an optimizer
    of the second kind has not finished there (resuming the sweep would bring it in), one
    missing from both was not run there."""
    common = f"only {next(iter(every))}" if every else "no optimizer"
    unfinished: dict[str, list[str]] = {}
    not_run: dict[str, list[str]] = {}
    others = sorted(set.union(*ran.values(), *pending.values()) - every)
    for where in ran:
        for name in others:
            if name in pending[where]:
                unfinished.setdefault(name, []).append(where)
            elif name not in ran[where]:
                not_run.setdefault(name, []).append(where)
    why = [f"{name} is not in {', '.join(where)}" for name, where in sorted(not_run.items())]
    why += [f"{name} has not finished in {', '.join(where)}: resume "
            f"{'it' if len(where) == 1 else 'them'} with --resume"
            for name, where in sorted(unfinished.items())]
    if len(ran) == 1:
        what = f"sweep {sweep_ids[0]} ran {common}" + (" so far" if unfinished else "")
    else:
        what = f"sweeps {', '.join(str(i) for i in sweep_ids)} have {common} in common"
    return (what + (f" ({'; '.join(why)})" if why else "")
            + ", and a performance profile compares the same two or more optimizers on every "
              "sweep")


def _tie_notes(label: str, per: Mapping[str, float], raw: Mapping[str, float],
               counts: Mapping[str, float], spreads: Mapping[str, float],
               rounds: Mapping[str, int]) -> list[str]:
    """The notes on workload ``label`` that name each cell whose ratio ``per`` is not its
    time ``raw`` over the least time, and why: a step cost the calibrations cannot tell
    from the fastest's (:func:`~.analysis.timed_against_fastest`) compares by steps, and
    where one such took fewer steps than the fastest, it is the best and every other ratio
    is over its steps x the fastest's cost."""
    fastest, tied, timed, best = timed_against_fastest(raw, counts, spreads, rounds)
    least = raw[fastest] if fastest is not None else math.inf
    if not tied or not 0 < least < math.inf:
        return []
    group = [fastest, *tied]

    def cell(o: str) -> str:
        return f"{o} ({per[o]:.2f}x, time {raw[o] / least:.2f}x)"

    def moved(o: str) -> bool:  # a ratio that is not its time over the least time
        return math.isfinite(per[o]) and not math.isclose(per[o], raw[o] / least,
                                                           rel_tol=1e-9)

    within = _within(rounds, *group)
    notes = []
    if best == fastest:
        # the same steps as the fastest, at a cost the calibrations cannot tell from its
        same = [o for o in tied if per[o] == 1.0 and raw[o] != least]
        if same:
            notes.append(f"{label}: {', '.join(same)} took no more steps to the target than "
                         f"the fastest, at a step cost the calibrations cannot tell from its "
                         f"({within}), so tied with it (ratio 1)")
        by_steps = [o for o in tied if o not in same and moved(o)]
    else:
        by_steps = [o for o in sorted(group) if moved(o)]
    if by_steps:
        others = [o for o in group if o != fastest]
        notes.append(f"{label}: {', '.join(cell(o) for o in by_steps)}: ratio by steps to the "
                     f"target, not by time: the calibrations cannot tell the step "
                     f"{'costs' if len(others) > 1 else 'cost'} of {listed(others)} "
                     f"from {fastest}'s, the fastest's ({within}), so "
                     f"{'each is' if len(others) > 1 else 'it is'} timed at {fastest}'s cost "
                     f"and only the steps tell {'them' if len(others) > 1 else 'the two'} "
                     f"apart")
    if best != fastest:
        rest = [o for o in sorted(per) if o not in group and moved(o)]
        if rest:
            notes.append(f"{label}: {', '.join(cell(o) for o in rest)}: ratio over "
                         f"{timed[best]:.3g} s, {best}'s {counts[best]:g} steps to the target "
                         f"at {fastest}'s step cost (the best: fewer steps than {fastest}, "
                         f"the fastest, at a cost the calibrations cannot tell from its), not "
                         f"over {fastest}'s {least:.3g} s")
    return notes


def build_profile(store: RunStore, sweep_ids: Sequence[int]) -> Profile:
    """The profile of the sweeps ``sweep_ids`` (each needs a target in its configuration)
    over the optimizers run in every one of them; the others are named in
    :attr:`Profile.left_out`. An optimizer every ended run of which failed in a sweep is
    scored there as never reaching the target (0), shown as "failed" and its error quoted
    in a note (:attr:`Profile.failed`; see the module docstring).

    Raises:
        ValueError: ``sweep_ids`` is not a list of sweep ids (a single id among others), no
            sweep, a sweep without a target, or fewer than two optimizers run in every
            sweep.
        TypeError: ``store`` is not a :class:`RunStore`.
        KeyError: no sweep has one of the ids.
    """
    check_store(store, "build_profile")
    if isinstance(sweep_ids, (str, bytes, Mapping)) or not isinstance(sweep_ids, Iterable):
        raise ArgumentTypeError(f"build_profile needs a list of sweep ids (such as [1, 2], or "
                                f"[1] for one sweep), not {one_line(repr(sweep_ids), 80)}")
    sweep_ids = list(sweep_ids)  # a generator is read once
    if not sweep_ids:
        raise ValueError("a profile needs at least one sweep")
    for sweep_id in sweep_ids:  # True == 1 would count sweep 1 twice, 1.0 find it
        if isinstance(sweep_id, bool) or not isinstance(sweep_id, numbers.Integral):
            raise TypeError(f"sweep ids are whole numbers, got {sweep_id!r}")
    twice = sorted({i for i in sweep_ids if list(sweep_ids).count(i) > 1})
    if twice:
        raise ValueError(f"sweep {', '.join(map(str, twice))} is given more than once: a "
                         f"workload counts once in a profile")
    workloads, ran, pending = [], {}, {}
    # one state of the store for every read: a run ending meanwhile (a sweep still
    # training) would otherwise be counted open by one query and ended by the next
    with store.snapshot():
        for sweep_id in sweep_ids:
            info = store.sweep(sweep_id)
            config = info["config"] or {}
            if config.get("target") is None:
                raise ValueError(f"sweep {sweep_id} has no target: run it with one (SweepSpec's "
                                 f"target, --target on the command line)")
            label = f"{sweep_id}: {info['task']}" + (f"/{info['model']}" if info["model"] else "")
            # runs still pending or running have no result: an optimizer with none ended is
            # "not finished" here, not "not reached"
            records = run_records(store, sweep_id)
            if not records:
                raise ValueError(f"sweep {sweep_id} has no run that ended yet (resume it with "
                                 f"--resume, or leave it out)")
            # the same optimizer with other fixed hyperparameters is another optimizer here
            fixed = config.get("hparams") or {}
            for record in records:
                record["optimizer"] = variant_label(record["optimizer"],
                                                    fixed.get(record["optimizer"]))
            where = f"sweep {sweep_id}"
            ran[where] = {r["optimizer"] for r in records}
            pending[where] = {variant_label(run.optimizer, fixed.get(run.optimizer))
                              for run in store.list_runs(sweep_id)} - ran[where]
            notes = []
            open_runs = sum(info["counts"][k] for k in ("pending", "running"))
            if open_runs:
                notes.append(f"{label}: unfinished ({_count(open_runs, 'run')} not ended); its times are "
                             f"those of the runs that ended")
            every = (config.get("train") or {}).get("eval_every")
            if isinstance(every, int) and every > 1:
                notes.append(f"{label}: the target is checked at evaluations, every {every} "
                             f"steps, so a time to target is exact to {every} steps")
            workloads.append((label, records, notes))
    every = set.intersection(*ran.values())
    left_out = {name: [s for s, names in ran.items() if name not in names]
                for name in sorted(set.union(*ran.values()) - every)}
    if len(every) < 2:
        raise ValueError(_too_few(sweep_ids, every, ran, pending))
    times, basis, spreads, rounds, steps, notes = {}, {}, {}, {}, {}, []
    failed: dict[str, list[str]] = {}
    for label, records, workload_notes in workloads:
        compared = [r for r in records if r["optimizer"] in every]
        for name in sorted(every):
            own = [r for r in compared if r["optimizer"] == name]
            if own and all(r["status"] == "failed" for r in own):
                failed.setdefault(label, []).append(name)
                workload_notes.append(_failed_note(label, name, own))
        basis[label], why, spreads[label], rounds[label] = _basis(compared)
        key = {"cost": "cost_to_target", "gradients": "gradients_to_target",
               "steps": "steps_to_target", "wall": "time_to_target"}[basis[label]]
        times[label] = fastest_to_target(compared, key)
        if basis[label] == "cost":  # a time is steps x a step cost: only the cost's noise ties
            steps[label] = fastest_to_target(compared, "steps_to_target")
        notes += workload_notes
        if why:
            notes.append(f"{label}: {why}")
        if not any(math.isfinite(t) for t in times[label].values()):
            notes.append(f"{label}: no optimizer reached the target, so it credits none of "
                         f"them (ratio inf, scored 0 for every one; an easier target would "
                         f"tell them apart)")
        if all(t == 0 for t in times[label].values()):
            notes.append(f"{label}: the target was met before the first step, so it tells "
                         f"the optimizers apart in nothing (a harder target would)")
    ratios = profile_ratios(times, spreads, steps, rounds)
    by_workload = {label: {o: ratios[o][i] for o in ratios} for i, label in enumerate(times)}
    for label, per in by_workload.items():
        if label in steps:
            notes += _tie_notes(label, per, times[label], steps[label], spreads[label],
                                rounds[label])
    taus, rho = performance_profile(times, spreads=spreads, steps=steps, rounds=rounds)
    not_finished = {name: [w for w in where if name in pending[w]]
                    for name, where in left_out.items()}
    return Profile(times, taus, rho, {o: ratio_score(r) for o, r in ratios.items()},
                   basis, left_out, notes, by_workload,
                   {name: w for name, w in not_finished.items() if w}, failed)
