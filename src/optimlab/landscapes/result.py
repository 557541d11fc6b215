"""What a race returns: paths, losses and a metrics table per optimizer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._table import text_table
from .base import Landscape

__all__ = ["Race", "RaceMetrics"]


@dataclass(frozen=True)
class RaceMetrics:
    """One optimizer's result on a landscape.

    ``steps_to_tol`` is the first step whose loss is within ``tol`` of the landscape's
    minimum (None if never); ``diverged`` is set when the path became non-finite or left
    the plotting domain far behind (by more than ten domain widths).
    """

    label: str
    optimizer: str
    final_loss: float
    gap: float
    distance: float
    steps_to_tol: int | None
    diverged: bool


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
            tuning, if any), e.g. ``{"name": "adam", "lr": 0.05}``.
        metrics: label -> :class:`RaceMetrics`.
        tol: the tolerance behind ``steps_to_tol``.
        noise, seed: gradient noise scale and seed.
        tuning: label -> ``{lr: final loss}`` of the learning-rate search, if ``tune``.
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

    @property
    def labels(self) -> list[str]:
        return list(self.paths)

    def legend_label(self, label: str) -> str:
        """``label (lr=0.05, betas=(0.9, 0.999))``: the values actually used."""
        hp = {k: v for k, v in self.hparams[label].items() if k != "name"}
        text = ", ".join(f"{k}={_fmt(v)}" for k, v in hp.items())
        return f"{label} ({text})" if text else label

    def table(self) -> str:
        """The metrics as a plain-text table."""
        headers = ["optimizer", "hyperparameters", "final loss", "gap to min", "dist to min",
                   f"steps to {self.tol:g}", "diverged"]
        rows = []
        for label, m in self.metrics.items():
            hp = ", ".join(f"{k}={_fmt(v)}" for k, v in self.hparams[label].items()
                           if k != "name")
            rows.append([label, hp, f"{m.final_loss:.4g}", f"{m.gap:.3g}", f"{m.distance:.3g}",
                         "-" if m.steps_to_tol is None else str(m.steps_to_tol),
                         "yes" if m.diverged else "no"])
        return text_table(headers, rows)

    def plot(self, **kwargs):
        """Contours with one path per optimizer and a loss-vs-step panel (matplotlib)."""
        from .plots import plot_race

        return plot_race(self, **kwargs)

    def animate(self, path, **kwargs):
        """Write an animation of the race: a GIF, and an MP4 beside it when ffmpeg exists."""
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
        return (f"Race on {self.landscape.name} from {tuple(np.round(self.start, 4))}, "
                f"{self.steps} steps\n{self.table()}")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return str(value)
