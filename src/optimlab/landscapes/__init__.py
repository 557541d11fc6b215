"""The landscape lab: test functions, optimizer races, plots and animations.

Depends on :mod:`optimlab.optim` (the rules it races) and, for pictures only, matplotlib.
The tutorials' exhibits build on it in :mod:`optimlab.exhibits`; nothing here imports them.
"""

from .._lazy import submodule_access
from .base import CHALLENGES, Landscape
from .functions import get, names
from .race import TUNE_GRID, race, run_members
from .result import Race, RaceMetrics

__all__ = ["CHALLENGES", "Landscape", "Race", "RaceMetrics", "TUNE_GRID", "get", "names",
           "race", "run_members"]

#: submodules reached as attributes without an import of their own
#: (``optimlab.landscapes.suggest``)
_LAZY = ("suggest", "plots", "inspect")

__getattr__, __dir__ = submodule_access(__name__, _LAZY)
