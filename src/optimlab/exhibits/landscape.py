"""The two landscape exhibits: ``ill-conditioned`` and ``saddle``.

``ill-conditioned``: SGD, momentum, RMSprop and Adam on :math:`\\theta_1^2 + 10\\theta_2^2`
and on the same ravine turned by 45 degrees, side by side: per-coordinate (diagonal)
adaptivity straightens the axis-aligned ravine and not the rotated one.
``saddle``: gradient descent is slow to leave a saddle; momentum, Adam and gradient noise
leave it sooner.

Each defines its own small :class:`~optimlab.landscapes.base.Landscape` (:data:`RAVINE`,
:data:`RAVINE_ROTATED`, :data:`SADDLE`) and runs the optimizers through
:func:`optimlab.landscapes.race`. :func:`ravine_alignment` is the ill-conditioned
comparison on the catalog's ``quadratic`` and ``rotated_quadratic``, with tuned rates
(the tour's ill-conditioning section).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .._table import listed, text_table
from ..landscapes.base import Landscape
from ..landscapes.functions import get as get_landscape
from ..landscapes.race import race as run_race
from ..landscapes.result import Race
from ..optim.base import check_range
from ..optim.palette import variant_styles
from ..optim.registry import resolve
from .base import Demo, check_seed, pyplot, steps_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ILL_CONDITIONED_OPTIMIZERS", "RAVINE", "RAVINE_ROTATED", "SADDLE",
           "SADDLE_OPTIMIZERS", "AlignmentDemo", "IllConditionedDemo", "SaddleDemo",
           "ill_conditioned", "ravine_alignment", "saddle"]


# -- ill-conditioned --------------------------------------------------------------------------


def _ravine(x: torch.Tensor) -> torch.Tensor:
    return x[..., 0] ** 2 + 10 * x[..., 1] ** 2


#: cos 45 degrees = sin 45 degrees, one number so the rotated ravine is exactly symmetric
_C45 = math.sqrt(0.5)


def _ravine_rotated(x: torch.Tensor) -> torch.Tensor:
    u = _C45 * (x[..., 0] + x[..., 1])  # the long axis, along the diagonal (1, 1)
    v = _C45 * (x[..., 1] - x[..., 0])  # the steep axis, along (-1, 1)
    return u**2 + 10 * v**2


RAVINE = Landscape(
    name="x^2 + 10y^2",
    dim=2,
    f=_ravine,
    domain=((-6.0, 6.0), (-6.0, 6.0)),
    minima=((0.0, 0.0),),
    min_value=0.0,
    challenges=("ill-conditioned",),
    start=(5.0, 5.0),
    description=("theta1^2 + 10 theta2^2: curvatures 2 and 20 (condition number 10). "
                 "Plain gradient descent is stable only for lr < 2/20 = 0.1, a step that "
                 "is small along theta1."),
    log_scale=True,
    params={"a": 1.0, "b": 10.0},
)

RAVINE_ROTATED = Landscape(
    name="u^2 + 10v^2, turned 45 degrees",
    dim=2,
    f=_ravine_rotated,
    domain=((-8.0, 8.0), (-8.0, 8.0)),
    minima=((0.0, 0.0),),
    min_value=0.0,
    challenges=("ill-conditioned", "ravine"),
    start=(0.0, 10 * _C45),  # (5, 5) turned by 45 degrees
    description=("The same ravine with its axes on the diagonals: u = (x + y)/sqrt(2), "
                 "v = (y - x)/sqrt(2), the same curvatures 2 and 20, started from (5, 5) "
                 "turned by 45 degrees. The steep direction mixes both coordinates, so "
                 "no per-coordinate step size fits it."),
    log_scale=True,
    params={"a": 1.0, "b": 10.0, "angle": 45.0},
)

#: the ill-conditioned race: label -> registry name and hyperparameters.
ILL_CONDITIONED_OPTIMIZERS = {
    "sgd, near limit": {"name": "sgd", "lr": 0.09},
    "sgd, safe": {"name": "sgd", "lr": 0.02},
    "momentum": {"name": "momentum", "lr": 0.01},
    "rmsprop": {"name": "rmsprop", "lr": 0.3},
    "adam": {"name": "adam", "lr": 0.1},
}

def _diagonal(race: Race, label: str) -> bool:
    """Whether ``label``'s rule rescales each coordinate (a diagonal preconditioner: the
    catalog's adaptive learning rate, as RMSprop, Adam and Adagrad)."""
    return resolve(race.hparams[label]["name"]).info.adaptive


