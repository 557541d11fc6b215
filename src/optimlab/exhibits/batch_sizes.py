"""The ``gd-variants`` exhibit: batch, mini-batch and stochastic gradient descent on one
least-squares problem, per update and per gradient evaluation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .._table import listed, text_table
from ..landscapes.base import _real  # a finite real number: NumPy's too, not a bool
from ..optim.base import argument_error, check_int, is_real
from ..optim.palette import variant_styles
from ..optim.population import Population
from .base import Demo, check_seed, pyplot, steps_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["GD_VARIANTS", "GDRun", "GDVariantsDemo", "gd_variants"]


@dataclass
class GDRun:
    """One variant: batch size, learning rate and the full-data loss after each update.

    ``batch`` is the batch each update used: the size asked for (``asked``) capped at the
    number of samples."""

    label: str
    batch: int
    lr: float
    loss: np.ndarray  # (updates + 1,), full-data loss, start included
    samples: np.ndarray  # (updates + 1,), per-sample gradients evaluated so far
    asked: int | None = None  # the batch size asked for, when more than the samples

    @property
    def updates(self) -> int:
        """How many parameter updates the run took."""
        return len(self.loss) - 1

    @property
    def diverged(self) -> bool:
        """Whether the run diverged: its loss became non-finite, or ended above its start."""
        return not np.isfinite(self.loss).all() or bool(self.loss[-1] > self.loss[0])

    def first_below(self, target: float) -> int | None:
        """Index (number of updates) of the first loss below ``target``."""
        hit = np.flatnonzero(self.loss < target)
        return int(hit[0]) if hit.size else None


@dataclass(repr=False)
class GDVariantsDemo(Demo):
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
        """Examples whose gradients run ``label`` computed before its loss first fell below
        the target (None: never)."""
        run = self.runs[label]
        k = run.first_below(self.target)
        return None if k is None else int(run.samples[k])

    def updates_to_target(self, label: str) -> int | None:
        """Updates run ``label`` took before its loss first fell below the target (None:
        never)."""
        return self.runs[label].first_below(self.target)

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """The table's headers and rows: per variant its batch, rate, updates, gradient
        evaluations, final loss, and the updates and evaluations to the target."""
        rows = []
        for label, run in self.runs.items():
            ev = self.evals_to_target(label)
            final = f"{run.loss[-1]:.5f}" + (" (diverged)" if run.diverged else "")
            rows.append([label, str(run.batch), f"{run.lr:g}", str(run.updates),
                         str(int(run.samples[-1])), final,
                         steps_text(self.updates_to_target(label)),
                         "never" if ev is None else str(ev)])
        return ["variant", "batch", "lr", "updates", "gradient evals", "final loss",
                f"updates to <{self.target:.4g}", f"evals to <{self.target:.4g}"], rows

    def table(self) -> str:
        return "\n".join([text_table(*self.rows()), *self.notes()])

    def lowest_per_update(self) -> tuple[int, list[str]]:
        """``(k, labels)``: after ``k`` updates, the fewest any run took, the runs of least
        full-data loss (a non-finite loss counts as infinite): which variant does most per
        update, in this run. The plot's left title says it."""
        k = min(run.updates for run in self.runs.values())
        return k, _least({label: run.loss[k] for label, run in self.runs.items()})

    def lowest_per_epoch(self) -> list[str]:
        """The runs of least full-data loss once they have evaluated ``n`` per-sample
        gradients (one epoch): which variant does most per gradient evaluation, in this
        run. The plot's right title says it."""
        return _least({label: run.loss[int(np.searchsorted(run.samples, self.n))]
                       for label, run in self.runs.items()})

    def notes(self) -> list[str]:
        """The lines under the table: batches capped at the number of samples, and runs
        that diverged (loss non-finite, or above its start at the end)."""
        notes = [f"{label}: batch {run.asked} is more than the {self.n} samples; each update "
                 f"used all {run.batch}" for label, run in self.runs.items()
                 if run.asked is not None]
        notes += [f"{label}: diverged at lr {run.lr:g} (its loss went non-finite or ended "
                  "above its start); a smaller lr may converge"
                  for label, run in self.runs.items() if run.diverged]
        return notes

    def plot(self) -> Figure:
        plt = pyplot()
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained",
                                     sharey=True)
        # full batch in GD's catalog colour; the mini-batch runs in SGD's, as its variants
        styles = variant_styles(self.runs, {label: "gd" if run.batch >= self.n else "sgd"
                                            for label, run in self.runs.items()})
        for label, run in self.runs.items():
            text = f"{label} (B={run.batch}, lr={run.lr:g})"
            c, ls = styles[label]
            ax.loglog(np.arange(1, run.updates + 1), run.loss[1:], color=c, ls=ls, lw=1.5,
                      label=text, gid=f"updates:{label}")
            bx.semilogy(run.samples / self.n, run.loss, color=c, ls=ls, lw=1.5, label=text,
                        gid=f"evals:{label}")
        for a in (ax, bx):
            a.axhline(self.optimum, color="k", ls=":", lw=1, label="least-squares minimum")
            a.axhline(self.target, color="gray", ls="--", lw=0.8, label="target")
            a.grid(True, which="both", alpha=0.3)
        ax.set_xlabel("parameter updates (log)")
        ax.set_ylabel("full-data loss")
        k, first = self.lowest_per_update()
        ax.set_title(f"Per update: lowest after {k} {'update' if k == 1 else 'updates'}: "
                     f"{listed(first)}")
        bx.set_xlabel(f"epochs = gradient evaluations / {self.n}")
        bx.set_title(f"Per gradient evaluation: lowest after one epoch: "
                     f"{listed(self.lowest_per_epoch())}")
        secondary = bx.secondary_xaxis("top", functions=(lambda e: e * self.n,
                                                         lambda s: s / self.n))
        secondary.set_xlabel("per-sample gradient evaluations")
        bx.legend(fontsize=8)
        return fig


