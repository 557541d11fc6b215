"""The catalog of test functions: ``get("rosenbrock")``, ``get("quadratic", kappa=100)``.

Each landscape is a small torch function of a tensor ``x`` of shape ``[..., dim]``
(batched, any float dtype, differentiable by autograd) wrapped in a :class:`Landscape`
with its plotting domain, known global minimizers, minimum value, challenge tags, a
telling default start and a paragraph on what it shows.

>>> names()[:3]
['rosenbrock', 'beale', 'himmelblau']
>>> get("Quadratic", kappa=100).params
{'kappa': 100.0}
>>> float(get("booth")(torch.tensor([1.0, 3.0])))
0.0

The formulas are the private ``_name(x)`` functions below; the public builders
(``rosenbrock()``, ``quadratic(kappa=10)``, ...) return the catalog entries and
validate their parameters.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import operator
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .._userfunc import is_spec, user_function
from ..optim.base import ArgumentTypeError, argument_error, is_real
from .base import Landscape

__all__ = [
    "get", "names",
    "rosenbrock", "beale", "himmelblau", "rastrigin", "ackley", "booth", "goldstein_price",
    "six_hump_camel", "styblinski_tang", "saddle", "monkey_saddle", "quadratic",
    "rotated_quadratic", "plateau", "two_wells", "two_wells_minima", "rosenbrock_nd",
    "rastrigin_nd", "quadratic_deep",
]


# --------------------------------------------------------------------------------------
# The formulas: tensors [..., dim] -> [...]
# --------------------------------------------------------------------------------------

def _rosenbrock(x: Tensor) -> Tensor:
    x0, x1 = x[..., 0], x[..., 1]
    return 100 * (x1 - x0**2) ** 2 + (1 - x0) ** 2


def _beale(x: Tensor) -> Tensor:
    x0, x1 = x[..., 0], x[..., 1]
    return ((1.5 - x0 + x0 * x1) ** 2
            + (2.25 - x0 + x0 * x1**2) ** 2
            + (2.625 - x0 + x0 * x1**3) ** 2)


def _himmelblau(x: Tensor) -> Tensor:
    x0, x1 = x[..., 0], x[..., 1]
    return (x0**2 + x1 - 11) ** 2 + (x0 + x1**2 - 7) ** 2


def _rastrigin(x: Tensor) -> Tensor:
    """``10 n + sum(x_i^2 - 10 cos(2 pi x_i))``, any number of coordinates ``n``."""
    return 10 * x.shape[-1] + (x**2 - 10 * torch.cos(2 * math.pi * x)).sum(-1)


def _ackley(x: Tensor, a: float = 20.0, b: float = 0.2, c: float = 2 * math.pi) -> Tensor:
    """``-a exp(-b sqrt(mean x^2)) - exp(mean cos(c x)) + a + e``.

    The square root makes a cone tip at the origin where no gradient exists; autograd
    would give ``nan`` there, so the root is taken through a ``where`` that returns the
    subgradient 0 at the origin (and the exact gradient everywhere else).
    """
    s = (x**2).mean(-1)
    positive = s > 0
    r = torch.where(positive, torch.sqrt(torch.where(positive, s, torch.ones_like(s))), torch.zeros_like(s))
    return -a * torch.exp(-b * r) - torch.exp(torch.cos(c * x).mean(-1)) + a + math.e


def _booth(x: Tensor) -> Tensor:
    x0, x1 = x[..., 0], x[..., 1]
    return (x0 + 2 * x1 - 7) ** 2 + (2 * x0 + x1 - 5) ** 2


def _goldstein_price(x: Tensor) -> Tensor:
    x0, x1 = x[..., 0], x[..., 1]
    first = 1 + (x0 + x1 + 1) ** 2 * (19 - 14 * x0 + 3 * x0**2 - 14 * x1 + 6 * x0 * x1 + 3 * x1**2)
    second = 30 + (2 * x0 - 3 * x1) ** 2 * (18 - 32 * x0 + 12 * x0**2 + 48 * x1 - 36 * x0 * x1
                                            + 27 * x1**2)
    return first * second


def _six_hump_camel(x: Tensor) -> Tensor:
    x0, x1 = x[..., 0], x[..., 1]
    return (4 - 2.1 * x0**2 + x0**4 / 3) * x0**2 + x0 * x1 + (-4 + 4 * x1**2) * x1**2


def _styblinski_tang(x: Tensor) -> Tensor:
    """``0.5 sum(x_i^4 - 16 x_i^2 + 5 x_i)``, any number of coordinates."""
    return 0.5 * (x**4 - 16 * x**2 + 5 * x).sum(-1)


def _saddle(x: Tensor) -> Tensor:
    x0, x1 = x[..., 0], x[..., 1]
    return x0**2 - x1**2


def _monkey_saddle(x: Tensor) -> Tensor:
    x0, x1 = x[..., 0], x[..., 1]
    return x0**3 - 3 * x0 * x1**2


def _quadratic(x: Tensor, kappa: float = 10.0) -> Tensor:
    x0, x1 = x[..., 0], x[..., 1]
    return 0.5 * (x0**2 + kappa * x1**2)


def _rotated_quadratic(x: Tensor, kappa: float = 10.0, angle: float = 45.0) -> Tensor:
    """``0.5 (u^2 + kappa v^2)`` in coordinates ``(u, v)`` turned by ``angle`` degrees:
    ``u = cos(a) x + sin(a) y``, ``v = -sin(a) x + cos(a) y``. At angle 0 it is
    :func:`_quadratic`; at 45 degrees the long and the narrow axis are the diagonals."""
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    x0, x1 = x[..., 0], x[..., 1]
    u = c * x0 + s * x1
    v = -s * x0 + c * x1
    return 0.5 * (u**2 + kappa * v**2)


def _plateau(x: Tensor) -> Tensor:
    """An inverted Gaussian ``1 - exp(-(x^2 + y^2) / 2)``: a unit-width basin in a flat mesa."""
    x0, x1 = x[..., 0], x[..., 1]
    return 1 - torch.exp(-(x0**2 + x1**2) / 2)


def _two_wells(x: Tensor) -> Tensor:
    """A wide bowl with a deep Gaussian well (depth 2, width 1, centred at (-1.5, -1))
    and a shallow one (depth 1, width 0.7, centred at (1.5, 1))."""
    x0, x1 = x[..., 0], x[..., 1]
    bowl = 0.05 * (x0**2 + x1**2)
    deep = 2.0 * torch.exp(-((x0 + 1.5) ** 2 + (x1 + 1.0) ** 2) / (2 * 1.0**2))
    shallow = 1.0 * torch.exp(-((x0 - 1.5) ** 2 + (x1 - 1.0) ** 2) / (2 * 0.7**2))
    return bowl - deep - shallow


def _rosenbrock_nd(x: Tensor) -> Tensor:
    """The chained Rosenbrock ``sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2``."""
    head, tail = x[..., :-1], x[..., 1:]
    return (100 * (tail - head**2) ** 2 + (1 - head) ** 2).sum(-1)


def _quadratic_form(x: Tensor, hessian: Tensor) -> Tensor:
    """``0.5 x^T H x`` for a batch of points (H is stored in float64, cast to ``x``)."""
    h = hessian.to(dtype=x.dtype, device=x.device)
    return 0.5 * ((x @ h) * x).sum(-1)


# --------------------------------------------------------------------------------------
# Helpers: parameter checks and a Newton polish for minima without a closed form
# --------------------------------------------------------------------------------------

def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ArgumentTypeError(f"{name} must be a positive number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _integer(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ArgumentTypeError(f"{name} must be an integer, got {value!r}") from None
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _newton_minimum(f: Callable[[Tensor], Tensor], x0: tuple[float, ...], steps: int = 50) -> Tensor:
    """Polish a minimizer of a smooth ``f`` by Newton steps in float64 from ``x0``."""

    def grad(x: Tensor) -> Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_()
            return torch.autograd.grad(f(x), x)[0]

    def hessian(x: Tensor) -> Tensor:
        return torch.autograd.functional.hessian(f, x)

    x = torch.tensor(x0, dtype=torch.float64)
    for _ in range(steps):
        step = torch.linalg.solve(hessian(x), grad(x))
        x = x - step
        if float(step.abs().max()) < 1e-15:
            break
    if float(grad(x).abs().max()) > 1e-10 or float(torch.linalg.eigvalsh(hessian(x)).min()) <= 0:
        raise RuntimeError(f"Newton did not reach a minimum from {x0}")  # pragma: no cover
    return x


@functools.lru_cache(maxsize=None)
def _two_wells_minima() -> tuple[tuple[float, float], tuple[float, float]]:
    """(deep, shallow) minimizers of :func:`_two_wells`, Newton-polished from the centres."""
    deep = _newton_minimum(_two_wells, (-1.5, -1.0))
    shallow = _newton_minimum(_two_wells, (1.5, 1.0))
    return tuple(deep.tolist()), tuple(shallow.tolist())


# --------------------------------------------------------------------------------------
# The builders
# --------------------------------------------------------------------------------------

def rosenbrock() -> Landscape:
    """Rosenbrock's banana valley, ``100 (y - x^2)^2 + (1 - x)^2``."""
    return Landscape(
        name="rosenbrock", dim=2, f=_rosenbrock,
        domain=((-2.0, 2.0), (-1.0, 3.0)),
        minima=((1.0, 1.0),), min_value=0.0,
        challenges=("ravine", "ill-conditioned"),
        start=(-1.2, 1.0),
        description=(
            "Rosenbrock's banana: a steep-walled, curved parabolic valley y = x^2 whose floor "
            "falls only gently towards the minimum at (1, 1). Reaching the valley is easy; "
            "following it is the hard part. Plain gradient descent zig-zags across the walls and "
            "needs a small step to stay stable, so it crawls along the floor for thousands of "
            "steps; momentum and adaptive methods (Adam, RMSprop) travel the valley much faster "
            "but may overshoot at the bend. The classic start (-1.2, 1) makes the path go round "
            "the curve."),
        log_scale=True,
    )


