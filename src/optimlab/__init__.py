"""optimlab: gradient-based optimizers for PyTorch you can use, see, trust and choose.

Every optimizer is a drop-in ``torch.optim.Optimizer``; ``create(name, params, **hp)`` and
``available()`` expose the registry; ``race(landscape, optimizers)`` races them on the test
functions of :mod:`optimlab.landscapes`; :mod:`optimlab.exhibits` holds the tutorials'
exhibits (``optimlab.exhibits.run_demo(name)``, ``optimlab demo NAME``).
"""
from . import exhibits, landscapes
from .landscapes import race
from .optim import *  # noqa: F401,F403
from .optim import __all__ as _optim_all

__version__ = "0.1.0"
__all__ = list(_optim_all) + ["exhibits", "landscapes", "race"]