def _least(losses: dict[str, float]) -> list[str]:
    """The labels of the least loss (ties within float64 rounding kept together)."""
    finite = {label: float(v) if np.isfinite(v) else math.inf for label, v in losses.items()}
    least = min(finite.values())
    return [label for label, v in finite.items()
            if v == least or (math.isfinite(least) and math.isclose(v, least, rel_tol=1e-12))]


#: the variants: label -> (batch size or None for the full batch, constant learning rate).
GD_VARIANTS = {"batch": (None, 0.5), "mini-batch": (32, 0.1), "stochastic": (1, 0.01)}


def gd_variants(n: int = 512, d: int = 10, epochs: int = 20, noise: float = 0.1, seed: int = 0,
                variants: dict | None = None) -> GDVariantsDemo:
    """Batch (B = n), mini-batch (B = 32) and stochastic (B = 1) gradient descent.

    Each variant runs optimlab's SGD at a constant learning rate chosen stable for its
    batch size (the full-data curvature is at most about 1.3 here, a single sample's
    about 10): 0.5, 0.1 and 0.01. All see the samples in the same seeded order.

    ``n``, ``d`` and ``epochs`` are integers >= 1, ``noise`` a finite number >= 0, and
    ``variants`` maps labels to ``(batch size or None, learning rate)``: a batch an
    integer >= 1 (one above ``n`` is capped at ``n``, and the table says so), a rate a
    finite number > 0; anything else is a ValueError naming it. A run whose loss becomes
    non-finite or ends above its start is marked diverged in the table.
    """
    for name, value in (("n", n), ("d", d), ("epochs", epochs)):
        check_int(name, value, 1)
    if not (_real(noise) and noise >= 0):
        raise argument_error(is_real(noise))(f"noise must be a finite number >= 0, got {noise!r}")
    variants = GD_VARIANTS if variants is None else variants
    if not isinstance(variants, Mapping) or not variants:
        raise argument_error(isinstance(variants, Mapping))(
            f"variants must be a non-empty dict: label -> (batch size or None, learning "
            f"rate), got {variants!r}")
    for label, spec in variants.items():
        if not isinstance(spec, (tuple, list)) or len(spec) != 2:
            raise argument_error(isinstance(spec, (tuple, list)))(
                f"variants[{label!r}] must be a pair (batch size or None, learning rate), "
                f"got {spec!r}")
        batch, lr = spec
        if batch is not None:
            check_int(f"variants[{label!r}] batch", batch, 1)
        if not (_real(lr) and lr > 0):
            raise argument_error(is_real(lr))(
                f"variants[{label!r}] lr must be a finite number > 0, "
                f"got {lr!r}")
    n, d, epochs = int(n), int(d), int(epochs)
    gen = torch.Generator().manual_seed(check_seed(seed))
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
        # a batch larger than the data is the full batch: say so, and show what was used
        asked = None if batch is None or int(batch) <= n else int(batch)
        batch = n if batch is None else min(int(batch), n)
        lr = float(lr)
        # optimlab's SGD as a one-member population (10,240 steps for B = 1)
        weights = torch.zeros(1, d, dtype=torch.float64)
        population = Population("sgd", [weights], {"lr": lr})
        w = weights[0]  # a view: the population updates it in place
        path, samples, seen = [w.clone()], [0], 0
        with torch.no_grad():
            for order in orders:
                for s in range(0, n, batch):
                    idx = order[s:s + batch]
                    xb, yb = X[idx], y[idx]
                    grad = xb.T @ (xb @ w - yb) / len(idx)  # of 0.5 * mean squared error
                    population.step(grads=[grad.unsqueeze(0)])
                    seen += len(idx)
                    samples.append(seen)
                    path.append(w.clone())
        losses = 0.5 * ((torch.stack(path) @ X.T - y) ** 2).mean(1)  # full-data loss, batched
        runs[label] = GDRun(label, batch, lr, losses.numpy(), np.array(samples), asked)
    target = optimum + 0.01 * (initial - optimum)
    return GDVariantsDemo(runs=runs, n=n, d=d, epochs=epochs, optimum=optimum,
                          initial=initial, target=target)


