"""The ``basins`` exhibit: local minima as basins of attraction.

One start shows only which minimum one run ends in; the start decides the basin, and so
does the optimizer. Here every optimizer runs from each point of a grid of starts over the
landscape's domain (``two_wells`` by default, or ``himmelblau``), all starts of all
optimizers as members of one batch (:func:`optimlab.landscapes.race.run_starts`), and
each start is coloured by the minimum its run ends in: a map of the basins of attraction
as each optimizer sees them, and the share of starts that reach each minimum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .._table import text_table
from ..landscapes.base import Landscape, finite_reals
from ..landscapes.functions import get as get_landscape
from ..landscapes.functions import two_wells_minima
from ..landscapes.race import DIVERGENCE_WIDTHS, _defaults_used, check_entry, run_starts
from ..optim.base import argument_error, check_int, is_real
from ..optim.registry import resolve
from .base import Demo, pyplot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["BASIN_OPTIMIZERS", "BasinsDemo", "basins", "known_minima", "NOT_SETTLED",
           "DIVERGED", "BASIN_COLORS", "NOT_SETTLED_COLOR", "DIVERGED_COLOR", "basin_color",
           "RESERVED_NAMES"]

#: per landscape: label -> registry name and hyperparameters (rates stable on it, fixed:
#: a rate tuned from one start says nothing about the others)
BASIN_OPTIMIZERS: dict[str, dict[str, dict]] = {
    "two_wells": {
        "gd": {"name": "gd", "lr": 0.1},
        "momentum": {"name": "momentum", "lr": 0.1},
        "rmsprop": {"name": "rmsprop", "lr": 0.03},
        "adam": {"name": "adam", "lr": 0.05},
    },
    "himmelblau": {
        "gd": {"name": "gd", "lr": 0.01},
        "momentum": {"name": "momentum", "lr": 0.002},
        "rmsprop": {"name": "rmsprop", "lr": 0.03},
        "adam": {"name": "adam", "lr": 0.1},
    },
}

#: basin codes for runs that end near no known minimum, and runs that diverged
NOT_SETTLED, DIVERGED = -1, -2

#: the colour of each known minimum's basin (in order, repeating), of starts that settled
#: near none, and of starts that diverged: the same in the pictures and the playground.
#: The basins are light pastel fills (blue, red, green, orange, lilac, yellow), each lighter
#: than every colour of the optimizer palette (:data:`optimlab.optim.palette.COLORS`, at
#: most 0.66 relative luminance; these at least 0.70), so a basin never reads as the
#: optimizer that owns a colour (tab10's blue, red, green, ... are the first optimizers').
BASIN_COLORS = ("#c9def5", "#fbd0d0", "#cfeac6", "#fcdcb8", "#e4d8f6", "#f6edaa")
NOT_SETTLED_COLOR, DIVERGED_COLOR = "#bbbbbb", "#000000"


def basin_color(code: int) -> str:
    """The colour of a basin code: a minimum's index, :data:`NOT_SETTLED` or
    :data:`DIVERGED`."""
    if code == DIVERGED:
        return DIVERGED_COLOR
    if code == NOT_SETTLED:
        return NOT_SETTLED_COLOR
    return BASIN_COLORS[code % len(BASIN_COLORS)]


def percentages(shares: Mapping[str, float]) -> dict[str, int]:
    """Shares that add to 1, as whole percentages that add to 100: each rounded down, then
    the points left over go one each to the largest remainders (ties to the earlier key):
    the largest-remainder method. Each rounded alone, 46.7%, 29.8% and 23.6% showed as 47%,
    30% and 24%, a row of 101%. Shares that do not add to 1 are each rounded alone.

    >>> percentages({"a": 105 / 225, "b": 67 / 225, "c": 53 / 225, "d": 0.0})
    {'a': 47, 'b': 30, 'c': 23, 'd': 0}
    """
    exact = {k: 100.0 * v for k, v in shares.items()}
    if not exact or not math.isclose(sum(exact.values()), 100.0, abs_tol=1e-6):
        return {k: round(v) for k, v in exact.items()}
    out = {k: math.floor(v + 1e-9) for k, v in exact.items()}
    left = 100 - sum(out.values())
    order = sorted(exact, key=lambda k: -(exact[k] - out[k]))  # stable: earlier key first
    for k in order[:max(left, 0)]:
        out[k] += 1
    return out


def known_minima(landscape: Landscape) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """The minimizers a run can end in, named, taken from ``landscape`` itself: its
    ``minima`` (its global minimizers) and then its ``local_minima``, each named by its
    point (a local one with "local" after it: ``(1.7, -0.796) local``), with more digits
    where three would name two apart the same (and ``#2``, ``#3``, ... after a point listed
    twice). The catalog's ``two_wells`` (its own minima, not only its name: a landscape of
    one's own called so keeps its own) names them the deep (global) and the shallow
    (local) well."""
    points = [(tuple(p), "") for p in landscape.minima] \
        + [(tuple(p), " local") for p in landscape.local_minima]
    if landscape.name == "two_wells" and len(points) == 2:
        deep, shallow = two_wells_minima()
        if np.allclose([p for p, _ in points], [deep, shallow], rtol=0, atol=1e-12):
            return (("deep well", points[0][0]), ("shallow well", points[1][0]))

    def named(p, suffix, digits):
        return (f"({p[0]:.{digits}g}, {p[1]:.{digits}g})" if len(p) == 2 else str(p)) + suffix

    for digits in (3, 6, 17):
        names = [named(p, suffix, digits) for p, suffix in points]
        if len(set(names)) == len(names):
            break
    else:  # a point listed twice: numbered in order
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                names[i] = f"{name} #{seen[name]}"
    return tuple(zip(names, (p for p, _ in points)))


#: the names a basins table gives its own columns, which no minimum may take
RESERVED_NAMES = ("not settled", "diverged")


def _named_minima(land: Landscape, minima) -> tuple[tuple[str, tuple[float, float]], ...]:
    """The ``(name, (x, y))`` pairs to classify by: ``minima`` checked entry by entry (a
    str name and two finite numbers; ValueError naming the entry), their names each its
    own (a share is counted per name: four minima named "well" showed a row of 64%) and
    none of :data:`RESERVED_NAMES`, or :func:`known_minima` where it is None (ValueError
    where the landscape has none)."""
    if minima is None:
        named = known_minima(land)
        if not named:
            raise ValueError(f"landscape {land.name!r} has no known minimum; pass "
                             f"minima=[(name, (x, y)), ...]")
        return tuple((str(n), tuple(float(c) for c in p)) for n, p in named)
    if isinstance(minima, (str, bytes, Mapping)) or not isinstance(minima, Sequence):
        raise TypeError(f"minima must be a list of (name, (x, y)) pairs, got "
                        f"{type(minima).__name__}")
    if not minima:
        raise ValueError("minima must be (name, (x, y)) pairs, at least one; got none")
    named = []
    for i, entry in enumerate(minima):
        coords: tuple = ()
        if isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str) \
                and isinstance(entry[1], (Sequence, np.ndarray)) \
                and not isinstance(entry[1], (str, bytes)):
            coords = tuple(entry[1])
        if len(finite_reals(coords)) != 2:
            raise ValueError(f"minima[{i}] must be a (name, (x, y)) pair: a str and two "
                             f"finite numbers, got {entry!r}")
        if entry[0] in RESERVED_NAMES:
            raise ValueError(f"minima[{i}]: {entry[0]!r} names a column of the basins table "
                             f"of its own; give the minimum another name")
        for j, (other, _) in enumerate(named):
            if other == entry[0]:
                raise ValueError(f"minima[{j}] and minima[{i}] are both named {entry[0]!r}: "
                                 "each minimum needs a name of its own (the shares are "
                                 f"counted per name), e.g. '{entry[0]} 1', '{entry[0]} 2'")
        named.append((entry[0], (float(coords[0]), float(coords[1]))))
    return tuple(named)


def _grid_starts(landscape: Landscape, grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centres of a ``grid`` x ``grid`` tiling of the domain: x centres, y centres
    and the starts ``[grid * grid, 2]`` (row by row, y outer)."""
    (x0, x1), (y0, y1) = landscape.domain
    xs = x0 + (np.arange(grid) + 0.5) * (x1 - x0) / grid
    ys = y0 + (np.arange(grid) + 0.5) * (y1 - y0) / grid
    starts = np.stack(np.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)
    return xs, ys, starts


