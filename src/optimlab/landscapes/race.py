"""Races: several optimizers, each from the same start, on one landscape, all at once.

Every optimizer label becomes a :class:`~optimlab.optim.population.Population` whose
members are its learning rates (one, or a whole grid when tuning). All members of all
optimizers share one gradient evaluation per step, so a race costs one batched autograd
call plus one rule call per optimizer per step, instead of a forward, backward and step per
optimizer per step. Races run in float64 with the library's own rules: a race path is the
path of ``optimlab.create(name, [p], **hp)`` stepped by hand (``tests/landscapes``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..optim.population import Population
from ..optim.registry import resolve
from .base import Landscape
from .functions import get
from .result import Race, RaceMetrics

__all__ = ["race", "TUNE_GRID", "run_members"]

#: The default learning-rate grid of ``tune=True``: 1e-4 to 1, four points per decade.
TUNE_GRID: tuple[float, ...] = tuple(float(10.0**e) for e in np.arange(-4.0, 0.01, 0.25))
#: How far outside its domain (in domain widths) a path may go before it counts as diverged.
DIVERGENCE_WIDTHS = 10.0


@dataclass
class _Entry:
    label: str
    name: str
    hparams: dict
    lrs: list[float] | None = None  # the grid, when tuning


def _landscape(landscape: Landscape | str) -> Landscape:
    if isinstance(landscape, Landscape):
        return landscape
    if isinstance(landscape, str):
        return get(landscape)
    raise ValueError(f"landscape must be a name or a Landscape, got {type(landscape).__name__}")


def _entries(optimizers: Mapping[str, Mapping], tune) -> list[_Entry]:
    if not isinstance(optimizers, Mapping) or not optimizers:
        raise ValueError("optimizers must be a non-empty dict: label -> hyperparameters, "
                         "e.g. {'sgd': {'lr': 1e-3}, 'adam': {'lr': 0.05}}")
    grid = None
    if tune is True:
        grid = list(TUNE_GRID)
    elif tune:
        grid = [float(v) for v in tune]
        if not grid or any(not (v > 0 and math.isfinite(v)) for v in grid):
            raise ValueError(f"tune grid must hold positive learning rates, got {tune!r}")
    entries = []
    for label, hp in optimizers.items():
        hp = dict(hp or {})
        name = hp.pop("name", label)
        resolve(name)  # unknown names fail here, with suggestions
        entries.append(_Entry(str(label), name, hp, grid))
    return entries


def _start(landscape: Landscape, start) -> Tensor:
    point = landscape.start if start is None else start
    try:
        x = torch.as_tensor(np.asarray(point, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ValueError(f"start must be {landscape.dim} numbers, got {start!r}") from err
    if x.shape != (landscape.dim,) or not torch.isfinite(x).all():
        raise ValueError(f"start must be {landscape.dim} finite numbers, got {start!r}")
    return x


def _vjp(values: Tensor, points: Tensor, weights: Tensor) -> Tensor:
    """The gradient of ``(weights * values).sum()`` at ``points``: one reverse pass from
    ``values`` with ``weights`` as their gradient (a vector-Jacobian product), which
    frees the graph and builds none for the result."""
    return torch.autograd.grad(values, points, weights)[0]


def run_members(landscape: Landscape, entries: Sequence[tuple[str, dict | list[dict]]],
                start: Tensor, steps: int) -> list[tuple[Tensor, Tensor]]:
    """Run optimizers from ``start``: the batched engine behind :func:`race`.

    ``entries`` holds ``(registry name, hyperparameters)`` pairs, where the
    hyperparameters may give per-member lists (see :class:`Population`). Returns, per
    entry, the paths ``[steps + 1, members, dim]`` and losses ``[steps + 1, members]``
    (f without noise), in float64.
    """
    dim = landscape.dim
    noise = landscape.noise_sequence(steps) if landscape.noise else None
    sizes = [max([len(v) for v in hp.values() if isinstance(v, list)], default=1)
             for _, hp in entries]
    # All members of all optimizers live in one tensor; each population steps a view of
    # its rows, so one gradient evaluation per step serves every optimizer.
    x = start.to(torch.float64).expand(sum(sizes), dim).clone()
    groups = []
    for (name, hp), rows in zip(entries, x.split(sizes)):
        # a matrix-only optimizer (Muon) sees each point as a 1 x dim matrix
        matrix = resolve(name).capabilities.needs_matrix
        view = rows.unsqueeze(1) if matrix else rows
        pop = Population(name, [view], hp)
        # (population, its view, the view's shape if the gradient rows need reshaping,
        #  whether it needs a closure): looked up once, not on every step
        groups.append((pop, view, view.shape if matrix else None, pop.entry.info.needs_closure))
    paths = torch.empty(steps + 1, x.shape[0], dim, dtype=torch.float64)
    losses = torch.empty(steps + 1, x.shape[0], dtype=torch.float64)
    ones = torch.ones(x.shape[0], dtype=torch.float64)

    # The step loop is the cost of a race, and its tensors are tiny, so it is written to
    # call as few torch operations per step as it can: the gradient of f's values is taken
    # against a vector of ones (the gradient of their sum, without the sum) by one
    # torch.autograd.grad (_vjp), noise is added only when there is some, gradient rows are
    # split once and reshaped only for matrix-only rules. Each member's path is exactly
    # that of its optimizer run alone.
    def gradient(points: Tensor, t: int) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            points = points.detach().requires_grad_()
            values = landscape.f(points)
            same = values.shape == ones.shape and values.dtype == ones.dtype
            weights = ones if same else torch.ones_like(values)
            g = _vjp(values, points, weights)
        return values.detach(), g if noise is None else g + noise[t]

    single = len(groups) == 1
    with torch.no_grad():
        for t in range(steps):
            values, grads = gradient(x, t)
            paths[t], losses[t] = x, values
            parts = (grads,) if single else grads.split_with_sizes(sizes)
            for (pop, view, shape, needs_closure), g in zip(groups, parts):
                if shape is not None:
                    g = g.view(shape)
                if needs_closure:
                    def closure(view=view):
                        view.grad = gradient(view.reshape(-1, dim), t)[1].view(view.shape)
                    view.grad = g
                    pop.step(closure)
                else:
                    pop.step(grads=[g])
        paths[steps], losses[steps] = x, landscape.f(x)
    return list(zip(paths.split(sizes, dim=1), losses.split(sizes, dim=1)))


def _diverged(landscape: Landscape, path: Tensor) -> bool:
    if not torch.isfinite(path).all():
        return True
    bounds = torch.tensor(landscape.domain, dtype=torch.float64)
    width = bounds[:, 1] - bounds[:, 0]
    outside = torch.maximum(bounds[:, 0] - path, path - bounds[:, 1])
    return bool((outside > DIVERGENCE_WIDTHS * width).any())


def _metrics(landscape: Landscape, label: str, name: str, path: Tensor, loss: Tensor,
             tol: float) -> RaceMetrics:
    final = float(loss[-1])
    distance = float(landscape.distance_to_minimum(path[-1]))
    gap, steps_to_tol = math.nan, None
    if landscape.minima:  # a saddle's min_value is only the lowest point of its domain
        gap = final - landscape.min_value
        within = torch.nonzero(loss - landscape.min_value <= tol)
        steps_to_tol = int(within[0, 0]) if len(within) else None
    return RaceMetrics(label, name, final, gap, distance, steps_to_tol,
                       _diverged(landscape, path))


def _score(loss: float) -> float:
    return loss if math.isfinite(loss) else math.inf


#: the largest gradient noise a race takes (beyond it every path is noise; inf or NaN would
#: only give NaN paths)
MAX_NOISE = 1e6


def race(landscape: Landscape | str, optimizers: Mapping[str, Mapping], start=None,
         steps: int = 500, noise: float = 0.0, seed: int = 0, tune=False,
         tol: float = 1e-3) -> Race:
    """Race optimizers on a landscape from one start point.

    Args:
        landscape: a :class:`Landscape` or a catalog name (``"rosenbrock"``).
        optimizers: label -> hyperparameters, e.g. ``{"sgd": {"lr": 1e-3},
            "adam": {"lr": 0.05}}``. A label that is not a registry name needs a ``name``
            key: ``{"fast adam": {"name": "adam", "lr": 0.3}}``.
        start: the start point (default: the landscape's ``start``).
        steps: number of steps (>= 0).
        noise: std of Gaussian gradient noise (DeepOBS style; 0: the landscape's own).
        seed: seed of the noise sequence, shared by every optimizer.
        tune: ``True`` picks each optimizer's learning rate from :data:`TUNE_GRID` (a
            sequence gives another grid) by the final loss of a batched run, so pictures
            compare tuned optimizers; the chosen values are in ``race.hparams`` and the
            search in ``race.tuning``.
        tol: tolerance for ``steps_to_tol`` (loss within ``tol`` of the minimum).

    A run that diverges is reported in the metrics (``diverged``), never raised.
    """
    land = _landscape(landscape)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) \
            or not 0 <= noise <= MAX_NOISE:
        raise ValueError(f"noise must be a number in [0, {MAX_NOISE:g}], got {noise!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    if noise:
        land = land.with_noise(noise, seed)
    entries = _entries(optimizers, tune)
    x0 = _start(land, start)
    runs = run_members(land, [(e.name, {**e.hparams, "lr": e.lrs} if e.lrs else e.hparams)
                              for e in entries], x0, steps)
    paths, losses, hparams, metrics, tuning = {}, {}, {}, {}, {}
    for entry, (path, loss) in zip(entries, runs):
        best = 0
        if entry.lrs:
            finals = [_score(float(loss[-1, k])) for k in range(len(entry.lrs))]
            diverged = [_diverged(land, path[:, k]) for k in range(len(entry.lrs))]
            scores = [math.inf if d else f for f, d in zip(finals, diverged)]
            best = int(np.argmin(scores))
            tuning[entry.label] = dict(zip(entry.lrs, finals))
        used = {"name": entry.name, **resolve(entry.name).preset, **entry.hparams}
        if entry.lrs:
            used["lr"] = entry.lrs[best]
        elif "lr" not in used and "lr" in resolve(entry.name).info.defaults:
            used["lr"] = resolve(entry.name).info.defaults["lr"]  # show what was used
        paths[entry.label] = path[:, best].numpy()
        losses[entry.label] = loss[:, best].numpy()
        hparams[entry.label] = used
        metrics[entry.label] = _metrics(land, entry.label, entry.name, path[:, best],
                                        loss[:, best], tol)
    return Race(land, x0.numpy(), steps, paths, losses, hparams, metrics, tol,
                land.noise, land.noise_seed, tuning)
