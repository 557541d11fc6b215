"""Functions of the user's own, named ``"package.module:function"``: a task
(:func:`optimlab.bench.tasks.get`) or a landscape (:func:`optimlab.landscapes.get`).

Standard library only: one place that imports the module as ``python -m`` would (the
current folder first) and says in one line what is wrong with a name that cannot be
called, so a task and a landscape of one's own are found, and refused, alike.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable

from ._table import one_line


def import_from_here(module_name: str):
    """Import ``module_name`` as ``python -m`` would: the current folder first. The
    ``optimlab`` console script's ``sys.path`` starts with its own folder (the environment's
    ``bin``), so ``optimlab bench mymod:task`` in the folder of ``mymod.py`` found nothing
    where ``python -m optimlab`` did."""
    here = os.getcwd()
    if here in sys.path or "" in sys.path:
        return importlib.import_module(module_name)
    sys.path.insert(0, here)
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path.remove(here)


def is_spec(name: str) -> bool:
    """Whether ``name`` names a function of the user's (it holds a colon), not a catalog's
    entry."""
    return ":" in name


def user_function(spec: str, what: str, expected: str, params: dict, taking: str = "") -> Callable:
    """The function ``spec`` (``"package.module:function"``) names, imported, and checked to
    take the keyword arguments ``params``; ``ValueError`` in one line otherwise.

    ``what`` is what it makes (``"task"``, ``"landscape"``), ``expected`` what such a
    function is (``"a function returning a Landscape"``) and ``taking`` what else it is
    called with (" (and data_dir when given)"), for the messages.
    """
    module_name, _, function_name = spec.partition(":")
    module_name, function_name = module_name.strip(), function_name.strip()
    if not module_name or not function_name or ":" in function_name:
        raise ValueError(f"{what} {spec!r} is not 'package.module:function': expected "
                         f"{expected}")
    try:
        module = import_from_here(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import {what} module {module_name!r} (from {spec!r}): "
                         f"{one_line(err)} (looked in the current folder and on "
                         "PYTHONPATH)") from err
    except Exception as err:  # the module itself fails: say so in one line
        raise ValueError(f"cannot import {what} module {module_name!r} (from {spec!r}): "
                         f"{type(err).__name__}: {one_line(err)}") from err
    missing = object()
    function = getattr(module, function_name, missing)
    if function is missing:
        raise ValueError(f"module {module_name!r} has no function {function_name!r} (from "
                         f"{spec!r}); expected {expected}")
    if not callable(function):
        raise ValueError(f"{spec} is not a function (it is the {type(function).__name__} "
                         f"{one_line(repr(function), 60)}); expected {expected}")
    try:
        inspect.signature(function).bind(**params)
    except TypeError as err:
        given = ", ".join(params) or "no arguments"
        raise ValueError(f"{spec} cannot be called with {given} ({one_line(err)}); expected "
                         f"{expected}, taking the {what}'s keyword arguments{taking}") from err
    except ValueError:  # no signature to inspect (some builtins): let the call tell
        pass
    return function
