"""Optimizers that other installed packages provide, through the ``"optimlab.optimizers"``
entry-point group.

A package that wants its optimizer known to every process that imports optimlab (the
command line, the playground, Ray workers), not only to the one that called
:func:`optimlab.register`, declares it in its ``pyproject.toml``::

    [project.entry-points."optimlab.optimizers"]
    signmomentum = "mypackage.optim:SignMomentum"

The entry point's name is the registry name. Its object is either an optimizer class, which
the registry registers under that name, or a function of no arguments, which the registry
calls and which registers what it likes (``optimlab.register(..., year=..., paper=...)``).
The registry loads them the first time it lists its names or is asked for a name it does
not know (:mod:`optimlab.optim.registry`); one that fails is reported in a warning and left
out. :data:`DISABLE` set on in the environment (``1``, ``true``, ``yes``, ``on``:
:func:`optimlab._env.flag`) loads none.

Standard library only, and nothing is imported until asked: the command line reads
:func:`entry_points` to know whether its catalog cache (which holds the built-ins alone) can
answer, without importing torch.
"""

from __future__ import annotations

import os

GROUP = "optimlab.optimizers"
"""The entry-point group optimlab reads."""

DISABLE = "OPTIMLAB_DISABLE_PLUGINS"
"""An environment variable: on (``1``, ``true``, ``yes``, ``on``, in any case), no plugin is
loaded; unset, empty or off (``0``, ``false``, ``no``, ``off``), plugins load; any other
value is on, with a warning (:func:`optimlab._env.flag`)."""


class PluginWarning(UserWarning):
    """An installed optimizer plugin could not be loaded (the warning says which and why);
    the registry goes on without it."""


def entry_points() -> list:
    """The :class:`importlib.metadata.EntryPoint` objects of :data:`GROUP` from the installed
    distributions, sorted by name (then value, so the order never depends on the path), or
    none while :data:`DISABLE` is on. Nothing is loaded (a few tens of milliseconds with a
    hundred distributions installed). A distribution whose entry points cannot be read (a
    damaged ``entry_points.txt``) is left out, with a :class:`PluginWarning` naming it once
    per process; the others are read one by one then."""
    from ._env import flag

    if flag(DISABLE, False):
        return []
    from importlib.metadata import entry_points as installed

    try:
        found = installed(group=GROUP)
    except Exception:  # one distribution's metadata that cannot be parsed fails them all
        found = _readable()
    return sorted(found, key=lambda ep: (ep.name, ep.value))


#: the damaged distributions warned about (once per process each)
_warned: set[str] = set()


def _readable() -> list:
    """The entry points of :data:`GROUP` of every installed distribution whose entry points
    can be read, each distribution counted once (the first on the path, as
    :func:`importlib.metadata.entry_points` counts them); a :class:`PluginWarning` for each
    of the others."""
    import warnings
    from importlib.metadata import distributions

    found, seen = [], set()
    for dist in distributions():
        try:  # what importlib.metadata's own entry_points() tells distributions apart by
            key = getattr(dist, "_normalized_name", None) or dist.name
        except Exception:
            key = None
        if key is not None and key in seen:
            continue
        seen.add(key)
        try:
            found.extend(dist.entry_points.select(group=GROUP))
        except Exception as err:
            folder = os.path.abspath(dist.locate_file(""))
            try:
                where = f"{dist.name} {dist.version} (in {folder})"
            except Exception:  # its name and version cannot be read either
                where = folder
            if where not in _warned:
                _warned.add(where)
                warnings.warn(f"the installed distribution {where} has entry points that cannot "
                              f"be read ({type(err).__name__}: {err}); its optimizer plugins, if "
                              f"any, are left out", PluginWarning, stacklevel=3)
    return found


def origin(entry_point) -> str:
    """Where ``entry_point`` comes from, for messages: ``name = value (distribution
    version)``."""
    dist = getattr(entry_point, "dist", None)
    where = f" ({dist.name} {dist.version})" if dist is not None else ""
    return f"{entry_point.name} = {entry_point.value}{where}"
