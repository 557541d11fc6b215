"""The :class:`Landscape`: a test function with what it takes to race and draw on it."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..optim.base import check_int

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .result import Race

__all__ = ["Landscape", "CHALLENGES", "finite_reals"]

#: The difficulties a landscape can show, as the tutorials name them.
CHALLENGES = ("local-minima", "saddle", "plateau", "ravine", "ill-conditioned", "noisy")


def _real(value, finite: bool = True) -> bool:
    """Whether ``value`` is a real number (NumPy scalars included, bool not), not NaN, and
    finite when ``finite``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    value = float(value)
    return math.isfinite(value) if finite else not math.isnan(value)


def finite_reals(values) -> tuple:
    """``values`` as a tuple if it is a sequence of finite real numbers (NumPy's included,
    bools not), else ``()``."""
    try:
        values = tuple(values)
    except TypeError:
        return ()
    return values if all(_real(v) for v in values) else ()


def _check_noise(scale, seed) -> None:
    if not _real(scale) or scale < 0:
        raise ValueError(f"noise scale must be a finite number >= 0, got {scale!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ValueError(f"noise seed must be an integer in [0, 2**63), got {seed!r}")


@dataclass(frozen=True)
class Landscape:
    """A differentiable test function on :math:`\\mathbb{R}^{dim}`.

    Attributes:
        name: catalog name (``optimlab.landscapes.get(name)``).
        dim: number of coordinates.
        f: evaluates a tensor of shape ``[..., dim]`` to shape ``[...]``; differentiable
            by autograd, any float dtype (races and plots check the shape:
            :meth:`values`).
        domain: per-axis ``(low, high)`` bounds for plotting; a race starts inside them,
            and a run that leaves them far behind is called "diverged".
        minima: the known global minimizers (possibly several).
        min_value: the global minimum value.
        challenges: tags from :data:`CHALLENGES`.
        start: a telling default start point.
        description: one paragraph on what the function shows.
        log_scale: whether its values span decades (contours on a log scale).
        noise: standard deviation :math:`s` of the gradient noise (0: deterministic).
            The noise is isotropic: each step adds :math:`u \\cdot x` with
            :math:`u \\sim N(0, s^2 I)` drawn afresh, so the gradient gets :math:`u`
            added, the same in every direction. This is not DeepOBS's noisy quadratic,
            whose minibatch noise is shaped by the Hessian (its gradient noise is
            :math:`-Q \\bar{x}` for a batch mean :math:`\\bar{x}`); see :meth:`with_noise`.
        noise_seed: seed of that noise sequence.
        params: the parameters the function was built with (e.g. ``kappa``).
        local_minima: minimizers that are not global, where the landscape lists them (the
            basins exhibit names the minimum each run ends in from ``minima`` and these;
            an egg crate such as Rastrigin's, with a hundred, lists none).

    Landscapes compare equal field by field but ``f`` (the catalog builds a new function
    object each time: ``get("quadratic", kappa=10)`` twice is one landscape, told apart
    from another by its name and ``params``; give a landscape of your own a name of its
    own), and hash by every field but ``f`` and ``params`` (a dict), so one can key a dict
    or a cache; ``domain``, ``minima``, ``challenges`` and ``start`` are stored as tuples
    whatever sequences they were given as (``local_minima`` too).
    """

    name: str
    dim: int
    f: Callable[[Tensor], Tensor] = field(compare=False)
    domain: tuple[tuple[float, float], ...]
    minima: tuple[tuple[float, ...], ...]
    min_value: float
    challenges: tuple[str, ...]
    start: tuple[float, ...]
    description: str
    log_scale: bool = False
    noise: float = 0.0
    noise_seed: int = 0
    params: dict = field(default_factory=dict, hash=False)
    local_minima: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.challenges) - set(CHALLENGES)
        if unknown:
            raise ValueError(f"unknown challenge tags {sorted(unknown)}; use {CHALLENGES}")
        check_int(f"{self.name}: dim", self.dim, 1)
        if len(finite_reals(self.start)) != self.dim:
            raise ValueError(f"{self.name}: start must be {self.dim} finite numbers, "
                             f"got {self.start!r}")
        axes = tuple(self.domain) if isinstance(self.domain, (tuple, list)) else ()
        if len(axes) != self.dim:
            raise ValueError(f"{self.name}: domain must be {self.dim} (low, high) pairs, "
                             f"got {self.domain!r}")
        for axis in axes:
            if len(finite_reals(axis)) != 2 or not axis[0] < axis[1]:
                raise ValueError(f"{self.name}: each domain axis must be finite (low, high) "
                                 f"with low < high, got {axis!r}")
        for point in (*self.minima, *self.local_minima):
            if len(finite_reals(point)) != self.dim:
                raise ValueError(f"{self.name}: each minimum must be {self.dim} finite numbers, "
                                 f"got {point!r}")
        if not _real(self.min_value, finite=False):
            raise ValueError(f"{self.name}: min_value must be a number (not NaN), "
                             f"got {self.min_value!r}")
        _check_noise(self.noise, self.noise_seed)
        # checked above; kept as tuples (not lists or arrays), since a landscape hashes them
        set_field = object.__setattr__  # the dataclass is frozen
        set_field(self, "domain", tuple(tuple(axis) for axis in self.domain))
        set_field(self, "minima", tuple(tuple(point) for point in self.minima))
        set_field(self, "local_minima", tuple(tuple(point) for point in self.local_minima))
        set_field(self, "challenges", tuple(self.challenges))
        set_field(self, "start", tuple(self.start))

    def values(self, x: Tensor) -> Tensor:
        """``f(x)`` at points ``[..., dim]``, checked to be one value per point (shape
        ``[...]``): an ``f`` that sums over the batch would give every optimizer, and every
        rate a tuning tries, the same loss, and one that keeps the coordinate axis would
        fail deep inside torch. Races, plots and :func:`~.inspect.inspect_steps` evaluate
        through it.

        Raises:
            ValueError: ``f`` returned something else.
        """
        values = self.f(x)
        if not torch.is_tensor(values) or values.shape != x.shape[:-1]:
            got = f"shape {list(values.shape)}" if torch.is_tensor(values) \
                else f"a {type(values).__name__}"
            raise ValueError(f"{self.name}: f must map [..., dim] to [...] (one value per point), "
                             f"but on points of shape {list(x.shape)} it returned {got}")
        return values

    def __call__(self, x: Tensor) -> Tensor:
        return self.f(x)

    def grad(self, x: Tensor) -> Tensor:
        """The exact gradient at a batch of points ``[..., dim]`` (autograd).

        A convenience for reading gradients: races, plots and the playground differentiate
        :attr:`f` with autograd themselves (one reverse pass for every member), so a
        subclass that overrides this method changes what it returns, not how they run."""
        with torch.enable_grad():
            x = x.detach().requires_grad_()
            (g,) = torch.autograd.grad(self.f(x).sum(), x)
        return g

    def with_noise(self, scale: float, seed: int = 0) -> Landscape:
        """The same landscape with seeded isotropic Gaussian gradient noise (see
        :attr:`noise`) of std ``scale`` (a finite
        number >= 0; 0 removes the noise and the ``noisy`` tag) and ``seed`` (an integer in
        [0, 2**63))."""
        _check_noise(scale, seed)
        tags = tuple(t for t in self.challenges if t != "noisy")
        if scale > 0:
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
        """The known minimizers as a float64 tensor ``[len(minima), dim]`` (``[0]`` for a
        landscape without one)."""
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

    @property
    def title(self) -> str:
        """The name with the parameters it was built with, as plots title it:
        ``"quadratic (kappa=100)"``; just the name where it has none."""
        if not self.params:
            return self.name
        shown = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool)
                          else f"{k}={v}" for k, v in self.params.items())
        return f"{self.name} ({shown})"

    def __repr__(self) -> str:
        extra = f", noise={self.noise}" if self.noise else ""
        return (f"Landscape({self.name!r}, dim={self.dim}, min_value={self.min_value}, "
                f"challenges={list(self.challenges)}{extra})")
