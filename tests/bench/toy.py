"""A small seeded classification task for the trainer's tests: Gaussian inputs with 8
features, 3 classes from a noisy linear score, an MLP 8-16-3 in float64.

``loss="cross_entropy"`` takes the population engine's per-chunk cross-entropy path (as the
built-in tasks do); None (the default) its ``vmap(task.loss_fn)`` path.
"""

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class ToyTask:
    """``examples`` drawn from ``seed``, the first ``train`` of them the train set."""

    seed: int = 0
    examples: int = 160
    train: int = 120
    activation: type[nn.Module] = nn.Tanh
    loss: str | None = None
    metric: str = "accuracy"
    x_train: torch.Tensor = field(default=None)
    y_train: torch.Tensor = field(default=None)
    x_test: torch.Tensor = field(default=None)
    y_test: torch.Tensor = field(default=None)

    def __post_init__(self):
        gen = torch.Generator().manual_seed(self.seed)
        w = torch.randn(8, 3, generator=gen, dtype=torch.float64)
        x = torch.randn(self.examples, 8, generator=gen, dtype=torch.float64)
        y = (x @ w + 0.5 * torch.randn(self.examples, 3, generator=gen,
                                       dtype=torch.float64)).argmax(-1)
        n = self.train
        self.x_train, self.y_train, self.x_test, self.y_test = x[:n], y[:n], x[n:], y[n:]

    def make_model(self, name=None):
        return nn.Sequential(nn.Linear(8, 16), self.activation(), nn.Linear(16, 3)).double()

    def loss_fn(self, output, target):
        return nn.functional.cross_entropy(output, target)