def beale() -> Landscape:
    """Beale's function, sharp corners and a long flat valley."""
    return Landscape(
        name="beale", dim=2, f=_beale,
        domain=((-4.5, 4.5), (-4.5, 4.5)),
        minima=((3.0, 0.5),), min_value=0.0,
        challenges=("plateau", "ravine"),
        start=(1.0, 1.5),
        description=(
            "Beale's function: values climb to 10^5 at the corners, while the minimum at (3, 0.5) "
            "sits at the end of a narrow, nearly flat curved valley (the Hessian there has "
            "condition number about 160, and the whole line x = 0 is a level set). Gradients "
            "are huge on the walls and tiny on the valley floor, so a fixed step size is either "
            "unstable on the walls or painfully slow on the floor; plain gradient descent and "
            "momentum stall short of the minimum, while adaptive methods that rescale each "
            "coordinate (Adam, RMSprop, Adagrad) get much closer."),
        log_scale=True,
    )


HIMMELBLAU_MINIMA = (
    (3.0, 2.0),
    (-2.805118086952745, 3.131312518250573),
    (-3.779310253377747, -3.2831859912861696),
    (3.5844283403304917, -1.8481265269644034),
)


def himmelblau() -> Landscape:
    """Himmelblau's function, four equal minima."""
    return Landscape(
        name="himmelblau", dim=2, f=_himmelblau,
        domain=((-5.0, 5.0), (-5.0, 5.0)),
        minima=HIMMELBLAU_MINIMA, min_value=0.0,
        challenges=("saddle",),
        start=(-0.3, -0.9),
        description=(
            "Himmelblau's function: four global minima of value 0, at (3, 2), (-2.805, 3.131), "
            "(-3.779, -3.283) and (3.584, -1.848), separated by four saddle points around a "
            "local maximum near (-0.271, -0.923). Every optimizer finds a minimum; which one "
            "depends on its first steps. From the default start, next to the maximum, plain "
            "gradient descent and momentum slide to (-3.78, -3.28) while Adam, whose first "
            "steps follow the gradient's signs rather than its direction, ends at (-2.81, 3.13)."),
        log_scale=True,
    )