def _sign_flips(values: np.ndarray) -> int:
    signs = np.sign(values)
    signs = signs[signs != 0]
    return int(np.count_nonzero(signs[1:] != signs[:-1]))


def _contours(ax, landscape: Landscape, resolution: int = 160) -> None:
    """Log-scaled filled contours of a 2-D landscape over its domain, its minima marked."""
    (x0, x1), (y0, y1) = landscape.domain
    xs, ys = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    zs = landscape.f(torch.from_numpy(np.stack([xs, ys], -1))).numpy()
    shown = np.log10(zs - zs.min() + 1e-3) if landscape.log_scale else zs
    ax.contourf(xs, ys, shown, levels=25, cmap="bone", alpha=0.6)
    ax.contour(xs, ys, shown, levels=12, colors="k", linewidths=0.3, alpha=0.4)
    if landscape.minima:
        m = np.asarray(landscape.minima, dtype=float)
        ax.plot(m[:, 0], m[:, 1], "*", color="white", mec="k", ms=14, zorder=5)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")


def _pair_rows(aligned: Race, rotated: Race) -> list[list[str]]:
    rows = []
    for label in aligned.labels:
        a, r = aligned.metrics[label], rotated.metrics[label]
        lr_a, lr_r = aligned.hparams[label].get("lr"), rotated.hparams[label].get("lr")
        lr = f"{lr_a:.3g} (both)" if lr_a == lr_r else f"{lr_a:.3g} / {lr_r:.3g}"
        if label in aligned.tuning_edge or label in rotated.tuning_edge:
            lr += " (grid edge)"
        rows.append([label, aligned.hparams[label]["name"], lr,
                     _steps_to_tol(aligned, label), f"{a.final_loss:.3g}",
                     _steps_to_tol(rotated, label), f"{r.final_loss:.3g}"])
    return rows


def _steps_to_tol(race: Race, label: str) -> str:
    """The race table's "steps to gap" cell (marked ``(left)`` where the run did not stay
    within the tolerance, :meth:`Race.steps_to_tol_text`), "never" where it never came."""
    m = race.metrics[label]
    return "never" if m.steps_to_tol is None else race.steps_to_tol_text(label)


def _pair_headers(aligned: Race) -> list[str]:
    tol = f"{aligned.tol:g}"
    return ["optimizer", "rule", "lr (aligned / rotated)", f"aligned: steps to f<{tol}",
            "aligned: final f", f"rotated: steps to f<{tol}", "rotated: final f"]


#: final losses this close (relative) count as equal in the findings: far above float64
#: rounding (about 1e-16 an operation, the only difference between the ravines for a rule
#: that does not rescale coordinates) and far below the 2 significant digits shown.
SAME_LOSS_RTOL = 1e-9


