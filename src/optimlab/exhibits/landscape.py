"""The two landscape exhibits: ``ill-conditioned`` and ``saddle``.

``ill-conditioned``: SGD, momentum and Adam on :math:`\\theta_1^2 + 10\\theta_2^2`.
``saddle``: gradient descent stalls at a saddle; momentum, Adam and gradient noise escape.

Each defines its own small :class:`~optimlab.landscapes.base.Landscape` (:data:`RAVINE`,
:data:`SADDLE`) and runs the optimizers through :func:`optimlab.landscapes.race`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._table import text_table
from ..landscapes.base import Landscape
from ..landscapes.race import race as run_race
from .base import Demo, pyplot, steps_text

__all__ = ["ILL_CONDITIONED_OPTIMIZERS", "RAVINE", "SADDLE", "SADDLE_OPTIMIZERS",
           "IllConditionedDemo", "SaddleDemo", "ill_conditioned", "saddle"]


# -- ill-conditioned --------------------------------------------------------------------------


def _ravine(x: torch.Tensor) -> torch.Tensor:
    return x[..., 0] ** 2 + 10 * x[..., 1] ** 2


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

#: the ill-conditioned race: label -> registry name and hyperparameters.
ILL_CONDITIONED_OPTIMIZERS = {
    "sgd, near limit": {"name": "sgd", "lr": 0.09},
    "sgd, safe": {"name": "sgd", "lr": 0.02},
    "momentum": {"name": "momentum", "lr": 0.01},
    "adam": {"name": "adam", "lr": 0.1},
}


def _sign_flips(values: np.ndarray) -> int:
    signs = np.sign(values)
    signs = signs[signs != 0]
    return int(np.count_nonzero(signs[1:] != signs[:-1]))


@dataclass(repr=False)
class IllConditionedDemo(Demo):
    """SGD, momentum and Adam on :math:`\\theta_1^2 + 10\\theta_2^2` from (5, 5).

    Attributes:
        race: the :class:`~optimlab.landscapes.result.Race`.
        flips: label -> sign changes of :math:`\\theta_2` in the first ``window`` steps
            (zig-zagging across the steep direction).
        lag: label -> :math:`|\\theta_1|` when :math:`|\\theta_2|` first drops below
            ``lag_at`` (how far the shallow direction trails the steep one; None if never).
    """

    race: object
    flips: dict[str, int]
    lag: dict[str, float | None]
    window: int = 20
    lag_at: float = 0.1
    name: str = "ill-conditioned"
    title: str = ("theta1^2 + 10 theta2^2 from (5, 5): gradient descent is stable only for "
                  "lr < 2/20 = 0.1")

    def table(self) -> str:
        rows = []
        for label, m in self.race.metrics.items():
            lr = self.race.hparams[label].get("lr")
            lag = self.lag[label]
            rows.append([label, self.race.hparams[label]["name"], f"{lr:g}",
                         steps_text(m.steps_to_tol), f"{m.final_loss:.3g}",
                         str(self.flips[label]), "-" if lag is None else f"{lag:.3f}"])
        return text_table(["optimizer", "rule", "lr", f"steps to f<{self.race.tol:g}",
                              "final f", f"theta2 sign flips (first {self.window})",
                              f"|theta1| when |theta2|<{self.lag_at:g}"], rows)

    def plot(self):
        return self.race.plot()


def ill_conditioned(steps: int = 200, tol: float = 1e-3) -> IllConditionedDemo:
    """Race SGD (at two stable learning rates), momentum and Adam on the ravine.

    SGD's learning rate must stay below 2/20 = 0.1 for the steep direction: near that
    limit (0.09) it zig-zags across theta2, well below it (0.02) it crawls along theta1.
    Momentum 0.9 with lr 0.01 and Adam with lr 0.1 are also stable; Adam moves both
    coordinates at about the same speed, straight down the diagonal.
    """
    race = run_race(RAVINE, ILL_CONDITIONED_OPTIMIZERS, start=RAVINE.start, steps=steps, tol=tol)
    window, lag_at = 20, 0.1
    flips, lag = {}, {}
    for label, path in race.paths.items():
        path = np.asarray(path)
        flips[label] = _sign_flips(path[: window + 1, 1])
        below = np.flatnonzero(np.abs(path[:, 1]) < lag_at)
        lag[label] = float(abs(path[below[0], 0])) if below.size else None
    return IllConditionedDemo(race=race, flips=flips, lag=lag, window=window, lag_at=lag_at)


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

    def _colors(self) -> dict[str, str]:
        # the colours the race figures give these labels
        from ..landscapes.plots import label_colors

        return label_colors([label for label, _ in self._runs()])

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

    def plot(self):
        plt = pyplot()
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
        (x0, x1), (y0, y1) = SADDLE.domain
        xs, ys = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
        zs = _saddle(torch.from_numpy(np.stack([xs, ys], -1))).numpy()
        ax.contourf(xs, ys, zs, levels=30, cmap="viridis", alpha=0.85)
        ax.contour(xs, ys, zs, levels=[0.0], colors="white", linewidths=0.8)
        ax.plot(*zip(*SADDLE.minima), "*", color="gold", ms=14, mec="k", label="minima")
        ax.plot(0, 0, "x", color="red", ms=9, mew=2, label="saddle")
        colors = self._colors()
        for i, (label, race) in enumerate(self._runs()):
            path = np.asarray(race.paths[label])
            # a dot per step (piling up where a run stalls); the first run (gd) on top
            ax.plot(path[:, 0], path[:, 1], "-o", color=colors[label], ms=3, lw=1.5,
                    zorder=10 - i, label=label)
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
                        label=text)
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
    start = (float(start[0]), float(start[1]))
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