def _classify(landscape: Landscape, ends: np.ndarray, points: np.ndarray,
              radius: float) -> np.ndarray:
    """Each end point's basin: the index of the known minimum within ``radius`` of it,
    :data:`DIVERGED` when it is not finite or lies more than ``DIVERGENCE_WIDTHS`` domain
    widths outside the domain, else :data:`NOT_SETTLED`."""
    bounds = np.asarray(landscape.domain, dtype=float)
    width = bounds[:, 1] - bounds[:, 0]
    with np.errstate(invalid="ignore"):
        outside = np.maximum(bounds[:, 0] - ends, ends - bounds[:, 1])
        far = (outside > DIVERGENCE_WIDTHS * width).any(axis=1)
    diverged = ~np.isfinite(ends).all(axis=1) | far
    basin = np.full(len(ends), NOT_SETTLED)
    if len(points):
        distance = np.linalg.norm(ends[:, None, :] - points[None, :, :], axis=-1)
        nearest = np.nan_to_num(distance, nan=np.inf).argmin(axis=1)
        close = np.take_along_axis(distance, nearest[:, None], axis=1)[:, 0] <= radius
        basin[close] = nearest[close]
    basin[diverged] = DIVERGED
    return basin


@dataclass(repr=False)
class BasinsDemo(Demo):
    """Which minimum each optimizer reaches from each start of a grid.

    Attributes:
        landscape: the :class:`~optimlab.landscapes.base.Landscape` raced on.
        minima: ``(name, point)`` of each minimum a run can end in (:func:`known_minima`).
        hparams: label -> registry name and hyperparameters, the rate included where
            none was given (the optimizer's default, as a race records it).
        grid: starts per side; ``starts`` holds the ``grid * grid`` cell centres of the
            domain (row by row, y outer), ``xs`` and ``ys`` the centres per axis.
        steps: steps per run; ``radius``: how close to a minimum a run must end to count.
        ends: label -> end points ``[grid * grid, 2]``.
        basin: label -> per start the index into ``minima`` of the minimum reached,
            :data:`NOT_SETTLED` (-1: farther than ``radius`` from every known minimum
            after ``steps`` steps) or :data:`DIVERGED` (-2).
    """

    landscape: Landscape
    minima: tuple[tuple[str, tuple[float, ...]], ...]
    hparams: dict[str, dict]
    grid: int
    steps: int
    radius: float
    xs: np.ndarray
    ys: np.ndarray
    starts: np.ndarray
    ends: dict[str, np.ndarray]
    basin: dict[str, np.ndarray]
    name: str = "basins"
    title: str = ""

    def __post_init__(self) -> None:
        self.title = (f"Basins of attraction on {self.landscape.name}: the minimum each "
                      f"optimizer reaches from each of {self.grid} x {self.grid} starts")

    def fractions(self) -> dict[str, dict[str, float]]:
        """label -> share of the starts ending in each minimum (by name), ``"not settled"``
        and ``"diverged"``."""
        out = {}
        for label, basin in self.basin.items():
            shares = {name: float(np.mean(basin == i)) for i, (name, _) in enumerate(self.minima)}
            shares["not settled"] = float(np.mean(basin == NOT_SETTLED))
            shares["diverged"] = float(np.mean(basin == DIVERGED))
            out[label] = shares
        return out

    def table(self) -> str:
        return "\n".join([text_table(*self.rows()), *self.notes()])

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """The table's headers and rows (text cells): per optimizer, the share of starts
        ending in each minimum, not settled and diverged."""
        names = [name for name, _ in self.minima]
        rows = []
        for label, shares in self.fractions().items():
            hp = ", ".join(f"{k}={v:g}" for k, v in self.hparams[label].items()
                           if k != "name" and isinstance(v, (int, float)))
            shown = percentages(shares)  # whole percentages that add to 100
            rows.append([label, self.hparams[label]["name"], hp]
                        + [f"{shown[n]}%" for n in names + ["not settled", "diverged"]])
        headers = ["optimizer", "rule", "hyperparameters"] + [
            f"-> {name}" for name in names] + ["not settled", "diverged"]
        return headers, rows

    def notes(self) -> list[str]:
        """The line under the table: the grid, the steps and what counts as reaching a
        minimum."""
        where = "; ".join(f"{name} at ({', '.join(f'{c:.3f}' for c in point)})"
                          for name, point in self.minima)
        return [f"share of {self.grid * self.grid} starts (a {self.grid} x {self.grid} grid "
                f"over the domain), {self.steps} steps each; a run counts for a minimum when "
                f"it ends within {self.radius:g} of it ({where}); fixed learning rates, the "
                "same from every start"]

    def plot(self) -> Figure:
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Patch

        plt = pyplot()
        labels = list(self.basin)
        fig, axes = plt.subplots(1, len(labels), figsize=(4.2 * len(labels), 5.4),
                                 layout="constrained", squeeze=False)
        colors = [basin_color(i) for i in range(len(self.minima))]
        palette = np.array([basin_color(DIVERGED), basin_color(NOT_SETTLED)] + colors)
        (x0, x1), (y0, y1) = self.landscape.domain
        gx, gy = np.meshgrid(np.linspace(x0, x1, 150), np.linspace(y0, y1, 150))
        gz = self.landscape.values(torch.from_numpy(np.stack([gx, gy], -1))).detach().numpy()
        edges_x = np.linspace(x0, x1, self.grid + 1)
        edges_y = np.linspace(y0, y1, self.grid + 1)
        shares = self.fractions()
        for ax, label in zip(axes[0], labels):
            codes = self.basin[label].reshape(self.grid, self.grid) + 2
            ax.pcolormesh(edges_x, edges_y, codes, cmap=ListedColormap(palette),
                          vmin=-0.5, vmax=len(palette) - 0.5)
            ax.contour(gx, gy, gz, levels=15, colors="k", linewidths=0.4, alpha=0.5)
            for name, point in self.minima:  # (a pastel edge would vanish on its basin)
                ax.plot(point[0], point[1], "*", color="white", mec="black", ms=16, mew=1.2,
                        zorder=5)
            best = max(shares[label], key=shares[label].get)
            lr = self.hparams[label].get("lr")  # the rate used (a default recorded too)
            rate = f" (lr={lr:g})" if isinstance(lr, (int, float)) and not isinstance(lr, bool) \
                else ""
            ax.set_title(f"{label}{rate}: {percentages(shares[label])[best]}% to {best}",
                         fontsize=10)
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            ax.set_aspect("equal")
            ax.set_xlabel("start x")
        axes[0][0].set_ylabel("start y")
        handles = [Patch(color=c, label=name) for (name, _), c in zip(self.minima, colors)]
        handles += [Patch(color=palette[1], label="not settled"),
                    Patch(color=palette[0], label="diverged")]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles),
                   frameon=False)
        fig.suptitle(self.title)
        return fig