def _findings(aligned: Race, rotated: Race, reference: str | None) -> list[str]:
    """What the table shows, per diagonal rule: its steps to f < tol and final loss on
    each ravine, beside ``reference``'s (rules that do not rescale coordinates, such as
    SGD and momentum, do the same on both); without a ``reference`` (None) that line is
    left out."""
    def said(race: Race, label: str) -> str:
        m = race.metrics[label]
        steps = "never" if m.steps_to_tol is None else f"in {m.steps_to_tol} steps"
        return f"{steps} (final f {m.final_loss:.2g})"

    def better(label: str) -> str:
        """Where ``label`` did better: fewer steps to tol, else a final loss lower by more
        than :data:`SAME_LOSS_RTOL` (relative); "the same on both" when neither is.

        The rotated ravine is the aligned one in turned coordinates, so a rule that does
        the same on both (SGD; any rule at ``steps=0``) ends with final losses that differ
        by float64 rounding alone (275 and 275.0000000000001): not a difference to report.
        """
        a, r = aligned.metrics[label], rotated.metrics[label]
        inf = float("inf")
        steps_a = inf if a.steps_to_tol is None else a.steps_to_tol
        steps_r = inf if r.steps_to_tol is None else r.steps_to_tol
        if steps_a != steps_r:
            return "better aligned" if steps_a < steps_r else "better rotated"
        # a non-finite loss (diverged) ranks last; two of them are a tie
        loss_a, loss_r = (m.final_loss if math.isfinite(m.final_loss) else inf for m in (a, r))
        if math.isclose(loss_a, loss_r, rel_tol=SAME_LOSS_RTOL):
            return "the same on both"
        return "better aligned" if loss_a < loss_r else "better rotated"

    tol = f"{aligned.tol:g}"
    # what the rules raced here do, said of those alone (the sentence named RMSprop and Adam
    # in a race of momentum and Adam)
    names = {aligned.hparams[label]["name"] for label in aligned.labels}
    plain = [shown for name, shown in (("sgd", "SGD"), ("momentum", "momentum")) if name in names]
    scaled = sorted({resolve(aligned.hparams[label]["name"]).cls.__name__
                     for label in aligned.labels if _diagonal(aligned, label)})
    clauses = []
    if plain:
        clauses.append(f"{listed(plain)} {'do' if len(plain) > 1 else 'does'} not depend on "
                       f"the coordinates, so {'they do' if len(plain) > 1 else 'it does'} the "
                       "same on both ravines")
    if scaled:
        clauses.append(f"{listed(scaled)} {'rescale' if len(scaled) > 1 else 'rescales'} each "
                       f"coordinate, so turning the ravine changes "
                       f"{'them' if len(scaled) > 1 else 'it'} (real ravines are rarely "
                       "aligned with the axes)")
    known = [text for name, text in (
        ("RMSprop", "RMSprop's rescaling fits the aligned bowl exactly"),
        ("Adam", "an Adam step is about lr long whatever the gradient")) if name in scaled]
    lead = "; ".join(clauses + ([", while ".join(known)] if known else []))
    lines = [(lead[:1].upper() + lead[1:] + "; " if lead else "")
             + "each line says where the rule did better in this run:"]
    if reference is not None:
        lines.append(f"f<{tol}, axis-aligned vs rotated: {reference} "
                     f"{said(aligned, reference)} vs {said(rotated, reference)}")
    for label in aligned.labels:
        if _diagonal(aligned, label):
            lines.append(f"f<{tol}, axis-aligned vs rotated: {label} {said(aligned, label)} "
                         f"vs {said(rotated, label)}: {better(label)}")
    return lines


def _styles(race: Race) -> dict[str, tuple[str, str]]:
    """``(colour, line style)`` of each run of ``race``: its optimizer's catalog colour, the
    variants of one optimizer in shades of it (:func:`~optimlab.optim.palette.variant_styles`)."""
    return variant_styles(race.labels, {label: race.hparams[label]["name"]
                                        for label in race.labels})


