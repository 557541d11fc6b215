"""Learning rates that move visibly on a landscape.

An optimizer's library default is tuned for networks, not for a 2-D test function: Adam's
``lr=0.001`` walks about 0.5 along Rosenbrock's banana in 500 steps, and a race at the
defaults mostly shows paths that have hardly left the start. :func:`suggest_lrs` gives each
optimizer a rate for one landscape by a stated rule:

    Run the optimizer for :data:`SUGGEST_STEPS` steps (the playground's default) at every
    rate of :data:`SUGGEST_GRID` (1e-6 to 10, two per decade: plain descent on
    Goldstein-Price diverges from its default start at every rate of the grid from 3e-5 up,
    its edge near 1.1e-5, while 1e-5 does not) from the landscape's default start
    and from four more (:func:`check_starts`), all of them one batch
    (:func:`~optimlab.landscapes.race.run_fan`). Keep the rates whose paths stay inside the
    landscape's plotting domain at every step from every one of these starts (a path that
    leaves the map is not seen, and a user clicks other starts: the best rate from one start
    alone sits on the edge of stability, and Rosenbrock's best for plain descent diverges
    from (-1.4, 2)); among them take the one with the best tuning score from the default
    start (:data:`~optimlab.landscapes.race.TUNE_CRITERION`: the worst loss over the last
    quarter of steps, so a late spike cannot win). Ties go to the larger rate (it moves
    more). When no rate keeps every start inside, the rule asks only the default start's
    path to stay inside; when none does, it takes the best finite score, and when none is
    finite the smallest rate.

On a landscape without a minimum (a saddle, unbounded below) the lowest loss is the
farthest escape, so the rule picks the largest rate that still keeps the path on the map.
The playground reads these rates from a table computed once per landscape
(``optimlab.web.lrs``), since the batch takes tens of seconds per landscape on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..optim.base import ArgumentTypeError, check_int
from .base import Landscape
from .functions import get as get_landscape
from .race import _scores, run_fan

__all__ = ["SUGGEST_STEPS", "SUGGEST_GRID", "check_starts", "suggest_lrs", "lr_scores"]

#: Steps each rate runs for when suggesting: as many as the playground's races by default.
SUGGEST_STEPS = 500
#: The rates tried: 1e-6 to 10, two per decade.
SUGGEST_GRID: tuple[float, ...] = tuple(float(10.0**e) for e in np.arange(-6.0, 1.01, 0.5))


def _inside(landscape: Landscape, path: torch.Tensor) -> torch.Tensor:
    """Per member of ``path`` ``[steps + 1, members, dim]``: whether every point is finite
    and inside the landscape's domain."""
    bounds = torch.tensor(landscape.domain, dtype=torch.float64)
    ok = torch.isfinite(path).all(dim=-1)
    ok &= ((path >= bounds[:, 0]) & (path <= bounds[:, 1])).all(dim=-1)
    return ok.all(dim=0)


def check_starts(landscape: Landscape) -> list[list[float]]:
    """The starts a suggested rate must keep on the map: the landscape's default start,
    then the points at a quarter and three quarters of the domain along the first two axes
    (every other coordinate at its start's value, on an N-D landscape)."""
    start = [float(v) for v in landscape.start]
    (x0, x1), (y0, y1) = landscape.domain[:2] if landscape.dim >= 2 \
        else (landscape.domain[0], (0.0, 0.0))
    quarters = []
    for fy in (0.25, 0.75):
        for fx in (0.25, 0.75):
            point = [x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)] + start[2:]
            quarters.append(point[:landscape.dim])
    return [start] + quarters


def lr_scores(landscape: Landscape | str, names: Sequence[str] | str, steps: int = SUGGEST_STEPS,
              grid: Sequence[float] = SUGGEST_GRID
              ) -> dict[str, list[tuple[float, float, bool, bool]]]:
    """Per registry name, ``(lr, score, inside, inside_all)`` for every rate of ``grid``:
    the tuning score from the default start (lower is better, inf when it diverged),
    whether that path stayed inside the domain, and whether the paths from every start of
    :func:`check_starts` did. One batched run of every name at every rate from every start.
    ``names`` may be one name (``"adam"``).
    """
    land = get_landscape(landscape) if isinstance(landscape, str) else landscape
    if not isinstance(land, Landscape):
        raise ArgumentTypeError(f"landscape must be a Landscape or a catalog name, got "
                                f"{landscape!r}")
    check_int("steps", steps, 1)
    rates = [float(v) for v in grid]
    if not rates or not all(math.isfinite(v) and v > 0 for v in rates):
        raise ValueError(f"grid must hold positive finite learning rates, got {list(grid)!r}")
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("names must hold at least one registry name")
    starts = check_starts(land)
    # members start-major: member i * len(rates) + j runs from starts[i] at rates[j]
    runs = run_fan(land, [(name, {"lr": 1.0}) for name in names], starts, rates, steps)
    out = {}
    n = len(rates)
    for name, (path, loss) in zip(names, runs):
        scores = _scores(land, path[:, :n], loss[:, :n])
        inside = _inside(land, path).view(len(starts), n)
        out[name] = list(zip(rates, scores, inside[0].tolist(), inside.all(dim=0).tolist()))
    return out


def _pick(rows: list[tuple[float, float, bool, bool]]) -> float:
    """The rule of the module docstring over one optimizer's ``(lr, score, inside,
    inside_all)``."""
    pool = [r for r in rows if r[3] and math.isfinite(r[1])] or \
        [r for r in rows if r[2] and math.isfinite(r[1])] or \
        [r for r in rows if math.isfinite(r[1])]
    if not pool:
        return min(r[0] for r in rows)
    best = min(r[1] for r in pool)
    return max(r[0] for r in pool if r[1] == best)


def suggest_lrs(landscape: Landscape | str, names: Sequence[str] | str,
                steps: int = SUGGEST_STEPS, grid: Sequence[float] = SUGGEST_GRID
                ) -> dict[str, float]:
    """Per registry name, the learning rate that moves visibly on ``landscape`` (the rule
    of this module's docstring). Every name must take an ``lr``; ``names`` may be one name
    (``suggest_lrs("booth", "adam")``)."""
    return {name: _pick(rows) for name, rows in lr_scores(landscape, names, steps, grid).items()}