def rastrigin() -> Landscape:
    """Rastrigin's function in 2-D, an egg-crate of local minima on a bowl."""
    return Landscape(
        name="rastrigin", dim=2, f=_rastrigin,
        domain=((-5.12, 5.12), (-5.12, 5.12)),
        minima=((0.0, 0.0),), min_value=0.0,
        challenges=("local-minima",),
        start=(3.2, -2.6),
        description=(
            "Rastrigin's function, 20 + sum(x_i^2 - 10 cos(2 pi x_i)): a parabolic bowl covered "
            "by a regular egg-crate of cosine bumps, with a local minimum near every integer "
            "point and the global minimum 0 at the origin. Local gradients point to the "
            "nearest dimple rather than to the centre, so gradient descent with a small step "
            "stops in the first local minimum it meets; only large steps, momentum that carries "
            "it over the bumps, or noise let it hop towards the origin."),
    )


def ackley() -> Landscape:
    """Ackley's function (a=20, b=0.2, c=2 pi) in 2-D."""
    return Landscape(
        name="ackley", dim=2, f=_ackley,
        domain=((-5.0, 5.0), (-5.0, 5.0)),
        minima=((0.0, 0.0),), min_value=0.0,
        challenges=("local-minima",),
        start=(-4.0, 3.5),
        description=(
            "Ackley's function (a = 20, b = 0.2, c = 2 pi): a gently sloping outer region "
            "studded with many small local minima, falling into a deep narrow funnel whose "
            "cone-shaped tip is the global minimum 0 at the origin (there the gradient does not "
            "exist; the function returns the subgradient 0). From the default start, small "
            "steps (gradient descent at lr 0.01, Adam at 0.1) stop in the nearest ripple; large "
            "steps skip the ripples and reach the funnel, but because the gradient keeps its "
            "size up to the tip, fixed-step methods then bounce around the minimum unless the "
            "step is decayed, and momentum can overshoot the funnel altogether."),
    )