def _plot_pair(aligned: Race, rotated: Race, title: str):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1, 1.1]})
    styles = _styles(aligned)
    colors = {label: c for label, (c, _) in styles.items()}
    for ax, race, name in ((axes[0], aligned, "axis-aligned"), (axes[1], rotated, "rotated")):
        _contours(ax, race.landscape)
        for label in race.labels:
            path = np.asarray(race.paths[label])
            path = path[np.isfinite(path).all(axis=1)]
            ax.plot(path[:, 0], path[:, 1], marker="o", ls=styles[label][1],
                    color=colors[label], ms=2, lw=1.4, label=race.legend_label(label),
                    gid=f"path:{label}")
        ax.plot(*race.start, "o", color="k", mec="white", ms=8, zorder=6)
        ax.set_title(f"{name}: {race.landscape.name}")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(fontsize=7, loc="lower left")
    bx = axes[2]
    for race, style, name in ((aligned, "-", "aligned"), (rotated, "--", "rotated")):
        for label in race.labels:
            y = np.asarray(race.losses[label], dtype=float)
            y = np.where(np.isfinite(y), np.maximum(y - race.landscape.min_value, 1e-300),
                         np.nan)
            bx.semilogy(np.arange(len(y)), y, style, color=colors[label], lw=1.5,
                        label=f"{label}, {name}", gid=f"loss:{label}, {name}")
    bx.axhline(aligned.tol, color="gray", ls=":", lw=1)
    top = max(float(np.nanmax(race.losses[label][:1])) for race in (aligned, rotated)
              for label in race.labels)
    bx.set_ylim(max(1e-30, bx.get_ylim()[0]), 10 * top)
    bx.set_xlabel("step")
    bx.set_ylabel("f - f* (solid: axis-aligned, dashed: rotated)")
    bx.set_title("loss")
    bx.grid(True, which="major", alpha=0.3)
    bx.legend(fontsize=7, ncol=2, loc="lower left")
    fig.suptitle(title)
    return fig


@dataclass(repr=False)
class IllConditionedDemo(Demo):
    """SGD, momentum, RMSprop and Adam on :math:`\\theta_1^2 + 10\\theta_2^2` from (5, 5),
    and on the same ravine turned by 45 degrees (:data:`RAVINE_ROTATED`).

    Attributes:
        race: the race on the axis-aligned ravine (:class:`~optimlab.landscapes.result.Race`).
        rotated: the same optimizers and learning rates on the rotated ravine, from the
            start turned with it. Gradient descent and momentum do not depend on the
            coordinates, so their paths there are the aligned ones turned and their losses
            the same; RMSprop and Adam rescale each coordinate, which fits only the
            aligned ravine.
        flips: label -> sign changes of :math:`\\theta_2` in the first ``window`` steps
            on the aligned ravine (zig-zagging across the steep direction).
        lag: label -> :math:`|\\theta_1|` when :math:`|\\theta_2|` first drops below
            ``lag_at`` on the aligned ravine (how far the shallow direction trails the
            steep one; None if never).
    """

    race: Race
    rotated: Race
    flips: dict[str, int]
    lag: dict[str, float | None]
    window: int = 20
    lag_at: float = 0.1
    name: str = "ill-conditioned"
    title: str = ("theta1^2 + 10 theta2^2 from (5, 5), axis-aligned and turned by 45 degrees: "
                  "per-coordinate step sizes fit the ravine only when it is aligned with the "
                  "axes (compare each rule with itself on the two)")

    def table(self) -> str:
        rows = []
        for row, label in zip(_pair_rows(self.race, self.rotated), self.race.labels):
            lag = self.lag[label]
            rows.append(row + [str(self.flips[label]), "-" if lag is None else f"{lag:.3f}"])
        table = text_table(_pair_headers(self.race) + [
            f"theta2 sign flips (first {self.window})",
            f"|theta1| when |theta2|<{self.lag_at:g}"], rows)
        return "\n".join([table, *self.findings()])

    def findings(self) -> list[str]:
        """What the numbers say: steps to f < tol and final f of each diagonal rule on
        each ravine, beside SGD near its stability limit."""
        return _findings(self.race, self.rotated, "sgd, near limit")

    def plot(self) -> Figure:
        return _plot_pair(self.race, self.rotated, "The same ravine, axis-aligned and "
                          "turned by 45 degrees (same learning rates)")


