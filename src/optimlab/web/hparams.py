"""The hyperparameters the playground shows, their ranges, and checking a requested set.

The optimizers themselves stay the single source of truth: defaults are read from each
class (its constructor signature, the registry's alias presets, and for the wrappers SAM
and Lookahead the optimizer they build by default), and a requested set is checked by
actually building the optimizer on a dummy tensor, so its own ``ValueError`` says what is
wrong. This module adds only what a page needs on top: the range of a slider, whether it
moves on a log scale, one line of help, and the playground's own bounds (:data:`RANGES`),
which are enforced on requests too.

>>> [h["name"] for h in exposed("adam")]
['lr', 'betas', 'eps', 'weight_decay', 'amsgrad']
>>> next(h for h in exposed("momentum") if h["name"] == "momentum")["default"]
0.9
>>> check("adam", {"lr": 0.05, "betas": [0.9, 0.99]})
{'lr': 0.05, 'betas': (0.9, 0.99)}
>>> check("adam", {"lr": -1.0})
Traceback (most recent call last):
...
optimlab.web.hparams.HyperparameterError: lr must be > 0 and <= 10, got -1.0
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from dataclasses import dataclass
from typing import Any

import torch

from ..optim.capabilities import DRIVER_FLAGS, NOT_HYPERPARAMETERS
from ..optim.registry import Entry, available, create, resolve

__all__ = ["Range", "RANGES", "OVERRIDES", "HyperparameterError", "exposed", "check",
           "defaults", "range_for"]


class HyperparameterError(ValueError):
    """A requested hyperparameter is unknown, out of range or rejected by the optimizer.

    ``key`` names the hyperparameter (None when the error is about the whole set).
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Range:
    """What the playground accepts for one hyperparameter, and how a slider shows it.

    ``kind`` is ``"log"`` or ``"linear"`` (a number on a slider of that scale), ``"int"``,
    ``"bool"`` (a switch) or ``"pair"`` (two numbers, e.g. ``betas``, each in the range).
    ``low``/``high`` bound the values (``low_open``/``high_open`` exclude the bound);
    ``ui_low``/``ui_high`` are the slider's ends where they differ from the bounds.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    help: str = ""
    ui_low: float | None = None
    ui_high: float | None = None

    def describe(self) -> str:
        """``> 0 and <= 10``: the bounds in words."""
        lo = f"{'>' if self.low_open else '>='} {self.low:g}"
        hi = f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"{lo} and {hi}"

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies within the bounds."""
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def to_json(self) -> dict:
        """The range for the page: kind, bounds, slider ends and help."""
        out = {"kind": self.kind, "help": self.help}
        if self.kind != "bool":
            out.update(low=self.low, high=self.high, low_open=self.low_open,
                       high_open=self.high_open,
                       ui_low=self.low if self.ui_low is None else self.ui_low,
                       ui_high=self.high if self.ui_high is None else self.ui_high)
        return out


#: The hyperparameters a page shows (in this order), wherever an optimizer takes them.
RANGES: dict[str, Range] = {
    "lr": Range("log", 0.0, 10.0, low_open=True, ui_low=1e-6,
                help="learning rate: the size of each step"),
    "momentum": Range("linear", 0.0, 0.999,
                      help="momentum: the fraction of the last step carried into the next"),
    "betas": Range("pair", 0.0, 1.0, high_open=True, ui_high=0.9999,
                   help="decay rates of the running averages of the gradient and its square"),
    "eps": Range("log", 0.0, 1.0, low_open=True, ui_low=1e-16,
                 help="added to the denominator so a tiny gradient cannot blow up the step"),
    "rho": Range("linear", 0.0, 1.0, help="decay rate of the running averages"),
    "alpha": Range("linear", 0.0, 1.0, help="smoothing constant of the squared-gradient average"),
    "weight_decay": Range("linear", 0.0, 1.0, help="pull of each step towards the origin"),
    "k": Range("int", 1, 100, help="fast steps between two updates of the slow weights"),
    "nesterov": Range("bool", help="Nesterov's look-ahead form of momentum"),
    "amsgrad": Range("bool", help="divide by the running maximum of the second moment"),
    "centered": Range("bool", help="normalise by the variance instead of the raw second moment"),
    "adaptive": Range("bool", help="ASAM: scale the neighbourhood by the weights' size"),
}

#: Ranges of a hyperparameter that means something else for one optimizer (by class row).
OVERRIDES: dict[tuple[str, str], Range] = {
    ("sam", "rho"): Range("linear", 0.0, 2.0,
                          help="radius of the neighbourhood whose worst point SAM descends from"),
    ("lookahead", "alpha"): Range("linear", 0.0, 1.0, low_open=True,
                                  help="step of the slow weights towards the fast ones"),
    ("asgd", "alpha"): Range("linear", 0.0, 1.0, help="power of the step-size decay"),
}

# Never shown nor accepted: no hyperparameter at all, or a driver flag (foreach and fused
# pick an implementation; maximize would turn the race into a climb). One definition, in
# optimlab.optim.capabilities.
_HIDDEN = NOT_HYPERPARAMETERS | DRIVER_FLAGS