def booth() -> Landscape:
    """Booth's function, a rotated, mildly ill-conditioned quadratic."""
    return Landscape(
        name="booth", dim=2, f=_booth,
        domain=((-10.0, 10.0), (-10.0, 10.0)),
        minima=((1.0, 3.0),), min_value=0.0,
        challenges=("ill-conditioned",),
        start=(-8.0, 8.0),
        description=(
            "Booth's function, (x + 2y - 7)^2 + (2x + y - 5)^2: a quadratic bowl whose axes are "
            "rotated by 45 degrees, with Hessian eigenvalues 18 and 2 (condition number 9) and "
            "its minimum 0 at (1, 3). Gradient descent converges, but the step size is limited "
            "by the steep direction, so it creeps along the shallow diagonal; momentum fixes "
            "this. Because the valley is not aligned with the coordinate axes, per-coordinate "
            "scaling (Adam, RMSprop) helps less here than on an axis-aligned bowl."),
        log_scale=True,
    )


def goldstein_price() -> Landscape:
    """The Goldstein-Price function."""
    return Landscape(
        name="goldstein_price", dim=2, f=_goldstein_price,
        domain=((-2.0, 2.0), (-2.0, 2.0)),
        minima=((0.0, -1.0),), min_value=3.0,
        local_minima=((-0.6, -0.4), (1.8, 0.2), (1.2, 0.8)),  # values 30, 84 and 840
        challenges=("local-minima",),
        start=(1.0, -1.8),
        description=(
            "The Goldstein-Price function: a degree-8 polynomial whose values run from 3 to "
            "about 10^6 over the square [-2, 2]^2, with the global minimum 3 at (0, -1) and several local "
            "minima, e.g. 30 near (-0.6, -0.4), 84 near (1.8, 0.2) and 840 near (1.2, 0.8). The "
            "huge gradients on the walls force tiny fixed steps, and which basin an optimizer "
            "ends in depends on its path and its step: from the default start plain gradient "
            "descent at lr 1e-5 is thrown into the local minimum 840, while at the playground's "
            "3.16e-6 it creeps down into the global basin (f 5.2 after 500 steps); momentum "
            "(lr 1e-6) and Adam (lr 0.1) reach the global minimum within 500 steps."),
        log_scale=True,
    )


SIX_HUMP_CAMEL_MINIMA = (
    (0.08984201310031806, -0.7126564030207396),
    (-0.08984201310031806, 0.7126564030207396),
)

#: the four local minimizers (values -0.2155 and 2.1043), Newton-polished in float64
SIX_HUMP_CAMEL_LOCAL_MINIMA = (
    (-1.7036067149699807, 0.7960835686726251),
    (1.7036067149699807, -0.7960835686726251),
    (1.6071047529201974, 0.5686514548841314),
    (-1.6071047529201974, -0.5686514548841314),
)


def six_hump_camel() -> Landscape:
    """The six-hump camel function, two global and four local minima."""
    return Landscape(
        name="six_hump_camel", dim=2, f=_six_hump_camel,
        domain=((-2.5, 2.5), (-1.5, 1.5)),
        minima=SIX_HUMP_CAMEL_MINIMA, min_value=-1.0316284534898774,
        local_minima=SIX_HUMP_CAMEL_LOCAL_MINIMA,
        challenges=("local-minima", "saddle"),
        start=(2.0, 0.5),
        description=(
            "The six-hump camel function, (4 - 2.1x^2 + x^4/3) x^2 + xy + (-4 + 4y^2) y^2: six "
            "minima, two of them global (value -1.0316 at (0.0898, -0.7127) and "
            "(-0.0898, 0.7127)) and four local ones (-0.2155 near (+-1.70, -+0.80) and 2.1043 "
            "near (+-1.61, +-0.57)), separated by saddles. It is a small test of basin "
            "selection, which the start decides more than the optimizer: at the playground's "
            "rates (gradient descent 0.1, momentum 0.01, Adam 0.316) all three run from the "
            "default start (2, 0.5) to the global minimum at (-0.0898, 0.7127) within 500 "
            "steps, while from (1.8, 0.8) gradient descent and momentum settle in the local "
            "minimum 2.10 and Adam, whose first steps have the size of its rate, crosses to "
            "the global one at (0.0898, -0.7127)."),
    )


_ST_ROOT = -2.9035340277711774  # the root of 4t^3 - 32t + 5 = 0 near -2.9
_ST_OTHER = 2.746802770990837  # its root near 2.75: the local wells


