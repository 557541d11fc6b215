"""What the step benchmarks share: candidates timed round-robin, and a median with its spread.

``multi_tensor_speed.py`` and ``small_step.py`` time several ways of taking one optimizer
step on the same model. Each candidate is a callable (an optimizer's ``step``);
:func:`interleaved` times them in turns, so that a machine that slows down or speeds up
hurts every candidate alike, and :func:`cell` prints one candidate's median and range.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(calls: dict[str, Callable[[], object]], repeats: int, steps: int, *,
                warmup: int, sync: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Seconds per call of each of ``calls``: ``warmup`` calls each first (state, kernels),
    then ``repeats`` rounds in which every candidate in turn makes ``steps`` consecutive
    calls, timed together. ``sync`` waits for a device's queued work (CUDA) before a clock
    is read."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    sync()
    samples: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(repeats):
        for label, call in calls.items():
            start = time.perf_counter()
            for _ in range(steps):
                call()
            sync()
            samples[label].append((time.perf_counter() - start) / steps)
    return samples


def cell(samples: dict[str, list[float]], label: str, unit: float, digits: int) -> str:
    """``median (min..max)`` of ``samples[label]`` times ``unit`` (1e3 for ms, 1e6 for us),
    or ``n/a`` where the candidate was not timed."""
    if label not in samples:
        return "n/a"
    s = [v * unit for v in samples[label]]
    return f"{statistics.median(s):.{digits}f} ({min(s):.{digits}f}..{max(s):.{digits}f})"
