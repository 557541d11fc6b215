"""What a race returns: paths, losses and a metrics table per optimizer."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._table import text_table
from .base import Landscape, min_value_floor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .plots import Animation

__all__ = ["Race", "RaceMetrics", "below_min_value"]


@dataclass(frozen=True)
class RaceMetrics:
    """One optimizer's result on a landscape.

    ``steps_to_tol`` is the first step whose loss is within ``tol`` of the landscape's
    minimum (None if never), whether or not the run stayed there: a run may reach the
    tolerance and leave it (its final ``gap`` then is above ``tol``, which the table marks
    ``(left)``: :meth:`Race.rows`). ``diverged`` is set (:func:`~optimlab.landscapes.race.diverged`)
    when the path or its loss became non-finite (a point where f is not finite, such as a
    log stepped below 0, too), when the gap to the minimum (f - f*) ends more than ten times
    the gap at the start (the run went uphill: ``race.DIVERGENCE_FACTOR``, as the training
    lab's ``divergence_factor``) and above a tenth of the landscape's typical gap (the median
    of f - f* over its domain: ``race.DIVERGENCE_FLOOR``, so that a noisy run from the
    minimum itself, whose start gap is 0, is not diverged for ending a hair above it), or
    when the path left the plotting domain far behind (by more than ten domain widths).

    On a landscape whose minimizer is not known (``minima=()`` without the ``"saddle"``
    tag and with a ``min_value`` that is not -inf) the rules are those above but for the
    distance, which is NaN (not known): ``gap`` and ``steps_to_tol`` are measured from
    ``min_value``, or, where that is not known either (None), are NaN and None, the
    divergence rule then measuring from the lowest value f takes on the domain.

    On a landscape without a minimum (a saddle that is unbounded below: ``minima`` is
    empty and it is tagged ``"saddle"``, or its ``min_value`` is -inf:
    :attr:`~optimlab.landscapes.base.Landscape.unbounded`) ``gap`` and ``distance`` are
    NaN and ``steps_to_tol`` None, and two fields say what happened instead: ``escaped``
    is True once the path's loss fell below the landscape's ``min_value``, the lowest
    value on its plotting domain (so the path has gone further downhill than any point of
    the picture: it has left the saddle for good), and ``steps_to_escape`` is the first
    such step (None if never). On landscapes with a minimum, known or not (or without a
    finite ``min_value``) both are None. There leaving the domain downhill is the goal, so
    a run that fell without bound is not diverged (its ``final_loss`` is -inf, also where
    the overflow ended it in NaN): ``diverged`` is set only by a loss that reached +inf,
    or by a NaN loss or non-finite point that did not come after a fall below the start
    or ``min_value``.
    """

    label: str
    optimizer: str
    final_loss: float
    gap: float
    distance: float
    steps_to_tol: int | None
    diverged: bool
    escaped: bool | None = None
    steps_to_escape: int | None = None


@dataclass
class Race:
    """Optimizers raced on one landscape from one start.

    Attributes:
        landscape: the :class:`Landscape` raced on.
        start: the start point, shape ``(dim,)``.
        steps: number of steps each optimizer took.
        paths: label -> array ``(steps + 1, dim)``, start included.
        losses: label -> array ``(steps + 1,)``: f along the path (without noise).
        hparams: label -> the registry name and hyperparameters actually used (after
            tuning, if any), e.g. ``{"name": "adam", "lr": 0.05}``, with a non-zero default
            ``weight_decay`` the optimizer fills in (``{"name": "adamw", "lr": 0.05,
            "weight_decay": 0.01}``): it keeps the run off the minimum.
        metrics: label -> :class:`RaceMetrics`.
        tol: the tolerance behind ``steps_to_tol``.
        noise, seed: gradient noise scale and seed.
        tuning: label -> ``{lr: final loss}`` of the learning-rate search, if ``tune``:
            every rate tried, the grid's and any beyond its edges, in increasing order,
            read as the metrics' ``final_loss`` is: ``-inf`` for a run that fell without
            bound (to -inf, or NaN after falling below its start or ``min_value``), ``inf``
            for any other loss that is not finite (a blow-up).
        tuned_by: how the learning rates were ranked
            (:data:`~optimlab.landscapes.race.TUNE_CRITERION`, or on a landscape without a
            minimum :data:`~optimlab.landscapes.race.TUNE_ESCAPE_CRITERION`), "" without
            tuning.
        tuning_scores: label -> ``{lr: score}``, the criterion's value for each rate
            tried (lower is better; ``inf`` for a run that diverged; on a landscape without
            a minimum nor a finite ``min_value``, ``-inf`` for a run that fell without
            bound).
        tuning_edge: label -> ``"low"``, ``"high"`` or ``"low and high"`` for each
            optimizer whose tuned rate is still the smallest or largest rate tried after
            any grid extension (the best rate may lie beyond it); absent otherwise.
        tuning_extended: label -> the rates tried beyond the grid's edges because the
            best rate of the grid was on one (``race(..., extend=True)``); absent when
            the grid was not extended.
    """

    landscape: Landscape
    start: np.ndarray
    steps: int
    paths: dict[str, np.ndarray]
    losses: dict[str, np.ndarray]
    hparams: dict[str, dict]
    metrics: dict[str, RaceMetrics]
    tol: float
    noise: float = 0.0
    seed: int = 0
    tuning: dict[str, dict[float, float]] = field(default_factory=dict)
    tuned_by: str = ""
    tuning_scores: dict[str, dict[float, float]] = field(default_factory=dict)
    tuning_edge: dict[str, str] = field(default_factory=dict)
    tuning_extended: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """The race labels, in the order the optimizers were given (the keys of
        :attr:`paths`)."""
        return list(self.paths)

    def legend_label(self, label: str) -> str:
        """``label (lr=0.05, betas=(0.9, 0.999))``: the values actually used."""
        hp = {k: v for k, v in self.hparams[label].items() if k != "name"}
        text = ", ".join(f"{k}={_fmt(v)}" for k, v in hp.items())
        return f"{label} ({text})" if text else label

    def table(self) -> str:
        """The metrics as a plain-text table (:meth:`rows`), with :meth:`notes` under it."""
        return "\n".join([text_table(*self.rows()), *self.notes()])

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """The metrics table's headers and rows (text cells), for any renderer.

        Landscapes with a minimum get the gap and distance to it and the steps to within
        ``tol`` (the first step within it: ``steps_to_tol``), marked ``(left)`` where the
        run did not stay there, its final gap being above ``tol`` (:data:`LEFT_MARK`, said
        in :meth:`notes`), "-" where they are not known (a landscape whose minimizer, or
        minimum value, is not given); landscapes without one (saddles, unbounded below) get
        whether and when each run escaped instead. A tuned rate at the edge of the rates tried is marked
        ``(top of grid)`` or ``(bottom of grid)``.
        """
        minimum = not self.landscape.unbounded
        if minimum:
            headers = ["optimizer", "hyperparameters", "final loss", "gap to min",
                       "dist to min", f"steps to gap {self.tol:g}", "diverged"]
        else:
            headers = ["optimizer", "hyperparameters", "final loss", "escaped",
                       "steps to escape", "diverged"]
        rows = []
        for label, m in self.metrics.items():
            row = [label, self._hparams_text(label), f"{m.final_loss:.4g}"]
            if minimum:
                # NaN: not known (no minimizer given; no min_value given)
                row += ["-" if math.isnan(m.gap) else f"{m.gap:.3g}",
                        "-" if math.isnan(m.distance) else f"{m.distance:.3g}",
                        self.steps_to_tol_text(label)]
            else:
                row += ["-" if m.escaped is None else "yes" if m.escaped else "no",
                        "-" if m.steps_to_escape is None else str(m.steps_to_escape)]
            rows.append(row + ["yes" if m.diverged else "no"])
        return headers, rows

    def steps_to_tol_text(self, label: str) -> str:
        """``label``'s "steps to gap" cell: ``"-"`` where it never came within ``tol`` of the
        minimum (or there is none), the first step it did, and that step marked
        ``" (left)"`` (:data:`LEFT_MARK`) where its final gap is above ``tol`` (or not a
        number): it reached the tolerance and did not stay."""
        m = self.metrics[label]
        if m.steps_to_tol is None:
            return "-"
        return str(m.steps_to_tol) + ("" if m.gap <= self.tol else f" {LEFT_MARK}")

    def _left(self) -> list[str]:
        """The labels whose "steps to gap" cell is marked :data:`LEFT_MARK`."""
        return [label for label, m in self.metrics.items()
                if not self.landscape.unbounded and m.steps_to_tol is not None
                and not m.gap <= self.tol]

    def _below_min_value(self) -> float | None:
        """The lowest loss of any run inside the domain where it lies below the landscape's
        finite ``min_value`` by more than rounding (:func:`below_min_value`): that
        ``min_value`` is wrong. None otherwise."""
        worst = below_min_value(self.landscape, ((label, self.paths[label], self.losses[label])
                                                 for label in self.paths))
        return None if worst is None else worst[0]

    def notes(self) -> list[str]:
        """The lines under :meth:`table`: what "escaped" means where there is no minimum,
        what a ``(left)`` step to the tolerance means when a row has one, what "diverged"
        means when a run did, which runs a non-zero ``weight_decay`` keeps
        off the minimum (where a minimum is away from the origin, that the decay pulls
        towards), how the learning rates were tuned, which grids were extended beyond an edge, and
        which tuned rates still sit on the edge of the rates tried."""
        lines = []
        land = self.landscape
        if not land.minima and not land.unbounded:
            lines.append(f"no known minimizer: {land.name} gives minima=() without the "
                         "\"saddle\" tag, so it has a minimum, somewhere unknown: dist to min "
                         "is not known (-)" + (
                             f"; gap to min is measured from its min_value {land.min_value:g}"
                             if land.min_value is not None else
                             "; nor is its minimum value (min_value=None), so gap to min and "
                             "steps to gap are not known (-) either"))
        elif land.unbounded and land.min_value is not None and math.isfinite(land.min_value):
            lines.append(f"no minimum: {self.landscape.name} has none to converge to; "
                         f"escaped = loss below {self.landscape.min_value:g}, the lowest value "
                         "on the plotted domain, after which a run on a function unbounded "
                         "below keeps falling (its final loss says how far it ran, not how "
                         "well it converged)")
        elif land.unbounded:  # no lowest value to escape below: no escape column
            lines.append(f"no minimum: {self.landscape.name} has none to converge to (a run's "
                         "final loss says how far it ran, not how well it converged)")
        below = self._below_min_value()
        if below is not None:
            lines.append(f"gap to min below 0: f went down to {below:.6g}, below "
                         f"{land.name}'s min_value {land.min_value:g}, which is not f's "
                         "minimum: gaps and steps to gap are measured from a wrong floor")
        if self._left():
            lines.append(f"{LEFT_MARK} = reached a gap of {self.tol:g} at that step but ended "
                         "above it (the final gap says where it ended)")
        if any(m.diverged for m in self.metrics.values()):
            rule = _DIVERGED_NONE if land.unbounded else \
                _DIVERGED_UNKNOWN if land.min_value is None else _DIVERGED_MINIMUM
            lines.append(f"diverged = {rule}")
        decayed = [label for label, hp in self.hparams.items() if hp.get("weight_decay")]
        # decay towards 0 cannot move a run off a minimum at the origin (the quadratic's)
        off_origin = any(any(float(x) != 0.0 for x in minimum) for minimum in self.landscape.minima)
        if decayed and off_origin:
            lines.append(f"weight_decay (given, or the optimizer's default) pulls towards 0, so "
                         f"{', '.join(decayed)} settle{'s' if len(decayed) == 1 else ''} off "
                         "the minimum: part of the gap is the decay's")
        none_kept = self.every_rate_out()
        if self.tuned_by:
            lines.append(f"lr tuned by: {self.tuned_by} (a diverged run never wins"
                         f"{', unless every rate is out: then the smallest is shown' if none_kept else ''})")
        for label in none_kept:
            tried = sorted(self.tuning_scores[label])
            rates = f"every rate tried ({tried[0]:.3g} to {tried[-1]:.3g}) is" if len(tried) > 1 \
                else f"the one rate tried ({tried[0]:.3g}) is"
            lines.append(f"{label}: {rates} out by that criterion; the lr shown"
                         f"{', the smallest,' if len(tried) > 1 else ''} won nothing")
        for label, extra in self.tuning_extended.items():
            rates = ", ".join(f"{v:.3g}" for v in extra)
            if label in none_kept:  # no best rate: every one was out, these too
                lines.append(f"{label}: every rate of the grid was out, so {rates} were tried "
                             "too")
                continue
            where = "still on its edge" if label in self.tuning_edge else \
                "now inside the rates tried"
            lines.append(f"{label}: the grid's best rate was on its edge, so {rates} were "
                         f"tried too; the tuned lr {_fmt(self.hparams[label].get('lr'))} is "
                         f"{where}")
        for label, edge in self.tuning_edge.items():
            if label in none_kept:
                continue  # said above: no rate won, so no edge holds the best
            tried = sorted(self.tuning.get(label, ()))
            span = "" if len(tried) < 2 else f" (tried {tried[0]:.3g} to {tried[-1]:.3g})"
            lines.append(f"{label}: the tuned lr is the {_EDGE_WORDS.get(edge, edge)} rate "
                         f"tried{span}; the best rate may lie beyond it")
        return lines

    def every_rate_out(self) -> list[str]:
        """The tuned labels whose every rate tried is out by the criterion (every score inf):
        the rate shown is the smallest, no winner, and the table (and the playground) says
        so instead of marking it as the grid's best on an edge."""
        return [label for label, scores in self.tuning_scores.items()
                if scores and all(v == math.inf for v in scores.values())]

    def _hparams_text(self, label: str) -> str:
        parts = []
        for k, v in self.hparams[label].items():
            if k == "name":
                continue
            text = f"{k}={_fmt(v)}"
            if k == "lr" and label in self.every_rate_out():
                text += " (every rate out)"
            elif k == "lr" and label in self.tuning_edge:
                text += f" ({_EDGE_MARKS.get(self.tuning_edge[label], 'grid edge')})"
            parts.append(text)
        return ", ".join(parts)

    def plot(self, **kwargs: Any) -> Figure:
        """Contours with one path per optimizer and a loss-vs-step panel (matplotlib)."""
        from .plots import plot_race

        return plot_race(self, **kwargs)

    def animate(self, path: str | Path, **kwargs: Any) -> Animation:
        """Write an animation of the race: a GIF, and an MP4 beside it when ffmpeg exists
        (:func:`~optimlab.landscapes.plots.animate_race`). Returns the written paths as a
        list that a notebook shows as the GIF."""
        from .plots import animate_race

        return animate_race(self, path, **kwargs)

    def _repr_png_(self) -> bytes:
        import io

        from .plots import plt_close

        fig = self.plot()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        plt_close(fig)
        return buffer.getvalue()

    def __repr__(self) -> str:
        start = ", ".join(f"{v:.4g}" for v in np.asarray(self.start, dtype=float).reshape(-1))
        return (f"Race on {self.landscape.title} from ({start}), "
                f"{self.steps} steps\n{self.table()}")


_DIVERGED_MINIMUM = ("a loss or point that is not finite, a gap to the minimum that ends more "
                     "than ten times its start (and above a tenth of the median gap over the "
                     "domain), or a point more than ten domain widths outside the domain")
_DIVERGED_UNKNOWN = ("a loss or point that is not finite, a loss that ends more than ten times "
                     "as far above the lowest value of f on the domain (or the start's, if "
                     "lower) as it started (and above a tenth of the median over the domain "
                     "of that height), or a point more than ten domain widths outside the "
                     "domain")
_DIVERGED_NONE = ("a loss that reached +inf, or a loss or point that is not finite without a "
                  "fall downhill before it (leaving the domain downhill, even to -inf, is the "
                  "escape, not a divergence)")
#: The mark of a "steps to gap" cell whose run reached the tolerance and left it.
LEFT_MARK = "(left)"
_EDGE_MARKS = {"low": "bottom of grid", "high": "top of grid", "low and high": "only rate"}
_EDGE_WORDS = {"low": "smallest", "high": "largest", "low and high": "only"}


def below_min_value(landscape: Landscape, runs) -> tuple[float, str, int, list] | None:
    """``(loss, what, step, point)`` of the lowest loss of ``runs`` (``(what, path
    [steps + 1, dim], loss [steps + 1])`` triples, arrays or tensors) at a point inside
    the domain that lies below the landscape's finite ``min_value`` by more than rounding
    (a millionth of its size, at least 1e-6: the catalog's minimum values are rounded, or
    Newton-polished); None where there is none, or the landscape has no minimum
    (:attr:`~optimlab.landscapes.base.Landscape.unbounded`: going below is the escape
    there) or no finite ``min_value``. Outside the domain a ``min_value`` may be the
    domain's lowest value only (a log on [0.5, 2]), so going below it there is not
    counted."""
    floor = landscape.min_value
    if landscape.unbounded or floor is None or not math.isfinite(floor):
        return None
    bounds = np.asarray(landscape.domain, dtype=float)
    limit = min_value_floor(floor)
    worst = None
    for what, path, loss in runs:
        path = np.asarray(path, dtype=float).reshape(len(loss), -1)
        loss = np.asarray(loss, dtype=float).reshape(-1)
        with np.errstate(invalid="ignore"):
            inside = ((path >= bounds[:, 0]) & (path <= bounds[:, 1])).all(axis=1)
            low = np.where(inside & np.isfinite(loss), loss, np.inf)
        step = int(np.argmin(low)) if low.size else 0
        if low.size and low[step] < limit and (worst is None or low[step] < worst[0]):
            worst = (float(low[step]), what, step, path[step].tolist())
    return worst


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return str(value)
