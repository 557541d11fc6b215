"""The hyperparameters the playground shows, their ranges, and checking a requested set.

The optimizers themselves stay the single source of truth: defaults are read from each
class (its constructor signature, the registry's alias presets, and for the wrappers SAM
and Lookahead the optimizer they build by default), and a requested set is checked by
actually building the optimizer on a dummy tensor, so its own ``ValueError`` says what is
wrong. This module adds only what a page needs on top: the range of a slider, whether it
moves on a log scale, one line of help, and the playground's own bounds (:data:`RANGES`),
which are enforced on requests too. :func:`accepted` says, for every hyperparameter an
optimizer takes, what a request may give (the API's schema is built from it, and
:func:`check` enforces the same), so no number outside a type's range reaches an optimizer.

>>> [h["name"] for h in exposed("adam")]
['lr', 'betas', 'eps', 'weight_decay', 'amsgrad', 'cautious']
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

import dataclasses
import difflib
import functools
import inspect
import math
import re
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from .. import _plugins
from ..bench.store.jsonio import json_data
from ..optim.capabilities import DRIVER_FLAGS, NOT_HYPERPARAMETERS
from ..optim.registry import Entry, _on_change, available, create, is_builtin, origin, resolve

__all__ = ["Range", "RANGES", "OVERRIDES", "ACCEPTED", "NUMBER", "WHOLE", "TEXT",
           "FLOAT32_MAX", "MAX_TEXT", "HIDDEN", "HyperparameterError", "exposed", "accepted", "check",
           "check_inner", "defaults", "range_for", "inner_names", "offered"]


class HyperparameterError(ValueError):
    """A requested hyperparameter is unknown, out of range or rejected by the optimizer.

    ``key`` names the hyperparameter (None when the error is about the whole set).
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Range:
    """What the playground accepts for one hyperparameter, and how a slider shows it.

    ``kind`` is ``"log"`` or ``"linear"`` (a number on a slider of that scale), ``"int"``,
    ``"bool"`` (a switch) or ``"pair"`` (two numbers, e.g. ``betas``, each in the range).
    Hyperparameters a page does not show may also be a ``"tuple"`` (``length`` numbers,
    each in the range, ``None`` allowed where ``nullable``), a ``"text"`` (a short string,
    or ``None`` where ``nullable``) or a ``"choice"`` (one of ``choices``, e.g. the name of
    the optimizer a wrapper wraps).
    ``low``/``high`` bound the values (``low_open``/``high_open`` exclude the bound);
    ``ui_low``/``ui_high`` are the slider's ends where they differ from the bounds.
    A ``"log"``, ``"linear"`` or ``"int"`` number that is ``nullable`` may also be ``None``
    (the optimizer then chooses, e.g. Prodigy's ``beta3``, L-BFGS's ``max_eval``); the page
    shows a shown one as a switch ("auto") beside the slider, which starts at ``example``
    when the switch is turned off.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    help: str = ""
    ui_low: float | None = None
    ui_high: float | None = None
    length: int = 2
    nullable: bool = False
    choices: tuple[str, ...] = ()
    example: float | None = None

    @property
    def numeric(self) -> bool:
        """Whether the values (or the items of a pair or tuple) are bounded numbers."""
        return self.kind in ("log", "linear", "int", "pair", "tuple")

    def describe(self) -> str:
        """``> 0 and <= 10``: the bounds in words (for a number, or a pair's items)."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "text":
            return f"a text of at most {MAX_TEXT} characters" + (" or null" if self.nullable
                                                                  else "")
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        lo = f"{'>' if self.low_open else '>='} {self.low:g}"
        hi = f"{'<' if self.high_open else '<='} {self.high:g}"
        auto = " (or null)" if self.nullable and self.kind in ("log", "linear", "int") else ""
        return f"{lo} and {hi}{auto}"

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies within the bounds (an int of any size may be asked)."""
        if isinstance(value, float) and not math.isfinite(value):
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
        if self.nullable:
            out.update(nullable=True, example=self.example)
        return out


#: Largest magnitude of any number a request may give an optimizer (float32's largest finite
#: number, what the optimizers themselves accept).
FLOAT32_MAX = float(torch.finfo(torch.float32).max)

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
    "cautious": Range("bool", help="step only where the update agrees in sign with the "
                                   "gradient (Liang et al. 2024)"),
    # numbers whose default, None, lets the optimizer choose ("auto" on the page)
    "beta3": Range("linear", 0.0, 1.0, nullable=True, example=0.99, ui_high=0.999,
                   help="decay rate of Prodigy's step-size estimate (auto: the square root "
                        "of beta2)"),
    "growth_rate": Range("log", 1.0, FLOAT32_MAX, nullable=True, example=1.02, ui_low=1.001,
                         ui_high=10.0, help="largest factor the step-size estimate may grow "
                                            "by in one step (auto: no limit)"),
    "pre_conditioner_update_probability": Range(
        "linear", 0.0, 1.0, nullable=True, example=0.1,
        help="chance of refitting the preconditioner each step (auto: 1 for 500 steps, then "
             "falling to 0.03, the authors' schedule)"),
}

#: Ranges of a hyperparameter that means something else for one optimizer (by class row).
OVERRIDES: dict[tuple[str, str], Range] = {
    ("sam", "rho"): Range("linear", 0.0, 2.0,
                          help="radius of the neighbourhood whose worst point SAM descends from"),
    ("lookahead", "alpha"): Range("linear", 0.0, 1.0, low_open=True,
                                  help="step of the slow weights towards the fast ones"),
    ("asgd", "alpha"): Range("linear", 0.0, 1.0, help="power of the step-size decay"),
    ("ademamix", "alpha"): Range("linear", 0.0, 20.0,
                                 help="weight of the slow momentum in the step"),
    ("lars", "eps"): Range("linear", 0.0, 1.0,
                           help="added to the trust ratio's denominator (0 by default)"),
}

#: Longest text a hyperparameter may hold (e.g. Muon's ``adjust_lr_fn``).
MAX_TEXT = 40
#: Any number a page does not show: finite and within float32's range.
NUMBER = Range("linear", -FLOAT32_MAX, FLOAT32_MAX,
               help="a finite number within float32's range; the optimizer checks the rest")
#: Any whole number a page does not show, where the optimizer takes whole numbers only.
WHOLE = Range("int", -(2**31), 2**31 - 1,
              help="a whole number; the optimizer checks the rest")
#: A hyperparameter whose default is a string, or None where the optimizer takes no number
#: for it: a short text, or null.
TEXT = Range("text", nullable=True, help="a short text (a mode's name) or null")

#: Hyperparameters accepted though not shown, whose bounds their default does not tell (they
#: are whole numbers; a large one would make each step, or the start, arbitrarily long).
ACCEPTED: dict[str, Range] = {
    "ns_steps": Range("int", 0, 99, help="Newton-Schulz iterations per step"),
    "warmup_steps": Range("int", 0, 2**31 - 1, help="steps of learning-rate warm-up"),
    # LBFGS: each inner iteration evaluates the closure at least once (both count in the
    # work weight, optimlab.optim.capabilities)
    "max_iter": Range("int", 1, 100, help="inner iterations per step"),
    "max_eval": Range("int", 1, 125, nullable=True,
                      help="closure evaluations per step at most (null: 1.25 x max_iter)"),
    "history_size": Range("int", 1, 1000, help="curvature pairs kept"),
}

# Never shown nor accepted: no hyperparameter at all, or a driver flag (foreach and fused
# pick an implementation; maximize would turn the race into a climb). One definition, in
# optimlab.optim.capabilities.
_HIDDEN = NOT_HYPERPARAMETERS | DRIVER_FLAGS
#: The keys a request may never set (see above).
HIDDEN = _HIDDEN


def range_for(name: str, key: str) -> Range | None:
    """The range of hyperparameter ``key`` of optimizer ``name`` (None: not in the table)."""
    row = resolve(name).info.name
    return OVERRIDES.get((row, key), RANGES.get(key))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fits(rng: Range, value: Any) -> bool:
    """Whether a table range applies to a hyperparameter whose default is ``value`` (Adam's
    ``eps`` is a number, Adafactor's a pair: the table's ``eps`` is only Adam's)."""
    if rng.kind == "bool":
        return isinstance(value, bool)
    if rng.kind == "pair":
        return (isinstance(value, tuple) and len(value) == 2
                and all(_is_number(v) for v in value))
    return _is_number(value) or (value is None and rng.nullable)


#: Values that tell what numbers an optimizer's own argument check takes (:func:`_takes`).
_FRACTIONS, _WHOLES = (0.5, 1.5, 1000.5), (1, 2, 1000)

#: What a built-in optimizer raises for values it refuses (anything else is a bug, and goes
#: on up); a registered one's (a plugin's) refusal is any exception (:func:`_refusals`).
_REFUSALS = (ValueError, TypeError, ArithmeticError)


def _refusals(entry: Entry, hparams: dict | None = None) -> type | tuple[type, ...]:
    """What building ``entry`` with ``hparams`` raises when it refuses them: any
    ``Exception`` where that runs a registered optimizer's code (``entry``, or the optimizer
    the wrapper ``entry`` is given to wrap, by name), else :data:`_REFUSALS`."""
    wraps = entry.capabilities.wraps
    inner = (hparams or {}).get(wraps) if wraps else None
    if not is_builtin(entry.name) or (isinstance(inner, str) and not is_builtin(inner)):
        return Exception
    return _REFUSALS


def _takes(name: str, key: str) -> str | None:
    """What numbers optimizer ``name`` takes for ``key``, asked of its own argument checks
    (the one statement of what it accepts): ``"number"`` where it takes a fraction,
    ``"int"`` where it takes whole numbers only, None where it takes no number (a mode's
    name, e.g. ``line_search_fn``)."""
    entry = resolve(name)
    refusals = _refusals(entry)

    def accepts(value: float) -> bool:
        try:
            create(entry.name, [_dummy(entry)], **{key: value})
        except refusals:
            return False
        return True

    if any(accepts(v) for v in _FRACTIONS):
        return "number"
    return "int" if any(accepts(v) for v in _WHOLES) else None


def _derived(name: str, key: str, value: Any) -> Range | None:
    """What a hyperparameter of ``name`` outside the table accepts, from its default and the
    optimizer's own checks (None: nothing a JSON request could give, e.g. a function).

    A number, or None (the optimizer then chooses: AdEMAMix's ``t_alpha_beta3``, L-BFGS's
    ``max_eval``), takes what the optimizer takes (:func:`_takes`: any number, or whole
    numbers only; null too where the default is None); a default of None for which it takes
    no number is a text (a mode's name) or null."""
    if isinstance(value, bool):
        return Range("bool")
    if _is_number(value) or value is None:
        takes = "int" if key in ACCEPTED else _takes(name, key)
        if takes is not None:
            rng = ACCEPTED.get(key) or (WHOLE if takes == "int" else NUMBER)
            return dataclasses.replace(rng, nullable=True) if value is None else rng
        if value is not None:
            return NUMBER  # whatever it refuses, it says so when the request is checked
    if isinstance(value, tuple) and value and all(v is None or _is_number(v) for v in value):
        return Range("tuple", -FLOAT32_MAX, FLOAT32_MAX, length=len(value),
                     nullable=None in value, help=f"{len(value)} numbers within float32's range"
                     + (" (or null where the default is)" if None in value else ""))
    if value is None or isinstance(value, str):
        return TEXT
    return None


#: the optimizers :func:`_unbuildable` has warned about, by name and class
_SAID: set[tuple[str, type]] = set()


@functools.lru_cache(maxsize=1)
def _unbuildable() -> frozenset[str]:
    """The registered optimizers (not built-ins: a plugin's, or the user's) that cannot be
    built with their defaults on the playground's dummy parameter, whatever they raise (a
    licence server unreachable, a GPU they need), each said once in a
    :class:`~optimlab._plugins.PluginWarning` naming it, where it comes from and the error.
    Asked again after the registry changes."""
    left_out = []
    for entry in available(dense=True):
        if is_builtin(entry.name):
            continue
        try:
            create(entry.name, [_dummy(entry)])
        except Exception as err:
            if (entry.name, entry.cls) not in _SAID:  # once a process, whatever clears the cache
                _SAID.add((entry.name, entry.cls))
                warnings.warn(f"the optimizer {entry.name} ({origin(entry.name)}) cannot be "
                              f"built, so the playground leaves it out: {type(err).__name__}: "
                              f"{err}", _plugins.PluginWarning, stacklevel=2)
            left_out.append(entry.name)
    return frozenset(left_out)


def offered() -> list[Entry]:
    """The optimizers the playground offers (its page, its requests, the names a wrapper may
    wrap): the registry's dense ones, less those that cannot be built (:func:`_unbuildable`),
    so that such a plugin leaves the playground without it instead of stopping the server.
    The registry itself is left as it is: the process's own code still has them."""
    left_out = _unbuildable()
    return [e for e in available(dense=True) if e.name not in left_out]


@functools.lru_cache(maxsize=1)
def inner_names() -> tuple[str, ...]:
    """The registry names a wrapper may wrap: every optimizer that is not a wrapper."""
    return tuple(e.name for e in offered() if not e.info.wrapper)


def _dummy(entry: Entry) -> torch.Tensor:
    # one point of a 2-D landscape, as races hold it (a 1 x 2 matrix for matrix-only rules)
    shape = (1, 2) if entry.capabilities.needs_matrix else (2,)
    return torch.zeros(shape, dtype=torch.float64, requires_grad=True)


def _jsonable(value: Any) -> Any:
    """A default as strict JSON data; a class (SAM's base_optimizer) as its registry name,
    and anything else (a callable) as None."""
    return json_data(value, finite=True, fallback=lambda v: next(
        (e.name for e in available() if e.cls is v and not e.preset), None)
        if inspect.isclass(v) else None)


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
        if key not in values or rng is None or not _fits(rng, values[key]):
            continue
        out.append({"name": key, "default": _jsonable(values[key]), **rng.to_json()})
    return out


def _own(name: str, key: str, value: Any) -> Range | None:
    rng = range_for(name, key)
    return rng if rng is not None and _fits(rng, value) else _derived(name, key, value)


@functools.lru_cache(maxsize=None)
def _accepted(name: str) -> tuple[tuple[str, tuple[Range, ...]], ...]:
    entry = resolve(name)
    wraps = entry.capabilities.wraps
    out: dict[str, tuple[Range, ...]] = {}
    for key, value in defaults(entry.name).items():
        rng = _own(entry.name, key, value) if key != wraps else None
        if rng is not None:
            out[key] = (rng,)
    if wraps:
        out[wraps] = (Range("choice", choices=inner_names(),
                            help=f"the optimizer {entry.name} wraps (a registry name)"),)
        # the rest goes to the wrapped optimizer: whatever one of them takes, within the
        # wrapper's table range where it has one (SAM's rho, Lookahead's alpha are its own)
        seen: dict[str, list[Range]] = {}
        for inner in inner_names():
            for key, ranges in accepted(inner).items():
                if key in out:
                    continue
                table = range_for(entry.name, key)
                if table is not None and _fits(table, defaults(inner).get(key)):
                    ranges = (table,)
                bucket = seen.setdefault(key, [])
                bucket.extend(r for r in ranges if r not in bucket)
        for key, ranges in seen.items():
            table = range_for(entry.name, key)
            out[key] = (table,) if table in ranges else tuple(ranges)
    return tuple(out.items())


def accepted(name: str) -> dict[str, tuple[Range, ...]]:
    """Every hyperparameter a request may give ``name``, with what it may be.

    Each key maps to the ranges it may lie in (usually one; a wrapper's key that its wrapped
    optimizers take in different forms has several): the table's (:data:`RANGES`,
    :data:`OVERRIDES`) where it applies, else one read off the default and the optimizer's
    own checks: a switch, a finite number within float32's range (:data:`NUMBER`), a whole
    number (:data:`WHOLE`, bounded in :data:`ACCEPTED`) where it takes no fraction, either
    or null where the default is None, a tuple of such numbers, or a short text. A wrapper
    takes the name of the optimizer it wraps (one of :func:`inner_names`) and every
    hyperparameter those take.

    >>> [r.describe() for r in accepted("adam")["lr"]]
    ['> 0 and <= 10']
    >>> accepted("muon")["ns_steps"][0].high
    99
    >>> [r.describe() for r in accepted("lbfgs")["max_eval"]]
    ['>= 1 and <= 125 (or null)']
    """
    return dict(_accepted(resolve(name).name))


def _check_one(key: str, rng: Range, value: Any) -> Any:
    """``value`` checked against one range, as the library takes it; raises
    :class:`HyperparameterError` saying what is wrong."""
    if rng.kind == "bool":
        if not isinstance(value, bool):
            raise HyperparameterError(f"{key} must be true or false, got {value!r}", key)
        return value
    if rng.kind == "choice":
        check_inner(key, value)
        return value
    if rng.kind == "text":
        if value is None and rng.nullable:
            return None
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise HyperparameterError(f"{key} must be {rng.describe()}, got {_short(value)}", key)
        return value
    many = rng.kind in ("pair", "tuple")
    if value is None and rng.nullable and not many:
        return None  # the optimizer chooses (Prodigy's beta3, ...)
    if many and (not isinstance(value, (list, tuple)) or len(value) != rng.length):
        count = "two" if rng.length == 2 else str(rng.length)
        raise HyperparameterError(f"{key} must be {count} numbers, got {_short(value)}", key)
    out = []
    for v in value if many else (value,):
        if v is None and many and rng.nullable:
            out.append(None)
            continue
        if not _is_number(v):
            raise HyperparameterError(f"{key} must be {'numbers' if many else 'a number'}, "
                                      f"got {_short(value)}", key)
        if rng.kind == "int" and isinstance(v, float) and not v.is_integer():
            raise HyperparameterError(f"{key} must be a whole number, got {v!r}", key)
        if not rng.contains(v):
            what = f"{key} values" if many else key
            raise HyperparameterError(f"{what} must be {rng.describe()}, got {_short(v)}", key)
        out.append(int(v) if rng.kind == "int" else v)
    return tuple(out) if many else out[0]


def _short(value: Any) -> str:
    """``repr(value)``, at most 60 characters (an int of 400 digits, a long text)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_inner(key: str, value: Any) -> None:
    """Raise :class:`HyperparameterError` unless ``value`` names a plain optimizer (what a
    wrapper's ``key``, e.g. ``inner`` or ``base_optimizer``, may be)."""
    if not isinstance(value, str):
        raise HyperparameterError(f"{key} must be an optimizer name, got {_short(value)}", key)
    try:
        inner = resolve(value)
        if inner.name in _unbuildable():  # left out of the playground (it cannot be built)
            raise ValueError(value)
    except ValueError:
        # (not the registry's message: it echoes the name whole and lists names refused here)
        close = difflib.get_close_matches(value.strip().lower(), inner_names(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise HyperparameterError(f"{key}: unknown optimizer {_short(value)}{hint} (it may be "
                                  f"{', '.join(inner_names())})", key) from None
    if inner.info.wrapper:
        raise HyperparameterError(f"{key} must be a plain optimizer, not the wrapper "
                                  f"{inner.name!r}", key)


def check(name: str, hparams: dict) -> dict:
    """Check a requested hyperparameter set of ``name``; returns it ready for the library.

    Lists become tuples (``betas``), whole numbers given for an ``int`` range become
    ``int``. What :func:`accepted` says is checked first (the playground's ranges,
    :data:`RANGES`, and no number beyond float32's range), then the optimizer is built on a
    dummy tensor, so its own checks apply. Raises :class:`HyperparameterError` (a
    ``ValueError``) naming the hyperparameter, also when the optimizer raises
    ``ValueError``, ``TypeError`` or ``ArithmeticError`` (any exception where a registered
    optimizer's code runs: a plugin's, or the one a wrapper is given to wrap).
    """
    entry = resolve(name)
    takes = accepted(entry.name)
    out = {}
    for key, value in hparams.items():
        if key in _HIDDEN or key == "name":
            raise HyperparameterError(f"{key} cannot be set in the playground", key)
        if key not in takes:
            raise HyperparameterError(f"{entry.name} has no hyperparameter {key!r} "
                                      f"(it takes {', '.join(takes)})", key)
        ranges = takes[key]
        for i, rng in enumerate(ranges):
            try:
                out[key] = _check_one(key, rng, value)
                break
            except HyperparameterError:
                if i == len(ranges) - 1:
                    if len(ranges) == 1:
                        raise
                    kinds = " or ".join(f"{r.kind} ({r.describe()})" for r in ranges)
                    raise HyperparameterError(f"{key} must be a {kinds}, got "
                                              f"{_short(value)}", key) from None
    refusals = _refusals(entry, out)
    try:
        create(entry.name, [_dummy(entry)], **out)
    except refusals as err:
        message = str(err) if isinstance(err, _REFUSALS) else f"{type(err).__name__}: {err}"
        named = [k for k in out if re.search(rf"\b{re.escape(k)}\b", message)]
        key = max(named, key=len, default=None)
        raise HyperparameterError(f"{entry.name}: {message}", key) from None
    return out


# what these caches hold comes from the registry: optimlab.register/unregister (in this
# process) clears them, as it clears the palette's colours
_on_change(lambda: (inner_names.cache_clear(), _defaults.cache_clear(), _accepted.cache_clear(),
                    _unbuildable.cache_clear()))