def range_for(name: str, key: str) -> Range | None:
    """The range of hyperparameter ``key`` of optimizer ``name`` (None: not in the table)."""
    row = resolve(name).info.name
    return OVERRIDES.get((row, key), RANGES.get(key))


def _dummy(entry: Entry) -> torch.Tensor:
    # one point of a 2-D landscape, as races hold it (a 1 x 2 matrix for matrix-only rules)
    shape = (1, 2) if entry.capabilities.needs_matrix else (2,)
    return torch.zeros(shape, dtype=torch.float64, requires_grad=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if inspect.isclass(value):  # SAM's base_optimizer: say which registry name it is
        return next((e.name for e in available() if e.cls is value and not e.preset), None)
    return None


@functools.lru_cache(maxsize=None)
def _defaults(name: str) -> tuple[tuple[str, Any], ...]:
    entry = resolve(name)
    values = {**entry.info.defaults, **entry.preset}
    if entry.info.wrapper:
        # a wrapper's step size (and the rest) belongs to the optimizer it builds by default
        group = create(entry.name, [_dummy(entry)]).param_groups[0]
        values = {**{k: v for k, v in group.items() if k in RANGES}, **values}
    return tuple((k, v) for k, v in values.items() if k not in _HIDDEN)


def defaults(name: str) -> dict:
    """The default hyperparameters of registry name ``name`` (alias presets applied)."""
    return dict(_defaults(resolve(name).name))


def exposed(name: str) -> list[dict]:
    """The hyperparameters a page shows for ``name``: name, default, range, help."""
    values = defaults(name)
    out = []
    for key in RANGES:
        rng = range_for(name, key)
        value = values.get(key)
        if key not in values or rng is None:
            continue
        if rng.kind == "bool" and not isinstance(value, bool):
            continue
        if rng.kind == "pair" and not (isinstance(value, tuple) and len(value) == 2
                                       and all(isinstance(v, (int, float)) for v in value)):
            continue
        if rng.kind in ("log", "linear", "int") and (isinstance(value, bool)
                                                     or not isinstance(value, (int, float))):
            continue
        out.append({"name": key, "default": _jsonable(value), **rng.to_json()})
    return out


def _check_range(name: str, key: str, value: Any) -> None:
    rng = range_for(name, key)
    if rng is None:
        return
    if rng.kind == "bool":
        if not isinstance(value, bool):
            raise HyperparameterError(f"{key} must be true or false, got {value!r}", key)
        return
    numbers = value if rng.kind == "pair" else (value,)
    if rng.kind == "pair" and (not isinstance(value, (list, tuple)) or len(value) != 2):
        raise HyperparameterError(f"{key} must be two numbers, got {value!r}", key)
    for v in numbers:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise HyperparameterError(f"{key} must be a number, got {v!r}", key)
        if rng.kind == "int" and not float(v).is_integer():
            raise HyperparameterError(f"{key} must be a whole number, got {v!r}", key)
        if not rng.contains(float(v)):
            what = f"{key} values" if rng.kind == "pair" else key
            raise HyperparameterError(f"{what} must be {rng.describe()}, got {v!r}", key)


def _check_inner(key: str, value: Any) -> None:
    if not isinstance(value, str):
        raise HyperparameterError(f"{key} must be an optimizer name, got {value!r}", key)
    try:
        inner = resolve(value)
    except ValueError as err:
        raise HyperparameterError(f"{key}: {err}", key) from None
    if inner.info.wrapper:
        raise HyperparameterError(f"{key} must be a plain optimizer, not the wrapper "
                                  f"{inner.name!r}", key)


def check(name: str, hparams: dict) -> dict:
    """Check a requested hyperparameter set of ``name``; returns it ready for the library.

    Lists become tuples (``betas``), whole numbers given for an ``int`` range become
    ``int``. The playground's ranges (:data:`RANGES`) are checked first, then the optimizer
    is built on a dummy tensor, so its own checks apply. Raises
    :class:`HyperparameterError` (a ``ValueError``) naming the hyperparameter.
    """
    entry = resolve(name)
    known = defaults(entry.name)
    out = {}
    for key, value in hparams.items():
        if key in _HIDDEN or key == "name":
            raise HyperparameterError(f"{key} cannot be set in the playground", key)
        if not entry.info.wrapper and key not in known:
            takes = ", ".join(known)
            raise HyperparameterError(f"{entry.name} has no hyperparameter {key!r} "
                                      f"(it takes {takes})", key)
        if key in ("base_optimizer", "inner"):
            _check_inner(key, value)
        _check_range(entry.name, key, value)
        if isinstance(value, list):
            value = tuple(value)
        rng = range_for(entry.name, key)
        if rng is not None and rng.kind == "int":
            value = int(value)
        out[key] = value
    try:
        create(entry.name, [_dummy(entry)], **out)
    except (ValueError, TypeError) as err:
        message = str(err)
        named = [k for k in out if re.search(rf"\b{re.escape(k)}\b", message)]
        key = max(named, key=len, default=None)
        raise HyperparameterError(f"{entry.name}: {message}", key) from None
    return out
