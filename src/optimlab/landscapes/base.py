"""The :class:`Landscape`: a test function with what it takes to race and draw on it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .result import Race

__all__ = ["Landscape", "CHALLENGES"]

#: The difficulties a landscape can show, as the tutorials name them.
CHALLENGES = ("local-minima", "saddle", "plateau", "ravine", "ill-conditioned", "noisy")


@dataclass(frozen=True)
class Landscape:
    """A differentiable test function on :math:`\\mathbb{R}^{dim}`.

    Attributes:
        name: catalog name (``optimlab.landscapes.get(name)``).
        dim: number of coordinates.
        f: evaluates a tensor of shape ``[..., dim]`` to shape ``[...]``; differentiable
            by autograd, any float dtype.
        domain: per-axis ``(low, high)`` bounds for plotting (and for calling a run that
            leaves them far behind "diverged").
        minima: the known global minimizers (possibly several).
        min_value: the global minimum value.
        challenges: tags from :data:`CHALLENGES`.
        start: a telling default start point.
        description: one paragraph on what the function shows.
        log_scale: whether its values span decades (contours on a log scale).
        noise: standard deviation of the gradient noise (0: deterministic). DeepOBS adds
            :math:`u \\cdot x` with :math:`u \\sim N(0, s^2 I)` drawn afresh each step, so
            the gradient gets additive Gaussian noise; see :meth:`with_noise`.
        noise_seed: seed of that noise sequence.
        params: the parameters the function was built with (e.g. ``kappa``).
    """

    name: str
    dim: int
    f: Callable[[Tensor], Tensor]
    domain: tuple[tuple[float, float], ...]
    minima: tuple[tuple[float, ...], ...]
    min_value: float
    challenges: tuple[str, ...]
    start: tuple[float, ...]
    description: str
    log_scale: bool = False
    noise: float = 0.0
    noise_seed: int = 0
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.challenges) - set(CHALLENGES)
        if unknown:
            raise ValueError(f"unknown challenge tags {sorted(unknown)}; use {CHALLENGES}")
        if len(self.domain) != self.dim or len(self.start) != self.dim:
            raise ValueError(f"{self.name}: domain and start need {self.dim} coordinates")

    def __call__(self, x: Tensor) -> Tensor:
        return self.f(x)

    def grad(self, x: Tensor) -> Tensor:
        """The exact gradient at a batch of points ``[..., dim]`` (autograd)."""
        with torch.enable_grad():
            x = x.detach().requires_grad_()
            (g,) = torch.autograd.grad(self.f(x).sum(), x)
        return g

    def with_noise(self, scale: float, seed: int = 0) -> Landscape:
        """The same landscape with seeded Gaussian gradient noise of std ``scale``."""
        if not scale >= 0:
            raise ValueError(f"noise scale must be >= 0, got {scale!r}")
        tags = self.challenges
        if scale > 0 and "noisy" not in tags:
            tags = tags + ("noisy",)
        return dataclasses.replace(self, noise=float(scale), noise_seed=int(seed), challenges=tags)

    def noise_sequence(self, steps: int, dtype=torch.float64) -> Tensor:
        """The gradient noise of steps 1..steps, shape ``[steps, dim]`` (zeros if none).

        The same sequence is used for every optimizer in a race (common random numbers),
        so differences between optimizers are not differences in luck.
        """
        if self.noise == 0:
            return torch.zeros(steps, self.dim, dtype=dtype)
        gen = torch.Generator().manual_seed(self.noise_seed)
        return self.noise * torch.randn(steps, self.dim, generator=gen, dtype=dtype)

    @property
    def minima_tensor(self) -> Tensor:
        return torch.tensor(self.minima, dtype=torch.float64)

    def distance_to_minimum(self, x: Tensor) -> Tensor:
        """Euclidean distance from points ``[..., dim]`` to the nearest known minimizer."""
        if not self.minima:  # saddles: no minimum to be near
            return torch.full(x.shape[:-1], float("nan"), dtype=x.dtype, device=x.device)
        diff = x.unsqueeze(-2) - self.minima_tensor.to(x)
        return torch.linalg.vector_norm(diff, dim=-1).min(dim=-1).values

    def plot_surface(self, race: Race | None = None, **kwargs: Any) -> Figure:
        """A 3-D surface of a 2-D landscape, with the paths of ``race`` if given."""
        from .plots import plot_surface

        return plot_surface(self, race=race, **kwargs)

    def plot(self, **kwargs: Any) -> Figure:
        """Filled contours of a 2-D landscape with its minima and start marked."""
        from .plots import plot_landscape

        return plot_landscape(self, **kwargs)

    def __repr__(self) -> str:
        extra = f", noise={self.noise}" if self.noise else ""
        return (f"Landscape({self.name!r}, dim={self.dim}, min_value={self.min_value}, "
                f"challenges={list(self.challenges)}{extra})")
