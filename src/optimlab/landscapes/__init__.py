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
