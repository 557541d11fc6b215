"""AlgoPerf-style performance profiles across sweeps (one sweep = one workload).

For every sweep, each optimizer's time to the sweep's target is the median over seeds at its
best learning rate (:func:`~optimlab.bench.analysis.time_to_target`); the ratio to the best
optimizer of that sweep gives the profile rho(tau) and the score (Dahl et al. 2023).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._table import text_table
from .analysis import performance_profile, profile_score, time_to_target
from .report import resolve_metric
from .store import RunStore
from .sweep import run_records

__all__ = ["Profile", "build_profile"]


@dataclass
class Profile:
    """Times to target per workload and optimizer, the profile and the scores."""

    times: dict[str, dict[str, float]]
    taus: np.ndarray
    rho: dict[str, np.ndarray]
    scores: dict[str, float]

    def table(self) -> str:
        """Seconds to target per workload (ratio to the best), then the scores."""
        optimizers = sorted(self.rho)
        headers = ["workload"] + optimizers
        rows = []
        for workload, per in self.times.items():
            best = min(per.values())
            rows.append([workload] + [
                "not reached" if not math.isfinite(per.get(o, math.inf)) else
                f"{per[o]:.3g} s ({per[o] / best:.2f}x)" for o in optimizers])
        rows.append(["score (AlgoPerf)"] + [f"{self.scores[o]:.3f}" for o in optimizers])
        return text_table(headers, rows)

    def plot(self):
        """rho(tau) for every optimizer (matplotlib figure)."""
        from ..landscapes.plots import _pyplot, label_colors

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


def build_profile(store: RunStore, sweep_ids: Sequence[int]) -> Profile:
    """The profile of the sweeps ``sweep_ids`` (each needs a target in its configuration)."""
    if not sweep_ids:
        raise ValueError("a profile needs at least one sweep")
    times = {}
    for sweep_id in sweep_ids:
        info = store.sweep(sweep_id)
        if info["config"].get("target") is None:
            raise ValueError(f"sweep {sweep_id} has no target: run it with --target")
        _, higher = resolve_metric(store, sweep_id)
        label = f"{sweep_id}: {info['task']}" + (f"/{info['model']}" if info["model"] else "")
        times[label] = time_to_target(run_records(store, sweep_id), higher)
    taus, rho = performance_profile(times)
    return Profile(times, taus, rho, {o: profile_score(taus, r) for o, r in rho.items()})
