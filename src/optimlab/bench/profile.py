"""AlgoPerf-style performance profiles across sweeps (one sweep = one workload).

For every sweep, each optimizer's time to the sweep's target is the median over seeds at its
best learning rate (:func:`~optimlab.bench.analysis.time_to_target`); the ratio to the best
optimizer of that sweep gives the profile rho(tau) and the score (Dahl et al. 2023).

A profile compares the same optimizers on every workload (Dolan & Moré 2002): an optimizer
that was not run in one of the sweeps is left out, and :meth:`Profile.notes` says which and
why (counting it as never reaching that sweep's target would score it as a failure there).

The time is the robust one: steps to the target times the optimizer's calibrated step cost
(:mod:`optimlab.bench.cost`), so a busy machine gives the same profile as a quiet one. Wall
time is used only for sweeps stored before costs were recorded, and the table says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .._table import text_table
from .analysis import performance_profile, profile_score, time_to_target, variant_label
from .report import resolve_metric
from .store import RunStore
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
    #: per workload: "cost" (steps x calibrated step cost) or "wall" (an old sweep)
    basis: dict[str, str] | None = None
    #: optimizers left out of the profile -> the workloads that did not run them
    left_out: dict[str, list[str]] = field(default_factory=dict)

    #: notes on single workloads (unfinished, read every few steps, met at the start)
    workload_notes: list[str] = field(default_factory=list)

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """The table's headers and rows (see :meth:`table`)."""
        optimizers = sorted(self.rho)
        headers = ["workload"] + optimizers
        rows = []
        for workload, per in self.times.items():
            best = min(per.values())
            wall = (self.basis or {}).get(workload) == "wall"
            rows.append([workload + (" (wall time)" if wall else "")] + [
                "not run" if o not in per else
                "not reached" if not math.isfinite(per[o]) else
                f"{per[o]:.3g} s ({_ratio(per[o], best)})" for o in optimizers])
        rows.append(["score (AlgoPerf)"] + [f"{self.scores[o]:.3f}" for o in optimizers])
        return headers, rows

    def notes(self) -> list[str]:
        """One line per optimizer left out of the profile, with the workloads that did not
        run it, then the notes on single workloads."""
        return [f"{name}: left out, not run in {', '.join(where)} (a profile compares the "
                f"optimizers run on every workload)" for name, where in self.left_out.items()
                ] + self.workload_notes

    def table(self) -> str:
        """Seconds to target per workload (steps x calibrated step cost; the ratio to the
        best), then the scores, then :meth:`notes`."""
        return "\n".join([text_table(*self.rows()), *self.notes()])

    def plot(self) -> Figure:
        """rho(tau) for every optimizer (matplotlib figure)."""
        from ..landscapes.plots import _pyplot
        from ..optim.palette import label_colors  # the catalog's colour of each optimizer

        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, 4.2))
        colors = label_colors(list(self.rho))
        for name, rho in self.rho.items():
            ax.step(self.taus, rho, where="post", color=colors[name], lw=2,
                    label=f"{name} (score {self.scores[name]:.3f})")
        ax.set(xlabel="tau: time to target / best time", ylabel="fraction of workloads",
               ylim=(-0.02, 1.02), xlim=(1, 4),
               title=f"performance profile over {len(self.times)} workload(s)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        return fig


def _ratio(time: float, best: float) -> str:
    """``time`` over the workload's best, as the table shows it (1.00x for the best, even
    when the target was met at the start, in 0 s)."""
    if time == best:
        return "1.00x"
    return f"{time / best:.2f}x" if best > 0 else "inf x"


def build_profile(store: RunStore, sweep_ids: Sequence[int]) -> Profile:
    """The profile of the sweeps ``sweep_ids`` (each needs a target in its configuration)
    over the optimizers run in every one of them; the others are named in
    :attr:`Profile.left_out`.

    Raises:
        ValueError: no sweep, a sweep without a target, or fewer than two optimizers run
            in every sweep.
    """
    if not sweep_ids:
        raise ValueError("a profile needs at least one sweep")
    twice = sorted({i for i in sweep_ids if list(sweep_ids).count(i) > 1})
    if twice:
        raise ValueError(f"sweep {', '.join(map(str, twice))} is given more than once: a "
                         f"workload counts once in a profile")
    times, basis, ran, notes = {}, {}, {}, []
    for sweep_id in sweep_ids:
        info = store.sweep(sweep_id)
        config = info["config"] or {}
        if config.get("target") is None:
            raise ValueError(f"sweep {sweep_id} has no target: run it with --target")
        _, higher = resolve_metric(store, sweep_id)
        label = f"{sweep_id}: {info['task']}" + (f"/{info['model']}" if info["model"] else "")
        # runs still pending or running have no result: an optimizer with none ended is
        # "not run" here, not "not reached"
        records = run_records(store, sweep_id)
        if not records:
            raise ValueError(f"sweep {sweep_id} has no run that ended yet (resume it with "
                             f"--resume, or leave it out)")
        # the same optimizer with other fixed hyperparameters is another optimizer here
        fixed = config.get("hparams") or {}
        for record in records:
            record["optimizer"] = variant_label(record["optimizer"],
                                                fixed.get(record["optimizer"]))
        costed = any(r.get("seconds_per_step") is not None for r in records)
        basis[label] = "cost" if costed else "wall"
        times[label] = time_to_target(records, higher,
                                      key="cost_to_target" if costed else "time_to_target")
        ran[f"sweep {sweep_id}"] = {r["optimizer"] for r in records}
        open_runs = sum(info["counts"][k] for k in ("pending", "running"))
        if open_runs:
            notes.append(f"{label}: unfinished ({open_runs} runs not ended); its times are "
                         f"those of the runs that ended")
        every = (config.get("train") or {}).get("eval_every")
        if isinstance(every, int) and every > 1:
            notes.append(f"{label}: the target is checked at evaluations, every {every} "
                         f"steps, so a time to target is exact to {every} steps")
        if all(t == 0 for t in times[label].values()):
            notes.append(f"{label}: the target was met before the first step, so it tells "
                         f"the optimizers apart in nothing (a harder target would)")
    every = set.intersection(*ran.values())
    left_out = {name: [s for s, names in ran.items() if name not in names]
                for name in sorted(set.union(*ran.values()) - every)}
    if len(every) < 2:
        if len(ran) == 1:
            what = f"sweep {sweep_ids[0]} ran {'only ' + next(iter(every)) if every else 'no optimizer'}"
        else:
            missing = "; ".join(f"{name} is not in {', '.join(where)}"
                                for name, where in left_out.items())
            what = (f"sweeps {', '.join(str(i) for i in sweep_ids)} have "
                    f"{'only ' + next(iter(every)) if every else 'no optimizer'} in common "
                    f"({missing})")
        raise ValueError(f"{what}, and a performance profile compares the same two or more "
                         f"optimizers on every sweep")
    times = {label: {o: t for o, t in per.items() if o in every} for label, per in times.items()}
    taus, rho = performance_profile(times)
    return Profile(times, taus, rho, {o: profile_score(taus, r) for o, r in rho.items()},
                   basis, left_out, notes)