def styblinski_tang() -> Landscape:
    """The Styblinski-Tang function in 2-D, ``0.5 sum(x^4 - 16x^2 + 5x)``."""
    return Landscape(
        name="styblinski_tang", dim=2, f=_styblinski_tang,
        domain=((-5.0, 5.0), (-5.0, 5.0)),
        minima=((_ST_ROOT, _ST_ROOT),), min_value=-78.33233140754282,
        local_minima=((_ST_ROOT, _ST_OTHER), (_ST_OTHER, _ST_ROOT), (_ST_OTHER, _ST_OTHER)),
        challenges=("local-minima",),
        start=(4.5, 4.5),
        description=(
            "The Styblinski-Tang function, 0.5 sum(x_i^4 - 16 x_i^2 + 5 x_i): each coordinate "
            "is a tilted double well, so the plane has four basins: the global minimum "
            "-78.332 at (-2.9035, -2.9035), two local minima -64.196 at (-2.90, 2.75) and "
            "(2.75, -2.90), and the shallowest, -50.059 at (2.7468, 2.7468). The wells differ "
            "only slightly, so the start and the step decide: from the default corner, at the "
            "playground's rates, plain gradient descent (lr 0.0316) and Adam (lr 1) stop in "
            "the shallowest basin while momentum (lr 0.01), gathering speed on the way down, "
            "crosses both ridges into the global one; gradient descent at lr 0.0562 (its tuned "
            "rate) crosses them too, Adam at that rate does not."),
    )


def saddle() -> Landscape:
    """The saddle ``x^2 - y^2``."""
    return Landscape(
        name="saddle", dim=2, f=_saddle,
        domain=((-2.0, 2.0), (-2.0, 2.0)),
        minima=(), min_value=-4.0,
        challenges=("saddle",),
        start=(1.8, 0.001),
        description=(
            "The saddle x^2 - y^2: a minimum along x and a maximum along y at the origin, the "
            "simplest non-degenerate saddle point. The function is unbounded below, so there is "
            "no minimizer (minima is empty and distances to a minimum are nan); min_value is "
            "-4, its minimum over the plotting square, reached on the boundary at (0, +-2). "
            "Started almost on the x axis, gradient descent first rushes towards the saddle "
            "and then leaves it only as fast as the tiny y offset grows (by a factor 1 + 2 lr "
            "per step), after which it runs away without bound; momentum and noise escape "
            "sooner, while Adam's per-coordinate normalisation boosts the small y gradient and "
            "escapes at once."),
    )


def monkey_saddle() -> Landscape:
    """The monkey saddle ``x^3 - 3xy^2``."""
    return Landscape(
        name="monkey_saddle", dim=2, f=_monkey_saddle,
        domain=((-2.0, 2.0), (-2.0, 2.0)),
        minima=(), min_value=-16.0,
        challenges=("saddle",),
        start=(1.5, 0.001),
        description=(
            "The monkey saddle x^3 - 3xy^2: a degenerate saddle at the origin with three "
            "valleys going down (along the directions 60, 180 and 300 degrees), where the "
            "gradient and the Hessian both vanish, so the neighbourhood is very flat. It is "
            "unbounded below, so there is no minimizer (minima is empty, distances are nan); "
            "min_value is -16, its minimum over the plotting square, reached at the corners "
            "(2, +-2). From the start just off the x axis (a ridge) gradient descent slows to "
            "a crawl near the origin, where the gradient shrinks quadratically, and the y "
            "offset grows only polynomially rather than exponentially as at a non-degenerate "
            "saddle, so at lr 0.01 it lingers for a couple of hundred steps before sliding into a "
            "valley, which "
            "then runs away without bound (a run that goes far enough is marked diverged). "
            "Newton-type curvature information does not help here, since the Hessian "
            "vanishes too."),
    )


def quadratic(*, kappa: float = 10.0) -> Landscape:
    """The tutorials' ill-conditioned bowl ``0.5 (x^2 + kappa y^2)`` (``kappa > 0``)."""
    kappa = _positive("kappa", kappa)
    condition = max(kappa, 1 / kappa)
    return Landscape(
        name="quadratic", dim=2, f=functools.partial(_quadratic, kappa=kappa),
        domain=((-3.0, 3.0), (-2.0, 2.0)),
        minima=((0.0, 0.0),), min_value=0.0,
        challenges=("ill-conditioned",) if condition >= 10 else (),
        start=(-2.5, 1.5),
        description=(
            f"The quadratic bowl 0.5 (x^2 + kappa y^2) with kappa = {kappa:g}: Hessian "
            f"eigenvalues 1 and kappa, condition number c = {condition:g}, minimum 0 at the "
            "origin. It is the textbook model of ill-conditioning: gradient descent is stable "
            "only for lr < 2 / max(1, kappa), and even at the best step the error shrinks only "
            "by a factor of about 1 - 2/c per step, so it zig-zags across the narrow axis "
            "while creeping along the long one. Momentum (heavy ball, Nesterov) improves the "
            "factor to about 1 - 2/sqrt(c); Adam and RMSprop rescale the axis-aligned "
            "coordinates and nearly remove the conditioning, which they cannot do for the "
            "same bowl turned off the axes (rotated_quadratic)."),
        log_scale=True,
        params={"kappa": kappa},
    )