def ill_conditioned(steps: int = 200, tol: float = 1e-3) -> IllConditionedDemo:
    """Race SGD (at two stable learning rates), momentum, RMSprop and Adam on the ravine,
    axis-aligned and rotated.

    SGD's learning rate must stay below 2/20 = 0.1 for the steep direction: near that
    limit (0.09) it zig-zags across theta2, well below it (0.02) it crawls along theta1.
    Momentum 0.9 with lr 0.01, RMSprop with lr 0.3 and Adam with lr 0.1 are also stable;
    on the aligned ravine RMSprop and Adam move both coordinates at about the same speed,
    straight down the diagonal. The same optimizers then run on the ravine turned by 45
    degrees: SGD and momentum do exactly what they did (turned), while RMSprop and Adam,
    whose per-coordinate scaling no longer matches the ravine's axes, slow down.
    """
    optimizers = ILL_CONDITIONED_OPTIMIZERS
    race = run_race(RAVINE, optimizers, start=RAVINE.start, steps=steps, tol=tol)
    rotated = run_race(RAVINE_ROTATED, optimizers, start=RAVINE_ROTATED.start, steps=steps,
                       tol=tol)
    window, lag_at = 20, 0.1
    flips, lag = {}, {}
    for label, path in race.paths.items():
        path = np.asarray(path)
        flips[label] = _sign_flips(path[: window + 1, 1])
        below = np.flatnonzero(np.abs(path[:, 1]) < lag_at)
        lag[label] = float(abs(path[below[0], 0])) if below.size else None
    return IllConditionedDemo(race=race, rotated=rotated, flips=flips, lag=lag,
                              window=window, lag_at=lag_at)


#: the tour's ill-conditioning comparison: optimizers with their rates tuned
ALIGNMENT_OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")


@dataclass(repr=False)
class AlignmentDemo(Demo):
    """The same tuned optimizers on the catalog's ``quadratic`` (axis-aligned) and
    ``rotated_quadratic`` (the same bowl turned by ``angle`` degrees).

    Attributes:
        aligned, rotated: the two races (each optimizer's rate tuned on each bowl).
    """

    aligned: Race
    rotated: Race
    name: str = "ravine-alignment"
    title: str = ""

    def __post_init__(self) -> None:
        kappa = self.aligned.landscape.params.get("kappa")
        angle = self.rotated.landscape.params.get("angle")
        self.title = (f"A bowl with condition number {kappa:g}, axis-aligned and turned by "
                      f"{angle:g} degrees, {self.aligned.steps} steps, rates tuned on each")

    def table(self) -> str:
        return "\n".join([text_table(*self.rows()), *self.notes()])

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """The table's headers and rows (text cells): per optimizer, its tuned rate and
        its steps to f < tol and final loss on each bowl."""
        return _pair_headers(self.aligned), _pair_rows(self.aligned, self.rotated)

    def notes(self) -> list[str]:
        """The lines under the table: how the rates were tuned, rates at a grid edge,
        then :meth:`findings`."""
        notes = [n for n in self.aligned.notes() if not n.startswith(tuple(self.aligned.labels))]
        for race, name in ((self.aligned, "axis-aligned"), (self.rotated, "rotated")):
            notes += [f"{name}: {n}" for n in race.notes()
                      if n.startswith(tuple(race.labels))]
        return notes + self.findings()

    def findings(self) -> list[str]:
        """Steps to f < tol and final f of each diagonal rule on each bowl, beside tuned
        SGD (:meth:`reference`; the comparison is left out when there is none)."""
        return _findings(self.aligned, self.rotated, self.reference())

    def reference(self) -> str | None:
        """The run the diagonal rules are compared with: the first label whose rule does
        not rescale coordinates (SGD in the default order, else momentum, say; the
        catalog's ``adaptive`` says which), else None."""
        return next((label for label in self.aligned.labels
                     if not _diagonal(self.aligned, label)), None)

    def plot(self) -> Figure:
        return _plot_pair(self.aligned, self.rotated, self.title)


