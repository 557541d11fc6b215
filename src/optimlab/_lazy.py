"""Submodules reached as attributes on first use (PEP 562), for a package's ``__init__``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def submodule_access(package: str, names: tuple[str, ...]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package`` whose submodules ``names`` are imported
    the first time they are read as attributes (``optimlab.bench.tasks`` after a plain
    ``import optimlab``), so importing the package imports none of them.

    >>> getattr_, dir_ = submodule_access("optimlab", ("_table",))
    >>> getattr_("_table").__name__
    'optimlab._table'
    """
    def __getattr__(name: str):
        if name in names:
            return importlib.import_module(f".{name}", package)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
