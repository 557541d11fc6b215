"""The landscape lab: test functions, optimizer races, plots and the tutorials' exhibits.

Depends on :mod:`optimlab.optim` (the rules it races) and, for pictures only, matplotlib.
"""

from .base import CHALLENGES, Landscape
from .functions import get, names
from .race import TUNE_GRID, race, run_members
from .result import Race, RaceMetrics

__all__ = ["CHALLENGES", "Landscape", "Race", "RaceMetrics", "TUNE_GRID", "get", "names",
           "race", "run_members"]