def ravine_alignment(kappa: float = 50.0, angle: float = 45.0, steps: int = 300,
                     optimizers=ALIGNMENT_OPTIMIZERS, tol: float = 1e-3) -> AlignmentDemo:
    """Race tuned ``optimizers`` (by default SGD, momentum, RMSprop and Adam) on the
    ill-conditioned ``quadratic`` and on ``rotated_quadratic`` (the same bowl turned by
    ``angle`` degrees, from the start turned with it), each rate tuned on each bowl.

    SGD and momentum do not see the coordinates: their tuned runs are the same on both.
    RMSprop, a pure per-coordinate rescaling, fits the axis-aligned bowl exactly and is
    far ahead there; on the rotated bowl its advantage is gone.
    """
    spec = {name: {} for name in optimizers}
    aligned = run_race(get_landscape("quadratic", kappa=kappa), spec, steps=steps,
                       tune=True, tol=tol)
    rotated = run_race(get_landscape("rotated_quadratic", kappa=kappa, angle=angle), spec,
                       steps=steps, tune=True, tol=tol)
    return AlignmentDemo(aligned=aligned, rotated=rotated)


# -- saddle -----------------------------------------------------------------------------------


def _saddle(x: torch.Tensor) -> torch.Tensor:
    return x[..., 0] ** 2 - x[..., 1] ** 2 + x[..., 1] ** 4 / 4


SADDLE = Landscape(
    name="x^2 - y^2 + y^4/4",
    dim=2,
    f=_saddle,
    domain=((-1.5, 1.5), (-2.5, 2.5)),
    minima=((0.0, math.sqrt(2.0)), (0.0, -math.sqrt(2.0))),
    min_value=-1.0,
    challenges=("saddle",),
    start=(1.0, 1e-6),
    description=("The saddle x^2 - y^2 at the origin; the y^4/4 term (below 0.25 for "
                 "|y| < 1) gives the escape somewhere to go: minima at (0, +-sqrt(2)), "
                 "value -1."),
    params={},
)

#: the saddle race: label -> registry name and hyperparameters (GD + noise is raced apart).
SADDLE_OPTIMIZERS = {
    "gd": {"name": "gd", "lr": 0.1},
    "momentum": {"name": "momentum", "lr": 0.1},
    "adam": {"name": "adam", "lr": 0.1},
}


