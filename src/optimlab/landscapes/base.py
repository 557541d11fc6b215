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

from ..optim.base import ArgumentTypeError, argument_error, check_bool, check_int, is_real

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .result import Race

__all__ = ["Landscape", "CHALLENGES", "LandscapeWarning", "finite_reals", "min_value_floor"]

#: The difficulties a landscape can show, as the tutorials name them.
CHALLENGES = ("local-minima", "saddle", "plateau", "ravine", "ill-conditioned", "noisy")


def _real(value, finite: bool = True) -> bool:
    """Whether ``value`` is a real number (NumPy scalars included, bool not), not NaN, and
    finite when ``finite``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    value = float(value)
    return math.isfinite(value) if finite else not math.isnan(value)


def min_value_floor(min_value: float) -> float:
    """The lowest value still taken as ``min_value`` itself: less a millionth of its size,
    at least 1e-6 (the catalog's minimum values are rounded to float64, or Newton-polished).
    A loss below it is below the minimum (a wrong ``min_value``, or an escape); one between
    it and ``min_value`` has reached it."""
    return min_value - 1e-6 * max(1.0, abs(min_value))


def finite_reals(values) -> tuple:
    """``values`` as a tuple if it is a sequence of finite real numbers (NumPy's included,
    bools not), else ``()``."""
    try:
        values = tuple(values)
    except TypeError:
        return ()
    return values if all(_real(v) for v in values) else ()


class LandscapeWarning(UserWarning):
    """Something about a landscape the lab can run on but that reads wrong: its ``f``
    goes below its ``min_value`` (gaps to the minimum are negative), or ``f`` returns
    float32 or float16 for float64 points (a race then runs at that precision)."""


#: What ``f`` must be for races, plots and tuning (said where it fails).
F_REQUIREMENTS = ("f must be batched: map a tensor of points [..., dim] to one value per "
                  "point [...], with torch operations that work elementwise over the leading "
                  "axes (no Python `if` on values, `float(x)` or `.item()`: use torch.where), "
                  "differentiable by autograd (no NumPy, no .detach()), and floating point")

_WRAPPED_ERRORS = (RuntimeError, TypeError, ValueError, IndexError)


def f_failed(landscape: Landscape, x: Tensor, err: Exception, where: str = "") -> Exception:
    """The error to raise for ``err`` raised by ``landscape.f`` (or its gradient) on points
    ``x``: the same builtin class (RuntimeError, TypeError, ValueError, IndexError), with a
    message that names the landscape and says what f must be (:data:`F_REQUIREMENTS`).
    ``err`` itself (its class not one of those exactly, such as a cancellation) is returned
    as it is, to be raised unchanged. The caller chains it (``raise ... from err``)."""
    if type(err) not in _WRAPPED_ERRORS:
        return err
    what = where or f"on points of shape {list(x.shape)} ({str(x.dtype).replace('torch.', '')})"
    return type(err)(f"{landscape.name}: f failed {what}: {err}. {F_REQUIREMENTS}")


def _check_noise(scale, seed) -> None:
    if not _real(scale) or scale < 0:
        raise argument_error(is_real(scale))(
            f"noise scale must be a finite number >= 0, got {scale!r}")
    whole = not isinstance(seed, bool) and isinstance(seed, numbers.Integral)
    if not whole or not 0 <= seed < 2**63:
        raise argument_error(whole)(f"noise seed must be an integer in [0, 2**63), got {seed!r}")


@dataclass(frozen=True)
class Landscape:
    """A differentiable test function on :math:`\\mathbb{R}^{dim}`.

    Attributes:
        name: catalog name (``optimlab.landscapes.get(name)``).
        dim: number of coordinates.
        f: evaluates a tensor of shape ``[..., dim]`` to shape ``[...]``: batched (torch
            operations elementwise over the leading axes; no Python ``if`` on values, use
            ``torch.where``), differentiable by autograd and floating point. Races run in
            float64 and give f float64 points: an f that returns float32 or float16 lowers
            their precision (a :class:`LandscapeWarning` says so). Races and plots check the
            shape (:meth:`values`) and name the landscape where f fails.
        domain: per-axis ``(low, high)`` bounds for plotting; a race starts inside them,
            and a run that leaves them far behind is called "diverged".
        minima: the known global minimizers (possibly several); ``()`` where none is
            known, or there is none (see "Minima and min_value" below).
        min_value: the global minimum value (f at ``minima``); see below for a landscape
            without ``minima``, where it may be None (not known).
        challenges: tags from :data:`CHALLENGES`.
        start: a telling default start point.
        description: one paragraph on what the function shows.
        log_scale: whether its values span decades: plots then colour the contours by
            ``log(f - min + eps)``, min the lowest value on the plotted grid (a surface plot
            takes it as its default height scale), so a deep narrow valley shows; values
            spanning more than three decades get log colours anyway. Only the pictures
            change, not the races.
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

    Minima and min_value: how a race judges its runs.

    * ``minima`` given: runs are measured by their gap f - ``min_value`` and their distance
      to the nearest minimizer; ``min_value`` must be a number (f at the minimizers).
    * ``minima=()`` with the challenge tag ``"saddle"``, or ``min_value=-inf`` (unbounded
      below): there is no minimum to converge to (the catalog's ``saddle`` and
      ``monkey_saddle``). Leaving the domain downhill is the goal: a finite ``min_value``
      is the lowest value on the domain, and a run whose loss falls below it has
      "escaped"; a run that falls without bound (to -inf) is not diverged
      (:func:`~optimlab.landscapes.race.diverged`). This is :attr:`unbounded`.
    * ``minima=()`` otherwise: the function has a minimum, but where is not known. Runs are
      judged by the rules that need no minimizer: a non-finite loss or point, a gap that
      grows past ``DIVERGENCE_FACTOR`` and the floor, or leaving the domain by
      ``DIVERGENCE_WIDTHS`` widths is diverged; the distance to the minimum is not known
      ("-" in the table). ``min_value`` is the minimum value if known (gaps and steps to
      the tolerance are measured from it) or None (not known: those columns show "-",
      and the divergence rule measures from the lowest value f takes on a grid of the
      domain, or the start's value where that is lower).

    Where f goes below a finite ``min_value`` by more than rounding (on the grid the lab
    reads f on, :func:`~optimlab.landscapes.race.typical_gap`, or along a race), a
    :class:`LandscapeWarning` names the value and the point.

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
    min_value: float | None
    challenges: tuple[str, ...]
    start: tuple[float, ...]
    description: str
    log_scale: bool = False
    noise: float = 0.0
    noise_seed: int = 0
    params: dict = field(default_factory=dict, hash=False)
    local_minima: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        # the kinds first: a name of 5, an f of None and log_scale="yes" were taken, and a
        # race then blamed f's batching; challenges="ravine" read as six unknown letters
        if not isinstance(self.name, str) or not self.name.strip():
            raise ArgumentTypeError(f"a landscape's name must be a non-empty str, got "
                                    f"{self.name!r}")
        if not callable(self.f):
            raise ArgumentTypeError(f"{self.name}: f must be a function of points [..., dim] "
                                    f"to values [...], got {type(self.f).__name__}")
        if not isinstance(self.description, str):
            raise ArgumentTypeError(f"{self.name}: description must be a str, got "
                                    f"{self.description!r}")
        check_bool(f"{self.name}: log_scale", self.log_scale)
        if isinstance(self.challenges, str):
            raise ArgumentTypeError(f"{self.name}: challenges must be a sequence of tags, such "
                                    f"as ({self.challenges!r},), got the str "
                                    f"{self.challenges!r}")
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
        if self.min_value is None:
            if self.minima:
                raise ValueError(f"{self.name}: min_value=None (not known) needs minima=(); "
                                 f"with minima given, min_value is f at them")
        elif not _real(self.min_value, finite=False):
            raise ValueError(f"{self.name}: min_value must be a number (not NaN), got "
                             f"{self.min_value!r} (or None: not known, with minima=())")
        elif self.min_value == math.inf:
            raise ValueError(f"{self.name}: min_value must be below +inf, got inf")
        elif self.min_value == -math.inf and self.minima:
            # a converged run's gap was then inf, and it was not diverged
            raise ValueError(f"{self.name}: min_value=-inf says f is unbounded below, which "
                             f"needs minima=(); with minima given, min_value is f at them")
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
            RuntimeError, TypeError, ValueError, IndexError: ``f`` raised one (such as
                torch's "Boolean value of Tensor with more than one value is ambiguous" for
                a Python ``if`` on values): the same class, naming the landscape and saying
                what f must be, with f's own error chained.
        """
        try:
            values = self.f(x)
        except _WRAPPED_ERRORS as err:
            raise f_failed(self, x, err) from err
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
            return gradient(self, self.values(x), x)

    @property
    def unbounded(self) -> bool:
        """Whether there is no minimum to converge to, so that leaving the domain downhill
        is the goal: ``minima`` is empty and the landscape is tagged ``"saddle"`` or its
        ``min_value`` is -inf (see "Minima and min_value" in the class docstring). A
        landscape whose minimizer is merely not known (``minima=()``, no such tag) is not:
        a run that blows up on it is diverged."""
        return not self.minima and ("saddle" in self.challenges or self.min_value == -math.inf)

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
        if not self.minima:  # saddles, and a minimizer not known: no minimum to be near
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


def gradient(landscape: Landscape, values: Tensor, points: Tensor,
             weights: Tensor | None = None) -> Tensor:
    """The gradient of ``(weights * values).sum()`` (weights: ones) at ``points``, where
    ``values = landscape.values(points)`` was computed with ``points`` requiring grad: one
    reverse pass. An f whose values autograd cannot differentiate (they do not depend on
    the points through torch: integers, NumPy, ``.detach()``, a constant) or whose
    backward pass fails is refused with an error that names the landscape and says what
    f must be (:func:`f_failed`), f's own error chained."""
    if not values.requires_grad or not values.is_floating_point():
        why = (f"it returned {str(values.dtype).replace('torch.', '')} values"
               if not values.is_floating_point() else
               "its values do not depend on the points through torch operations (computed "
               "with NumPy, .item() or .detach(), or not from x at all)")
        raise ValueError(f"{landscape.name}: autograd cannot differentiate f: {why}. "
                         f"{F_REQUIREMENTS}")
    if weights is None:
        weights = torch.ones_like(values)
    try:
        return torch.autograd.grad(values, points, weights)[0]
    except _WRAPPED_ERRORS as err:
        raise f_failed(landscape, points, err, "in its backward pass (autograd)") from err
