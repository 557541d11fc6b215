"""Pictures of landscapes and races: contours, paths, loss curves, animations, surfaces.

matplotlib is an optional dependency: this module imports it only inside its functions,
so ``optimlab`` (and this module) import without it. When no matplotlib backend has been
chosen (no ``MPLBACKEND``, no ``backend`` in a matplotlibrc, no ``matplotlib.use``) the
non-interactive ``Agg`` backend is selected, so nothing here opens a window; figures are
returned, never shown.

Every optimizer keeps one colour in every figure, the catalog's
(:mod:`optimlab.optim.palette`): :func:`label_colors` gives a race's label its optimizer's
colour (``race.hparams[label]["name"]``), distinct within one figure. Path lines carry
``gid="path:<label>"``, loss curves ``gid="loss:<label>"``, so they can be found.
"""

from __future__ import annotations

import errno
import math
import os
import secrets
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# absolute: this module also loads on its own, outside the package
from optimlab._files import signals_deferred
from optimlab.landscapes.base import min_value_floor
from optimlab.landscapes.result import Race
from optimlab.optim import palette as _palette
from optimlab.optim.base import check_bool, check_int

__all__ = ["Animation", "PlotWarning", "animate_race", "label_colors", "plot_landscape", "plot_race",
           "plot_surface", "plt_close", "race_colors"]

#: the catalog's palette (:data:`optimlab.optim.palette.COLORS`)
PALETTE = _palette.COLORS

#: Colour maps: the landscape alone, and the muted background behind coloured race paths.
LANDSCAPE_CMAP = "viridis"
RACE_CMAP = "optimlab_race"  # the lighter three quarters of "bone", built on first use

_MAX_MARKERS = 60  # small markers along a path, at most this many
#: the finest contour or surface grid drawn: ``resolution`` x ``resolution`` evaluations
MAX_RESOLUTION = 2000
#: the most colour bands :func:`plot_landscape` draws (``levels``)
MAX_LEVELS = 1000
#: the highest ``fps`` of :func:`animate_race`: a GIF's frame delays are whole hundredths
#: of a second, and browsers slow delays under 20 ms down (to 100 ms)
MAX_GIF_FPS = 50


# --------------------------------------------------------------------------- helpers

