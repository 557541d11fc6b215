"""Races: several optimizers, each from the same start, on one landscape, all at once.

Every optimizer label becomes a :class:`~optimlab.optim.population.Population` whose
members are its learning rates (one, or a whole grid when tuning). All members of all
optimizers share one gradient evaluation per step, so a race costs one batched autograd
call plus one rule call per optimizer per step, instead of a forward, backward and step per
optimizer per step. Races run in float64 with the library's own rules: a race path is the
path of ``optimlab.create(name, [p], **hp)`` stepped by hand (``tests/landscapes``).
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..optim import registry
from ..optim.base import ArgumentTypeError, check_bool, check_callable, check_int, python_numbers
from ..optim.population import Population, is_per_member
from ..optim.registry import rate_used, resolve, wrapped_class
from .base import Landscape, LandscapeWarning, _real, min_value_floor
from .base import gradient as f_gradient
from .functions import get
from .result import Race, RaceMetrics, below_min_value

__all__ = ["race", "TUNE_GRID", "TUNE_CRITERION", "TUNE_ESCAPE_CRITERION", "check_entry",
           "run_members", "run_starts", "run_fan", "diverged", "typical_gap"]

#: The default learning-rate grid of ``tune=True``: 1e-4 to 1, four points per decade.
TUNE_GRID: tuple[float, ...] = tuple(float(10.0**e) for e in np.arange(-4.0, 0.01, 0.25))
#: The share of the last steps whose worst loss scores a learning rate when tuning.
TUNE_WINDOW = 0.25
#: How ``tune`` ranks learning rates (said under every tuned race's table). The worst loss
#: of the window, not the final one: a rate whose run spikes late, or oscillates and only
#: happens to end low, cannot win; a run that diverges never wins. A run whose loss rises
#: above its starting loss anywhere in its second half (a blow-up it came back from before
#: the window) counts as diverged for tuning too (:func:`_scores`), so "spikes late" means
#: anywhere past halfway, not only in the window.
TUNE_CRITERION = (f"worst loss over the last {TUNE_WINDOW:.0%} of steps; a run above its "
                  "start past halfway is out")
#: How ``tune`` ranks learning rates on a landscape without a minimum (a saddle, unbounded
#: below), where leaving the domain downhill is the goal, not a divergence (:func:`_scores`):
#: a run that fell without bound (to -inf, then NaN from the overflow) escaped, and ranks by
#: the step it escaped at like any other.
TUNE_ESCAPE_CRITERION = ("the step it escaped at, sooner is better (a run that never escaped "
                         "ranks behind, by its worst loss over the last "
                         f"{TUNE_WINDOW:.0%} of steps); a run above its start past halfway "
                         "is out")
#: Points added beyond a grid edge per extension round (same log spacing as the grid there).
EXTEND_POINTS = 4
#: At most this many extension rounds per optimizer.
MAX_EXTENSIONS = 3


def _most_rates(points: int, extend: bool = True) -> int:
    """The most learning rates a tuned grid of ``points`` rates runs: its own, and those its
    extensions may add: :data:`EXTEND_POINTS` a round beyond the edge holding the best rate
    (both edges of a one-rate grid in its first round)."""
    if not extend:
        return points
    return points + MAX_EXTENSIONS * EXTEND_POINTS + (EXTEND_POINTS if points == 1 else 0)


#: The most learning rates one optimizer tuned on :data:`TUNE_GRID` runs: the grid's, and
#: those its extensions may add.
TUNE_MOST_RATES = _most_rates(len(TUNE_GRID))
#: Extensions never go below or above these learning rates.
LR_LIMITS = (1e-8, 1e2)
#: How far outside its domain (in domain widths) a path may go before it counts as diverged.
DIVERGENCE_WIDTHS = 10.0
#: A run whose final gap to the minimum (f - f*) is more than this many times its gap at
#: the start counts as diverged (the training lab's ``TrainConfig.divergence_factor``): a
#: run that ends a little above its start on a noisy landscape has not diverged. The rule
#: also asks for the final gap to exceed :data:`DIVERGENCE_FLOOR` times the landscape's
#: typical gap (:func:`typical_gap`), as a start at (or near) the minimum has a gap of
#: about 0 that any noise multiplies by more than the factor.
DIVERGENCE_FACTOR = 10.0
#: The absolute floor of the :data:`DIVERGENCE_FACTOR` rule, as a share of the landscape's
#: typical gap (the median of f - f* over its domain, :func:`typical_gap`): a run that ends
#: lower than a tenth of the way up a typical point of the picture has not run uphill, however
#: near the minimum it started (from the quadratic's minimum with gradient noise 0.1, GD and
#: Adam end at gaps of about 4e-4, under this floor of 0.67). A run from a catalog
#: landscape's own start is not affected: its start gap is over a hundredth of the typical
#: gap (a tenth, Beale's, at the least), so the factor rule asks more of it than the floor.
DIVERGENCE_FLOOR = 0.1
#: Points per axis of the domain grid :func:`typical_gap` reads f on (a landscape of up to
#: two dimensions); a landscape of more reads f at :data:`TYPICAL_SAMPLE` points drawn
#: uniformly over its domain (seed 0).
TYPICAL_GRID = 101
#: the most memory a race's recorded paths and losses may take (every member's point and
#: loss at every step, float64): 2 GiB, about 5.6 million steps of 16 members on a 2-D
#: landscape, refused before allocation rather than found when the machine runs out of memory
MAX_PATH_BYTES = 2**31
TYPICAL_SAMPLE = 4096


@dataclass
class _Entry:
    label: str
    name: str
    hparams: dict
    lrs: list[float] | None = None  # the grid, when tuning


def _landscape(landscape: Landscape | str) -> Landscape:
    if isinstance(landscape, Landscape):
        return landscape
    if isinstance(landscape, str):
        return get(landscape)
    raise ArgumentTypeError(f"landscape must be a name or a Landscape, got "
                            f"{type(landscape).__name__}")


def _defaults_used(name: str, hparams: Mapping) -> dict:
    """The rate (and a wrapper's own settings) an optimizer given ``hparams`` without a
    rate runs with, for the table: its default, or for a wrapper (SAM, Lookahead) its
    inner optimizer's, read from one built on a throwaway parameter (which inner optimizer
    that is, :func:`race` adds with :func:`_wrapped_used`)."""
    lr = rate_used(name, **hparams)
    used = {} if lr is None else {"lr": lr}
    if resolve(name).capabilities.wraps:
        used.update({k: v for k, v in resolve(name).info.defaults.items()
                     if k not in hparams and isinstance(v, (bool, int, float))})
    return used


def _wrapped_used(name: str, hparams: Mapping) -> dict:
    """``{key: registry name}`` of the optimizer a wrapper ``name`` wraps when ``hparams``
    leaves its ``wraps`` key (Lookahead's ``inner``, SAM's ``base_optimizer``) out, so the
    table says which one ran (``inner=adam``); empty for an optimizer that wraps nothing, or
    when the key is given (it shows as given)."""
    key = resolve(name).capabilities.wraps
    if key is None or key in hparams:
        return {}
    inner = registry.wrapped_name(name, dict(hparams))
    if inner is None:  # a class of no registry entry
        cls = wrapped_class(name, dict(hparams))
        inner = None if cls is None else cls.__name__
    return {} if inner is None else {key: inner}


#: Constructor settings that move an optimizer's fixed point off the landscape's minimum
#: (decay pulls the point towards 0): a race records them in ``hparams`` (and so shows them
#: in the table and the legend) even when left at a non-zero default, as AdamW's 0.01 and
#: Muon's 0.1 are, so the gap they cause is seen to come from them.
FIXED_POINT_KEYS = ("weight_decay",)


def _fixed_point_defaults(name: str, hparams: Mapping) -> dict:
    """The :data:`FIXED_POINT_KEYS` that ``hparams`` leaves out and optimizer ``name``
    fills in with a non-zero default: its class's, or for a wrapper (SAM, Lookahead) its
    inner optimizer's, read from one built on a throwaway parameter."""
    missing = [key for key in FIXED_POINT_KEYS if key not in hparams]
    if not missing:
        return {}
    entry = resolve(name)
    if entry.capabilities.wraps:
        group = registry.probe(name, **hparams).param_groups[0]
        values = {key: group.get(key) for key in missing}
    else:
        values = {key: entry.info.defaults.get(key) for key in missing}
    return {key: value for key, value in values.items()
            if isinstance(value, numbers.Real) and not isinstance(value, bool) and value != 0}


