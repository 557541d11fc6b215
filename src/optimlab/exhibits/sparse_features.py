"""The ``sparse`` exhibit: Adagrad gives a rarely active feature a larger step than a
frequent one, where SGD gives both the same."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._table import text_table
from ..landscapes.base import _real  # a finite real number: NumPy's too, not a bool
from ..optim import SGD, Adagrad
from ..optim.base import argument_error, check_int, is_real
from ..optim.palette import LINE_STYLES, color, shade
from .base import Demo, check_seed, pyplot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["SparseDemo", "sparse"]


@dataclass(repr=False)
class SparseDemo(Demo):
    """One pass of SGD and Adagrad over a linear model with a rare and a frequent feature.

    Attributes:
        features: the feature names; ``presence``: fraction of the samples the pass read
            (``n // batch`` whole batches) where each is 1.
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
        """``optimizer``'s effective learning rate on ``feature``'s weight at the last step."""
        return float(self.eff_lr[optimizer][-1, self.features.index(feature)])

    def final_weight(self, optimizer: str, feature: str) -> float:
        """``optimizer``'s weight on ``feature`` at the last step."""
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

    def plot(self) -> Figure:
        plt = pyplot()
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
        # each optimizer in its catalog colour; each feature a line style (and a shade)
        names = {"sgd": "SGD", "adagrad": "Adagrad"}
        steps = np.arange(len(self.weights["sgd"]))
        for j, feat in enumerate(self.features):
            ls = LINE_STYLES[j % len(LINE_STYLES)]
            ax.axhline(self.true_w[j], color="0.25", lw=0.8, ls=":")
            for opt, text in names.items():
                ax.plot(steps, self.weights[opt][:, j], ls=ls, color=shade(color(opt), j),
                        lw=2, label=f"{text}, {feat} ({100 * self.presence[j]:.0f}%)",
                        gid=f"weight:{opt}:{feat}")
        ax.set_xlabel("step")
        ax.set_ylabel("weight (dotted: true values)")
        ax.set_title("Learned weights")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        steps = np.arange(1, len(self.eff_lr["sgd"]) + 1)
        seen = np.cumsum(self.active, axis=0) > 0  # Adagrad's rate is lr/eps until then
        for j, feat in enumerate(self.features):
            rate = np.where(seen[:, j], self.eff_lr["adagrad"][:, j], np.nan)
            bx.semilogy(steps, rate, color=shade(color("adagrad"), j), lw=2,
                        ls=LINE_STYLES[j % len(LINE_STYLES)], label=f"Adagrad, {feat}",
                        gid=f"rate:adagrad:{feat}")
        bx.semilogy(steps, self.eff_lr["sgd"].max(1), ls="-.", color=color("sgd"), lw=2,
                    label="SGD, every weight (= lr)", gid="rate:sgd")
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

    The pass reads ``n // batch`` whole batches: the ``n % batch`` samples left over are
    neither trained on nor counted in ``presence``.
    """
    check_int("batch", batch, 1)
    batch = int(batch)
    whole = isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_))
    if not whole or n < batch:
        raise argument_error(whole)(
            f"n must be an integer >= batch ({batch}): one batch at least, "
            f"got {n!r}")
    n = int(n)
    if not (_real(lr) and lr > 0):
        raise argument_error(is_real(lr))(f"lr must be a finite number > 0, got {lr!r}")
    if not (_real(noise) and noise >= 0):
        raise argument_error(is_real(noise))(f"noise must be a finite number >= 0, got {noise!r}")
    presence, true_w = np.asarray(presence).tolist(), np.asarray(true_w).tolist()
    if not isinstance(presence, list) or not isinstance(true_w, list) \
            or len(presence) != len(true_w) or not presence:
        raise ValueError("presence and true_w need one entry per feature (at least one)")
    if not all(_real(p) and 0 < p < 1 for p in presence):
        raise argument_error(all(map(is_real, presence)))(
            f"presence must hold shares strictly between 0 and 1, got {tuple(presence)!r}")
    if not all(_real(w) for w in true_w):
        raise argument_error(all(map(is_real, true_w)))(
            f"true_w must hold finite numbers, got {tuple(true_w)!r}")
    gen = torch.Generator().manual_seed(check_seed(seed))
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
    runs: tuple[tuple[str, type[SGD] | type[Adagrad], dict[str, Any]], ...] = (
        ("sgd", SGD, {}), ("adagrad", Adagrad, {"eps": 1e-10}))
    for key, cls, hp in runs:
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
            if cls is Adagrad:  # the exhibit is about Adagrad's own per-coordinate rate
                g = opt.param_groups[0]
                rates.append(g["lr"] / (opt.state[w]["sum"].sqrt() + g["eps"]))
            else:
                rates.append(torch.full_like(w, opt.param_groups[0]["lr"]).detach())
        weights[key] = torch.stack(path).numpy()
        eff[key] = torch.stack(rates).numpy()
    return SparseDemo(features=names, presence=X[: steps * batch].mean(0).numpy(),
                      true_w=w_true.numpy(),
                      lr=lr, batch=batch, weights=weights, eff_lr=eff, active=active)