def _pyplot():
    """``matplotlib.pyplot``, with the Agg backend selected if none has been chosen."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'optimlab[lab]'") from exc
    from matplotlib import rcsetup

    sentinel = getattr(rcsetup, "_auto_backend_sentinel", None)
    if sentinel is not None and dict.__getitem__(matplotlib.rcParams, "backend") is sentinel:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plt_close(fig) -> None:
    """Close ``fig`` (release it from pyplot's figure manager)."""
    _pyplot().close(fig)


def label_colors(labels, names=None) -> dict[str, str]:
    """A colour per label, no two the same: the catalog's
    :func:`optimlab.optim.palette.label_colors` (a label that is, or whose ``names[label]``
    is, a registry name gets that optimizer's colour in every figure)."""
    return _palette.label_colors(labels, names)


def race_colors(race) -> dict[str, str]:
    """The colours of a race's labels, each its registry name's (``race.hparams``)."""
    hparams = getattr(race, "hparams", None) or {}
    names = {label: hp["name"] for label, hp in hparams.items()
             if isinstance(hp, dict) and isinstance(hp.get("name"), str)}
    return label_colors(race.labels, names)


def _check_race(landscape, race, what: str) -> None:
    """The check of a picture that draws ``race`` on ``landscape`` (``race`` None: nothing
    to check): TypeError unless ``race`` is a :class:`~optimlab.landscapes.result.Race`,
    ValueError naming both landscapes unless it ran on ``landscape``, the same by name,
    dimension and parameters (its noise aside: a noisy race is drawn on the landscape
    without the noise), so one landscape's paths are never drawn on another's surface."""
    if race is None:
        return
    if not isinstance(race, Race):
        raise TypeError(f"race must be a Race (what optimlab.race returns) or None, got "
                        f"{type(race).__name__}")
    ran = race.landscape
    if (ran.name, ran.dim, ran.params) != (landscape.name, landscape.dim, landscape.params):
        def named(land) -> str:
            return f"{land.title} (dim={land.dim})" if ran.title == landscape.title \
                else land.title
        raise ValueError(f"{what}: the race ran on {named(ran)}, not on {named(landscape)}; "
                         f"draw it on its own landscape (race.landscape.plot_surface(race))")


def _require_2d(landscape, what: str) -> None:
    if landscape.dim != 2:
        raise ValueError(f"{what} needs a 2-D landscape; {landscape.name!r} has dim={landscape.dim}")


def _check_resolution(resolution) -> int:
    """``resolution`` as an int, or ValueError naming it: an integer (NumPy's included) in
    [2, :data:`MAX_RESOLUTION`]."""
    check_int("resolution", resolution, 2, MAX_RESOLUTION)
    return int(resolution)


def _grid(landscape, resolution: int):
    """Grid coordinates ``X, Y`` and values ``Z`` (float64, NaN where f is not finite)."""
    resolution = _check_resolution(resolution)
    (x0, x1), (y0, y1) = landscape.domain
    X, Y = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    points = torch.from_numpy(np.stack([X, Y], axis=-1))
    with torch.no_grad():
        Z = landscape.values(points)
    Z = Z.detach().to("cpu", torch.float64).numpy().copy()
    Z[~np.isfinite(Z)] = np.nan
    if not np.isfinite(Z).any():
        raise ValueError(f"{landscape.name!r} is not finite anywhere on its domain")
    return X, Y, Z


@dataclass(frozen=True)
class _Scale:
    """How values are coloured: ``f`` itself, or ``f - zmin + offset`` on a log scale."""

    log: bool
    zmin: float
    offset: float

    def __call__(self, z):
        z = np.asarray(z, dtype=float)
        if not self.log:
            return z
        return np.maximum(z - self.zmin, 0.0) + self.offset


def _scale_for(landscape, Z, log: bool | None = None) -> _Scale:
    """Log colours for ``log_scale`` landscapes or values spanning more than three decades.

    The span is measured from the grid minimum: (max - min) against the 5th percentile of
    (f - min), so a lone minimum does not count as decades by itself. ``log`` forces it.
    The offset (the bottom of the log scale) is the 0.2th percentile of f - min: the colours
    are spent on what covers the picture, not on the few grid points nearest the minimum.
    """
    finite = Z[np.isfinite(Z)]
    zmin = float(finite.min())
    diff = finite - zmin
    span = float(diff.max())
    positive = diff[diff > 0]
    if span <= 0 or not math.isfinite(span) or positive.size == 0:
        return _Scale(False, zmin, 0.0)
    if log is None:
        typical = float(np.percentile(diff, 5))
        decades = math.log10(span / typical) if typical > 0 else math.inf
        log = landscape.log_scale or decades > 3
    if not log:
        return _Scale(False, zmin, 0.0)
    # ties with the minimum (up to rounding: symmetric grids hit it several times) don't count
    above = diff[diff > 1e-12 * max(abs(zmin), span)]
    floor = float(np.percentile(above, 0.2)) if above.size else span * 1e-6
    return _Scale(True, zmin, max(floor, span * 1e-9, 1e-300))


def _check_cmap(cmap) -> None:
    """ValueError unless ``cmap`` is a ``Colormap`` or the name of one matplotlib knows."""
    try:
        from matplotlib import colormaps, colors
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'optimlab[lab]'") from exc

    if isinstance(cmap, colors.Colormap) or (isinstance(cmap, str) and (
            cmap == RACE_CMAP or cmap in colormaps)):
        return
    if isinstance(cmap, str):
        import difflib

        close = difflib.get_close_matches(cmap, list(colormaps), n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ValueError(f"cmap {cmap!r} is no matplotlib colour map{hint}")
    raise ValueError(f"cmap must be a colour map's name or a matplotlib Colormap, got "
                     f"{type(cmap).__name__}")


def _cmap(name):
    from matplotlib import colormaps, colors

    if name != RACE_CMAP:
        return name
    bone = colormaps["bone"]
    return colors.ListedColormap(bone(np.linspace(0.25, 1.0, 256)), name=RACE_CMAP)


def _draw_contours(ax, landscape, resolution: int, levels: int, cmap: str, colorbar: bool = True):
    """Filled contours (with faint contour lines) on ``ax``; returns the scale used."""
    from matplotlib import colors, ticker

    cmap = _cmap(cmap)

    X, Y, Z = _grid(landscape, resolution)
    scale = _scale_for(landscape, Z)
    S = np.ma.masked_invalid(scale(Z))
    lo, hi = float(S.min()), float(S.max())
    if scale.log:
        bounds = np.geomspace(lo, hi * (1 + 1e-9), int(levels) + 1)
        norm = colors.LogNorm(vmin=bounds[0], vmax=bounds[-1])
        label = "f - min + ε (log)"
    else:
        if hi <= lo:  # constant: one band
            lo, hi = lo - 0.5, hi + 0.5
        bounds = np.linspace(lo, hi, int(levels) + 1)
        norm = colors.Normalize(vmin=lo, vmax=hi)
        label = "f"
    filled = ax.contourf(X, Y, S, levels=bounds, norm=norm, cmap=cmap, extend="neither")
    ax.contour(X, Y, S, levels=bounds[::2], norm=norm, colors="k", linewidths=0.3, alpha=0.35)
    if colorbar:
        cbar = ax.figure.colorbar(filled, ax=ax, shrink=0.9, pad=0.02)
        cbar.set_label(label)
        if scale.log:
            cbar.locator = ticker.LogLocator()
            cbar.formatter = ticker.LogFormatterSciNotation()
        else:
            cbar.locator = ticker.MaxNLocator(7)
            cbar.formatter = ticker.ScalarFormatter()
        cbar.update_ticks()
    (x0, x1), (y0, y1) = landscape.domain
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    return scale


def _mark_minima_and_start(ax, landscape, start) -> None:
    if landscape.minima:
        m = np.asarray(landscape.minima, dtype=float).reshape(-1, landscape.dim)
        ax.plot(m[:, 0], m[:, 1], linestyle="none", marker="*", markersize=16,
                markerfacecolor="white", markeredgecolor="black", markeredgewidth=1.0,
                label="minimum" if len(m) == 1 else "minima", gid="minima", zorder=5)
    s = np.asarray(start, dtype=float).reshape(-1)
    ax.plot([s[0]], [s[1]], linestyle="none", marker="o", markersize=9,
            markerfacecolor="black", markeredgecolor="white", markeredgewidth=1.5,
            label="start", gid="start", zorder=6)


def plot_landscape(landscape, ax=None, resolution: int = 200, levels: int = 30,
                   cmap: str = LANDSCAPE_CMAP):
    """Filled contours of a 2-D landscape over its domain, minima (white stars) and start (black dot) marked.

    Colours are on a log scale (``f - min + ε``) when ``landscape.log_scale`` is set or the
    values span more than three decades. ``levels`` is the number of colour bands;
    ``cmap`` a matplotlib colour map (its name or a ``Colormap``). Draws into ``ax`` if
    given; returns the Figure.

    Raises:
        ValueError: ``resolution`` not an integer in [2, :data:`MAX_RESOLUTION`],
            ``levels`` not one in [2, :data:`MAX_LEVELS`], or ``cmap`` no colour map,
            before any figure is made.
    """
    _require_2d(landscape, "plot_landscape")
    resolution = _check_resolution(resolution)
    check_int("levels", levels, 2, MAX_LEVELS)
    levels = int(levels)
    _check_cmap(cmap)
    if ax is None:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6.4, 5.2), layout="constrained")
    _draw_contours(ax, landscape, resolution, levels, cmap)
    _mark_minima_and_start(ax, landscape, landscape.start)
    ax.set_title(landscape.title)
    # "best": the corner that covers neither the minima nor the start (styblinski_tang
    # starts in the upper right)
    ax.legend(loc="best", fontsize="small", framealpha=0.8)
    return ax.figure