def _check_hparams(label: str, name: str, hp: Mapping, where: str = "race label") -> None:
    """:func:`~optimlab.optim.registry.check_hparams` (an unknown key, with the closest
    match), its message beginning ``f"{where} {label!r}: "``."""
    try:
        registry.check_hparams(name, dict(hp))
    except ArgumentTypeError as err:
        raise ArgumentTypeError(f"{where} {label!r}: {err}") from None


def _tune_grid(tune) -> list[float] | None:
    """The learning rates ``tune`` asks for: None (no tuning), :data:`TUNE_GRID` or the
    given sequence, each a positive finite number."""
    if tune is None or isinstance(tune, (bool, np.bool_)):
        return list(TUNE_GRID) if tune else None
    if isinstance(tune, (str, bytes, Mapping)) or not isinstance(tune, (Sequence, np.ndarray)):
        raise ArgumentTypeError(f"tune must be True, False or a sequence of learning rates, "
                                f"got {tune!r}")
    grid = list(np.asarray(tune, dtype=object).ravel()) if isinstance(tune, np.ndarray) \
        else list(tune)
    if not grid or not all(_real(v) and v > 0 for v in grid):
        raise ValueError(f"tune grid must hold positive finite learning rates, got {tune!r}")
    return [float(v) for v in grid]


