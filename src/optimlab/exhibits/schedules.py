"""Learning-rate and averaging exhibits: ``effective-lr`` and ``ema``.

``effective-lr``: Adagrad's effective learning rate :math:`\\gamma/\\sqrt{G_t}` decays as
:math:`1/\\sqrt t` under a constant gradient; RMSprop's settles. The two optimizers are
stepped by the library's own engine, :class:`~optimlab.optim.population.Population`.

``ema``: exponential moving averages of a noisy series, with and without Adam's bias
correction :math:`1/(1-\\beta^t)`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .._table import text_table
from ..optim.base import ArgumentTypeError, check_int, check_range
from ..optim.palette import color as optimizer_color
from ..optim.population import Population
from .base import Demo, check_seed, pyplot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["EMADemo", "EffectiveLRDemo", "effective_lr", "ema"]


# -- effective-lr ---------------------------------------------------------------------------


def _effective_lrs(name: str, steps: int, grad: float, **hparams) -> np.ndarray:
    """The step the registry's optimizer ``name`` takes at t = 1..steps on one coordinate
    whose gradient is always ``grad``, divided by that gradient.

    The coordinate is a one-member :class:`~optimlab.optim.population.Population` (a
    parameter of shape ``[1, 1]``, in float64), the engine races use: its own rule, state
    and step count, without ``torch.optim.Optimizer``'s per-call bookkeeping, so 10,000
    steps take a fraction of a second.
    """
    p = torch.zeros(1, 1, dtype=torch.float64)
    g = torch.full_like(p, grad)
    population = Population(name, [p], hparams)
    positions = [0.0]
    with torch.no_grad():
        for _ in range(steps):
            population.step(grads=[g])
            positions.append(p.item())
    taken = -np.diff(np.array(positions))
    return taken / grad


@dataclass(repr=False)
class EffectiveLRDemo(Demo):
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

    def plot(self) -> Figure:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
        steps = np.arange(1, len(self.adagrad) + 1)
        c_ada, c_rms = optimizer_color("adagrad"), optimizer_color("rmsprop")  # as everywhere
        ax.loglog(steps, self.adagrad, color=c_ada, lw=2, label="Adagrad")
        ax.loglog(steps, self.rmsprop, color=c_rms, lw=2, label=f"RMSprop (alpha={self.alpha:g})")
        at = np.array(self.at)
        ax.scatter(at, self.adagrad[at - 1], color=c_ada, zorder=3)
        ax.scatter(at, self.rmsprop[at - 1], color=c_rms, zorder=3)
        for t in at:
            ax.annotate(f"{self.adagrad[t - 1]:.4f}", (t, self.adagrad[t - 1]),
                        textcoords="offset points", xytext=(-6, -6), ha="right", va="top",
                        fontsize=8, color=c_ada)
            ax.annotate(f"{self.rmsprop[t - 1]:.4f}", (t, self.rmsprop[t - 1]),
                        textcoords="offset points", xytext=(0, 7), ha="center",
                        fontsize=8, color=c_rms)
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
    check_int("steps", steps, 1)
    check_range("lr", lr, 0.0, low_open=True)
    check_range("grad", grad, None)  # a finite number; 0 has no rate (the step over it)
    if grad == 0:
        raise ValueError("grad must not be 0: the effective rate is the step over the gradient")
    check_range("alpha", alpha, 0.0, 1.0)
    if isinstance(at, np.ndarray):  # NumPy's steps, as Python's
        at = at.tolist() if at.ndim == 1 else at
    if isinstance(at, (str, bytes)) or not isinstance(at, Sequence):
        raise ArgumentTypeError(f"at must be a sequence of steps to show, got {at!r}")
    if not all(isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in at):
        raise ArgumentTypeError(f"at must hold whole steps to show, got {tuple(at)!r}")
    at = tuple(int(t) for t in at)
    if not at or min(at) < 1 or max(at) > steps:
        raise ValueError(f"steps to show must lie in 1..{steps}, got {at}")
    return EffectiveLRDemo(
        lr=lr, grad=grad, alpha=alpha,
        adagrad=_effective_lrs("adagrad", steps, grad, lr=lr, eps=1e-10),
        rmsprop=_effective_lrs("rmsprop", steps, grad, lr=lr, alpha=alpha, eps=1e-8),
        at=at)



# -- ema ------------------------------------------------------------------------------------


@dataclass(repr=False)
class EMADemo(Demo):
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

    def plot(self) -> Figure:
        plt = pyplot()
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained",
                                     gridspec_kw={"width_ratios": [2, 1]})
        t = np.arange(1, len(self.series) + 1)
        ax.plot(t, self.series, "o", color="0.6", ms=3, label="samples x_t")
        # the betas' lines are no optimizer's: shades of one colour map, not matplotlib's
        # C0, C1, ... (gd's, momentum's and adam's colours in the palette every figure shares)
        shades = plt.get_cmap("viridis")(np.linspace(0.0, 0.8, max(len(self.betas), 1)))
        for i, b in enumerate(self.betas):
            color = shades[i]
            ax.plot(t, self.corrected[b], color=color, lw=2, label=f"beta={b:g}, corrected")
            ax.plot(t, self.raw[b], color=color, lw=1.5, ls="--", label=f"beta={b:g}, uncorrected")
        ax.set_xlabel("t")
        ax.set_ylabel("value")
        ax.set_title("Uncorrected averages start near 0 (they start from m_0 = 0)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, ncol=2, loc="lower right")
        for i, b in enumerate(self.betas):
            bx.plot(t, 1 - b ** t, color=shades[i], lw=2, label=f"beta={b:g}")
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
    check_int("n", n, 1)
    check_int("rows", rows, 1)
    if isinstance(betas, np.ndarray):  # NumPy's numbers, as Python's
        betas = betas.tolist() if betas.ndim == 1 else betas
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or not betas:
        raise ArgumentTypeError(f"betas must be a non-empty sequence of numbers, got {betas!r}")
    for b in betas:
        check_range("beta", b, 0.0, 1.0)
    n, rows = int(n), int(rows)
    gen = torch.Generator().manual_seed(check_seed(seed))
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