# --------------------------------------------------------------------------- races

def _finite_path(path) -> np.ndarray:
    """The path's finite points (rows with a NaN or inf dropped), shape ``(n, dim)``."""
    p = np.asarray(path, dtype=float)
    p = p.reshape(len(p), -1) if p.size else np.zeros((0, 2))
    return p[np.isfinite(p).all(axis=1)]


def _is_diverged(race, label) -> bool:
    metrics = getattr(race, "metrics", {}) or {}
    return bool(label in metrics and metrics[label].diverged)


def _legend_text(race, label) -> str:
    text = race.legend_label(label)
    return f"{text} (diverged)" if _is_diverged(race, label) else text


def _gap_panel(race) -> bool:
    """Whether the loss panel draws f - f*: where the landscape has a minimum (known or not:
    not :attr:`~optimlab.landscapes.base.Landscape.unbounded`; a saddle's ``min_value`` is
    only the lowest point of its domain, not an f*) and a finite ``min_value``, which no
    run's loss goes below by more than rounding (a wrong ``min_value``: the panel draws f
    then, as a gap below 0 has no place on a log axis; the race warned of it)."""
    land = race.landscape
    fstar = land.min_value
    if land.unbounded or fstar is None or not math.isfinite(float(fstar)):
        return False
    floor = min_value_floor(float(fstar))
    for label in race.labels:
        loss = np.asarray(race.losses[label], dtype=float).reshape(-1)
        if (loss[np.isfinite(loss)] < floor).any():
            return False
    return True


def _loss_curve(race, label, as_gap: bool | None = None):
    """``(y, gap)`` for the loss panel: f - f* + tiny where :func:`_gap_panel` (``as_gap``,
    read afresh when None), else f (NaN where not finite)."""
    loss = np.asarray(race.losses[label], dtype=float).reshape(-1)
    if as_gap is None:
        as_gap = _gap_panel(race)
    if as_gap:
        fstar = float(race.landscape.min_value)
        tiny = 1e-16 * max(1.0, abs(fstar))
        gap = loss - fstar
        # the catalog's f* is rounded: a hair below it still counts as reaching it
        gap = np.where((gap < 0) & (loss > min_value_floor(fstar)), 0.0, gap)
        y, is_gap = gap + tiny, True
    else:
        y, is_gap = loss, False
    # a climb past the panel's top (:data:`_LIMIT`) is drawn to 1e250: nearer the largest
    # float, matplotlib's log transform overflows (a RuntimeWarning) drawing it
    return np.where(np.isfinite(y), np.clip(y, -1e250, 1e250), np.nan), is_gap


#: the largest magnitude of a loss panel's y-limit (and, on a log axis, the inverse of the
#: smallest): far from the largest float, so that matplotlib's transforms and log ticks on
#: the limits stay finite (a log axis up to 1e300 overflows in its tick locator)
_LIMIT = 1e200


def _loss_limits(race, curves):
    """y-limits and log flag: diverged runs may run off the top, the others stay in view;
    where every run diverged, their climb is the picture (it was a panel with one point at
    step 0, on the axis). On a landscape without a minimum (a saddle, unbounded below) the
    runs that escape fall without bound (to -1e80, where the rest lay flat at 0): the axis
    then ends as far below the escape line (its ``min_value``; without one, the start's
    loss) as the top is above it, so the escape is the picture and a run leaves the panel
    at the bottom."""
    keep = [y for label, y in curves.items() if not _is_diverged(race, label)]
    starts = [y[0] for y in curves.values() if y.size and np.isfinite(y[0])]
    values = np.concatenate([y[np.isfinite(y)] for y in keep] + [np.asarray(starts)]) \
        if keep else np.zeros(0)
    every = np.concatenate([y[np.isfinite(y)] for y in curves.values()]) if curves else np.zeros(0)
    if values.size == 0:
        values = every
    if values.size == 0:
        return None, False
    # runs that diverged climb to near the largest float: the limits (and the padding on
    # them) stay within :data:`_LIMIT`, or matplotlib's set_ylim overflows (to infinity)
    lo = float(np.clip(min(values.min(), every.min()), -_LIMIT, _LIMIT))
    hi = float(np.clip(values.max(), -_LIMIT, _LIMIT))
    if race.landscape.unbounded:
        line = race.landscape.min_value
        line = float(line) if line is not None and math.isfinite(line) else min(starts, default=hi)
        lo = max(lo, line - max(hi - line, 1.0))
    log = lo > 0 and hi / lo > 100
    if log:
        return (max(lo / 2, 1 / _LIMIT), min(hi * 2, _LIMIT)), True
    pad = 0.05 * (hi - lo) if hi > lo else max(1.0, abs(hi)) * 0.05
    return (max(lo - pad, -_LIMIT), min(hi + pad, _LIMIT)), False


