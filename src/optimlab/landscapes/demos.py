"""The tutorials' exhibits: small, seeded experiments that each print a table and draw a figure.

Every demo is a function returning a result object with the computed numbers,
``.table()`` (plain text for the terminal) and ``.plot()`` (a matplotlib ``Figure``;
matplotlib is imported only there). :data:`DEMOS` maps the demo names to those functions
and :func:`run_demo` runs one by name, optionally writing ``<name>.png``:

===================  ======================================================================
``effective-lr``     Adagrad's effective learning rate :math:`\\gamma/\\sqrt{G_t}` decays as
                     :math:`1/\\sqrt t` under a constant gradient; RMSprop's settles.
``ema``              exponential moving averages of a noisy series, with and without the
                     bias correction :math:`1/(1-\\beta^t)`.
``ill-conditioned``  SGD, momentum and Adam on :math:`\\theta_1^2 + 10\\theta_2^2`.
``saddle``           gradient descent stalls at a saddle; momentum, Adam and gradient
                     noise escape it.
``sparse``           Adagrad gives a rarely active feature a larger step than a frequent
                     one.
``gd-variants``      batch, mini-batch and stochastic gradient descent on least squares.
===================  ======================================================================

Nothing is typed in: every number comes from running the optimizers of :mod:`optimlab`
(the two racing demos through :func:`optimlab.landscapes.race`), and every demo is
seeded and runs in a second or two on a laptop CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._table import text_table
from .base import Landscape
from .race import race as run_race

__all__ = [
    "DEMOS",
    "run_demo",
    "effective_lr",
    "ema",
    "ill_conditioned",
    "saddle",
    "sparse",
    "gd_variants",
    "EffectiveLRDemo",
    "EMADemo",
    "IllConditionedDemo",
    "SaddleDemo",
    "SparseDemo",
    "GDVariantsDemo",
]


# -- shared helpers -----------------------------------------------------------------------


def _pyplot():
    """``matplotlib.pyplot``, on the Agg backend when no backend has been chosen."""
    from .plots import _pyplot

    return _pyplot()


def _steps_text(value: int | None) -> str:
    return "never" if value is None else str(value)


class _Demo:
    """What every demo result shares: a name, a title and a printable table."""

    name: str = ""
    title: str = ""

    def table(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def plot(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def __str__(self) -> str:
        return f"{self.title}\n{self.table()}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>\n{self}"


# -- effective-lr ---------------------------------------------------------------------------


class _Rule:
    """Step a parameter with an optimizer class's own rule, without the optimizer object.

    Uses the class's ``init``/``update`` pair with the class's own checked defaults,
    driven exactly as :meth:`RuleOptimizer.step` drives them, minus the per-call
    bookkeeping of ``torch.optim.Optimizer`` (which would make 10,000 steps of a scalar
    take seconds). ``rule(p, g)`` returns the parameter after one step.
    """

    def __init__(self, cls: type, p: torch.Tensor, **hp) -> None:
        self.cls = cls
        self.hp = dict(cls([torch.zeros(1, requires_grad=True)], **hp).defaults)
        if self.hp.get("maximize"):
            raise ValueError("maximize is not supported here")
        self.state = cls.init(p, **self.hp)
        self.t = 0

    def __call__(self, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        self.t += 1
        if "step" in self.state:
            self.state["step"] += 1
        return self.cls.update(p, g, self.state, step=self.t, **self.hp)


def _effective_lrs(cls: type, steps: int, grad: float, **hp) -> np.ndarray:
    """The step ``cls`` takes at t = 1..steps on one coordinate whose gradient is always
    ``grad``, divided by that gradient."""
    p = torch.zeros(1, dtype=torch.float64)
    g = torch.full_like(p, grad)
    rule = _Rule(cls, p, **hp)
    positions = torch.empty(steps + 1, dtype=torch.float64)
    positions[0] = 0.0
    for t in range(1, steps + 1):
        p = rule(p, g)
        positions[t] = p[0]
    taken = -(positions[1:] - positions[:-1])
    return (taken / grad).numpy()


@dataclass(repr=False)
class EffectiveLRDemo(_Demo):
    """Effective learning rates (step taken / gradient) under a constant gradient.

    Attributes:
        lr, grad, alpha: the learning rate, the constant gradient and RMSprop's alpha.
        adagrad, rmsprop: effective learning rate at steps 1..len (index t-1 is step t).
        at: the steps shown in the table.
    """

    lr: float
    grad: float
    alpha: float
    adagrad: np.ndarray
    rmsprop: np.ndarray
    at: tuple[int, ...]
    name: str = "effective-lr"
    title: str = ""

    def __post_init__(self) -> None:
        self.title = (f"Effective learning rate (step / gradient), constant gradient "
                      f"{self.grad:g}, lr {self.lr:g}")

    def value(self, optimizer: str, step: int) -> float:
        """The effective rate of ``"adagrad"`` or ``"rmsprop"`` at ``step`` (1-based)."""
        return float(getattr(self, optimizer)[step - 1])

    def table(self) -> str:
        rows = [[str(t), f"{self.value('adagrad', t):.4f}", f"{self.value('rmsprop', t):.4f}"]
                for t in self.at]
        return text_table(["step", "Adagrad lr/sqrt(G)",
                              f"RMSprop (alpha {self.alpha:g}) lr/sqrt(v)"], rows)

    def plot(self):
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
        steps = np.arange(1, len(self.adagrad) + 1)
        ax.loglog(steps, self.adagrad, color="C0", lw=2, label="Adagrad")
        ax.loglog(steps, self.rmsprop, color="C1", lw=2, label=f"RMSprop (alpha={self.alpha:g})")
        at = np.array(self.at)
        ax.scatter(at, self.adagrad[at - 1], color="C0", zorder=3)
        ax.scatter(at, self.rmsprop[at - 1], color="C1", zorder=3)
        for t in at:
            ax.annotate(f"{self.adagrad[t - 1]:.4f}", (t, self.adagrad[t - 1]),
                        textcoords="offset points", xytext=(-6, -6), ha="right", va="top",
                        fontsize=8, color="C0")
            ax.annotate(f"{self.rmsprop[t - 1]:.4f}", (t, self.rmsprop[t - 1]),
                        textcoords="offset points", xytext=(0, 7), ha="center",
                        fontsize=8, color="C1")
        ax.margins(x=0.08, y=0.12)
        ax.axhline(self.lr / abs(self.grad), color="gray", ls=":", lw=1,
                   label=f"lr/|g| = {self.lr / abs(self.grad):.4f}")
        ax.set_xlabel("step t")
        ax.set_ylabel("effective learning rate (step / gradient)")
        ax.set_title("Adagrad's rate decays as 1/sqrt(t); RMSprop's settles")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        return fig


def effective_lr(lr: float = 0.01, grad: float = 0.5, alpha: float = 0.9, steps: int = 10_000,
                 at: Sequence[int] = (1, 10, 100, 1000, 10_000)) -> EffectiveLRDemo:
    """Adagrad's and RMSprop's effective learning rates under a constant gradient.

    Both optimizers run on one coordinate whose gradient is always ``grad``; the effective
    rate is the step they take divided by that gradient. Adagrad's sum of squares grows as
    :math:`t g^2`, so its rate is :math:`\\gamma/(|g|\\sqrt t)`; RMSprop's running mean of
    squares settles at :math:`g^2`, so its rate settles at :math:`\\gamma/|g|`.
    """
    from ..optim import Adagrad, RMSprop

    at = tuple(int(t) for t in at)
    if not at or min(at) < 1 or max(at) > steps:
        raise ValueError(f"steps to show must lie in 1..{steps}, got {at}")
    return EffectiveLRDemo(
        lr=lr, grad=grad, alpha=alpha,
        adagrad=_effective_lrs(Adagrad, steps, grad, lr=lr, eps=1e-10),
        rmsprop=_effective_lrs(RMSprop, steps, grad, lr=lr, alpha=alpha, eps=1e-8),
        at=at)


# -- ema ------------------------------------------------------------------------------------


@dataclass(repr=False)
class EMADemo(_Demo):
    """Exponential moving averages of a noisy series.

    Attributes:
        series: the samples :math:`x_1..x_n`.
        betas: the smoothing factors.
        raw: beta -> :math:`m_t = \\beta m_{t-1} + (1-\\beta) x_t` with :math:`m_0 = 0`.
        corrected: beta -> :math:`m_t / (1 - \\beta^t)` (Adam's bias correction).
        rows: how many first values the table shows.
    """

    series: np.ndarray
    betas: tuple[float, ...]
    raw: dict[float, np.ndarray]
    corrected: dict[float, np.ndarray]
    rows: int = 6
    name: str = "ema"
    title: str = "Exponential moving averages, uncorrected (m_t) and bias-corrected (m_t / (1 - beta^t))"

    def table(self) -> str:
        headers = ["t", "x_t"]
        for b in self.betas:
            headers += [f"b={b:g} m_t", f"b={b:g} corrected"]
        rows = []
        for i in range(min(self.rows, len(self.series))):
            row = [str(i + 1), f"{self.series[i]:.3f}"]
            for b in self.betas:
                row += [f"{self.raw[b][i]:.3f}", f"{self.corrected[b][i]:.3f}"]
            rows.append(row)
        return text_table(headers, rows)

    def plot(self):
        plt = _pyplot()
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained",
                                     gridspec_kw={"width_ratios": [2, 1]})
        t = np.arange(1, len(self.series) + 1)
        ax.plot(t, self.series, "o", color="0.6", ms=3, label="samples x_t")
        for i, b in enumerate(self.betas):
            color = f"C{i}"
            ax.plot(t, self.corrected[b], color=color, lw=2, label=f"beta={b:g}, corrected")
            ax.plot(t, self.raw[b], color=color, lw=1.5, ls="--", label=f"beta={b:g}, uncorrected")
        ax.set_xlabel("t")
        ax.set_ylabel("value")
        ax.set_title("Uncorrected averages start near 0 (they start from m_0 = 0)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, ncol=2, loc="lower right")
        for i, b in enumerate(self.betas):
            bx.plot(t, 1 - b ** t, color=f"C{i}", lw=2, label=f"beta={b:g}")
        bx.set_xlabel("t")
        bx.set_ylabel("1 - beta^t")
        bx.set_title("Weight the uncorrected average carries")
        bx.set_ylim(0, 1.05)
        bx.grid(True, alpha=0.3)
        bx.legend(fontsize=8)
        return fig


def ema(betas: Sequence[float] = (0.5, 0.9, 0.98), n: int = 100, seed: int = 0,
        rows: int = 6) -> EMADemo:
    """EMAs of a seeded noisy series (level 2, a slow wave and Gaussian noise).

    >>> demo = ema()
    >>> bool(np.isclose(demo.corrected[0.9][0], demo.series[0]))
    True
    """
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(1, n + 1, dtype=torch.float64)
    noise = torch.randn(n, generator=gen, dtype=torch.float64)
    series = (2.0 + 0.5 * torch.sin(2 * math.pi * t / 50) + 0.4 * noise).numpy()
    raw, corrected = {}, {}
    for b in betas:
        b = float(b)
        if not 0 <= b < 1:
            raise ValueError(f"beta must lie in [0, 1), got {b}")
        m, out = 0.0, np.empty(n)
        for i, x in enumerate(series):
            m = b * m + (1 - b) * x
            out[i] = m
        raw[b] = out
        corrected[b] = out / (1 - b ** np.arange(1, n + 1))
    return EMADemo(series=series, betas=tuple(float(b) for b in betas), raw=raw,
                   corrected=corrected, rows=rows)


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
class IllConditionedDemo(_Demo):
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
                         _steps_text(m.steps_to_tol), f"{m.final_loss:.3g}",
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
class SaddleDemo(_Demo):
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
        from .plots import label_colors  # the colours the race figures give these labels

        return label_colors([label for label, _ in self._runs()])

    def table(self) -> str:
        rows = []
        for label, race in self._runs():
            hp = ", ".join(f"{k}={v:g}" for k, v in race.hparams[label].items()
                           if k != "name" and isinstance(v, (int, float)))
            rows.append([label, race.hparams[label]["name"], hp,
                         f"{race.noise:g}", _steps_text(self.escape[label]),
                         f"{race.metrics[label].final_loss:.3g}"])
        return text_table(["optimizer", "rule", "hyperparameters", "gradient noise",
                              f"first step |y|>{self.threshold:g}", "final f"], rows)

    def plot(self):
        plt = _pyplot()
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
            text = f"{label} (|y|>{self.threshold:g} at step {_steps_text(esc)})"
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


# -- sparse -----------------------------------------------------------------------------------


@dataclass(repr=False)
class SparseDemo(_Demo):
    """One pass of SGD and Adagrad over a linear model with a rare and a frequent feature.

    Attributes:
        features: the feature names; ``presence``: fraction of samples where each is 1.
        true_w: the weights that generated the targets.
        lr, batch: the shared learning rate and the mini-batch size.
        weights: optimizer -> array ``(steps + 1, n_features)``: the weights along training.
        eff_lr: optimizer -> array ``(steps, n_features)``: the effective learning rate
            of each weight after each step (lr for SGD, lr/(sqrt(G)+eps) for Adagrad).
        active: array ``(steps, n_features)``: how many samples of each batch had the
            feature.
    """

    features: tuple[str, ...]
    presence: np.ndarray
    true_w: np.ndarray
    lr: float
    batch: int
    weights: dict[str, np.ndarray]
    eff_lr: dict[str, np.ndarray]
    active: np.ndarray
    name: str = "sparse"
    title: str = ""

    def __post_init__(self) -> None:
        self.title = (f"Sparse features, linear model, one pass in batches of {self.batch}, "
                      f"same lr {self.lr:g} for SGD and Adagrad")

    def final_eff_lr(self, optimizer: str, feature: str) -> float:
        return float(self.eff_lr[optimizer][-1, self.features.index(feature)])

    def final_weight(self, optimizer: str, feature: str) -> float:
        return float(self.weights[optimizer][-1, self.features.index(feature)])

    def table(self) -> str:
        rows = []
        for j, feat in enumerate(self.features):
            rows.append([feat, f"{100 * self.presence[j]:.1f}%",
                         str(int(self.active[:, j].sum())),
                         f"{self.true_w[j]:.2f}",
                         f"{self.weights['sgd'][-1, j]:.3f}",
                         f"{self.weights['adagrad'][-1, j]:.3f}",
                         f"{self.eff_lr['sgd'][-1, j]:.4f}",
                         f"{self.eff_lr['adagrad'][-1, j]:.4f}"])
        return text_table(["feature", "present in", "samples seen", "true w", "SGD w",
                              "Adagrad w", "SGD eff. lr", "Adagrad eff. lr"], rows)

    def plot(self):
        plt = _pyplot()
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
        styles = {"sgd": ("--", "SGD"), "adagrad": ("-", "Adagrad")}
        steps = np.arange(len(self.weights["sgd"]))
        for j, feat in enumerate(self.features):
            ax.axhline(self.true_w[j], color=f"C{j}", lw=0.8, ls=":")
            for opt, (ls, text) in styles.items():
                ax.plot(steps, self.weights[opt][:, j], ls=ls, color=f"C{j}", lw=2,
                        label=f"{text}, {feat} ({100 * self.presence[j]:.0f}%)")
        ax.set_xlabel("step")
        ax.set_ylabel("weight (dotted: true value)")
        ax.set_title("Learned weights")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        steps = np.arange(1, len(self.eff_lr["sgd"]) + 1)
        seen = np.cumsum(self.active, axis=0) > 0  # Adagrad's rate is lr/eps until then
        for j, feat in enumerate(self.features):
            rate = np.where(seen[:, j], self.eff_lr["adagrad"][:, j], np.nan)
            bx.semilogy(steps, rate, color=f"C{j}", lw=2, label=f"Adagrad, {feat}")
        bx.semilogy(steps, self.eff_lr["sgd"].max(1), ls="--", color="0.4", lw=2,
                    label="SGD, every weight (= lr)")
        bx.set_xlabel("step")
        bx.set_ylabel("effective learning rate")
        bx.set_title("Adagrad: lr / sqrt(sum of squared gradients) per weight\n"
                     "(drawn from the first batch with the feature)")
        bx.grid(True, which="both", alpha=0.3)
        bx.legend(fontsize=8)
        return fig


def sparse(n: int = 2000, batch: int = 10, lr: float = 0.5, presence=(0.9, 0.02),
           true_w=(1.0, 2.0), noise: float = 0.1, seed: int = 0) -> SparseDemo:
    """Least squares on 0/1 features ("word present"), one frequent and one rare.

    The rare feature's gradient is zero in most batches, so Adagrad's sum of squared
    gradients for it stays small and its effective learning rate stays large, while the
    frequent feature's rate shrinks every step. SGD uses the same rate for both, so the
    rare weight, updated only when its feature shows up, is learned slowly.
    """
    from ..optim import SGD, Adagrad

    if len(presence) != len(true_w):
        raise ValueError("presence and true_w need one entry per feature")
    gen = torch.Generator().manual_seed(seed)
    probs = torch.tensor(presence, dtype=torch.float64)
    X = (torch.rand(n, len(probs), generator=gen, dtype=torch.float64) < probs).double()
    w_true = torch.tensor(true_w, dtype=torch.float64)
    y = X @ w_true + noise * torch.randn(n, generator=gen, dtype=torch.float64)
    steps = n // batch
    names = tuple("frequent" if p >= 0.5 else "rare" for p in presence)
    if len(set(names)) != len(names):
        names = tuple(f"x{j} ({100 * p:g}%)" for j, p in enumerate(presence))
    active = X[: steps * batch].reshape(steps, batch, -1).sum(1).numpy()
    weights, eff = {}, {}
    for key, cls, hp in (("sgd", SGD, {}), ("adagrad", Adagrad, {"eps": 1e-10})):
        w = torch.zeros(len(probs), dtype=torch.float64, requires_grad=True)
        opt = cls([w], lr=lr, **hp)
        path, rates = [w.detach().clone()], []
        for s in range(steps):
            xb, yb = X[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch]
            opt.zero_grad()
            loss = 0.5 * ((xb @ w - yb) ** 2).mean()
            loss.backward()
            opt.step()
            path.append(w.detach().clone())
            if key == "adagrad":
                g = opt.param_groups[0]
                rates.append(g["lr"] / (opt.state[w]["sum"].sqrt() + g["eps"]))
            else:
                rates.append(torch.full_like(w, opt.param_groups[0]["lr"]).detach())
        weights[key] = torch.stack(path).numpy()
        eff[key] = torch.stack(rates).numpy()
    return SparseDemo(features=names, presence=X.mean(0).numpy(), true_w=w_true.numpy(),
                      lr=lr, batch=batch, weights=weights, eff_lr=eff, active=active)


# -- gd-variants --------------------------------------------------------------------------------


@dataclass
class GDRun:
    """One variant: batch size, learning rate and the full-data loss after each update."""

    label: str
    batch: int
    lr: float
    loss: np.ndarray  # (updates + 1,), full-data loss, start included
    samples: np.ndarray  # (updates + 1,), per-sample gradients evaluated so far

    @property
    def updates(self) -> int:
        return len(self.loss) - 1

    def first_below(self, target: float) -> int | None:
        """Index (number of updates) of the first loss below ``target``."""
        hit = np.flatnonzero(self.loss < target)
        return int(hit[0]) if hit.size else None


@dataclass(repr=False)
class GDVariantsDemo(_Demo):
    """Batch, mini-batch and stochastic gradient descent on one least-squares problem.

    Attributes:
        runs: label -> :class:`GDRun`.
        n, d, epochs: samples, features and passes over the data.
        optimum: the least-squares minimum of the loss (``lstsq``).
        target: the loss the "to reach" columns refer to.
    """

    runs: dict[str, GDRun]
    n: int
    d: int
    epochs: int
    optimum: float
    initial: float
    target: float
    name: str = "gd-variants"
    title: str = ""

    def __post_init__(self) -> None:
        self.title = (f"Least squares, {self.n} samples x {self.d} features, {self.epochs} "
                      f"epochs; loss = 0.5 mean squared error, minimum {self.optimum:.4g}")

    def evals_to_target(self, label: str) -> int | None:
        run = self.runs[label]
        k = run.first_below(self.target)
        return None if k is None else int(run.samples[k])

    def updates_to_target(self, label: str) -> int | None:
        return self.runs[label].first_below(self.target)

    def table(self) -> str:
        rows = []
        for label, run in self.runs.items():
            ev = self.evals_to_target(label)
            rows.append([label, str(run.batch), f"{run.lr:g}", str(run.updates),
                         str(int(run.samples[-1])), f"{run.loss[-1]:.5f}",
                         _steps_text(self.updates_to_target(label)),
                         "never" if ev is None else str(ev)])
        return text_table(["variant", "batch", "lr", "updates", "gradient evals",
                              "final loss", f"updates to <{self.target:.4g}",
                              f"evals to <{self.target:.4g}"], rows)

    def plot(self):
        plt = _pyplot()
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained",
                                     sharey=True)
        for i, (label, run) in enumerate(self.runs.items()):
            text = f"{label} (B={run.batch}, lr={run.lr:g})"
            ax.loglog(np.arange(1, run.updates + 1), run.loss[1:], color=f"C{i}", lw=1.5,
                      label=text)
            bx.semilogy(run.samples / self.n, run.loss, color=f"C{i}", lw=1.5, label=text)
        for a in (ax, bx):
            a.axhline(self.optimum, color="k", ls=":", lw=1, label="least-squares minimum")
            a.axhline(self.target, color="gray", ls="--", lw=0.8, label="target")
            a.grid(True, which="both", alpha=0.3)
        ax.set_xlabel("parameter updates (log)")
        ax.set_ylabel("full-data loss")
        ax.set_title("Per update: the full batch makes the most progress")
        bx.set_xlabel(f"epochs = gradient evaluations / {self.n}")
        bx.set_title("Per gradient evaluation: small batches make the most progress")
        secondary = bx.secondary_xaxis("top", functions=(lambda e: e * self.n,
                                                         lambda s: s / self.n))
        secondary.set_xlabel("per-sample gradient evaluations")
        bx.legend(fontsize=8)
        return fig


#: the variants: label -> (batch size or None for the full batch, constant learning rate).
GD_VARIANTS = {"batch": (None, 0.5), "mini-batch": (32, 0.1), "stochastic": (1, 0.01)}


def gd_variants(n: int = 512, d: int = 10, epochs: int = 20, noise: float = 0.1, seed: int = 0,
                variants: dict | None = None) -> GDVariantsDemo:
    """Batch (B = n), mini-batch (B = 32) and stochastic (B = 1) gradient descent.

    Each variant runs optimlab's SGD at a constant learning rate chosen stable for its
    batch size (the full-data curvature is at most about 1.3 here, a single sample's
    about 10): 0.5, 0.1 and 0.01. All see the samples in the same seeded order.
    """
    from ..optim import SGD

    variants = GD_VARIANTS if variants is None else variants
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    w_true = torch.randn(d, generator=gen, dtype=torch.float64)
    y = X @ w_true + noise * torch.randn(n, generator=gen, dtype=torch.float64)
    orders = [torch.randperm(n, generator=gen) for _ in range(epochs)]

    def full_loss(w):
        return float(0.5 * ((X @ w - y) ** 2).mean())

    w_star = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    optimum = full_loss(w_star)
    initial = full_loss(torch.zeros(d, dtype=torch.float64))
    runs = {}
    for label, (batch, lr) in variants.items():
        batch = n if batch is None else int(batch)
        w = torch.zeros(d, dtype=torch.float64)
        step = _Rule(SGD, w, lr=lr)  # optimlab.SGD's rule (10,240 steps for B = 1)
        path, samples, seen = [w], [0], 0
        for order in orders:
            for s in range(0, n, batch):
                idx = order[s:s + batch]
                xb, yb = X[idx], y[idx]
                w = step(w, xb.T @ (xb @ w - yb) / len(idx))  # grad of 0.5 * mean sq. error
                seen += len(idx)
                samples.append(seen)
                path.append(w)
        losses = 0.5 * ((torch.stack(path) @ X.T - y) ** 2).mean(1)  # full-data loss, batched
        runs[label] = GDRun(label, batch, lr, losses.numpy(), np.array(samples))
    target = optimum + 0.01 * (initial - optimum)
    return GDVariantsDemo(runs=runs, n=n, d=d, epochs=epochs, optimum=optimum,
                          initial=initial, target=target)


# -- registry ------------------------------------------------------------------------------------


DEMOS: dict[str, Callable[..., _Demo]] = {
    "effective-lr": effective_lr,
    "ema": ema,
    "ill-conditioned": ill_conditioned,
    "saddle": saddle,
    "sparse": sparse,
    "gd-variants": gd_variants,
}


def run_demo(name: str, out_dir: str | Path | None = None, **kwargs) -> _Demo:
    """Run the demo ``name`` (see :data:`DEMOS`); write ``<out_dir>/<name>.png`` if given.

    Raises:
        ValueError: for an unknown name, listing the demos.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in DEMOS:
        raise ValueError(f"unknown demo {name!r}; available demos: {', '.join(DEMOS)}")
    result = DEMOS[key](**kwargs)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        fig = result.plot()
        try:
            fig.savefig(out / f"{key}.png", dpi=100)
        finally:
            _pyplot().close(fig)
    return result
