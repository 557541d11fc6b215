"""The landscape lab: test functions, optimizer races, plots and animations.

Depends on :mod:`optimlab.optim` (the rules it races) and, for pictures only, matplotlib.
The tutorials' exhibits build on it in :mod:`optimlab.exhibits`; nothing here imports them.
"""

from .base import CHALLENGES, Landscape
from .functions import get, names
from .race import TUNE_GRID, race, run_members
from .result import Race, RaceMetrics

__all__ = ["CHALLENGES", "Landscape", "Race", "RaceMetrics", "TUNE_GRID", "get", "names",
           "race", "run_members"]

#: submodules reached as attributes without an import of their own
#: (``optimlab.landscapes.suggest``)
_LAZY = ("suggest", "plots", "inspect")


def __getattr__(name: str):
    """A submodule named as an attribute (``optimlab.landscapes.suggest``) is imported on first use."""
    if name in _LAZY:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
