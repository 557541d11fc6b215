"""Optimizers that wrap another optimizer: SAM (and ASAM) and Lookahead."""

from .lookahead import Lookahead
from .sam import SAM

__all__ = ["SAM", "Lookahead"]