def _per_member(value) -> bool:
    """Whether a :class:`Population` given ``value`` would give each member its own value
    (a list, a NumPy array or a 1-D tensor; a tuple such as ``betas`` is one value). A
    tensor of one element is one value, as torch's optimizers take ``lr=torch.tensor([0.01])``
    (a race label is one run)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return False
    return is_per_member(python_numbers(value))


def _check_values(label: str, name: str, hp: Mapping, where: str = "race label") -> None:
    """ValueError (or the constructor's TypeError) naming ``label`` for a value of ``hp``
    that would not make one run: a per-member value (:func:`_per_member`), an ``lr`` that
    is not > 0 (a race of a point that never moves), or a value optimizer ``name``'s
    constructor refuses (its own checks, run before anything is built). The message
    begins ``f"{where} {label!r}: "``, as :func:`_check_hparams`'s does."""
    for key, value in hp.items():
        if _per_member(value):
            hint = "use tune=[...] to race a grid of rates" \
                if key == "lr" and where == "race label" else f"give each value its own {where}"
            raise ValueError(f"{where} {label!r}: {key} must be one value, got "
                             f"{python_numbers(value)!r} ({hint})")
    lr = hp.get("lr")
    if _real(lr, finite=False) and not lr > 0:
        raise ValueError(f"{where} {label!r}: lr must be > 0, got {lr!r}")
    try:
        if hasattr(resolve(name).cls, "checked_defaults"):
            registry.checked_defaults(name, **hp)
        else:  # a wrapper (SAM, Lookahead) or L-BFGS: built on a throwaway parameter
            registry.probe(name, **hp)
    except (ValueError, TypeError, OverflowError) as err:
        raise type(err)(f"{where} {label!r}: {err}") from None


def _plain(value):
    """``value`` with a 0-d tensor, a 0-d NumPy array or a NumPy scalar made a Python
    number (in a tuple or list too, such as ``betas``), so what a race records and shows
    is ``lr=0.1``, not ``lr=tensor(0.1000)``; anything else (a 1-D tensor or array,
    refused later as per-member) as it is."""
    if isinstance(value, Tensor) and value.dim() == 0:
        return value.detach().cpu().item()
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value.item()
    if isinstance(value, (tuple, list)) and any(
            isinstance(v, (Tensor, np.generic, np.ndarray)) for v in value):
        return type(value)(_plain(v) for v in value)
    return value


def _plain_hparams(hp: Mapping) -> dict:
    """``hp`` as a dict whose 0-d tensors and NumPy scalars are Python numbers
    (:func:`_plain`)."""
    return {key: _plain(value) for key, value in hp.items()}


def check_entry(label, hp, where: str = "race label", lr: float | None = None
                ) -> tuple[str, dict]:
    """One optimizer of a race (or of anything that runs optimizers as a race does: the
    basins map, a network slice), checked before anything runs: ``hp`` a dict (or None)
    whose 0-d tensors and NumPy scalars are made Python numbers, its ``name`` (default:
    ``label``) a registry name, its keys ones the optimizer takes (the closest suggested)
    and its values ones it would run with (``lr``, when given, in place of its own: a
    tuned rate). Returns the registry name and the hyperparameters without ``name``.

    Errors name the label: ``f"{where} {label!r}: ..."``; an unknown name is the
    registry's own ValueError, with suggestions."""
    if hp is not None and not isinstance(hp, Mapping):
        raise ArgumentTypeError(f"{where} {label!r}: hyperparameters must be a dict (or "
                                f"None), got {type(hp).__name__} {hp!r}")
    hp = _plain_hparams(hp or {})
    name = hp.pop("name", label)
    resolve(name)  # unknown names fail here, with suggestions
    _check_hparams(str(label), name, hp, where=where)
    _check_values(str(label), name, hp if lr is None else {**hp, "lr": lr}, where=where)
    return name, hp


def _entries(optimizers: Mapping[str, Mapping], tune) -> list[_Entry]:
    """The race's entries, each checked before anything runs: its name, its keys
    (:func:`check_entry`; a tuned label's values with the grid's first rate in place of
    its own ``lr``, which the tuned rate replaces)."""
    if not isinstance(optimizers, Mapping) or not optimizers:
        # a list or a name is the wrong kind of argument; an empty dict a wrong value
        error = ValueError if isinstance(optimizers, Mapping) else ArgumentTypeError
        raise error("optimizers must be a non-empty dict: label -> hyperparameters, "
                    "e.g. {'sgd': {'lr': 1e-3}, 'adam': {'lr': 0.05}}")
    grid = _tune_grid(tune)
    entries = []
    for label, hp in optimizers.items():
        name, hp = check_entry(label, hp, lr=grid[0] if grid else None)
        entries.append(_Entry(str(label), name, hp, grid))
    return entries


def _number(value) -> bool:
    """Whether ``value`` is a real number of any value (Python or NumPy; not a bool): a
    refusal of anything else is a wrong kind of argument (:class:`ArgumentTypeError`)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _integer(value) -> bool:
    """Whether ``value`` is an integer (Python or NumPy; not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _start(landscape: Landscape, start) -> Tensor:
    """``start`` (None: the landscape's own) as a float64 tensor ``[dim]``: ValueError
    unless it is ``landscape.dim`` finite numbers inside ``landscape.domain`` (as the web
    API asks of a start too: a path from outside the picture is not seen, and one far
    outside counts as diverged before its first step) where f and its gradient are finite
    (a log barrier started below 0 would give NaN from the first step, which tuning would
    then blame on its grid). f is read there as a race reads it (:func:`_probe`): an f
    that cannot take a batch, or that autograd cannot differentiate, fails here, naming
    the landscape, and one that returns less than float64 is warned of."""
    point = landscape.start if start is None else start
    if isinstance(point, Tensor):  # one that requires grad cannot become a NumPy array
        point = point.detach().cpu()
    try:
        x = torch.as_tensor(np.asarray(point, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ValueError(f"start must be {landscape.dim} numbers, got {start!r}") from err
    if x.shape != (landscape.dim,) or not torch.isfinite(x).all():
        raise ValueError(f"start must be {landscape.dim} finite numbers, got {start!r}")
    for axis, (v, (low, high)) in enumerate(zip(x.tolist(), landscape.domain)):
        if not low <= v <= high:
            coordinate = "xy"[axis] if landscape.dim == 2 else f"x[{axis}]"
            raise ValueError(f"start {coordinate}={v:g} is outside {landscape.name}'s domain "
                             f"[{low:g}, {high:g}]")
    value, grad = _probe(landscape, x)
    if not (math.isfinite(value) and bool(torch.isfinite(grad).all())):
        where = "(" + ", ".join(f"{v:g}" for v in x.tolist()) + ")"
        what = f"f is {value:g}" if not math.isfinite(value) else \
            f"the gradient of f is ({', '.join(f'{v:g}' for v in grad.tolist())})"
        raise ValueError(f"{landscape.name}: {what} at the start {where}: a race needs a start "
                         "where f and its gradient are finite (is the start outside where f "
                         "is defined, as a log's or a square root's argument below 0?)")
    return x


def _probe(landscape: Landscape, x0: Tensor) -> tuple[float, Tensor]:
    """f and its gradient at point ``x0`` ``[dim]``, read as a race reads them: on a batch
    (two copies of the point, so an f that cannot take a batch fails whatever the number of
    runs) through :meth:`Landscape.values` and autograd (:func:`~.base.gradient`), whose
    errors name the landscape. Warns (:class:`LandscapeWarning`) where f returns less than
    float64 for float64 points: races run in float64, and such an f lowers their
    precision."""
    with torch.enable_grad():
        points = x0.detach().to(torch.float64).expand(2, landscape.dim).clone().requires_grad_()
        values = landscape.values(points)
        g = f_gradient(landscape, values, points)
    if values.dtype != torch.float64:
        dtype = str(values.dtype).replace("torch.", "")
        warnings.warn(f"{landscape.name}: f returned {dtype} for float64 points, so its race "
                      f"runs at {dtype}'s precision, not float64's; compute f in the dtype of "
                      "its input to keep it", LandscapeWarning, stacklevel=4)
    return float(values[0].detach()), g[0].detach()


def _vjp(values: Tensor, points: Tensor, weights: Tensor,
         landscape: Landscape | None = None) -> Tensor:
    """The gradient of ``(weights * values).sum()`` at ``points``: one reverse pass from
    ``values`` with ``weights`` as their gradient (a vector-Jacobian product), which
    frees the graph and builds none for the result. Given the ``landscape`` whose f gave
    ``values``, an f autograd cannot differentiate (or whose backward pass fails) is
    refused naming it (:func:`~.base.gradient`)."""
    if landscape is not None:
        return f_gradient(landscape, values, points, weights)
    return torch.autograd.grad(values, points, weights)[0]


def _steps(steps) -> int:
    """``steps`` as an int; ValueError unless it is an integer >= 0 (NumPy's included)."""
    check_int("steps", steps, 0)
    return int(steps)


def _members(name: str, hp) -> int:
    """How many members a :class:`Population` of ``name`` given ``hp`` runs: the length of
    its per-member values (:func:`_per_member`), 1 without any; ValueError unless ``hp``
    is a dict whose per-member values are non-empty."""
    if not isinstance(hp, Mapping):
        raise ArgumentTypeError(f"{name}: hyperparameters must be a dict, got "
                                f"{type(hp).__name__}")
    sizes = {len(python_numbers(v)) for v in hp.values() if _per_member(v)}
    if 0 in sizes:
        raise ValueError(f"{name}: a per-member hyperparameter needs at least one value")
    return max(sizes, default=1)


def run_members(landscape: Landscape, entries: Sequence[tuple[str, dict]],
                start, steps: int,
                progress: Callable[[int], None] | None = None) -> list[tuple[Tensor, Tensor]]:
    """Run optimizers from ``start``: the batched engine behind :func:`race`.

    ``entries`` holds ``(registry name, hyperparameters)`` pairs, where the
    hyperparameters may give per-member lists (see :class:`Population`). ``start`` and
    ``steps`` are checked as :func:`race` checks them (``landscape.dim`` finite numbers
    inside the domain; an integer >= 0). Returns, per entry, the paths
    ``[steps + 1, members, dim]`` and losses ``[steps + 1, members]`` (f without noise),
    in float64. ``progress``, if given, is called with 1 after each step (every
    optimizer's).
    """
    x0 = _start(landscape, start)
    steps = _steps(steps)
    check_callable("progress", progress, "called with 1 after each step")
    return _run_from(landscape, entries, x0, steps, progress)


def _run_from(landscape: Landscape, entries: Sequence[tuple[str, dict]], x0: Tensor,
              steps: int,
              progress: Callable[[int], None] | None = None) -> list[tuple[Tensor, Tensor]]:
    """:func:`run_members` from a start :func:`_start` has checked already (a race checks
    its start once, however many batched runs its tuning takes)."""
    for name, _ in entries:
        resolve(name)  # unknown names fail here, with suggestions
    sizes = [_members(name, hp) for name, hp in entries]
    x = x0.expand(sum(sizes), landscape.dim).clone()
    return _run(landscape, entries, sizes, x, steps, progress)


def _start_points(landscape: Landscape, starts) -> Tensor:
    """``starts`` as a float64 tensor ``[n, dim]``; ValueError unless finite with n >= 1."""
    try:
        points = torch.as_tensor(np.asarray(starts, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ValueError(f"starts must be an array [n, {landscape.dim}] of numbers") from err
    if points.dim() != 2 or points.shape[0] < 1 or points.shape[1] != landscape.dim \
            or not torch.isfinite(points).all():
        raise ValueError(f"starts must be a finite array [n, {landscape.dim}] with n >= 1, "
                         f"got shape {tuple(points.shape)}")
    return points


def run_starts(landscape: Landscape, entries: Sequence[tuple[str, dict]], starts,
               steps: int) -> list[tuple[Tensor, Tensor]]:
    """Run each optimizer from every point of ``starts`` at once (basins of attraction).

    ``entries`` holds ``(registry name, hyperparameters)`` pairs with one value per
    hyperparameter (no per-member lists); ``starts`` is an array ``[n, dim]``. Every
    optimizer becomes a population of ``n`` members, member ``i`` starting at
    ``starts[i]``, and all of them share one gradient evaluation per step, as in
    :func:`run_members`; each member's path is that of its optimizer run alone from its
    start, except for a rule batched with ``vmap`` (Muon: its batched bfloat16
    Newton-Schulz products round unlike a lone run's, and on Rosenbrock the paths drift
    apart by up to a few hundredths in 200 steps). Returns, per entry, the paths
    ``[steps + 1, n, dim]`` and losses ``[steps + 1, n]`` (f without noise), in float64.
    """
    points = _start_points(landscape, starts)
    steps = _steps(steps)
    for name, hp in entries:
        resolve(name)  # unknown names fail here, with suggestions
        listed = sorted(k for k, v in (hp or {}).items() if _per_member(v))
        if listed:
            raise ValueError(f"{name}: run_starts takes one value per hyperparameter; "
                             f"{', '.join(listed)} given as lists")
    n = points.shape[0]
    x = points.repeat(len(entries), 1)
    return _run(landscape, [(name, dict(hp or {})) for name, hp in entries],
                [n] * len(entries), x, steps)


def run_fan(landscape: Landscape, entries: Sequence[tuple[str, dict]], starts,
            factors: Sequence[float], steps: int) -> list[tuple[Tensor, Tensor]]:
    """Run each optimizer from every point of ``starts`` at every learning rate
    ``factor * lr`` of ``factors`` at once: one population per optimizer, of
    ``len(starts) * len(factors)`` members (start-major: member ``i * len(factors) + j``
    starts at ``starts[i]`` with ``factors[j] * lr``), all sharing one gradient evaluation
    per step as in :func:`run_members`; each member's path is that of its optimizer run
    alone, except for a rule batched with ``vmap`` (as in :func:`run_starts`). ``entries``
    hold one value per hyperparameter, ``lr`` among them. Returns, per entry, the paths
    ``[steps + 1, members, dim]`` and losses ``[steps + 1, members]``."""
    points = _start_points(landscape, starts)
    steps = _steps(steps)
    factors = [float(f) for f in factors]
    if not factors or not all(math.isfinite(f) and f > 0 for f in factors):
        raise ValueError(f"factors must be finite numbers > 0, got {factors}")
    members = []
    for name, hp in entries:
        resolve(name)
        lr = (hp or {}).get("lr")
        if not _real(lr) or not lr > 0:
            raise ValueError(f"{name}: a fan of learning rates needs a numeric lr, a finite "
                             f"number > 0, got {lr!r}")
        members.append((name, {**hp, "lr": [f * float(hp["lr"]) for _ in range(len(points))
                                            for f in factors]}))
    x = points.repeat_interleave(len(factors), dim=0).repeat(len(entries), 1)
    size = len(points) * len(factors)
    return _run(landscape, members, [size] * len(entries), x, steps)


def _check_path_memory(steps: int, members: int, dim: int) -> None:
    """ValueError unless ``steps`` steps of ``members`` points in ``dim`` dimensions can be
    recorded within :data:`MAX_PATH_BYTES` (paths and losses, float64)."""
    need = (steps + 1) * members * (dim + 1) * 8
    if need > MAX_PATH_BYTES:
        most = MAX_PATH_BYTES // (members * (dim + 1) * 8) - 1
        fewer = f"at most {most} steps here (or fewer members)" if most >= 1 else \
            "not one step fits: fewer members or dimensions"
        raise ValueError(f"a race of {steps} steps of {members} member(s) in {dim} "
                         f"dimension(s) would record {need / 2**30:.3g} GiB of paths and "
                         f"losses, above the {MAX_PATH_BYTES / 2**30:g} GiB allowed: {fewer}")


def _run(landscape: Landscape, entries: Sequence[tuple[str, dict]], sizes: list[int],
         x: Tensor, steps: int,
         progress: Callable[[int], None] | None = None) -> list[tuple[Tensor, Tensor]]:
    """The step loop: entry ``i`` owns the next ``sizes[i]`` rows of ``x`` (its members'
    start points, stepped in place); ``progress(1)`` after each step, if given."""
    dim = landscape.dim
    _check_path_memory(steps, x.shape[0], dim)
    noise = landscape.noise_sequence(steps) if landscape.noise else None
    # All members of all optimizers live in one tensor; each population steps a view of
    # its rows, so one gradient evaluation per step serves every optimizer.
    groups = []
    for (name, hp), rows in zip(entries, x.split(sizes)):
        # a matrix-only optimizer (Muon) sees each point as a 1 x dim matrix
        matrix = resolve(name).capabilities.needs_matrix
        view = rows.unsqueeze(1) if matrix else rows
        pop = Population(name, [view], hp)
        # (population, its view, the view's shape if the gradient rows need reshaping,
        #  whether it needs a closure): looked up once, not on every step
        groups.append((pop, view, view.shape if matrix else None, pop.entry.info.needs_closure))
    paths = torch.empty(steps + 1, x.shape[0], dim, dtype=torch.float64)
    losses = torch.empty(steps + 1, x.shape[0], dtype=torch.float64)
    ones = torch.ones(x.shape[0], dtype=torch.float64)

    # The step loop is the cost of a race, and its tensors are tiny, so it is written to
    # call as few torch operations per step as it can: the gradient of f's values is taken
    # against a vector of ones (the gradient of their sum, without the sum) by one
    # torch.autograd.grad (_vjp), noise is added only when there is some, gradient rows are
    # split once and reshaped only for matrix-only rules. Each member's path is exactly
    # that of its optimizer run alone.
    def gradient(points: Tensor, t: int) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            points = points.detach().requires_grad_()
            values = landscape.values(points)
            same = values.shape == ones.shape and values.dtype == ones.dtype
            weights = ones if same else torch.ones_like(values)
            g = _vjp(values, points, weights, landscape)
        return values.detach(), g if noise is None else g + noise[t]

    single = len(groups) == 1
    with torch.no_grad():
        for t in range(steps):
            values, grads = gradient(x, t)
            paths[t], losses[t] = x, values
            parts = (grads,) if single else grads.split_with_sizes(sizes)
            for (pop, view, shape, needs_closure), g in zip(groups, parts):
                if shape is not None:
                    g = g.view(shape)
                if needs_closure:
                    def closure(view=view):
                        points = view.reshape(-1, dim)
                        values, g = gradient(points, t)
                        view.grad = g.view(view.shape)
                        # each member's loss whose gradient that is (the noise adds u . x)
                        return values if noise is None else values + points @ noise[t]
                    view.grad = g
                    pop.step(closure)
                else:
                    pop.step(grads=[g])
            if progress is not None:
                progress(1)
        # the race is over: a schedule-free run ends at its average x, where its users
        # evaluate it (Population.eval), not at its last gradient point
        for pop, *_ in groups:
            pop.eval()
        paths[steps], losses[steps] = x, landscape.values(x)
    return list(zip(paths.split(sizes, dim=1), losses.split(sizes, dim=1)))


def _blew_up(loss: Tensor, since: int) -> Tensor:
    """Per member (the last axis of ``loss``, ``[steps + 1]`` or ``[steps + 1, members]``):
    whether its gap to the minimum (f - f*) rose above its gap at the start at any step
    from ``since`` on, i.e. whether f did (the same comparison: f* cancels). The one
    blow-up rule of tuning: a rate is out when it holds past halfway (:func:`_scores`).
    A NaN loss is not above anything: non-finite values are told apart by the callers."""
    return loss[since:].max(dim=0).values > loss[0]


def typical_gap(landscape: Landscape) -> float:
    """The gap to the minimum (f - f*) of a typical point of ``landscape``'s domain: the
    median of f - ``min_value`` over a grid of :data:`TYPICAL_GRID` points per axis (a
    landscape of one or two dimensions; more: :data:`TYPICAL_SAMPLE` points drawn uniformly
    over the domain, seed 0), points where f is not finite left out; the grid's lowest
    value stands in for a ``min_value`` that is not finite or not known (None). 0 where f
    is finite nowhere there. The scale of :data:`DIVERGENCE_FLOOR` (6.7 on the quadratic,
    145 on Rosenbrock, 6.9e3 on Goldstein-Price). Read once per landscape and function
    object (a cache of the last few), as :func:`diverged` asks for it once per run.

    Where f goes below a finite ``min_value`` on that grid by more than rounding
    (:func:`_below`), a :class:`~optimlab.landscapes.base.LandscapeWarning` says so once,
    naming the landscape, the value and the point: ``min_value`` is wrong there, and every
    gap measured from it too."""
    return _domain_reading(landscape)[0]


def _domain_reading(landscape: Landscape) -> tuple[float, float, tuple[float, ...] | None]:
    """``(typical gap, lowest finite value of f, the point of it)`` on :func:`typical_gap`'s
    grid of the domain (``(0, nan, None)`` where f is finite nowhere there), cached."""
    try:
        hash(landscape)
    except TypeError:  # a landscape that does not hash: read afresh
        return _read_domain.__wrapped__(landscape, id(landscape.f))
    return _read_domain(landscape, id(landscape.f))


def _below(landscape: Landscape, value: float) -> bool:
    """Whether ``value`` lies below the landscape's finite ``min_value`` by more than
    rounding (:func:`~.base.min_value_floor`)."""
    floor = landscape.min_value
    if floor is None or not math.isfinite(floor) or not math.isfinite(value):
        return False
    return value < min_value_floor(floor)


def _point_text(point) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in point) + ")"


def _min_value_hint(landscape: Landscape) -> str:
    return ("give f's minimum value (f at its minimizers)" if landscape.minima else
            "give f's minimum value, or min_value=None if it is not known")


@functools.lru_cache(maxsize=32)
def _read_domain(landscape: Landscape, f_id: int) -> tuple[float, float, tuple[float, ...] | None]:
    """:func:`_domain_reading`, cached: the key holds the landscape, and so keeps its ``f``
    (whose ``id`` tells apart landscapes that compare equal but for ``f``) alive."""
    bounds = torch.tensor(landscape.domain, dtype=torch.float64)
    if landscape.dim <= 2:
        axes = [torch.linspace(float(low), float(high), TYPICAL_GRID, dtype=torch.float64)
                for low, high in bounds]
        points = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, landscape.dim)
    else:
        gen = torch.Generator().manual_seed(0)
        points = bounds[:, 0] + (bounds[:, 1] - bounds[:, 0]) * torch.rand(
            TYPICAL_SAMPLE, landscape.dim, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        values = landscape.values(points).detach().to("cpu", torch.float64)
    finite = torch.isfinite(values)
    values, points = values[finite], points[finite]
    if not len(values):
        return 0.0, math.nan, None
    k = int(values.argmin())
    lowest, where = float(values[k]), tuple(points[k].tolist())
    if _below(landscape, lowest):
        wrong = ("runs count as escaped below it while still on the picture; give the lowest "
                 "value of f on the domain" if landscape.unbounded else
                 f"gaps to the minimum measured from min_value read wrong; "
                 f"{_min_value_hint(landscape)}")
        warnings.warn(f"{landscape.name}: f reaches {lowest:.6g} at {_point_text(where)} on its "
                      f"domain, below its min_value {landscape.min_value:g}: {wrong}",
                      LandscapeWarning, stacklevel=4)  # typical_gap's caller
    low = landscape.min_value if landscape.min_value is not None \
        and math.isfinite(landscape.min_value) else lowest
    return max(float(values.median()) - low, 0.0), lowest, where


def _warn_below(landscape: Landscape, runs) -> None:
    """One :class:`~optimlab.landscapes.base.LandscapeWarning` where a run's loss went
    below the landscape's finite ``min_value`` by more than rounding at a point inside the
    domain (:func:`~.result.below_min_value`), naming the lowest such loss, its run, step
    and point; nothing on a landscape without a minimum (going below is the escape
    there). ``runs``: ``(what, path [steps + 1, dim], loss [steps + 1])`` triples."""
    worst = below_min_value(landscape, runs)
    if worst is None and not landscape.minima and not landscape.unbounded:
        # below min_value only outside the domain, or to -inf: on a landscape the user did
        # not say is unbounded below, which the saddle rules would judge as an escape
        fell = next((what for what, _, loss in runs
                     if _fell_below(landscape, torch.as_tensor(loss, dtype=torch.float64))), None)
        if fell is not None:
            warnings.warn(f"{landscape.name}: the loss of {fell} fell below the landscape's "
                          f"min_value {landscape.min_value:g} outside its domain (or to -inf), "
                          "where a landscape with a minimum cannot go: if f is unbounded below, "
                          "tag the landscape 'saddle' or give min_value=-inf (leaving the domain "
                          f"downhill is then the goal, not a divergence); else "
                          f"{_min_value_hint(landscape)}", LandscapeWarning, stacklevel=3)
        return
    if worst is not None:
        value, what, step, point = worst
        warnings.warn(f"{landscape.name}: the loss of {what} fell to {value:.6g} at step {step}, at "
                      f"{_point_text(point)}, below the landscape's min_value "
                      f"{landscape.min_value:g}: its gaps to the minimum are negative and its "
                      f"steps to the tolerance counted from a wrong floor; "
                      f"{_min_value_hint(landscape)}", LandscapeWarning, stacklevel=3)


def _fell_below(landscape: Landscape, loss: Tensor) -> bool:
    """Whether ``loss`` reached -inf or went below a finite ``min_value`` by more than
    rounding (:func:`_below`) anywhere."""
    if bool((loss == -math.inf).any()):
        return True
    finite = loss[torch.isfinite(loss)]
    return bool(len(finite)) and _below(landscape, float(finite.min()))


def _fell_downhill(landscape: Landscape, loss: Tensor) -> bool:
    """Whether a run's last loss that is not NaN lies below its start or below the
    landscape's ``min_value``: read where a run ends in NaN (inf - inf), it tells a run
    that fell downhill without bound (to -inf, as GD does on the monkey saddle) from one
    that blew up (to +inf). False where every loss is NaN."""
    seen = loss[~torch.isnan(loss)]
    if not len(seen):
        return False
    last = float(seen[-1])
    floor = -math.inf if landscape.min_value is None else landscape.min_value
    return last < float(loss[0]) or last < floor


def _final_loss(landscape: Landscape, loss: Tensor) -> float:
    """A run's final loss as the table and ``race.tuning`` report it: the last loss, its
    sign kept where it is infinite (-inf: the run fell downhill without bound); a NaN one
    (inf - inf) -inf where the landscape has no minimum (:attr:`~.base.Landscape.unbounded`)
    and the run fell downhill before it (:func:`_fell_downhill`), inf otherwise: it blew
    up, or left the domain where f is defined (a log stepped below 0) on a landscape with
    a minimum (known or not), where falling without bound cannot happen, whatever the
    losses before the NaN."""
    final = float(loss[-1])
    if math.isnan(final):
        fell = landscape.unbounded and _fell_downhill(landscape, loss)
        return -math.inf if fell else math.inf
    return final


def _reference(landscape: Landscape, loss: Tensor) -> float:
    """The value a run's gaps are measured from by :func:`diverged`: ``min_value`` where it
    is a number; where it is not known (None), the lowest value f takes on
    :func:`typical_gap`'s grid of the domain, or the run's start value where that is
    lower (a start below every grid point has a gap of 0, as a start at the minimum)."""
    if landscape.min_value is not None:
        return landscape.min_value
    lowest = _domain_reading(landscape)[1]
    start = float(loss[0])
    return start if math.isnan(lowest) else min(lowest, start)


def diverged(landscape: Landscape, path: Tensor, loss: Tensor | None = None) -> bool:
    """Whether a run diverged.

    Which rules apply is the landscape's to say (``minima`` and ``min_value``, see
    :class:`~optimlab.landscapes.base.Landscape`):

    On a landscape with a minimum, known (``minima``) or not (``minima=()`` without the
    ``"saddle"`` tag and a ``min_value`` that is not -inf): a non-finite point of ``path``
    or value of ``loss`` (a point where f is not finite, such as a log stepped below 0); a
    gap to the minimum (f - f*) that ends more than :data:`DIVERGENCE_FACTOR` times the gap
    at the start and above :data:`DIVERGENCE_FLOOR` times the landscape's
    :func:`typical_gap` (a descent that ran uphill, such as GD beyond its stability limit
    on a quadratic: 115.6 to 3.4e4 in 30 steps at lr 0.021 and condition 100, far above
    that floor of 5.3; a noisy run that starts at the minimum, with a gap of 0, and ends at
    4e-4 has not); or a point more than :data:`DIVERGENCE_WIDTHS` domain widths outside
    the domain. f* is ``min_value``; where that is not known (None), the lowest value f
    takes on :func:`typical_gap`'s grid of the domain, or the start's value where lower.
    None of these rules needs to know where the minimizer is.

    On a landscape without a minimum (:attr:`~.base.Landscape.unbounded`: ``minima`` empty
    and tagged ``"saddle"``, or ``min_value`` -inf) leaving the domain is the goal, running
    downhill for ever, not a divergence, and a run that fell without bound is not diverged
    either: one whose loss reached -inf, or ended in NaN (the overflow's inf - inf) or
    points that are not finite after falling below its start or ``min_value``
    (:func:`_fell_downhill`). Only a loss that reached +inf, or a NaN loss or non-finite
    point that did not come after such a fall, counts there (without ``loss``, any
    non-finite point)."""
    finite = bool(torch.isfinite(path).all()) \
        and (loss is None or bool(torch.isfinite(loss).all()))
    if landscape.unbounded:
        if finite:
            return False
        if loss is None or bool((loss == math.inf).any()):
            return True
        return not _fell_downhill(landscape, loss)
    if not finite:
        return True
    if loss is not None and loss.shape[0] > 1:
        floor = _reference(landscape, loss)
        gap = float(loss[-1]) - floor
        if gap > DIVERGENCE_FACTOR * (float(loss[0]) - floor) \
                and gap > DIVERGENCE_FLOOR * typical_gap(landscape):
            return True
    bounds = torch.tensor(landscape.domain, dtype=torch.float64)
    width = bounds[:, 1] - bounds[:, 0]
    outside = torch.maximum(bounds[:, 0] - path, path - bounds[:, 1])
    return bool((outside > DIVERGENCE_WIDTHS * width).any())


def _metrics(landscape: Landscape, label: str, name: str, path: Tensor, loss: Tensor,
             tol: float) -> RaceMetrics:
    """One run's :class:`RaceMetrics`. A NaN final loss (a run that blew up: inf - inf)
    is inf, and so is its gap, on a landscape with a minimum; without one (a saddle) it
    takes its sign from the last loss that was not NaN: -inf where that one is below the
    start or the landscape's ``min_value`` (the run fell downhill without bound, as GD
    does on the monkey saddle), inf otherwise, as in ``race.tuning``
    (:func:`_final_loss`); the distance of a final point that is not
    finite is inf. A landscape without a minimum (a saddle) keeps NaN gap and
    distance: there is no minimum to measure them from; one whose minimizer is not known
    (``minima=()``, not :attr:`~.base.Landscape.unbounded`) a NaN distance, and a NaN gap
    and no steps to the tolerance where its ``min_value`` is not known (None) either."""
    final = _final_loss(landscape, loss)
    distance = float(landscape.distance_to_minimum(path[-1]))
    gap, steps_to_tol, escaped, steps_to_escape = math.nan, None, None, None
    if landscape.minima and not torch.isfinite(path[-1]).all():
        distance = math.inf
    if not landscape.unbounded and landscape.min_value is not None:
        # a saddle's min_value is only the lowest point of its domain: no gap to it
        gap = final - landscape.min_value
        # within the tolerance, not below the floor (a fall past a wrong min_value)
        floor = min_value_floor(landscape.min_value)
        within = torch.nonzero((loss - landscape.min_value <= tol) & (loss >= floor))
        steps_to_tol = int(within[0, 0]) if len(within) else None
    elif landscape.unbounded and landscape.min_value is not None \
            and math.isfinite(landscape.min_value):
        # no minimum: escaped once below the lowest value of the plotting domain
        below = torch.nonzero(loss < landscape.min_value)
        escaped = bool(len(below))
        steps_to_escape = int(below[0, 0]) if escaped else None
    return RaceMetrics(label, name, final, gap, distance, steps_to_tol,
                       diverged(landscape, path, loss), escaped, steps_to_escape)


def _escape_line(landscape: Landscape) -> bool:
    """Whether a landscape has no minimum (:attr:`~.base.Landscape.unbounded`) but a finite
    ``min_value`` to escape below (the catalog's saddles): races there report escapes, and
    tuning ranks by them (:data:`TUNE_ESCAPE_CRITERION`)."""
    return landscape.unbounded and landscape.min_value is not None \
        and math.isfinite(landscape.min_value)


def _scores(landscape: Landscape, path: Tensor, loss: Tensor) -> list[float]:
    """Each member's tuning score (lower is better): the worst loss over the last
    :data:`TUNE_WINDOW` of its losses (at least the final one), as the sweeps'
    ``tail_score`` does; inf for a member that diverged (:func:`diverged`), and for one
    whose loss rose above its starting loss anywhere in its second half
    (:func:`_blew_up`): a blow-up past halfway that came back before the window (RMSprop
    at lr 0.562 on the rotated bowl of condition 50: from 56 to 179 at step 203 of 300,
    then 3e-4 at the end) is a late spike, and cannot win the tuning.

    On a landscape without a minimum but with a finite ``min_value`` (the saddles) there
    is nothing to converge to and escaping is the goal (:data:`TUNE_ESCAPE_CRITERION`): a
    member that escaped (its loss fell below ``min_value``) scores the step it first did,
    so sooner is better, also when it then fell without bound (to -inf, and NaN after the
    overflow: not a divergence there, :func:`diverged`; GD at lr 0.562 on the saddle
    escapes at step 11, sooner than 0.316 at step 16); one that never did scores
    ``steps + 1`` plus how far its worst loss of the window stays above ``min_value``,
    behind every escape but still ranked by how far downhill it got (so a grid too slow to
    escape extends towards larger rates), and inf where that loss is not finite. On a
    landscape without a minimum nor a finite ``min_value`` a run that fell without bound
    scores -inf (it went furthest downhill); the scores are never NaN."""
    window = loss[-max(1, math.ceil(TUNE_WINDOW * loss.shape[0])):]
    worst = window.max(dim=0).values  # NaN propagates
    blew_up = _blew_up(loss, loss.shape[0] // 2)
    escape = _escape_line(landscape)
    scores = []
    for k, w in enumerate(worst.tolist()):
        if diverged(landscape, path[:, k], loss[:, k]) or bool(blew_up[k]):
            scores.append(math.inf)
        elif escape:
            below = torch.nonzero(loss[:, k] < landscape.min_value)
            if len(below):
                scores.append(float(below[0, 0]))
            elif math.isfinite(w):
                scores.append(float(loss.shape[0]) + (w - landscape.min_value))
            else:  # fell below its start to NaN without escaping: nothing to rank it by
                scores.append(math.inf)
        elif not math.isfinite(w):
            # not diverged: on a landscape with a minimum every loss is finite, so this is
            # a run that fell without bound where there is none (-inf, or NaN after it)
            scores.append(-math.inf)
        else:
            scores.append(w)
    return scores


def _edges(lrs: list[float], scores: list[float]) -> list[str]:
    """The grid edges the best learning rate sits on: ``"low"``, ``"high"`` (both for a
    one-point grid), or none. A best rate tied with its inner neighbour is not on an edge
    (nothing beyond it can be told better). When every rate failed (every score inf), the
    low edge."""
    best = int(np.argmin(scores))
    if scores[best] == math.inf:
        return ["low"]  # every rate failed: smaller ones may not
    if len(lrs) == 1:
        return ["low", "high"]
    edges = []
    if best == 0 and scores[1] > scores[0]:
        edges.append("low")
    if best == len(lrs) - 1 and scores[-2] > scores[-1]:
        edges.append("high")
    return edges


def _beyond(lrs: list[float], edge: str) -> list[float]:
    """Up to :data:`EXTEND_POINTS` learning rates beyond ``edge`` of the sorted grid
    ``lrs``, with the grid's log spacing there, inside :data:`LR_LIMITS`."""
    if len(lrs) >= 2:
        pair = lrs[:2] if edge == "low" else lrs[-2:]
        step = math.log10(pair[1] / pair[0])
    else:
        step = 0.25  # TUNE_GRID's spacing, for a one-point grid
    step = round(step, 9)  # 10**0.25 / 1 read back as 0.25, not 0.24999999999999997
    low, high = (math.log10(v) for v in LR_LIMITS)
    origin = math.log10(lrs[0] if edge == "low" else lrs[-1])
    sign = -1 if edge == "low" else 1
    out = []
    for i in range(1, EXTEND_POINTS + 1):
        e = round(origin + sign * i * step, 9)
        if low - 1e-9 <= e <= high + 1e-9:
            out.append(float(10.0**e))
    return out


#: the largest gradient noise a race takes (beyond it every path is noise; inf or NaN would
#: only give NaN paths)
MAX_NOISE = 1e6


def race(landscape: Landscape | str, optimizers: Mapping[str, Mapping | None], start=None,
         steps: int = 500, noise: float = 0.0, seed: int | None = None, tune=False,
         tol: float = 1e-3, extend: bool = True,
         progress: Callable[[int], None] | None = None) -> Race:
    """Race optimizers on a landscape from one start point.

    Args:
        landscape: a :class:`Landscape` or a catalog name (``"rosenbrock"``).
        optimizers: label -> hyperparameters (a dict, or None for the defaults), e.g.
            ``{"sgd": {"lr": 1e-3}, "adam": {"lr": 0.05}}``; each key must be one the
            optimizer takes (checked before anything runs, with the closest match), and
            each value one value the optimizer accepts (a list, array or 1-D tensor, which
            would race several members under one label, is refused; ``tune`` races a grid
            of rates), with ``lr`` > 0; a refusal names the label. A label that is not a
            registry name needs a ``name`` key: ``{"fast adam": {"name": "adam", "lr": 0.3}}``.
        start: the start point (default: the landscape's ``start``): ``landscape.dim``
            finite numbers inside ``landscape.domain`` where f and its gradient are finite
            (ValueError naming the start and the value otherwise). f is read there on a
            batch first, so an f that cannot take one, or that autograd cannot
            differentiate, fails before anything runs, naming the landscape and what f
            must be; one that returns float32 or float16 is warned of
            (:class:`~optimlab.landscapes.base.LandscapeWarning`): races run in float64.
        steps: number of steps (an integer >= 0, NumPy's included).
        noise: std of isotropic Gaussian gradient noise (see :attr:`Landscape.noise`; 0:
            the landscape's own), a number in [0, :data:`MAX_NOISE`].
        seed: seed of the noise sequence, shared by every optimizer, an integer in
            [0, 2**63). It seeds ``noise`` when given and otherwise the landscape's own
            noise (``land.with_noise(land.noise, seed)``); None (default) keeps the
            landscape's own seed, or 0 for ``noise``. Without any noise it changes nothing.
        tune: ``True`` picks each optimizer's learning rate from :data:`TUNE_GRID`, a
            non-empty sequence of positive learning rates gives another grid, ``False``
            (or None) runs each optimizer at its given or default rate. A tuned label's
            own ``lr``, if given, is replaced by the pick, made by :data:`TUNE_CRITERION`,
            the worst loss over the last quarter of a batched run's steps, so a late spike
            or a lucky last step cannot win and a run that diverges never does (nor one
            whose loss rises above its starting loss past halfway); ties go to the smaller
            rate. On a landscape without a minimum (a saddle) escaping is the goal: rates
            rank by the step their run escaped at, sooner first, a run that then fell
            without bound (to -inf) included (:data:`TUNE_ESCAPE_CRITERION`). The chosen
            values are in ``race.hparams``, the final loss of every rate tried in
            ``race.tuning`` (as the metrics report it: -inf for a run that fell without
            bound, inf for one that blew up) and its score in ``race.tuning_scores`` (both
            the batched search's). The path and metrics
            reported are those of a race at the chosen rate: an optimizer whose batched
            members do not step bit for bit as it does alone (Muon, batched with vmap) is
            run once more, alone, at that rate.
        tol: tolerance for ``steps_to_tol`` (loss within ``tol`` of the minimum), a
            finite number >= 0.
        extend: when tuning picks the smallest or largest rate of the grid, run
            :data:`EXTEND_POINTS` more rates beyond that edge, with the grid's log
            spacing there, up to :data:`MAX_EXTENSIONS` times and within
            :data:`LR_LIMITS`, so the pick is an interior point of the rates tried (the
            rates added are in ``race.tuning_extended``, and said under the table). A
            pick still on an edge is recorded in ``race.tuning_edge`` and flagged in
            ``race.table()``. ``extend=False`` only flags.
        progress: called with 1 after each step of the batched run, every optimizer's at
            once: ``steps`` calls, and ``steps`` more for each round of rates a tuned
            grid's edge adds (what ``optimlab race`` draws its progress bar with); None
            or a callable (TypeError otherwise, before anything runs).

    A run that diverges is reported in the metrics, never raised (``diverged``, by
    :func:`diverged`): where there is a minimum, known or not (``minima=()`` without the
    ``"saddle"`` tag), a non-finite loss or point, a gap to it that ends more than
    :data:`DIVERGENCE_FACTOR` times its start and above :data:`DIVERGENCE_FLOOR` times the
    landscape's :func:`typical_gap`, or a point more than :data:`DIVERGENCE_WIDTHS` domain
    widths outside the domain; where there is none (a saddle, or ``min_value`` -inf:
    :attr:`~optimlab.landscapes.base.Landscape.unbounded`), a loss that reached +inf, or a
    NaN loss or non-finite point that did not come after a fall downhill (falling without
    bound, to -inf, is the escape there). A run whose loss goes below a finite
    ``min_value`` of a landscape with a minimum (by more than rounding) is warned of
    (:class:`~optimlab.landscapes.base.LandscapeWarning`): that ``min_value`` is wrong.
    ``race.hparams`` records what each run used: the given values, the default rate when
    none is given, and any non-zero default of :data:`FIXED_POINT_KEYS` (AdamW's
    ``weight_decay=0.01``), which keeps a run off the minimum.
    """
    land = _landscape(landscape)
    steps = _steps(steps)
    check_callable("progress", progress, "called with 1 after each step")
    if not _real(noise) or not 0 <= noise <= MAX_NOISE:
        error = ValueError if _number(noise) else ArgumentTypeError
        raise error(f"noise must be a number in [0, {MAX_NOISE:g}], got {noise!r}")
    if seed is not None and (not _integer(seed) or not 0 <= seed < 2**63):
        error = ValueError if _integer(seed) else ArgumentTypeError
        raise error(f"seed must be an integer in [0, 2**63) or None, got {seed!r}")
    if not _real(tol) or tol < 0:
        error = ValueError if _number(tol) else ArgumentTypeError
        raise error(f"tol must be a finite number >= 0, got {tol!r}")
    check_bool("extend", extend)
    noise, tol = float(noise), float(tol)
    if noise:
        land = land.with_noise(noise, 0 if seed is None else int(seed))
    elif land.noise and seed is not None:
        land = land.with_noise(land.noise, int(seed))
    entries = _entries(optimizers, tune)
    # the paths every grid may record, extensions included, within the bound: each round's
    # buffer stays alive (its rates are scored and kept) while the next is recorded, and the
    # pick run again alone (_lone_runs) beside them
    _check_path_memory(steps, sum(_most_rates(len(e.lrs), extend) + 1 if e.lrs else 1
                                  for e in entries), land.dim)
    x0 = _start(land, start)
    runs = _run_from(land, [(e.name, {**e.hparams, "lr": e.lrs} if e.lrs else e.hparams)
                            for e in entries], x0, steps, progress)
    # per tuned label: lr -> (path, loss, score) of every rate tried
    tried = {e.label: _tried(land, e.lrs, path, loss)
             for e, (path, loss) in zip(entries, runs) if e.lrs}
    if extend:
        _extend(land, [e for e in entries if e.lrs], tried, x0, steps, progress)
    picks = {e.label: _pick(tried[e.label]) for e in entries if e.lrs}
    lone = _lone_runs(land, [e for e in entries if e.lrs], picks, x0, steps)
    paths, losses, hparams, metrics, tuning, scores, edges, extended = ({} for _ in range(8))
    for entry, (path, loss) in zip(entries, runs):
        path, loss = path[:, 0], loss[:, 0]
        preset = resolve(entry.name).preset
        used = {"name": entry.name, **preset, **entry.hparams}
        if entry.lrs:
            lrs = sorted(tried[entry.label])
            score = [tried[entry.label][lr][2] for lr in lrs]
            best = picks[entry.label]
            # copies: the rate picked is a column of the whole grid's buffer, all of which
            # (every rate tried, extended grids too) the result would keep alive
            path, loss = (t.clone() for t in lone.get(entry.label, tried[entry.label][best][:2]))
            tuning[entry.label] = {lr: _final_loss(land, tried[entry.label][lr][1]) for lr in lrs}
            scores[entry.label] = dict(zip(lrs, score))
            edge = _edges(lrs, score)
            if edge:
                edges[entry.label] = " and ".join(edge)
            beyond = tuple(lr for lr in lrs if lr not in entry.lrs)
            if beyond:
                extended[entry.label] = beyond
            used["lr"] = best
        elif "lr" not in used:  # show what was used
            used.update(_defaults_used(entry.name, entry.hparams))
        used.update(_wrapped_used(entry.name, used))  # a wrapper's inner optimizer, named
        used.update(_fixed_point_defaults(entry.name, {**preset, **entry.hparams}))
        paths[entry.label] = path.numpy()
        losses[entry.label] = loss.numpy()
        hparams[entry.label] = used
        metrics[entry.label] = _metrics(land, entry.label, entry.name, path, loss, tol)
    _warn_below(land, [*((label, paths[label], losses[label]) for label in paths),
                       *((f"{label} at lr {lr:.3g}", path, loss)
                         for label, rates in tried.items()
                         for lr, (path, loss, _) in rates.items())])
    return Race(land, x0.numpy(), steps, paths, losses, hparams, metrics, tol,
                land.noise, land.noise_seed, tuning,
                tuned_by=(TUNE_ESCAPE_CRITERION if _escape_line(land)
                          else TUNE_CRITERION) if tuning else "",
                tuning_scores=scores,
                tuning_edge=edges, tuning_extended=extended)


def _pick(tried: dict[float, tuple[Tensor, Tensor, float]]) -> float:
    """The tuned rate of one label's ``lr -> (path, loss, score)``: the best score, ties
    to the smaller rate."""
    lrs = sorted(tried)
    return lrs[int(np.argmin([tried[lr][2] for lr in lrs]))]


def _lone_runs(land: Landscape, entries: list[_Entry], picks: dict[str, float], x0: Tensor,
               steps: int) -> dict[str, tuple[Tensor, Tensor]]:
    """label -> (path, loss) of the tuned rate run alone, for each tuned label whose
    population does not step a member bit for bit as the optimizer alone steps (its
    capability record batches it with ``vmap``: Muon's batched Newton-Schulz products round
    unlike a lone run's), so what a tuned race reports is what ``race`` at the chosen rate
    (and the optimizer stepped by hand) gives. Elementwise and per-member populations are
    exact already and are not run again. One batched run for all of them."""
    again = [e for e in entries
             if resolve(e.name).capabilities.batching_for(
                 {**resolve(e.name).preset, **e.hparams, "lr": picks[e.label]}) == "vmap"]
    if not again:
        return {}
    runs = _run_from(land, [(e.name, {**e.hparams, "lr": picks[e.label]}) for e in again],
                     x0, steps)
    return {e.label: (path[:, 0], loss[:, 0]) for e, (path, loss) in zip(again, runs)}


def _tried(land: Landscape, lrs: Sequence[float], path: Tensor,
           loss: Tensor) -> dict[float, tuple[Tensor, Tensor, float]]:
    """lr -> (path, loss, score) for the members of one population run."""
    scores = _scores(land, path, loss)
    return {lr: (path[:, k], loss[:, k], scores[k]) for k, lr in enumerate(lrs)}


def _extend(land: Landscape, entries: list[_Entry], tried: dict, x0: Tensor,
            steps: int, progress: Callable[[int], None] | None = None) -> None:
    """Extend the grids whose best rate is on an edge, in rounds that batch every
    optimizer that needs one (see :func:`race`'s ``extend``)."""
    for _ in range(MAX_EXTENSIONS):
        more = []
        for entry in entries:
            lrs = sorted(tried[entry.label])
            score = [tried[entry.label][lr][2] for lr in lrs]
            new = [lr for edge in _edges(lrs, score) for lr in _beyond(lrs, edge)
                   if lr not in tried[entry.label]]
            if new:
                more.append((entry, new))
        if not more:
            return
        runs = _run_from(land, [(e.name, {**e.hparams, "lr": new}) for e, new in more],
                         x0, steps, progress)
        for (entry, new), (path, loss) in zip(more, runs):
            tried[entry.label].update(_tried(land, new, path, loss))