def basins(landscape: str | Landscape = "two_wells",
           optimizers: Mapping[str, Mapping] | None = None, grid: int = 15,
           steps: int = 300, radius: float = 0.25,
           minima: Sequence[tuple[str, Sequence[float]]] | None = None) -> BasinsDemo:
    """Run each optimizer from every start of a ``grid`` x ``grid`` grid and record which
    minimum it ends in.

    Args:
        landscape: a 2-D catalog name (``"two_wells"``, ``"himmelblau"``) or Landscape.
        optimizers: label -> hyperparameters with a ``name`` key for labels that are not
            registry names (default: :data:`BASIN_OPTIMIZERS` for the landscape: gd,
            momentum, RMSprop and Adam at fixed stable rates); each label's keys and
            values are checked before anything runs, as :func:`~optimlab.landscapes.race`
            checks them, and a refusal names the label.
        grid: starts per side (2..40, NumPy's integers included), at the centres of a
            tiling of the domain.
        steps: steps per run (1..5000, NumPy's integers included).
        radius: a run counts for a minimum when it ends within this distance of it.
        minima: ``(name, (x, y))`` pairs to classify by, a str and two finite numbers
            each (default: :func:`known_minima`; a landscape without a known minimum,
            such as ``saddle``, needs them).

    On ``two_wells`` (defaults) heavy-ball momentum rolls past the shallow well into the
    deep one from more starts than gradient descent does (71% against 64%), while RMSprop
    and Adam, whose steps follow the gradient's signs and so run along the diagonals, end
    in the shallow well from more (41% against 36%).
    """
    land = get_landscape(landscape) if isinstance(landscape, str) else landscape
    if not isinstance(land, Landscape) or land.dim != 2:
        raise ValueError(f"basins needs a 2-D landscape, got {landscape!r}")
    check_int("grid", grid, 2, 40)  # NumPy's integers too, as race takes them
    check_int("steps", steps, 1, 5000)
    grid, steps = int(grid), int(steps)
    if not is_real(radius) or not (math.isfinite(radius) and radius > 0):
        raise argument_error(is_real(radius))(f"radius must be a positive number, got {radius!r}")
    if optimizers is None:
        if land.name not in BASIN_OPTIMIZERS:
            raise ValueError(f"no default optimizers for {land.name!r}; pass optimizers "
                             f"(defaults exist for {', '.join(BASIN_OPTIMIZERS)})")
        optimizers = BASIN_OPTIMIZERS[land.name]
    if not isinstance(optimizers, Mapping) or not optimizers:
        raise argument_error(isinstance(optimizers, Mapping))(
            "optimizers must be a non-empty dict: label -> hyperparameters")
    named = _named_minima(land, minima)
    specs = {}
    for label, hp in optimizers.items():
        # checked as race checks its labels, before anything runs: a misspelt key names
        # the label and the closest hyperparameter ("did you mean 'lr'?")
        specs[str(label)] = check_entry(label, hp, where="basins label")
    xs, ys, starts = _grid_starts(land, grid)
    runs = run_starts(land, list(specs.values()), starts, steps)
    points = np.asarray([p for _, p in named], dtype=float)
    ends, basin, hparams = {}, {}, {}
    for (label, (name, hp)), (path, _) in zip(specs.items(), runs):
        ends[label] = path[-1].numpy()
        basin[label] = _classify(land, ends[label], points, float(radius))
        used = {"name": name, **resolve(name).preset, **hp}
        if "lr" not in used:  # the default rate it ran at, as a race's table shows it
            used.update(_defaults_used(name, hp))
        hparams[label] = used
    return BasinsDemo(landscape=land, minima=named, hparams=hparams, grid=grid, steps=steps,
                      radius=float(radius), xs=xs, ys=ys, starts=starts, ends=ends,
                      basin=basin)