@dataclass(repr=False)
class SaddleDemo(Demo):
    """Escaping the saddle of :math:`x^2 - y^2` from just beside it.

    Attributes:
        races: the noiseless race (GD, momentum, Adam) and the noisy one (GD with
            gradient noise of std ``noise``).
        escape: label -> first step with :math:`|y| > 1` (None: still stuck).
        start, noise, threshold: the start point, the noise std and the escape threshold.
    """

    races: tuple
    escape: dict[str, int | None]
    start: tuple[float, float]
    noise: float
    threshold: float = 1.0
    name: str = "saddle"
    title: str = ""

    def __post_init__(self) -> None:
        self.title = (f"Saddle of x^2 - y^2 (+ y^4/4), start {self.start}: first step with "
                      f"|y| > {self.threshold:g}")

    def _runs(self):
        for race in self.races:
            for label in race.paths:
                yield label, race

    def _styles(self) -> dict[str, tuple[str, str]]:
        """``(colour, line style)`` per run: its optimizer's catalog colour; GD with noise
        a shade of GD's (:func:`~optimlab.optim.palette.variant_styles`)."""
        runs = list(self._runs())
        return variant_styles([label for label, _ in runs],
                              {label: race.hparams[label]["name"] for label, race in runs})

    def table(self) -> str:
        rows = []
        for label, race in self._runs():
            hp = ", ".join(f"{k}={v:g}" for k, v in race.hparams[label].items()
                           if k != "name" and isinstance(v, (int, float)))
            rows.append([label, race.hparams[label]["name"], hp,
                         f"{race.noise:g}", steps_text(self.escape[label]),
                         f"{race.metrics[label].final_loss:.3g}"])
        return text_table(["optimizer", "rule", "hyperparameters", "gradient noise",
                              f"first step |y|>{self.threshold:g}", "final f"], rows)

    def plot(self) -> Figure:
        plt = pyplot()
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
        (x0, x1), (y0, y1) = SADDLE.domain
        xs, ys = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
        zs = _saddle(torch.from_numpy(np.stack([xs, ys], -1))).numpy()
        ax.contourf(xs, ys, zs, levels=30, cmap="viridis", alpha=0.85)
        ax.contour(xs, ys, zs, levels=[0.0], colors="white", linewidths=0.8)
        # above the paths (which end on the upper minimum and pass the saddle): the legend
        # lists them, so they must show
        ax.plot(*zip(*SADDLE.minima), "*", color="gold", ms=14, mec="k", label="minima",
                zorder=20, gid="minima")
        ax.plot(0, 0, "x", color="red", ms=9, mew=2, label="saddle", zorder=20, gid="saddle")
        styles = self._styles()
        colors = {label: c for label, (c, _) in styles.items()}
        for i, (label, race) in enumerate(self._runs()):
            path = np.asarray(race.paths[label])
            # a dot per step (piling up where a run stalls); the first run (gd) on top
            ax.plot(path[:, 0], path[:, 1], marker="o", ls=styles[label][1],
                    color=colors[label], ms=3, lw=1.5, zorder=10 - i, label=label,
                    gid=f"path:{label}")
        ax.plot(*self.start, "s", color="k", ms=6, label="start")
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title("Paths (y starts at %g)" % self.start[1])
        ax.legend(fontsize=8, loc="lower right")
        for label, race in self._runs():
            y = np.abs(np.asarray(race.paths[label])[:, 1])
            esc = self.escape[label]
            text = f"{label} (|y|>{self.threshold:g} at step {steps_text(esc)})"
            bx.semilogy(np.arange(len(y)), np.maximum(y, 1e-12), color=colors[label], lw=2,
                        ls=styles[label][1], label=text, gid=f"loss:{label}")
        bx.axhline(self.threshold, color="gray", ls=":", lw=1)
        bx.set_xlabel("step")
        bx.set_ylabel("|y| (distance from the saddle along the escape direction)")
        bx.set_title("Gradient descent needs many steps to leave the saddle")
        bx.grid(True, which="both", alpha=0.3)
        bx.legend(fontsize=8, loc="lower right")
        return fig


def saddle(steps: int = 150, start: tuple[float, float] = (1.0, 1e-6), noise: float = 0.1,
           seed: int = 0, threshold: float = 1.0) -> SaddleDemo:
    """GD, momentum, Adam and noisy GD (all lr 0.1) from just beside a saddle.

    Along y the gradient is :math:`-2y`, so gradient descent only multiplies the tiny
    offset by 1.2 per step; momentum compounds that growth, Adam normalizes the tiny
    gradient to a full-size step, and gradient noise kicks y away from 0 at once.
    """
    try:
        point = tuple(float(v) for v in start)
    except (TypeError, ValueError):
        point = ()
    if len(point) != 2 or not all(math.isfinite(v) for v in point):
        raise ValueError(f"start must be 2 finite numbers (x, y), got {start!r}")
    start = point
    check_range("threshold", threshold)
    if not threshold > abs(start[1]):  # every run would "escape" at step 0
        raise ValueError(f"threshold must be above the start's |y| ({abs(start[1]):g}): a run "
                         f"escapes when its |y| first exceeds it, got {threshold!r}")
    seed = check_seed(seed)  # the exhibits' one rule (race would also take None)
    clean = run_race(SADDLE, SADDLE_OPTIMIZERS, start=start, steps=steps, seed=seed)
    noisy = run_race(SADDLE, {"gd + noise": {"name": "gd", "lr": 0.1}}, start=start,
                     steps=steps, noise=noise, seed=seed)
    escape = {}
    for race in (clean, noisy):
        for label, path in race.paths.items():
            out = np.flatnonzero(np.abs(np.asarray(path)[:, 1]) > threshold)
            escape[label] = int(out[0]) if out.size else None
    return SaddleDemo(races=(clean, noisy), escape=escape, start=start, noise=noise,
                      threshold=threshold)


