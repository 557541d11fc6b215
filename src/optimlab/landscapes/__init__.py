"""The landscape lab: test functions, optimizer races, plots and animations.

Depends on :mod:`optimlab.optim` (the rules it races) and, for pictures only, matplotlib.
The tutorials' exhibits build on it in :mod:`optimlab.exhibits`; nothing here imports them.
"""

from .._lazy import submodule_access
from .base import CHALLENGES, Landscape, LandscapeWarning
from .functions import get, names
from .race import TUNE_GRID, diverged, race, run_members, typical_gap
from .result import Race, RaceMetrics

__all__ = ["CHALLENGES", "Landscape", "LandscapeWarning", "Race", "RaceMetrics", "TUNE_GRID",
           "diverged", "get", "names", "race", "run_members", "typical_gap"]

# ``optimlab.landscapes.race`` is the function :func:`race`, which hides the module of that
# name as an attribute (``import optimlab.landscapes.race as m`` and ``from
# optimlab.landscapes.race import ...`` still reach the module); what else a user reads from
# it is exported here: ``optimlab.landscapes.typical_gap``, ``optimlab.landscapes.diverged``.

#: submodules reached as attributes without an import of their own
#: (``optimlab.landscapes.suggest``)
_LAZY = ("suggest", "plots", "inspect")

__getattr__, __dir__ = submodule_access(__name__, _LAZY)