def _turn(point: tuple[float, float], angle: float) -> tuple[float, float]:
    """``point`` turned by ``angle`` degrees about the origin (counter-clockwise)."""
    a = math.radians(angle)
    x, y = point
    return (math.cos(a) * x - math.sin(a) * y, math.sin(a) * x + math.cos(a) * y)


def rotated_quadratic(*, kappa: float = 10.0, angle: float = 45.0) -> Landscape:
    """:func:`quadratic` turned by ``angle`` degrees: an ill-conditioned ravine that is not
    aligned with the coordinate axes (``kappa > 0``, ``angle`` in [-180, 180])."""
    kappa = _positive("kappa", kappa)
    if isinstance(angle, bool) or not isinstance(angle, (int, float, np.integer, np.floating)) \
            or not -180.0 <= float(angle) <= 180.0:
        raise argument_error(is_real(angle))(
            f"angle must be a number of degrees in [-180, 180], got {angle!r}")
    angle = float(angle)
    condition = max(kappa, 1 / kappa)
    return Landscape(
        name="rotated_quadratic", dim=2,
        f=functools.partial(_rotated_quadratic, kappa=kappa, angle=angle),
        domain=((-3.0, 3.0), (-3.0, 3.0)),
        minima=((0.0, 0.0),), min_value=0.0,
        challenges=("ill-conditioned", "ravine") if condition >= 10 else ("ravine",),
        start=_turn((-2.5, 1.5), angle),
        description=(
            f"The quadratic bowl 0.5 (u^2 + kappa v^2) with kappa = {kappa:g}, its axes u and v "
            f"turned by {angle:g} degrees from x and y: the same Hessian eigenvalues 1 and "
            f"kappa (condition number {condition:g}) and minimum 0 at the origin as the "
            "quadratic landscape, and its start is that landscape's start turned the same way. "
            "Gradient descent and momentum do not depend on the coordinates, so they follow "
            "the quadratic landscape's paths turned, with the same losses. Adam, RMSprop and "
            "Adagrad rescale each coordinate, which fits an axis-aligned ravine exactly; here "
            "the narrow direction mixes both coordinates and no per-coordinate scale removes "
            "the conditioning. With kappa = 50, tuned rates and 300 steps, RMSprop reaches "
            "f < 1e-3 in 10 steps on the axis-aligned bowl against gradient descent's 126, "
            "but needs 234 at 45 degrees, more than gradient descent. Real ravines are rarely "
            "aligned with the parameters' axes."),
        log_scale=True,
        params={"kappa": kappa, "angle": angle},
    )


def plateau() -> Landscape:
    """A narrow basin in a flat mesa, ``1 - exp(-(x^2 + y^2) / 2)``."""
    return Landscape(
        name="plateau", dim=2, f=_plateau,
        domain=((-4.0, 4.0), (-4.0, 4.0)),
        minima=((0.0, 0.0),), min_value=0.0,
        challenges=("plateau",),
        start=(3.0, 2.5),
        description=(
            "An inverted Gaussian, 1 - exp(-(x^2 + y^2) / 2): a smooth basin of unit width with "
            "its minimum 0 at the origin, surrounded by a mesa at height almost 1 where the "
            "gradient, r exp(-r^2 / 2), vanishes exponentially fast with the distance r (about "
            "2e-3 at the default start, 6e-7 at the corners). Gradient descent at lr 0.1 "
            "barely moves on the plateau (after a thousand steps it has covered a tenth of the "
            "way); momentum accumulates the weak but consistent push and drops into the basin "
            "after a couple of hundred steps, and Adam, which normalises the gradient's size "
            "away, crosses the plateau at full speed."),
    )


def two_wells_minima() -> tuple[tuple[float, float], tuple[float, float]]:
    """Both minimizers of :func:`two_wells`: ``(deep, shallow)``, the global one first.

    The catalog entry lists the global minimizer in ``minima`` and the shallow well's in
    ``local_minima``; this pair names them for exhibits that ask which well a run ends in.
    """
    return _two_wells_minima()