@dataclass
class _RaceArtists:
    path_lines: dict
    end_markers: dict
    loss_lines: dict
    paths: dict
    curves: dict
    contour_ax: object
    loss_ax: object


def _draw_race(fig, race, resolution: int, show_loss: bool, levels: int = 30) -> _RaceArtists:
    landscape = race.landscape
    two_d = landscape.dim == 2
    show_loss = show_loss or not two_d
    colors = race_colors(race)
    markers = _palette.label_markers(race.labels)  # a line is told apart by more than its hue
    ncols = int(two_d) + int(show_loss)
    widths = [1.25, 1.0][: ncols] if two_d else [1.0]
    axes = fig.subplots(1, ncols, gridspec_kw={"width_ratios": widths}, squeeze=False)[0]
    cax = axes[0] if two_d else None
    lax = axes[-1] if show_loss else None

    path_lines, end_markers, loss_lines, paths, curves = {}, {}, {}, {}, {}
    is_gap = _gap_panel(race)
    for label in race.labels:
        paths[label] = _finite_path(race.paths[label])
        curves[label], is_gap = _loss_curve(race, label, is_gap)

    if cax is not None:
        _draw_contours(cax, landscape, resolution, levels, RACE_CMAP)
        for label in race.labels:
            p = paths[label]
            style = "--" if _is_diverged(race, label) else "-"
            every = max(1, len(p) // _MAX_MARKERS)
            (line,) = cax.plot(p[:, 0], p[:, 1], linestyle=style, linewidth=1.8,
                               marker=markers[label], markersize=3, markevery=every,
                               color=colors[label],
                               label=_legend_text(race, label), gid=f"path:{label}", zorder=3)
            end = p[-1:] if len(p) else np.zeros((0, 2))
            (marker,) = cax.plot(end[:, 0], end[:, 1], linestyle="none", marker=markers[label],
                                 markersize=7, color=colors[label], markeredgecolor="black",
                                 markeredgewidth=1.0, label="_nolegend_", gid=f"end:{label}",
                                 zorder=4)
            path_lines[label], end_markers[label] = line, marker
        _mark_minima_and_start(cax, landscape, race.start)
        (x0, x1), (y0, y1) = landscape.domain  # paths leaving the domain are clipped
        cax.set_xlim(x0, x1)
        cax.set_ylim(y0, y1)

    if lax is not None:
        for label in race.labels:
            y = curves[label]
            style = "--" if _is_diverged(race, label) else "-"
            # a race of 0 steps has one point a curve: a marker, or nothing would show
            (line,) = lax.plot(np.arange(len(y)), y, linestyle=style, linewidth=1.6,
                               marker=markers[label], markevery=max(1, len(y) // 10),
                               markersize=6 if race.steps == 0 else 4,
                               color=colors[label], gid=f"loss:{label}",
                               label=_legend_text(race, label))
            loss_lines[label] = line
        limits, log = _loss_limits(race, curves)
        if log:
            lax.set_yscale("log")
        if limits is not None:
            lax.set_ylim(*limits)
        if landscape.unbounded and landscape.min_value is not None \
                and math.isfinite(float(landscape.min_value)):
            # no minimum: a run has escaped once below this line (the table's "escaped")
            lax.axhline(float(landscape.min_value), color="0.4", linestyle=":", linewidth=1,
                        gid="escape")
            lax.annotate(f"escaped below f = {float(landscape.min_value):g}",
                         (0, float(landscape.min_value)), xytext=(4, 3),
                         textcoords="offset points", fontsize="small", color="0.3")
        lax.set_xlim(*((-0.5, 0.5) if race.steps == 0 else (0, race.steps)))
        if race.steps == 0:
            lax.set_xticks([0])
        lax.set_xlabel("step")
        lax.set_ylabel("f - f*" if is_gap else "f")
        lax.grid(True, which="major", alpha=0.3)
        lax.set_title("loss")

    # one legend under the panels, so it never hides a path; it names the hyperparameters
    handles = [*path_lines.values()] if cax is not None else [*loss_lines.values()]
    if cax is not None:
        handles += [a for a in cax.lines if a.get_gid() in ("minima", "start")]
    if handles:
        ncol = max(1, min(len(handles), 3 if ncols > 1 else 2))
        fig.legend(handles=handles, labels=[h.get_label() for h in handles],
                   loc="outside lower center", ncol=ncol, fontsize="small", frameon=False)

    title = f"{landscape.title}: {race.steps} steps"
    if race.noise:
        title += f", gradient noise {race.noise:g}"
    if not two_d:  # the dimension once: the title may name it already, as a parameter
        title += (" (loss only, no contours)" if "dim" in landscape.params
                  else f" (dim={landscape.dim}: loss only, no contours)")
    fig.suptitle(title)
    return _RaceArtists(path_lines, end_markers, loss_lines, paths, curves, cax, lax)


def plot_race(race, resolution: int = 200, show_loss: bool = True):
    """Contours with one path per optimizer, and a loss-vs-step panel; returns the Figure.

    Paths are clipped to the landscape's domain, non-finite points dropped, diverged runs
    dashed and marked "(diverged)" in the legend (which gives the hyperparameters used).
    Landscapes that are not 2-D get only the loss panel. ``resolution``: the contour
    grid's points per side, an integer in [2, :data:`MAX_RESOLUTION`] (ValueError otherwise,
    before anything is drawn).
    """
    check_bool("show_loss", show_loss)  # "no" was drawn for 0.3 s, then failed in int()
    resolution = _check_resolution(resolution)
    plt = _pyplot()
    two_d = race.landscape.dim == 2
    panels = int(two_d) + int(show_loss or not two_d)
    fig = plt.figure(figsize=(6.4 * panels + 0.8, 5.8), layout="constrained")
    _draw_race(fig, race, resolution, show_loss)
    return fig


def _frame_steps(steps: int, frames: int) -> np.ndarray:
    frames = max(2, int(frames))
    return np.unique(np.linspace(0, steps, min(frames, steps + 1)).round().astype(int))


def _temporary_beside(target: Path) -> Path:
    """A new empty file in ``target``'s folder to render ``target`` into, made now (not
    after rendering every frame): the check that the folder takes a file there, OSError
    naming ``target`` otherwise (a missing folder, a read-only one, a folder at
    ``target``). ``target`` itself is not opened, so a file already there is left whole
    until :func:`os.replace` puts the finished one over it: an interrupted or failed
    render loses nothing. Hidden, and ending with ``target``'s suffix, which the writers
    read the format from (Pillow, ffmpeg); made with the mode any new file gets (0o666
    less the umask), which the finished file keeps."""
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file to write", str(target))
    while True:
        temporary = target.with_name(f".{target.stem}.{secrets.token_hex(4)}.part{target.suffix}")
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return temporary
        except FileExistsError:
            continue
        except OSError as err:
            raise type(err)(err.errno, err.strerror, str(target)) from None


def _even_inches(inches: float, dpi: float) -> float:
    """A size near ``inches`` that is an even number of pixels, exactly in floating point.

    Movie writers (h264) resize a figure whose pixel size is odd or rounds down; the frozen
    background must keep the size it was drawn at.
    """
    base = 2 * max(1, round(inches * dpi / 2))
    for px in sorted(range(max(2, base - 40), base + 42, 2), key=lambda p: abs(p - base)):
        if int(px / dpi * dpi) == px:
            return px / dpi
    return base / dpi


def _gif_delays(count: int, fps: int) -> list[int]:
    """The delays (ms) of ``count`` GIF frames shown at ``fps``: a GIF's delays are whole
    hundredths of a second, so each is a multiple of 10 ms, the frames ending as near as
    that allows to where ``fps`` puts them (at 30 fps 30, 40, 30, 30, 40, 30, ... ms: on
    average 1000/30), never drifting by 10 ms or more."""
    ends = [round(100 * k / fps) * 10 for k in range(count + 1)]
    return [b - a for a, b in zip(ends, ends[1:])]


def _rgb(color) -> tuple[int, int, int]:
    from matplotlib import colors

    return tuple(int(round(255 * c)) for c in colors.to_rgb(color))


def _gif_writer(exact=()):
    """matplotlib's Pillow GIF writer with one palette for every frame, taken from the last
    (which holds every colour: each path at full length). Pillow otherwise picks each frame's
    256 colours alone, and the first frame, where the paths are points, had no entry left
    for the legend's swatches, which came out grey.

    The colours ``exact`` (the optimizers', black, white) come first in the palette as they
    are, the rest of the last frame is quantised to the remaining entries, and every pixel
    exactly one of those colours keeps it: a median cut alone moved the optimizers' colours
    (sgd's #1f77b4 came out #41789a). Frame delays: :func:`_gif_delays`."""
    from matplotlib import animation
    from PIL import Image

    fixed = list(dict.fromkeys(_rgb(c) for c in exact))[:128]

    class SharedPaletteWriter(animation.PillowWriter):
        def finish(self) -> None:
            if not self._frames:  # interrupted before its first frame: the error is the news
                return
            frames = [frame.convert("RGB") for frame in self._frames]
            rest = frames[-1].quantize(colors=256 - len(fixed), method=Image.Quantize.MEDIANCUT)
            used = len(rest.getcolors(256) or ()) or 256 - len(fixed)
            entries = np.asarray(rest.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
            entries = [tuple(int(v) for v in e) for e in entries[:used]]
            flat = [v for entry in [*fixed, *entries][:256] for v in entry]
            palette = Image.new("P", (1, 1))
            palette.putpalette(flat)
            quantised = []
            for frame in frames:
                indices = np.array(frame.quantize(palette=palette, dither=Image.Dither.NONE))
                if fixed:
                    rgb = np.asarray(frame)
                    for index, colour in enumerate(fixed):  # nearest is not always exact
                        indices[(rgb == colour).all(axis=-1)] = index
                image = Image.fromarray(indices.astype(np.uint8), mode="P")
                image.putpalette(flat)
                quantised.append(image)
            quantised[0].save(self.outfile, save_all=True, append_images=quantised[1:],
                              duration=_gif_delays(len(quantised), self.fps), loop=0)

    return SharedPaletteWriter


def _freeze_background(fig, dynamic, dpi) -> None:
    """Render everything but ``dynamic`` once and show it as an image behind them.

    Each frame then draws only the growing lines and the counter (a full draw per frame
    spends most of its time laying out tick labels again).
    """
    fig.set_dpi(dpi)
    fig.set_size_inches(*(_even_inches(x, dpi) for x in fig.get_size_inches()))
    for artist in dynamic:
        artist.set_visible(False)
    fig.canvas.draw()
    fig.set_layout_engine("none")  # keep that layout: the image fits it exactly
    background = np.asarray(fig.canvas.buffer_rgba()).copy()
    keep = {id(artist) for artist in dynamic}
    for artist in dynamic:
        artist.set_visible(True)
    for ax in fig.axes:
        ax.patch.set_visible(False)
        for child in ax.get_children():
            if id(child) not in keep:
                child.set_visible(False)
    for artist in [*fig.legends, *fig.texts, getattr(fig, "_suptitle", None)]:
        if artist is not None:
            artist.set_visible(False)
    fig.add_artist(_Backdrop(background))


def _backdrop_class():
    from matplotlib.artist import Artist

    class Backdrop(Artist):
        """Pixels drawn as they are at the canvas origin (cheaper than a resampled figimage)."""

        def __init__(self, rgba) -> None:
            super().__init__()
            self.rgba = np.ascontiguousarray(rgba[::-1])  # draw_image wants the bottom row first
            self.set_zorder(-10)

        def draw(self, renderer):
            if not self.get_visible():
                return
            gc = renderer.new_gc()
            renderer.draw_image(gc, 0, 0, self.rgba)
            gc.restore()

    return Backdrop


def _Backdrop(rgba):
    return _backdrop_class()(rgba)


def _gif_path(path, name: str) -> Path:
    """The GIF :func:`animate_race` writes for ``path``: ``path`` itself when it ends with
    ``.gif`` (in any case, kept as spelled), ``path`` with ``.mp4`` replaced by ``.gif``,
    ``.gif`` added to a name without a picture's suffix (``race-lr0.1``), or
    ``race-<name>.gif`` inside ``path`` when it is a folder (one that exists, or a path
    ending with a separator, created here in a folder that exists). ValueError, before
    anything is made, for another picture's suffix (``.png``, ``.webp``, ...): animations
    are written as GIF (and MP4), never silently under another name."""
    text = os.fspath(path)
    folder = Path(text)
    if folder.is_dir() or text.endswith(_SEPARATORS):
        if not folder.is_dir():
            folder.mkdir()  # FileNotFoundError, naming it, where its own folder is missing
        for sep in _SEPARATORS:  # a name is one file in the folder, not a path below it
            name = name.replace(sep, "-")
        return folder / f"race-{name}.gif"
    suffix = folder.suffix.lower()
    if suffix == ".gif":  # kept as spelled: race.GIF is not race.gif on every system
        return folder
    if suffix == ".mp4":  # race.mp4 -> race.gif (and race.mp4 beside it with ffmpeg)
        return folder.with_suffix(".gif")
    if suffix in _PICTURE_SUFFIXES:
        raise ValueError(f"cannot animate into {text}: animations are written as GIF (and MP4 "
                         f"beside it where ffmpeg is on PATH); give a .gif or .mp4 path")
    return folder.with_name(folder.name + ".gif")  # race-lr0.1 -> race-lr0.1.gif, not race-lr0.gif


#: suffixes of pictures and animations that :func:`_gif_path` knows: ``.gif`` kept,
#: ``.mp4`` replaced by ``.gif``, the others refused (any other dot is part of the name:
#: ``race-lr0.1``)
_PICTURE_SUFFIXES = (".gif", ".mp4", ".png", ".svg", ".svgz", ".pdf", ".jpg", ".jpeg",
                     ".webp", ".tif", ".tiff", ".bmp", ".eps", ".ps", ".avif", ".apng")


_SEPARATORS = tuple(s for s in (os.sep, os.altsep) if s)


class PlotWarning(UserWarning):
    """Something optional of a picture was left out (an MP4 that ffmpeg failed to write)."""


def _ffmpeg_reason(err) -> str:
    """The last line of ffmpeg's stderr where there is one, else the error itself."""
    stderr = getattr(err, "stderr", None)
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    if lines:
        return lines[-1]
    if isinstance(err, subprocess.CalledProcessError):
        return f"it exited with status {err.returncode}"
    return str(err) or type(err).__name__


class Animation(list):
    """The files :func:`animate_race` wrote (a list of paths: the GIF, then the MP4 where
    ffmpeg made one), which a notebook shows as the GIF itself.

    Jupyter calls ``_repr_html_`` on a cell's value: the GIF is read from its file when the
    cell is shown and inlined as a ``data:`` image, so the notebook keeps it after the file
    is moved. A GIF no longer there is said in words instead.

    >>> Animation([]) == []
    True
    """

    def _repr_html_(self) -> str:
        import base64
        import html

        gif = next((p for p in self if Path(p).suffix.lower() == ".gif"), None)
        if gif is None:
            return f"<p>{html.escape(repr(list(self)))}</p>"
        try:
            data = Path(gif).read_bytes()
        except OSError as err:
            return (f"<p>{html.escape(str(gif))}: cannot be read now "
                    f"({html.escape(err.strerror or str(err))})</p>")
        return (f'<img src="data:image/gif;base64,{base64.b64encode(data).decode("ascii")}" '
                f'alt="{html.escape(Path(gif).name)}: an optimizer race, step by step">')


def animate_race(race, path, fps: int = 20, frames: int = 100, dpi: int = 80,
                 resolution: int = 120, show_loss: bool = True) -> Animation:
    """Write a GIF in which the paths grow step by step; an MP4 beside it if ffmpeg exists.

    ``path`` names the GIF: a ``.gif`` path (any case, kept as spelled), a ``.mp4`` one
    (``race.mp4`` writes ``race.gif``, and ``race.mp4`` with ffmpeg), or a name without a
    picture's suffix, to which ``.gif`` is added (``race`` writes ``race.gif``,
    ``race-lr0.1`` writes ``race-lr0.1.gif``); a folder (one that exists, or a path ending
    with a separator, created as ``optimlab race --gif`` creates it) gets
    ``race-<landscape name>.gif`` inside it. The MP4 is the GIF's path with ``.mp4`` (or the
    ``.mp4`` path given). The steps are subsampled to at most ``frames`` frames, with a step
    counter, shown at ``fps`` frames a second, ``dpi`` dots per inch. A GIF's frame delays
    are whole hundredths of a second: at an ``fps`` that does not divide 100 they alternate
    (30 fps: 30 and 40 ms), averaging 1000/``fps`` ms. Returns the written paths as an
    :class:`Animation` (a list, which a notebook shows as the GIF).

    The MP4 is optional: where ffmpeg fails (a build without an h264 encoder, say) the GIF
    is still written and returned, no MP4 (nor a partial one) is left, and a
    ``PlotWarning`` says why.

    Raises:
        TypeError: ``path`` not a str or ``os.PathLike``, before anything is written.
        ValueError: ``fps`` not an integer in [1, :data:`MAX_GIF_FPS`] (browsers slow
            GIF delays under 20 ms), ``dpi`` not an integer >= 1, ``frames`` not one >= 2
            (the first and the last step), ``resolution`` not one in
            [2, :data:`MAX_RESOLUTION`], or ``path`` ending with another picture's suffix
            (``.png``, ``.webp``, ...), before anything is written.
        OSError: an unwritable location (naming the path), before any frame is drawn.

    Each file is rendered into a temporary file beside it and moved over it only when
    complete, so an error or an interrupt (Ctrl-C) leaves a file already at that path as it
    was, and no partial file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike (the GIF or a folder), got "
                        f"{type(path).__name__}")
    for name, value, low in (("fps", fps, 1), ("frames", frames, 2), ("dpi", dpi, 1)):
        check_int(name, value, low)
    check_bool("show_loss", show_loss)
    fps, frames, dpi = int(fps), int(frames), int(dpi)
    if fps > MAX_GIF_FPS:
        raise ValueError(f"fps must be an integer in [1, {MAX_GIF_FPS}], got {fps}: a GIF's "
                         f"frame delays are whole hundredths of a second, and browsers slow "
                         f"delays under 20 ms down")
    resolution = _check_resolution(resolution)
    from matplotlib import animation

    plt = _pyplot()
    gif = _gif_path(path, race.landscape.name)
    given = Path(os.fspath(path))
    mp4 = None
    if shutil.which("ffmpeg"):
        mp4 = given if given.suffix.lower() == ".mp4" and given.parent == gif.parent \
            else gif.with_suffix(".mp4")
    targets = [gif] + ([mp4] if mp4 is not None else [])
    # each file is rendered into a temporary one beside it, which replaces it only once
    # complete: a failed or interrupted render leaves the file that was there as it was
    temporaries: dict[Path, Path] = {}
    written: list[Path] = []
    fig = None
    # one try from the first temporary on: an interrupt (Ctrl-C, SIGTERM) anywhere after it,
    # while the figure is made too, removes every temporary not moved into place (one
    # arriving as the figure was made left a .part.gif)
    try:
        for target in targets:
            with signals_deferred():  # kept here before an interrupt can come
                temporaries[target] = _temporary_beside(target)
        two_d = race.landscape.dim == 2
        panels = int(two_d) + int(show_loss or not two_d)
        fig = plt.figure(figsize=(5.6 * panels + 0.8, 5.2), layout="constrained")
        art = _draw_race(fig, race, resolution, show_loss)
        counter_ax = art.contour_ax if art.contour_ax is not None else art.loss_ax
        counter = counter_ax.text(0.02, 0.97, "", transform=counter_ax.transAxes, va="top",
                                  ha="left", fontsize="medium", zorder=10,
                                  bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})
        steps = _frame_steps(race.steps, frames)
        raw = {label: np.asarray(race.paths[label], dtype=float).reshape(
            len(race.paths[label]), -1) for label in race.labels}

        def update(k):
            for label in race.labels:
                if label in art.path_lines:
                    p = _finite_path(raw[label][: k + 1])
                    art.path_lines[label].set_data(p[:, 0], p[:, 1])
                    art.end_markers[label].set_data(p[-1:, 0], p[-1:, 1])
                if label in art.loss_lines:
                    y = art.curves[label][: k + 1]
                    art.loss_lines[label].set_data(np.arange(len(y)), y)
            counter.set_text(f"step {k}/{race.steps}")

        update(steps[-1])  # lay the figure out once, with everything at full length
        dynamic = [*art.path_lines.values(), *art.end_markers.values(),
                   *art.loss_lines.values(), counter]
        if art.contour_ax is not None:  # keep start and minima on top of the paths
            dynamic += [a for a in art.contour_ax.lines if a.get_gid() in ("minima", "start")]
        _freeze_background(fig, dynamic, dpi)
        exact = ["black", "white", *race_colors(race).values()]
        for target in targets:
            writer = (_gif_writer(exact)(fps=fps) if target == gif
                      else animation.FFMpegWriter(fps=fps))
            try:
                with writer.saving(fig, temporaries[target], dpi):
                    for k in steps:
                        update(k)
                        writer.grab_frame()
                    for _ in range(max(1, fps // 2)):  # hold the last frame a moment
                        writer.grab_frame()
            except (subprocess.CalledProcessError, OSError) as err:
                if target == gif:
                    raise
                # the MP4 is optional: the GIF is written, ffmpeg's failure is a warning
                temporaries[target].unlink(missing_ok=True)
                warnings.warn(f"no MP4 written: ffmpeg failed: {_ffmpeg_reason(err)}",
                              PlotWarning, stacklevel=2)
                continue
            with signals_deferred():  # moved and counted as written together
                os.replace(temporaries[target], target)
                written.append(target)
        return Animation(written)
    except BaseException:
        for target, temporary in temporaries.items():  # no half-written files left behind
            if target not in written:
                temporary.unlink(missing_ok=True)
        raise
    finally:
        if fig is not None:
            plt.close(fig)


# --------------------------------------------------------------------------- surface

def plot_surface(landscape, race=None, resolution: int = 80, log: bool | None = None):
    """A 3-D surface of a 2-D landscape, with the race's paths on it (z = f along the path).

    ``log`` (default: ``landscape.log_scale``) plots ``log10(f - min + ε)`` as height.
    Path points outside the domain are left out. Returns the Figure.

    Raises:
        TypeError: ``race`` not a :class:`~optimlab.landscapes.result.Race` (or None).
        ValueError: ``race`` ran on another landscape (another name, dimension or
            parameters; its noise does not count), naming both; ``resolution`` not an
            integer in [2, :data:`MAX_RESOLUTION`].
    """
    _check_race(landscape, race, "plot_surface")
    _require_2d(landscape, "plot_surface")
    if log is not None:
        check_bool("log", log)  # "yes" was read as true, "False" too
    resolution = _check_resolution(resolution)
    plt = _pyplot()
    from matplotlib import colors as mcolors

    X, Y, Z = _grid(landscape, resolution)
    scale = _scale_for(landscape, Z, log=landscape.log_scale if log is None else bool(log))
    log, zmin = scale.log, scale.zmin

    def height(z):
        return np.log10(scale(z)) if log else np.asarray(z, dtype=float)

    H = height(Z)
    fig = plt.figure(figsize=(7.5, 6.2), layout="constrained")
    ax = fig.add_subplot(projection="3d")
    norm = mcolors.Normalize(vmin=float(np.nanmin(H)), vmax=float(np.nanmax(H)))
    ax.plot_surface(X, Y, np.ma.masked_invalid(H), cmap=LANDSCAPE_CMAP, norm=norm, alpha=0.55,
                    linewidth=0, antialiased=True, rcount=min(resolution, 60),
                    ccount=min(resolution, 60))
    (x0, x1), (y0, y1) = landscape.domain
    lift = 0.01 * (float(np.nanmax(H)) - float(np.nanmin(H)) or 1.0)
    if landscape.minima:
        m = np.asarray(landscape.minima, dtype=float).reshape(-1, 2)
        inside = (m[:, 0] >= x0) & (m[:, 0] <= x1) & (m[:, 1] >= y0) & (m[:, 1] <= y1)
        if inside.any():
            mz = height(np.full(inside.sum(), landscape.min_value)
                        if math.isfinite(landscape.min_value) else np.full(inside.sum(), zmin))
            ax.plot(m[inside, 0], m[inside, 1], mz + lift, linestyle="none", marker="*",
                    markersize=14, markerfacecolor="white", markeredgecolor="black",
                    label="minimum" if inside.sum() == 1 else "minima", gid="minima")
    if race is not None:
        palette = race_colors(race)
        for label in race.labels:
            p = np.asarray(race.paths[label], dtype=float).reshape(len(race.paths[label]), -1)
            z = np.asarray(race.losses[label], dtype=float).reshape(-1)[: len(p)]
            p = p[: len(z)]
            ok = (np.isfinite(p).all(axis=1) & np.isfinite(z) & (p[:, 0] >= x0) & (p[:, 0] <= x1)
                  & (p[:, 1] >= y0) & (p[:, 1] <= y1))
            xs = np.where(ok, p[:, 0], np.nan)
            ys = np.where(ok, p[:, 1], np.nan)
            zs = np.where(ok, height(np.where(ok, z, zmin)) + lift, np.nan)
            style = "--" if _is_diverged(race, label) else "-"
            ax.plot(xs, ys, zs, linestyle=style, linewidth=2.0, color=palette[label],
                    label=_legend_text(race, label), gid=f"path:{label}", zorder=10)
        ax.legend(loc="upper left", fontsize="small", framealpha=0.8)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_zlabel("log10(f - min + ε)" if log else "f")
    ax.set_title(landscape.title + (f": {race.steps} steps" if race is not None else ""))
    return fig
