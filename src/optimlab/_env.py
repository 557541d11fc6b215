"""The environment variables optimlab reads, read the same way by every part of it.

- :func:`flag` reads an on/off switch (``OPTIMLAB_DEBUG``, ``OPTIMLAB_DISABLE_PLUGINS``,
  ``OPTIMLAB_KEEP_FREED_MEMORY``, ``CI``): unset is the switch's default; ``1``, ``true``,
  ``yes``, ``on`` are on and ``0``, ``false``, ``no``, ``off`` or the empty string off (in
  any case, spaces around ignored); any other value is on, as a variable that is set always
  read, with a warning naming the variable and these words (:class:`EnvironmentWarning`).
- :func:`cache_root` is optimlab's cache folder (``$OPTIMLAB_CACHE``, else an absolute
  ``$XDG_CACHE_HOME``'s ``optimlab``, else ``~/.cache/optimlab``), under which the fused
  kernels, the step costs, mnist1d's data and the catalog commands' answers are kept.

Standard library only; importing this module is cheap (the command line reads it at start).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

ON = ("1", "true", "yes", "on")
"""The values of a switch that turn it on (compared in lower case, stripped)."""

OFF = ("", "0", "false", "no", "off")
"""The values of a switch that turn it off (compared in lower case, stripped)."""

CACHE_ROOT_TEXT = ("$OPTIMLAB_CACHE, else $XDG_CACHE_HOME/optimlab where XDG_CACHE_HOME is an "
                   "absolute path, else ~/.cache/optimlab")
"""Where :func:`cache_root` looks, in words, for help texts."""


class EnvironmentWarning(UserWarning):
    """An on/off environment variable holds a value that is none of the accepted words
    (:data:`ON`, :data:`OFF`); it is read as on."""


#: the (variable, value) pairs warned about in this process (each said once)
_warned: set[tuple[str, str]] = set()


def flag(name: str, default: bool, *, warn: bool = True) -> bool:
    """The on/off environment variable ``name``: ``default`` where it is not set; False
    for a value in :data:`OFF` and True for one in :data:`ON` (in any case, with spaces
    around it ignored); any other value is on (the variable is set, as these variables
    always read), with an :class:`EnvironmentWarning` naming the variable and the accepted
    values, once per process for each value. ``warn=False`` reads other values as on
    silently: for a variable that other programs set with values of their own (``CI``,
    which Woodpecker sets to ``woodpecker``). Where warnings are errors the warning is
    dropped: reading a switch never raises."""
    value = os.environ.get(name)
    if value is None:
        return default
    word = value.strip().lower()
    if word in OFF:
        return False
    if word in ON:
        return True
    if warn and (name, value) not in _warned:
        _warned.add((name, value))
        try:
            warnings.warn(f"{name}={value!r} is not one of 1, true, yes, on (on) or 0, false, "
                          f"no, off, empty (off), in any case; read as on", EnvironmentWarning,
                          stacklevel=2)
        except Warning:
            pass
    return True


def cache_root() -> Path:
    """optimlab's cache folder (not created here): ``$OPTIMLAB_CACHE`` with a leading ``~``
    expanded (a value quoted in a Dockerfile or an ``.env`` file reaches the process
    unexpanded), else ``$XDG_CACHE_HOME/optimlab`` where ``XDG_CACHE_HOME`` is an absolute
    path (the XDG Base Directory specification ignores a relative one), else
    ``~/.cache/optimlab``.

    Raises :class:`RuntimeError` where the folder would be under a home folder that cannot
    be found (``$HOME`` unset and a user id without a passwd entry, or ``~user`` of an
    unknown user): callers choose their own way on (a temporary folder, no cache), where a
    folder named ``~`` in the working directory was made before.
    """
    root = os.environ.get("OPTIMLAB_CACHE")
    if root:
        expanded = os.path.expanduser(root)
        if expanded.startswith("~"):
            raise RuntimeError(f"OPTIMLAB_CACHE={root!r}: no home folder to expand "
                               f"{root.split(os.sep)[0]} to")
        return Path(expanded)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "optimlab"
    return Path.home() / ".cache" / "optimlab"  # RuntimeError where no home can be found