def two_wells() -> Landscape:
    """A bowl with a deep and a shallow Gaussian well: the start decides the basin."""
    deep, shallow = _two_wells_minima()
    deep_value = float(_two_wells(torch.tensor(deep, dtype=torch.float64)))
    shallow_value = float(_two_wells(torch.tensor(shallow, dtype=torch.float64)))
    return Landscape(
        name="two_wells", dim=2, f=_two_wells,
        domain=((-4.0, 4.0), (-4.0, 4.0)),
        minima=(deep,), min_value=deep_value, local_minima=(shallow,),
        challenges=("local-minima",),
        start=(3.5, 3.0),
        description=(
            "A wide bowl 0.05 (x^2 + y^2) with two Gaussian wells: a deep one (depth 2, width "
            "1, centred at (-1.5, -1)) holding the global minimum "
            f"{deep_value:.4f} at ({deep[0]:.4f}, {deep[1]:.4f}), and a shallow one (depth 1, "
            f"width 0.7, centred at (1.5, 1)) holding a local minimum {shallow_value:.4f} at "
            f"({shallow[0]:.4f}, {shallow[1]:.4f}). The minima are Newton-polished, since the "
            "bowl and the other well's tail shift them off the centres. The start decides the "
            "basin, and the step too: from the default start, beyond the shallow well, plain "
            "gradient descent (lr 0.316, the playground's rate) settles in the shallow well, "
            "and so does Adam up to lr 0.316, while heavy-ball momentum (0.9, lr 0.1 or 1) "
            "overshoots it and rolls on into the deep one, as Adam at lr 1 (the playground's) "
            "does."),
    )


def rosenbrock_nd(*, dim: int = 10) -> Landscape:
    """The chained Rosenbrock function in ``dim >= 2`` coordinates."""
    dim = _integer("dim", dim, 2)
    tags = ("ravine", "ill-conditioned") + (("local-minima",) if dim >= 4 else ())
    return Landscape(
        name="rosenbrock_nd", dim=dim, f=_rosenbrock_nd,
        domain=((-2.0, 2.0),) * dim,
        minima=((1.0,) * dim,), min_value=0.0,
        challenges=tags,
        start=tuple(-1.2 if i % 2 == 0 else 1.0 for i in range(dim)),
        description=(
            f"The chained Rosenbrock function in {dim} dimensions, sum_i 100 (x_(i+1) - "
            "x_i^2)^2 + (1 - x_i)^2, minimum 0 at (1, ..., 1). Each pair of neighbouring "
            "coordinates forms a curved banana valley and the valleys are coupled, so the "
            "narrow curved ravine has to be followed in many directions at once; from 4 "
            "dimensions on there is also a local minimum (value about 3.7 for 4 dimensions, "
            "about 3.99 near (-1, 1, ..., 1) for 10 and more). Gradient descent "
            "is very slow, momentum and adaptive methods much faster; the start alternates "
            "-1.2 and 1 as in the classic 2-D start."),
        log_scale=True,
        params={"dim": dim},
    )


def rastrigin_nd(*, dim: int = 10) -> Landscape:
    """Rastrigin's function in ``dim >= 1`` coordinates."""
    dim = _integer("dim", dim, 1)
    return Landscape(
        name="rastrigin_nd", dim=dim, f=_rastrigin,
        domain=((-5.12, 5.12),) * dim,
        minima=((0.0,) * dim,), min_value=0.0,
        challenges=("local-minima",),
        start=tuple(3.2 if i % 2 == 0 else -2.6 for i in range(dim)),
        description=(
            f"Rastrigin's function in {dim} dimensions, 10 n + sum(x_i^2 - 10 cos(2 pi x_i)), "
            "minimum 0 at the origin. The number of local minima grows exponentially with the "
            "dimension (about 11^n in the usual domain), so gradient methods almost surely "
            "stop in a local minimum near the start; it measures how far momentum, large "
            "steps, noise or restarts carry an optimizer rather than how fast it converges."),
        params={"dim": dim},
    )


@functools.lru_cache(maxsize=8)
def _deep_hessian(seed: int) -> Tensor:
    """The DeepOBS-style Hessian: eigenvalues 90 x U(0, 1) and 10 x U(30, 60), rotated.

    NumPy's legacy ``RandomState`` keeps the stream identical across versions. The
    eigenvalues are DeepOBS's own draws (the same stream, in the same order); the rotation
    is not DeepOBS's: it is the Q factor of a Gaussian matrix with its signs fixed
    (Haar-distributed too), where DeepOBS uses Diaconis and Shahshahani's subgroup
    algorithm, so the matrices differ (f at the all-ones start is 335.2 here for seed 42,
    267.5 in DeepOBS).
    """
    rng = np.random.RandomState(seed)
    eigenvalues = np.concatenate([rng.uniform(0.0, 1.0, 90), rng.uniform(30.0, 60.0, 10)])
    q, r = np.linalg.qr(rng.standard_normal((100, 100)))
    q = q * np.sign(np.diag(r))
    hessian = (q * eigenvalues) @ q.T
    return torch.from_numpy(0.5 * (hessian + hessian.T))


