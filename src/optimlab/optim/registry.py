"""Optimizers by name: ``create("adam", params, lr=1e-3)`` and ``available()``.

Every class in the catalog is registered under its lowercase class name; the seed
vocabulary of the tutorials (``gd``, ``momentum``, ``nag``, ``amsgrad``, ...) are aliases
with preset hyperparameters. Both come from :mod:`optimlab.optim.catalog`.

:func:`register` adds a user's own optimizer class under a name of its own, after the
built-ins, for this Python process (:func:`unregister` takes it away again). Installed
packages that declare an optimizer in the ``"optimlab.optimizers"`` entry-point group are
registered in every process, the first time the registry lists its names or meets a name it
does not know (see :mod:`optimlab._plugins`).
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import _plugins
from .._plugins import PluginWarning
from .base import ArgumentTypeError, RuleOptimizer, TorchOptimizer, check_bool
from .capabilities import NOT_HYPERPARAMETERS, Capabilities, hyperparameters
from .catalog import ALIASES, TABLE, Info

__all__ = ["Entry", "PluginWarning", "available", "check_hparams", "checked_defaults", "create",
           "info", "is_builtin",
           "origin", "probe", "rate_used", "register", "resolve", "summary_line", "unregister",
           "work_weight", "wrapped_class", "wrapped_name"]


@dataclass(frozen=True)
class Entry:
    """A registry name: the class it builds, preset hyperparameters, and its catalog row."""

    name: str
    cls: type
    info: Info
    preset: dict = field(default_factory=dict)
    alias_of: str | None = None
    summary: str = ""
    alias_year: int | None = None
    alias_paper: str | None = None
    alias_memory: float | None = None
    alias_memory_note: str | None = None

    @property
    def capabilities(self) -> Capabilities:
        """What the optimizer can do (its class's record)."""
        return self.info.capabilities

    @property
    def family(self) -> str:
        """The optimizer's family (``adam``, ``sgd``, ...): the catalog's."""
        return self.info.family

    @property
    def paper(self) -> str:
        """The paper it comes from: the alias's where it names one (``momentum``: Polyak),
        else the catalog's row."""
        return self.alias_paper or self.info.paper

    @property
    def year(self) -> int:
        """The year of that paper (the venue's): the alias's where it names one, else the
        catalog's row."""
        return self.alias_year if self.alias_year is not None else self.info.year

    @property
    def memory(self) -> float:
        """Its extra state per parameter, in copies of the parameter: the alias's where its
        preset changes it (``momentum``: 1, where plain SGD keeps none), else the catalog's
        row."""
        return self.alias_memory if self.alias_memory is not None else self.info.memory

    @property
    def memory_note(self) -> str:
        """What that state is, in words: the alias's where it gives one, else the row's
        (which says how options change it)."""
        return self.alias_memory_note if self.alias_memory_note is not None else self.info.memory_note

    def __repr__(self) -> str:
        preset = f", preset={self.preset}" if self.preset else ""
        return f"Entry({self.name!r} -> {self.cls.__name__}{preset}, {self.year}, {self.family})"


def summary_line(doc: str | None) -> str:
    """A docstring's summary: its first paragraph (up to the first blank line) on one line,
    so a summary wrapped over two lines is not cut mid-sentence."""
    import inspect

    text = inspect.cleandoc(doc or "")
    return " ".join(text.split("\n\n", 1)[0].split())


def _build_entries() -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for row in TABLE:
        summary = summary_line(row.cls.__doc__)
        entries[row.name] = Entry(row.name, row.cls, row, summary=summary)
    for alias in ALIASES:
        target = entries[alias.target]
        entries[alias.name] = Entry(alias.name, target.cls, target.info, dict(alias.preset),
                                    alias.target, alias.summary, alias.year, alias.paper,
                                    alias.memory, alias.memory_note)
    return entries


_ENTRIES = _build_entries()

#: the built-in names (the catalog's classes and aliases): :func:`register` never takes one
_BUILTIN = frozenset(_ENTRIES)

#: what runs when :func:`register` or :func:`unregister` changes the names (the palette
#: clears its colour table; see :func:`_on_change`)
_LISTENERS: list[Callable[[], None]] = []


def _on_change(listener: Callable[[], None]) -> None:
    """Call ``listener()`` whenever :func:`register` or :func:`unregister` changes the
    registry: for a module above the registry that keeps something built from its names
    (the palette's colour table), which this module does not import."""
    _LISTENERS.append(listener)


def _changed() -> None:
    for listener in _LISTENERS:
        listener()


#: held while the registry's names change (register, unregister, a plugin's registration);
#: never while a plugin's module is imported (Python's import locks order those, and a lock
#: of ours held across an import deadlocks with a thread importing that module)
_LOCK = threading.RLock()
#: "pending" until one thread has loaded every installed plugin, then "done"
_plugins_state = "pending"
#: the plugin functions called so far (their entry points' values): each is called once
_called: set[str] = set()
#: registry name -> the entry point that registered it (a plugin's), for messages
_PLUGIN_OF: dict[str, object] = {}
#: whether this thread is loading the plugins (a plugin's own calls do not load them again:
#: ``busy``), and the entry point it loads now with the names registered meanwhile
_loading = threading.local()


def _load_plugins() -> None:
    """Register the optimizers of the ``"optimlab.optimizers"`` entry points, once per
    process. A plugin that cannot be imported, is not an optimizer class or a function, or
    whose registration fails is left out with a :class:`PluginWarning`.

    No lock is held while a plugin's module is imported: a thread that asks while another
    loads them loads them too (an import another thread has begun waits for it, inside
    Python's import machinery; a class already registered, by its own module or the other
    thread, is not registered again; each function is called once), so each caller returns
    with every plugin's class registered, and none waits on another thread that may be
    waiting on its import. An interrupt while they load takes away what this call
    registered, so that the next call loads it again."""
    global _plugins_state
    if _plugins_state == "done" or getattr(_loading, "busy", False):
        return
    _loading.busy = True
    added: list[str] = []
    called: list[str] = []
    try:
        for entry_point in _plugins.entry_points():
            try:
                _load_plugin(entry_point, added, called)
            except Exception as err:  # the plugin's code: anything at all
                warnings.warn(f"the optimizer plugin {_plugins.origin(entry_point)} "
                              f"was not loaded: {type(err).__name__}: {err}", PluginWarning,
                              stacklevel=3)
    except BaseException:
        with _LOCK:
            for name in added:
                _ENTRIES.pop(name, None)
                _PLUGIN_OF.pop(name, None)
            _called.difference_update(called)
            _changed()
        raise
    finally:
        _loading.busy = False
    _plugins_state = "done"


def _load_plugin(entry_point, added: list[str], called: list[str]) -> None:
    """Load one entry point and register what it holds; the names registered go to
    ``added``, a function called to ``called``. Every name registered on this thread while
    the entry point's module is imported or its function runs (:func:`register`, by the
    module itself too) goes to ``added``, and is recorded as that plugin's (:func:`origin`)
    where its class comes from the plugin's package."""
    _loading.entry_point, _loading.registered = entry_point, []
    try:
        obj = entry_point.load()  # no lock held (see _load_plugins)
        if isinstance(obj, type):
            with _LOCK:
                known = _ENTRIES.get(entry_point.name.strip().lower())
                if known is not None and known.cls is obj:
                    # registered already (by its own module, or by another thread): this
                    # entry point names that very class, so it is the plugin's
                    _PLUGIN_OF.setdefault(known.name, entry_point)
                    return
                if known is not None and known.name not in _BUILTIN:
                    # taken by another plugin or by register(): say by which (register()'s
                    # own advice, replace=True, is not for whoever installs the plugins)
                    first = _PLUGIN_OF.get(known.name)
                    by = (f"by the plugin {_plugins.origin(first)}, which is kept; uninstall "
                          f"one of the two to choose" if first is not None else
                          f"({known.cls.__qualname__}, from {known.cls.__module__}), which is "
                          f"kept")
                    raise ValueError(f"{known.name!r} is registered already {by}")
                register(obj, entry_point.name)
        elif callable(obj):
            with _LOCK:
                if entry_point.value in _called:
                    return
                _called.add(entry_point.value)
                called.append(entry_point.value)
            obj()
        else:
            raise TypeError(f"{entry_point.value} is {type(obj).__name__}, neither an "
                            f"optimizer class nor a function that registers one")
    finally:
        added.extend(_loading.registered)
        _loading.entry_point = None


def available(dense: bool = False, *, user: bool = True) -> list[Entry]:
    """Every registry name with its metadata (classes in catalog order, then aliases, then
    the optimizers :func:`register` added, in the order they were added).

    ``dense=True`` leaves out the optimizers that take sparse gradients only (SparseAdam,
    ``Capabilities.sparse_only``): the ones a race, the playground or a population, whose
    gradients are dense, can run. ``user=False`` leaves out the registered ones: the
    built-ins alone. Installed plugins (``"optimlab.optimizers"`` entry points) are loaded
    first, and count as registered.
    """
    check_bool("dense", dense)
    check_bool("user", user)
    _load_plugins()
    return [e for e in _ENTRIES.values() if not (dense and e.capabilities.sparse_only)
            and (user or e.name in _BUILTIN)]


def resolve(name: str) -> Entry:
    """The registry entry for ``name`` (case-insensitive); ``ValueError`` if unknown."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"optimizer name must be a string, got {name!r}")
    key = name.strip().lower()
    if key not in _ENTRIES:
        _load_plugins()  # a name a plugin may provide
    if key not in _ENTRIES:
        close = difflib.get_close_matches(key, list(_ENTRIES), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown optimizer {name!r}{hint} (known: {', '.join(_ENTRIES)})")
    return _ENTRIES[key]


def work_weight(name: str, hparams: dict | None = None) -> float:
    """The rough cost of one member-step of optimizer ``name`` with ``hparams`` in a batched
    run, in units of an elementwise rule's (:meth:`Capabilities.work_weight`: more for the
    hyperparameters a step's cost grows with, L-BFGS's ``max_iter`` and ``history_size``,
    Muon's ``ns_steps``); a wrapper's is its own times its inner optimizer's, when
    ``hparams`` names the inner one (else its own). What the playground's work limits
    count.

    >>> work_weight("lbfgs"), work_weight("lbfgs", {"max_iter": 100, "history_size": 1000})
    (100.0, 5000.0)
    >>> work_weight("muon"), work_weight("muon", {"ns_steps": 99})
    (1.0, 19.8)
    """
    hparams = hparams or {}
    entry = resolve(name)
    caps = entry.capabilities
    cost = caps.work_weight({**entry.preset, **hparams})
    inner = hparams.get(caps.wraps) if caps.wraps else None
    if isinstance(inner, str):
        cost *= work_weight(inner)
    return cost


def info(name: str) -> Info:
    """The catalog row for ``name`` (aliases resolve to their class's row)."""
    return resolve(name).info


def create(name: str, params: Iterable[torch.Tensor] | Iterable[dict], **hparams: Any):
    """Build the optimizer registered as ``name`` over ``params``.

    Alias presets are applied first and ``hparams`` override them, so
    ``create("momentum", params, lr=0.1)`` is ``SGD(params, lr=0.1, momentum=0.9)``.

    Wrappers take their inner optimizer by name too:
    ``create("sam", params, base_optimizer="momentum", rho=0.05, lr=0.1)`` and
    ``create("lookahead", params, inner="adam", k=5, alpha=0.5, lr=1e-3)`` (the
    remaining keyword arguments go to the inner optimizer).
    """
    entry = resolve(name)
    kwargs = {**entry.preset, **hparams}
    check_hparams(entry.name, kwargs)
    if entry.capabilities.wraps:
        # a wrapper builds what it wraps from a registry name itself
        return entry.cls.from_registry(params, resolve, create, **kwargs)
    return entry.cls(params, **kwargs)


#: :func:`_keywords`' answers, by class: weakly, so that a rule class that is gone (an
#: unregistered plugin's) is not kept alive by them, as base's ``_HPARAM_NAMES`` keeps its own
_KEYWORDS: weakref.WeakKeyDictionary[type, tuple[frozenset[str], bool]] = \
    weakref.WeakKeyDictionary()


def _keywords(cls: type) -> tuple[frozenset[str], bool]:
    """The keyword arguments ``cls``'s constructor names (not its parameters or wrapped
    optimizer), and whether it takes any other (``**kwargs``). Read once per class: every
    :func:`create` asks (``inspect.signature`` was most of a check's 56 us)."""
    found = _KEYWORDS.get(cls)
    if found is None:
        params = inspect.signature(cls.__init__).parameters.values()
        named = frozenset(p.name for p in params
                          if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
        found = _KEYWORDS[cls] = (named - NOT_HYPERPARAMETERS,
                                  any(p.kind is p.VAR_KEYWORD for p in params))
    return found


#: other libraries' names of torch's hyperparameters (optax's learning_rate, b1, b2; Keras's
#: epsilon), for the "did you mean" of :func:`check_hparams`
_SYNONYMS = {"learning_rate": "lr", "learningrate": "lr", "step_size": "lr", "b1": "betas",
             "b2": "betas", "beta1": "betas", "beta2": "betas", "beta_1": "betas",
             "beta_2": "betas", "epsilon": "eps", "wd": "weight_decay"}


def check_hparams(name: str, hparams: dict) -> None:
    """:class:`~.base.ArgumentTypeError` (a ``TypeError``, as Python's for an unexpected
    keyword, and a ``ValueError``) for a key of ``hparams`` that optimizer ``name``'s
    constructor does not take (a wrapper's: its own, its ``wraps`` key and its inner
    optimizer's), naming what it takes and the closest match: ``'learning_rate' is not a
    hyperparameter of Adam (it takes lr, betas, ...; did you mean 'lr'?)``. A rule that
    takes ``**kwargs`` is left to its constructor. :func:`create`, populations, sweeps and
    races all check their hyperparameters here, so one typo reads the same everywhere."""
    if not hparams:  # nothing to check (and a wrapper's default is found by building it)
        return
    entry = resolve(name)
    wraps = entry.capabilities.wraps
    rule = wrapped_class(name, hparams) if wraps else entry.cls
    if rule is None or (wraps and getattr(getattr(rule, "capabilities", None), "wraps", None)):
        return  # a wrapper of a wrapper: what the innermost takes is left to the constructors
    named, open_ended = _keywords(rule)
    if open_ended:
        return
    accepted = named | {wraps} | _keywords(entry.cls)[0] if wraps else named
    unknown = [key for key in hparams if key not in accepted]
    if unknown:  # what it takes, in its constructor's order, read only for the message
        takes, what = list(hyperparameters(rule)), rule.__name__
        if wraps:
            takes = list(dict.fromkeys([wraps, *hyperparameters(entry.cls), *takes]))
            what = f"{entry.cls.__name__} with {rule.__name__}"
        synonym = _SYNONYMS.get(str(unknown[0]).lower())
        close = [synonym] if synonym in accepted else difflib.get_close_matches(
            str(unknown[0]), sorted(accepted), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ArgumentTypeError(f"{unknown[0]!r} is not a hyperparameter of {what} (it takes "
                                f"{', '.join(takes)}{hint})")


def probe(name: str, **hparams: Any):
    """``name`` built with ``hparams`` (:func:`create`) on one throwaway 2 x 2 parameter, no
    model needed: its constructor's checks run (``ValueError``/``TypeError`` as
    :func:`create` raises them), and what it fills in can be read, such as the rate a
    wrapper's inner optimizer gets. Works for every optimizer, wrappers and matrix-only
    rules included (the parameter is a matrix)."""
    return create(name, [torch.zeros(2, 2, requires_grad=True)], **hparams)


def rate_used(name: str, **hparams: Any) -> Any:
    """The learning rate :func:`create` gives ``name`` with ``hparams``: the one given, else
    its class's default, else (a wrapper: SAM, Lookahead) its inner optimizer's, read from
    a :func:`probe`; None where it has none."""
    if "lr" in hparams:
        return hparams["lr"]
    defaults = resolve(name).info.defaults
    if "lr" in defaults:
        return defaults["lr"]
    return probe(name, **hparams).param_groups[0].get("lr")


def wrapped_class(name: str, hparams: dict | None = None) -> type | None:
    """The class wrapper ``name`` wraps given ``hparams``: the one its ``wraps`` key names
    (a registry name or a class), or its default, read from a :func:`probe`; None for an
    optimizer that wraps nothing, or when neither tells.

    >>> wrapped_class("lookahead", {"inner": "sgd"}).__name__, wrapped_class("sam").__name__
    ('SGD', 'SGD')
    """
    entry = resolve(name)
    wraps = entry.capabilities.wraps
    if wraps is None:
        return None
    inner = (hparams or {}).get(wraps)
    if isinstance(inner, str):
        return resolve(inner).cls
    if isinstance(inner, type):
        return inner
    if inner is None:
        built = probe(entry.name)
        for value in vars(built).values():
            if isinstance(value, torch.optim.Optimizer):
                return type(value)
    return None


def wrapped_name(name: str, hparams: dict | None = None) -> str | None:
    """The registry name of the class wrapper ``name`` wraps given ``hparams``
    (:func:`wrapped_class`), as ``--hp NAME:KEY=...`` takes it: the class's own entry, not
    an alias; None for an optimizer that wraps nothing, or a class no entry has.

    >>> wrapped_name("lookahead"), wrapped_name("sam"), wrapped_name("adam")
    ('adam', 'sgd', None)
    """
    cls = wrapped_class(name, hparams)
    return next((e.name for e in available() if e.alias_of is None and e.cls is cls), None)


def checked_defaults(name: str, **hparams: Any) -> dict[str, Any]:
    """The full hyperparameters :func:`create` would give ``name``, checked, building nothing.

    Presets apply as in :func:`create`; the class's constructor checks the values
    (:meth:`~optimlab.optim.base.RuleOptimizer.checked_defaults`). Only for optimizers that
    run a rule (not the wrappers).
    """
    entry = resolve(name)
    if not hasattr(entry.cls, "checked_defaults"):
        raise TypeError(f"{entry.name} is not a rule optimizer; build it with create()")
    kwargs = {**entry.preset, **hparams}
    check_hparams(entry.name, kwargs)
    return entry.cls.checked_defaults(**kwargs)


_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _registrable(cls: Any) -> None:
    """Raise ``TypeError`` unless :func:`register` can take ``cls``."""
    how = ("subclass optimlab.optim.base.RuleOptimizer, with init and update as static "
           "functions (the rule contract of optimlab.optim.rule) and a Capabilities record: "
           "populations, races, the multi-tensor and fused paths run that rule through "
           "optimlab's engine, so an optimizer that has none cannot be run by them")
    if not isinstance(cls, type):
        raise TypeError(f"register() takes an optimizer class, got {cls!r}; {how}")
    if not issubclass(cls, TorchOptimizer):
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} is not an optimlab optimizer; {how}")
    if not isinstance(getattr(cls, "capabilities", None), Capabilities):
        raise TypeError(f"{cls.__qualname__} has no Capabilities record (a class attribute "
                        f"`capabilities`); {how}")
    if issubclass(cls, RuleOptimizer) and not all(
            callable(getattr(cls, rule, None)) for rule in ("init", "update")):
        raise TypeError(f"{cls.__qualname__} does not set init and update; {how}")


def register(cls: type, name: str | None = None, *, family: str = "custom",
             year: int | None = None, paper: str = "", url: str = "",
             summary: str | None = None, replace: bool = False) -> Entry:
    """Add the optimizer class ``cls`` to the registry as ``name``, so that everything that
    takes an optimizer by name takes it: :func:`create`, :func:`resolve`, :func:`info`,
    :func:`available` (after the built-ins), ``optimlab.Population(name, ...)``,
    ``optimlab.race(landscape, {name: {...}})`` (``tune=True`` too),
    ``optimlab.advise(..., optimizers=[name])``, the bench sweeps' Python API and the
    palette (a colour of its own). Returns its :class:`Entry`.

    ``cls`` is a subclass of :class:`~optimlab.optim.base.RuleOptimizer` written as the
    built-ins are (``init`` and ``update`` as static functions, see
    :mod:`optimlab.optim.rule`, and a :class:`~optimlab.optim.capabilities.Capabilities`
    record); anything that is not an optimlab optimizer class with such a record
    (``torch.optim.Adam`` included) raises ``TypeError``. ``name`` defaults to the class's
    name in lowercase; it is read case-insensitively, as :func:`resolve` reads names, and
    must look like an identifier (``[a-z_][a-z0-9_]*`` once lowercased), else
    ``ValueError``. A built-in name (a catalog class or an alias) is never taken
    (``ValueError``); a name registered before is taken only with ``replace=True``, or by
    the same class defined again (the same module and qualified name: a notebook cell that
    defines and registers it, run twice, replaces it).

    The catalog row (:func:`info`) is built from what is given and from the class:
    ``family``, ``year``, ``paper`` and ``url`` as given, the summary from ``summary`` or
    the class docstring's first paragraph, the extra memory, momentum and adaptive-rate
    cells from its Capabilities record (its ``moments`` and ``second_moments``; the memory
    is NaN where it names none), bias correction "no", and empty prose ("user-registered"
    as its typical use): the catalog's rows are written and checked by hand, this one is
    not. ``available(user=False)`` lists the built-ins alone.

    The registration lives in this Python process: the Python API sees it. The command
    line (``optimlab list``, ``optimlab race``, ...), the playground (``optimlab serve``)
    and Ray workers are other processes: they know the built-ins and the installed plugins.
    To reach them, declare the class in your package's ``"optimlab.optimizers"`` entry-point
    group (:mod:`optimlab._plugins`): every process that imports optimlab where that package
    is installed then registers it, the first time the registry lists its names or meets a
    name it does not know. A name you register first is yours: a plugin that names it later
    is left out with a :class:`PluginWarning` (unless it names the same class, as a plugin
    module that registers its own class at import does, which is kept as registered here).
    :func:`register` and :func:`unregister` hold a lock, so threads may call them.
    """
    _registrable(cls)
    with _LOCK:
        return _register(cls, name, family, year, paper, url, summary, replace)


def _defined_again(registered: type, cls: type) -> bool:
    """Whether ``cls`` is ``registered`` defined once more: the same module and qualified
    name (a notebook cell run again, a module reloaded), so that registering it replaces
    the older one without ``replace=True``."""
    return (registered.__module__, registered.__qualname__) == (cls.__module__, cls.__qualname__)


def _register(cls: type, name: str | None, family: str, year: int | None, paper: str, url: str,
              summary: str | None, replace: bool) -> Entry:
    if name is None:
        name = cls.__name__
    if not isinstance(name, str):
        raise ArgumentTypeError(f"optimizer name must be a string, got {name!r}")
    key = name.strip().lower()
    if not _NAME.fullmatch(key):
        raise ValueError(f"optimizer name {name!r} is not a name: letters, digits and "
                         f"underscores, not starting with a digit")
    if key in _BUILTIN:
        raise ValueError(f"{key!r} is a built-in optimizer's name; register "
                         f"{cls.__qualname__} under another name")
    if key in _ENTRIES and not replace and not _defined_again(_ENTRIES[key].cls, cls):
        raise ValueError(f"{key!r} is registered already ({_ENTRIES[key].cls.__qualname__}); "
                         f"pass replace=True to replace it, or unregister({key!r}) first")
    caps = cls.capabilities
    moments = list(caps.compact_moments)
    row = Info(
        name=key, cls=cls, family=family, year=year, paper=paper, url=url,
        memory=float(len(moments)) if moments else math.nan,
        memory_note=f"{len(moments)} ({', '.join(moments)})" if moments else "unknown",
        adaptive=bool(caps.second_moments), momentum=bool(caps.moments),
        bias_correction=False, decoupled_weight_decay="", sparse="yes" if caps.sparse else "no",
        rule_text="", tuning="", strengths="", weaknesses="", typical_use="user-registered",
        reference="")
    text = summary_line(cls.__doc__) if summary is None else summary
    entry = Entry(key, cls, row, summary=text or "user-registered optimizer")
    _ENTRIES[key] = entry
    # whose it is: the plugin this thread is loading (its module's import, its function),
    # where the class comes from that plugin's package (a plugin may import another's)
    loading = getattr(_loading, "entry_point", None)
    if loading is not None:
        _loading.registered.append(key)
    if loading is not None and cls.__module__.split(".")[0] == \
            loading.value.partition(":")[0].strip().split(".")[0]:
        _PLUGIN_OF[key] = loading
    else:
        _PLUGIN_OF.pop(key, None)  # (replace=True over a plugin's name: the user's now)
    _changed()
    return entry


def is_builtin(name: str) -> bool:
    """Whether ``name`` (any spelling :func:`resolve` reads) is one of optimlab's own
    optimizers (a catalog class or alias), not one :func:`register` or a plugin added."""
    return resolve(name).name in _BUILTIN


def origin(name: str) -> str:
    """Where the registered optimizer ``name`` comes from, for messages: ``plugin
    DISTRIBUTION VERSION`` where an installed plugin registered it, else ``registered from
    MODULE`` (its class's module)."""
    entry = resolve(name)
    entry_point = _PLUGIN_OF.get(entry.name)
    dist = getattr(entry_point, "dist", None)
    if dist is not None:
        return f"plugin {dist.name} {dist.version}"
    if entry_point is not None:
        return f"plugin {entry_point.value}"
    return f"registered from {entry.cls.__module__}"


def unregister(name: str) -> None:
    """Take away the optimizer :func:`register` added as ``name`` (any spelling, as
    :func:`resolve` reads it); ``ValueError`` for a built-in or an unknown name."""
    with _LOCK:
        key = resolve(name).name
        if key in _BUILTIN:
            raise ValueError(f"{key!r} is a built-in optimizer; only the ones register() added "
                             f"can be unregistered")
        del _ENTRIES[key]
        _PLUGIN_OF.pop(key, None)
        _changed()
