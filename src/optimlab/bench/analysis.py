"""What a sweep means: best learning rates, spread over seeds, sensitivity, profiles.

The functions take plain records (one dict per run: optimizer, lr, seed, final metric,
steps to target, wall time, diverged) so they work the same on fresh results and on runs
read back from the store.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["OptimizerSummary", "summarize", "performance_profile", "profile_score",
           "parse_lrs", "time_to_target"]


def parse_lrs(text: str) -> list[float]:
    """``"1e-4:1e-1:8"`` -> 8 learning rates log-spaced from 1e-4 to 1e-1 (inclusive);
    ``"0.01,0.1"`` -> those values. Every value must be > 0."""
    text = text.strip()
    try:
        if ":" in text:
            low, high, count = text.split(":")
            low, high, n = float(low), float(high), int(count)
            if n < 1 or not (0 < low <= high):
                raise ValueError
            values = [low] if n == 1 else list(np.logspace(math.log10(low), math.log10(high), n))
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"learning rates must be LOW:HIGH:COUNT (e.g. 1e-4:1e-1:8) or a "
                         f"comma-separated list of numbers > 0, got {text!r}") from None
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise ValueError(f"learning rates must be > 0, got {text!r}")
    return [float(v) for v in values]


@dataclass(frozen=True)
class OptimizerSummary:
    """One optimizer over its learning-rate grid and seeds.

    ``sensitivity`` maps each learning rate to the mean (over seeds) of the final metric;
    diverged seeds count as the worst possible value. ``best_lr`` is the rate with the
    best mean; ``mean``/``std`` are over the seeds at that rate.
    """

    optimizer: str
    best_lr: float
    mean: float
    std: float
    seeds: int
    diverged: int
    sensitivity: dict[float, float]


def summarize(records: Iterable[Mapping], higher_is_better: bool = True) -> list[OptimizerSummary]:
    """Per optimizer: the best learning rate by mean final metric over seeds."""
    worst = -math.inf if higher_is_better else math.inf
    grouped: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    diverged: dict[str, int] = defaultdict(int)
    for r in records:
        value = r["metric"]
        if r.get("diverged") or value is None or not math.isfinite(value):
            diverged[r["optimizer"]] += 1
            value = worst
        grouped[r["optimizer"]][float(r["lr"])].append(value)
    summaries = []
    for name, by_lr in grouped.items():
        means = {lr: float(np.mean(v)) for lr, v in sorted(by_lr.items())}
        pick = max if higher_is_better else min
        best = pick(means, key=lambda lr: means[lr])
        values = np.array(by_lr[best])
        std = float(values.std(ddof=1)) if len(values) > 1 and np.isfinite(values).all() else 0.0
        summaries.append(OptimizerSummary(name, best, means[best], std, len(values),
                                          diverged[name], means))
    return summaries


def performance_profile(times: Mapping[str, Mapping[str, float]],
                        taus: Sequence[float] | None = None) -> tuple[np.ndarray, dict]:
    """AlgoPerf's performance profile (Dahl et al. 2023).

    ``times[task][optimizer]`` is the time (or steps) to reach the task's target, ``inf``
    when never reached. For each task r = time / best time over optimizers; the profile of
    an optimizer is rho(tau) = fraction of tasks with r <= tau. Returns ``(taus, rho)``.
    """
    taus = np.linspace(1.0, 4.0, 301) if taus is None else np.asarray(taus, dtype=float)
    optimizers = sorted({o for per_task in times.values() for o in per_task})
    ratios = {o: [] for o in optimizers}
    for per_task in times.values():
        best = min(per_task.values())
        for o in optimizers:
            t = per_task.get(o, math.inf)
            ratios[o].append(t / best if math.isfinite(best) and best > 0 else math.inf)
    rho = {o: np.array([np.mean([r <= tau for r in ratios[o]]) for tau in taus])
           for o in optimizers}
    return taus, rho


def profile_score(taus: np.ndarray, rho: np.ndarray) -> float:
    """The AlgoPerf score: the integral of rho over tau in [1, 4], divided by 3."""
    mask = (taus >= 1) & (taus <= 4)
    x, y = taus[mask], rho[mask]
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2 / 3)


def time_to_target(records: Iterable[Mapping], higher_is_better: bool = True,
                   key: str = "time_to_target") -> dict[str, float]:
    """Per optimizer: the median over seeds of ``key`` at its best learning rate.

    A seed that never reached the target counts as infinitely slow, so the median is
    ``inf`` unless most seeds got there (AlgoPerf's rule for a workload not reached).
    """
    records = list(records)
    best = {s.optimizer: s.best_lr for s in summarize(records, higher_is_better)}
    out = {}
    for name, lr in best.items():
        times = [math.inf if r.get(key) is None or r.get("diverged") else float(r[key])
                 for r in records if r["optimizer"] == name and float(r["lr"]) == lr]
        out[name] = float(np.median(times)) if times else math.inf
    return out