def quadratic_deep(*, seed: int = 42) -> Landscape:
    """A 100-D quadratic with DeepOBS's deep-learning-like Hessian spectrum (its
    eigenvalues; the rotation is another, see :func:`_deep_hessian`)."""
    seed = _integer("seed", seed, 0, 2**32 - 1)
    hessian = _deep_hessian(seed)
    return Landscape(
        name="quadratic_deep", dim=100, f=functools.partial(_quadratic_form, hessian=hessian),
        domain=((-2.0, 2.0),) * 100,
        minima=((0.0,) * 100,), min_value=0.0,
        challenges=("ill-conditioned",),
        start=(1.0,) * 100,
        description=(
            "DeepOBS's quadratic_deep spectrum: 0.5 x^T H x in 100 dimensions, where H has "
            "90 eigenvalues uniform in (0, 1) and 10 uniform in (30, 60) (DeepOBS's draws), "
            f"in a random rotation of its own (seed {seed}; not DeepOBS's matrix), mimicking "
            "the Hessian spectra reported for neural networks: a few sharp directions and a "
            "bulk of flat ones. The sharpest direction caps gradient descent's stable step "
            f"at 2/lambda_max = {2.0 / float(torch.linalg.eigvalsh(hessian)[-1]):.3f}, at "
            "which the flat directions barely move; because the "
            "eigenvectors are not aligned with the coordinates, per-coordinate methods gain "
            "less than on an axis-aligned bowl. Minimum 0 at the origin, start at all ones as "
            "in DeepOBS. DeepOBS's stochastic version draws minibatches, so its gradient "
            "noise is shaped by H; with_noise() adds isotropic Gaussian gradient noise "
            "instead, the same in every direction."),
        log_scale=True,
        params={"seed": seed},
    )


# --------------------------------------------------------------------------------------
# The catalog
# --------------------------------------------------------------------------------------

_CATALOG: dict[str, Callable[..., Landscape]] = {
    builder.__name__: builder
    for builder in (
        rosenbrock, beale, himmelblau, rastrigin, ackley, booth, goldstein_price,
        six_hump_camel, styblinski_tang, saddle, monkey_saddle, quadratic, rotated_quadratic,
        plateau, two_wells, rosenbrock_nd, rastrigin_nd, quadratic_deep,
    )
}


def names() -> list[str]:
    """The catalog names, in catalog order (2-D landscapes first, then N-D)."""
    return list(_CATALOG)


#: what a landscape of one's own is, for the messages of :func:`get`
_EXPECTED = "a function returning an optimlab.landscapes.Landscape"


def get(name: str, **params) -> Landscape:
    """The landscape ``name`` (case-insensitive; ``-`` and spaces read as ``_``).

    ``params`` go to its builder, e.g. ``get("quadratic", kappa=100)`` or
    ``get("rosenbrock_nd", dim=50)``. Raises ``ValueError`` for an unknown name (with
    the known names and close matches) and for unknown or invalid parameters.

    A name with a colon, ``"package.module:function"``, is a landscape of one's own: the
    function (imported from the current folder first, as ``python -m`` does) is called
    with ``params`` and must return a :class:`Landscape`: ``optimlab race mymod:bowl`` and
    :func:`~optimlab.exhibits.basins` take such a name too.
    """
    if isinstance(name, str) and is_spec(name):
        made = user_function(name, "landscape", _EXPECTED, params)(**params)
        if not isinstance(made, Landscape):
            raise ValueError(f"{name.strip()} must return a Landscape, got "
                             f"{type(made).__name__}")
        return made
    return from_catalog(name, **params)


def from_catalog(name: str, **params) -> Landscape:
    """The catalog's landscape ``name`` as :func:`get` builds it, and never a function of
    one's own: a name with a colon is unknown here, and nothing is imported. For names
    that come from outside the process (the playground's requests)."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"landscape name must be a string, got {name!r}")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in _CATALOG:
        close = difflib.get_close_matches(key, list(_CATALOG), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown landscape {name!r}{hint} (known: {', '.join(_CATALOG)})")
    builder = _CATALOG[key]
    allowed = list(inspect.signature(builder).parameters)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        takes = f"it takes {', '.join(allowed)}" if allowed else "it takes no parameters"
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for landscape {key!r}; {takes}")
    return builder(**params)
